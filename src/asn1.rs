//! The little glue between the RustCrypto DER stack (`der`, `x509-cert`) and the rest of the
//! project that no crate provides: times from `time::OffsetDateTime`, and encoding of values
//! whose encoding cannot fail. Every structure itself is a `der`/`x509-cert`/`cms` type; this
//! module writes no tag or length by hand.

use der::asn1::GeneralizedTime;
use der::{DateTime, Encode};
use x509_cert::time::Time;

/// Whole seconds since the epoch as a `der::DateTime` (DER times carry no fractions). Years
/// before 1970 or after 9999 cannot be written; they are clamped to the ends of that range,
/// which no CA date reaches (validated in config and profiles).
fn date_time(at: time::OffsetDateTime) -> DateTime {
    let seconds = at.unix_timestamp().clamp(0, 253_402_300_799);
    // Invariant: the clamp keeps the value inside what DateTime represents (1970..=9999).
    DateTime::from_unix_duration(std::time::Duration::from_secs(seconds as u64)).unwrap_or(DateTime::INFINITY)
}

/// A GeneralizedTime, which OCSP and invalidity dates always use.
pub fn generalized_time(at: time::OffsetDateTime) -> GeneralizedTime {
    GeneralizedTime::from_date_time(date_time(at))
}

/// An X.509 `Time`: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
pub fn x509_time(at: time::OffsetDateTime) -> Time {
    Time::from(date_time(at))
}

/// The DER of a value built by this process. Encoding a well-formed `der` value only fails when
/// a length exceeds `der::Length::MAX` (256 MiB), which nothing this project builds in one value
/// comes near (a CRL is laid out by `status::crl`, not encoded as one value).
pub fn encode(value: &impl Encode) -> Vec<u8> {
    value.to_der().expect("invariant: values built here are far below der's 256 MiB length limit")
}

/// Appends the DER of a value to `out` without an intermediate vector.
pub fn encode_into(value: &impl Encode, out: &mut Vec<u8>) {
    value.encode_to_vec(out).expect("invariant: values built here are far below der's 256 MiB length limit");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_switch_to_generalized_after_2049() {
        let late = x509_time(time::macros::datetime!(2050-01-01 0:00 UTC));
        assert!(matches!(late, Time::GeneralTime(_)));
        let t = encode(&x509_time(time::macros::datetime!(2026-11-24 1:02:03 UTC)));
        assert_eq!(&t[..2], &[0x17, 13]);
        assert_eq!(&t[2..], b"261124010203Z");
        let g = encode(&generalized_time(time::macros::datetime!(2026-11-24 1:02:03.5 UTC)));
        assert_eq!(&g[2..], b"20261124010203Z");
    }
}
