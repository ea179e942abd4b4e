//! Who a client certificate is: `policies/roles.toml` maps certificates (by SHA-256 fingerprint
//! or by subject fields) to back-office roles. Deny by default: no matching rule, no role. A
//! certificate registered for a relying platform gets the `relying-platform` role from the
//! registry (see `platforms`) when no rule names it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use sha2::Digest;

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
    /// Or match every listed subject attribute (`CN`, `O`, `OU`) exactly ...
    #[serde(default)]
    pub subject: BTreeMap<String, String>,
    /// ... of a certificate issued by this CA: hex SHA-256 of the issuing CA's
    /// SubjectPublicKeyInfo. Required with `subject`: subject fields alone would let any anchor
    /// in `tls.client_ca` mint the role (review M10).
    #[serde(default)]
    pub issuer_spki_sha256: Option<String>,
    /// For a `web-front` certificate: the RA channels it serves (review L1). Its orders, order
    /// queries and new orders are confined to them whatever a request body names; empty (the
    /// default) is every channel, for the CA's own web front.
    #[serde(default)]
    pub channels: Vec<String>,
}

impl Rule {
    /// Whether the rule grants its role to this certificate.
    fn matches(&self, caller: &Caller) -> bool {
        match &self.fingerprint {
            Some(f) => normalise(f) == caller.fingerprint,
            None => {
                let issuer = self.issuer_spki_sha256.as_deref().map(normalise);
                issuer.is_some()
                    && issuer.as_deref() == caller.issuer_spki_sha256.as_deref()
                    && self
                        .subject
                        .iter()
                        .all(|(k, v)| !caller.repeated.contains(k) && caller.subject.get(k) == Some(v))
            }
        }
    }

    /// What the rule matches on, for finding rules that can never decide (a later rule with
    /// the same criteria as an earlier one).
    fn criteria(&self) -> String {
        match &self.fingerprint {
            Some(f) => format!("fingerprint {}", normalise(f)),
            None => format!(
                "subject {:?} issuer {}",
                self.subject,
                self.issuer_spki_sha256.as_deref().map(normalise).unwrap_or_default()
            ),
        }
    }
}

/// What the shipped `roles.toml` has where the operator CA's key digest goes; `dev-init` fills
/// it in, a production set-up writes the digest `cloudca ceremony` prints.
pub const OPERATOR_CA_PLACEHOLDER: &str = "@OPERATOR_CA_SPKI_SHA256@";

/// Hex digests compare without colons and case.
fn normalise(hex: &str) -> String {
    hex.replace(':', "").to_ascii_lowercase()
}

fn is_sha256_hex(text: &str) -> bool {
    let text = normalise(text);
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
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
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// SHA-256 of the client certificate, hex: the actor in audit events.
    pub fingerprint: String,
    /// Subject attributes of the client certificate.
    pub subject: BTreeMap<String, String>,
    /// Subject attributes that appear more than once: a rule naming one never matches, as
    /// which value counts would be a guess.
    pub repeated: std::collections::BTreeSet<String>,
    /// Hex SHA-256 of the SubjectPublicKeyInfo of the CA whose key signed the certificate,
    /// found among the trust anchors and the chain the client sent (see `api::tls`).
    pub issuer_spki_sha256: Option<String>,
    /// The role the rules grant, if any.
    pub role: Option<Role>,
    /// The registered relying platform this certificate belongs to, if any.
    pub platform: Option<String>,
    /// The RA channels the matching rule confines a web front to; empty: every channel.
    pub channels: Vec<String>,
}

impl Caller {
    /// Whether this caller may act in RA channel `name` (review L1).
    pub fn serves_channel(&self, name: &str) -> bool {
        self.channels.is_empty() || self.channels.iter().any(|c| c == name)
    }
}

impl Roles {
    /// Loads `DIR/roles.toml`; every rule must name a fingerprint or at least one subject field.
    pub fn load(policies_dir: &Path) -> Result<Roles, String> {
        let path = policies_dir.join("roles.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let roles: Roles = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        roles.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(roles)
    }

    /// Refuses rule sets that could grant a role by accident: a rule that matches every
    /// certificate, subject fields without the issuing CA, a malformed digest, or a rule with
    /// the same criteria as an earlier one (it can never decide, so what it says is ambiguous).
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeMap::new();
        for (i, r) in self.rule.iter().enumerate() {
            let n = i + 1;
            match (&r.fingerprint, r.subject.is_empty()) {
                (None, true) => return Err(format!("rule {n} matches every certificate; name a fingerprint or subject fields")),
                (Some(_), false) => return Err(format!("rule {n}: name a fingerprint or subject fields, not both")),
                (Some(f), true) if !is_sha256_hex(f) => {
                    return Err(format!("rule {n}: fingerprint must be a hex SHA-256 (64 digits)"))
                }
                (None, false) => match &r.issuer_spki_sha256 {
                    None => {
                        return Err(format!(
                            "rule {n}: subject rules must name issuer_spki_sha256 (the issuing CA's key), or any CA in tls.client_ca could grant {}",
                            r.role.name()
                        ))
                    }
                    Some(h) if !is_sha256_hex(h) => {
                        return Err(format!("rule {n}: issuer_spki_sha256 must be a hex SHA-256 (64 digits), not {h:?}"))
                    }
                    Some(_) => {}
                },
                _ => {}
            }
            if !r.channels.is_empty() && r.role != Role::WebFront {
                return Err(format!("rule {n}: channels confine a web-front certificate, not {}", r.role.name()));
            }
            if let Some(first) = seen.insert(r.criteria(), n) {
                return Err(format!("rule {n} has the same criteria as rule {first}: ambiguous, remove one"));
            }
        }
        Ok(())
    }

    /// The role for a certificate, or None (deny).
    pub fn role_of(&self, caller: &Caller) -> Option<Role> {
        self.rule.iter().find(|r| r.matches(caller)).map(|r| r.role)
    }

    /// Gives the caller the role and the channels of the first rule that matches (none: no
    /// role, no channels).
    pub fn grant(&self, caller: &mut Caller) {
        let rule = self.rule.iter().find(|r| r.matches(caller));
        caller.role = rule.map(|r| r.role);
        caller.channels = rule.map(|r| r.channels.clone()).unwrap_or_default();
    }
}

/// Reads the fingerprint and subject of a client certificate whose chain the TLS layer has
/// verified, and the role the rules give it. `issuer_spki_sha256` names the key that signed it
/// (None: not found, so no subject rule matches).
pub fn identify(der: &[u8], issuer_spki_sha256: Option<String>, roles: &Roles) -> Caller {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let fingerprint = hex::encode(sha2::Sha256::digest(der));
    let mut subject = BTreeMap::new();
    let mut repeated = std::collections::BTreeSet::new();
    if let Ok((_, cert)) = X509Certificate::from_der(der) {
        for attr in cert.tbs_certificate.subject.iter_attributes() {
            let name = crate::ca::csr::attribute_name(&attr.attr_type().to_id_string());
            match attr.as_str() {
                Ok(value) if !subject.contains_key(&name) => {
                    subject.insert(name, value.to_string());
                }
                _ => {
                    repeated.insert(name);
                }
            }
        }
    }
    let mut caller =
        Caller { fingerprint, subject, repeated, issuer_spki_sha256, role: None, platform: None, channels: Vec::new() };
    roles.grant(&mut caller);
    caller
}

/// Hex SHA-256 of a CA certificate's SubjectPublicKeyInfo: what `issuer_spki_sha256` names.
pub fn spki_sha256(certificate: &[u8]) -> Option<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(certificate).ok()?;
    Some(hex::encode(sha2::Sha256::digest(cert.public_key().raw)))
}

/// Hex SHA-256 of the SubjectPublicKeyInfo of whichever of `candidates` (trust anchors, then
/// the intermediates the client sent) names the certificate's issuer and whose key verifies
/// its signature. Only a key that really signed the certificate counts: an issuer name or an
/// authority key identifier can be copied by any CA.
pub fn issuer_spki_sha256<'a>(der: &[u8], candidates: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    candidates.into_iter().find_map(|candidate| {
        let (_, ca) = X509Certificate::from_der(candidate).ok()?;
        let spki = ca.public_key();
        (ca.subject() == cert.issuer() && cert.verify_signature(Some(spki)).is_ok())
            .then(|| hex::encode(sha2::Sha256::digest(spki.raw)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    fn caller(pairs: &[(&str, &str)], issuer: Option<&str>) -> Caller {
        let mut subject = BTreeMap::new();
        let mut repeated = std::collections::BTreeSet::new();
        for (k, v) in pairs {
            if subject.insert(k.to_string(), v.to_string()).is_some() {
                repeated.insert(k.to_string());
            }
        }
        Caller {
            fingerprint: "00".into(),
            subject,
            repeated,
            issuer_spki_sha256: issuer.map(str::to_string),
            role: None,
            platform: None,
            channels: Vec::new(),
        }
    }

    fn roles(text: &str) -> Result<Roles, String> {
        let roles: Roles = toml::from_str(text).map_err(|e| e.to_string())?;
        roles.check().map(|_| roles)
    }

    #[test]
    fn the_shipped_roles_need_the_operator_ca_filled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let refused = Roles::load(&dir).unwrap_err();
        assert!(refused.contains("issuer_spki_sha256"), "{refused}");
        let text = std::fs::read_to_string(dir.join("roles.toml")).unwrap().replace(OPERATOR_CA_PLACEHOLDER, ISSUER);
        let roles = roles(&text).unwrap();
        assert_eq!(roles.role_of(&caller(&[("O", "cloudca Development")], Some(ISSUER))), None, "no OU, no role");
        let auditor = [("O", "cloudca Development"), ("OU", "auditor")];
        assert_eq!(roles.role_of(&caller(&auditor, Some(ISSUER))), Some(Role::Auditor));
        let other = "bb".repeat(32);
        assert_eq!(roles.role_of(&caller(&auditor, Some(&other))), None, "another CA's certificate");
        assert_eq!(roles.role_of(&caller(&auditor, None)), None, "issuer unknown");
    }

    #[test]
    fn a_repeated_attribute_matches_no_rule() {
        let text = format!(
            "[[rule]]\nrole = \"operator\"\nsubject = {{ OU = \"operator\" }}\nissuer_spki_sha256 = \"{ISSUER}\"\n"
        );
        let roles = roles(&text).unwrap();
        assert_eq!(roles.role_of(&caller(&[("OU", "operator")], Some(ISSUER))), Some(Role::Operator));
        let twice = caller(&[("OU", "reviewer"), ("OU", "operator")], Some(ISSUER));
        assert_eq!(roles.role_of(&twice), None);
    }

    #[test]
    fn ambiguous_or_unpinned_rule_sets_are_refused_naming_the_rule() {
        let unpinned = roles("[[rule]]\nrole = \"operator\"\nsubject = { OU = \"operator\" }\n").unwrap_err();
        assert!(unpinned.contains("rule 1") && unpinned.contains("issuer_spki_sha256"), "{unpinned}");
        let bad = roles("[[rule]]\nrole = \"operator\"\nsubject = { OU = \"x\" }\nissuer_spki_sha256 = \"zz\"\n");
        assert!(bad.unwrap_err().contains("hex SHA-256"));
        let fp = "ab".repeat(32);
        let twice = format!("[[rule]]\nrole = \"operator\"\nfingerprint = \"{fp}\"\n[[rule]]\nrole = \"auditor\"\nfingerprint = \"{}\"\n", fp.to_uppercase());
        let twice = roles(&twice).unwrap_err();
        assert!(twice.contains("rule 2") && twice.contains("rule 1"), "{twice}");
        let both = format!("[[rule]]\nrole = \"operator\"\nfingerprint = \"{fp}\"\nsubject = {{ OU = \"x\" }}\n");
        assert!(roles(&both).unwrap_err().contains("not both"));
    }
}
