//! One handler per step: validate the input field by field, run the identity check the step
//! carries, and record the result in the order. A step may be redone (to correct data) until
//! the application is signed; redoing it clears the steps after it.

use serde::Deserialize;

use super::channels::{InvoicePolicy, Method};
use super::flow::{Flow, Step};
use super::model::{
    Agent, BankAccount, CertificateRef, Company, IdType, OrderData, PendingCheck, Person, ProductChoice,
};
use super::model::{PaymentData, SignatureEvidence, TermsConsent};
use super::validate::{self, FieldError};
use super::{Ra, RaError};
use crate::mobile::Purpose;
use crate::providers::identity::{CheckOutcome, FaceVia};
use crate::providers::payment::PayMethod;
use crate::store::OrderRecord;

/// Why an order the legal representative started through an order query, without the
/// certificate's consenter confirming it, goes to an officer.
pub(super) const LEGAL_REP_CHOICE: &str =
    "the legal representative chose this certificate through an order query and its consenter did not confirm: an officer checks the papers";

/// Why a person's order about their own certificate, chosen after their identity check (a
/// real-name check of a new phone, or their bank card) but not confirmed from the phone on
/// file, goes to an officer: the usual re-issue (补办) after a lost phone or number.
pub(super) const HOLDER_CHOICE: &str =
    "the certificate was chosen after the holder's own identity check (a real-name phone or their bank card) and the phone on file did not confirm (a lost phone or number?); the agent step must be the holder, checked again: an officer checks the papers";

/// Why an order about a certificate with no verified contact goes to an officer.
pub(super) const NO_CONTACT: &str =
    "no verified contact is on file for this certificate (it was not applied for online): an officer checks the papers";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateInput {
    serial: String,
    /// The consent code sent to the certificate's consenter; absent when an order-query
    /// session stands for the subject, or when nobody is on file.
    #[serde(default)]
    code: Option<String>,
    /// An order-query session of the certificate's subject (the legal representative's, or
    /// the consenter's): the subject-first start of a certificate service
    /// ([`super::services`]).
    #[serde(default)]
    query_token: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerificationInput {
    method: Method,
    /// The applicant agreed to the channel's terms where the method is chosen (handbook B3),
    /// before any of their data goes to a bank, carrier or face-check provider.
    accept_terms: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonInput {
    name: String,
    #[serde(default)]
    id_type: IdType,
    id_number: String,
    phone: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    card: Option<String>,
    #[serde(default)]
    bank: Option<BankAccount>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompanyInput {
    name: String,
    credit_code: String,
    legal_rep: PersonInput,
    #[serde(default)]
    bank: Option<BankAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInput {
    #[serde(default)]
    code: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentInput {
    legal_rep_in_person: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id_number: Option<String>,
    /// Agents give the resident ID (`id_type.resident_only` otherwise): they are checked
    /// online by carrier, bank card or face. The agent of a service on a personal
    /// certificate is its holder and gives the holder's own document (checked by bank card).
    #[serde(default)]
    id_type: IdType,
    #[serde(default)]
    phone: Option<String>,
    email: String,
    /// How the agent is checked; required unless the order went offline (the papers stand
    /// for the check there, so a method given is ignored).
    #[serde(default)]
    method: Option<Method>,
    #[serde(default)]
    card: Option<String>,
    /// The user agreement, in flows without a verification step (a service on a personal
    /// certificate: the agent check is their first identity check).
    #[serde(default)]
    accept_terms: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductInput {
    product: String,
    #[serde(default)]
    invoice: bool,
    #[serde(default)]
    invoice_email: Option<String>,
    #[serde(default)]
    delivery_address: Option<String>,
    #[serde(default)]
    seal_change: Option<String>,
    #[serde(default)]
    seal_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyInput {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureInput {
    code: String,
    accept_terms: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentInput {
    method: PayMethod,
}

fn parse<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, RaError> {
    serde_json::from_value(body).map_err(|e| RaError::BadRequest(format!("body: {e}")))
}

/// Collects field errors so the applicant sees every problem at once.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn take(&mut self, r: Result<String, FieldError>) -> String {
        r.unwrap_or_else(|e| {
            self.0.push(e);
            String::new()
        })
    }

    fn fail(&mut self, field: &str, code: &'static str, message: &str) {
        self.0.push(FieldError { field: field.into(), code, message: message.into() });
    }

    fn finish(self) -> Result<(), RaError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RaError::Invalid(self.0))
        }
    }
}

impl Ra {
    /// Completes (or redoes) one step of an open order. The payment step returns with the
    /// QR code and completes when the provider's webhook lands.
    pub async fn step(
        &self,
        mut order: OrderRecord,
        step: Step,
        body: serde_json::Value,
    ) -> Result<OrderRecord, RaError> {
        // An offline order takes its few online steps (agent, product, payment); see
        // `OrderData::steps`.
        if !matches!(order.state.as_str(), "open" | "offline") {
            return Err(RaError::State(format!(
                "the order is {}; steps can be taken only while it is open",
                order.state
            )));
        }
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let channel = self.channel(&order.channel)?.clone();
        let mut data = OrderData::of(&order)?;
        let steps = data.steps(flow, &channel);
        let Some(position) = steps.iter().position(|s| *s == step) else {
            return Err(RaError::State(format!("a {} order has no {} step", flow.name(), step.name())));
        };
        if let Some(next) = data.next_step(flow, &channel) {
            let next_position = steps.iter().position(|s| *s == next).unwrap_or(steps.len());
            if position > next_position {
                return Err(RaError::State(format!("complete the {} step first", next.name())));
            }
        }
        if data.done.contains(&step) {
            if data.signature.is_some() {
                return Err(RaError::State("the application is signed; cancel it to change what was entered".into()));
            }
            // An offline order has no signature step: its payment fixes what was entered (a
            // product changed after paying would leave the order's amount unpaid).
            if order.paid_at.is_some() {
                return Err(RaError::State("the order is paid; cancel it to change what was entered".into()));
            }
            // Redo: what came after depends on what changes now.
            data.done.retain(|s| steps.iter().position(|x| x == s).is_some_and(|p| p < position));
            // So do the consents and checks given for it (review H1): the legal
            // representative authorised *that* agent for *that* company, the agent check was of
            // *that* person. None carries over to what replaces them.
            // The step that verified the phone the order acts through: the agent's, or for a
            // person applying for themselves (no agent step), their own check.
            let verified_at = steps
                .iter()
                .position(|s| *s == Step::Agent)
                .or_else(|| steps.iter().rposition(|s| matches!(s, Step::Person | Step::SubjectCheck)))
                .unwrap_or(0);
            if position <= verified_at {
                data.withdraw_authorisation();
                data.agent_check = None;
                order.agent_phone = None;
            }
        }
        let result = self.run_step(&mut order, &mut data, flow, step, body).await;
        match result {
            Ok((completed, consent)) => {
                if completed {
                    data.complete(step);
                    match step {
                        Step::SubjectCheck => Self::subject_checked(&mut order, &mut data, flow),
                        Step::AgentCheck => Self::agent_checked(&mut order, &data),
                        _ => {}
                    }
                }
                data.store(&mut order);
                let detail = serde_json::json!({ "step": step.name(), "completed": completed });
                let audit = self.event("order.step", "applicant", &order, detail);
                // A consent is saved with its audit event, in one transaction (review L4).
                let audits: Vec<&crate::store::AuditRecord> = consent.iter().chain([&audit]).collect();
                // An offline order's review starts when its papers arrive, not here.
                if completed && data.next_step(flow, &channel).is_none() && order.state == "open" {
                    return self.submit(order, &audits).await;
                }
                self.save(&mut order, &audits).await?;
                Ok(order)
            }
            Err(RaError::CheckFailed(reason)) => {
                data.check_failures += 1;
                if matches!(step, Step::Company | Step::Person | Step::SubjectCheck) {
                    order.open_key = None;
                }
                data.store(&mut order);
                let detail = serde_json::json!({ "step": step.name(), "reason": reason });
                let audit = self.event("identity.check_failed", "applicant", &order, detail);
                self.save(&mut order, &[&audit]).await?;
                Err(RaError::CheckFailed(reason))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a step's handler; Ok(false, _) when the step started something that completes
    /// later. The audit event of a consent the step took comes back to be saved with the order.
    async fn run_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        step: Step,
        body: serde_json::Value,
    ) -> Result<(bool, Option<crate::store::AuditRecord>), RaError> {
        if step == Step::Certificate {
            return self.certificate_step(order, data, flow, parse(body)?).await.map(|consent| (true, consent));
        }
        if step == Step::Verification {
            return self.verification_step(order, data, flow, parse(body)?).map(|consent| (true, Some(consent)));
        }
        if step == Step::Agent {
            return self.agent_step(order, data, flow, parse(body)?).await.map(|consent| (true, consent));
        }
        self.run_other_step(order, data, flow, step, body).await.map(|completed| (completed, None))
    }

    async fn run_other_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        step: Step,
        body: serde_json::Value,
    ) -> Result<bool, RaError> {
        match step {
            Step::Certificate | Step::Verification | Step::Agent => Err(RaError::NotFound),
            Step::Company => self.company_step(order, data, parse(body)?).await.map(|_| true),
            Step::Person => self.person_step(order, data, flow, parse(body)?).await.map(|_| true),
            Step::SubjectCheck => {
                let pending = data.subject_check.clone().ok_or(RaError::State("no check is pending".into()))?;
                let code = parse::<CheckInput>(body)?.code;
                if pending.method.texts_legal_rep() {
                    return self.legal_rep_code_typed(order, data, &pending, code).await.map(|_| true);
                }
                self.finish_check(&pending, code).await
            }
            Step::AgentCheck => {
                let pending = data.agent_check.clone().ok_or(RaError::State("no check is pending".into()))?;
                self.finish_check(&pending, parse::<CheckInput>(body)?.code).await
            }
            Step::Product => self.product_step(order, data, flow, parse(body)?).await.map(|_| true),
            Step::Materials => {
                parse::<EmptyInput>(body)?;
                self.materials_step(order, data, flow).await.map(|_| true)
            }
            Step::Signature => self.signature_step(order, data, parse(body)?).await.map(|_| true),
            Step::Payment => self.payment_step(order, data, parse(body)?).await.map(|_| false),
        }
    }

    async fn certificate_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        input: CertificateInput,
    ) -> Result<Option<crate::store::AuditRecord>, RaError> {
        let (cert, phone) = self.certificate_holder(&input.serial, flow).await?;
        let query = input.query_token.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let code = input.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let by_session = match query {
            Some(query) => Some(self.session_consents(query, &cert, phone.as_deref(), order, flow).await?),
            None => None,
        };
        let consented = match (&phone, code, by_session) {
            // The legal representative chose it without the consenter: an officer checks.
            (_, None, Some("legal-rep")) => {
                let why = if cert.profile == "org" { LEGAL_REP_CHOICE } else { HOLDER_CHOICE };
                data.officer_review = Some(why.into());
                true
            }
            // The consenter confirms this order and this serial with a fresh code, whether the
            // certificate was found through a session or its serial typed.
            (Some(phone), code, _) => {
                let object = super::orders::consent_object(order, &cert.serial);
                self.services.mobile.check_code(phone, Purpose::Consent, &object, code.unwrap_or_default()).await?;
                data.officer_review = None;
                true
            }
            (None, _, _) => {
                data.officer_review = Some(NO_CONTACT.into());
                false
            }
        };
        let now = self.now();
        if cert.status != "issued" {
            return Err(RaError::State(format!("certificate {} is {}", cert.serial, cert.status)));
        }
        if cert.not_after < now && flow != Flow::Revocation {
            return Err(RaError::State("the certificate has expired; apply for a new one".into()));
        }
        let credential = self.store.credential_by_serial(&cert.serial).await?;
        match flow {
            Flow::Seal if cert.profile != "org" => {
                return Err(RaError::BadRequest("seals belong to organisation certificates".into()))
            }
            Flow::Unlock | Flow::Change if credential.is_none() => {
                return Err(RaError::BadRequest(format!(
                    "certificate {}'s key is not in the CA's custody; a {} is done on the key holder's own system",
                    cert.serial,
                    flow.name()
                )))
            }
            Flow::Renewal => self.renewal_window(&cert)?,
            Flow::Unlock => self.unlock_allowance(&cert.serial).await?,
            _ => {}
        }
        if flow == Flow::Revocation {
            let reason = input.reason.unwrap_or_else(|| "cessationOfOperation".into());
            reason
                .parse::<crate::status::RevocationReason>()
                .map_err(|e| RaError::BadRequest(format!("reason: {e}")))?;
            data.revocation_reason = Some(reason);
        }
        let subject = crate::ca::VerifiedRequest::from_certificate(&cert.der)
            .map(|r| r.subject)
            .map_err(|e| RaError::BadRequest(format!("the certificate cannot be read: {e}")))?;
        let identifier = cert.identifier.clone().unwrap_or_default();
        if consented {
            self.set_subject(order, &identifier);
        } else {
            // Nobody consented: the order does not hold the subject's one open order.
            order.subject_key = Some(identifier.clone());
            order.open_key = None;
        }
        order.serial = Some(cert.serial.clone());
        let consent = by_session.map(|role| {
            // A session with no phone is the legal representative's, or for a person's own
            // certificate the person's own identity check (F9, F10).
            let role = if role == "legal-rep" && cert.profile != "org" { "holder-identity-check" } else { role };
            let detail = serde_json::json!({ "serial": cert.serial, "by": role, "via": "order-query" });
            self.event("order.certificate_consent", "applicant", order, detail)
        });
        data.certificate = Some(CertificateRef {
            serial: cert.serial,
            profile: cert.profile,
            identifier,
            subject,
            not_after: cert.not_after,
            holder_phone: phone.unwrap_or_default(),
        });
        Ok(consent)
    }

    /// Refuses an unlock past [`crate::custody::UNLOCKS`] (review M1) before the applicant
    /// goes on to pay: each unlock restarts the PIN counter, so unlimited unlocks are
    /// unlimited PIN guesses for whoever holds a session or the holder's SMS. The unlock
    /// itself checks again, atomically ([`crate::custody::Custody::lift_lock`]).
    async fn unlock_allowance(&self, serial: &str) -> Result<(), RaError> {
        if self.recent_unlocks(serial).await? >= crate::custody::UNLOCKS.max {
            return Err(RaError::State(format!("certificate {serial}: {}", crate::custody::CustodyError::UnlocksUsed)));
        }
        Ok(())
    }

    /// Unlocks of the certificate's cloud key in its current allowance window (unlock orders
    /// and the app's unlocks together).
    pub(super) async fn recent_unlocks(&self, serial: &str) -> Result<i64, RaError> {
        let since = self.now() - crate::custody::UNLOCKS.window_seconds;
        Ok(self.store.unlocks_since(serial, since).await?)
    }

    fn renewal_window(&self, cert: &crate::store::CertificateRecord) -> Result<(), RaError> {
        let days = self.renewal_window_days(&cert.profile);
        if self.now() < cert.not_after - days * 86400 {
            return Err(RaError::State(format!("renewal opens {days} days before the certificate expires")));
        }
        Ok(())
    }

    /// The certificate and the phone that consents for it in `flow` ([`Ra::consenter`]: an
    /// organisation's certificate administrator, the cloud key's holder, else the verified
    /// agent of the order that applied for it; review H2). A certificate with none of them
    /// (issued from a CSR in the back office) has nobody who can consent by code (None): its
    /// order goes to an officer, who checks the papers, unless the legal representative's
    /// order-query session stands for it.
    pub(super) async fn certificate_holder(
        &self,
        serial_text: &str,
        flow: Flow,
    ) -> Result<(crate::store::CertificateRecord, Option<String>), RaError> {
        let serial = crate::ca::serial::parse(serial_text)
            .ok_or_else(|| RaError::BadRequest("serial: hexadecimal certificate serial number".into()))?;
        let cert =
            self.store.certificate(&serial).await?.ok_or(RaError::BadRequest(format!("no certificate {serial}")))?;
        let phone = self.consenter(&cert, flow).await?;
        Ok((cert, phone))
    }

    /// The method, and the applicant's agreement to the channel's terms (whose SHA-256 is kept
    /// on the order and in the returned audit event): no identity check runs without it.
    fn verification_step(
        &self,
        order: &OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        input: VerificationInput,
    ) -> Result<crate::store::AuditRecord, RaError> {
        if !input.accept_terms {
            return Err(terms_not_accepted("read and agree to the user agreement to choose a verification method"));
        }
        let channel = self.channel(&order.channel)?;
        let allowed = if data.organisation(flow) { &channel.methods.organisation } else { &channel.methods.personal };
        if !allowed.contains(&input.method) {
            return Err(RaError::NotOffered("this verification method is not offered in this channel".into()));
        }
        data.verification = Some(input.method);
        data.subject_check = None;
        Ok(self.terms_accepted(order, data, &channel, "verification"))
    }

    /// Records the applicant's agreement to the channel's terms (SHA-256 and time on the
    /// order); the audit event to save with the order.
    fn terms_accepted(
        &self,
        order: &OrderRecord,
        data: &mut OrderData,
        channel: &super::channels::Channel,
        step: &str,
    ) -> crate::store::AuditRecord {
        let consent = TermsConsent { terms_sha256: channel.terms_sha256(), accepted_at: self.now() };
        let detail = serde_json::json!({ "terms_sha256": consent.terms_sha256, "step": step });
        data.terms_accepted = Some(consent);
        self.event("order.terms_accepted", "applicant", order, detail)
    }

    /// A person's fields, validated. A legal representative (prefix `legal_rep`) and a personal
    /// applicant (`person`) may give an identity document other than the resident ID (see
    /// [`IdType`]); an agent (`agent`) may not, unless `holder`: the agent of a service on a
    /// personal certificate, who must be its holder (the agent step then compares type and
    /// number with the certificate's identifier, and only the bank card checks them).
    fn person(fields: &mut Fields, prefix: &str, p: PersonInput, today: time::Date, email: bool) -> Person {
        Self::person_as(fields, prefix, p, today, email, false)
    }

    fn person_as(
        fields: &mut Fields,
        prefix: &str,
        p: PersonInput,
        today: time::Date,
        email: bool,
        holder: bool,
    ) -> Person {
        let f = |name: &str| format!("{prefix}.{name}");
        if !p.id_type.is_resident_id() && prefix == "agent" && !holder {
            let why = "an agent is checked online by carrier, bank card or face, by the mainland resident ID: \
                       give that one, or name an agent who has one";
            fields.fail(&f("id_type"), "id_type.resident_only", why);
        }
        let email = match (p.email, email) {
            (Some(e), _) => Some(fields.take(validate::email(&f("email"), &e))),
            (None, true) => {
                fields.fail(&f("email"), "email.missing", "an e-mail address is required");
                None
            }
            (None, false) => None,
        };
        Person {
            name: fields.take(validate::name(&f("name"), &p.name, 32)),
            id_type: p.id_type,
            id_number: fields.take(validate::id_number(&f("id_number"), p.id_type, &p.id_number, today)),
            phone: fields.take(validate::mainland_mobile(&f("phone"), &p.phone)),
            email,
            card: p.card.map(|c| fields.take(validate::bank_card(&f("card"), &c))),
        }
    }

    async fn company_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        input: CompanyInput,
    ) -> Result<(), RaError> {
        let method = data.verification.ok_or(RaError::State("choose a verification method first".into()))?;
        let company = company_fields(input, method, self.clock.now().date())?;
        if let Some(c) = &data.certificate {
            if c.identifier != company.credit_code {
                return Err(RaError::BadRequest("credit_code: an information change keeps the credit code".into()));
            }
        }
        self.enter_subject(order, &company.credit_code);
        // Kept even if the check fails: the applicant corrects it, or it goes on the paper form.
        // Whatever was authorised or checked for the company entered before is withdrawn.
        data.company = Some(company.clone());
        data.subject_check = None;
        data.withdraw_authorisation();
        data.legal_rep_phone_checked = false;
        self.enterprise_check(&company).await?;
        count_face_link(data, method)?;
        data.subject_check = self.check(&company.legal_rep, Party::LegalRep, method, company.bank.as_ref()).await?;
        if data.subject_check.is_none() && method.texts_legal_rep() {
            data.subject_check = Some(self.text_legal_rep(order, &company, method).await?);
        }
        if data.subject_check.is_none() {
            Self::subject_checked(order, data, Flow::OrgNew);
        }
        Ok(())
    }

    /// The carrier or bank said the legal representative's details match: a code goes to
    /// their phone, bound to this order and to a fresh reference for this check (a redone
    /// company step texts a new one and the old code no longer fits). The subject check
    /// completes when it is typed back ([`Ra::legal_rep_code_typed`]).
    async fn text_legal_rep(
        &self,
        order: &OrderRecord,
        company: &Company,
        method: Method,
    ) -> Result<PendingCheck, RaError> {
        let reference = hex::encode(rand::random::<[u8; 12]>());
        let object = legal_rep_code_object(&order.id, &reference, &company.credit_code);
        let phone = &company.legal_rep.phone;
        self.services.mobile.send_code(phone, Purpose::LegalRepCheck, &object).await?;
        Ok(PendingCheck { method, reference, url: None })
    }

    /// The code the legal representative received, typed back: checked against their phone,
    /// this order and this check. A wrong code counts against the code's attempts.
    async fn legal_rep_code_typed(
        &self,
        order: &OrderRecord,
        data: &OrderData,
        pending: &PendingCheck,
        code: Option<String>,
    ) -> Result<(), RaError> {
        let code = code
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| RaError::BadRequest("code: the code texted to the legal representative's phone".into()))?;
        let company = data.company.as_ref().ok_or(RaError::State("enter the company first".into()))?;
        let object = legal_rep_code_object(&order.id, &pending.reference, &company.credit_code);
        // Wrong guesses count against this order, not the representative's phone: their name,
        // ID number and phone are public, so counting on the phone would let anyone lock them
        // out of their own codes (attacker review). Each code still dies after its few tries,
        // and the per-phone send limits bound how many codes there are to guess.
        let counted = format!("order {}", order.id);
        let mobile = &self.services.mobile;
        mobile
            .check_code_counted_on(&counted, &company.legal_rep.phone, Purpose::LegalRepCheck, &object, &code)
            .await?;
        Ok(())
    }

    async fn person_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        input: PersonInput,
    ) -> Result<(), RaError> {
        let method = data.verification.ok_or(RaError::State("choose a verification method first".into()))?;
        let (person, bank) = person_fields(input, method, self.clock.now().date())?;
        if let Some(c) = &data.certificate {
            if c.identifier != person.identifier() {
                return Err(RaError::BadRequest(
                    "id_number: an information change keeps the identity document and its number".into(),
                ));
            }
        }
        self.enter_subject(order, &person.identifier());
        data.person = Some(person.clone());
        count_face_link(data, method)?;
        data.subject_check = self.check(&person, Party::Applicant, method, bank.as_ref()).await?;
        if data.subject_check.is_none() {
            Self::subject_checked(order, data, flow);
        }
        Ok(())
    }

    async fn agent_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        input: AgentInput,
    ) -> Result<Option<crate::store::AuditRecord>, RaError> {
        let channel = self.channel(&order.channel)?;
        // Offline, the agent is only collected (the papers stand for the check): no method.
        let method = match input.method {
            _ if data.offline => None,
            None => return Err(RaError::BadRequest("method: how the agent is checked".into())),
            Some(m) if !channel.methods.agent.contains(&m) || m == Method::BankAccount => {
                return Err(RaError::NotOffered("this verification method is not offered for agents here".into()))
            }
            Some(m) => Some(m),
        };
        // No identity check before the agreement (B3): flows without a verification step
        // take it here.
        if data.terms_accepted.is_none() && !input.accept_terms {
            return Err(terms_not_accepted("read and agree to the user agreement before the identity check"));
        }
        let needs_terms = data.terms_accepted.is_none();
        let legal_rep_in_person = input.legal_rep_in_person;
        let rep = data.company.as_ref().map(|c| c.legal_rep.clone());
        let personal_cert = data.certificate.as_ref().is_some_and(|c| c.profile != "org");
        let person = agent_fields(input, method, rep, self.clock.now().date(), personal_cert)?;
        if personal_cert && data.certificate.as_ref().is_some_and(|c| c.identifier != person.identifier()) {
            return Err(RaError::BadRequest(
                "id_number: orders about a personal certificate are made by its holder".into(),
            ));
        }
        data.withdraw_authorisation();
        order.agent_phone = None;
        let in_person = legal_rep_in_person || (flow != Flow::OrgNew && personal_cert);
        if data.offline {
            // Collected only (经办人信息采集): the officer checks the agent on the papers (the
            // signed form, the ID copy). No phone is verified, so none goes on file.
            data.agent_check = None;
            data.agent = Some(Agent { legal_rep_in_person: in_person, person, method: None });
            return Ok(needs_terms.then(|| self.terms_accepted(order, data, &channel, "agent")));
        }
        let method = method.ok_or(RaError::BadRequest("method: how the agent is checked".into()))?;
        count_face_link(data, method)?;
        data.agent_check = self.check(&person, Party::Agent, method, None).await?;
        data.agent = Some(Agent { legal_rep_in_person: in_person, person, method: Some(method) });
        if data.agent_check.is_none() {
            Self::agent_checked(order, data);
        }
        // Recorded once the step stands (a failed check keeps no agreement without its event).
        Ok(needs_terms.then(|| self.terms_accepted(order, data, &channel, "agent")))
    }

    async fn product_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        flow: Flow,
        input: ProductInput,
    ) -> Result<(), RaError> {
        let (seal_change, seal_name) = self.seal_choice(data, flow, &input).await?;
        let channel = self.channel(&order.channel)?;
        let product = channel.products_for(flow).find(|p| p.id == input.product).ok_or_else(|| {
            RaError::NotOffered(format!("product: {:?} is not offered for a {}", input.product, flow.name()))
        })?;
        if data.offline && product.seal {
            // The seal's image is a file the seal is made from, not a paper to mail.
            return Err(RaError::NotOffered(
                "product: a product with a seal needs its image uploaded online; choose one without".into(),
            ));
        }
        if flow == Flow::Renewal
            && data.certificate.as_ref().is_some_and(|c| (c.profile == "org") != product.flows.contains(&Flow::OrgNew))
        {
            return Err(RaError::NotOffered("product: choose a product of the certificate's kind".into()));
        }
        let agent_email = data
            .agent
            .as_ref()
            .and_then(|a| a.person.email.clone())
            .or(data.person.as_ref().and_then(|p| p.email.clone()));
        let invoice = match channel.invoice {
            InvoicePolicy::Optional => input.invoice,
            InvoicePolicy::Required => true,
            InvoicePolicy::None if input.invoice => {
                return Err(RaError::NotOffered("invoice: this channel issues no invoices".into()))
            }
            InvoicePolicy::None => false,
        };
        // Handbook G5: invoice data only when there is an amount. Asking for an invoice of a
        // free product is a mistake the caller hears of; a `required` channel's rule covers
        // what is paid.
        let paid = product.price_fen > 0;
        if !paid && input.invoice {
            return Err(RaError::Invalid(vec![FieldError {
                field: "invoice".into(),
                code: "invoice.free",
                message: format!("{:?} is free: there is no amount to invoice", product.id),
            }]));
        }
        let invoice = invoice && paid;
        let (invoice_email, delivery_address) = product_fields(input, agent_email, paid, product.medium == "usb-key")?;
        // The product is in the letter's scope: another one than the letter named (or the one
        // it will name) withdraws the authorisation and the link.
        if data.product.as_ref().is_some_and(|p| p.id != product.id) {
            data.withdraw_authorisation();
        }
        order.amount_fen = product.price_fen;
        data.product = Some(ProductChoice {
            id: product.id.clone(),
            name: product.name.clone(),
            price_fen: product.price_fen,
            invoice,
            invoice_email,
            delivery_address,
            seal_change,
            seal_name,
        });
        Ok(())
    }

    /// A seal order's choice (handbook §5.1 补章 or 变章): a new seal, or one of the
    /// organisation's active seals to change, and the seal's name (default: the changed seal's,
    /// else the organisation's). Other flows take neither field.
    async fn seal_choice(
        &self,
        data: &OrderData,
        flow: Flow,
        input: &ProductInput,
    ) -> Result<(Option<String>, Option<String>), RaError> {
        let change = input.seal_change.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let name = input.seal_name.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if flow != Flow::Seal {
            if change.is_some() || name.is_some() {
                return Err(RaError::BadRequest("seal_change, seal_name: only in a seal order".into()));
            }
            return Ok((None, None));
        }
        let changed = match change {
            Some(id) => {
                Some(self.changeable_seals(data).await?.into_iter().find(|s| s.id == id).ok_or_else(|| {
                    RaError::BadRequest("seal_change: not an active seal of this organisation".into())
                })?)
            }
            None => None,
        };
        let name = match name {
            Some(n) => Some(validate::name("seal_name", n, 64).map_err(|e| RaError::Invalid(vec![e]))?),
            None => changed.as_ref().map(|s| s.name.clone()),
        };
        Ok((changed.map(|s| s.id), name))
    }

    async fn materials_step(&self, order: &OrderRecord, data: &OrderData, flow: Flow) -> Result<(), RaError> {
        let channel = self.channel(&order.channel)?;
        let uploaded = self.store.materials(&order.id).await?;
        // A letter signed online whose authorisation was withdrawn since (the company, agent or
        // product changed) is kept as a record but is no longer the letter this order needs.
        let withdrawn = |m: &crate::store::MaterialRecord| {
            m.kind == "authorization-letter"
                && data.authorized_online_at.is_none()
                && data.online_letter.as_deref() == Some(m.sha256.as_str())
        };
        let missing: Vec<_> = data
            .required_materials(flow, &channel)
            .into_iter()
            .filter(|k| !uploaded.iter().any(|m| &m.kind == k && !withdrawn(m)))
            .collect();
        if !missing.is_empty() {
            let errors = missing
                .iter()
                .map(|k| FieldError {
                    field: format!("materials.{k}"),
                    code: "material.missing",
                    message: format!("upload the {k}"),
                })
                .collect();
            return Err(RaError::Invalid(errors));
        }
        Ok(())
    }

    async fn signature_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        input: SignatureInput,
    ) -> Result<(), RaError> {
        if !input.accept_terms {
            return Err(terms_not_accepted("read and accept the terms to sign the application"));
        }
        let phone = order.agent_phone.clone().ok_or(RaError::State("the agent is not verified yet".into()))?;
        self.services.mobile.check_code(&phone, Purpose::ApplicationSignature, &order.id, input.code.trim()).await?;
        let channel = self.channel(&order.channel)?;
        data.signature =
            Some(SignatureEvidence { terms_sha256: channel.terms_sha256(), accepted_at: self.now(), phone });
        Ok(())
    }

    async fn payment_step(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        input: PaymentInput,
    ) -> Result<(), RaError> {
        if let Some(p) = &data.payment {
            let fresh = p.method == input.method && p.expires_at > self.now() + 60;
            if fresh && self.intent_is_open(&p.provider_ref).await? {
                return Ok(());
            }
        }
        let description = data.product.as_ref().map_or_else(|| order.flow.clone(), |p| p.name.clone());
        let intent = crate::providers::call(
            "payment",
            "create",
            self.deadline(),
            self.providers.payment.create(&order.id, order.amount_fen, &description, input.method),
        )
        .await?;
        // Recorded before the code is shown, the older codes closed (review M5).
        self.record_intent(order, input.method, &intent).await?;
        order.payment_ref = Some(intent.provider_ref.clone());
        data.payment = Some(PaymentData {
            method: input.method,
            provider_ref: intent.provider_ref,
            qr_url: intent.qr_url,
            expires_at: intent.expires_at,
        });
        Ok(())
    }

    /// The enterprise registry check: the company and its legal representative belong
    /// together, whatever method then checks the legal representative (review H3).
    async fn enterprise_check(&self, c: &Company) -> Result<(), RaError> {
        let r = &c.legal_rep;
        let call =
            self.providers.identity.enterprise_elements(&c.credit_code, &c.name, &r.name, r.id_type, &r.id_number);
        match crate::providers::call("identity", "enterprise_elements", self.deadline(), call).await? {
            CheckOutcome::Passed => Ok(()),
            CheckOutcome::Failed(reason) => Err(RaError::CheckFailed(reason)),
        }
    }

    /// Runs a party's identity check; an asynchronous one comes back pending.
    async fn check(
        &self,
        person: &Person,
        party: Party,
        method: Method,
        bank: Option<&BankAccount>,
    ) -> Result<Option<PendingCheck>, RaError> {
        if let Some(reason) = unbound_document(person.id_type, party, method) {
            return Err(RaError::CheckFailed(reason));
        }
        let ids = &self.providers.identity;
        let d = self.deadline();
        use crate::providers::call;
        let outcome = match method {
            Method::Phone => {
                call("identity", "phone_three", d, ids.phone_three(&person.name, &person.id_number, &person.phone))
                    .await?
            }
            Method::BankCard => {
                let card = person.card.as_deref().unwrap_or_default();
                call(
                    "identity",
                    "bank_card_four",
                    d,
                    ids.bank_card_four(&person.name, person.id_type, &person.id_number, card, &person.phone),
                )
                .await?
            }
            Method::BankAccount => {
                let b = bank.ok_or(RaError::BadRequest("bank: the account to pay the micro-deposit into".into()))?;
                let deposit = call(
                    "identity",
                    "micro_deposit",
                    d,
                    ids.start_micro_deposit(&b.account_name, &b.account_number, &b.bank),
                )
                .await?;
                return Ok(Some(PendingCheck { method, reference: deposit.reference, url: None }));
            }
            Method::FaceSms | Method::FaceQr => {
                let via = if method == Method::FaceSms {
                    FaceVia::Sms { phone: person.phone.clone() }
                } else {
                    FaceVia::OnSite
                };
                let session = call("identity", "face", d, ids.start_face(&person.name, &person.id_number, via)).await?;
                return Ok(Some(PendingCheck { method, reference: session.id, url: Some(session.url) }));
            }
        };
        match outcome {
            CheckOutcome::Passed => Ok(None),
            CheckOutcome::Failed(reason) => Err(RaError::CheckFailed(reason)),
        }
    }

    /// Completes a pending check: the remittance code read back, or the face result (still
    /// pending: Ok(false), the step stays open).
    async fn finish_check(&self, pending: &PendingCheck, code: Option<String>) -> Result<bool, RaError> {
        use crate::providers::identity::FaceStatus;
        let ids = &self.providers.identity;
        let d = self.deadline();
        if pending.method == Method::BankAccount {
            let code =
                code.ok_or_else(|| RaError::BadRequest("code: the remittance code from the bank statement".into()))?;
            return match crate::providers::call(
                "identity",
                "micro_deposit_confirm",
                d,
                ids.confirm_micro_deposit(&pending.reference, code.trim()),
            )
            .await?
            {
                CheckOutcome::Passed => Ok(true),
                CheckOutcome::Failed(reason) => Err(RaError::CheckFailed(reason)),
            };
        }
        match crate::providers::call("identity", "face_status", d, ids.face_status(&pending.reference)).await? {
            FaceStatus::Pending => Ok(false),
            FaceStatus::Passed => Ok(true),
            FaceStatus::Failed(reason) => Err(RaError::CheckFailed(reason)),
        }
    }

    /// Records the subject (credit code or ID number) and claims the channel's one open order
    /// for it (the unique key refuses a second one at the database). Only once the subject is
    /// checked (or, for orders about a certificate, its holder consented): an order that only
    /// typed someone's identifier holds nothing (review M6).
    fn set_subject(&self, order: &mut OrderRecord, key: &str) {
        order.subject_key = Some(key.to_string());
        order.open_key = Some(format!("{}|{key}", order.channel));
    }

    /// Records a typed subject, not yet checked: it claims nothing (see [`Ra::set_subject`]).
    fn enter_subject(&self, order: &mut OrderRecord, key: &str) {
        order.subject_key = Some(key.to_string());
        order.open_key = None;
    }

    /// The subject check passed: the order claims its subject, and a person applying for
    /// themselves is their own verified agent.
    pub(super) fn subject_checked(order: &mut OrderRecord, data: &mut OrderData, flow: Flow) {
        if let Some(key) = order.subject_key.clone() {
            order.open_key = Some(format!("{}|{key}", order.channel));
        }
        // The methods that check the legal representative's phone itself (carrier, the bank
        // card's reserved phone, the face link texted to it): only then is it on file.
        data.legal_rep_phone_checked = data.company.is_some()
            && matches!(data.verification, Some(Method::Phone | Method::BankCard | Method::FaceSms));
        if flow == Flow::PersonalNew {
            order.agent_phone = data.person.as_ref().map(|p| p.phone.clone());
        }
    }

    /// The agent check passed: the agent's phone is verified for this order (review H2: not
    /// before, so a pending or failed check puts nobody on file).
    pub(super) fn agent_checked(order: &mut OrderRecord, data: &OrderData) {
        order.agent_phone = data.agent.as_ref().map(|a| a.person.phone.clone());
    }
}

/// What a legal representative's check code is bound to: the order, the check's reference and
/// the company's credit code (which the SMS names, so the representative knows which company
/// they confirm for).
pub(super) fn legal_rep_code_object(order: &str, reference: &str, credit_code: &str) -> String {
    format!("{order}/{reference}/{credit_code}")
}

/// Face-check links one order may have texted: enough to retry a failed face, too few to
/// spend the SMS budget through redone steps (the per-phone limit does not see made-up
/// phones).
const MAX_FACE_LINKS: u32 = 3;

/// Counts a face-check link the step is about to text, refusing one past [`MAX_FACE_LINKS`].
fn count_face_link(data: &mut OrderData, method: Method) -> Result<(), RaError> {
    if method != Method::FaceSms {
        return Ok(());
    }
    if data.face_links >= MAX_FACE_LINKS {
        return Err(RaError::State(
            "this order has texted its face-check links; choose another method or go to a service counter".into(),
        ));
    }
    data.face_links += 1;
    Ok(())
}

/// The company step's fields, validated; every problem reported at once.
fn company_fields(input: CompanyInput, method: Method, today: time::Date) -> Result<Company, RaError> {
    let mut fields = Fields::default();
    let company = Company {
        name: fields.take(validate::name("name", &input.name, 64)),
        credit_code: fields.take(validate::credit_code("credit_code", &input.credit_code)),
        legal_rep: Ra::person(&mut fields, "legal_rep", input.legal_rep, today, false),
        bank: input.bank.map(|b| bank_fields(&mut fields, b, &input.name, "the company's")),
    };
    let (card, bank) = (company.legal_rep.card.is_some(), company.bank.is_some());
    require_method_data(&mut fields, method, "legal_rep.card", card, bank);
    fields.finish()?;
    Ok(company)
}

/// The person step's fields, validated, and the account a micro-deposit check pays into.
fn person_fields(
    input: PersonInput,
    method: Method,
    today: time::Date,
) -> Result<(Person, Option<BankAccount>), RaError> {
    let mut fields = Fields::default();
    let bank = input.bank.clone().map(|b| bank_fields(&mut fields, b, &input.name, "your"));
    let person = Ra::person(&mut fields, "person", input, today, true);
    require_method_data(&mut fields, method, "person.card", person.card.is_some(), bank.is_some());
    fields.finish()?;
    Ok((person, bank))
}

/// The agent: the legal representative on file (`rep`) applying in person, or the person
/// entered, validated.
fn agent_fields(
    input: AgentInput,
    method: Option<Method>,
    rep: Option<Person>,
    today: time::Date,
    holder: bool,
) -> Result<Person, RaError> {
    let mut fields = Fields::default();
    let person = if input.legal_rep_in_person {
        let rep = rep.ok_or_else(|| {
            RaError::BadRequest("legal_rep_in_person: only for organisations whose data was entered".into())
        })?;
        if !rep.id_type.is_resident_id() {
            return Err(RaError::BadRequest(
                "legal_rep_in_person: the agent holds the cloud key and is checked by the mainland resident ID; \
                 name an agent who has one"
                    .into(),
            ));
        }
        Person {
            email: Some(fields.take(validate::email("email", &input.email))),
            card: input.card.map(|c| fields.take(validate::bank_card("card", &c))),
            ..rep
        }
    } else {
        let p = PersonInput {
            name: input.name.unwrap_or_default(),
            id_type: input.id_type,
            id_number: input.id_number.unwrap_or_default(),
            phone: input.phone.unwrap_or_default(),
            email: Some(input.email),
            card: input.card,
            bank: None,
        };
        Ra::person_as(&mut fields, "agent", p, today, true, holder)
    };
    if let Some(method) = method {
        require_method_data(&mut fields, method, "card", person.card.is_some(), false);
    }
    fields.finish()?;
    Ok(person)
}

/// The product step's invoice e-mail (entered, else `agent_email`) and delivery address
/// (required when the product is `shipped`), validated.
fn product_fields(
    input: ProductInput,
    agent_email: Option<String>,
    paid: bool,
    shipped: bool,
) -> Result<(Option<String>, Option<String>), RaError> {
    let mut fields = Fields::default();
    // A free product has nothing to invoice: no invoice address is kept (whatever was typed).
    let invoice_email = match (paid, input.invoice_email) {
        (false, _) => None,
        (true, Some(e)) => Some(fields.take(validate::email("invoice_email", &e))),
        (true, None) => agent_email,
    };
    if input.invoice && invoice_email.is_none() {
        fields.fail("invoice_email", "email.missing", "an e-mail address for the invoice is required");
    }
    let delivery_address = match (shipped, input.delivery_address) {
        (true, Some(a)) => Some(fields.take(validate::name("delivery_address", &a, 200))),
        (true, None) => {
            fields.fail("delivery_address", "name.empty", "a delivery address is required for a USB key");
            None
        }
        (false, _) => None,
    };
    fields.finish()?;
    Ok((invoice_email, delivery_address))
}

/// What a step does with its body before it needs the order, the store or a provider: read it
/// into the step's input type and validate every field, as [`Ra::step`] does (with each
/// verification method and product shape, since those come from the order). For the fuzz
/// targets (`crate::fuzz`), which must run without a database.
pub(crate) fn check_body(step: Step, body: serde_json::Value, today: time::Date) -> Result<(), RaError> {
    const METHODS: [Method; 5] =
        [Method::BankAccount, Method::Phone, Method::BankCard, Method::FaceSms, Method::FaceQr];
    match step {
        Step::Certificate => {
            let input: CertificateInput = parse(body)?;
            let _ = crate::ca::serial::parse(&input.serial);
            if let Some(reason) = input.reason {
                reason.parse::<crate::status::RevocationReason>().map_err(RaError::BadRequest)?;
            }
        }
        Step::Verification => {
            let _: VerificationInput = parse(body)?;
        }
        Step::Company => {
            let input: CompanyInput = parse(body)?;
            for method in METHODS {
                company_fields(input.clone(), method, today)?;
            }
        }
        Step::Person => {
            let input: PersonInput = parse(body)?;
            for method in METHODS {
                person_fields(input.clone(), method, today)?;
            }
        }
        Step::SubjectCheck | Step::AgentCheck => {
            let _: CheckInput = parse(body)?;
        }
        Step::Agent => {
            let input: AgentInput = parse(body)?;
            let rep = Person {
                name: "张三".into(),
                id_type: IdType::ResidentId,
                id_number: "11010519491231002X".into(),
                phone: "+8613800138000".into(),
                email: None,
                card: None,
            };
            for method in METHODS {
                agent_fields(input.clone(), Some(method), Some(rep.clone()), today, false)?;
            }
        }
        Step::Product => {
            let input: ProductInput = parse(body)?;
            for (paid, shipped) in [(true, false), (true, true), (false, false), (false, true)] {
                product_fields(input.clone(), None, paid, shipped)?;
            }
        }
        Step::Materials => {
            let _: EmptyInput = parse(body)?;
        }
        Step::Signature => {
            let _: SignatureInput = parse(body)?;
        }
        Step::Payment => {
            let _: PaymentInput = parse(body)?;
        }
    }
    Ok(())
}

/// The account a micro-deposit pays into, validated: it must be in the subject's own name
/// (review H3: a deposit into the applicant's own account proves nothing about the company or
/// person applied for). The provider's transfer names the holder, so the bank refuses an
/// account whose name differs.
fn bank_fields(fields: &mut Fields, b: BankAccount, holder: &str, whose: &str) -> BankAccount {
    let account_name = fields.take(validate::name("bank.account_name", &b.account_name, 64));
    if !account_name.is_empty() && !validate::same_name(&account_name, holder) {
        fields.fail(
            "bank.account_name",
            "bank.not_subject",
            &format!("the account must be in {whose} own name, exactly as registered"),
        );
    }
    BankAccount {
        account_name,
        account_number: fields.take(validate::account_number("bank.account_number", &b.account_number)),
        bank: fields.take(validate::name("bank.bank", &b.bank, 64)),
    }
}

/// Whose identity a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    /// A company's legal representative: the company's name, credit code and this person
    /// pass the enterprise registry's check first, so a micro-deposit into the company's
    /// account binds the representative's document through the registry.
    LegalRep,
    /// A personal applicant: the subject of the certificate.
    Applicant,
    /// An organisation's agent (resident ID only, never a micro-deposit).
    Agent,
}

/// Why `method` cannot check a holder of a document of `id_type` (a check failure: counted,
/// the offline path offered), or None when it can. Carriers and the face check know people by
/// the resident ID only. A personal applicant's micro-deposit binds only the account name, so
/// with another document it would let anyone type somebody else's passport number (attacker
/// review of C6). The bank card's four elements carry the document type, so that check can
/// be made with any document.
fn unbound_document(id_type: IdType, party: Party, method: Method) -> Option<String> {
    if id_type.is_resident_id() {
        return None;
    }
    let what = id_type.name();
    match method {
        Method::Phone | Method::FaceSms | Method::FaceQr => Some(format!(
            "the carrier's phone check and the face check need a mainland resident ID; with a {what}, \
             choose the bank card check (its four elements carry the document type), or apply offline",
        )),
        Method::BankAccount if party != Party::LegalRep => Some(format!(
            "the bank account check (a micro-deposit) proves the account's name only, not a {what} number; \
             choose the bank card check (its four elements carry the document type), or apply offline",
        )),
        Method::BankAccount | Method::BankCard => None,
    }
}

/// Bank-card checks need a card; bank-account checks an account.
fn require_method_data(fields: &mut Fields, method: Method, card_field: &str, has_card: bool, has_bank: bool) {
    if method == Method::BankCard && !has_card {
        fields.fail(card_field, "bank_card.missing", "the bank card number is required for a bank-card check");
    }
    if method == Method::BankAccount && !has_bank {
        fields.fail("bank", "bank.missing", "the bank account is required for a micro-deposit check");
    }
}

/// 422 `terms.not_accepted` on `accept_terms`.
fn terms_not_accepted(message: &str) -> RaError {
    let e = FieldError { field: "accept_terms".into(), code: "terms.not_accepted", message: message.into() };
    RaError::Invalid(vec![e])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_micro_deposit_binds_another_document_only_through_the_companys_registry_check() {
        let passport = IdType::Passport;
        let refused = unbound_document(passport, Party::Applicant, Method::BankAccount).expect("refused");
        assert!(refused.contains("bank card") && refused.contains("offline"), "{refused}");
        assert_eq!(unbound_document(passport, Party::LegalRep, Method::BankAccount), None);
        assert_eq!(unbound_document(passport, Party::Applicant, Method::BankCard), None);
        assert!(unbound_document(passport, Party::LegalRep, Method::Phone).is_some());
        for method in [Method::BankAccount, Method::Phone, Method::FaceSms] {
            assert_eq!(unbound_document(IdType::ResidentId, Party::Applicant, method), None);
        }
    }
}
