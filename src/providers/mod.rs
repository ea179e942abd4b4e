//! Third-party services that cannot run here (SMS delivery, identity re-verification) sit
//! behind these interfaces. The sandbox providers behave like the real ones from the caller's
//! side (they can refuse, and they record what they did), so the flows above them are the
//! production flows.

use std::io::Write;
use std::path::PathBuf;

/// Sends a text message to a phone.
pub trait SmsProvider: Send + Sync {
    /// Delivers `text` to `phone` (E.164) or says why not.
    fn send(&self, phone: &str, text: &str) -> Result<(), String>;
}

/// Writes messages as JSON lines to an outbox file the dev instance and tests read.
pub struct SandboxSms {
    /// The outbox (`DATA_DIR/sms-outbox.jsonl`).
    pub outbox: PathBuf,
}

impl SmsProvider for SandboxSms {
    fn send(&self, phone: &str, text: &str) -> Result<(), String> {
        let line = serde_json::json!({ "to": phone, "text": text, "at": crate::clock::unix_now() });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.outbox)
            .map_err(|e| format!("{}: {e}", self.outbox.display()))?;
        writeln!(file, "{line}").map_err(|e| format!("{}: {e}", self.outbox.display()))
    }
}

/// Checks again that a person is who the approval says (face or bank-card check in
/// production), before a locked credential is unlocked.
pub trait IdentityProvider: Send + Sync {
    /// Whether the claimed identifier and the evidence match the approved identity.
    fn verify(&self, approved_identifier: &str, claimed_identifier: &str, evidence: &str) -> Result<bool, String>;
}

/// The sandbox check: the claimed identifier must equal the approved one and the evidence must
/// be non-empty (a real provider compares a live face or a bank card with the identity).
pub struct SandboxIdentity;

impl IdentityProvider for SandboxIdentity {
    fn verify(&self, approved_identifier: &str, claimed_identifier: &str, evidence: &str) -> Result<bool, String> {
        Ok(!evidence.trim().is_empty() && approved_identifier.eq_ignore_ascii_case(claimed_identifier.trim()))
    }
}
