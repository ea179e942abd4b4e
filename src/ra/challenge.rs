//! The random code (随机码) the order query's identity fallbacks ask for next to the SMS code
//! (issue 17; handbook §4.3: the legal representative's phone or bank card, the person's
//! real-name phone or bank card). The daemon makes it and keeps only its hash; the web front
//! draws it as a picture ([`crate::web`]) and sends back what the person typed. A code answers
//! once, right or wrong, and lives a few minutes, so a script has to read a fresh picture for
//! every SMS it would make the daemon send.

use rand::Rng;
use sha2::Digest;

use super::{new_token, validate, Ra, RaError};

/// How long a random code may be answered.
const LIFETIME_SECONDS: i64 = 300;

/// Letters and digits nobody confuses (no 0/O, 1/I/L, 2/Z, 5/S, 6/G, 8/B).
const ALPHABET: &[u8] = b"ACDEFHJKMNPRTUVWXY3479";

/// A fresh random code: `id` goes back with the answer; `code` is drawn on the page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Challenge {
    /// The code's reference (random, in the page's hidden field).
    pub challenge: String,
    /// The characters to draw.
    pub code: String,
    /// Unix seconds.
    pub expires_at: i64,
}

fn answer_hash(id: &str, answer: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("cloudca-challenge\n{id}\n{}", answer.trim().to_uppercase())))
}

impl Ra {
    /// Makes a random code for one identity-fallback form.
    pub async fn challenge(&self) -> Result<Challenge, RaError> {
        let mut rng = rand::rngs::OsRng;
        let code: String = (0..5).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        let id = new_token();
        let (now, expires_at) = (self.now(), self.now() + LIFETIME_SECONDS);
        self.store.insert_challenge(&id, &answer_hash(&id, &code), now, expires_at).await?;
        if let Some(outbox) = &self.providers.challenge_outbox {
            let line = serde_json::json!({ "challenge": id, "code": code });
            if let Err(e) = crate::providers::append_json_line(outbox, &line) {
                tracing::warn!(error = %e, "the sandbox challenge outbox could not be written");
            }
        }
        Ok(Challenge { challenge: id, code, expires_at })
    }

    /// Takes the random code `id` with the typed `answer`: used up either way; a wrong,
    /// unknown or expired one is a field error on `answer`.
    pub(super) async fn pass_challenge(&self, id: &str, answer: &str) -> Result<(), RaError> {
        let stored = self.store.take_challenge(id.trim(), self.now()).await?;
        let given = answer_hash(id.trim(), answer);
        match stored {
            Some(h) if crate::mobile::constant_time_eq(h.as_bytes(), given.as_bytes()) => Ok(()),
            _ => Err(RaError::Invalid(vec![validate::random_code_wrong()])),
        }
    }
}
