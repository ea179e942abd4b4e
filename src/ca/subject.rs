//! Judging a request's subject against a profile and building the certificate subject. The
//! issued subject is rebuilt from the profile's rule order with the string types X.509 linters
//! expect (PrintableString for the country and serialNumber, UTF8String for names), never
//! copied byte for byte from the CSR.

use rcgen::{DistinguishedName, DnType, DnValue};

use super::identifiers;
use super::profile::{IdentifierKind, Profile};
use super::RequestError;

/// The subject the certificate will carry.
#[derive(Debug, Clone)]
pub struct Subject {
    /// For rcgen.
    pub name: DistinguishedName,
    /// RFC 4514-style text for storage and display.
    pub display: String,
    /// The identifier (credit code, resident ID or another document's `{id-type}:{number}`), if
    /// the profile has one.
    pub identifier: Option<String>,
}

/// Checks the CSR subject attributes against the profile's rules; names the first problem.
pub fn build(profile: &Profile, requested: &[(String, String)], today: time::Date) -> Result<Subject, RequestError> {
    for (i, (attr, _)) in requested.iter().enumerate() {
        if !profile.subject.iter().any(|r| r.attribute == *attr) {
            return Err(RequestError::Subject(format!("attribute {attr} is not allowed by profile {}", profile.name)));
        }
        if requested[..i].iter().any(|(a, _)| a == attr) {
            return Err(RequestError::Subject(format!("attribute {attr} appears more than once")));
        }
    }
    let mut name = DistinguishedName::new();
    let mut display = Vec::new();
    let mut identifier = None;
    for rule in &profile.subject {
        let value = requested.iter().find(|(a, _)| *a == rule.attribute).map(|(_, v)| v.trim());
        let Some(value) = value else {
            if rule.required {
                return Err(RequestError::Subject(format!("the subject is missing {}", rule.attribute)));
            }
            continue;
        };
        check_value(rule, value)?;
        if let Some(kind) = rule.identifier {
            check_identifier(kind, value, today)?;
            identifier = Some(value.to_string());
        }
        name.push(dn_type(&rule.attribute), dn_value(&rule.attribute, value)?);
        display.push(format!("{}={}", rule.attribute, escape(value)));
    }
    display.reverse(); // RFC 4514 lists the most specific RDN first
    Ok(Subject { name, display: display.join(","), identifier })
}

fn check_value(rule: &super::profile::SubjectRule, value: &str) -> Result<(), RequestError> {
    let attr = &rule.attribute;
    if value.is_empty() {
        return Err(RequestError::Subject(format!("{attr} is empty")));
    }
    if value.chars().count() > rule.max_length {
        return Err(RequestError::Subject(format!("{attr} is longer than {} characters", rule.max_length)));
    }
    if value.chars().any(char::is_control) {
        return Err(RequestError::Subject(format!("{attr} contains control characters")));
    }
    if let Some(fixed) = &rule.fixed {
        if value != fixed {
            return Err(RequestError::Subject(format!("{attr} must be {fixed:?}, not {value:?}")));
        }
    }
    Ok(())
}

fn check_identifier(kind: IdentifierKind, value: &str, today: time::Date) -> Result<(), RequestError> {
    let ymd = (today.year(), today.month() as u32, today.day() as u32);
    let result = match kind {
        IdentifierKind::CreditCode => identifiers::validate_credit_code(value),
        IdentifierKind::ResidentId => identifiers::validate_resident_id(value, ymd),
        IdentifierKind::PersonId => identifiers::validate_person_identifier(value, ymd),
    };
    result.map_err(|e| {
        let what = match kind {
            IdentifierKind::CreditCode => "unified social credit code",
            IdentifierKind::ResidentId => "resident ID number",
            IdentifierKind::PersonId => "resident ID number or {id-type}:{number} of another identity document",
        };
        RequestError::Subject(format!("serialNumber is not a valid {what}: {e}"))
    })
}

fn dn_type(attr: &str) -> DnType {
    match attr {
        "C" => DnType::CountryName,
        "O" => DnType::OrganizationName,
        "OU" => DnType::OrganizationalUnitName,
        "CN" => DnType::CommonName,
        "L" => DnType::LocalityName,
        "ST" => DnType::StateOrProvinceName,
        _ => DnType::CustomDnType(vec![2, 5, 4, 5]), // serialNumber; profiles admit no others
    }
}

fn dn_value(attr: &str, value: &str) -> Result<DnValue, RequestError> {
    if attr == "C" || attr == "serialNumber" {
        let printable = rcgen::string::PrintableString::try_from(value).map_err(|_| {
            RequestError::Subject(format!("{attr} must use letters, digits and basic punctuation only"))
        })?;
        Ok(DnValue::PrintableString(printable))
    } else {
        Ok(DnValue::Utf8String(value.to_string()))
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}
