//! The audit certificate pinned outside the database (review H6, issue 16 point 3). The audit
//! key's certificate lives in the `authorities` table, which a database writer can change; with
//! their own certificate there, checkpoints they sign themselves would verify. So
//! `cloudca.toml` names the certificate (`[audit] certificate_sha256`), written by the ceremony
//! and `dev-init` (or `cloudca audit pin` for an instance made before the pin existed), and
//! every reader of the audit key checks the row against it.

use std::path::Path;

use sha2::Digest;

use crate::store::{AuthorityRecord, Store, StoreError};

/// The authorities row of the audit key.
const AUDIT_ROLE: &str = "audit";

/// Why the audit certificate cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The database holds an audit certificate but the configuration pins none.
    #[error(
        "audit.certificate_sha256 is not set: pin the audit certificate with `cloudca audit pin --fingerprint HEX` \
         (the fingerprint the ceremony printed); the database holds {found}"
    )]
    Unpinned {
        /// Fingerprint of the certificate in the database.
        found: String,
    },
    /// The database's audit certificate is not the pinned one.
    #[error("audit.certificate_sha256 pins {pinned}, but the database's audit certificate is {found}: the authorities row was changed")]
    Mismatch {
        /// The pinned fingerprint.
        pinned: String,
        /// The database's.
        found: String,
    },
    /// A certificate is pinned but the database has no audit key.
    #[error("audit.certificate_sha256 pins {pinned}, but the database holds no audit certificate: the authorities row was removed")]
    Missing {
        /// The pinned fingerprint.
        pinned: String,
    },
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The configuration file could not be updated.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Hex SHA-256 of a certificate's DER, as the pin and the ceremony print it.
pub fn fingerprint(certificate: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(certificate))
}

/// Lowercase hex without colons: how pins compare.
pub fn normalise(fingerprint: &str) -> String {
    fingerprint.replace(':', "").to_ascii_lowercase()
}

/// The audit key's row, if the hierarchy has one, checked against the pin: the only way code
/// should read it.
pub async fn audit_authority(store: &Store, pinned: Option<&str>) -> Result<Option<AuthorityRecord>, PinError> {
    let record = store.authorities().await?.into_iter().find(|a| a.role == AUDIT_ROLE);
    check(record.as_ref().map(|r| r.certificate.as_slice()), pinned)?;
    Ok(record)
}

/// The rule: a certificate needs a pin that names it; a pin needs the certificate.
pub fn check(certificate: Option<&[u8]>, pinned: Option<&str>) -> Result<(), PinError> {
    match (certificate.map(fingerprint), pinned.map(normalise)) {
        (None, None) => Ok(()),
        (Some(found), None) => Err(PinError::Unpinned { found }),
        (None, Some(pinned)) => Err(PinError::Missing { pinned }),
        (Some(found), Some(pinned)) if found != pinned => Err(PinError::Mismatch { pinned, found }),
        (Some(_), Some(_)) => Ok(()),
    }
}

/// After a ceremony: writes the audit certificate's fingerprint into the configuration file,
/// unless it is already pinned there. A pin naming another certificate is refused, never
/// overwritten (that is the swap the pin exists to catch). Returns the fingerprint written.
pub async fn pin_after_ceremony(
    store: &Store,
    config_path: &Path,
    pinned: Option<&str>,
) -> Result<Option<String>, PinError> {
    let Some(record) = store.authorities().await?.into_iter().find(|a| a.role == AUDIT_ROLE) else {
        return Ok(None);
    };
    let found = fingerprint(&record.certificate);
    match pinned.map(normalise) {
        Some(p) if p == found => Ok(None),
        Some(p) => Err(PinError::Mismatch { pinned: p, found }),
        None => {
            write(config_path, &found)?;
            Ok(Some(found))
        }
    }
}

/// Sets `[audit] certificate_sha256` in the configuration file, keeping everything else
/// (comments, order) as it is; the file is replaced atomically with its mode kept.
pub fn write(config_path: &Path, fingerprint: &str) -> Result<(), PinError> {
    let failed = |reason: String| PinError::Config { path: config_path.display().to_string(), reason };
    let text = std::fs::read_to_string(config_path).map_err(|e| failed(e.to_string()))?;
    let mut document: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| failed(e.to_string()))?;
    let audit = document.entry("audit").or_insert_with(toml_edit::table);
    let audit = audit.as_table_mut().ok_or_else(|| failed("`audit` is not a table".into()))?;
    audit["certificate_sha256"] = toml_edit::value(normalise(fingerprint));
    let temporary = config_path.with_extension("toml.pinning");
    let permissions = std::fs::metadata(config_path).map_err(|e| failed(e.to_string()))?.permissions();
    std::fs::write(&temporary, document.to_string()).map_err(|e| failed(e.to_string()))?;
    std::fs::set_permissions(&temporary, permissions).map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&temporary, config_path).map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_and_the_row_must_agree() {
        let cert = b"certificate".as_slice();
        let pin = fingerprint(cert);
        assert!(check(None, None).is_ok());
        assert!(check(Some(cert), Some(&pin.to_uppercase())).is_ok(), "case and colons do not matter");
        assert!(matches!(check(Some(cert), None), Err(PinError::Unpinned { .. })));
        assert!(matches!(check(None, Some(&pin)), Err(PinError::Missing { .. })));
        assert!(matches!(check(Some(b"another".as_slice()), Some(&pin)), Err(PinError::Mismatch { .. })));
    }

    #[test]
    fn writing_the_pin_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloudca.toml");
        std::fs::write(&path, "# operators' comment\ndata_dir = \"data\"\n\n[audit]\nwitness_file = \"w.log\"\n")
            .unwrap();
        write(&path, "AB:CD").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# operators' comment\ndata_dir = \"data\""), "{text}");
        assert!(text.contains("witness_file = \"w.log\"") && text.contains("certificate_sha256 = \"abcd\""), "{text}");
    }
}
