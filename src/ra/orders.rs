//! Opening, showing, cancelling orders; the offline path and its printable form; SMS codes;
//! uploads; the legal representative's online authorisation.

use rand::Rng;

use super::channels::MATERIAL_KINDS;
use super::flow::{Flow, Step};
use super::model::{OrderData, OrderView};
use super::{new_token, token_hash, Ra, RaError};
use crate::mobile::Purpose;
use crate::store::{AuditRecord, OrderRecord};

/// Why the online authorisation is not offered: no phone is proven to be the representative's.
pub(super) const NO_PROVEN_REP_PHONE: &str = "the legal representative's phone was not proven by this order's check or an approved order: upload the stamped authorisation letter (authorization-letter) instead";

/// What an SMS code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodePurpose {
    /// The certificate holder's consent to an order about their certificate.
    Certificate,
    /// The application signature (to the agent).
    Signature,
    /// The legal representative's online authorisation of the agent.
    Authorization,
    /// The company check's code to the legal representative's phone, sent again (the first
    /// goes out with the company step).
    LegalRep,
}

impl Ra {
    /// Opens an order; returns it with the applicant's token (shown once).
    pub async fn create(&self, channel: &str, flow: &str) -> Result<(OrderRecord, String), RaError> {
        let channel = self.channel(channel)?;
        let flow = Flow::parse(flow).ok_or_else(|| {
            RaError::BadRequest(format!(
                "flow: one of {}",
                Flow::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        if !channel.enables(flow) {
            return Err(RaError::NotOffered(format!("the {} channel does not offer {}", channel.name, flow.name())));
        }
        let now = self.now();
        let token = new_token();
        let order = OrderRecord {
            id: order_number(self.clock.now()),
            channel: channel.name.clone(),
            flow: flow.name().into(),
            state: "open".into(),
            subject_key: None,
            open_key: None,
            agent_phone: None,
            token_hash: token_hash(&token),
            data: "{}".into(),
            serial: None,
            approval_id: None,
            amount_fen: channel.price_from(flow),
            payment_ref: None,
            paid_at: None,
            refunded_at: None,
            invoice_no: None,
            submitted_at: None,
            decided_at: None,
            decided_by: None,
            reason: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let audit = self.event("order.created", "applicant", &order, serde_json::json!({ "channel": order.channel }));
        self.store.insert_order(&order, &audit).await?;
        Ok((order, token))
    }

    /// The applicant's view.
    pub async fn view(&self, order: &OrderRecord) -> Result<OrderView, RaError> {
        let channel = self.channel(&order.channel)?;
        let materials = self.store.materials(&order.id).await?;
        let mut view = OrderView::new(order, &channel, &materials)?;
        // Only while the seal order can still choose, and only once its certificate was chosen
        // with consent (an order that goes to an officer for lack of it lists nothing).
        if order.flow == Flow::Seal.name() && order.state == "open" && order.open_key.is_some() {
            view.seals = self.changeable_seals(&OrderData::of(order)?).await?;
        }
        Ok(view)
    }

    /// The active seals of a seal order's organisation (once its certificate is chosen): what
    /// a 变章 may replace.
    pub(super) async fn changeable_seals(&self, data: &OrderData) -> Result<Vec<super::model::SealOption>, RaError> {
        let Some(c) = data.certificate.as_ref().filter(|c| c.profile == "org") else { return Ok(Vec::new()) };
        let seals = self.store.seals_of(&c.identifier).await?;
        Ok(seals
            .into_iter()
            .filter(|s| s.status == "active")
            .map(|s| super::model::SealOption { id: s.id, name: s.name })
            .collect())
    }

    /// The view as a reader reached it: a query session sees the order masked (e-mails too)
    /// and nothing that acts on it (the payment QR code, a face-check link).
    pub async fn view_as(&self, order: &OrderRecord, access: super::Access) -> Result<OrderView, RaError> {
        let mut view = self.view(order).await?;
        if access == super::Access::Query {
            view = view.masked();
            view.payment = None;
            view.pending_check = None;
        }
        Ok(view)
    }

    /// Cancels an order not yet decided; a payment is refunded after the cancellation is
    /// recorded (review L3: a cancel that loses the race with a decision refunds nothing).
    pub async fn cancel(&self, mut order: OrderRecord, actor: &str, reason: &str) -> Result<OrderRecord, RaError> {
        if !matches!(order.state.as_str(), "open" | "offline" | "review") {
            return Err(RaError::State(format!("the order is {} and can no longer be cancelled", order.state)));
        }
        order.state = "cancelled".into();
        order.open_key = None;
        order.reason = Some(reason.to_string());
        let detail = serde_json::json!({ "reason": reason, "refund_due_fen": super::payment::refund_due_fen(&order) });
        let audit = self.event("order.cancelled", actor, &order, detail);
        self.save_then_refund(&mut order, &audit).await?;
        Ok(order)
    }

    /// Switches to the offline path after a failed identity check: the applicant prints the
    /// form, mails the papers, and an officer reviews them.
    pub async fn go_offline(&self, mut order: OrderRecord) -> Result<OrderRecord, RaError> {
        let data = OrderData::of(&order)?;
        if order.state != "open" {
            return Err(RaError::State(format!("the order is {}", order.state)));
        }
        if data.check_failures == 0 {
            return Err(RaError::State(
                "the offline path is for applications whose online identity check failed".into(),
            ));
        }
        if order.subject_key.is_none() {
            return Err(RaError::State("enter the company or personal data first; the form carries it".into()));
        }
        // The handbook's offline path is for new certificates (B11, C7). A service on an
        // existing certificate acts on it through its holder's consent and checks; on paper
        // nobody would be verified to receive a re-issued key.
        if !matches!(Flow::parse(&order.flow), Some(Flow::OrgNew | Flow::PersonalNew)) {
            return Err(RaError::State(
                "the offline path is for new certificates: correct the data, or call customer service".into(),
            ));
        }
        let mut data = data;
        data.offline = true;
        data.store(&mut order);
        order.state = "offline".into();
        let audit = self.event("order.offline", "applicant", &order, serde_json::json!({}));
        self.save(&mut order, &[&audit]).await?;
        Ok(order)
    }

    /// The printable application form (PDF) of an order.
    pub fn form(&self, order: &OrderRecord) -> Result<Vec<u8>, RaError> {
        let channel = self.channel(&order.channel)?;
        super::review::form_pdf(order, &channel)
    }

    /// Sends a one-time code for a step.
    pub async fn send_code(
        &self,
        order: &OrderRecord,
        purpose: CodePurpose,
        serial: Option<&str>,
    ) -> Result<(), RaError> {
        if order.state != "open" {
            return Err(RaError::State(format!("the order is {}", order.state)));
        }
        let (phone, purpose, object) = match purpose {
            CodePurpose::Certificate => {
                let serial =
                    serial.ok_or_else(|| RaError::BadRequest("serial: the certificate's serial number".into()))?;
                let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
                let (cert, phone) = self.certificate_holder(serial, flow).await?;
                let phone = phone
                    .ok_or_else(|| RaError::State(format!("{}; continue without a code", super::steps::NO_CONTACT)))?;
                (phone, Purpose::Consent, consent_object(order, &cert.serial))
            }
            CodePurpose::Signature => {
                let phone = order.agent_phone.clone().ok_or(RaError::State("the agent is not verified yet".into()))?;
                (phone, Purpose::ApplicationSignature, order.id.clone())
            }
            // The legal representative gets a link to read and sign the letter on their own
            // phone; the code to sign with is asked for there, never typed by the agent.
            CodePurpose::Authorization => return self.send_letter_link(order.clone()).await,
            CodePurpose::LegalRep => {
                let (phone, object) = self.awaited_legal_rep_code(order)?;
                (phone, Purpose::LegalRepCheck, object)
            }
        };
        self.services.mobile.send_code(&phone, purpose, &object).await?;
        Ok(())
    }

    /// The legal representative's phone and what the code is bound to, while the order waits
    /// for the code the company check texted them; nothing else may be sent there this way.
    fn awaited_legal_rep_code(&self, order: &OrderRecord) -> Result<(String, String), RaError> {
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let channel = self.channel(&order.channel)?;
        let data = OrderData::of(order)?;
        match (data.next_step(flow, &channel), &data.subject_check, &data.company) {
            (Some(Step::SubjectCheck), Some(p), Some(c)) if p.method.texts_legal_rep() => Ok((
                c.legal_rep.phone.clone(),
                super::steps::legal_rep_code_object(&order.id, &p.reference, &c.credit_code),
            )),
            _ => Err(RaError::State("the order is not waiting for the legal representative's code".into())),
        }
    }

    /// The phone the legal representative's online authorisation goes to, once there is
    /// something to authorise: the company and its check, the agent and theirs, all done (a
    /// company step that failed its check, or an agent not yet verified, authorises nothing;
    /// running either step again withdraws the authorisation).
    ///
    /// Only a phone proven to be the legal representative's (review M5): the one this order's
    /// check proved (carrier, bank card's reserved phone, face link texted to it), else the
    /// one on file from an approved order for this same representative. A phone the applicant
    /// merely typed gets nothing: the stamped letter (upload `authorization-letter`) is the
    /// way then.
    pub(super) async fn authorisation_phone(&self, order: &OrderRecord, data: &OrderData) -> Result<String, RaError> {
        match &data.agent {
            Some(a) if !a.legal_rep_in_person => {}
            Some(_) => {
                return Err(RaError::State(
                    "the legal representative applies in person; no authorisation is needed".into(),
                ))
            }
            None => return Err(RaError::State("enter the agent first".into())),
        }
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let channel = self.channel(&order.channel)?;
        let steps = data.steps(flow, &channel);
        let last = steps.iter().rposition(|s| matches!(s, Step::Agent | Step::AgentCheck)).unwrap_or(0);
        if order.agent_phone.is_none() || !steps[..=last].iter().all(|s| data.done.contains(s)) {
            return Err(RaError::State("the company, the agent and their checks come first".into()));
        }
        let company = data.company.as_ref().ok_or(RaError::State("enter the company first".into()))?;
        let rep = &company.legal_rep;
        if data.legal_rep_phone_checked {
            return Ok(rep.phone.clone());
        }
        if let Some((name, id_number, Some(phone))) = self.on_file(&company.credit_code).await?.legal_rep {
            if name == rep.name && id_number == rep.identifier() {
                return Ok(phone);
            }
        }
        Err(RaError::NotOffered(NO_PROVEN_REP_PHONE.into()))
    }

    /// The legal representative authorises the agent online with the code texted to them,
    /// instead of a stamped letter: on their own letter page only ([`Ra::sign_letter`]).
    /// `object` is what the code was texted for: the order and the link it was asked through.
    pub(super) async fn authorize_online(
        &self,
        mut order: OrderRecord,
        object: &str,
        code: &str,
    ) -> Result<OrderRecord, RaError> {
        if order.state != "open" {
            return Err(RaError::State(format!("the order is {}", order.state)));
        }
        let mut data = OrderData::of(&order)?;
        let phone = self.authorisation_phone(&order, &data).await?;
        self.services.mobile.check_code(&phone, Purpose::LegalRepAuthorisation, object, code.trim()).await?;
        // The letter they signed (scope and period) is kept with the order as evidence.
        self.save_signed_letter(&mut order, &mut data, &phone).await?;
        Ok(order)
    }

    /// Stores an uploaded material after checking its content.
    pub async fn upload(&self, order: &OrderRecord, kind: &str, bytes: &[u8]) -> Result<(), RaError> {
        if !matches!(order.state.as_str(), "open" | "offline") {
            return Err(RaError::State(format!("the order is {}; materials can no longer change", order.state)));
        }
        if !MATERIAL_KINDS.contains(&kind) {
            return Err(RaError::BadRequest(format!("kind: one of {}", MATERIAL_KINDS.join(", "))));
        }
        // The letter the legal representative signed online is the evidence of what they
        // authorised: the applicant does not replace it with a file of their own.
        if kind == "authorization-letter" && OrderData::of(order)?.authorized_online_at.is_some() {
            return Err(RaError::State(
                "the legal representative signed the authorisation letter online; it is kept as signed".into(),
            ));
        }
        let refuse = |e: super::materials::MaterialError| {
            RaError::Invalid(vec![super::validate::FieldError {
                field: format!("materials.{kind}"),
                code: e.code(),
                message: e.to_string(),
            }])
        };
        let material = super::materials::check(bytes, self.config.max_material_bytes).map_err(refuse)?;
        if kind == "seal-image" {
            crate::seals::check_png(bytes).map_err(|e| RaError::BadRequest(format!("seal-image: {e}")))?;
        }
        let detail = serde_json::json!({ "kind": kind, "sha256": material.sha256, "bytes": bytes.len(), "type": material.content_type });
        let audit = self.event("order.material", "applicant", order, detail);
        let new = crate::store::NewMaterial {
            order_id: &order.id,
            kind,
            sha256: &material.sha256,
            content_type: material.content_type,
            bytes,
        };
        let bounds = super::materials::bounds(&self.config);
        if let Err(refusal) = self.store.put_material_within(&new, bounds, self.now(), &audit).await? {
            let error = super::materials::MaterialError::from_refusal(refusal, &self.config);
            tracing::info!(order = %order.id, kind, error = %error, "upload refused by the order's bounds");
            let detail = serde_json::json!({ "kind": kind, "bytes": bytes.len(), "bound": error.code() });
            self.store.audit(&self.event("order.upload_refused", "applicant", order, detail)).await?;
            return Err(refuse(error));
        }
        Ok(())
    }

    /// Changes the delivery address of a shipped product until it ships (an approved
    /// order is handed to dispatch: from then on the address is fixed).
    pub async fn change_address(&self, mut order: OrderRecord, address: &str) -> Result<OrderRecord, RaError> {
        if !matches!(order.state.as_str(), "open" | "offline" | "review") {
            return Err(RaError::State("the order has been dispatched; the address can no longer change".into()));
        }
        let mut data = OrderData::of(&order)?;
        let product = data.product.as_mut().filter(|p| p.delivery_address.is_some()).ok_or_else(|| {
            RaError::State("nothing is shipped for this order (cloud certificates need no delivery)".into())
        })?;
        let new = super::validate::name("delivery_address", address, 200).map_err(|e| RaError::Invalid(vec![e]))?;
        // Digests, not the addresses: the audit log shows that and when it changed.
        let digest = |a: &str| hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(a.as_bytes())[..8]);
        let detail = serde_json::json!({
            "from": product.delivery_address.as_deref().map(digest),
            "to": digest(&new),
            "in_review": order.state == "review",
        });
        product.delivery_address = Some(new);
        if order.state == "review" {
            data.address_changed_in_review_at = Some(self.now());
        }
        data.store(&mut order);
        let audit = self.event("order.address_changed", "applicant", &order, detail);
        self.save(&mut order, &[&audit]).await?;
        // Whoever holds the order's page could send the parcel elsewhere: the agent hears of it.
        // Only a phone a check proved: the applicant can repeat this at will, and a fallback to
        // a typed phone would text any number on demand.
        if order.agent_phone.is_some() {
            self.notify(&order, "address_changed").await;
        }
        Ok(order)
    }

    /// Every step is done: into the review queue, or carried out at once where the channel
    /// approves the flow automatically.
    pub(super) async fn submit(&self, mut order: OrderRecord, audits: &[&AuditRecord]) -> Result<OrderRecord, RaError> {
        order.submitted_at = Some(self.now());
        if !self.auto_approves(&order).await? {
            order.state = "review".into();
            let queued = self.event("order.submitted", "applicant", &order, serde_json::json!({}));
            let all: Vec<&AuditRecord> = audits.iter().copied().chain([&queued]).collect();
            self.save(&mut order, &all).await?;
            return Ok(order);
        }
        self.save(&mut order, audits).await?;
        self.approve(order, "auto", "approved automatically by the channel").await
    }
}

impl Ra {
    /// Whether a complete order is approved without an officer: the channel approves its
    /// flow automatically and nothing about the order asks for an officer.
    pub(super) async fn auto_approves(&self, order: &OrderRecord) -> Result<bool, RaError> {
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let channel = self.channel(&order.channel)?;
        if channel.rule(flow).review != super::channels::Review::Auto {
            return Ok(false);
        }
        Ok(!self.needs_officer(order, flow).await?)
    }

    /// Orders an officer must decide whatever the channel says: those about a certificate
    /// with no verified contact, and every re-issue of a key outside the CA's custody or to
    /// someone other than the key's holder (it revokes the certificate and hands a new key to
    /// whoever applied: review H2).
    async fn needs_officer(&self, order: &OrderRecord, flow: Flow) -> Result<bool, RaError> {
        let data = OrderData::of(order)?;
        if data.officer_review.is_some() {
            return Ok(true);
        }
        // A renewal that changes the name on the certificate is a change in all but name: an
        // officer sees it, whatever the channel's renewal review says.
        if flow == Flow::Renewal {
            if let Some(c) = &data.certificate {
                if super::review::changed_subject(c, &data) != c.subject {
                    return Ok(true);
                }
            }
        }
        // An unlock past the allowance (orders racing past the certificate step's check).
        if flow == Flow::Unlock {
            let serial = order.serial.as_deref().unwrap_or_default();
            return Ok(self.recent_unlocks(serial).await? >= crate::custody::UNLOCKS.max);
        }
        if flow != Flow::Reissue {
            return Ok(false);
        }
        // A re-issue hands a new key to the order's agent: automatic only when that is the
        // key's holder, who consented (one consent code must not move a company's key to
        // someone else).
        let Some(serial) = &order.serial else { return Ok(true) };
        let holder = self.store.credential_by_serial(serial).await?.map(|c| c.phone);
        Ok(holder.is_none() || holder != order.agent_phone)
    }
}

/// How a phone appears as an audit actor (masked: the log is read by auditors, not holders).
pub(super) fn phone_actor(phone: &str) -> String {
    format!("phone:{}", super::validate::mask(phone))
}

/// `RA` + date + 8 characters of an unambiguous alphabet: readable over the phone.
fn order_number(now: time::OffsetDateTime) -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::rngs::OsRng;
    let tail: String = (0..8).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("RA{:04}{:02}{:02}-{tail}", now.year(), u8::from(now.month()), now.day())
}

/// What a certificate holder's consent code is bound to: this order, on this certificate.
pub(super) fn consent_object(order: &OrderRecord, serial: &str) -> String {
    format!("{}/{serial}", order.id)
}
