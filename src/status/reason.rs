//! RFC 5280 revocation reasons, limited to the ones the CA/Browser Forum allows for subscriber
//! certificates. "unspecified" is never written as a code: the entry simply has no reasonCode.

use std::str::FromStr;

/// Why a certificate was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// No reason given (no reasonCode extension).
    Unspecified,
    /// The private key is known or suspected to be compromised.
    KeyCompromise,
    /// The subject's name or other information changed.
    AffiliationChanged,
    /// Replaced by a new certificate (renewal, information change, re-issue).
    Superseded,
    /// No longer needed.
    CessationOfOperation,
    /// The CA withdrew the right to use the certificate.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The CRLReason code, or None for unspecified (written as no code).
    pub fn code(self) -> Option<u8> {
        match self {
            RevocationReason::Unspecified => None,
            RevocationReason::KeyCompromise => Some(1),
            RevocationReason::AffiliationChanged => Some(3),
            RevocationReason::Superseded => Some(4),
            RevocationReason::CessationOfOperation => Some(5),
            RevocationReason::PrivilegeWithdrawn => Some(9),
        }
    }

    /// From a stored code (NULL = unspecified).
    pub fn from_code(code: Option<i64>) -> Option<Self> {
        Some(match code {
            None | Some(0) => RevocationReason::Unspecified,
            Some(1) => RevocationReason::KeyCompromise,
            Some(3) => RevocationReason::AffiliationChanged,
            Some(4) => RevocationReason::Superseded,
            Some(5) => RevocationReason::CessationOfOperation,
            Some(9) => RevocationReason::PrivilegeWithdrawn,
            _ => return None,
        })
    }

    /// The RFC 5280 name.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
}

impl FromStr for RevocationReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let all = [
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn,
        ];
        all.into_iter().find(|r| r.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            format!(
                "unknown revocation reason {s:?} (use one of: {})",
                all.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_has_no_code_and_names_round_trip() {
        assert_eq!(RevocationReason::Unspecified.code(), None);
        assert_eq!("superseded".parse::<RevocationReason>(), Ok(RevocationReason::Superseded));
        assert_eq!(RevocationReason::from_code(Some(9)), Some(RevocationReason::PrivilegeWithdrawn));
        assert!("certificateHold".parse::<RevocationReason>().unwrap_err().contains("keyCompromise"));
    }
}
