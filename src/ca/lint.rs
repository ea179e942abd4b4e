//! Pre-signing lint: re-read the exact TBS bytes that will go to the HSM and check that they
//! say what issuance meant (serial, validity, key, mandatory extensions). The expensive
//! external linters (pkilint) run in the test suite on every profile; this cheap check runs on
//! every certificate.

use x509_parser::certificate::TbsCertificate;
use x509_parser::prelude::FromDer;

use super::CaError;

/// Extensions every end-entity certificate must carry.
const REQUIRED: &[(&str, &str)] = &[
    ("2.5.29.15", "keyUsage"),
    ("2.5.29.14", "subjectKeyIdentifier"),
    ("2.5.29.35", "authorityKeyIdentifier"),
    ("2.5.29.31", "cRLDistributionPoints"),
    ("1.3.6.1.5.5.7.1.1", "authorityInfoAccess"),
    ("2.5.29.32", "certificatePolicies"),
];

/// Checks the TBS before it is signed.
pub fn check_tbs(
    tbs: &[u8],
    serial: &[u8],
    spki: &[u8],
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<(), CaError> {
    let fail = |what: String| Err(CaError::Lint(what));
    let (rest, parsed) =
        TbsCertificate::from_der(tbs).map_err(|e| CaError::Lint(format!("TBS does not parse: {e}")))?;
    if !rest.is_empty() {
        return fail("trailing bytes after the TBS".into());
    }
    if parsed.raw_serial() != serial {
        return fail("serial differs from the reserved one".into());
    }
    if parsed.subject_pki.raw != spki {
        return fail("subject public key differs from the CSR's".into());
    }
    let validity = &parsed.validity;
    if validity.not_before.timestamp() != not_before.unix_timestamp()
        || validity.not_after.timestamp() != not_after.unix_timestamp()
    {
        return fail("validity differs from the profile's".into());
    }
    for (oid, name) in REQUIRED {
        if !parsed.extensions().iter().any(|e| e.oid.to_id_string() == *oid) {
            return fail(format!("missing {name} extension"));
        }
    }
    Ok(())
}
