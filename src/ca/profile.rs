//! Certificate profiles are data (`policies/profiles/*.toml`), so a CA can change validity,
//! key rules or subject layout without a release. A profile names the issuing CA that signs
//! under it, the subject attributes in order (with fixed values and identifier validators), the
//! keys it accepts, and the extensions the certificate gets.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::RequestError;

/// One certificate profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name used by the CLI and API (`org`, `personal`).
    pub name: String,
    /// What the profile is for, shown to operators.
    pub description: String,
    /// The issuing CA (config `ca.issuing[].name`) that signs certificates of this profile.
    pub issuer: String,
    /// Validity in days; the certificate covers exactly this many days.
    #[serde(default = "default_validity")]
    pub validity_days: u32,
    /// Days before expiry in which renewal is allowed.
    #[serde(default = "default_renewal_window")]
    pub renewal_window_days: u32,
    /// Days after expiry during which OCSP keeps answering with the certificate's last status
    /// (then "unknown"); CRL entries follow RFC 5280 instead (see ARCHITECTURE.md).
    #[serde(default = "default_status_after_expiry")]
    pub status_after_expiry_days: u32,
    /// Accepted subject keys: `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`, `rsa-3072`, `rsa-4096`.
    pub allowed_keys: Vec<String>,
    /// Key usage bits: `digitalSignature`, `contentCommitment`, `keyEncipherment`.
    pub key_usage: Vec<String>,
    /// Extended key usages: `clientAuth`, `emailProtection`, `codeSigning` (empty: none).
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// Certificate policy OIDs written into certificatePolicies.
    pub policy_oids: Vec<String>,
    /// Subject attributes, in the order they appear in the certificate.
    pub subject: Vec<SubjectRule>,
}

/// One subject attribute of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRule {
    /// `C`, `O`, `OU`, `CN`, `serialNumber`, `L`, `ST`.
    pub attribute: String,
    /// Whether the CSR must carry it.
    #[serde(default = "yes")]
    pub required: bool,
    /// The only accepted value (e.g. `CN` for the country).
    #[serde(default)]
    pub fixed: Option<String>,
    /// Longest accepted value, in characters.
    #[serde(default = "default_max_len")]
    pub max_length: usize,
    /// Validator for identifiers: `credit-code` (GB 32100-2015), `resident-id` (GB 11643-1999),
    /// `person-id` (a resident ID, or another identity document as `{id-type}:{number}`).
    #[serde(default)]
    pub identifier: Option<IdentifierKind>,
}

/// The identifier validators a subject attribute can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentifierKind {
    /// Unified social credit code of an organisation.
    CreditCode,
    /// Resident identity card number of a person.
    ResidentId,
    /// A person's identifier ([`super::identifiers::person_identifier`]): the resident ID
    /// number, or another identity document's type and number (`passport:E12345678`), each
    /// checked by its own document's rules.
    PersonId,
}

fn default_validity() -> u32 {
    365
}
fn default_renewal_window() -> u32 {
    90
}
fn default_status_after_expiry() -> u32 {
    30
}
fn default_max_len() -> usize {
    64
}
fn yes() -> bool {
    true
}

const KNOWN_ATTRIBUTES: &[&str] = &["C", "O", "OU", "CN", "serialNumber", "L", "ST"];
const KNOWN_KEYS: &[&str] = &["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"];
const KNOWN_KEY_USAGES: &[&str] = &["digitalSignature", "contentCommitment", "keyEncipherment", "keyAgreement"];
const KNOWN_EKUS: &[&str] = &["clientAuth", "emailProtection", "codeSigning"];

impl Profile {
    /// Checks the profile's own consistency (names of attributes, keys, usages, OIDs).
    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: &str, v: &str| Err(format!("profile {}: unknown {what} {v:?}", self.name));
        for rule in &self.subject {
            if !KNOWN_ATTRIBUTES.contains(&rule.attribute.as_str()) {
                return bad("subject attribute", &rule.attribute);
            }
        }
        for k in &self.allowed_keys {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                return bad("key type", k);
            }
        }
        for k in &self.key_usage {
            if !KNOWN_KEY_USAGES.contains(&k.as_str()) {
                return bad("key usage", k);
            }
        }
        for k in &self.extended_key_usage {
            if !KNOWN_EKUS.contains(&k.as_str()) {
                return bad("extended key usage", k);
            }
        }
        if self.policy_oids.is_empty() {
            return Err(format!("profile {}: policy_oids needs at least one OID (RFC 5280 §4.2.1.4)", self.name));
        }
        for oid in &self.policy_oids {
            if parse_oid(oid).is_none() {
                return bad("policy OID", oid);
            }
        }
        if self.validity_days == 0 || self.validity_days > 825 {
            return Err(format!("profile {}: validity_days must be 1..=825", self.name));
        }
        // A renewal adds its term to the old notAfter, up to the window ahead of now.
        if self.validity_days + self.renewal_window_days > 825 {
            return Err(format!(
                "profile {}: validity_days + renewal_window_days must be at most 825 (a renewal inside the window runs that long from now)",
                self.name
            ));
        }
        if !self.subject.iter().any(|r| r.attribute == "CN" && r.required) {
            return Err(format!("profile {}: the subject must require CN", self.name));
        }
        Ok(())
    }

    /// Checks a request's key type against `allowed_keys`.
    pub fn check_key(&self, key: super::SubjectKeyType) -> Result<(), RequestError> {
        let name = key.name();
        if self.allowed_keys.contains(&name) {
            Ok(())
        } else {
            Err(RequestError::KeyType(format!(
                "{name} keys are not allowed by profile {} (allowed: {})",
                self.name,
                self.allowed_keys.join(", ")
            )))
        }
    }
}

/// Parses a dotted OID into arcs (X.660 rules: first arc 0-2; second arc below 40 under 0 and 1).
pub fn parse_oid(text: &str) -> Option<Vec<u64>> {
    let arcs: Option<Vec<u64>> = text.split('.').map(|a| a.parse().ok()).collect();
    arcs.filter(|a| a.len() >= 2 && a[0] <= 2 && (a[0] == 2 || a[1] < 40) && a[1] < u64::MAX / 64)
}

/// Loads every `*.toml` in `DIR/profiles`, validating each.
pub fn load_all(policies_dir: &Path) -> Result<BTreeMap<String, Profile>, String> {
    let dir = policies_dir.join("profiles");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut profiles = BTreeMap::new();
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths.into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let profile: Profile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        profile.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        if profiles.insert(profile.name.clone(), profile).is_some() {
            return Err(format!("{}: duplicate profile name", path.display()));
        }
    }
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let profiles = load_all(&dir).unwrap();
        assert!(profiles.contains_key("org") && profiles.contains_key("personal"), "{:?}", profiles.keys());
        for p in profiles.values() {
            assert_eq!(p.validity_days, 365, "{}", p.name);
            assert!(p.key_usage.contains(&"contentCommitment".to_string()));
        }
    }

    #[test]
    fn a_term_plus_the_renewal_window_beyond_825_days_is_refused() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut p = load_all(&dir).unwrap().remove("org").unwrap();
        p.validity_days = 800;
        p.renewal_window_days = 90;
        let err = p.validate().unwrap_err();
        assert!(err.contains("validity_days + renewal_window_days"), "{err}");
        p.renewal_window_days = 25;
        p.validate().unwrap();
    }

    #[test]
    fn an_unknown_profile_key_is_refused() {
        let text = "name='x'\ndescription='x'\nissuer='org'\nallowed_keys=[]\nkey_usage=[]\npolicy_oids=[]\nsubject=[]\nvalidty_days=3\n";
        let err = toml::from_str::<Profile>(text).unwrap_err();
        assert!(err.to_string().contains("validty_days"));
    }
}
