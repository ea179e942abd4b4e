//! Third-party services that cannot run here (SMS, e-mail, identity checks, payment,
//! e-invoices) sit behind these interfaces. The sandbox providers behave like the real ones from
//! the caller's side (they answer after a network-like delay, can refuse, time out and fail, and
//! record what they did), so the flows above them are the production flows.
//!
//! # Driving the sandboxes
//!
//! Like payment providers' test card numbers, the data a tester enters picks the branch, so
//! tests and the dev instance reach every path deterministically. [`sandbox_behaviour`] looks at
//! the digits of a value (phone, card, account number, ID number, tax ID):
//!
//! | digits end in | behaviour | the sandbox ... |
//! |---------------|-----------|-----------------|
//! | `0000` | [`Behaviour::Mismatch`] | answers "does not match" |
//! | `9999` | [`Behaviour::Down`] | fails with [`ProviderError::Unavailable`] |
//! | `8888` | [`Behaviour::Slow`] | sleeps [`SLOW`] first, so the caller's deadline fires |
//! | anything else | [`Behaviour::Normal`] | answers after [`LATENCY`] |
//!
//! The value each sandbox looks at: identity checks the phone, card, account or ID number
//! entered; SMS the phone it texts; payment the amount in fen (a product priced 88.88 or
//! 99.99 finds the wallet slow or down). SMS and payment have nothing to mismatch
//! ([`delivery_behaviour`]). E-mail is down for addresses at `@down.example`.
//!
//! Callers run every provider call through [`call`], which bounds it by a deadline and counts it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod email;
pub mod identity;
pub mod invoice;
pub mod payment;
pub mod sandbox_state;

/// Sends a text message to a phone.
pub trait SmsProvider: Send + Sync {
    /// Delivers `text` to `phone` (E.164) or says why not. Callers bound it with [`call`]: a
    /// gateway that hangs must not hold a login or an order.
    fn send<'a>(&'a self, phone: &'a str, text: &'a str) -> ProviderFuture<'a, ()>;
}

/// Writes messages as JSON lines to an outbox file the dev instance and tests read. Phones
/// ending in `9999` find the gateway down and `8888` find it slow (see the module docs);
/// `0000` has no meaning for a text message, so it is delivered.
pub struct SandboxSms {
    /// The outbox (`DATA_DIR/sms-outbox.jsonl`).
    pub outbox: PathBuf,
}

impl SmsProvider for SandboxSms {
    fn send<'a>(&'a self, phone: &'a str, text: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            sandbox_answer(SMS, delivery_behaviour(phone)).await?;
            let line = serde_json::json!({ "to": phone, "text": text, "at": crate::clock::unix_now() });
            let outbox = self.outbox.clone();
            sandbox_io(SMS, move || append_json_line(&outbox, &line)).await
        })
    }
}

/// The provider name of SMS in errors and metrics.
pub const SMS: &str = "sms";

/// The sandbox behaviour of a provider that only delivers or takes money (SMS, payment): it
/// is down or slow as the digits say, and has nothing to mismatch.
pub fn delivery_behaviour(value: &str) -> Behaviour {
    match sandbox_behaviour(value) {
        Behaviour::Mismatch => Behaviour::Normal,
        other => other,
    }
}

/// Why a provider call did not give an answer or refused, so callers can tell "try again later"
/// from "the provider said no".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider (named) could not be reached or failed internally.
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// The provider (named) did not answer before the caller's deadline.
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The provider said no; the text is its reason.
    #[error("{0}")]
    Refused(String),
}

/// What every provider call returns: boxed so the traits stay object-safe (`dyn Provider`).
pub type ProviderFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// Runs one provider call under a deadline and counts it, so no caller can hang on a provider
/// and every call shows up in `cloudca_provider_calls_total` and `provider_call_seconds`.
pub async fn call<T>(
    provider: &'static str,
    operation: &'static str,
    deadline: Duration,
    fut: ProviderFuture<'_, T>,
) -> Result<T, ProviderError> {
    let started = tokio::time::Instant::now();
    let result = match tokio::time::timeout(deadline, fut).await {
        Ok(result) => result,
        Err(_) => Err(ProviderError::Timeout(provider.to_string())),
    };
    record(provider, operation, outcome(&result), started.elapsed());
    result
}

/// The metric label for a call's result.
fn outcome<T>(result: &Result<T, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ProviderError::Refused(_)) => "refused",
        Err(ProviderError::Unavailable(_)) => "unavailable",
        Err(ProviderError::Timeout(_)) => "timeout",
    }
}

/// Counts one call and its latency, and logs the ones that got no answer.
fn record(provider: &'static str, operation: &'static str, outcome: &'static str, elapsed: Duration) {
    let metrics = crate::metrics::get();
    metrics.provider_calls.with_label_values(&[provider, operation, outcome]).inc();
    metrics.provider_call_seconds.with_label_values(&[provider]).observe(elapsed.as_secs_f64());
    if outcome == "unavailable" || outcome == "timeout" {
        tracing::warn!(provider, operation, outcome, "provider call got no answer");
    }
}

/// How a sandbox provider treats a value, chosen by the value itself (see the module docs).
/// Ordered by precedence: when a call looks at several values, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behaviour {
    /// Answers normally after [`LATENCY`].
    Normal,
    /// Answers "does not match".
    Mismatch,
    /// Sleeps [`SLOW`] before answering, so the caller's deadline fires.
    Slow,
    /// Fails with [`ProviderError::Unavailable`].
    Down,
}

/// How long a [`Behaviour::Slow`] sandbox sleeps: longer than any caller's deadline.
pub const SLOW: Duration = Duration::from_secs(30);

/// The normal answer delay of a sandbox, so callers see a network call, not a function call.
pub const LATENCY: Duration = Duration::from_millis(5);

/// The sandbox rule: the behaviour a value's digits ask for (ends in `0000` → Mismatch, `9999` →
/// Down, `8888` → Slow, else Normal), so entered data drives every branch deterministically.
pub fn sandbox_behaviour(value: &str) -> Behaviour {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.ends_with("0000") {
        Behaviour::Mismatch
    } else if digits.ends_with("9999") {
        Behaviour::Down
    } else if digits.ends_with("8888") {
        Behaviour::Slow
    } else {
        Behaviour::Normal
    }
}

/// The behaviour of a call that looks at several values: the one with the highest precedence.
pub fn sandbox_behaviour_of(values: &[&str]) -> Behaviour {
    values.iter().map(|v| sandbox_behaviour(v)).max().unwrap_or(Behaviour::Normal)
}

/// Waits as a network call would and fails as `behaviour` asks; hands back `behaviour` so the
/// sandbox can answer Mismatch in its own words.
pub async fn sandbox_answer(provider: &str, behaviour: Behaviour) -> Result<Behaviour, ProviderError> {
    tokio::time::sleep(LATENCY).await;
    match behaviour {
        Behaviour::Down => Err(ProviderError::Unavailable(provider.to_string())),
        Behaviour::Slow => {
            tokio::time::sleep(SLOW).await;
            Ok(behaviour)
        }
        Behaviour::Normal | Behaviour::Mismatch => Ok(behaviour),
    }
}

/// Appends one JSON line to a sandbox record file (outboxes, bank statements), in one write so
/// concurrent appends do not interleave.
pub(crate) fn append_json_line(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{value}\n").as_bytes())
}

/// Runs a sandbox's file work off the async threads; a failure means the provider is broken,
/// which callers see as Unavailable (the detail goes to the log).
pub(crate) async fn sandbox_io<T, F>(provider: &str, work: F) -> Result<T, ProviderError>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(provider, error = %e, "sandbox provider could not record its work");
            Err(ProviderError::Unavailable(provider.to_string()))
        }
        Err(e) => {
            tracing::warn!(provider, error = %e, "sandbox provider task failed");
            Err(ProviderError::Unavailable(provider.to_string()))
        }
    }
}

/// Random lowercase hex of `bytes` random bytes, for sandbox references and session ids.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf);
    hex::encode(buf)
}

/// A fresh empty directory for a test, removed by the caller.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cloudca-{name}-{}", random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_behaviour_follows_the_last_digits() {
        let table = [
            ("+8613800000000", Behaviour::Mismatch),
            ("6222 0000 0000 0000", Behaviour::Mismatch),
            ("110101199001019999", Behaviour::Down),
            ("+86 138 0013 8888", Behaviour::Slow),
            ("+8613800138000", Behaviour::Normal),
            ("11010119900101000X", Behaviour::Normal),
            ("9999-abc", Behaviour::Down),
            ("", Behaviour::Normal),
            ("000", Behaviour::Normal),
        ];
        for (value, want) in table {
            assert_eq!(sandbox_behaviour(value), want, "{value}");
        }
    }

    #[test]
    fn several_values_take_the_strongest_behaviour() {
        assert_eq!(sandbox_behaviour_of(&["1230000", "1238888"]), Behaviour::Slow);
        assert_eq!(sandbox_behaviour_of(&["1239999", "1238888"]), Behaviour::Down);
        assert_eq!(sandbox_behaviour_of(&["123", "1230000"]), Behaviour::Mismatch);
        assert_eq!(sandbox_behaviour_of(&[]), Behaviour::Normal);
    }

    fn count(provider: &str, operation: &str, outcome: &str) -> u64 {
        crate::metrics::get().provider_calls.with_label_values(&[provider, operation, outcome]).get()
    }

    #[tokio::test]
    async fn call_passes_answers_and_counts_them() {
        let ok: ProviderFuture<'_, u32> = Box::pin(async { Ok(7) });
        assert_eq!(call("test-call-ok", "op", Duration::from_secs(1), ok).await, Ok(7));
        let no: ProviderFuture<'_, u32> = Box::pin(async { Err(ProviderError::Refused("no".into())) });
        assert_eq!(
            call("test-call-ok", "op", Duration::from_secs(1), no).await,
            Err(ProviderError::Refused("no".into()))
        );
        assert_eq!(count("test-call-ok", "op", "ok"), 1);
        assert_eq!(count("test-call-ok", "op", "refused"), 1);
    }

    #[tokio::test]
    async fn a_slow_sandbox_times_out_under_the_deadline() {
        let slow: ProviderFuture<'_, Behaviour> = Box::pin(sandbox_answer("test-call-slow", Behaviour::Slow));
        let started = std::time::Instant::now();
        let got = call("test-call-slow", "op", Duration::from_millis(30), slow).await;
        assert_eq!(got, Err(ProviderError::Timeout("test-call-slow".into())));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(count("test-call-slow", "op", "timeout"), 1);
    }

    #[tokio::test]
    async fn a_down_sandbox_is_unavailable_and_counted() {
        let down: ProviderFuture<'_, Behaviour> = Box::pin(sandbox_answer("test-call-down", Behaviour::Down));
        let got = call("test-call-down", "op", Duration::from_secs(1), down).await;
        assert_eq!(got, Err(ProviderError::Unavailable("test-call-down".into())));
        assert_eq!(count("test-call-down", "op", "unavailable"), 1);
        let normal = sandbox_answer("test-call-down", Behaviour::Mismatch).await;
        assert_eq!(normal, Ok(Behaviour::Mismatch));
    }

    #[tokio::test]
    async fn sandbox_sms_delivers_to_its_outbox_unless_the_phone_asks_for_a_fault() {
        let dir = test_dir("sms");
        let sms = SandboxSms { outbox: dir.join("sms-outbox.jsonl") };
        assert_eq!(sms.send("+8613800138000", "hello").await, Ok(()));
        assert_eq!(sms.send("+8613800130000", "mismatch means nothing here").await, Ok(()));
        assert_eq!(sms.send("+8613800139999", "down").await, Err(ProviderError::Unavailable(SMS.into())));
        let slow = call("test-sms-slow", "send", Duration::from_millis(30), sms.send("+8613800138888", "slow")).await;
        assert_eq!(slow, Err(ProviderError::Timeout("test-sms-slow".into())));
        let text = std::fs::read_to_string(&sms.outbox).unwrap_or_default();
        assert!(text.contains("hello") && text.contains("mismatch"), "{text}");
        assert!(!text.contains("down") && !text.contains("slow"), "a failed send left no message: {text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
