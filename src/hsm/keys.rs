//! Key generation templates and public-key export. Every CA key is a token object that is
//! private, sensitive and never extractable, and neither half of the pair can be changed
//! (`CKA_MODIFIABLE=false`: no relabelling, no switching on decryption or derivation) or copied
//! (`CKA_COPYABLE=false`): the templates below are the only place that says so.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

use super::{HsmError, KeyAlgorithm};
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION};
use der::asn1::{Any, BitString, OctetStringRef, Uint};
use der::Decode;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::asn1;

/// The protection attributes of a private key as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyProtection {
    /// CKA_TOKEN: persistent on the token.
    pub token: bool,
    /// CKA_PRIVATE: usable only in a logged-in session.
    pub private: bool,
    /// CKA_SENSITIVE: never revealed in plaintext.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE: may be wrapped out (must be false for CA keys).
    pub extractable: bool,
    /// CKA_ALWAYS_SENSITIVE: has been sensitive since generation.
    pub always_sensitive: bool,
    /// CKA_NEVER_EXTRACTABLE: has never been extractable.
    pub never_extractable: bool,
    /// CKA_MODIFIABLE: its attributes can be changed (false for keys made by this version).
    pub modifiable: bool,
    /// CKA_COPYABLE: C_CopyObject may copy it (false for keys made by this version).
    pub copyable: bool,
}

/// Generates a persistent, non-extractable key pair and returns its SubjectPublicKeyInfo DER.
///
/// `CKA_ID` must be set at generation, as nothing can change the objects afterwards: it is the
/// SHA-1 of the label ([`key_id`]), the same on both halves so PKCS#11 tools pair them. Keys of
/// older ceremonies carry the subject key identifier instead, set after generation.
pub(crate) fn generate(session: &Session, label: &str, algorithm: KeyAlgorithm) -> Result<Vec<u8>, HsmError> {
    let label_attr = Attribute::Label(label.as_bytes().to_vec());
    let id = Attribute::Id(key_id(label));
    let mut private = signing_only(true).to_vec();
    private.extend([label_attr.clone(), id.clone()]);
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::Private(false),
        Attribute::Copyable(false),
        Attribute::Modifiable(false),
        label_attr,
        id,
    ];
    let mechanism = match algorithm.ec_params() {
        Some(params) => {
            public.push(Attribute::EcParams(params.to_vec()));
            Mechanism::EccKeyPairGen
        }
        None => {
            public.push(Attribute::ModulusBits(3072u64.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    let (pub_handle, _) = session.generate_key_pair(&mechanism, &public, &private).map_err(HsmError::from_cryptoki)?;
    public_key_info(session, pub_handle, algorithm)
}

/// A private key that signs and does nothing else: sensitive, never extractable, never changed
/// or copied. CA keys are made so (`token`), and every holder key comes out of an unwrap so
/// (the custody KEK's unwrap template). `CKA_MODIFIABLE=false` comes last: SoftHSM2 2.6.1
/// applies an unwrap template in order and refuses every attribute after it
/// (CKR_ATTRIBUTE_READ_ONLY).
pub(crate) fn signing_only(token: bool) -> [Attribute; 10] {
    [
        Attribute::Token(token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Unwrap(false),
        Attribute::Copyable(false),
        Attribute::Modifiable(false),
    ]
}

/// The `CKA_ID` of a key pair: SHA-1 of its label, 20 bytes like a subject key identifier.
pub(crate) fn key_id(label: &str) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(label.as_bytes()).to_vec()
}

/// Reads a public key object and encodes it as SubjectPublicKeyInfo DER.
pub(crate) fn public_key_info(
    session: &Session,
    handle: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<Vec<u8>, HsmError> {
    match algorithm.ec_params() {
        Some(params) => {
            let attrs = session.get_attributes(handle, &[AttributeType::EcPoint]).map_err(HsmError::from_cryptoki)?;
            let Some(Attribute::EcPoint(wrapped)) = attrs.into_iter().next() else {
                return Err(HsmError::BadData("public key has no CKA_EC_POINT".into()));
            };
            // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (some tokens
            // return the bare point).
            let point = match <&OctetStringRef>::from_der(&wrapped) {
                Ok(point) => point.as_bytes().to_vec(),
                Err(_) => wrapped,
            };
            let curve = Any::from_der(params).map_err(bad_der)?;
            spki(AlgorithmIdentifierOwned { oid: ID_EC_PUBLIC_KEY, parameters: Some(curve) }, &point)
        }
        None => {
            let attrs = session
                .get_attributes(handle, &[AttributeType::Modulus, AttributeType::PublicExponent])
                .map_err(HsmError::from_cryptoki)?;
            let (mut n, mut e) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err(HsmError::BadData("RSA public key without modulus or exponent".into()));
            };
            let rsa =
                RsaPublicKey { modulus: Uint::new(&n).map_err(bad_der)?, exponent: Uint::new(&e).map_err(bad_der)? };
            let algorithm = AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(der::asn1::Any::null()) };
            spki(algorithm, &asn1::encode(&rsa))
        }
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
#[derive(der::Sequence)]
struct RsaPublicKey {
    modulus: Uint,
    exponent: Uint,
}

fn bad_der(e: der::Error) -> HsmError {
    HsmError::BadData(format!("public key: {e}"))
}

fn spki(algorithm: AlgorithmIdentifierOwned, key: &[u8]) -> Result<Vec<u8>, HsmError> {
    let subject_public_key = BitString::from_bytes(key).map_err(bad_der)?;
    Ok(asn1::encode(&SubjectPublicKeyInfoOwned { algorithm, subject_public_key }))
}

/// Reads the protection attributes of a private key.
pub(crate) fn protection(session: &Session, handle: ObjectHandle) -> Result<KeyProtection, HsmError> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Modifiable,
                AttributeType::Copyable,
            ],
        )
        .map_err(HsmError::from_cryptoki)?;
    let mut p = KeyProtection::default();
    for a in attrs {
        match a {
            Attribute::Token(v) => p.token = v,
            Attribute::Private(v) => p.private = v,
            Attribute::Sensitive(v) => p.sensitive = v,
            Attribute::Extractable(v) => p.extractable = v,
            Attribute::AlwaysSensitive(v) => p.always_sensitive = v,
            Attribute::NeverExtractable(v) => p.never_extractable = v,
            Attribute::Modifiable(v) => p.modifiable = v,
            Attribute::Copyable(v) => p.copyable = v,
            _ => {}
        }
    }
    Ok(p)
}
