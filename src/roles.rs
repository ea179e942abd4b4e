//! Who a client certificate is: `policies/roles.toml` maps certificates (by SHA-256 fingerprint
//! or by subject fields) to back-office roles. Deny by default: no matching rule, no role. A
//! certificate registered for a relying platform gets the `relying-platform` role from the
//! registry (see `platforms`) when no rule names it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Back-office and machine roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reviews applications.
    Reviewer,
    /// Operates the CA (issue, revoke, CRL rebuild).
    Operator,
    /// Reads and verifies the audit log.
    Auditor,
    /// The web front (RA API).
    WebFront,
    /// A relying platform (signing sessions).
    RelyingPlatform,
}

impl Role {
    /// Every role, in the order documentation lists them.
    pub const ALL: [Role; 5] = [Role::Reviewer, Role::Operator, Role::Auditor, Role::WebFront, Role::RelyingPlatform];

    /// The name `roles.toml`, the API and certificates (OU) use.
    pub fn name(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::WebFront => "web-front",
            Role::RelyingPlatform => "relying-platform",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            format!("unknown role {s:?}: one of reviewer, operator, auditor, web-front, relying-platform")
        })
    }
}

/// One mapping rule; the first that matches decides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The role granted.
    pub role: Role,
    /// Match this exact certificate (hex SHA-256 of the DER, colons and case ignored).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Or match every listed subject attribute (`CN`, `O`, `OU`) exactly.
    #[serde(default)]
    pub subject: BTreeMap<String, String>,
}

/// The whole mapping.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// Rules in order.
    #[serde(default)]
    pub rule: Vec<Rule>,
}

/// The authenticated client of a mutual-TLS connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// SHA-256 of the client certificate, hex: the actor in audit events.
    pub fingerprint: String,
    /// Subject attributes of the client certificate.
    pub subject: BTreeMap<String, String>,
    /// The role the rules grant, if any.
    pub role: Option<Role>,
    /// The registered relying platform this certificate belongs to, if any.
    pub platform: Option<String>,
}

impl Roles {
    /// Loads `DIR/roles.toml`; every rule must name a fingerprint or at least one subject field.
    pub fn load(policies_dir: &Path) -> Result<Roles, String> {
        let path = policies_dir.join("roles.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let roles: Roles = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, r) in roles.rule.iter().enumerate() {
            if r.fingerprint.is_none() && r.subject.is_empty() {
                return Err(format!(
                    "{}: rule {} matches every certificate; name a fingerprint or subject fields",
                    path.display(),
                    i + 1
                ));
            }
        }
        Ok(roles)
    }

    /// The role for a certificate, or None (deny).
    pub fn role_of(&self, fingerprint: &str, subject: &BTreeMap<String, String>) -> Option<Role> {
        let normalise = |f: &str| f.replace(':', "").to_ascii_lowercase();
        self.rule
            .iter()
            .find(|r| match &r.fingerprint {
                Some(f) => normalise(f) == fingerprint,
                None => r.subject.iter().all(|(k, v)| subject.get(k) == Some(v)),
            })
            .map(|r| r.role)
    }
}

/// Reads the fingerprint and subject of a client certificate.
pub fn identify(der: &[u8], roles: &Roles) -> Caller {
    use sha2::Digest;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let fingerprint = hex::encode(sha2::Sha256::digest(der));
    let mut subject = BTreeMap::new();
    if let Ok((_, cert)) = X509Certificate::from_der(der) {
        for attr in cert.tbs_certificate.subject.iter_attributes() {
            if let Ok(value) = attr.as_str() {
                subject.insert(crate::ca::csr::attribute_name(&attr.attr_type().to_id_string()), value.to_string());
            }
        }
    }
    let role = roles.role_of(&fingerprint, &subject);
    Caller { fingerprint, subject, role, platform: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_roles_parse_and_deny_by_default() {
        let roles = Roles::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
        let mut subject = std::collections::BTreeMap::new();
        subject.insert("O".to_string(), "cloudca Development".to_string());
        assert_eq!(roles.role_of("00", &subject), None, "no OU, no role");
        subject.insert("OU".to_string(), "auditor".to_string());
        assert_eq!(roles.role_of("00", &subject), Some(Role::Auditor));
    }
}
