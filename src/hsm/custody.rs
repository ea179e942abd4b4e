//! Cloud-key custody: every holder's private key is generated inside the HSM, leaves it only
//! wrapped under the key-encryption key (CKM_AES_KEY_WRAP_PAD), and comes back only as a session
//! object that is sensitive and not extractable, used once and destroyed. The PIN pepper is an
//! HMAC key that never leaves the token either.
//!
//! Both custody keys are private token objects: a session that is not logged in cannot use
//! them (CKA_TRUSTED / CKA_WRAP_WITH_TRUSTED are deliberately not used: see
//! `../shared/notes/hsm-facts.md`).

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::pool::Shared;
use super::{keys, HsmError, HsmPool, KeyAlgorithm};

/// Label of the key-encryption key (AES-256).
pub const KEK_LABEL: &str = "cloudca-kek";
/// Label of the PIN pepper (HMAC-SHA256 secret).
pub const PEPPER_LABEL: &str = "cloudca-pin-pepper";
/// Format version of wrapped blobs: SoftHSM2 pads PKCS#8 before wrapping (its issue #726), so
/// a blob may not unwrap on another vendor's HSM; the version says which rules made it.
pub const BLOB_VERSION: i64 = 1;

/// A holder key as it may be stored: the wrapped private key and its public key.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    /// The private key wrapped under the KEK.
    pub blob: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl HsmPool {
    /// Creates the KEK and the pepper if missing (the ceremony calls this). Returns the labels
    /// it created.
    pub async fn ensure_custody_keys(&self) -> Result<Vec<&'static str>, HsmError> {
        let rx = self.submit("custody_keys", move |s: &Session, _: &Shared| {
            let mut made = Vec::new();
            for (label, kind) in [(KEK_LABEL, SecretKind::Kek), (PEPPER_LABEL, SecretKind::Pepper)] {
                let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(label.as_bytes().to_vec())];
                if s.find_objects(&template).map_err(HsmError::from_cryptoki)?.is_empty() {
                    generate_secret(s, label, kind)?;
                    made.push(label);
                }
            }
            Ok(made)
        })?;
        rx.await.map_err(|_| HsmError::ShutDown)?
    }

    /// Generates a holder key pair as session objects, wraps the private key under the KEK,
    /// destroys both objects and returns the blob with the public key.
    pub async fn generate_wrapped(&self, algorithm: KeyAlgorithm) -> Result<WrappedKey, HsmError> {
        let rx = self.submit("generate_wrapped", move |s: &Session, sh: &Shared| {
            let kek = sh.find_secret_key(s, KEK_LABEL)?;
            let (public, private) = generate_session_pair(s, algorithm)?;
            let result = keys::public_key_info(s, public, algorithm)
                .and_then(|spki| Ok(WrappedKey { blob: wrap(s, kek, private)?, spki }));
            destroy(s, &[public, private]);
            result
        })?;
        rx.await.map_err(|_| HsmError::ShutDown)?
    }

    /// Unwraps a blob as a non-extractable session object, signs `message` (hashed here as for
    /// CA keys), destroys the object, and returns the X.509-style signature.
    pub async fn sign_wrapped(
        &self,
        blob: &[u8],
        algorithm: KeyAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let inputs = vec![algorithm.token_input(message)];
        let mut signatures = self.sign_wrapped_many(blob, algorithm, inputs).await?;
        signatures.pop().ok_or_else(|| HsmError::NotReady("no signature".into()))
    }

    /// One unwrap, several signatures (a signing session with many hashes), one destroy.
    /// `inputs` are token inputs (digests, already prepared with [`KeyAlgorithm::token_input`]).
    pub async fn sign_wrapped_many(
        &self,
        blob: &[u8],
        algorithm: KeyAlgorithm,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let blob = blob.to_vec();
        let rx = self.submit("sign_wrapped", move |s: &Session, sh: &Shared| {
            let kek = sh.find_secret_key(s, KEK_LABEL)?;
            let key = unwrap(s, kek, &blob, algorithm)?;
            let raw: Result<Vec<Vec<u8>>, HsmError> = inputs
                .iter()
                .map(|input| s.sign(&algorithm.mechanism(), key, input).map_err(HsmError::from_cryptoki))
                .collect();
            destroy(s, &[key]);
            raw
        })?;
        let raw = rx.await.map_err(|_| HsmError::ShutDown)??;
        raw.into_iter().map(|r| algorithm.x509_signature(r)).collect()
    }

    /// HMAC-SHA256 with the pepper: keys PIN hashes and blob bindings to this HSM, so a copy
    /// of the database alone allows no offline guessing and no blob swapping.
    pub async fn pepper(&self, message: &[u8]) -> Result<Vec<u8>, HsmError> {
        let message = message.to_vec();
        let rx = self.submit("pepper", move |s: &Session, sh: &Shared| {
            let key = sh.find_secret_key(s, PEPPER_LABEL)?;
            s.sign(&Mechanism::Sha256Hmac, key, &message).map_err(HsmError::from_cryptoki)
        })?;
        rx.await.map_err(|_| HsmError::ShutDown)?
    }
}

#[derive(Clone, Copy)]
enum SecretKind {
    Kek,
    Pepper,
}

fn generate_secret(s: &Session, label: &str, kind: SecretKind) -> Result<ObjectHandle, HsmError> {
    let mut template = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::ValueLen(32u64.into()),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ];
    let mechanism = match kind {
        SecretKind::Kek => {
            template.extend([Attribute::Wrap(true), Attribute::Unwrap(true), Attribute::Sign(false)]);
            Mechanism::AesKeyGen
        }
        SecretKind::Pepper => {
            template.extend([
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
            ]);
            Mechanism::GenericSecretKeyGen
        }
    };
    s.generate_key(&mechanism, &template).map_err(HsmError::from_cryptoki)
}

/// A holder key pair that exists only in this session; the private half is extractable so the
/// KEK can wrap it, and sensitive so nothing can read it in plaintext.
fn generate_session_pair(s: &Session, algorithm: KeyAlgorithm) -> Result<(ObjectHandle, ObjectHandle), HsmError> {
    let params = algorithm
        .ec_params()
        .ok_or_else(|| HsmError::NotReady(format!("cloud keys are elliptic-curve keys, not {}", algorithm.name())))?;
    let public = [Attribute::Token(false), Attribute::Verify(true), Attribute::EcParams(params.to_vec())];
    let private = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ];
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).map_err(HsmError::from_cryptoki)
}

fn wrap(s: &Session, kek: ObjectHandle, private: ObjectHandle) -> Result<Vec<u8>, HsmError> {
    s.wrap_key(&Mechanism::AesKeyWrapPad, kek, private).map_err(HsmError::from_cryptoki)
}

/// Unwraps as a session object that can sign and nothing else, and can never be wrapped again.
fn unwrap(s: &Session, kek: ObjectHandle, blob: &[u8], algorithm: KeyAlgorithm) -> Result<ObjectHandle, HsmError> {
    let template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ];
    if algorithm.ec_params().is_none() {
        return Err(HsmError::InvalidBlob);
    }
    // A tampered blob makes SoftHSM2 answer CKR_GENERAL_ERROR, not WRAPPED_KEY_INVALID.
    s.unwrap_key(&Mechanism::AesKeyWrapPad, kek, blob, &template).map_err(|e| match HsmError::from_cryptoki(e) {
        e if e.is_session_lost() => e,
        _ => HsmError::InvalidBlob,
    })
}

/// Best effort: a failure to destroy a session object is logged; the object dies with the
/// session anyway.
fn destroy(s: &Session, handles: &[ObjectHandle]) {
    for h in handles {
        if let Err(e) = s.destroy_object(*h) {
            tracing::warn!(error = %e, "cannot destroy a session key object");
        }
    }
}
