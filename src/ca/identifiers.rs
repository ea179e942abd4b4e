//! Validation of the Chinese national identifiers that cloudca puts in the
//! subject `serialNumber` of organisation and personal certificates, and of the
//! other identity documents a person may give ([`IdType`]).
//!
//! A personal certificate's `serialNumber` is the person's identifier
//! ([`person_identifier`]): the bare resident ID number, or for any other
//! document its type's name, a colon and the number (`passport:E12345678`),
//! so no number of one document can be read as another's (a 2017 foreign
//! permanent resident card has 18 digits, as a resident ID does).
//!
//! Relying parties match on that identifier, so one mistyped character binds
//! the key to somebody else, and once a serial is reserved or a certificate
//! signed the only cure is revocation. Every identifier is therefore checked
//! here first, and the error says exactly what is wrong so it can be fixed.

/// Characters of a unified social credit code, in value order (GB 32100-2015).
/// I, O, Z, S and V are left out: too easily misread as 1, 0, 2, 5 and U.
const CREDIT_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Registration authority codes (position 1 of a credit code).
const CREDIT_AUTHORITIES: &str = "123456789ABNY";
/// Weights of positions 1..=17 of a credit code: 3^(i-1) mod 31.
const CREDIT_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
/// Weights of positions 1..=17 of a resident ID: 2^(18-i) mod 11 (GB 11643-1999).
const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Resident ID check character, indexed by the weighted sum mod 11.
const RESIDENT_CHECK: &[u8; 11] = b"10X98765432";
/// Both identifiers are 18 characters long.
const LENGTH: usize = 18;

/// Why an identifier was refused. Positions are 1-based, counted as a person
/// reading the number would count them. Messages are lowercase (house style)
/// and are meant to be shown to the person who entered the value.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentifierError {
    /// Wrong number of characters (a digit dropped or doubled).
    #[error("must be {expected} characters, found {found}")]
    WrongLength {
        /// Required length.
        expected: usize,
        /// Length entered.
        found: usize,
    },
    /// A character that can never appear at this position.
    #[error("character '{character}' at position {position} is not allowed")]
    InvalidCharacter {
        /// 1-based position.
        position: usize,
        /// The character entered.
        character: char,
    },
    /// A lowercase letter whose uppercase form is allowed. Refused rather
    /// than fixed silently, so what is signed is exactly what was entered.
    #[error("character '{character}' at position {position} must be uppercase")]
    NotUppercase {
        /// 1-based position.
        position: usize,
        /// The character entered.
        character: char,
    },
    /// The check character disagrees with the other 17: almost always a typo.
    #[error("check digit is '{found}' but the number's digits give '{expected}'")]
    BadCheckDigit {
        /// What the other characters give.
        expected: char,
        /// What was entered.
        found: char,
    },
    /// Resident ID birth date not real, before 1900 or in the future; carries
    /// the complete explanation.
    #[error("{0}")]
    BadBirthDate(String),
    /// The first two digits of a resident ID are not a province-level code.
    #[error("region code {0} is not a known province-level region")]
    UnknownRegion(String),
    /// Not the number of that kind of document (its shape is all that can be checked).
    #[error("is not the number of a {0}")]
    DocumentFormat(&'static str),
    /// A mainland resident ID number given as another document's: one person, one number,
    /// one form (attacker review of C6), so it is given as the resident ID.
    #[error("is a mainland resident ID number, not the number of a {0}")]
    ResidentIdNumber(&'static str),
}

/// Identity documents a person may give (handbook B8, C6: 证件类型). Only the mainland
/// resident ID is known to carriers and the face check; banks' four-element checks take the
/// document's type with its number.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IdType {
    /// 居民身份证.
    #[default]
    ResidentId,
    /// 护照.
    Passport,
    /// 港澳居民来往内地通行证.
    HkMacaoPermit,
    /// 台湾居民来往大陆通行证.
    TaiwanPermit,
    /// 外国人永久居留身份证.
    ForeignPermanentResident,
}

impl IdType {
    /// Every type, the resident ID first.
    pub const ALL: [IdType; 5] = [
        IdType::ResidentId,
        IdType::Passport,
        IdType::HkMacaoPermit,
        IdType::TaiwanPermit,
        IdType::ForeignPermanentResident,
    ];

    /// Whether this is the mainland resident ID (the default, not written out).
    pub fn is_resident_id(&self) -> bool {
        *self == IdType::ResidentId
    }

    /// The name in JSON and in a certificate's `serialNumber` prefix (`passport`).
    pub fn name(self) -> &'static str {
        match self {
            IdType::ResidentId => "resident-id",
            IdType::Passport => "passport",
            IdType::HkMacaoPermit => "hk-macao-permit",
            IdType::TaiwanPermit => "taiwan-permit",
            IdType::ForeignPermanentResident => "foreign-permanent-resident",
        }
    }

    /// The type of this name.
    pub fn parse(name: &str) -> Option<IdType> {
        IdType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The document's name as printed on the form.
    pub fn label(self) -> &'static str {
        match self {
            IdType::ResidentId => "居民身份证 Resident ID",
            IdType::Passport => "护照 Passport",
            IdType::HkMacaoPermit => "港澳居民来往内地通行证 Mainland travel permit (HK/Macao)",
            IdType::TaiwanPermit => "台湾居民来往大陆通行证 Mainland travel permit (Taiwan)",
            IdType::ForeignPermanentResident => "外国人永久居留身份证 Foreign permanent resident ID",
        }
    }

    /// What the document is, in an error message.
    fn what(self) -> &'static str {
        match self {
            IdType::ResidentId => "resident ID",
            IdType::Passport => "passport",
            IdType::HkMacaoPermit => "mainland travel permit for Hong Kong and Macao residents",
            IdType::TaiwanPermit => "mainland travel permit for Taiwan residents",
            IdType::ForeignPermanentResident => "foreign permanent resident ID card",
        }
    }
}

/// Checks the number of a document of type `id_type` in its one canonical form (upper case, no
/// spaces; the RA normalises what people type, the CA refuses anything else, so one number
/// never reaches a certificate in two forms): the resident ID by [`validate_resident_id`]
/// against `today`; an 18-character foreign permanent resident card by its GB 11643 check
/// character ([`validate_permanent_resident_card`]); the others by their shape, since only
/// their issuing authorities can check them. A number that is a valid resident ID is refused
/// as any other document but the permanent resident card (whose numbers share that form).
/// The one place for these rules: the RA's forms and issuance both call it.
pub fn validate_document(id_type: IdType, number: &str, today: (i32, u32, u32)) -> Result<(), IdentifierError> {
    if id_type.is_resident_id() {
        return validate_resident_id(number, today);
    }
    if let Some((position, character)) = (1..).zip(number.chars()).find(|(_, c)| c.is_ascii_lowercase()) {
        return Err(IdentifierError::NotUppercase { position, character });
    }
    let shape: fn(&str) -> bool = match id_type {
        IdType::ResidentId => return validate_resident_id(number, today),
        IdType::ForeignPermanentResident if number.len() == LENGTH => {
            return validate_permanent_resident_card(number);
        }
        // ICAO 9303: up to 9 characters in the MRZ, but national numbers run longer; 5 to 20.
        IdType::Passport => {
            |n| (5..=20).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }
        // H or M, then 8 (or, since 2013 cards, 10) digits.
        IdType::HkMacaoPermit => |n| {
            matches!(n.as_bytes().first(), Some(b'H' | b'M'))
                && matches!(n.len(), 9 | 11)
                && n[1..].bytes().all(|b| b.is_ascii_digit())
        },
        // 8 digits (or 10 on older cards).
        IdType::TaiwanPermit => |n| matches!(n.len(), 8 | 10) && n.bytes().all(|b| b.is_ascii_digit()),
        // Older cards (the 18-character ones are checked above): 3 letters and 12 digits.
        IdType::ForeignPermanentResident => |n| {
            let b = n.as_bytes();
            b.len() == 15 && b[..3].iter().all(u8::is_ascii_uppercase) && b[3..].iter().all(u8::is_ascii_digit)
        },
    };
    if !shape(number) {
        return Err(IdentifierError::DocumentFormat(id_type.what()));
    }
    if validate_resident_id(number, today).is_ok() {
        return Err(IdentifierError::ResidentIdNumber(id_type.what()));
    }
    Ok(())
}

/// Checks an 18-character foreign permanent resident card number (2017 and 2023 cards): a 9,
/// 16 digits (the issuing province, the nationality, the birth date at positions 7 to 14, a
/// sequence) and the GB 11643 check character of a resident ID over the first 17, `X` for 10.
/// The birth date is what the weak-PIN rule reads (`custody::pin`).
pub fn validate_permanent_resident_card(number: &str) -> Result<(), IdentifierError> {
    let chars = check_chars(number, |i, c| c.is_ascii_digit() || (i == LENGTH && c == 'X'))?;
    if chars[0] != '9' {
        return Err(IdentifierError::DocumentFormat(IdType::ForeignPermanentResident.what()));
    }
    let expected = resident_id_check_char(&number[..17]).expect("17 digits");
    check_digit(expected, chars[17])
}

/// A person's identifier as a certificate's `serialNumber` and the RA's subject key carry it:
/// the resident ID number as it is, any other document as `{type}:{number}`.
pub fn person_identifier(id_type: IdType, number: &str) -> String {
    if id_type.is_resident_id() {
        number.to_string()
    } else {
        format!("{}:{number}", id_type.name())
    }
}

/// The document type and number of a [`person_identifier`]; a value without a known type's
/// prefix is a resident ID number.
pub fn document_of(identifier: &str) -> (IdType, &str) {
    match identifier.split_once(':') {
        Some((prefix, number)) => match IdType::parse(prefix) {
            Some(t) if !t.is_resident_id() => (t, number),
            _ => (IdType::ResidentId, identifier),
        },
        None => (IdType::ResidentId, identifier),
    }
}

/// Checks a [`person_identifier`]: the resident ID's rules for a bare number, the document's
/// for a prefixed one. Call before reserving.
pub fn validate_person_identifier(identifier: &str, today: (i32, u32, u32)) -> Result<(), IdentifierError> {
    let (id_type, number) = document_of(identifier);
    validate_document(id_type, number, today)
}

/// Computes the check character of a unified social credit code from its
/// first 17 characters. Returns `None` unless `first17` is exactly 17
/// characters from the credit code alphabet. Used to build valid samples.
pub fn credit_code_check_char(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.chars().zip(CREDIT_WEIGHTS) {
        sum += CREDIT_ALPHABET.find(c)? as u32 * w; // ASCII alphabet: byte index == value
    }
    let value = (31 - sum % 31) % 31; // 31 maps to 0
    CREDIT_ALPHABET.chars().nth(value as usize)
}

/// Checks a unified social credit code (GB 32100-2015): 18 uppercase
/// characters from the 31-character alphabet, the last being the check
/// character over the first 17. The organisation-code check digit inside
/// positions 9-17 (GB 11714) is deliberately not enforced. Call before reserving.
pub fn validate_credit_code(code: &str) -> Result<(), IdentifierError> {
    // GB 32100-2015: position 1 is the registration authority, 3 to 8 the administrative
    // division (digits); every other position is any character of the alphabet.
    let chars = check_chars(code, |position, c| match position {
        1 => CREDIT_AUTHORITIES.contains(c),
        3..=8 => c.is_ascii_digit(),
        _ => CREDIT_ALPHABET.contains(c),
    })?;
    let expected = credit_code_check_char(&code[..17]).expect("17 alphabet characters");
    check_digit(expected, chars[17])
}

/// Computes the check character of a resident ID number from its first 17
/// digits. Returns `None` unless `first17` is exactly 17 ASCII digits.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let weighted = first17.bytes().zip(RESIDENT_WEIGHTS);
    let sum: u32 = weighted.map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(RESIDENT_CHECK[(sum % 11) as usize] as char)
}

/// Checks a resident ID number (GB 11643-1999): 17 digits plus a check digit
/// or uppercase 'X', a known province code, and a real birth date
/// (YYYYMMDD at positions 7-14) from 1900 up to `today` (year, month, day).
/// `today` is a parameter so callers own the clock. Call before reserving.
pub fn validate_resident_id(id: &str, today: (i32, u32, u32)) -> Result<(), IdentifierError> {
    let chars = check_chars(id, |i, c| c.is_ascii_digit() || (i == LENGTH && c == 'X'))?;
    // Every character is ASCII from here on, so byte slicing is safe.
    let num = |range: std::ops::Range<usize>| id[range].parse::<u32>().expect("digits");
    if !is_known_province(num(0..2)) {
        return Err(IdentifierError::UnknownRegion(id[..2].to_string()));
    }
    let (date, y, m, d) = (&id[6..14], num(6..10) as i32, num(10..12), num(12..14));
    let problem = if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        Some("is not a real date")
    } else if y < 1900 {
        Some("is before 1900")
    } else if (y, m, d) > today {
        Some("is in the future")
    } else {
        None
    };
    if let Some(problem) = problem {
        let message = format!("birth date {date} {problem}");
        return Err(IdentifierError::BadBirthDate(message));
    }
    let expected = resident_id_check_char(&id[..17]).expect("17 digits");
    check_digit(expected, chars[17])
}

/// Insists on exactly 18 characters, each accepted by `ok(position, c)`
/// (1-based). A lowercase letter whose uppercase form would be accepted is
/// reported as such, so the person knows how to fix it.
fn check_chars(s: &str, ok: impl Fn(usize, char) -> bool) -> Result<Vec<char>, IdentifierError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != LENGTH {
        let (expected, found) = (LENGTH, chars.len());
        return Err(IdentifierError::WrongLength { expected, found });
    }
    for (position, character) in (1..).zip(chars.iter().copied()) {
        if ok(position, character) {
            continue;
        }
        let upper = character.to_ascii_uppercase();
        if upper != character && ok(position, upper) {
            return Err(IdentifierError::NotUppercase { position, character });
        }
        return Err(IdentifierError::InvalidCharacter { position, character });
    }
    Ok(chars)
}

fn check_digit(expected: char, found: char) -> Result<(), IdentifierError> {
    if expected != found {
        return Err(IdentifierError::BadCheckDigit { expected, found });
    }
    Ok(())
}

fn is_known_province(code: u32) -> bool {
    matches!(code, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82 | 83 | 91)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (i32, u32, u32) = (2024, 6, 1);
    const CREDIT: &str = "91350100M000100Y43";
    const RESIDENT: &str = "11010519491231002X";

    /// What the person would be told: "ok" or the error message.
    fn told(result: Result<(), IdentifierError>) -> String {
        result.map_or_else(|e| e.to_string(), |()| "ok".into())
    }

    fn credit(code: &str) -> String {
        told(validate_credit_code(code))
    }

    fn resident(id: &str) -> String {
        told(validate_resident_id(id, TODAY))
    }

    /// Appends the correct check digit, so only `first17` is under test.
    fn resident17(first17: &str) -> String {
        let check = resident_id_check_char(first17).unwrap();
        resident(&format!("{first17}{check}"))
    }

    #[test]
    fn valid_credit_codes_are_accepted() {
        assert_eq!(credit(CREDIT), "ok");
        assert_eq!(credit_code_check_char("91350100M000100Y4"), Some('3'));
        assert_eq!(credit_code_check_char("91350100M00010000"), Some('P'));
        assert_eq!(credit("91350100M00010000P"), "ok");
    }

    #[test]
    fn credit_code_with_wrong_check_digit_is_refused() {
        let err = validate_credit_code("91350100M000100Y44").unwrap_err();
        assert!(matches!(err, IdentifierError::BadCheckDigit { .. }));
        let message = "check digit is '4' but the number's digits give '3'";
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn identifiers_of_wrong_length_are_refused() {
        assert_eq!(credit("91350100M000100Y"), "must be 18 characters, found 16");
        assert_eq!(credit(""), "must be 18 characters, found 0");
        let message = "must be 18 characters, found 19";
        assert_eq!(resident("11010519491231002X0"), message);
    }

    #[test]
    fn credit_code_with_forbidden_letter_is_refused() {
        for bad in ['I', 'O', 'Z', 'S', 'V', 'i', '-', 'é'] {
            let message = format!("character '{bad}' at position 9 is not allowed");
            assert_eq!(credit(&format!("91350100{bad}000100Y43")), message);
        }
        assert_eq!(credit_code_check_char("91350100I000100Y4"), None);
        assert_eq!(credit_code_check_char("91350100M000100Y"), None);
    }

    #[test]
    fn credit_code_in_lowercase_is_refused_with_a_hint() {
        let message = "character 'm' at position 9 must be uppercase";
        assert_eq!(credit("91350100m000100Y43"), message);
    }

    #[test]
    fn valid_resident_ids_are_accepted() {
        assert_eq!(resident(RESIDENT), "ok");
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        assert_eq!(resident("440301199003071230"), "ok");
        assert_eq!(resident17("11010520000229001"), "ok", "2000 is a leap year");
        assert_eq!(resident17("11010520240601001"), "ok", "born today");
    }

    #[test]
    fn resident_id_with_wrong_check_digit_is_refused() {
        let message = "check digit is '3' but the number's digits give 'X'";
        assert_eq!(resident("110105194912310023"), message);
    }

    #[test]
    fn resident_id_with_letters_other_than_final_uppercase_x_is_refused() {
        let message = "character 'x' at position 18 must be uppercase";
        assert_eq!(resident("11010519491231002x"), message);
        let message = "character 'X' at position 17 is not allowed";
        assert_eq!(resident("1101051949123100X2"), message);
    }

    #[test]
    fn resident_id_born_on_feb_29_of_non_leap_year_is_refused() {
        let message = "birth date 20010229 is not a real date";
        assert_eq!(resident17("11010520010229001"), message);
        let message = "birth date 19000229 is not a real date"; // centuries need 400
        assert_eq!(resident17("11010519000229001"), message);
        let message = "birth date 19491332 is not a real date";
        assert_eq!(resident17("11010519491332002"), message);
    }

    #[test]
    fn resident_id_born_in_the_future_or_before_1900_is_refused() {
        let message = "birth date 20240602 is in the future";
        assert_eq!(resident17("11010520240602001"), message);
        let message = "birth date 18991231 is before 1900";
        assert_eq!(resident17("11010518991231001"), message);
    }

    fn document(id_type: IdType, number: &str) -> String {
        told(validate_document(id_type, number, TODAY))
    }

    /// Attacker review of C6: the back office's API and CLI do not normalise, so the CA
    /// refuses every form but the canonical one, and a resident ID number as another document.
    #[test]
    fn a_document_number_has_one_form_and_is_never_a_resident_id_number() {
        assert_eq!(document(IdType::Passport, "E12345678"), "ok");
        assert_eq!(document(IdType::Passport, "e12345678"), "character 'e' at position 1 must be uppercase");
        let message = "character 'x' at position 18 must be uppercase";
        assert_eq!(told(validate_person_identifier("passport:11010519491231002x", TODAY)), message);
        assert_eq!(document(IdType::Passport, "E 12345678"), "is not the number of a passport");
        let message = "is a mainland resident ID number, not the number of a passport";
        assert_eq!(document(IdType::Passport, RESIDENT), message);
        assert_eq!(told(validate_person_identifier(&format!("passport:{RESIDENT}"), TODAY)), message);
        // Same shape, not a valid resident ID (its check digit is wrong): a passport may be it.
        assert_eq!(document(IdType::Passport, "110105194912310023"), "ok");
    }

    /// 2017 and 2023 cards carry a resident ID's check character (X for 10) and birth date.
    #[test]
    fn an_18_character_permanent_resident_card_has_a_check_character() {
        let card = IdType::ForeignPermanentResident;
        assert_eq!(document(card, "911101199003074338"), "ok", "the same form as a resident ID, allowed");
        assert_eq!(document(card, "93115619850101018X"), "ok");
        let message = "check digit is '0' but the number's digits give '8'";
        assert_eq!(document(card, "911101199003074330"), message);
        assert_eq!(document(card, "93115619850101018x"), "character 'x' at position 18 must be uppercase");
        assert_eq!(document(card, "811101199003074338"), "is not the number of a foreign permanent resident ID card");
        assert_eq!(document(card, "USA110081231201"), "ok", "older cards: the shape only");
        assert_eq!(document(card, "usa110081231201"), "character 'u' at position 1 must be uppercase");
    }

    #[test]
    fn a_person_identifier_names_its_document_and_is_checked_by_that_documents_rules() {
        assert_eq!(person_identifier(IdType::ResidentId, RESIDENT), RESIDENT);
        assert_eq!(person_identifier(IdType::Passport, "E12345678"), "passport:E12345678");
        // A 2017 foreign permanent resident card looks like a resident ID: the prefix tells.
        let card = "911101199003074338";
        let foreign = person_identifier(IdType::ForeignPermanentResident, card);
        assert_eq!(document_of(&foreign), (IdType::ForeignPermanentResident, card));
        assert_eq!(document_of(card), (IdType::ResidentId, card));
        assert_eq!(told(validate_person_identifier(&foreign, TODAY)), "ok");
        assert_eq!(told(validate_person_identifier("taiwan-permit:12345678", TODAY)), "ok");
        assert_eq!(told(validate_person_identifier(RESIDENT, TODAY)), "ok");
        let message = "is not the number of a mainland travel permit for Hong Kong and Macao residents";
        assert_eq!(told(validate_person_identifier("hk-macao-permit:K12345678", TODAY)), message);
        // An unknown or resident-id prefix is no document: the whole value is a resident ID.
        assert_eq!(document_of("resident-id:1"), (IdType::ResidentId, "resident-id:1"));
        assert!(validate_person_identifier("visa:E12345678", TODAY).is_err());
        assert!(validate_person_identifier(&format!("resident-id:{RESIDENT}"), TODAY).is_err());
    }

    #[test]
    fn resident_id_from_unknown_region_is_refused() {
        let err = validate_resident_id(&format!("99{}", &RESIDENT[2..]), TODAY);
        assert_eq!(err, Err(IdentifierError::UnknownRegion("99".into())));
        for code in ["10", "16", "20", "47", "72", "84", "90", "92"] {
            let message = format!("region code {code} is not a known province-level region");
            assert_eq!(resident17(&format!("{code}010519491231002")), message);
        }
        for code in ["11", "15", "37", "46", "65", "71", "81", "83", "91"] {
            assert_eq!(resident17(&format!("{code}010519491231002")), "ok");
        }
    }
}
