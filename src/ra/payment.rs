//! Payment: the QR code comes from the provider (steps.rs); the provider's signed webhook
//! moves the order on, once however often it is delivered; a cancellation refunds; a paid
//! order that wants an invoice gets one by e-mail.

use super::flow::Step;
use super::model::OrderData;
use super::{Ra, RaError};
use crate::providers::email::Attachment;
use crate::providers::invoice::InvoiceRequest;
use crate::providers::payment::PaymentStatus;
use crate::store::OrderRecord;

impl Ra {
    /// Applies a payment webhook: verified (signature, freshness), matched to its order and
    /// amount, recorded once. A replay answers as the first delivery did and changes nothing.
    pub async fn payment_webhook(&self, timestamp: &str, signature: &str, body: &[u8]) -> Result<(), RaError> {
        let event = self
            .providers
            .payment
            .verify_webhook(timestamp, signature, body, self.now())
            .map_err(|e| RaError::Webhook(e.to_string()))?;
        let order = self.store.order_by_payment(&event.provider_ref).await?.ok_or(RaError::NotFound)?;
        if event.order_id != order.id || event.amount_fen != order.amount_fen {
            let detail = serde_json::json!({ "event": event.event_id, "amount_fen": event.amount_fen });
            self.store.audit(&self.event("payment.mismatch", "payment-provider", &order, detail)).await?;
            return Err(RaError::BadRequest("the payment does not match its order".into()));
        }
        let mut next = order.clone();
        let mut data = OrderData::of(&order);
        let status = match event.status {
            PaymentStatus::Paid => "paid",
            PaymentStatus::Closed => "closed",
        };
        let kind = match event.status {
            PaymentStatus::Paid if order.state == "open" && order.paid_at.is_none() => {
                data.complete(Step::Payment);
                next.paid_at = Some(self.now());
                next.submitted_at = Some(self.now());
                next.state = "review".into();
                "payment.received"
            }
            // Paid after a cancellation (the QR code was still open): recorded and refunded below.
            PaymentStatus::Paid => "payment.late",
            PaymentStatus::Closed => {
                data.payment = None;
                "payment.closed"
            }
        };
        data.store(&mut next);
        next.updated_at = self.now();
        let detail = serde_json::json!({ "event": event.event_id, "amount_fen": event.amount_fen, "status": status });
        let audit = self.event(kind, "payment-provider", &next, detail);
        if !self.store.apply_payment_event(&event.event_id, status, &next, self.now(), &[&audit]).await? {
            return Ok(()); // replayed
        }
        next.version += 1;
        match kind {
            "payment.received" => self.after_payment(next).await,
            "payment.late" => self.refund_late(next, event.amount_fen).await,
            _ => Ok(()),
        }
    }

    /// A paid order goes to review or, where the channel approves the flow automatically,
    /// is carried out; its invoice is issued.
    async fn after_payment(&self, order: OrderRecord) -> Result<(), RaError> {
        let order = self.issue_invoice(order).await;
        if self.auto_approves(&order).await? {
            self.approve(order, "auto", "approved automatically by the channel").await?;
        } else {
            let queued = self.event("order.submitted", "applicant", &order, serde_json::json!({}));
            self.store.audit(&queued).await?;
        }
        Ok(())
    }

    async fn refund_late(&self, mut order: OrderRecord, amount: i64) -> Result<(), RaError> {
        let reference = order.payment_ref.clone().unwrap_or_default();
        let refund = crate::providers::call(
            "payment",
            "refund",
            self.deadline(),
            self.providers.payment.refund(&reference, amount),
        )
        .await?;
        order.refunded_at = Some(self.now());
        let detail = serde_json::json!({ "refund": refund.refund_ref, "amount_fen": refund.amount_fen });
        let audit = self.event("payment.refunded", "system", &order, detail);
        self.save(&mut order, &[&audit]).await
    }

    /// Refunds a paid order (on cancellation or rejection); returns the amount refunded.
    pub(super) async fn refund(&self, order: &mut OrderRecord) -> Result<i64, RaError> {
        let (Some(reference), Some(_), None) = (order.payment_ref.clone(), order.paid_at, order.refunded_at) else {
            return Ok(0);
        };
        let refund = crate::providers::call(
            "payment",
            "refund",
            self.deadline(),
            self.providers.payment.refund(&reference, order.amount_fen),
        )
        .await?;
        order.refunded_at = Some(self.now());
        Ok(refund.amount_fen)
    }

    /// Issues the e-invoice of a paid order that asked for one and e-mails it. A provider
    /// failure leaves the order without an invoice for the background task to retry.
    pub(super) async fn issue_invoice(&self, mut order: OrderRecord) -> OrderRecord {
        let data = OrderData::of(&order);
        let Some(product) = data.product.clone().filter(|p| p.invoice) else { return order };
        if order.invoice_no.is_some() || order.paid_at.is_none() {
            return order;
        }
        let (title, tax_id) = match (&data.company, &data.person, &data.certificate) {
            (Some(c), _, _) => (c.name.clone(), c.credit_code.clone()),
            (None, Some(p), _) => (p.name.clone(), String::new()),
            (None, None, Some(c)) => {
                (subject_name(&c.subject), if c.profile == "org" { c.identifier.clone() } else { String::new() })
            }
            _ => (String::new(), String::new()),
        };
        let request = InvoiceRequest {
            order_id: order.id.clone(),
            title,
            tax_id,
            item: product.name.clone(),
            amount_fen: order.amount_fen,
        };
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

    /// Re-issues the invoice on request (sent again by e-mail).
    pub async fn reissue_invoice(&self, mut order: OrderRecord) -> Result<OrderRecord, RaError> {
        if order.paid_at.is_none() {
            return Err(RaError::State("the order is not paid; there is no invoice".into()));
        }
        let mut data = OrderData::of(&order);
        let Some(product) = data.product.as_mut() else {
            return Err(RaError::State("the order has no product".into()));
        };
        product.invoice = true;
        if product.invoice_email.is_none() {
            return Err(RaError::State("no e-mail address is on file for the invoice".into()));
        }
        data.store(&mut order);
        order.invoice_no = None;
        let order = self.issue_invoice(order).await;
        if order.invoice_no.is_none() {
            return Err(RaError::Provider(crate::providers::ProviderError::Unavailable("invoice".into())));
        }
        Ok(order)
    }
}

/// The CN (or O) of a subject, for invoice titles.
fn subject_name(subject: &[(String, String)]) -> String {
    let find = |k: &str| subject.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    find("O").or_else(|| find("CN")).unwrap_or_default()
}
