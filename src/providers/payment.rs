//! QR-code payments (WeChat Pay / Alipay style): create an intent, the payer scans and pays, the
//! provider POSTs a signed webhook, refunds go back through the provider.
//!
//! The sandbox keeps its intents in the database (`providers::sandbox_state`; in memory in
//! unit tests); [`SandboxPayment::pay`] and [`SandboxPayment::close`]
//! play the payer and the provider and return the signed webhook the provider would POST.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::sandbox_state::SandboxTable;
use super::{delivery_behaviour, sandbox_answer, Behaviour, ProviderError, ProviderFuture};

/// The provider name in errors and metrics.
const PROVIDER: &str = "payment";

/// How long a payment QR code can be paid.
pub const INTENT_VALIDITY_SECS: i64 = 15 * 60;

/// How far a webhook's timestamp may be from now, against replays of old webhooks.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Which wallet the payer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayMethod {
    /// WeChat Pay.
    Wechat,
    /// Alipay.
    Alipay,
}

/// A created payment: what to show the payer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// The provider's reference, to match webhooks and refund.
    pub provider_ref: String,
    /// The link to show as a QR code.
    pub qr_url: String,
    /// Unix seconds after which the code can no longer be paid.
    pub expires_at: i64,
}

/// The final state a webhook reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// The payer paid.
    Paid,
    /// The intent was closed unpaid (expired or cancelled).
    Closed,
}

/// A verified webhook: what happened to which order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentEvent {
    /// Unique per delivery attempt's event, so handlers can ignore duplicates.
    pub event_id: String,
    /// The intent's reference.
    pub provider_ref: String,
    /// Our order id, as given to `create`.
    pub order_id: String,
    /// The amount, in fen.
    pub amount_fen: i64,
    /// Paid or closed.
    pub status: PaymentStatus,
}

/// A refund the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refund {
    /// The provider's refund reference.
    pub refund_ref: String,
    /// The amount refunded, in fen.
    pub amount_fen: i64,
}

/// A payment provider, so orders do not depend on one wallet.
pub trait PaymentProvider: Send + Sync {
    /// Creates a QR-code payment for an order.
    fn create<'a>(
        &'a self,
        order_id: &'a str,
        amount_fen: i64,
        description: &'a str,
        method: PayMethod,
    ) -> ProviderFuture<'a, PaymentIntent>;
    /// Refunds part or all of a paid payment. `refund_key` is the idempotency key (WeChat Pay's
    /// `out_refund_no`, Alipay's `out_request_no`): a second call with the same key returns the
    /// first refund instead of paying out again, so a retry after a lost answer is safe.
    fn refund<'a>(&'a self, provider_ref: &'a str, amount_fen: i64, refund_key: &'a str) -> ProviderFuture<'a, Refund>;
    /// Closes an unpaid intent so its QR code can no longer be paid (WeChat Pay's "close
    /// order", Alipay's `trade.close`): used when the applicant switches wallet or cancels.
    /// Closing a closed intent succeeds; an intent already paid is `Refused` (its webhook
    /// tells the rest).
    fn close_intent<'a>(&'a self, provider_ref: &'a str) -> ProviderFuture<'a, ()>;
    /// Verifies a webhook's signature and freshness and parses it. Headers: `x-pay-timestamp`
    /// (unix secs), `x-pay-signature` (hex HMAC-SHA256 over "{timestamp}\n{body}").
    fn verify_webhook(
        &self,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<PaymentEvent, ProviderError>;
}

/// Signs a webhook as the provider does: hex HMAC-SHA256 over "{timestamp}\n{body}".
pub fn sign_webhook(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(webhook_mac(secret, timestamp, body).finalize().into_bytes())
}

/// The MAC state over a webhook's signed text.
fn webhook_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(format!("{timestamp}\n").as_bytes());
    mac.update(body);
    mac
}

/// Where a sandbox intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum State {
    Open,
    Paid,
    Closed,
}

/// A sandbox intent.
#[derive(serde::Serialize, serde::Deserialize)]
struct Intent {
    order_id: String,
    amount_fen: i64,
    expires_at: i64,
    state: State,
    /// Refunds by their idempotency key.
    refunds: Vec<(String, Refund)>,
}

impl Intent {
    /// What has been refunded so far, in fen.
    fn refunded(&self) -> i64 {
        self.refunds.iter().map(|(_, r)| r.amount_fen).sum()
    }
}

/// The sandbox provider: intents in memory, webhooks signed with `secret`.
pub struct SandboxPayment {
    secret: Vec<u8>,
    base_url: String,
    intents: SandboxTable<Intent>,
}

impl SandboxPayment {
    /// A sandbox signing webhooks with `secret`, with QR links under `base_url`.
    pub fn new(secret: Vec<u8>, base_url: String) -> Self {
        SandboxPayment { secret, base_url, intents: SandboxTable::memory(INTENTS) }
    }

    /// The same sandbox keeping its intents in the database, so several daemons and a
    /// restart see them (a daemon always uses this).
    pub fn with_store(mut self, store: crate::store::Store) -> Self {
        self.intents = SandboxTable::database(INTENTS, store);
        self
    }

    /// Simulates the payer scanning and paying at `now`: marks the intent paid and returns the
    /// signed webhook the provider would POST as (timestamp, signature, body).
    pub async fn pay(&self, provider_ref: &str, now: i64) -> Result<(String, String, Vec<u8>), ProviderError> {
        self.finish(provider_ref, now, PaymentStatus::Paid).await
    }

    /// Simulates the provider closing an unpaid intent at `now` (expiry, cancellation) and
    /// returns the signed Closed webhook, like [`SandboxPayment::pay`].
    pub async fn close(&self, provider_ref: &str, now: i64) -> Result<(String, String, Vec<u8>), ProviderError> {
        self.finish(provider_ref, now, PaymentStatus::Closed).await
    }

    /// Moves an open intent to its final state and signs the webhook saying so.
    async fn finish(
        &self,
        provider_ref: &str,
        now: i64,
        status: PaymentStatus,
    ) -> Result<(String, String, Vec<u8>), ProviderError> {
        let event = self
            .intents
            .update(provider_ref, |mut intent| {
                ensure_open(&intent)?;
                if status == PaymentStatus::Paid && now > intent.expires_at {
                    return Err(ProviderError::Refused("the payment QR code has expired".into()));
                }
                intent.state = if status == PaymentStatus::Paid { State::Paid } else { State::Closed };
                Ok((event_for(provider_ref, &intent, status), Some(intent)))
            })
            .await?
            .ok_or_else(unknown)?;
        let body = serde_json::to_vec(&event).map_err(|_| ProviderError::Unavailable(PROVIDER.into()))?;
        Ok((now.to_string(), sign_webhook(&self.secret, now, &body), body))
    }

    /// Records a refund on a paid intent if the rules allow it; a key seen before returns its
    /// refund again.
    async fn record_refund(&self, provider_ref: &str, amount_fen: i64, key: &str) -> Result<Refund, ProviderError> {
        let refund_ref = format!("rf{}", super::random_hex(12));
        self.intents
            .update(provider_ref, |mut intent| {
                if let Some((_, earlier)) = intent.refunds.iter().find(|(k, _)| k == key) {
                    return Ok((earlier.clone(), Some(intent)));
                }
                check_refund(&intent, amount_fen)?;
                let refund = Refund { refund_ref: refund_ref.clone(), amount_fen };
                intent.refunds.push((key.to_string(), refund.clone()));
                Ok((refund, Some(intent)))
            })
            .await?
            .ok_or_else(unknown)
    }

    /// Closes an open intent without a webhook (the merchant asked; nothing to report).
    async fn close_quietly(&self, provider_ref: &str) -> Result<(), ProviderError> {
        self.intents
            .update(provider_ref, |mut intent| match intent.state {
                State::Open | State::Closed => {
                    intent.state = State::Closed;
                    Ok(((), Some(intent)))
                }
                State::Paid => Err(ProviderError::Refused("the payment has already been paid".into())),
            })
            .await?
            .ok_or_else(unknown)
    }

    /// What the payer's phone shows about an intent: its state and what was refunded, e.g.
    /// `paid, refunded 400 of 1000 fen`; None for a reference the sandbox never issued.
    pub async fn describe(&self, provider_ref: &str) -> Option<String> {
        let intent = self.intents.get(provider_ref).await.ok()??;
        let state = match intent.state {
            State::Open => "open",
            State::Paid => "paid",
            State::Closed => "closed",
        };
        Some(format!("{state}, refunded {} of {} fen", intent.refunded(), intent.amount_fen))
    }
}

/// The refund rules: only paid intents, a positive amount, never more than is left.
fn check_refund(intent: &Intent, amount_fen: i64) -> Result<(), ProviderError> {
    let left = intent.amount_fen - intent.refunded();
    if intent.state != State::Paid {
        Err(ProviderError::Refused("only a paid payment can be refunded".into()))
    } else if left <= 0 {
        Err(ProviderError::Refused("the payment has already been fully refunded".into()))
    } else if amount_fen <= 0 {
        Err(ProviderError::Refused("the refund amount must be positive".into()))
    } else if amount_fen > left {
        Err(ProviderError::Refused(format!("the refund exceeds what is left of the payment ({left} fen)")))
    } else {
        Ok(())
    }
}

/// Refuses to pay or close an intent that is no longer open.
fn ensure_open(intent: &Intent) -> Result<(), ProviderError> {
    match intent.state {
        State::Open => Ok(()),
        State::Paid => Err(ProviderError::Refused("the payment has already been paid".into())),
        State::Closed => Err(ProviderError::Refused("the payment has been closed".into())),
    }
}

/// The webhook event for an intent's new state, with a fresh event id.
fn event_for(provider_ref: &str, intent: &Intent, status: PaymentStatus) -> PaymentEvent {
    PaymentEvent {
        event_id: format!("evt_{}", super::random_hex(12)),
        provider_ref: provider_ref.to_string(),
        order_id: intent.order_id.clone(),
        amount_fen: intent.amount_fen,
        status,
    }
}

/// The refusal for a reference the provider never issued.
fn unknown() -> ProviderError {
    ProviderError::Refused("unknown payment".into())
}

/// The sandbox state kind of intents.
const INTENTS: &str = "payment-intent";

/// Checks a webhook's signature (constant time) and freshness, then parses its body.
fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<PaymentEvent, ProviderError> {
    let refused = |reason: &str| ProviderError::Refused(reason.to_string());
    let ts: i64 = timestamp.trim().parse().map_err(|_| refused("malformed webhook timestamp"))?;
    let tag = hex::decode(signature.trim()).map_err(|_| refused("bad webhook signature"))?;
    webhook_mac(secret, ts, body).verify_slice(&tag).map_err(|_| refused("bad webhook signature"))?;
    if (now - ts).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(refused("stale webhook"));
    }
    serde_json::from_slice(body).map_err(|_| refused("malformed webhook body"))
}

/// The sandbox wallet's behaviour for an amount: slow for amounts ending in 8888 fen, down
/// for 9999 (see the module docs of `providers`), so a test product's price picks the branch.
fn amount_behaviour(amount_fen: i64) -> Behaviour {
    delivery_behaviour(&amount_fen.to_string())
}

impl PaymentProvider for SandboxPayment {
    fn create<'a>(
        &'a self,
        order_id: &'a str,
        amount_fen: i64,
        _description: &'a str,
        method: PayMethod,
    ) -> ProviderFuture<'a, PaymentIntent> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, amount_behaviour(amount_fen)).await?;
            if amount_fen <= 0 {
                return Err(ProviderError::Refused("the amount must be positive".into()));
            }
            let prefix = match method {
                PayMethod::Wechat => "wx",
                PayMethod::Alipay => "ali",
            };
            let provider_ref = format!("{prefix}{}", super::random_hex(12));
            let expires_at = crate::clock::unix_now() + INTENT_VALIDITY_SECS;
            let intent = Intent {
                order_id: order_id.to_string(),
                amount_fen,
                expires_at,
                state: State::Open,
                refunds: Vec::new(),
            };
            self.intents.insert(&provider_ref, &intent).await?;
            let qr_url = format!("{}/sandbox/pay/{provider_ref}", self.base_url.trim_end_matches('/'));
            Ok(PaymentIntent { provider_ref, qr_url, expires_at })
        })
    }

    fn refund<'a>(&'a self, provider_ref: &'a str, amount_fen: i64, refund_key: &'a str) -> ProviderFuture<'a, Refund> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, amount_behaviour(amount_fen)).await?;
            self.record_refund(provider_ref, amount_fen, refund_key).await
        })
    }

    fn close_intent<'a>(&'a self, provider_ref: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, Behaviour::Normal).await?;
            self.close_quietly(provider_ref).await
        })
    }

    fn verify_webhook(
        &self,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<PaymentEvent, ProviderError> {
        verify(&self.secret, timestamp, signature, body, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"sandbox webhook secret";

    fn sandbox() -> SandboxPayment {
        SandboxPayment::new(SECRET.to_vec(), "https://pay.example/".into())
    }

    async fn paid(pay: &SandboxPayment, amount_fen: i64) -> (PaymentIntent, i64) {
        let intent = pay.create("order-1", amount_fen, "certificate", PayMethod::Wechat).await;
        let intent = intent.unwrap_or_else(|e| panic!("{e}"));
        let now = intent.expires_at - 60;
        pay.pay(&intent.provider_ref, now).await.unwrap_or_else(|e| panic!("{e}"));
        (intent, now)
    }

    #[tokio::test]
    async fn amounts_ending_in_9999_or_8888_find_the_wallet_down_or_slow() {
        let pay = sandbox();
        let down = pay.create("order-d", 9999, "certificate", PayMethod::Wechat).await;
        assert_eq!(down.map(|i| i.provider_ref), Err(ProviderError::Unavailable(PROVIDER.into())));
        let slow = pay.create("order-s", 8888, "certificate", PayMethod::Wechat);
        let slow = super::super::call("test-pay-slow", "create", std::time::Duration::from_millis(30), slow).await;
        assert_eq!(slow.map(|i| i.provider_ref), Err(ProviderError::Timeout("test-pay-slow".into())));
        assert!(pay.intents.is_empty(), "no intent was left behind");
        let (intent, _) = paid(&pay, 10000).await;
        let refund = pay.refund(&intent.provider_ref, 9999, "k1").await;
        assert_eq!(refund.map(|r| r.amount_fen), Err(ProviderError::Unavailable(PROVIDER.into())));
        assert_eq!(pay.refund(&intent.provider_ref, 10000, "k2").await.map(|r| r.amount_fen), Ok(10000));
    }

    #[tokio::test]
    async fn create_pay_and_verify_round_trip() {
        let pay = sandbox();
        let intent = pay.create("order-42", 1990, "certificate", PayMethod::Alipay).await;
        let intent = intent.unwrap_or_else(|e| panic!("{e}"));
        assert!(intent.provider_ref.starts_with("ali"));
        assert_eq!(intent.qr_url, format!("https://pay.example/sandbox/pay/{}", intent.provider_ref));
        let now = crate::clock::unix_now();
        assert!((intent.expires_at - now - INTENT_VALIDITY_SECS).abs() <= 2);

        let (timestamp, signature, body) = pay.pay(&intent.provider_ref, now).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(timestamp, now.to_string());
        assert_eq!(signature, sign_webhook(SECRET, now, &body));
        let event = pay.verify_webhook(&timestamp, &signature, &body, now + 10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.provider_ref, intent.provider_ref);
        assert_eq!(event.order_id, "order-42");
        assert_eq!(event.amount_fen, 1990);
        assert_eq!(event.status, PaymentStatus::Paid);
        assert!(event.event_id.starts_with("evt_"));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(json["status"], "paid");

        let again = pay.pay(&intent.provider_ref, now).await;
        assert!(matches!(again, Err(ProviderError::Refused(_))), "{again:?}");
        let wx = pay.create("order-43", 1, "x", PayMethod::Wechat).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(wx.provider_ref.starts_with("wx"));
    }

    #[tokio::test]
    async fn non_positive_amounts_and_unknown_refs_are_refused() {
        let pay = sandbox();
        for amount in [0, -5] {
            let got = pay.create("order-1", amount, "x", PayMethod::Wechat).await;
            assert_eq!(got, Err(ProviderError::Refused("the amount must be positive".into())));
        }
        assert_eq!(pay.pay("wxnope", 0).await, Err(ProviderError::Refused("unknown payment".into())));
    }

    #[tokio::test]
    async fn tampered_webhooks_are_refused() {
        let pay = sandbox();
        let intent = pay.create("order-1", 100, "x", PayMethod::Wechat).await.unwrap_or_else(|e| panic!("{e}"));
        let now = crate::clock::unix_now();
        let (timestamp, signature, body) = pay.pay(&intent.provider_ref, now).await.unwrap_or_else(|e| panic!("{e}"));
        let bad = Err(ProviderError::Refused("bad webhook signature".into()));

        let tampered = String::from_utf8_lossy(&body).replace("100", "1");
        assert_eq!(pay.verify_webhook(&timestamp, &signature, tampered.as_bytes(), now), bad);
        let mut flipped = signature.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(pay.verify_webhook(&timestamp, &String::from_utf8_lossy(&flipped), &body, now), bad);
        assert_eq!(pay.verify_webhook(&timestamp, "not hex", &body, now), bad);
        assert_eq!(pay.verify_webhook(&(now + 1).to_string(), &signature, &body, now), bad);
        let other = SandboxPayment::new(b"another secret".to_vec(), String::new());
        assert_eq!(other.verify_webhook(&timestamp, &signature, &body, now), bad);

        let junk = b"{not json";
        let signed = sign_webhook(SECRET, now, junk);
        let got = pay.verify_webhook(&now.to_string(), &signed, junk, now);
        assert_eq!(got, Err(ProviderError::Refused("malformed webhook body".into())));
        let got = pay.verify_webhook("yesterday", &signature, &body, now);
        assert_eq!(got, Err(ProviderError::Refused("malformed webhook timestamp".into())));
    }

    #[tokio::test]
    async fn stale_webhooks_are_refused() {
        let pay = sandbox();
        let (_, paid_at) = paid(&pay, 100).await;
        let event = PaymentEvent {
            event_id: "evt_1".into(),
            provider_ref: "wx1".into(),
            order_id: "o".into(),
            amount_fen: 1,
            status: PaymentStatus::Paid,
        };
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let signature = sign_webhook(SECRET, paid_at, &body);
        let ts = paid_at.to_string();
        let stale = Err(ProviderError::Refused("stale webhook".into()));
        assert_eq!(pay.verify_webhook(&ts, &signature, &body, paid_at + WEBHOOK_TOLERANCE_SECS), Ok(event.clone()));
        assert_eq!(pay.verify_webhook(&ts, &signature, &body, paid_at - WEBHOOK_TOLERANCE_SECS), Ok(event));
        assert_eq!(pay.verify_webhook(&ts, &signature, &body, paid_at + WEBHOOK_TOLERANCE_SECS + 1), stale);
        assert_eq!(pay.verify_webhook(&ts, &signature, &body, paid_at - WEBHOOK_TOLERANCE_SECS - 1), stale);
    }

    #[tokio::test]
    async fn expired_intents_cannot_be_paid_but_can_be_closed() {
        let pay = sandbox();
        let intent = pay.create("order-9", 500, "x", PayMethod::Wechat).await.unwrap_or_else(|e| panic!("{e}"));
        let late = intent.expires_at + 1;
        let got = pay.pay(&intent.provider_ref, late).await;
        assert_eq!(got, Err(ProviderError::Refused("the payment QR code has expired".into())));

        let (timestamp, signature, body) =
            pay.close(&intent.provider_ref, late).await.unwrap_or_else(|e| panic!("{e}"));
        let event = pay.verify_webhook(&timestamp, &signature, &body, late).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.status, PaymentStatus::Closed);
        assert_eq!(event.order_id, "order-9");
        assert!(matches!(pay.close(&intent.provider_ref, late).await, Err(ProviderError::Refused(_))));
        assert!(matches!(pay.pay(&intent.provider_ref, intent.expires_at - 1).await, Err(ProviderError::Refused(_))));
        let refund = pay.refund(&intent.provider_ref, 500, "k").await;
        assert_eq!(refund, Err(ProviderError::Refused("only a paid payment can be refunded".into())));
    }

    #[tokio::test]
    async fn refunds_follow_the_rules() {
        let pay = sandbox();
        let open = pay.create("order-2", 300, "x", PayMethod::Alipay).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(pay.refund(&open.provider_ref, 100, "k0").await, Err(ProviderError::Refused(_))));
        assert_eq!(pay.refund("nope", 1, "k0").await, Err(ProviderError::Refused("unknown payment".into())));

        let (intent, _) = paid(&pay, 1000).await;
        let refs = &intent.provider_ref;
        assert!(matches!(pay.refund(refs, 0, "k0").await, Err(ProviderError::Refused(_))));
        assert!(matches!(pay.refund(refs, 1001, "k0").await, Err(ProviderError::Refused(_))));
        let first = pay.refund(refs, 400, "k1").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.amount_fen, 400);
        assert!(first.refund_ref.starts_with("rf"));
        assert!(matches!(pay.refund(refs, 601, "k2").await, Err(ProviderError::Refused(_))));
        let second = pay.refund(refs, 600, "k2").await.unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(first.refund_ref, second.refund_ref);
        let again = pay.refund(refs, 1, "k3").await;
        assert_eq!(again, Err(ProviderError::Refused("the payment has already been fully refunded".into())));
    }

    #[tokio::test]
    async fn a_refund_key_refunds_once_and_a_closed_intent_cannot_be_paid() {
        let pay = sandbox();
        let (intent, now) = paid(&pay, 700).await;
        let first = pay.refund(&intent.provider_ref, 700, "order-1/rf").await.unwrap_or_else(|e| panic!("{e}"));
        let again = pay.refund(&intent.provider_ref, 700, "order-1/rf").await;
        assert_eq!(again, Ok(first), "the same key returns the first refund");
        assert_eq!(pay.describe(&intent.provider_ref).await.as_deref(), Some("paid, refunded 700 of 700 fen"));
        assert_eq!(
            pay.close_intent(&intent.provider_ref).await,
            Err(ProviderError::Refused("the payment has already been paid".into()))
        );

        let open = pay.create("order-1", 700, "x", PayMethod::Alipay).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pay.close_intent(&open.provider_ref).await, Ok(()));
        assert_eq!(pay.close_intent(&open.provider_ref).await, Ok(()), "closing twice is fine");
        assert_eq!(
            pay.pay(&open.provider_ref, now).await,
            Err(ProviderError::Refused("the payment has been closed".into()))
        );
        assert_eq!(pay.describe("nope").await, None);
    }
}
