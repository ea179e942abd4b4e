//! Keys that cannot leave (issue 14, point 5): someone who has the token's user PIN (it sits in
//! a file on the CA host) tries to get holder private keys, the KEK or a CA key out of a real
//! dev-init token, talking PKCS#11 directly with `cryptoki`, as their own tool would. Every
//! attack here worked before the KEK carried CKA_UNWRAP_TEMPLATE / CKA_WRAP_TEMPLATE and the
//! keys CKA_MODIFIABLE=false / CKA_COPYABLE=false. Where SoftHSM2 2.6.1 does not enforce a
//! control, the test asserts what it does instead (see `pkcs11-config/README.md`, "What
//! SoftHSM2 2.6.1 enforces").
//!
//! The attacker shares this test's process (PKCS#11 allows one initialisation per process, and
//! login is per application, so its session is logged in once the pool is): what the token
//! enforces does not depend on which process asks.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::common::*;
use cloudca::hsm::custody::{KEK_LABEL, LEGACY_KEK_LABEL, PEPPER_LABEL};
use cloudca::hsm::{HsmError, HsmPool, KeyAlgorithm};

/// CKA_UNWRAP_TEMPLATE, which cryptoki 0.12 has no name for.
const CKA_UNWRAP_TEMPLATE: u64 = 0x4000_0212;

/// A second PKCS#11 client on the instance's token, logged in with the user PIN from the file
/// beside the config, the way anyone on the CA host could.
fn attacker(ca: &TestCa) -> Session {
    let ctx = Pkcs11::new(cloudca::devinit::SOFTHSM2_MODULE).expect("module loads");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == ca.config.hsm.token_label)
        .expect("the instance's token");
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = std::fs::read_to_string(ca.config.hsm.pin_file.as_ref().unwrap()).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(pin.trim_end().into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    session
}

/// The CKR code of a call that must fail.
fn refused<T: std::fmt::Debug>(result: cryptoki::error::Result<T>) -> RvError {
    match result {
        Err(CkError::Pkcs11(rv, _)) => rv,
        other => panic!("the token allowed it: {other:?}"),
    }
}

/// The secret key with this label.
fn secret(s: &Session, label: &str) -> ObjectHandle {
    let found = s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(label.as_bytes().to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1, "one {label}");
    found[0]
}

/// The template cloudca unwraps holder keys with (`src/hsm/custody.rs`), which the KEK's
/// CKA_UNWRAP_TEMPLATE requires attribute for attribute.
fn product_unwrap_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
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

/// An AES key of the attacker's own, extractable and not sensitive, to wrap keys out under.
fn attacker_key(s: &Session) -> ObjectHandle {
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(false),
            Attribute::ValueLen(32u64.into()),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ],
    )
    .unwrap()
}

/// A holder blob made the way enrolment makes it.
async fn holder_blob(ca: &TestCa) -> cloudca::hsm::WrappedKey {
    let hsm = HsmPool::start(&ca.config.hsm).expect("pool");
    hsm.generate_wrapped(KeyAlgorithm::EcdsaP256).await.expect("a wrapped holder key")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pin_holder_cannot_unwrap_a_holder_key_into_something_that_leaves() {
    let ca = TestCa::new().await;
    let wrapped = holder_blob(&ca).await;
    let s = attacker(&ca);
    let kek = secret(&s, KEK_LABEL);
    let own = attacker_key(&s);
    let mechanism = Mechanism::AesKeyWrapPad;

    // 1. Unwrap as extractable, or leave CKA_EXTRACTABLE to the token's default: refused, the
    //    KEK's unwrap template fixes it to false (SoftHSM2 wants every template attribute in
    //    the caller's template with the same value; other HSMs apply the template instead).
    let mut extractable = product_unwrap_template();
    extractable[5] = Attribute::Extractable(true);
    assert_eq!(refused(s.unwrap_key(&mechanism, kek, &wrapped.blob, &extractable)), RvError::TemplateInconsistent);
    let mut defaulted = product_unwrap_template();
    defaulted.remove(5);
    assert_eq!(refused(s.unwrap_key(&mechanism, kek, &wrapped.blob, &defaulted)), RvError::TemplateInconsistent);
    let mut not_sensitive = product_unwrap_template();
    not_sensitive[4] = Attribute::Sensitive(false);
    assert_eq!(refused(s.unwrap_key(&mechanism, kek, &wrapped.blob, &not_sensitive)), RvError::TemplateInconsistent);
    let mut deriving = product_unwrap_template();
    deriving[8] = Attribute::Derive(true);
    assert_eq!(refused(s.unwrap_key(&mechanism, kek, &wrapped.blob, &deriving)), RvError::TemplateInconsistent);

    // 2. Unwrap the blob as a secret key whose value would be the PKCS#8: refused.
    let as_secret = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    assert_eq!(refused(s.unwrap_key(&mechanism, kek, &wrapped.blob, &as_secret)), RvError::TemplateInconsistent);

    // 3. Another mechanism (RFC 3394 instead of RFC 5649): the KEK allows only
    //    CKM_AES_KEY_WRAP_PAD.
    let unpadded = s.unwrap_key(&Mechanism::AesKeyWrap, kek, &wrapped.blob, &product_unwrap_template());
    assert_eq!(refused(unpadded), RvError::MechanismInvalid);

    // 4. The template cloudca itself uses works, and gives a key that signs and nothing else:
    //    it cannot be wrapped out, loosened or copied.
    let key = s.unwrap_key(&mechanism, kek, &wrapped.blob, &product_unwrap_template()).expect("the product's unwrap");
    let attrs = s.get_attributes(key, &[AttributeType::Extractable, AttributeType::Sensitive]).unwrap();
    assert_eq!(attrs, vec![Attribute::Extractable(false), Attribute::Sensitive(true)]);
    assert_eq!(refused(s.wrap_key(&mechanism, own, key)), RvError::KeyUnextractable);
    assert_eq!(refused(s.update_attributes(key, &[Attribute::Derive(true)])), RvError::ActionProhibited);
    assert_eq!(refused(s.copy_object(key, &[])), RvError::ActionProhibited);
    assert!(s.sign(&Mechanism::Ecdsa, key, &[7u8; 32]).is_ok(), "the unwrapped key signs");
    s.destroy_object(key).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pin_holder_cannot_loosen_copy_or_misuse_the_kek_and_the_pepper() {
    let ca = TestCa::new().await;
    let wrapped = holder_blob(&ca).await;
    let s = attacker(&ca);
    let kek = secret(&s, KEK_LABEL);

    // 1. Turn on decryption to run RFC 5649 by hand over raw AES (CKM_AES_ECB), drop the unwrap
    //    template, or mark the KEK trusted: CKA_MODIFIABLE=false refuses every change.
    assert_eq!(refused(s.update_attributes(kek, &[Attribute::Decrypt(true)])), RvError::ActionProhibited);
    let no_template = Attribute::VendorDefined((AttributeType::VendorDefined(CKA_UNWRAP_TEMPLATE), Vec::new()));
    assert_eq!(refused(s.update_attributes(kek, &[no_template])), RvError::ActionProhibited);
    assert_eq!(refused(s.update_attributes(kek, &[Attribute::Trusted(true)])), RvError::ActionProhibited);
    assert_eq!(refused(s.update_attributes(kek, &[Attribute::Label(b"renamed".to_vec())])), RvError::ActionProhibited);
    // Raw AES with the KEK as it is: CKA_DECRYPT is false.
    assert_eq!(refused(s.decrypt(&Mechanism::AesEcb, kek, &wrapped.blob[..16])), RvError::KeyFunctionNotPermitted);

    // 2. Copy it, with or without changes (a copy could carry looser attributes): refused.
    assert_eq!(refused(s.copy_object(kek, &[])), RvError::ActionProhibited);
    assert_eq!(refused(s.copy_object(kek, &[Attribute::Decrypt(true)])), RvError::ActionProhibited);

    // 3. The pepper likewise.
    let pepper = secret(&s, PEPPER_LABEL);
    assert_eq!(refused(s.update_attributes(pepper, &[Attribute::Derive(true)])), RvError::ActionProhibited);
    assert_eq!(refused(s.copy_object(pepper, &[])), RvError::ActionProhibited);
    assert_eq!(refused(s.encrypt(&Mechanism::AesEcb, pepper, &[0u8; 16])), RvError::KeyFunctionNotPermitted);

    // 4. What the attributes say, as any PKCS#11 tool reads them.
    for key in [kek, pepper] {
        let attrs = s
            .get_attributes(key, &[AttributeType::Modifiable, AttributeType::Copyable, AttributeType::Extractable])
            .unwrap();
        assert_eq!(
            attrs,
            vec![Attribute::Modifiable(false), Attribute::Copyable(false), Attribute::Extractable(false)]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kek_wraps_only_keys_born_sensitive_in_the_hsm() {
    let ca = TestCa::new().await;
    let s = attacker(&ca);
    let kek = secret(&s, KEK_LABEL);
    // A P-256 private key whose value the attacker knows: made into a blob, it could be put
    // in a credential row, and "the holder's key" would be one the attacker holds.
    let known = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::EcParams(P256_OID.to_vec()),
            Attribute::Value(vec![7u8; 32]),
        ])
        .unwrap();
    assert_eq!(refused(s.wrap_key(&Mechanism::AesKeyWrapPad, kek, known)), RvError::KeyNotWrappable);
    // A secret key (the KEK as a general key-export oracle): refused as well.
    let own = attacker_key(&s);
    assert_eq!(refused(s.wrap_key(&Mechanism::AesKeyWrapPad, kek, own)), RvError::KeyNotWrappable);
}

/// DER of the P-256 curve OID (CKA_EC_PARAMS).
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

#[tokio::test(flavor = "multi_thread")]
async fn ca_ocsp_and_audit_keys_can_be_neither_changed_nor_copied() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let s = attacker(&ca);
    let authorities = instance.store.authorities().await.unwrap();
    assert_eq!(authorities.len(), 8, "root, 2 issuing CAs, 2 OCSP responders, the audit and TSA keys, the operator CA");
    for a in authorities {
        let label = a.key_label.as_bytes().to_vec();
        let mut ids = Vec::new();
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let found = s.find_objects(&[Attribute::Class(class), Attribute::Label(label.clone())]).unwrap();
            assert_eq!(found.len(), 1, "{} {class}", a.key_label);
            let key = found[0];
            let attrs = s.get_attributes(key, &[AttributeType::Modifiable, AttributeType::Copyable]).unwrap();
            assert_eq!(attrs, vec![Attribute::Modifiable(false), Attribute::Copyable(false)], "{}", a.key_label);
            let relabel = s.update_attributes(key, &[Attribute::Label(b"cloudca-swapped".to_vec())]);
            assert_eq!(refused(relabel), RvError::ActionProhibited, "{}", a.key_label);
            assert_eq!(refused(s.copy_object(key, &[])), RvError::ActionProhibited, "{}", a.key_label);
            if class == ObjectClass::PRIVATE_KEY {
                let usage = s.update_attributes(key, &[Attribute::Derive(true)]);
                assert_eq!(refused(usage), RvError::ActionProhibited, "{}", a.key_label);
            }
            ids.push(s.get_attributes(key, &[AttributeType::Id]).unwrap());
        }
        // CKA_ID, set at generation now that nothing can set it afterwards, pairs the halves.
        assert!(matches!(&ids[0][..], [Attribute::Id(id)] if id.len() == 20), "{}: {ids:?}", a.key_label);
        assert_eq!(ids[0], ids[1], "{}", a.key_label);
        // Still generated inside the HSM, sensitive and never extractable.
        let p = instance.hsm.protection(&a.key_label).await.unwrap();
        assert!(p.always_sensitive && p.never_extractable && !p.modifiable && !p.copyable, "{}: {p:?}", a.key_label);
    }
}

/// The KEK template of ceremonies before issue 14: wrap and unwrap, and nothing that limits
/// what an unwrapped key may be.
fn old_kek_template() -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Label(KEK_LABEL.as_bytes().to_vec()),
        Attribute::ValueLen(32u64.into()),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Sign(false),
    ]
}

/// A P-256 holder key pair as session objects; returns (public, private).
fn holder_pair(s: &Session, private_extra: &[Attribute]) -> (ObjectHandle, ObjectHandle) {
    let public = [Attribute::Token(false), Attribute::Verify(true), Attribute::EcParams(P256_OID.to_vec())];
    let mut private = vec![
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Sign(true),
    ];
    private.extend_from_slice(private_extra);
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).unwrap()
}

/// The uncompressed point of a public key object (CKA_EC_POINT without its OCTET STRING).
fn ec_point(s: &Session, public: ObjectHandle) -> Vec<u8> {
    match s.get_attributes(public, &[AttributeType::EcPoint]).unwrap().pop() {
        Some(Attribute::EcPoint(der)) => der[2..].to_vec(),
        other => panic!("no CKA_EC_POINT: {other:?}"),
    }
}

/// RFC 5649 key unwrap computed from raw AES block decryptions: what anyone who can decrypt
/// with the KEK (CKA_DECRYPT, CKM_AES_ECB) can do with a blob.
fn rfc5649_unwrap(decrypt: impl Fn(&[u8]) -> Vec<u8>, blob: &[u8]) -> Vec<u8> {
    let n = blob.len() / 8 - 1;
    let mut a: [u8; 8] = blob[..8].try_into().unwrap();
    let mut r: Vec<[u8; 8]> = blob[8..].chunks(8).map(|c| c.try_into().unwrap()).collect();
    for j in (0..6u64).rev() {
        for i in (1..=n).rev() {
            let t = (n as u64) * j + i as u64;
            let mut block = [0u8; 16];
            for (k, byte) in t.to_be_bytes().iter().enumerate() {
                block[k] = a[k] ^ byte;
            }
            block[8..].copy_from_slice(&r[i - 1]);
            let b = decrypt(&block);
            a.copy_from_slice(&b[..8]);
            r[i - 1].copy_from_slice(&b[8..]);
        }
    }
    assert_eq!(a[..4], [0xa6, 0x59, 0x59, 0xa6], "RFC 5649 integrity check value");
    let length = u32::from_be_bytes(a[4..].try_into().unwrap()) as usize;
    r.concat()[..length].to_vec()
}

/// The public key (SubjectPublicKeyInfo DER) of a PKCS#8 private key, by openssl. SoftHSM2 pads
/// the PKCS#8 with zeros before wrapping (its issue #726): the DER length says where it ends.
fn openssl_public_key(dir: &std::path::Path, pkcs8: &[u8]) -> Vec<u8> {
    assert_eq!(pkcs8[0], 0x30, "a DER SEQUENCE");
    let end = match pkcs8[1] {
        l if l < 0x80 => 2 + l as usize,
        0x81 => 3 + pkcs8[2] as usize,
        _ => 4 + u16::from_be_bytes([pkcs8[2], pkcs8[3]]) as usize,
    };
    let (input, output) = (dir.join("stolen.p8"), dir.join("stolen.pub"));
    std::fs::write(&input, &pkcs8[..end]).unwrap();
    let out = run(
        "openssl",
        &[
            "pkey",
            "-inform",
            "DER",
            "-in",
            input.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            output.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}", out.text);
    std::fs::read(output).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kek_from_an_older_ceremony_gives_keys_away_until_the_custody_ceremony_replaces_it() {
    let ca = TestCa::new().await;
    let s = attacker(&ca);

    // 0. A token as an older ceremony left it: the old KEK, and a holder blob made under it.
    s.destroy_object(secret(&s, KEK_LABEL)).unwrap();
    let legacy = s.generate_key(&Mechanism::AesKeyGen, &old_kek_template()).unwrap();
    let (public, private) = holder_pair(&s, &[]);
    let old_blob = s.wrap_key(&Mechanism::AesKeyWrapPad, legacy, private).unwrap();
    let point = ec_point(&s, public);

    // 1. What such a KEK gives a PIN holder: switch on CKA_DECRYPT, run RFC 5649 over raw
    //    AES, and the holder's private key is in plaintext (SoftHSM2 allows every step).
    s.update_attributes(legacy, &[Attribute::Decrypt(true)]).expect("a legacy KEK is modifiable");
    let pkcs8 = rfc5649_unwrap(|block| s.decrypt(&Mechanism::AesEcb, legacy, block).unwrap(), &old_blob);
    let stolen = openssl_public_key(ca.dir.path(), &pkcs8);
    assert!(stolen.ends_with(&point), "the plaintext is the holder's private key");
    s.update_attributes(legacy, &[Attribute::Decrypt(false)]).unwrap();
    // ... and the unwrap template cannot be added afterwards: SoftHSM2 sets it only at creation.
    let template = Attribute::VendorDefined((AttributeType::VendorDefined(CKA_UNWRAP_TEMPLATE), Vec::new()));
    assert_eq!(refused(s.update_attributes(legacy, &[template])), RvError::AttributeReadOnly);

    // 2. cloudca refuses to make new holder keys under it; existing blobs still sign (refusing
    //    them would protect nothing: the PIN holder needs no cloudca to use the token).
    let hsm = HsmPool::start(&ca.config.hsm).expect("pool");
    let err = hsm.generate_wrapped(KeyAlgorithm::EcdsaP256).await.expect_err("no new key under a legacy KEK");
    assert!(matches!(err, HsmError::LegacyKek { .. }), "{err:?}");
    assert!(err.to_string().contains("ceremony custody"), "the error names the fix: {err}");
    hsm.sign_wrapped(&old_blob, KeyAlgorithm::EcdsaP256, b"before").await.expect("old blobs sign");
    drop(hsm);

    // 3. The fix the error names: `cloudca ceremony custody` keeps the old KEK for the old
    //    blobs under another label and creates a hardened KEK; daemons started after it make
    //    new keys again, and old blobs still sign.
    let made = |text: &str| text.lines().any(|l| l.starts_with(&format!("{KEK_LABEL} ")));
    let out = cloudca(&["--config", ca.config_path.to_str().unwrap(), "ceremony", "custody"]);
    assert!(out.ok && made(&out.text), "{}", out.text);
    let hsm = HsmPool::start(&ca.config.hsm).expect("pool");
    let fresh = hsm.generate_wrapped(KeyAlgorithm::EcdsaP256).await.expect("new keys under the hardened KEK");
    hsm.sign_wrapped(&fresh.blob, KeyAlgorithm::EcdsaP256, b"after").await.expect("new blob signs");
    hsm.sign_wrapped(&old_blob, KeyAlgorithm::EcdsaP256, b"after").await.expect("old blob signs");
    assert_eq!(secret(&s, LEGACY_KEK_LABEL), legacy, "the old KEK, relabelled");

    // 4. The new KEK holds: the same attacks fail.
    let kek = secret(&s, KEK_LABEL);
    assert_eq!(refused(s.update_attributes(kek, &[Attribute::Decrypt(true)])), RvError::ActionProhibited);
    let mut extractable = product_unwrap_template();
    extractable[5] = Attribute::Extractable(true);
    let unwrap = s.unwrap_key(&Mechanism::AesKeyWrapPad, kek, &fresh.blob, &extractable);
    assert_eq!(refused(unwrap), RvError::TemplateInconsistent);

    // 5. Running it again changes nothing.
    let again = cloudca(&["--config", ca.config_path.to_str().unwrap(), "ceremony", "custody"]);
    assert!(again.ok && !made(&again.text), "{}", again.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn softhsm2_can_trust_only_public_keks_so_wrap_with_trusted_stays_off() {
    let ca = TestCa::new().await;
    let s = attacker(&ca);
    let kek = secret(&s, KEK_LABEL);

    // 1. A user session cannot mark a key trusted, not even its own.
    let own = attacker_key(&s);
    assert_eq!(refused(s.update_attributes(own, &[Attribute::Trusted(true)])), RvError::AttributeReadOnly);

    // 2. SoftHSM2 enforces CKA_WRAP_WITH_TRUSTED: such a holder key wraps under no untrusted
    //    key, the KEK included, and the flag cannot be cleared.
    let (_, holder) = holder_pair(&s, &[Attribute::WrapWithTrusted(true)]);
    assert_eq!(refused(s.wrap_key(&Mechanism::AesKeyWrapPad, kek, holder)), RvError::KeyNotWrappable);
    assert_eq!(refused(s.wrap_key(&Mechanism::AesKeyWrapPad, own, holder)), RvError::KeyNotWrappable);
    let clear = s.update_attributes(holder, &[Attribute::WrapWithTrusted(false)]);
    assert_eq!(refused(clear), RvError::AttributeReadOnly);

    // 3. The SO may set CKA_TRUSTED, but cannot see or make private objects.
    s.logout().unwrap();
    let so_pin = std::fs::read_to_string(ca.config_path.with_file_name("secrets").join("hsm-so.pin")).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(so_pin.trim_end().into()))).expect("SO login");
    let kek_template = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::ValueLen(32u64.into()),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Trusted(true),
            Attribute::Label(b"trusted-kek".to_vec()),
        ]
    };
    assert_eq!(refused(s.generate_key(&Mechanism::AesKeyGen, &kek_template(true))), RvError::UserNotLoggedIn);
    let seen = s.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)]).unwrap();
    assert!(seen.is_empty(), "the SO sees no private object, so cannot mark the KEK trusted");
    // A public trusted KEK can be made; SoftHSM2 encrypts only private objects, so its value
    // lies in the token folder in plaintext.
    let value: [u8; 32] = rand::random();
    let mut public = kek_template(false);
    public.extend([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(value.to_vec()),
    ]);
    public.retain(|a| !matches!(a, Attribute::ValueLen(_)));
    let trusted = s.create_object(&public).expect("the SO makes a public trusted key");
    assert!(folder_contains(&ca.config_path.with_file_name("tokens"), &value), "public key values are stored plainly");
    s.logout().unwrap();

    // 4. With it, WRAP_WITH_TRUSTED keys wrap; but a session that never logged in can unwrap
    //    such a blob under it, as a public session key, and sign with the holder's key.
    s.login(
        UserType::User,
        Some(&AuthPin::new(
            std::fs::read_to_string(ca.config.hsm.pin_file.as_ref().unwrap()).unwrap().trim_end().into(),
        )),
    )
    .unwrap();
    let (_, holder) = holder_pair(&s, &[Attribute::WrapWithTrusted(true)]);
    let blob = s.wrap_key(&Mechanism::AesKeyWrapPad, trusted, holder).expect("a trusted KEK wraps it");
    s.logout().unwrap();
    let public_unwrap = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ];
    let key = s.unwrap_key(&Mechanism::AesKeyWrapPad, trusted, &blob, &public_unwrap).expect("no login needed");
    assert!(s.sign(&Mechanism::Ecdsa, key, &[7u8; 32]).is_ok(), "a holder key used without any PIN");
}

/// Whether any file under `dir` contains `needle`.
fn folder_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            folder_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_kek_is_refused_on_softhsm2() {
    let ca = TestCa::new().await;
    let text = std::fs::read_to_string(&ca.config_path).unwrap().replace("[hsm]\n", "[hsm]\ntrusted_kek = true\n");
    let path = ca.path("trusted.toml");
    std::fs::write(&path, text).unwrap();
    let err = cloudca::config::Config::load(&path).expect_err("SoftHSM2 cannot trust a private KEK");
    assert!(err.to_string().contains("hsm.trusted_kek"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_blob_leaves_no_copy_in_the_sqlite_files() {
    if postgres_under_test() {
        // PostgreSQL keeps dead tuples until VACUUM: docs/backup.md says what that means.
        return;
    }
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let subject = [("C", "CN"), ("CN", "张三"), ("serialNumber", "11010519491231002X")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
    let pin = cloudca::custody::Pin::new("246810").unwrap();
    let mut enrolled = Vec::new();
    for phone in ["+8613800138000", "+8613800138001"] {
        let approval =
            instance.custody.create_approval("personal", subject.clone(), phone, None, "test").await.unwrap();
        let (_, holder) = instance.custody.enrollable(&approval.id, phone).await.unwrap();
        // The holder proves identity with a bank card and the code texted to its reserved phone.
        let card = cloudca::custody::ProofMethod::BankCard {
            card: "6222021234567890123".into(),
            reserved_phone: phone.to_string(),
        };
        let purpose = cloudca::custody::ProofPurpose::Enrol;
        let proof = instance.custody.proofs.start(phone, purpose, &approval.id, &holder, card).await.unwrap();
        let code = last_code(&ca, phone);
        let proven = cloudca::custody::ProvenPin { proof_id: &proof.proof_id, code: Some(&code), pin: &pin };
        enrolled.push(instance.custody.enroll(&approval.id, phone, proven, "test").await.unwrap());
    }
    let (credential, issued) = &enrolled[0];
    let blob = credential.key_blob.clone().expect("an enrolled credential has a blob");
    // Two mistyped PINs: the row grows by a byte (failed_attempts 2) and no longer fits its
    // old place in the page, below the second holder's row; the old copy, blob included,
    // becomes free space, which SQLite leaves as it was unless told to zero it.
    let wrong = cloudca::custody::Pin::new("135790").unwrap();
    for _ in 0..2 {
        assert!(instance.custody.check_pin(credential, &wrong, "test").await.is_err());
    }
    let db = std::path::PathBuf::from(
        ca.config.database.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string(),
    );
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    let left = |p: &std::path::Path| std::fs::read(p).is_ok_and(|b| b.windows(blob.len()).any(|w| w == blob));
    checkpoint(&db).await;
    assert!(left(&db), "the blob is in the file before revocation (else this test proves nothing)");

    instance
        .status
        .revoke(&issued.serial, cloudca::status::RevocationReason::KeyCompromise, None, "test")
        .await
        .unwrap();
    let row = instance.store.credential(&credential.id).await.unwrap().unwrap();
    assert!(row.key_blob.is_none() && row.status == "destroyed");
    // At once, with no checkpoint or later write to help: the revocation empties the WAL into
    // the file, where the blob's space was zeroed (the WAL otherwise keeps its old frames).
    assert!(!left(&db), "a revoked holder's blob is still in {}", db.display());
    assert!(!left(&wal), "a revoked holder's blob is still in {}", wal.display());
}

/// Review finding: since the WAL keeps its size (issue 18), a document-sized signing session
/// grows it past the frames normal traffic writes over, and after the purge of finished
/// sessions (attacker review H2: they hold the PDFs) the PDF's last frames stayed in the WAL
/// for as long as no write reached that far again; only a revocation emptied it. A session
/// holding a 6 MB document ends, traffic goes on past a checkpoint, the purge runs: the
/// document's bytes are in neither file.
#[tokio::test(flavor = "multi_thread")]
async fn a_purged_signing_sessions_pdf_leaves_no_copy_in_the_sqlite_files() {
    if postgres_under_test() {
        return;
    }
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let store = &instance.store;
    let note = |kind: &str| {
        cloudca::store::AuditRecord::new(&cloudca::clock::SystemClock, kind, "test", None, serde_json::json!({}))
    };
    // Some traffic first, so the session's frames do not start at the WAL's beginning.
    for _ in 0..20 {
        store.audit(&note("test.traffic")).await.unwrap();
    }
    // The document's last bytes, unique to it, sit in the last frames the session wrote.
    let marker = format!("end-of-document-{}", hex::encode(rand::random::<[u8; 16]>()));
    let document = format!("{}{marker}", "%PDF-1.7 ".repeat(6 * 1024 * 1024 / 9));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let session = cloudca::store::SigningSessionRecord {
        id: "purged-session".into(),
        platform: "p".into(),
        start_token: "t".into(),
        start_secret: vec![0; 32],
        created_ms: (now - 7200) * 1000,
        scan_deadline: now - 7000,
        expires_at: now - 3700,
        request: serde_json::json!({ "pdf": document }).to_string(),
        state: "signed".into(),
        phone: None,
        credential_id: None,
        result: None,
    };
    store.insert_signing_session(&session, &note("signing.opened")).await.unwrap();
    let db = std::path::PathBuf::from(
        ca.config.database.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string(),
    );
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    let left =
        |p: &std::path::Path| std::fs::read(p).is_ok_and(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()));
    assert!(left(&wal) || left(&db), "the document is stored (else this test proves nothing)");
    checkpoint(&db).await;
    for _ in 0..20 {
        store.audit(&note("test.traffic")).await.unwrap();
    }

    assert_eq!(store.purge_signing_sessions(now - 3600, now * 1000).await.unwrap(), 1);
    assert!(store.signing_session("purged-session").await.unwrap().is_none());
    assert!(!left(&db), "the purged document is still in {}", db.display());
    assert!(!left(&wal), "the purged document is still in {}", wal.display());
}

/// `PRAGMA wal_checkpoint(PASSIVE)`, what SQLite's automatic checkpoint runs, on its own
/// connection; asserts that it copied every frame.
async fn checkpoint(db: &std::path::Path) {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut conn).await.unwrap();
    let (busy, log, done): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((busy, log), (0, done), "the checkpoint copied the whole WAL");
    conn.close().await.unwrap();
}
