//! Certificate PINs: Argon2id (m = 19 MiB, t = 2, p = 1, the OWASP minimum) over an HMAC of
//! the PIN keyed by the pepper in the HSM. The stored PHC string alone allows no offline
//! guessing: every guess needs the HSM. PINs live in `Zeroizing` buffers and are never logged.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::hsm::{HsmError, HsmPool};

/// Fewest digits a PIN may have.
pub const MIN_DIGITS: usize = 6;
/// Most digits a PIN may have (bounds the work an attacker can make us do).
pub const MAX_DIGITS: usize = 12;

/// Why a PIN operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Not 6 to 12 digits.
    #[error("a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits")]
    Format,
    /// The HSM could not compute the pepper.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The stored hash is unreadable (never expected; the credential is then unusable).
    #[error("stored PIN hash unreadable: {0}")]
    Stored(String),
    /// A PIN anyone would try first; the text says which rule.
    #[error("this PIN is too easy to guess: {0}; choose another")]
    Weak(&'static str),
}

/// A PIN as received: zeroized when dropped.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Checks the format (digits only, 6 to 12 of them).
    pub fn new(text: &str) -> Result<Pin, PinError> {
        let ok = (MIN_DIGITS..=MAX_DIGITS).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Pin(Zeroizing::new(text.to_string()))).ok_or(PinError::Format)
    }
}

impl Pin {
    /// Refuses the PINs an attacker tries first within the five tries: one digit repeated,
    /// a run up or down (123456, 987654), and the holder's birth date or the end of their ID
    /// number, which is printed in the certificate. `id_number` is the holder's identifier
    /// (a resident ID, or another document as `passport:E12345678`; None for holders we only
    /// know by credit code).
    pub fn check_strength(&self, id_number: Option<&str>) -> Result<(), PinError> {
        let digits = self.0.as_bytes();
        if digits.iter().all(|d| *d == digits[0]) {
            return Err(PinError::Weak("one digit repeated"));
        }
        let steps: Vec<i16> = digits.windows(2).map(|w| i16::from(w[1]) - i16::from(w[0])).collect();
        if steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1) {
            return Err(PinError::Weak("digits in a row"));
        }
        let text = self.0.as_str();
        if id_number.is_some_and(|id| personal_patterns(id).iter().any(|p| text.contains(p.as_str()))) {
            return Err(PinError::Weak("taken from the birth date or ID number"));
        }
        Ok(())
    }
}

/// The digit strings of a resident ID a PIN must not contain: the birth date (digits 7 to 14,
/// YYYYMMDD) as YYMMDD, MMDDYY, DDMMYY and YYYYMMDD, and the ID's last six characters when
/// they are digits. An 18-character foreign permanent resident card (2017, 2023) has the same
/// form, birth date at 7 to 14 included, so the same patterns. Another document's number (a
/// passport's, a permit's, an older permanent resident card's: letters and digits, no birth
/// date) gives its last six characters when they are digits.
fn personal_patterns(id_number: &str) -> Vec<String> {
    use crate::ca::identifiers::{document_of, IdType};
    let (id_type, number) = document_of(id_number.trim());
    let resident_form =
        id_type.is_resident_id() || (id_type == IdType::ForeignPermanentResident && number.chars().count() == 18);
    if !resident_form {
        let tail = number.get(number.len().saturating_sub(6)..).unwrap_or_default();
        let digits = tail.len() == 6 && tail.bytes().all(|b| b.is_ascii_digit());
        return if digits { vec![tail.to_string()] } else { Vec::new() };
    }
    let id = number;
    let mut patterns = Vec::new();
    if id.len() == 18 && id.is_ascii() {
        let birth = &id[6..14];
        if birth.bytes().all(|b| b.is_ascii_digit()) {
            let (yy, mm, dd) = (&birth[2..4], &birth[4..6], &birth[6..8]);
            patterns.extend([
                birth.to_string(),
                format!("{yy}{mm}{dd}"),
                format!("{mm}{dd}{yy}"),
                format!("{dd}{mm}{yy}"),
            ]);
        }
        let tail = &id[12..];
        if tail.bytes().all(|b| b.is_ascii_digit()) {
            patterns.push(tail.to_string());
        }
    }
    patterns
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

fn argon2() -> Argon2<'static> {
    // 19 MiB, 2 passes, 1 lane: the OWASP floor for Argon2id; the constants cannot fail.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The peppered input: HMAC-SHA256(pepper, "cloudca-pin\n" || credential || "\n" || PIN), so a
/// hash copied to another credential does not verify there either.
async fn peppered(hsm: &HsmPool, credential: &str, pin: &Pin) -> Result<Zeroizing<Vec<u8>>, PinError> {
    let mut message = Zeroizing::new(format!("cloudca-pin\n{credential}\n").into_bytes());
    message.extend_from_slice(pin.0.as_bytes());
    Ok(Zeroizing::new(hsm.pepper(&message).await?))
}

/// The PHC string to store for a new PIN. Argon2 runs off the async executor.
pub async fn hash(hsm: &HsmPool, credential: &str, pin: &Pin) -> Result<String, PinError> {
    let input = peppered(hsm, credential, pin).await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2().hash_password(&input, &salt).map(|h| h.to_string()).map_err(|e| PinError::Stored(e.to_string()))
    })
    .await
    .map_err(|e| PinError::Stored(e.to_string()))?
}

/// Whether `pin` matches the stored PHC string (constant time inside argon2).
pub async fn verify(hsm: &HsmPool, credential: &str, pin: &Pin, stored: &str) -> Result<bool, PinError> {
    let input = peppered(hsm, credential, pin).await?;
    let stored = stored.to_string();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| PinError::Stored(e.to_string()))?;
        Ok(argon2().verify_password(&input, &parsed).is_ok())
    })
    .await
    .map_err(|e| PinError::Stored(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_six_to_twelve_digits() {
        assert!(Pin::new("123456").is_ok());
        assert!(Pin::new("123456789012").is_ok());
        for bad in ["12345", "1234567890123", "12345a", "", "１２３４５６", " 123456"] {
            assert!(Pin::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(format!("{:?}", Pin::new("123456").unwrap()), "Pin(<redacted>)");
    }

    #[test]
    fn weak_pins_are_refused() {
        let id = Some("11010519491231002X");
        for weak in [
            "000000",
            "999999",
            "123456",
            "345678",
            "987654",
            "654321",
            "491231",
            "123149",
            "311249",
            "19491231",
            "1949123100",
        ] {
            let pin = Pin::new(weak).unwrap();
            assert!(matches!(pin.check_strength(id), Err(PinError::Weak(_))), "{weak} accepted");
        }
        let id = Some("110105194912310021");
        assert!(matches!(Pin::new("310021").unwrap().check_strength(id), Err(PinError::Weak(_))), "ID tail accepted");
        for fine in ["246810", "135790", "918273", "112358"] {
            assert!(Pin::new(fine).unwrap().check_strength(id).is_ok(), "{fine} refused");
        }
        // Another document: the end of its number, wherever its digits start.
        for (id, tail) in [("passport:E12345678", "345678"), ("taiwan-permit:80651234", "651234")] {
            let pin = Pin::new(tail).unwrap();
            assert!(matches!(pin.check_strength(Some(id)), Err(PinError::Weak(_))), "{id}: tail accepted");
            assert!(Pin::new("246810").unwrap().check_strength(Some(id)).is_ok(), "{id}");
        }
        assert!(Pin::new("246810").unwrap().check_strength(Some("passport:AB12")).is_ok(), "short numbers too");
        // An 18-character permanent resident card carries a birth date as a resident ID does
        // (attacker review of C6); the older 15-character card keeps the tail rule.
        let card = Some("foreign-permanent-resident:93115619850101018X");
        for weak in ["850101", "010185", "19850101"] {
            let pin = Pin::new(weak).unwrap();
            assert!(matches!(pin.check_strength(card), Err(PinError::Weak(_))), "{weak} accepted");
        }
        assert!(Pin::new("246810").unwrap().check_strength(card).is_ok());
        let old = Some("foreign-permanent-resident:USA110081231201");
        assert!(Pin::new("231201").unwrap().check_strength(old).is_err());
        assert!(Pin::new("110081").unwrap().check_strength(old).is_ok(), "no birth date to read there");
        // Without a resident ID (an organisation known by credit code) only the patterns apply.
        assert!(Pin::new("491231").unwrap().check_strength(None).is_ok());
        assert!(Pin::new("111111").unwrap().check_strength(None).is_err());
    }

    #[test]
    fn the_argon2_parameters_meet_the_floor() {
        let a = argon2();
        assert_eq!(a.params().m_cost(), 19 * 1024);
        assert_eq!(a.params().t_cost(), 2);
    }
}
