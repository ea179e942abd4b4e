//! Telling applicants what happened (approval, rejection, issuance, completion) by SMS and
//! e-mail, expiry reminders, and the background pass that notices holders' enrolments and
//! retries what a provider or a crash left undone. Notifications are best effort: a failed
//! send is logged and counted by the provider metrics, never undoes the decision.

use super::model::OrderData;
use super::Ra;
use crate::store::OrderRecord;

impl Ra {
    /// Sends the applicant the news of an order.
    pub(super) async fn notify(&self, order: &OrderRecord, what: &str) {
        // Unreadable data is logged by `of`; the order is left for an operator, unannounced.
        let Ok(data) = OrderData::of(order) else { return };
        let (zh, en) = match what {
            "approved" => ("已审核通过", "has been approved"),
            "rejected" => ("未通过审核", "was not approved"),
            "cancelled" => ("已取消", "was cancelled"),
            "issued" => ("证书已签发，请在手机App中查看", "is done: the certificate is in your app"),
            "address_changed" => (
                "的收货地址已修改；如非本人操作，请立即联系客服",
                "had its delivery address changed; if this was not you, call customer service now",
            ),
            _ => ("已办结", "is complete"),
        };
        let reason = order
            .reason
            .as_deref()
            .filter(|_| matches!(what, "rejected" | "cancelled"))
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let text = format!(
            "您的云证书订单 {} {zh}{reason}。Your cloud certificate order {} {en}{reason}.",
            order.id, order.id
        );
        // The agent; before an agent exists (an offline order), the applicant on file.
        let phone = order.agent_phone.clone().or_else(|| data.company.as_ref().map(|c| c.legal_rep.phone.clone()));
        if let Some(phone) = &phone {
            let send = self.providers.sms.send(phone, &text);
            if let Err(e) = crate::providers::call(crate::providers::SMS, "send", self.deadline(), send).await {
                tracing::warn!(order = %order.id, error = %e, "SMS notification not sent");
            }
        }
        let email = data.agent.as_ref().and_then(|a| a.person.email.clone()).or(data.person.and_then(|p| p.email));
        if let Some(to) = email {
            let subject = format!("云证书订单 {} / order {}", order.id, order.id);
            let send = self.providers.email.send(&to, &subject, &text, &[]);
            if let Err(e) = crate::providers::call("email", "send", self.deadline(), send).await {
                tracing::warn!(order = %order.id, error = %e, "e-mail notification not sent");
            }
        }
    }

    /// One pass of the background task: enrolments completing new orders, carry-outs to
    /// retry, expiry reminders. Run by the daemon holding the RA lease; every piece would
    /// still be safe on several daemons at once (compare-and-set on orders, a unique row per
    /// reminder), the lease only saves the duplicate work.
    pub async fn pass(&self) {
        if let Err(e) = self.follow_up_approved().await {
            tracing::warn!(error = %e, "RA task: approved orders");
        }
        if let Err(e) = self.expire_idle().await {
            tracing::warn!(error = %e, "RA task: idle open orders");
        }
        if let Err(e) = self.remind().await {
            tracing::warn!(error = %e, "RA task: reminders");
        }
        if let Err(e) = self.settle_payments().await {
            tracing::warn!(error = %e, "RA task: refunds due, intents to close");
        }
        // Blobs no material references (a crash between replace and collect), after an hour.
        match self.store.sweep_unreferenced_blobs(self.now() - 3600, 500).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "RA task: unreferenced uploads removed"),
            Err(e) => tracing::warn!(error = %e, "RA task: unreferenced uploads"),
        }
    }

    /// Refreshes the order gauges from the database.
    pub async fn gauge(&self) {
        if let Err(e) = self.count().await {
            tracing::warn!(error = %e, "RA task: metrics");
        }
    }

    /// Approved orders, page by page: a new-certificate order whose holder has enrolled in the
    /// app is completed; any other still approved a while after its decision is carried out
    /// again (the first attempt failed). One order failing is logged and the pass goes on
    /// (review M11).
    async fn follow_up_approved(&self) -> Result<(), super::RaError> {
        let started = self.now();
        self.each_order("approved", started + 1, |ra, order| async move { ra.follow_up(order, started).await }).await
    }

    async fn follow_up(&self, mut order: OrderRecord, started: i64) -> Result<(), super::RaError> {
        let Some(approval_id) = order.approval_id.clone() else {
            if order.updated_at < started - 30 {
                self.carry_out(order).await?;
            }
            return Ok(());
        };
        let Some(credential) = self.store.credential_by_approval(&approval_id).await? else { return Ok(()) };
        order.state = "completed".into();
        order.serial = Some(credential.serial.clone());
        let audit = self.event("order.completed", "system", &order, serde_json::json!({ "serial": credential.serial }));
        self.save(&mut order, &[&audit]).await?;
        self.notify(&order, "issued").await;
        Ok(())
    }

    /// Cancels open orders nobody touched for `ra.open_order_days` days, so an abandoned or
    /// hostile application does not hold its subject's one open order per channel for ever
    /// (review M6). Audited as `order.cancelled` by `system`.
    async fn expire_idle(&self) -> Result<(), super::RaError> {
        let before = self.now() - self.config.open_order_days * 86400;
        let reason = format!("cancelled after {} days without activity", self.config.open_order_days);
        self.each_order("open", before, |ra, order| {
            let reason = reason.clone();
            async move { ra.cancel(order, "system", &reason).await.map(|_| ()) }
        })
        .await
    }

    /// Runs `work` on every order in `state` last updated before `updated_before`, a page at
    /// a time, logging and skipping an order that fails.
    async fn each_order<F, Fut>(&self, state: &str, updated_before: i64, work: F) -> Result<(), super::RaError>
    where
        F: Fn(Ra, OrderRecord) -> Fut,
        Fut: std::future::Future<Output = Result<(), super::RaError>>,
    {
        let mut cursor = (i64::MIN, String::new());
        loop {
            let page = self.store.orders_in_state(state, updated_before, &cursor, PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            cursor = (last.updated_at, last.id.clone());
            let full = page.len() as i64 == PAGE;
            for order in page {
                let id = order.id.clone();
                if let Err(e) = work(self.clone(), order).await {
                    tracing::warn!(order = %id, state, error = %e, "RA task: order skipped this pass");
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Expiry reminders: each certificate gets the nearest threshold it has passed, once.
    async fn remind(&self) -> Result<(), super::RaError> {
        let now = self.now();
        let mut days = self.config.reminder_days.clone();
        days.sort_unstable();
        let Some(&widest) = days.last() else { return Ok(()) };
        for (serial, not_after) in self.store.expiring(now, now + widest * 86400).await? {
            let left = (not_after - now + 86399) / 86400;
            let Some(&threshold) = days.iter().find(|d| left <= **d) else { continue };
            if !self.store.claim_reminder(&serial, threshold, now).await? {
                continue;
            }
            let (phones, emails) = self.reminder_recipients(&serial).await?;
            let text = format!("您的云证书（序列号 {serial}）将在 {left} 天后到期，请及时续期。Your cloud certificate {serial} expires in {left} days: renew it.");
            for phone in &phones {
                let send = self.providers.sms.send(phone, &text);
                if let Err(e) = crate::providers::call(crate::providers::SMS, "send", self.deadline(), send).await {
                    tracing::warn!(%serial, error = %e, "expiry reminder not sent");
                }
            }
            let subject = format!("云证书将在 {left} 天后到期 / Your cloud certificate expires in {left} days");
            for to in &emails {
                let send = self.providers.email.send(to, &subject, &text, &[]);
                if let Err(e) = crate::providers::call("email", "send", self.deadline(), send).await {
                    tracing::warn!(%serial, error = %e, "expiry reminder e-mail not sent");
                }
            }
            let audit = crate::store::AuditRecord::new(
                self.clock.as_ref(),
                "certificate.reminded",
                "system",
                Some(&serial),
                serde_json::json!({ "days": threshold, "sms": phones.len(), "emails": emails.len() }),
            );
            self.store.audit(&audit).await?;
        }
        Ok(())
    }

    /// Who an expiry reminder goes to (handbook: the holder and the organisation's certificate
    /// administrator, by SMS and e-mail): the cloud key's holder, the certificate's verified
    /// agent on file and, for an organisation, its administrator now (after a hand-over, the new
    /// one); the e-mail address of the approved order on file. Never a phone or address an open,
    /// failed or cancelled order only typed. Each phone and address once.
    async fn reminder_recipients(&self, serial: &str) -> Result<(Vec<String>, Vec<String>), super::RaError> {
        let mut phones = Vec::new();
        if let Some(c) = self.store.credential_by_serial(serial).await? {
            phones.push(c.phone);
        }
        let mut emails = Vec::new();
        if let Some(contact) = self.store.contact_of_certificate(serial).await? {
            phones.extend(contact.agent_phone.clone());
            let admins = self.store.org_members(&contact.subject_key).await?;
            phones.extend(admins.into_iter().filter(|(_, role)| role == "admin").map(|(phone, _)| phone));
            if let Some(order) = self.store.order(&contact.order_id).await? {
                let data = OrderData::of(&order)?;
                let agent = data.agent.and_then(|a| a.person.email);
                emails.extend(agent.or(data.person.and_then(|p| p.email)));
            }
        }
        phones.sort();
        phones.dedup();
        Ok((phones, emails))
    }

    async fn count(&self) -> Result<(), super::RaError> {
        let m = crate::metrics::get();
        publish_counts(&m.ra_orders, self.store.order_counts().await?);
        let oldest =
            self.store.review_queue(1).await?.first().map(|o| self.now() - o.submitted_at.unwrap_or(o.created_at));
        m.ra_review_oldest_seconds.set(oldest.unwrap_or(0).max(0));
        Ok(())
    }
}

/// Sets the order gauge to `counts` in place, never through a reset: a scrape must not catch it
/// empty. A (flow, state) that has emptied reads 0, which is what a dashboard wants anyway.
fn publish_counts(gauge: &prometheus::IntGaugeVec, counts: Vec<(String, String, i64)>) {
    for (flow, state) in gauge_labels(gauge) {
        if !counts.iter().any(|(f, s, _)| *f == flow && *s == state) {
            gauge.with_label_values(&[&flow, &state]).set(0);
        }
    }
    for (flow, state, n) in counts {
        gauge.with_label_values(&[&flow, &state]).set(n);
    }
}

/// The (flow, state) label pairs the order gauge currently exports.
fn gauge_labels(gauge: &prometheus::IntGaugeVec) -> Vec<(String, String)> {
    use prometheus::core::Collector;
    let label = |m: &prometheus::proto::Metric, name: &str| {
        m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_owned()).unwrap_or_default()
    };
    gauge.collect().iter().flat_map(|f| f.get_metric()).map(|m| (label(m, "flow"), label(m, "state"))).collect()
}

/// Orders read per page by the background pass.
const PAGE: i64 = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_state_reads_zero_and_the_others_their_new_count() {
        let gauge = prometheus::IntGaugeVec::new(prometheus::Opts::new("t", "t"), &["flow", "state"]).unwrap();
        let row = |f: &str, s: &str, n| (f.to_owned(), s.to_owned(), n);
        publish_counts(&gauge, vec![row("org-new", "review", 2), row("org-new", "paid", 1)]);
        publish_counts(&gauge, vec![row("org-new", "review", 3), row("renew", "paid", 4)]);
        let read = |f: &str, s: &str| gauge.with_label_values(&[f, s]).get();
        assert_eq!((read("org-new", "review"), read("org-new", "paid"), read("renew", "paid")), (3, 0, 4));
        assert_eq!(gauge_labels(&gauge).len(), 3);
    }
}
