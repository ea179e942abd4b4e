//! Payment (review M5, L3): money is never lost.
//!
//! 1. Every QR code an order shows is a payment intent, recorded (`ra_payment_intents`) before
//!    the code is shown (steps.rs). A newer code supersedes the older ones, which are closed at
//!    the provider; until that succeeds they may still be paid.
//! 2. The provider's signed webhook for *any* intent of the order is matched to it: the first
//!    payment pays the order (the intent becomes the order's `payment_ref`); a payment the
//!    order does not want (already paid, cancelled, rejected) is marked `refund_due`. A replay
//!    changes nothing.
//! 3. A refund is a marker written with the state change that calls for it (cancel, reject,
//!    an unwanted payment), in one transaction. Only then is the provider asked, under a claim
//!    and with an idempotency key, and the refund recorded once. The background task retries
//!    a refund still due.
//!
//! A paid order that wants an invoice gets one by e-mail.

use super::flow::Step;
use super::model::{OrderData, PaymentData};
use super::{Ra, RaError};
use crate::providers::email::Attachment;
use crate::providers::invoice::InvoiceRequest;
use crate::providers::payment::{PayMethod, PaymentEvent, PaymentIntent, PaymentStatus};
use crate::store::{
    AuditRecord, IntentChange, IntentState, OrderRecord, PaymentEventOutcome, PaymentIntentRecord, StoreError,
};

/// How long a refund claim keeps other daemons (and the background task) from calling the
/// provider for the same refund: longer than any provider deadline.
const REFUND_CLAIM_SECS: i64 = 120;

/// How long after its expiry a superseded intent is taken as closed without asking the
/// wallet (clock skew between us and the provider).
const EXPIRY_MARGIN_SECS: i64 = 300;

/// How many due refunds and unclosed superseded intents one background pass handles.
const RETRY_BATCH: i64 = 100;

impl Ra {
    /// Applies a payment webhook from `client` (`ip:ADDRESS`, normalised as the rate limits
    /// count it): verified (signature, freshness), matched to the intent it names and that
    /// intent's order, checked against the amount, recorded once. A replay answers as the
    /// first delivery did and changes nothing. One that fails verification (forged, stale,
    /// malformed) is `payment.webhook_refused`, once per client per minute with the count of
    /// the others; the entry holds the reason and the body's size, never the signature or body.
    pub async fn payment_webhook(
        &self,
        client: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(), RaError> {
        let event = match self.providers.payment.verify_webhook(timestamp, signature, body, self.now()) {
            Ok(event) => event,
            Err(e) => {
                let reason = e.to_string();
                let detail = serde_json::json!({ "reason": reason, "bytes": body.len() });
                self.refusals.refused("payment.webhook_refused", client, client, None, detail).await;
                return Err(RaError::Webhook(reason));
            }
        };
        let intent = self.store.payment_intent(&event.provider_ref).await?.ok_or(RaError::NotFound)?;
        let order = self.store.order(&intent.order_id).await?.ok_or(RaError::NotFound)?;
        if event.order_id != order.id || event.amount_fen != intent.amount_fen {
            let detail = serde_json::json!({ "event": event.event_id, "amount_fen": event.amount_fen });
            self.store.audit(&self.event("payment.mismatch", "payment-provider", &order, detail)).await?;
            return Err(RaError::BadRequest("the payment does not match its order".into()));
        }
        match event.status {
            PaymentStatus::Paid => self.intent_paid(&event, &intent, order).await,
            PaymentStatus::Closed => self.intent_closed(&event, &intent, order).await,
        }
    }

    /// A payment through one of the order's intents. The first pays the order; any other
    /// (another wallet's code paid as well, the order cancelled or rejected meanwhile) is
    /// marked for refund and refunded.
    async fn intent_paid(
        &self,
        event: &PaymentEvent,
        intent: &PaymentIntentRecord,
        order: OrderRecord,
    ) -> Result<(), RaError> {
        if !intent.state.unpaid() {
            // Another delivery of a payment already recorded (a new event id for it).
            tracing::info!(order = %order.id, intent = %intent.provider_ref, "payment already recorded");
            return Ok(());
        }
        let detail = serde_json::json!({
            "event": event.event_id, "amount_fen": event.amount_fen, "status": "paid",
            "intent": intent.provider_ref, "method": intent.method,
        });
        let wants_paying = matches!(order.state.as_str(), "open" | "offline");
        if wants_paying && order.paid_at.is_none() && intent.amount_fen == order.amount_fen {
            return self.accept_payment(event, intent, order, detail).await;
        }
        let reason =
            if order.paid_at.is_some() { "the order is already paid" } else { "the order no longer wants paying" };
        let mut detail = detail;
        detail["reason"] = reason.into();
        detail["order_state"] = order.state.clone().into();
        let audit = self.event("payment.refund_due", "payment-provider", &order, detail);
        let change = IntentChange {
            event_id: &event.event_id,
            status: "paid",
            provider_ref: &intent.provider_ref,
            order_id: &order.id,
            from: intent.state,
            to: IntentState::RefundDue,
            order: None,
        };
        if self.apply(&change, &[&audit]).await? == PaymentEventOutcome::Applied {
            self.settle_refund_logged(&intent.provider_ref).await;
        }
        Ok(())
    }

    /// The order's first payment: it moves on to review (or is carried out), whichever of its
    /// intents was paid; its other intents are closed.
    async fn accept_payment(
        &self,
        event: &PaymentEvent,
        intent: &PaymentIntentRecord,
        order: OrderRecord,
        detail: serde_json::Value,
    ) -> Result<(), RaError> {
        let mut next = order.clone();
        let mut data = OrderData::of(&order)?;
        data.complete(Step::Payment);
        if let (Some(method), false) = (parse_method(&intent.method), intent.qr_url.is_empty()) {
            data.payment = Some(PaymentData {
                method,
                provider_ref: intent.provider_ref.clone(),
                qr_url: intent.qr_url.clone(),
                expires_at: intent.expires_at,
            });
        }
        data.store(&mut next);
        next.payment_ref = Some(intent.provider_ref.clone());
        next.paid_at = Some(self.now());
        // An offline order waits for its papers; the officer marks them received.
        if order.state == "open" {
            next.submitted_at = Some(self.now());
            next.state = "review".into();
        }
        next.updated_at = self.now();
        let received = self.event("payment.received", "payment-provider", &next, detail.clone());
        let superseded = self.event("payment.superseded_accepted", "payment-provider", &next, detail);
        let mut audits = vec![&received];
        if intent.state != IntentState::Open {
            audits.push(&superseded);
        }
        let change = IntentChange {
            event_id: &event.event_id,
            status: "paid",
            provider_ref: &intent.provider_ref,
            order_id: &order.id,
            from: intent.state,
            to: IntentState::Paid,
            order: Some(&next),
        };
        if self.apply(&change, &audits).await? == PaymentEventOutcome::Replayed {
            return Ok(());
        }
        next.version += 1;
        self.close_other_intents(&next, Some(&intent.provider_ref)).await;
        self.after_payment(next).await
    }

    /// An intent closed unpaid at the provider (expired). If it was the order's current code,
    /// the order forgets it and the applicant is shown a new one.
    async fn intent_closed(
        &self,
        event: &PaymentEvent,
        intent: &PaymentIntentRecord,
        order: OrderRecord,
    ) -> Result<(), RaError> {
        if !matches!(intent.state, IntentState::Open | IntentState::Superseded) {
            return Ok(()); // closed before, or paid: nothing to forget
        }
        let mut next = order.clone();
        let current = matches!(order.state.as_str(), "open" | "offline")
            && order.paid_at.is_none()
            && order.payment_ref.as_deref() == Some(intent.provider_ref.as_str());
        if current {
            let mut data = OrderData::of(&order)?;
            data.payment = None;
            data.store(&mut next);
            next.updated_at = self.now();
        }
        let detail = serde_json::json!({
            "event": event.event_id, "amount_fen": event.amount_fen, "status": "closed", "intent": intent.provider_ref,
        });
        let audit = self.event("payment.closed", "payment-provider", &next, detail);
        let change = IntentChange {
            event_id: &event.event_id,
            status: "closed",
            provider_ref: &intent.provider_ref,
            order_id: &order.id,
            from: intent.state,
            to: IntentState::Closed,
            order: current.then_some(&next),
        };
        self.apply(&change, &[&audit]).await.map(|_| ())
    }

    /// Writes a webhook's changes; a concurrent change is `Conflict` (the provider retries).
    async fn apply(&self, change: &IntentChange<'_>, audits: &[&AuditRecord]) -> Result<PaymentEventOutcome, RaError> {
        match self.store.apply_intent_event(change, self.now(), audits).await {
            Err(StoreError::Conflict) => Err(RaError::Conflict),
            other => Ok(other?),
        }
    }

    /// Records a new intent (before its QR code is shown) and closes the order's older ones:
    /// the payment step's half of review M5.
    pub(super) async fn record_intent(
        &self,
        order: &OrderRecord,
        method: PayMethod,
        intent: &PaymentIntent,
    ) -> Result<(), RaError> {
        let now = self.now();
        let record = PaymentIntentRecord {
            provider_ref: intent.provider_ref.clone(),
            order_id: order.id.clone(),
            method: method_name(method).into(),
            amount_fen: order.amount_fen,
            qr_url: intent.qr_url.clone(),
            state: IntentState::Open,
            expires_at: intent.expires_at,
            created_at: now,
            updated_at: now,
            paid_at: None,
            refund_claimed_at: None,
            refund_ref: None,
            refunded_at: None,
        };
        let detail = serde_json::json!({
            "intent": intent.provider_ref, "method": record.method, "amount_fen": record.amount_fen,
            "expires_at": intent.expires_at,
        });
        let audit = self.event("payment.intent_created", "applicant", order, detail);
        self.store.insert_payment_intent(&record, &audit).await?;
        self.close_other_intents(order, Some(&intent.provider_ref)).await;
        Ok(())
    }

    /// Whether an intent can still be shown to the payer (recorded and open).
    pub(super) async fn intent_is_open(&self, provider_ref: &str) -> Result<bool, RaError> {
        let intent = self.store.payment_intent(provider_ref).await?;
        Ok(intent.is_some_and(|i| i.state == IntentState::Open))
    }

    /// Closes every unpaid intent of an order except `keep`: first marked superseded (so the
    /// record says it may still be paid), then closed at the provider, then recorded closed.
    /// A provider failure leaves it superseded for the background task; a payment through it
    /// meanwhile is still matched by its webhook.
    pub(super) async fn close_other_intents(&self, order: &OrderRecord, keep: Option<&str>) {
        let intents = match self.store.payment_intents(&order.id).await {
            Ok(intents) => intents,
            Err(e) => return tracing::warn!(order = %order.id, error = %e, "payment intents not read; not closed"),
        };
        for intent in intents.iter().filter(|i| Some(i.provider_ref.as_str()) != keep) {
            if let Err(e) = self.close_intent(order, intent).await {
                tracing::warn!(order = %order.id, intent = %intent.provider_ref, error = %e, "payment intent not closed yet");
            }
        }
    }

    async fn close_intent(&self, order: &OrderRecord, intent: &PaymentIntentRecord) -> Result<(), RaError> {
        let reference = &intent.provider_ref;
        let detail = serde_json::json!({ "intent": reference, "method": intent.method });
        if intent.state == IntentState::Open {
            let audit = self.event("payment.intent_superseded", "system", order, detail.clone());
            let now = self.now();
            if !self
                .store
                .move_payment_intent(reference, IntentState::Open, IntentState::Superseded, now, &audit)
                .await?
            {
                return Ok(()); // paid or closed meanwhile: its webhook decided
            }
        } else if intent.state != IntentState::Superseded {
            return Ok(());
        }
        let close = self.providers.payment.close_intent(reference);
        crate::providers::call("payment", "close", self.deadline(), close).await?;
        let audit = self.event("payment.intent_closed", "system", order, detail);
        self.store
            .move_payment_intent(reference, IntentState::Superseded, IntentState::Closed, self.now(), &audit)
            .await?;
        Ok(())
    }

    /// Records an order's new state (compare-and-set) together with the refund it calls for,
    /// then refunds: review L3's order of operations. The refund itself may fail (the
    /// provider is down): it stays due and the background task retries. `order` is re-read
    /// afterwards so it shows the refund if it was made.
    pub(super) async fn save_then_refund(&self, order: &mut OrderRecord, audit: &AuditRecord) -> Result<(), RaError> {
        let Some(reference) = refundable(order) else {
            self.save(order, &[audit]).await?;
            self.close_other_intents(order, None).await;
            return Ok(());
        };
        order.updated_at = self.now();
        let detail = serde_json::json!({ "intent": reference, "amount_fen": order.amount_fen, "reason": order.state });
        let marker = self.event("payment.refund_due", "system", order, detail);
        match self.store.save_order_refund_due(order, &reference, self.now(), &[audit, &marker]).await? {
            None => return Err(RaError::Conflict),
            Some(false) => tracing::error!(order = %order.id, intent = %reference,
                "the order's payment is not on record as paid; it was not marked for refund: refund it by hand"),
            Some(true) => {}
        }
        order.version += 1;
        self.close_other_intents(order, None).await;
        self.settle_refund_logged(&reference).await;
        if let Some(fresh) = self.store.order(&order.id).await? {
            *order = fresh;
        }
        Ok(())
    }

    /// Settles a due refund, logging a failure (it stays due; the background task retries).
    async fn settle_refund_logged(&self, provider_ref: &str) {
        if let Err(e) = self.settle_refund(provider_ref).await {
            tracing::warn!(intent = %provider_ref, error = %e, "refund due but not made yet; will retry");
        }
    }

    /// Pays out a due refund once: claim it, ask the provider (idempotency key: the intent),
    /// record it. Nothing happens when it is not due or another claim is live.
    async fn settle_refund(&self, provider_ref: &str) -> Result<(), RaError> {
        let Some(intent) = self.store.claim_refund(provider_ref, self.now(), REFUND_CLAIM_SECS).await? else {
            return Ok(());
        };
        let key = format!("refund-{provider_ref}");
        let refund = self.providers.payment.refund(provider_ref, intent.amount_fen, &key);
        let refund = crate::providers::call("payment", "refund", self.deadline(), refund).await?;
        let order = self.store.order(&intent.order_id).await?.ok_or(RaError::NotFound)?;
        let detail = serde_json::json!({
            "intent": provider_ref, "refund": refund.refund_ref, "amount_fen": refund.amount_fen,
        });
        let audit = self.event("payment.refunded", "system", &order, detail);
        if !self.store.finish_refund(provider_ref, &refund.refund_ref, self.now(), &[&audit]).await? {
            tracing::info!(intent = %provider_ref, "refund recorded before");
        }
        Ok(())
    }

    /// The background task's part: refunds still due, superseded intents not yet closed.
    pub(super) async fn settle_payments(&self) -> Result<(), RaError> {
        for intent in self.store.payment_intents_in_state(IntentState::RefundDue, RETRY_BATCH).await? {
            self.settle_refund_logged(&intent.provider_ref).await;
        }
        for intent in self.store.payment_intents_in_state(IntentState::Superseded, RETRY_BATCH).await? {
            let Some(order) = self.store.order(&intent.order_id).await? else { continue };
            if intent.expires_at + EXPIRY_MARGIN_SECS < self.now() {
                // The wallet no longer takes payment: closed without asking it. A payment made
                // just before expiry is still matched when its webhook lands.
                let detail = serde_json::json!({ "intent": intent.provider_ref, "expired": true });
                let audit = self.event("payment.intent_closed", "system", &order, detail);
                let (from, to) = (IntentState::Superseded, IntentState::Closed);
                self.store.move_payment_intent(&intent.provider_ref, from, to, self.now(), &audit).await?;
                continue;
            }
            if let Err(e) = self.close_intent(&order, &intent).await {
                tracing::warn!(intent = %intent.provider_ref, error = %e, "payment intent not closed yet");
            }
        }
        Ok(())
    }

    /// A paid order goes to review or, where the channel approves the flow automatically,
    /// is carried out; its invoice is issued.
    async fn after_payment(&self, order: OrderRecord) -> Result<(), RaError> {
        let order = self.issue_invoice(order).await;
        if order.state == "offline" {
            return Ok(());
        }
        if self.auto_approves(&order).await? {
            self.approve(order, "auto", "approved automatically by the channel").await?;
        } else {
            let queued = self.event("order.submitted", "applicant", &order, serde_json::json!({}));
            self.store.audit(&queued).await?;
        }
        Ok(())
    }

    /// Issues the e-invoice of a paid order that asked for one and e-mails it. A provider
    /// failure leaves the order without an invoice for the background task to retry.
    pub(super) async fn issue_invoice(&self, mut order: OrderRecord) -> OrderRecord {
        // Unreadable data is logged by `of`; no invoice until an operator has seen the order.
        let Ok(data) = OrderData::of(&order) else { return order };
        let Some(product) = data.product.clone().filter(|p| p.invoice) else { return order };
        if order.invoice_no.is_some() || order.paid_at.is_none() {
            return order;
        }
        let Some(request) = Self::invoice_request(&order, &data) else { return order };
        match self.send_invoice(&order, &request, product.invoice_email.as_deref()).await {
            Ok(number) => {
                order.invoice_no = Some(number.clone());
                let audit = self.event("invoice.issued", "system", &order, serde_json::json!({ "invoice": number }));
                if let Err(e) = self.save(&mut order, &[&audit]).await {
                    tracing::warn!(order = %order.id, error = %e, "invoice issued but not recorded; it will be issued again");
                }
            }
            Err(e) => tracing::warn!(order = %order.id, error = %e, "invoice not issued yet; will retry"),
        }
        order
    }

    async fn send_invoice(
        &self,
        order: &OrderRecord,
        request: &InvoiceRequest,
        email: Option<&str>,
    ) -> Result<String, RaError> {
        let invoice =
            crate::providers::call("invoice", "issue", self.deadline(), self.providers.invoice.issue(request)).await?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&invoice.pdf));
        let audit =
            self.event("order.invoice_stored", "system", order, serde_json::json!({ "invoice": invoice.number }));
        let new = crate::store::NewMaterial {
            order_id: &order.id,
            kind: "invoice",
            sha256: &sha,
            content_type: "application/pdf",
            bytes: &invoice.pdf,
        };
        self.store.put_material(&new, self.now(), &audit).await?;
        if let Some(to) = email {
            let attachment = Attachment {
                name: format!("{}.pdf", invoice.number),
                content_type: "application/pdf".into(),
                bytes: invoice.pdf,
            };
            let subject = format!("电子发票 {} / e-invoice for order {}", invoice.number, order.id);
            let body =
                format!("您的订单 {} 的电子发票见附件。\nThe e-invoice for order {} is attached.", order.id, order.id);
            crate::providers::call(
                "email",
                "send",
                self.deadline(),
                self.providers.email.send(to, &subject, &body, std::slice::from_ref(&attachment)),
            )
            .await?;
        }
        Ok(invoice.number)
    }

    /// The invoice PDF of an order, if issued.
    pub async fn invoice(&self, order: &OrderRecord) -> Result<Option<Vec<u8>>, RaError> {
        let materials = self.store.materials(&order.id).await?;
        let Some(m) = materials.iter().find(|m| m.kind == "invoice") else { return Ok(None) };
        Ok(self.store.material_bytes(&order.id, &m.sha256).await?.map(|(_, b)| b))
    }

    /// What an order's invoice says: the buyer (the organisation with its credit code, the
    /// person, or the certificate's subject), the product, the amount. None without a product.
    fn invoice_request(order: &OrderRecord, data: &OrderData) -> Option<InvoiceRequest> {
        let product = data.product.as_ref()?;
        let (title, tax_id) = match (&data.company, &data.person, &data.certificate) {
            (Some(c), _, _) => (c.name.clone(), c.credit_code.clone()),
            (None, Some(p), _) => (p.name.clone(), String::new()),
            (None, None, Some(c)) => {
                (subject_name(&c.subject), if c.profile == "org" { c.identifier.clone() } else { String::new() })
            }
            _ => (String::new(), String::new()),
        };
        Some(InvoiceRequest {
            order_id: order.id.clone(),
            title,
            tax_id,
            item: product.name.clone(),
            amount_fen: order.amount_fen,
        })
    }

    /// Voids an issued invoice with a red-letter invoice, e-mailed to the invoice address;
    /// returns the `invoice.voided` audit event to save with the order that drops the number.
    async fn void_invoice(&self, order: &OrderRecord, number: &str) -> Result<AuditRecord, RaError> {
        let data = OrderData::of(order)?;
        let no_invoice = || RaError::State("the order has no invoice".into());
        let request = Self::invoice_request(order, &data).ok_or_else(no_invoice)?;
        let call = self.providers.invoice.void(number, &request);
        let red = crate::providers::call("invoice", "void", self.deadline(), call).await?;
        let detail = serde_json::json!({ "invoice": number, "credit_note": red.number });
        let audit = self.event("invoice.voided", "applicant", order, detail);
        let email = data.product.and_then(|p| p.invoice_email);
        if let Some(to) = email {
            let attachment = Attachment {
                name: format!("{}.pdf", red.number),
                content_type: "application/pdf".into(),
                bytes: red.pdf,
            };
            let subject = format!("红字发票 {} / credit note voiding {number}", red.number);
            let body = format!(
                "订单 {} 的发票 {number} 已冲红。\nInvoice {number} of order {} is voided.",
                order.id, order.id
            );
            let send = self.providers.email.send(&to, &subject, &body, std::slice::from_ref(&attachment));
            if let Err(e) = crate::providers::call("email", "send", self.deadline(), send).await {
                tracing::warn!(order = %order.id, error = %e, "credit note not e-mailed");
            }
        }
        Ok(audit)
    }

    /// Re-issues the invoice on request (sent again by e-mail). Only an order that paid an
    /// amount and asked for an invoice has one to issue again: a free order or one paid
    /// without an invoice is refused ([`NoInvoice`]), never invoiced here (handbook G5; the
    /// choice is made on the product step, before paying).
    pub async fn reissue_invoice(&self, mut order: OrderRecord) -> Result<OrderRecord, RaError> {
        let data = OrderData::of(&order)?;
        let product = data.product.as_ref().filter(|_| order.amount_fen > 0).ok_or(NoInvoice::Free)?;
        if order.paid_at.is_none() {
            return Err(NoInvoice::NotPaid.into());
        }
        if !product.invoice {
            return Err(NoInvoice::NotRequested.into());
        }
        if product.invoice_email.is_none() {
            return Err(RaError::State("no e-mail address is on file for the invoice".into()));
        }
        // The one issued before is voided with a red-letter invoice first (冲红): one invoice
        // stands for one payment.
        // Saved at once: a voided number is never the order's again, and if the new invoice
        // fails now the RA pass issues it later.
        if let Some(old) = order.invoice_no.take() {
            let audit = self.void_invoice(&order, &old).await?;
            self.save(&mut order, &[&audit]).await?;
        }
        let order = self.issue_invoice(order).await;
        if order.invoice_no.is_none() {
            return Err(RaError::Provider(crate::providers::ProviderError::Unavailable("invoice".into())));
        }
        Ok(order)
    }
}

/// Why an order has no invoice to issue again (`POST .../invoice/reissue`): each is the
/// order's lasting state, not a passing failure, so the caller is told which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoInvoice {
    /// The order charges nothing (a free product, or no product): there is no amount.
    #[error("the order charged nothing: there is no amount to invoice")]
    Free,
    /// The order has an amount but is not paid yet; the invoice comes with the payment.
    #[error("the order is not paid; there is no invoice")]
    NotPaid,
    /// The order was paid without asking for an invoice on its product step.
    #[error("no invoice was asked for with this order")]
    NotRequested,
}

impl NoInvoice {
    /// The reason's name in the problem document (`no_invoice`), for clients to tell them apart.
    pub fn name(self) -> &'static str {
        match self {
            NoInvoice::Free => "free",
            NoInvoice::NotPaid => "not-paid",
            NoInvoice::NotRequested => "not-requested",
        }
    }
}

/// The CN (or O) of a subject, for invoice titles.
fn subject_name(subject: &[(String, String)]) -> String {
    let find = |k: &str| subject.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    find("O").or_else(|| find("CN")).unwrap_or_default()
}

/// What an order in its new (cancelled or rejected) state gives back, in fen: for its audit.
pub(super) fn refund_due_fen(order: &OrderRecord) -> i64 {
    refundable(order).map_or(0, |_| order.amount_fen)
}

/// The intent whose payment an order in its new (cancelled or rejected) state must give
/// back: its own payment, if paid and not refunded.
fn refundable(order: &OrderRecord) -> Option<String> {
    match (&order.payment_ref, order.paid_at, order.refunded_at) {
        (Some(reference), Some(_), None) => Some(reference.clone()),
        _ => None,
    }
}

/// A wallet's name in the intents table.
fn method_name(method: PayMethod) -> &'static str {
    match method {
        PayMethod::Wechat => "wechat",
        PayMethod::Alipay => "alipay",
    }
}

/// The wallet of a stored intent (None for intents recorded before the table existed).
fn parse_method(name: &str) -> Option<PayMethod> {
    match name {
        "wechat" => Some(PayMethod::Wechat),
        "alipay" => Some(PayMethod::Alipay),
        _ => None,
    }
}
