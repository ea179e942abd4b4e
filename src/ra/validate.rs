//! Field validation for application forms, with messages a person can act on.
//!
//! Every validator takes the JSON field name to report (e.g. `"company.credit_code"`) and the raw
//! input, and returns the normalised value or a [`FieldError`]. The error carries a stable `code`
//! that the web front translates (zh-CN/en) and an English `message` that says what to fix.
//!
//! Privacy: messages never echo identity or bank card numbers back; at most they name the expected
//! check character. Use [`mask`] when an identifier has to appear in logs or on screen.

use time::{Date, Month};

use crate::ca::identifiers::{self, IdType};

/// One field's problem: which field, a stable code the web front translates (zh-CN/en), and an English message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON field name the problem belongs to, so the front can highlight it.
    pub field: String,
    /// Stable machine code, e.g. `"credit_code.check_digit"`; the front translates it.
    pub code: &'static str,
    /// Plain-English explanation of what to fix.
    pub message: String,
}

impl FieldError {
    /// Builds an error; private so every code stays listed in this module.
    fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        FieldError { field: field.to_string(), code, message: message.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

// ---------------------------------------------------------------------------------------------
// Unified social credit code (GB 32100-2015)
// ---------------------------------------------------------------------------------------------

/// Validates a unified social credit code (统一社会信用代码, GB 32100-2015) and returns it trimmed
/// and upper-cased, so that applications are rejected before a typo reaches manual review. The
/// rules are the CA's own (`ca::identifiers`): what the RA accepts, issuance accepts.
pub fn credit_code(field: &str, s: &str) -> Result<String, FieldError> {
    let code = s.trim().to_uppercase();
    identifiers::validate_credit_code(&code).map_err(|e| identifier_error(field, Identifier::CreditCode, e))?;
    Ok(code)
}

// ---------------------------------------------------------------------------------------------
// Resident identity card number (GB 11643-1999)
// ---------------------------------------------------------------------------------------------

/// Validates an 18-digit resident identity card number (居民身份证号码, GB 11643-1999) against
/// `today`, and returns it trimmed with a lowercase `x` check character upper-cased. The rules
/// are the CA's own (`ca::identifiers`, including the province code): an order never carries an
/// ID number that issuance would refuse.
pub fn resident_id(field: &str, s: &str, today: Date) -> Result<String, FieldError> {
    let id = s.trim().to_uppercase();
    let ymd = (today.year(), u32::from(u8::from(today.month())), u32::from(today.day()));
    identifiers::validate_resident_id(&id, ymd).map_err(|e| identifier_error(field, Identifier::ResidentId, e))?;
    Ok(id)
}

/// Validates the number of an identity document of type `id_type`: the resident ID by
/// [`resident_id`]; the others (upper-cased, spaces removed) by their shape, by the CA's own
/// rules ([`identifiers::validate_document`]), so issuance accepts what the RA accepted.
pub fn id_number(field: &str, id_type: IdType, s: &str, today: Date) -> Result<String, FieldError> {
    if id_type.is_resident_id() {
        return resident_id(field, s, today);
    }
    let number: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    let ymd = (today.year(), u32::from(u8::from(today.month())), u32::from(today.day()));
    match identifiers::validate_document(id_type, &number, ymd) {
        Ok(()) => Ok(number),
        Err(identifiers::IdentifierError::ResidentIdNumber(_)) => Err(FieldError::new(
            field,
            "id_number.resident_id",
            "this is a mainland resident ID number: choose the resident ID as the document",
        )),
        Err(_) => Err(FieldError::new(field, "id_number.format", "this is not the number of that kind of document")),
    }
}

/// Validates a person's document number typed as an order query's subject ([`id_number`]),
/// refusing an organisation's credit code given with a document type: a credit code takes no
/// `id_type`, and read as a passport it would name nobody and answer as if it did (attacker
/// review of C6 services: bad input is a clear 422, not a silent "sent if on file").
pub fn query_document(field: &str, id_type: IdType, s: &str, today: Date) -> Result<String, FieldError> {
    let number = id_number(field, id_type, s, today)?;
    if !id_type.is_resident_id() && identifiers::validate_credit_code(&number).is_ok() {
        return Err(FieldError::new(
            "id_type",
            "id_type.credit_code",
            "this is an organisation's credit code: leave the document type out",
        ));
    }
    Ok(number)
}

/// Which identifier a [`identifiers::IdentifierError`] is about.
#[derive(Clone, Copy)]
enum Identifier {
    CreditCode,
    ResidentId,
}

/// The CA's identifier error as a field error with a code the web front translates.
fn identifier_error(field: &str, which: Identifier, e: identifiers::IdentifierError) -> FieldError {
    use identifiers::IdentifierError as E;
    let (code, message): (&'static str, String) = match (which, &e) {
        (Identifier::CreditCode, E::WrongLength { found, .. }) => {
            ("credit_code.length", format!("the credit code should be 18 characters long, but has {found}"))
        }
        (Identifier::CreditCode, E::BadCheckDigit { expected, .. }) => (
            "credit_code.check_digit",
            format!("the credit code's last character should be {expected}: check for a typing mistake"),
        ),
        (Identifier::CreditCode, _) => ("credit_code.charset", format!("the credit code {e}")),
        (Identifier::ResidentId, E::BadBirthDate(_)) => (
            "resident_id.birth_date",
            "the ID number's birth date is not a real date, or lies in the future or before 1900".to_string(),
        ),
        (Identifier::ResidentId, E::UnknownRegion(_)) => ("resident_id.region", format!("the ID number's {e}")),
        (Identifier::ResidentId, E::BadCheckDigit { expected, .. }) => (
            "resident_id.check_digit",
            format!("the ID number's last character should be {expected}: check for a typing mistake"),
        ),
        (Identifier::ResidentId, _) => (
            "resident_id.length",
            "the ID number should be 18 characters: 17 digits followed by a digit or X".to_string(),
        ),
    };
    FieldError::new(field, code, message)
}

/// Reads the birth date (characters 7 to 14, YYYYMMDD) from a resident ID, so that age rules can
/// be applied without re-parsing; `None` if the ID is too short or the date does not exist.
pub fn birth_date(id: &str) -> Option<Date> {
    let ymd = id.get(6..14)?;
    if !ymd.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = ymd[0..4].parse().ok()?;
    let month: u8 = ymd[4..6].parse().ok()?;
    let day: u8 = ymd[6..8].parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

// ---------------------------------------------------------------------------------------------
// Mainland mobile numbers
// ---------------------------------------------------------------------------------------------

/// Validates a mainland China mobile number written the ways people write it (spaces, hyphens,
/// `+86` / `86` / `0086` prefix) and returns it in E.164 form (`+8613800138000`), so SMS delivery
/// and duplicate checks see one spelling.
pub fn mainland_mobile(field: &str, s: &str) -> Result<String, FieldError> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let national = strip_country_code(&compact);
    let b = national.as_bytes();
    let ok = b.len() == 11 && b.iter().all(u8::is_ascii_digit) && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    if !ok {
        return Err(FieldError::new(
            field,
            "mobile.invalid",
            "the mobile number should be 11 digits starting with 13 to 19, optionally preceded by +86",
        ));
    }
    Ok(format!("+86{national}"))
}

/// Removes a leading `+86`, `0086` or `86` when what remains could be an 11-digit number.
fn strip_country_code(s: &str) -> &str {
    for prefix in ["+86", "0086", "86"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            if rest.len() == 11 {
                return rest;
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Bank card numbers
// ---------------------------------------------------------------------------------------------

/// Validates a bank card number (12 to 19 digits, spaces allowed, Luhn check) and returns the
/// digits only, so that payment details with a typo are caught on the form.
pub fn bank_card(field: &str, s: &str) -> Result<String, FieldError> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            "bank_card.format",
            "the bank card number should be 12 to 19 digits (spaces are fine)",
        ));
    }
    if !luhn_ok(&digits) {
        return Err(FieldError::new(
            field,
            "bank_card.check_digit",
            "the bank card number is not valid: check each digit for a typing mistake",
        ));
    }
    Ok(digits)
}

/// Luhn (mod 10) check over an ASCII digit string.
fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match i % 2 {
                0 => d,
                _ if d * 2 > 9 => d * 2 - 9,
                _ => d * 2,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------------------------
// E-mail
// ---------------------------------------------------------------------------------------------

/// Pragmatically validates an e-mail address and returns it trimmed with the domain lower-cased
/// (the local part is left alone: it may be case-sensitive), so notifications reach a real mailbox.
pub fn email(field: &str, s: &str) -> Result<String, FieldError> {
    let addr = s.trim();
    let invalid = || {
        FieldError::new(field, "email.invalid", "the e-mail address should look like name@example.com: check for typos")
    };
    if addr.chars().count() > 254 || addr.matches('@').count() != 1 {
        return Err(invalid());
    }
    let (local, domain) = addr.split_once('@').ok_or_else(invalid)?;
    if !local_part_ok(local) || !domain_ok(domain) {
        return Err(invalid());
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Non-empty, at most 64 characters, no whitespace or control characters.
fn local_part_ok(local: &str) -> bool {
    !local.is_empty() && local.chars().count() <= 64 && !local.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// At least two labels of `[A-Za-z0-9-]` not starting or ending with `-`; a TLD of 2+ letters.
fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld = labels.last().copied().unwrap_or("");
    labels.len() >= 2 && labels.iter().all(label_ok) && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

// ---------------------------------------------------------------------------------------------
// Names and display
// ---------------------------------------------------------------------------------------------

/// Validates a person's or organisation's name: trimmed, 1 to `max_chars` characters (not bytes,
/// so Chinese names count correctly), no control characters. Returns the trimmed name.
pub fn name(field: &str, s: &str, max_chars: usize) -> Result<String, FieldError> {
    let n = s.trim();
    let count = n.chars().count();
    if count == 0 {
        return Err(FieldError::new(field, "name.empty", "the name is required"));
    }
    if count > max_chars {
        return Err(FieldError::new(
            field,
            "name.too_long",
            format!("the name should be at most {max_chars} characters, but has {count}"),
        ));
    }
    if n.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "name.invalid",
            "the name contains invisible control characters (such as a line break): please retype it",
        ));
    }
    Ok(n.to_string())
}

/// The random code shown on the order-query page was not typed as shown (or was used or
/// expired): a new one is shown.
pub fn random_code_wrong() -> FieldError {
    FieldError::new("answer", "random_code.wrong", "type the random code shown on the page; a new one is shown")
}

/// Masks an identifier for logs and for showing it back to people: keeps the first 3 and last 4
/// characters and replaces the middle with `*`; strings of 7 characters or fewer become all `*`.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n <= 7 {
        return "*".repeat(n);
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(n - 7));
    out.extend(&chars[n - 4..]);
    out
}

/// Whether two names are the same for a bank or a registry: spaces ignored, full-width
/// brackets and letters as their ASCII forms, ASCII letters in any case (a company's name is
/// written both ways: 某某（北京）有限公司 and 某某(北京)有限公司).
pub fn same_name(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '（' => '(',
                '）' => ')',
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                _ => c,
            })
            .flat_map(char::to_lowercase)
            .collect()
    }
    norm(a) == norm(b)
}

/// A bank account number: 6 to 32 digits (spaces and hyphens as written are dropped).
pub fn account_number(field: &str, s: &str) -> Result<String, FieldError> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if !(6..=32).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(field, "account_number.format", "the account number should be 6 to 32 digits"));
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2025 - 06 - 01);

    fn code<T: std::fmt::Debug>(r: Result<T, FieldError>) -> &'static str {
        r.expect_err("expected an error").code
    }

    #[test]
    fn credit_code_valid_examples() {
        assert_eq!(credit_code("c", "91350100M000100Y43").unwrap(), "91350100M000100Y43");
        assert_eq!(credit_code("c", "91110000802100433B").unwrap(), "91110000802100433B");
    }

    #[test]
    fn credit_code_normalises_case_and_whitespace() {
        assert_eq!(credit_code("c", "  91350100m000100y43 \n").unwrap(), "91350100M000100Y43");
        assert_eq!(credit_code("c", "91110000802100433b").unwrap(), "91110000802100433B");
    }

    #[test]
    fn credit_code_errors() {
        let e = credit_code("company.credit_code", "91350100M000100Y4").unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("company.credit_code", "credit_code.length"));
        assert_eq!(code(credit_code("c", "91350100M000100I43")), "credit_code.charset");
        assert_eq!(code(credit_code("c", "91350100M000100O43")), "credit_code.charset");
        assert_eq!(code(credit_code("c", "C1350100M000100Y43")), "credit_code.charset");
        assert_eq!(code(credit_code("c", "9135A100M000100Y43")), "credit_code.charset");
        let e = credit_code("c", "91350100M000100Y44").unwrap_err();
        assert_eq!(e.code, "credit_code.check_digit");
        assert_eq!(e.message, "the credit code's last character should be 3: check for a typing mistake");
    }

    #[test]
    fn resident_id_valid_and_lowercase_x() {
        assert_eq!(resident_id("id", "11010519491231002X", TODAY).unwrap(), "11010519491231002X");
        assert_eq!(resident_id("id", " 11010519491231002x ", TODAY).unwrap(), "11010519491231002X");
        assert_eq!(birth_date("11010519491231002X"), Some(date!(1949 - 12 - 31)));
    }

    #[test]
    fn resident_id_errors() {
        assert_eq!(code(resident_id("id", "11010519491231002", TODAY)), "resident_id.length");
        assert_eq!(code(resident_id("id", "1101051949123100AX", TODAY)), "resident_id.length");
        let e = resident_id("id", "110105194912310021", TODAY).unwrap_err();
        assert_eq!(e.code, "resident_id.check_digit");
        assert!(e.message.contains("should be X"));
        assert!(!e.message.contains("110105"), "message must not echo the ID");
        assert_eq!(code(resident_id("id", "110105194913310020", TODAY)), "resident_id.birth_date");
        // Other documents (a legal representative's, handbook B8) by their shape.
        let other = |t, n: &str| id_number("id", t, n, TODAY).map_err(|e| e.code);
        assert_eq!(other(IdType::Passport, "e 1234 5678"), Ok("E12345678".to_string()));
        assert_eq!(other(IdType::Passport, "E1234-5678"), Err("id_number.format"));
        assert_eq!(other(IdType::HkMacaoPermit, "H12345678"), Ok("H12345678".to_string()));
        assert_eq!(other(IdType::HkMacaoPermit, "K12345678"), Err("id_number.format"));
        assert_eq!(other(IdType::TaiwanPermit, "12345678"), Ok("12345678".to_string()));
        assert_eq!(other(IdType::TaiwanPermit, "1234567"), Err("id_number.format"));
        assert_eq!(other(IdType::ForeignPermanentResident, "USA110081231201"), Ok("USA110081231201".to_string()));
        assert_eq!(other(IdType::ForeignPermanentResident, "911101199003074338"), Ok("911101199003074338".into()));
        assert_eq!(other(IdType::ForeignPermanentResident, "E12345678"), Err("id_number.format"));
        assert_eq!(other(IdType::ForeignPermanentResident, "911101199003074330"), Err("id_number.format"));
        assert_eq!(other(IdType::Passport, "11010519491231002x"), Err("id_number.resident_id"));
        assert_eq!(other(IdType::ResidentId, "E12345678"), Err("resident_id.length"), "the resident ID's own rules");
        // A province code the CA does not know: issuance would refuse it, so the RA does too
        // (the RA used to check the digits only and let such an order reach an officer).
        let body = "99010519491231002";
        let unknown = format!("{body}{}", identifiers::resident_id_check_char(body).unwrap());
        assert_eq!(code(resident_id("id", &unknown, TODAY)), "resident_id.region");
    }

    /// Builds a resident ID with the right check character around a birth date.
    fn id_with_birth(ymd: &str) -> String {
        let body = format!("110105{ymd}002");
        format!("{body}{}", identifiers::resident_id_check_char(&body).unwrap())
    }

    #[test]
    fn resident_id_leap_days() {
        assert!(resident_id("id", &id_with_birth("20000229"), TODAY).is_ok());
        assert_eq!(code(resident_id("id", &id_with_birth("19000229"), TODAY)), "resident_id.birth_date");
        assert_eq!(code(resident_id("id", &id_with_birth("20230229"), TODAY)), "resident_id.birth_date");
    }

    #[test]
    fn resident_id_birth_date_bounds() {
        assert_eq!(code(resident_id("id", &id_with_birth("20250602"), TODAY)), "resident_id.birth_date");
        assert!(resident_id("id", &id_with_birth("20250601"), TODAY).is_ok());
        assert_eq!(code(resident_id("id", &id_with_birth("18991231"), TODAY)), "resident_id.birth_date");
        assert!(resident_id("id", &id_with_birth("19000101"), TODAY).is_ok());
    }

    #[test]
    fn mobile_variants() {
        for s in ["13800138000", "+8613800138000", "86 138 0013 8000", "138-0013-8000", "0086 13800138000"] {
            assert_eq!(mainland_mobile("m", s).unwrap(), "+8613800138000", "{s}");
        }
        assert_eq!(mainland_mobile("m", "+86 199-1234-5678").unwrap(), "+8619912345678");
    }

    #[test]
    fn mobile_errors() {
        for s in ["", "12800138000", "1380013800", "138001380001", "+1 13800138000", "1380013800a", "23800138000"] {
            assert_eq!(code(mainland_mobile("m", s)), "mobile.invalid", "{s}");
        }
    }

    #[test]
    fn bank_card_luhn() {
        assert_eq!(bank_card("b", "4111111111111111").unwrap(), "4111111111111111");
        assert_eq!(bank_card("b", "4111 1111 1111 1111").unwrap(), "4111111111111111");
        assert_eq!(code(bank_card("b", "4111111111111112")), "bank_card.check_digit");
        assert_eq!(code(bank_card("b", "4111111111211111")), "bank_card.check_digit");
    }

    #[test]
    fn bank_card_format() {
        assert_eq!(code(bank_card("b", "41111111111")), "bank_card.format");
        assert_eq!(code(bank_card("b", "41111111111111111111")), "bank_card.format");
        assert_eq!(code(bank_card("b", "4111-1111-1111-1111")), "bank_card.format");
        let e = bank_card("b", "4111111111111112").unwrap_err();
        assert!(!e.message.contains("4111"), "message must not echo the card");
    }

    #[test]
    fn email_valid_and_normalised() {
        assert_eq!(email("e", "  Zhang.San@Example.COM ").unwrap(), "Zhang.San@example.com");
        assert_eq!(email("e", "a+b@mail.example-1.cn").unwrap(), "a+b@mail.example-1.cn");
    }

    #[test]
    fn email_invalid() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_all = format!("a@{}.com", "b".repeat(250));
        for s in [
            "",
            "plain",
            "a@@example.com",
            "a@b@example.com",
            "@example.com",
            "a b@example.com",
            "a@localhost",
            "a@example.c",
            "a@example.12",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@example..com",
            long_local.as_str(),
            long_all.as_str(),
        ] {
            assert_eq!(code(email("e", s)), "email.invalid", "{s}");
        }
    }

    #[test]
    fn name_rules() {
        assert_eq!(name("n", "  张三  ", 2).unwrap(), "张三");
        assert_eq!(code(name("n", "   ", 10)), "name.empty");
        assert_eq!(code(name("n", "张三丰", 2)), "name.too_long");
        assert_eq!(code(name("n", "张\n三", 10)), "name.invalid");
    }

    #[test]
    fn mask_examples() {
        assert_eq!(mask("+8613800138000"), "+86*******8000");
        assert_eq!(mask("11010519491231002X"), "110***********002X");
        assert_eq!(mask("1234567"), "*******");
        assert_eq!(mask("12345678"), "123*5678");
        assert_eq!(mask(""), "");
        assert_eq!(mask("北京市朝阳区建国路"), "北京市**区建国路");
    }

    #[test]
    fn field_error_serialises() {
        let e = email("contact.email", "x").unwrap_err();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["field"], "contact.email");
        assert_eq!(v["code"], "email.invalid");
    }
}
