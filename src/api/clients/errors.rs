//! How custody, login and signing errors become problem documents on the `api` listener.

use axum::http::StatusCode;

use crate::api::problem::Problem;
use crate::custody::CustodyError;
use crate::mobile::LoginError;
use crate::signing::SigningError;

/// Custody errors: the holder can act on each title.
pub fn custody(e: CustodyError) -> Problem {
    let title = e.to_string();
    match e {
        CustodyError::Invalid(_)
        | CustodyError::Pin(crate::custody::pin::PinError::Format)
        | CustodyError::Pin(crate::custody::pin::PinError::Weak(_)) => Problem::bad_request(title),
        CustodyError::NotFound | CustodyError::ProofNotFound => Problem::not_found(title),
        CustodyError::ApprovalUsed
        | CustodyError::NotUsable(_)
        | CustodyError::NotLocked
        | CustodyError::Conflict
        | CustodyError::ProofPending => Problem::new(StatusCode::CONFLICT, title),
        CustodyError::ApprovalExpired | CustodyError::ProofExpired => Problem::new(StatusCode::GONE, title),
        CustodyError::NoHolder | CustodyError::FaceNeedsResidentId => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, title)
        }
        CustodyError::TooManyProofs => Problem::new(StatusCode::TOO_MANY_REQUESTS, title),
        CustodyError::WrongPin { .. } | CustodyError::IdentityRefused | CustodyError::UnlocksUsed => {
            Problem::new(StatusCode::FORBIDDEN, title)
        }
        CustodyError::Locked => Problem::new(StatusCode::LOCKED, title),
        CustodyError::Provider(cause) => {
            Problem::provider(&cause, "the identity check is unavailable; try again later")
        }
        CustodyError::Code(e) => login(e),
        CustodyError::Ca(crate::ca::CaError::Request(r)) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, r.to_string())
        }
        CustodyError::Hsm(h) | CustodyError::Pin(crate::custody::pin::PinError::Hsm(h)) => Problem::unavailable(&h),
        CustodyError::Ca(crate::ca::CaError::Hsm(h)) => Problem::unavailable(&h),
        other => Problem::internal(&other),
    }
}

/// Login errors.
pub fn login(e: LoginError) -> Problem {
    let title = e.to_string();
    match e {
        LoginError::Invalid(_) => Problem::bad_request(title),
        LoginError::RateLimited(refusal) => crate::api::throttle::refused(&refusal),
        LoginError::BadCode => Problem::new(StatusCode::UNAUTHORIZED, title),
        LoginError::Sms(cause) => Problem::provider(&cause, "the SMS could not be sent; try again later"),
        LoginError::Hsm(h) => Problem::unavailable(&h),
        LoginError::Store(s) => Problem::internal(&s),
    }
}

/// Seal and organisation errors.
pub fn seal(e: crate::seals::SealError) -> Problem {
    use crate::seals::SealError;
    let title = e.to_string();
    match e {
        SealError::Invalid(_) => Problem::bad_request(title),
        SealError::NotAllowed(_) => Problem::new(StatusCode::FORBIDDEN, title),
        SealError::NotFound => Problem::not_found(title),
        SealError::Store(s) => Problem::internal(&s),
    }
}

/// Signing errors.
pub fn signing(e: SigningError) -> Problem {
    let title = e.to_string();
    match e {
        SigningError::Internal(_) => Problem::internal(&e),
        SigningError::Invalid(_) | SigningError::BadPayload => Problem::bad_request(title),
        SigningError::NotFound => Problem::not_found(title),
        SigningError::WrongState(_) | SigningError::AuthorizationInvalid => Problem::new(StatusCode::CONFLICT, title),
        SigningError::SignerMismatch | SigningError::Seal(_) => Problem::new(StatusCode::FORBIDDEN, title),
        SigningError::Custody(c) => custody(c),
        SigningError::Store(s) => Problem::internal(&s),
    }
}
