//! Officers' decisions and carrying them out: an approved new certificate becomes an
//! approval the holder's app enrols against; renewal, change, revocation, re-issue, unlock
//! and seal orders act on the CA at once.

use super::channels::Channel;
use super::flow::Flow;
use super::model::OrderData;
use super::{Ra, RaError};
use crate::status::RevocationReason;
use crate::store::{HolderIdentity, OrderRecord, SealRequestRecord};

impl Ra {
    /// Orders waiting for review, oldest first.
    pub async fn queue(&self, limit: i64) -> Result<Vec<OrderRecord>, RaError> {
        Ok(self.store.review_queue(limit.clamp(1, 500)).await?)
    }

    /// An officer received the papers of an offline order: it joins the review queue.
    /// `form_code` is the code printed on the papers: it must be the order's current one.
    pub async fn papers_received(
        &self,
        mut order: OrderRecord,
        officer: &str,
        form_code: &str,
    ) -> Result<OrderRecord, RaError> {
        if order.state != "offline" {
            return Err(RaError::State(format!("the order is {}, not waiting for papers", order.state)));
        }
        // The agent, product and payment are taken online first (handbook B11).
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let channel = self.channel(&order.channel)?;
        let data = OrderData::of(&order)?;
        if let Some(step) = data.next_step(flow, &channel) {
            return Err(RaError::State(format!("the applicant has not completed the {} step online yet", step.name())));
        }
        if form_code.trim().to_uppercase() != data.form_code(&order.id) {
            let detail = serde_json::json!({ "typed": form_code.chars().take(16).collect::<String>() });
            self.store.audit(&self.event("order.papers_refused", officer, &order, detail)).await?;
            return Err(RaError::State(
                "the papers' form code is not this order's: what was entered changed after the form was printed; \
                 the applicant prints and mails the form again"
                    .into(),
            ));
        }
        order.state = "review".into();
        order.submitted_at = Some(self.now());
        let audit = self.event("order.papers_received", officer, &order, serde_json::json!({}));
        self.save(&mut order, &[&audit]).await?;
        Ok(order)
    }

    /// An officer's decision on an order in review. A rejection needs a reason and refunds.
    pub async fn decide(
        &self,
        mut order: OrderRecord,
        officer: &str,
        approve: bool,
        reason: &str,
    ) -> Result<OrderRecord, RaError> {
        if order.state != "review" {
            return Err(RaError::State(format!("the order is {}, not waiting for review", order.state)));
        }
        let wait = self.now() - order.submitted_at.unwrap_or(order.created_at);
        crate::metrics::get().ra_review_wait_seconds.with_label_values(&[&order.flow]).observe(wait.max(0) as f64);
        if approve {
            return self.approve(order, officer, reason).await;
        }
        if reason.trim().is_empty() {
            return Err(RaError::BadRequest("reason: say why the application is rejected".into()));
        }
        // The rejection is recorded first, the refund made after (review L3).
        order.state = "rejected".into();
        order.open_key = None;
        order.reason = Some(reason.trim().to_string());
        order.decided_at = Some(self.now());
        order.decided_by = Some(officer.to_string());
        let due = super::payment::refund_due_fen(&order);
        let audit = self.event(
            "order.rejected",
            officer,
            &order,
            serde_json::json!({ "reason": reason, "refund_due_fen": due }),
        );
        self.save_then_refund(&mut order, &audit).await?;
        self.notify(&order, "rejected").await;
        Ok(order)
    }

    /// Approves and carries out. If carrying out fails the order stays `approved` and the
    /// background task tries again.
    pub(super) async fn approve(
        &self,
        mut order: OrderRecord,
        actor: &str,
        note: &str,
    ) -> Result<OrderRecord, RaError> {
        order.state = "approved".into();
        order.open_key = None;
        order.decided_at = Some(self.now());
        order.decided_by = Some(actor.to_string());
        let audit = self.event("order.approved", actor, &order, serde_json::json!({ "note": note }));
        let contact = super::contacts::of_approved(&order, self.now())?;
        self.save_with(&mut order, contact.as_ref(), &[&audit]).await?;
        self.notify(&order, "approved").await;
        self.carry_out(order).await
    }

    /// Carries out an approved order (idempotent per order: a new-certificate order keeps the
    /// approval it created; the others end `completed`).
    pub async fn carry_out(&self, mut order: OrderRecord) -> Result<OrderRecord, RaError> {
        if order.state != "approved" || order.approval_id.is_some() {
            return Ok(order);
        }
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let data = OrderData::of(&order)?;
        let actor = format!("ra:{}", order.id);
        if let Some(reason) = self.certificate_gone(flow, &data).await? {
            return self.abandon(order, &actor, &reason).await;
        }
        let outcome = self.act(&mut order, flow, &data, &actor).await;
        let detail = match &outcome {
            Ok(()) => serde_json::json!({ "outcome": "done" }),
            Err(e) => serde_json::json!({ "outcome": "failed", "error": e.to_string() }),
        };
        if outcome.is_ok() && order.approval_id.is_none() {
            order.state = "completed".into();
        }
        let audit = self.event("order.carried_out", &actor, &order, detail);
        self.save(&mut order, &[&audit]).await?;
        outcome?;
        if order.state == "completed" {
            self.notify(&order, "completed").await;
        }
        Ok(order)
    }

    /// Why an approved order about a certificate can never be carried out: the certificate as
    /// stored now (not as the order saw it) was revoked, or expired, after the certificate step
    /// (a key compromise reported while the renewal waited for payment, say). None for a
    /// revocation, and while the certificate is still issued and valid.
    async fn certificate_gone(&self, flow: Flow, data: &OrderData) -> Result<Option<String>, RaError> {
        if !matches!(flow, Flow::Renewal | Flow::Change | Flow::Reissue | Flow::Unlock) {
            return Ok(None);
        }
        let Some(c) = data.certificate.as_ref() else { return Ok(None) };
        let Some(stored) = self.store.certificate(&c.serial).await? else {
            return Ok(Some(format!("certificate {} is gone; nothing was done", c.serial)));
        };
        let expired = stored.not_after <= self.now() && flow != Flow::Reissue;
        Ok((stored.status != "issued" || expired).then(|| {
            let now = if stored.status != "issued" { stored.status.as_str() } else { "expired" };
            format!("certificate {} was {now} after the order chose it; nothing was issued or changed", c.serial)
        }))
    }

    /// Ends an approved order that can never be carried out (see [`Ra::certificate_gone`]):
    /// cancelled with the reason, the payment refunded after that is recorded, the applicant
    /// told. Retrying it for ever would help nobody.
    async fn abandon(&self, mut order: OrderRecord, actor: &str, reason: &str) -> Result<OrderRecord, RaError> {
        order.state = "cancelled".into();
        order.open_key = None;
        order.reason = Some(reason.to_string());
        let detail = serde_json::json!({
            "reason": reason,
            "at": "carry-out",
            "refund_due_fen": super::payment::refund_due_fen(&order),
        });
        let audit = self.event("order.cancelled", actor, &order, detail);
        self.save_then_refund(&mut order, &audit).await?;
        self.notify(&order, "cancelled").await;
        Ok(order)
    }

    async fn act(&self, order: &mut OrderRecord, flow: Flow, data: &OrderData, actor: &str) -> Result<(), RaError> {
        let fail = |e: &dyn std::fmt::Display| RaError::CarryOut(e.to_string());
        let custody = &self.services.custody;
        let cert = data.certificate.as_ref();
        match flow {
            Flow::OrgNew | Flow::PersonalNew => {
                let (profile, subject, phone, holder) =
                    new_subject(flow, data).ok_or_else(|| RaError::CarryOut("the order has no subject".into()))?;
                // The seal first: the approval marks the order carried out, so a seal that
                // failed after it would never be made.
                if let Some(c) = data.company.as_ref().filter(|_| self.order_includes_seal(order, flow, data)) {
                    self.add_seal(order, &c.credit_code, &c.name, actor).await?;
                }
                let approval =
                    custody.create_approval(profile, subject, &phone, holder, actor).await.map_err(|e| fail(&e))?;
                order.approval_id = Some(approval.id);
            }
            Flow::Reissue => {
                let c = cert.ok_or_else(|| RaError::CarryOut("no certificate".into()))?;
                self.revoke(&c.serial, RevocationReason::Superseded, actor).await?;
                let phone = order.agent_phone.clone().unwrap_or_else(|| c.holder_phone.clone());
                // The new key's holder: this order's verified agent (organisations); a personal
                // certificate's holder is its subject.
                let holder = data.agent.as_ref().map(|a| holder_of(&a.person));
                let approval = custody
                    .create_approval(&c.profile, c.subject.clone(), &phone, holder, actor)
                    .await
                    .map_err(|e| fail(&e))?;
                order.approval_id = Some(approval.id);
            }
            Flow::Revocation => {
                let c = cert.ok_or_else(|| RaError::CarryOut("no certificate".into()))?;
                let reason = data
                    .revocation_reason
                    .as_deref()
                    .unwrap_or("cessationOfOperation")
                    .parse()
                    .unwrap_or(RevocationReason::CessationOfOperation);
                self.revoke(&c.serial, reason, actor).await?;
            }
            Flow::Renewal | Flow::Change => {
                let c = cert.ok_or_else(|| RaError::CarryOut("no certificate".into()))?;
                // The certificate as it is now, not as the order saw it: one revoked (a key
                // compromise, say) or expired since the certificate step is not renewed.
                let stored = self
                    .store
                    .certificate(&c.serial)
                    .await?
                    .ok_or_else(|| RaError::CarryOut(format!("certificate {} is gone", c.serial)))?;
                if stored.status != "issued" || stored.not_after <= self.now() {
                    return Err(RaError::CarryOut(format!(
                        "certificate {} is {} since the order chose it; nothing is issued",
                        c.serial,
                        if stored.status != "issued" { stored.status.as_str() } else { "expired" }
                    )));
                }
                // Both carry the subject data entered and checked again in the order.
                let subject = changed_subject(c, data);
                // A renewal inside the window keeps the days paid (handbook §3.1).
                let until = (flow == Flow::Renewal).then_some(stored.not_after);
                let issued = match self.store.credential_by_serial(&c.serial).await? {
                    Some(credential) => {
                        custody.recertify(&credential, &c.profile, subject, until, actor).await.map_err(|e| fail(&e))?
                    }
                    None => {
                        let lifecycle = crate::lifecycle::Lifecycle {
                            issuance: &self.services.issuance,
                            status: &self.services.status,
                            store: &self.store,
                        };
                        lifecycle.renew(&c.serial, None, actor).await.map_err(|e| fail(&e))?
                    }
                };
                if flow == Flow::Change {
                    self.revoke(&c.serial, RevocationReason::Superseded, actor).await?;
                }
                if self.order_includes_seal(order, flow, data) {
                    self.add_seal(order, &c.identifier, &organisation_name(c), actor).await?;
                }
                order.serial = Some(issued.serial);
            }
            Flow::Unlock => {
                let c = cert.ok_or_else(|| RaError::CarryOut("no certificate".into()))?;
                let credential = self
                    .store
                    .credential_by_serial(&c.serial)
                    .await?
                    .ok_or_else(|| RaError::CarryOut("no cloud key".into()))?;
                let by_officer = order.decided_by.as_deref().is_some_and(|d| d != "auto");
                custody.lift_lock(&credential, actor, &order.id, by_officer).await.map_err(|e| fail(&e))?;
                self.tell_holder_unlocked(&credential.phone, &c.serial, &order.id).await;
            }
            Flow::Seal => {
                let c = cert.ok_or_else(|| RaError::CarryOut("no certificate".into()))?;
                self.add_seal(order, &c.identifier, &organisation_name(c), actor).await?
            }
        }
        Ok(())
    }

    /// Texts the key's holder that their PIN lock was lifted (review M1): an unlock the holder
    /// did not ask for is how they learn someone else is guessing their PIN. Best effort, as
    /// every notification; a failed send is logged.
    async fn tell_holder_unlocked(&self, phone: &str, serial: &str, order: &str) {
        let text = format!(
            "您的云证书 {serial} 的PIN锁定已由订单 {order} 解除；如非本人操作，请立即申请吊销。\
             The PIN lock of your cloud certificate {serial} was lifted by order {order}; if this was not you, apply for revocation at once."
        );
        let send = self.providers.sms.send(phone, &text);
        if let Err(e) = crate::providers::call(crate::providers::SMS, "send", self.deadline(), send).await {
            tracing::warn!(order, error = %e, "unlock notice to the holder not sent");
        }
    }

    async fn revoke(&self, serial: &str, reason: RevocationReason, actor: &str) -> Result<(), RaError> {
        match self.services.status.revoke(serial, reason, None, actor).await {
            Ok(_) => Ok(()),
            Err(e) => Err(RaError::CarryOut(e.to_string())),
        }
    }

    /// Whether the order's product includes a seal ([`OrderData::includes_seal`]).
    fn order_includes_seal(&self, order: &OrderRecord, flow: Flow, data: &OrderData) -> bool {
        self.channel(&order.channel).is_ok_and(|channel| data.includes_seal(flow, &channel))
    }

    /// Makes the organisation's seal from the order's seal image, approved by the order's own
    /// review. Once per order: the request's id is the order's, so a carry-out tried again
    /// after a later step failed does not make a second seal.
    async fn add_seal(&self, order: &OrderRecord, credit_code: &str, name: &str, actor: &str) -> Result<(), RaError> {
        let request_id = format!("order-{}", order.id);
        if self.store.seal_request(&request_id).await?.is_some_and(|r| r.status != "pending") {
            return Ok(());
        }
        // 变章 or 补章 and the name, as the product step chose (checked there, and again here:
        // the seal to change must still be one of this organisation's active seals).
        let product = OrderData::of(order)?.product;
        let change = product.as_ref().and_then(|p| p.seal_change.clone());
        if let Some(id) = &change {
            let seal = self.store.seal(id).await?;
            if !seal.is_some_and(|s| s.credit_code == credit_code && s.status == "active") {
                return Err(RaError::CarryOut(format!(
                    "seal {id} to change is no longer an active seal of {credit_code}"
                )));
            }
        }
        let name = product.as_ref().and_then(|p| p.seal_name.as_deref()).unwrap_or(name);
        let materials = self.store.materials(&order.id).await?;
        let image = materials
            .iter()
            .find(|m| m.kind == "seal-image")
            .ok_or_else(|| RaError::CarryOut("no seal image".into()))?;
        let (_, png) = self
            .store
            .material_bytes(&order.id, &image.sha256)
            .await?
            .ok_or_else(|| RaError::CarryOut("seal image missing".into()))?;
        if self.store.seal_request(&request_id).await?.is_none() {
            let request = SealRequestRecord {
                id: request_id.clone(),
                credit_code: credit_code.to_string(),
                seal_id: change,
                name: name.chars().take(64).collect(),
                png,
                requested_by: order.agent_phone.clone().unwrap_or_default(),
                status: "pending".into(),
                created_at: self.now(),
            };
            let detail =
                serde_json::json!({ "request": request.id, "change_of": request.seal_id, "name": request.name });
            let audit = self.event("seal.requested", actor, order, detail);
            self.store.insert_order_seal_request(&request, &audit).await?;
        }
        self.services.seals.decide(actor, &request_id, true).await.map_err(|e| RaError::CarryOut(e.to_string()))?;
        Ok(())
    }
}

/// The organisation's name on a certificate (its O, else "seal").
fn organisation_name(c: &super::model::CertificateRef) -> String {
    c.subject.iter().find(|(k, _)| k == "O").map_or_else(|| "seal".to_string(), |(_, v)| v.clone())
}

/// The approval's profile, subject and holder phone of a new-certificate order.
/// Profile, subject, phone and the person who will hold the key.
type NewHolder = (&'static str, Vec<(String, String)>, String, Option<HolderIdentity>);

/// The identity a person's data gives an approval's holder: their identifier, with the
/// document's type when it is not the resident ID (the identity proof passes it on).
fn holder_of(p: &super::model::Person) -> HolderIdentity {
    HolderIdentity { name: p.name.clone(), id_number: p.identifier() }
}

fn new_subject(flow: Flow, data: &OrderData) -> Option<NewHolder> {
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    match flow {
        Flow::OrgNew => {
            let c = data.company.as_ref()?;
            let agent = &data.agent.as_ref()?.person;
            Some((
                "org",
                vec![pair("C", "CN"), pair("O", &c.name), pair("CN", &c.name), pair("serialNumber", &c.credit_code)],
                agent.phone.clone(),
                Some(holder_of(agent)),
            ))
        }
        _ => {
            let p = data.person.as_ref()?;
            Some((
                "personal",
                // A document other than the resident ID is written with its type
                // (`passport:E12345678`), never as a bare number (ARCHITECTURE, "ID types").
                vec![pair("C", "CN"), pair("CN", &p.name), pair("serialNumber", &p.identifier())],
                p.phone.clone(),
                Some(holder_of(p)),
            ))
        }
    }
}

/// The subject after an information change: the new names, the same identifier.
pub(super) fn changed_subject(c: &super::model::CertificateRef, data: &OrderData) -> Vec<(String, String)> {
    let mut subject = c.subject.clone();
    let mut set = |k: &str, v: &str| {
        if let Some(slot) = subject.iter_mut().find(|(a, _)| a == k) {
            slot.1 = v.to_string();
        }
    };
    if let Some(company) = &data.company {
        set("O", &company.name);
        set("CN", &company.name);
    }
    if let Some(person) = &data.person {
        set("CN", &person.name);
    }
    subject
}

/// The printable application form of the offline path.
pub(super) fn form_pdf(order: &OrderRecord, channel: &Channel) -> Result<Vec<u8>, RaError> {
    Ok(crate::pdf::render(&form(order, &OrderData::of(order)?, channel)))
}

/// The form's content: what was entered, the product and price, where to pay and to mail the
/// papers (the channel's `offline`), and the fields to sign and stamp.
fn form(order: &OrderRecord, data: &OrderData, channel: &Channel) -> crate::pdf::Document {
    use crate::pdf::{Document, Section};
    let row = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut sections = vec![Section {
        heading: "订单 / Order".into(),
        rows: vec![
            row("订单号 Order", &order.id),
            row("渠道 Channel", &channel.title),
            row("业务 Flow", &order.flow),
            row("表单校验码 Form code", &data.form_code(&order.id)),
        ],
    }];
    if let Some(c) = &data.company {
        sections.push(Section {
            heading: "单位信息 / Organisation".into(),
            rows: vec![
                row("单位名称 Name", &c.name),
                row("统一社会信用代码 Credit code", &c.credit_code),
                row("法定代表人 Legal representative", &c.legal_rep.name),
                row("证件类型 ID type", c.legal_rep.id_type.label()),
                row("证件号码 ID number", &c.legal_rep.id_number),
                row("手机 Phone", &c.legal_rep.phone),
            ],
        });
    }
    if let Some(p) = &data.person {
        sections.push(Section {
            heading: "申请人 / Applicant".into(),
            rows: vec![
                row("姓名 Name", &p.name),
                row("证件类型 ID type", p.id_type.label()),
                row("证件号码 ID number", &p.id_number),
                row("手机 Phone", &p.phone),
            ],
        });
    }
    if let Some(a) = &data.agent {
        sections.push(Section {
            heading: "经办人 / Agent".into(),
            rows: vec![
                row("姓名 Name", &a.person.name),
                row("证件号码 ID number", &a.person.id_number),
                row("手机 Phone", &a.person.phone),
            ],
        });
    }
    sections.extend(offline_sections(order, data, channel));
    sections.push(Section {
        heading: "签章 / Signatures".into(),
        rows: vec![
            row("申请单位盖章 Company stamp", "____________________"),
            row("法定代表人签字 Legal representative", "____________________"),
            row("经办人签字 Agent", "____________________"),
            row("日期 Date", "____________________"),
            row("邮寄材料 Mail with", "营业执照复印件、身份证复印件、本申请表 / licence copy, ID copies, this form"),
        ],
    });
    Document { title: "云证书申请表 / Cloud certificate application form".into(), sections }
}

/// Product and price (the one chosen, or the flow's products to tick), payment and mailing.
fn offline_sections(order: &OrderRecord, data: &OrderData, channel: &Channel) -> Vec<crate::pdf::Section> {
    use crate::pdf::Section;
    let row = |k: &str, v: String| (k.to_string(), v);
    let yuan = |fen: i64| format!("{}.{:02} 元 CNY", fen / 100, fen % 100);
    let products = match (&data.product, Flow::parse(&order.flow)) {
        (Some(p), _) => vec![row("产品 Product", format!("{} · {}", p.name, yuan(p.price_fen)))],
        (None, Some(flow)) => channel
            .products_for(flow)
            .map(|p| row("[  ] 产品 Product", format!("{} · {}", p.name, yuan(p.price_fen))))
            .collect(),
        (None, None) => Vec::new(),
    };
    let mut sections = vec![Section { heading: "产品与费用 / Product and price".into(), rows: products }];
    let phone = channel.service_phone.clone().unwrap_or_default();
    sections.push(match &channel.offline {
        Some(offline) => Section {
            heading: "缴费与邮寄 / Payment and mailing".into(),
            rows: match order.paid_at {
                Some(_) => vec![row("缴费 Payment", format!("已在线支付 {} / paid online", yuan(order.amount_fen)))],
                None => vec![
                    row("缴费 Payment", offline.payment.clone()),
                    row("转账附言 Reference", format!("订单号 {} / order number", order.id)),
                ],
            }
            .into_iter()
            .chain([row("邮寄地址 Mail to", offline.mail_to.clone())])
            .collect(),
        },
        None => Section {
            heading: "缴费与邮寄 / Payment and mailing".into(),
            rows: vec![row("请致电客服 Call customer service", phone)],
        },
    });
    sections
}

impl Ra {
    /// Records that an officer read an order's personal data or one of its materials (`kind`
    /// names which, `detail` says what beyond the order and flow; review L10). Called before
    /// the data is served: a read that cannot be audited does not happen. Written once per
    /// officer, kind and `what` (the order, or the order and material) per minute, with the
    /// count of the reads between, so a loop of reads cannot flood the log.
    pub async fn audit_read(
        &self,
        officer: &str,
        order: &OrderRecord,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<(), RaError> {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("order".into(), order.id.clone().into());
            map.insert("flow".into(), order.flow.clone().into());
        }
        let what = match detail.get("sha256").and_then(serde_json::Value::as_str) {
            Some(material) => format!("{}/{material}", order.id),
            None => order.id.clone(),
        };
        self.audit_officer_read(officer, kind, &what, order.serial.as_deref(), detail).await?;
        tracing::info!(target: "audit", kind, order = %order.id, officer, "officer read an order's personal data");
        Ok(())
    }

    /// Records a back-office request another site made a browser send with its client
    /// certificate (a form post, a review page loaded cross-site): refused, once per caller per
    /// minute with the count, so a hostile page looping requests cannot flood the log.
    pub async fn refused_cross_site(&self, caller: &str, detail: serde_json::Value) {
        self.refusals.refused("access.cross_site_refused", caller, caller, None, detail).await;
    }

    /// Records that an officer read personal data or material bytes outside an order (seal
    /// requests, certificate records), as [`Ra::audit_read`] does for orders: before it is
    /// served, once per officer, kind and `what` per minute.
    pub async fn audit_officer_read(
        &self,
        officer: &str,
        kind: &str,
        what: &str,
        serial: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<(), RaError> {
        self.reads.read(kind, officer, &format!("{officer}|{what}"), serial, detail).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_order(data: &str) -> OrderRecord {
        OrderRecord::fixture("RA20261207-OFFLINE1", "org-new", "offline", data)
    }

    fn rows(doc: &crate::pdf::Document) -> Vec<(String, String)> {
        doc.sections.iter().flat_map(|s| s.rows.clone()).collect()
    }

    fn channel() -> Channel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        super::super::channels::load_all(&dir).unwrap().remove("default").unwrap()
    }

    /// Handbook 线下办理: the printed form says what to buy at what price, how to pay (with the
    /// order number as the reference) and where to mail the papers.
    #[test]
    fn the_offline_form_has_the_products_prices_payment_and_mailing_address() {
        let channel = channel();
        let offline = channel.offline.clone().expect("the shipped channel has offline instructions");
        let doc = form(&offline_order("{}"), &OrderData::default(), &channel);
        let rows = rows(&doc);
        let has = |k: &str, v: &str| rows.iter().any(|(a, b)| a.contains(k) && b.contains(v));
        assert!(has("[  ] 产品", "机构云证书（1年） · 400.00 元"), "a product to tick, with its price: {rows:?}");
        assert!(!rows.iter().any(|(_, b)| b.contains("个人云证书")), "only the flow's products");
        assert!(has("缴费", &offline.payment) && has("附言", "RA20261207-OFFLINE1"), "{rows:?}");
        assert!(has("邮寄地址", &offline.mail_to), "{rows:?}");
        let chosen =
            r#"{"product":{"id":"org-cloud-1y","name":"机构云证书（1年）","price_fen":40000,"invoice":false}}"#;
        let rows = super::tests::rows(&form(&offline_order(chosen), &serde_json::from_str(chosen).unwrap(), &channel));
        assert_eq!(rows.iter().filter(|(k, _)| k.contains("产品")).count(), 1, "the chosen product alone: {rows:?}");
        let mut without = channel;
        without.offline = None;
        let rows = super::tests::rows(&form(&offline_order("{}"), &OrderData::default(), &without));
        assert!(rows.iter().any(|(k, v)| k.contains("客服") && v == "400-600-0000"), "{rows:?}");
    }
}
