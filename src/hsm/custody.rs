//! Cloud-key custody: every holder's private key is generated inside the HSM, leaves it only
//! wrapped under the key-encryption key (CKM_AES_KEY_WRAP_PAD), and comes back only as a session
//! object that is sensitive and not extractable, used once and destroyed. The PIN pepper is an
//! HMAC key that never leaves the token either.
//!
//! Keys that cannot leave. The user PIN sits in a file on the CA host, so the HSM itself, not
//! cloudca, must stop a PIN holder from turning a stored blob into a plaintext key:
//!
//! - The KEK carries `CKA_UNWRAP_TEMPLATE` (`unwrapped_key`): whatever it unwraps is a
//!   sensitive, non-extractable, non-modifiable, non-copyable session key that can sign and do
//!   nothing else, whoever asks. SoftHSM2 2.6.1 enforces it by refusing (CKR_TEMPLATE_INCONSISTENT)
//!   any unwrap whose template does not repeat it; other HSMs apply it over the caller's.
//! - The KEK carries `CKA_WRAP_TEMPLATE` (`wrappable_key`): it wraps only private keys born
//!   sensitive in the HSM (`CKA_LOCAL`), so no key whose value someone knows becomes a blob.
//! - The KEK and the pepper are `CKA_MODIFIABLE=false` and `CKA_COPYABLE=false`, and allow one
//!   mechanism each (`CKA_ALLOWED_MECHANISMS`): nobody can switch on `CKA_DECRYPT` and compute
//!   RFC 5649 from raw AES, drop the templates, or copy the key with looser attributes.
//!
//! What a PIN holder can still do is use holder keys inside the HSM while they hold the PIN
//! (unwrap a blob as cloudca does and sign): online, through the HSM, never a key to take away.
//!
//! Both custody keys are private token objects: a session that is not logged in cannot use them.
//! `CKA_WRAP_WITH_TRUSTED` on holder keys needs a KEK the Security Officer marked `CKA_TRUSTED`;
//! a SoftHSM2 SO can only make public objects, stored unencrypted, so it is off unless
//! `hsm.trusted_kek` says the HSM's ceremony did that (`pkcs11-config/README.md`).
//!
//! A KEK made by an older ceremony lacks the templates, which SoftHSM2 cannot add to an existing
//! key. The pool logs it at start and refuses new holder keys under it ([`HsmError::LegacyKek`]);
//! `cloudca ceremony custody` ([`HsmPool::ensure_custody_keys`]) relabels it
//! [`LEGACY_KEK_LABEL`], kept only to unwrap the blobs made before, and creates a hardened KEK.

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::pool::Shared;
use super::template::{self, Nested, CKA_UNWRAP_TEMPLATE, CKA_WRAP_TEMPLATE};
use super::{keys, HsmError, HsmPool, KeyAlgorithm};

/// Label of the key-encryption key (AES-256).
pub const KEK_LABEL: &str = "cloudca-kek";
/// Label of the PIN pepper (HMAC-SHA256 secret).
pub const PEPPER_LABEL: &str = "cloudca-pin-pepper";
/// Label a KEK from an older ceremony gets when `ceremony custody` replaces it: it unwraps the
/// blobs made under it and wraps nothing new.
pub const LEGACY_KEK_LABEL: &str = "cloudca-kek-legacy";
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
    /// Creates the KEK and the pepper if missing (the ceremony calls this), and replaces a KEK
    /// an older ceremony made without the protections of this module: that one is relabelled
    /// [`LEGACY_KEK_LABEL`] and a hardened KEK is made. Returns the labels it created.
    ///
    /// Crash-safe: the new KEK is made before the old one is relabelled, and a second run
    /// finishes the relabelling. A pepper from an older ceremony is kept as it is: replacing
    /// it would invalidate every PIN hash and blob binding.
    pub async fn ensure_custody_keys(&self) -> Result<Vec<&'static str>, HsmError> {
        let rx = self.submit("custody_keys", move |s: &Session, sh: &Shared| {
            let mut made = Vec::new();
            let keks = inspect_keks(s)?;
            let legacy: Vec<&KekState> = keks.iter().filter(|k| !k.missing.is_empty()).collect();
            if !legacy.is_empty() && !find_secrets(s, LEGACY_KEK_LABEL)?.is_empty() {
                // Blobs would then be under two old KEKs, and unwrap tries only one.
                return Err(HsmError::KeyExists(LEGACY_KEK_LABEL.into()));
            }
            if keks.iter().all(|k| !k.missing.is_empty()) {
                generate_secret(s, KEK_LABEL, SecretKind::Kek)?;
                made.push(KEK_LABEL);
            }
            for old in legacy {
                let label = Attribute::Label(LEGACY_KEK_LABEL.as_bytes().to_vec());
                s.update_attributes(old.handle, &[label]).map_err(HsmError::from_cryptoki)?;
                tracing::warn!(target: "audit", event = "custody.kek_retired", label = LEGACY_KEK_LABEL, missing = %old.missing.join(", "), "the KEK of an older ceremony now only unwraps the blobs made under it; a hardened KEK wraps new ones");
            }
            if find_secrets(s, PEPPER_LABEL)?.is_empty() {
                generate_secret(s, PEPPER_LABEL, SecretKind::Pepper)?;
                made.push(PEPPER_LABEL);
            }
            sh.forget_kek();
            Ok(made)
        })?;
        rx.await.map_err(|_| HsmError::ShutDown)?
    }

    /// Generates a holder key pair as session objects, wraps the private key under the KEK,
    /// destroys both objects and returns the blob with the public key. Refuses under a KEK that
    /// lacks this module's protections: a key made under it could be exported by a PIN holder.
    pub async fn generate_wrapped(&self, algorithm: KeyAlgorithm) -> Result<WrappedKey, HsmError> {
        let trusted_kek = self.trusted_kek;
        let rx = self.submit("generate_wrapped", move |s: &Session, sh: &Shared| {
            let kek = sh.kek(s, read_kek)?;
            if !kek.missing.is_empty() {
                return Err(HsmError::LegacyKek { missing: kek.missing.join(", ") });
            }
            if trusted_kek && !kek.trusted {
                return Err(HsmError::KekNotTrusted);
            }
            let (public, private) = generate_session_pair(s, algorithm, trusted_kek)?;
            let result = keys::public_key_info(s, public, algorithm)
                .and_then(|spki| Ok(WrappedKey { blob: wrap(s, kek.handle, private)?, spki }));
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
    /// The KEK's handle and state are cached per pool generation: no round trip is added to the
    /// unwrap and the signatures, except for a blob made under a replaced KEK, which is tried
    /// under [`LEGACY_KEK_LABEL`] after the current KEK refused it. One job, one session: the
    /// session-key rate the benches compare against.
    pub async fn sign_wrapped_many(
        &self,
        blob: &[u8],
        algorithm: KeyAlgorithm,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let blob = blob.to_vec();
        let rx = self
            .submit("sign_wrapped", move |s: &Session, sh: &Shared| sign_with_blob(s, sh, &blob, algorithm, &inputs))?;
        let raw = rx.await.map_err(|_| HsmError::ShutDown)??;
        raw.into_iter().map(|r| algorithm.x509_signature(r)).collect()
    }

    /// A holder's signatures: in each job the blob's [`Binding`] is checked with the pepper
    /// first (a blob moved to another credential's row is refused before it is unwrapped), then
    /// one unwrap, the signatures, one destroy. Checking the binding in the job that unwraps
    /// saves the pool a round trip per approval. A batch of at least `2 × BOUND_CHUNK_MIN`
    /// inputs is split across the pool's workers, each unwrapping the blob for its share,
    /// so a 100-hash approval is not bound to one session's rate.
    pub async fn sign_bound(
        &self,
        blob: &[u8],
        binding: Binding,
        algorithm: KeyAlgorithm,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let jobs = (inputs.len() / BOUND_CHUNK_MIN).clamp(1, self.size());
        let per_job = inputs.len().div_ceil(jobs).max(1);
        let blob: std::sync::Arc<[u8]> = blob.into();
        let binding = std::sync::Arc::new(binding);
        let mut replies = Vec::with_capacity(jobs);
        for share in inputs.chunks(per_job) {
            let (blob, binding, share) = (blob.clone(), binding.clone(), share.to_vec());
            replies.push(self.submit("sign_bound", move |s: &Session, sh: &Shared| {
                check_binding(s, sh, &binding)?;
                sign_with_blob(s, sh, &blob, algorithm, &share)
            })?);
        }
        let mut signatures = Vec::with_capacity(inputs.len());
        for reply in replies {
            let raw = reply.await.map_err(|_| HsmError::ShutDown)??;
            for r in raw {
                signatures.push(algorithm.x509_signature(r)?);
            }
        }
        Ok(signatures)
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

/// What ties a wrapped blob to the credential row it is stored in (custody's blob binding): the
/// pepper's HMAC over `message` must equal `mac` before the blob is unwrapped.
pub struct Binding {
    /// What the HMAC covers: the credential, its certificate and the blob.
    pub message: Vec<u8>,
    /// The HMAC stored with the row.
    pub mac: Vec<u8>,
}

/// Fewest inputs per job when [`HsmPool::sign_bound`] splits a batch: each share costs an
/// unwrap, worth about 12 signatures on SoftHSM2.
const BOUND_CHUNK_MIN: usize = 16;

/// Refuses a blob whose binding does not verify ([`HsmError::NotBound`]). The comparison takes
/// the same time wherever the MACs differ.
fn check_binding(s: &Session, sh: &Shared, binding: &Binding) -> Result<(), HsmError> {
    let key = sh.find_secret_key(s, PEPPER_LABEL)?;
    let mac = s.sign(&Mechanism::Sha256Hmac, key, &binding.message).map_err(HsmError::from_cryptoki)?;
    let differs =
        mac.len() != binding.mac.len() || mac.iter().zip(&binding.mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0;
    if differs {
        return Err(HsmError::NotBound);
    }
    Ok(())
}

/// Unwraps `blob` (under the legacy KEK if the current one refuses it), signs each input,
/// destroys the key: the body of every job that signs with a holder key.
fn sign_with_blob(
    s: &Session,
    sh: &Shared,
    blob: &[u8],
    algorithm: KeyAlgorithm,
    inputs: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, HsmError> {
    let kek = sh.kek(s, read_kek)?;
    let key = match unwrap(s, kek.handle, blob, algorithm) {
        Err(HsmError::InvalidBlob) => unwrap_legacy(s, sh, blob, algorithm)?,
        other => other?,
    };
    let raw: Result<Vec<Vec<u8>>, HsmError> = inputs
        .iter()
        .map(|input| s.sign(&algorithm.mechanism(), key, input).map_err(HsmError::from_cryptoki))
        .collect();
    destroy(s, &[key]);
    raw
}

/// What every unwrapped holder key is: the KEK's `CKA_UNWRAP_TEMPLATE`, and the template
/// [`unwrap`] passes (SoftHSM2 wants each of these repeated with the same value): a session
/// object that signs and does nothing else ([`keys::signing_only`]), so it cannot be wrapped
/// out, changed or copied.
fn unwrapped_key() -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    template.extend(keys::signing_only(false));
    template
}

/// What the KEK may wrap (`CKA_WRAP_TEMPLATE`): signing private keys generated in this HSM
/// (`CKA_LOCAL`) and sensitive since (`CKA_ALWAYS_SENSITIVE`). An imported key, whose value
/// someone knows, or a secret key never becomes a blob.
fn wrappable_key() -> [Attribute; 7] {
    [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Local(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ]
}

/// The custody KEK as the token describes it, read once per pool generation.
#[derive(Debug, Clone)]
pub(crate) struct KekState {
    /// The KEK object.
    pub(crate) handle: ObjectHandle,
    /// The protections it lacks (attribute names); empty for a KEK this module made.
    pub(crate) missing: Vec<&'static str>,
    /// `CKA_TRUSTED`, which only the Security Officer can set (`hsm.trusted_kek`).
    pub(crate) trusted: bool,
}

/// Finds the KEK and reads its protections. Two objects carry its label only between the two
/// steps of [`HsmPool::ensure_custody_keys`]; then the hardened one is used.
fn read_kek(s: &Session) -> Result<KekState, HsmError> {
    let mut keks = inspect_keks(s)?;
    keks.sort_by_key(|k| k.missing.len());
    keks.into_iter().next().ok_or(HsmError::KeyNotFound { label: KEK_LABEL.into(), class: "secret" })
}

/// Every object labelled as the KEK, inspected.
fn inspect_keks(s: &Session) -> Result<Vec<KekState>, HsmError> {
    find_secrets(s, KEK_LABEL)?.into_iter().map(|handle| inspect_kek(s, handle)).collect()
}

/// Reads what a KEK is allowed to do and names each protection it lacks. An attribute the
/// token does not know counts as missing (cryptoki omits it from the answer). Of the nested
/// templates only the size can be read through cryptoki: fewer entries than this module sets
/// means an older template (SoftHSM2 reports an empty one on a KEK made without). Their
/// content is checked where it matters: SoftHSM2 refuses [`unwrap`] unless the KEK's unwrap
/// template equals [`unwrapped_key`].
fn inspect_kek(s: &Session, handle: ObjectHandle) -> Result<KekState, HsmError> {
    let asked = [
        AttributeType::Modifiable,
        AttributeType::Copyable,
        AttributeType::Extractable,
        AttributeType::Trusted,
        AttributeType::AllowedMechanisms,
    ];
    let (mut fixed, mut uncopyable, mut kept_in, mut trusted, mut one_mechanism) = (false, false, false, false, false);
    for attribute in s.get_attributes(handle, &asked).map_err(HsmError::from_cryptoki)? {
        match attribute {
            Attribute::Modifiable(m) => fixed = !m,
            Attribute::Copyable(c) => uncopyable = !c,
            Attribute::Extractable(e) => kept_in = !e,
            Attribute::Trusted(t) => trusted = t,
            Attribute::AllowedMechanisms(m) => one_mechanism = m == [MechanismType::AES_KEY_WRAP_PAD],
            _ => {}
        }
    }
    let nested = [AttributeType::VendorDefined(CKA_UNWRAP_TEMPLATE), AttributeType::VendorDefined(CKA_WRAP_TEMPLATE)];
    let sizes = s.get_attribute_info(handle, &nested).map_err(HsmError::from_cryptoki)?;
    let holds = |i: usize, wanted: usize| matches!(sizes.get(i), Some(AttributeInfo::Available(size)) if template::entries(*size) >= wanted);
    let checks = [
        (fixed, "CKA_MODIFIABLE=false"),
        (uncopyable, "CKA_COPYABLE=false"),
        (kept_in, "CKA_EXTRACTABLE=false"),
        (one_mechanism, "CKA_ALLOWED_MECHANISMS"),
        (holds(0, unwrapped_key().len()), "CKA_UNWRAP_TEMPLATE"),
        (holds(1, wrappable_key().len()), "CKA_WRAP_TEMPLATE"),
    ];
    let missing = checks.iter().filter(|(held, _)| !held).map(|(_, name)| *name).collect();
    Ok(KekState { handle, missing, trusted })
}

/// Logs, once at pool start, what a PIN holder could do with the custody keys on this token:
/// an older KEK (error), a retired one still present, an older pepper, a KEK not trusted while
/// `hsm.trusted_kek` wants it. A token without custody keys logs nothing (the ceremony makes
/// them).
pub(crate) fn report_at_start(s: &Session, sh: &Shared, trusted_kek: bool) {
    match sh.kek(s, read_kek) {
        Ok(kek) if !kek.missing.is_empty() => {
            tracing::error!(label = KEK_LABEL, "{}", HsmError::LegacyKek { missing: kek.missing.join(", ") });
        }
        Ok(kek) if trusted_kek && !kek.trusted => tracing::error!(label = KEK_LABEL, "{}", HsmError::KekNotTrusted),
        Ok(_) | Err(HsmError::KeyNotFound { .. }) => {}
        Err(e) => tracing::warn!(error = %e, "cannot inspect the custody KEK"),
    }
    if find_secrets(s, LEGACY_KEK_LABEL).is_ok_and(|found| !found.is_empty()) {
        tracing::warn!(label = LEGACY_KEK_LABEL, "a KEK from an older ceremony still unwraps the blobs made before it was replaced, and lets a PIN holder export those holder keys; destroy it once every such holder has re-enrolled (pkcs11-config/README.md, \"Existing tokens\")");
    }
    let pepper = find_secrets(s, PEPPER_LABEL).ok().and_then(|found| found.first().copied());
    if let Some(pepper) = pepper {
        let asked = [AttributeType::Modifiable, AttributeType::Copyable];
        let fixed = s
            .get_attributes(pepper, &asked)
            .is_ok_and(|attrs| attrs == [Attribute::Modifiable(false), Attribute::Copyable(false)]);
        if !fixed {
            tracing::warn!(label = PEPPER_LABEL, "the PIN pepper of an older ceremony can be changed or copied by a PIN holder; it is kept, since replacing it would invalidate every PIN hash and blob binding");
        }
    }
}

#[derive(Clone, Copy)]
enum SecretKind {
    Kek,
    Pepper,
}

/// Creates the KEK or the pepper: private, sensitive, never extractable, never changed or
/// copied, one mechanism each. The templates below are the only place that says so.
fn generate_secret(s: &Session, label: &str, kind: SecretKind) -> Result<ObjectHandle, HsmError> {
    let mut template = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::ValueLen(32u64.into()),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ];
    // Kept alive until C_GenerateKey returns: the template attributes point into them.
    let unwrap_template = Nested::new(&unwrapped_key())?;
    let wrap_template = Nested::new(&wrappable_key())?;
    let mechanism = match kind {
        SecretKind::Kek => {
            template.extend([
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::AllowedMechanisms(vec![MechanismType::AES_KEY_WRAP_PAD]),
                unwrap_template.attribute(CKA_UNWRAP_TEMPLATE),
                wrap_template.attribute(CKA_WRAP_TEMPLATE),
            ]);
            Mechanism::AesKeyGen
        }
        SecretKind::Pepper => {
            template.extend([
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::AllowedMechanisms(vec![MechanismType::SHA256_HMAC]),
            ]);
            Mechanism::GenericSecretKeyGen
        }
    };
    s.generate_key(&mechanism, &template).map_err(HsmError::from_cryptoki)
}

/// Secret keys with this label.
fn find_secrets(s: &Session, label: &str) -> Result<Vec<ObjectHandle>, HsmError> {
    let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(label.as_bytes().to_vec())];
    s.find_objects(&template).map_err(HsmError::from_cryptoki)
}

/// A holder key pair that exists only in this session; the private half is extractable so the
/// KEK can wrap it, and sensitive so nothing can read it in plaintext. With `trusted_kek` it
/// also wraps only under a key the SO marked trusted.
fn generate_session_pair(
    s: &Session,
    algorithm: KeyAlgorithm,
    trusted_kek: bool,
) -> Result<(ObjectHandle, ObjectHandle), HsmError> {
    let params = algorithm
        .ec_params()
        .ok_or_else(|| HsmError::NotReady(format!("cloud keys are elliptic-curve keys, not {}", algorithm.name())))?;
    let public = [Attribute::Token(false), Attribute::Verify(true), Attribute::EcParams(params.to_vec())];
    let private = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(trusted_kek),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Copyable(false),
        Attribute::Modifiable(false),
    ];
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).map_err(HsmError::from_cryptoki)
}

fn wrap(s: &Session, kek: ObjectHandle, private: ObjectHandle) -> Result<Vec<u8>, HsmError> {
    s.wrap_key(&Mechanism::AesKeyWrapPad, kek, private).map_err(HsmError::from_cryptoki)
}

/// Unwraps as [`unwrapped_key`] says: a session object that can sign and nothing else, and can
/// never be wrapped again.
fn unwrap(s: &Session, kek: ObjectHandle, blob: &[u8], algorithm: KeyAlgorithm) -> Result<ObjectHandle, HsmError> {
    if algorithm.ec_params().is_none() {
        return Err(HsmError::InvalidBlob);
    }
    let mut template = unwrapped_key();
    template.insert(1, Attribute::KeyType(KeyType::EC));
    // A tampered blob makes SoftHSM2 answer CKR_GENERAL_ERROR, not WRAPPED_KEY_INVALID.
    s.unwrap_key(&Mechanism::AesKeyWrapPad, kek, blob, &template).map_err(|e| match HsmError::from_cryptoki(e) {
        e if e.is_session_lost() => e,
        _ => HsmError::InvalidBlob,
    })
}

/// A blob the KEK refused may have been made under the KEK that `ceremony custody` replaced.
fn unwrap_legacy(s: &Session, sh: &Shared, blob: &[u8], algorithm: KeyAlgorithm) -> Result<ObjectHandle, HsmError> {
    match sh.find_secret_key(s, LEGACY_KEK_LABEL) {
        Ok(legacy) => unwrap(s, legacy, blob, algorithm),
        Err(HsmError::KeyNotFound { .. }) => Err(HsmError::InvalidBlob),
        Err(e) => Err(e),
    }
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
