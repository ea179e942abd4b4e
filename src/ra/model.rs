//! What an order holds (`data`, one section per completed step) and how it is shown: to the
//! applicant with identifiers masked, to reviewers whole, and to everyone else who may see an
//! order (operators, auditors, order-query sessions) through the masked views
//! [`OrderData::masked`] and [`OrderView::masked`]: names stay, ID numbers, phones, bank cards
//! and accounts and e-mail addresses are shown as [`mask`] leaves them.

use serde::{Deserialize, Serialize};

use super::channels::{Channel, Method};
use super::flow::{self, Flow, Shape, Step};
use super::validate::mask;
use super::RaError;
use crate::providers::payment::PayMethod;
use crate::store::{MaterialRecord, OrderRecord};

/// The steps an offline order still takes online (handbook B11: 经办人信息采集, 购买商品,
/// 支付订单), where its flow has them; the papers stand for the rest.
const OFFLINE_STEPS: [Step; 3] = [Step::Agent, Step::Product, Step::Payment];

/// A company bank account (micro-deposit check).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BankAccount {
    /// Account holder's name as the bank has it (the company's or person's name).
    pub account_name: String,
    /// Account number.
    pub account_number: String,
    /// Bank name.
    pub bank: String,
}

/// A person: the legal representative, an individual applicant or an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Person {
    /// Name.
    pub name: String,
    /// The kind of identity document `id_number` is from (handbook B8, table 2).
    #[serde(default, skip_serializing_if = "IdType::is_resident_id")]
    pub id_type: IdType,
    /// The document's number (a resident ID unless `id_type` says otherwise).
    pub id_number: String,
    /// E.164 mobile.
    pub phone: String,
    /// E-mail (required of agents and individual applicants).
    #[serde(default)]
    pub email: Option<String>,
    /// Bank card (bank-card check).
    #[serde(default)]
    pub card: Option<String>,
}

/// Identity documents (handbook B8, C6: 证件类型), the CA's ([`crate::ca::identifiers`]).
/// A legal representative and a personal applicant may give any; an agent, who is checked
/// online by carrier, bank card or face, gives the resident ID. Carriers and the face check
/// know people by the resident ID only; the bank card's four elements carry the document type.
pub use crate::ca::identifiers::IdType;

/// Company data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Company {
    /// Registered name.
    pub name: String,
    /// Unified social credit code.
    pub credit_code: String,
    /// The legal representative.
    pub legal_rep: Person,
    /// The company account (bank-account check).
    #[serde(default)]
    pub bank: Option<BankAccount>,
}

/// The agent and how they were checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Agent {
    /// The legal representative applies in person (their data was copied over).
    pub legal_rep_in_person: bool,
    /// The agent.
    pub person: Person,
    /// How the agent was checked; none on an offline order, whose papers stand for the check
    /// (the agent is only collected there).
    #[serde(default)]
    pub method: Option<Method>,
}

/// An identity check that completes later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingCheck {
    /// Method.
    pub method: Method,
    /// Micro-deposit reference or face session id.
    pub reference: String,
    /// Face check link (QR code on site, or the link that was texted).
    #[serde(default)]
    pub url: Option<String>,
}

/// The existing certificate a flow is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateRef {
    /// Serial (hex).
    pub serial: String,
    /// Profile (`org`, `personal`).
    pub profile: String,
    /// Credit code or resident ID.
    pub identifier: String,
    /// Subject attributes.
    pub subject: Vec<(String, String)>,
    /// Unix seconds.
    pub not_after: i64,
    /// The phone the SMS code went to (holder or certificate administrator).
    pub holder_phone: String,
}

/// The chosen product.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProductChoice {
    /// Product id.
    pub id: String,
    /// Name shown.
    pub name: String,
    /// Price in fen.
    pub price_fen: i64,
    /// An e-invoice is wanted; its title is fixed to the organisation (or person).
    pub invoice: bool,
    /// Where the invoice goes.
    #[serde(default)]
    pub invoice_email: Option<String>,
    /// Delivery address for shipped media (changeable until shipped).
    #[serde(default)]
    pub delivery_address: Option<String>,
    /// A seal order's 变章: the organisation's seal whose image (and name) it replaces; none
    /// for 补章, a new seal.
    #[serde(default)]
    pub seal_change: Option<String>,
    /// The seal's name (a seal order; default the organisation's name, or the changed seal's).
    #[serde(default)]
    pub seal_name: Option<String>,
}

/// Evidence of the application signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignatureEvidence {
    /// SHA-256 of the terms text accepted.
    pub terms_sha256: String,
    /// Unix seconds.
    pub accepted_at: i64,
    /// The agent phone the SMS code was sent to and read back from.
    pub phone: String,
}

/// The user agreement an applicant agreed to before any identity check (handbook B3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TermsConsent {
    /// SHA-256 of the terms text agreed to.
    pub terms_sha256: String,
    /// Unix seconds.
    pub accepted_at: i64,
}

/// A payment in progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentData {
    /// WeChat Pay or Alipay.
    pub method: PayMethod,
    /// Provider reference.
    pub provider_ref: String,
    /// The QR code's URL.
    pub qr_url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Everything the completed steps entered. Serialized into the order row.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderData {
    /// Steps completed, in order.
    #[serde(default)]
    pub done: Vec<Step>,
    /// Flows about a certificate: which one.
    #[serde(default)]
    pub certificate: Option<CertificateRef>,
    /// The subject's verification method.
    #[serde(default)]
    pub verification: Option<Method>,
    /// Organisation flows.
    #[serde(default)]
    pub company: Option<Company>,
    /// Personal flows.
    #[serde(default)]
    pub person: Option<Person>,
    /// The subject's asynchronous check.
    #[serde(default)]
    pub subject_check: Option<PendingCheck>,
    /// The agent.
    #[serde(default)]
    pub agent: Option<Agent>,
    /// The agent's asynchronous check.
    #[serde(default)]
    pub agent_check: Option<PendingCheck>,
    /// When the legal representative authorised the agent online (instead of a letter).
    #[serde(default)]
    pub authorized_online_at: Option<i64>,
    /// Product and invoice.
    #[serde(default)]
    pub product: Option<ProductChoice>,
    /// The user agreement accepted where the verification method was chosen (handbook B3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_accepted: Option<TermsConsent>,
    /// Application signature evidence.
    #[serde(default)]
    pub signature: Option<SignatureEvidence>,
    /// Payment in progress.
    #[serde(default)]
    pub payment: Option<PaymentData>,
    /// Revocation reason asked for (revocation flow).
    #[serde(default)]
    pub revocation_reason: Option<String>,
    /// Failed identity checks so far (after a failure the applicant may go offline).
    #[serde(default)]
    pub check_failures: u32,
    /// When the applicant last changed the delivery address while the order waited for an
    /// officer: the review page says so, since what the officer read may have changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_changed_in_review_at: Option<i64>,
    /// The applicant went the offline way (线下邮寄) after a failed check: the papers replace
    /// the online checks, signature and uploads; the agent, product and payment are still
    /// taken online (handbook B11, C7).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Why this order must go to an officer whatever the channel's rule (e.g. nobody is on
    /// file to consent for its certificate online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_review: Option<String>,
    /// The subject check that passed checked the legal representative's phone itself, so an
    /// approval may put that phone on file.
    #[serde(default)]
    pub legal_rep_phone_checked: bool,
    /// Face-check links this order has had texted (capped per order).
    #[serde(default)]
    pub face_links: u32,
    /// The link texted to the legal representative to read and sign the authorisation letter:
    /// only the SHA-256 of its secret, and until when it opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter_link: Option<LetterLink>,
    /// SHA-256 of the letter the legal representative signed online, kept as a material. It
    /// stays when the authorisation is withdrawn, so that material no longer counts as the
    /// letter an agent needs (only a new signature or a stamped upload does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_letter: Option<String>,
}

/// A letter link's stored half.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LetterLink {
    /// Hex SHA-256 of the link's secret.
    pub hash: String,
    /// Unix seconds: the link opens nothing after this.
    pub expires_at: i64,
    /// The masked phone it went to.
    pub phone: String,
}

impl OrderData {
    /// Withdraws the legal representative's online authorisation and any letter link still
    /// out: what they authorised (this company, this agent, this product) is no longer what the
    /// order says (review of the letter link, M1 and M2).
    pub fn withdraw_authorisation(&mut self) {
        self.authorized_online_at = None;
        self.letter_link = None;
    }

    /// Parses an order's `data`. Data this binary cannot read (written by another version, or
    /// damaged) is an error, never empty data: saving defaults back would wipe the order,
    /// payment and all (attacker review of C6). The log names the order and where the JSON
    /// breaks, never its content (personal data).
    pub fn of(order: &OrderRecord) -> Result<OrderData, RaError> {
        let mut data: OrderData = serde_json::from_str(&order.data).map_err(|e| {
            let (line, column, class) = (e.line(), e.column(), format!("{:?}", e.classify()));
            tracing::error!(order = %order.id, line, column, class, "an order's stored data cannot be read");
            RaError::UnreadableOrder(order.id.clone())
        })?;
        // An order that went offline before the flag existed takes the offline steps too.
        data.offline |= order.state == "offline";
        Ok(data)
    }

    /// Serialises back into the row.
    pub fn store(&self, order: &mut OrderRecord) {
        // Invariant: `OrderData` is plain structs, vectors and options with derived
        // `Serialize` (no map with non-string keys), which serde_json always serialises. Never
        // a fallback such as "{}": that would wipe the order.
        order.data = serde_json::to_string(self).expect("OrderData always serialises");
    }

    /// Whether the subject is an organisation.
    pub fn organisation(&self, flow: Flow) -> bool {
        match flow {
            Flow::OrgNew | Flow::Seal => true,
            Flow::PersonalNew => false,
            _ => self.certificate.as_ref().is_some_and(|c| c.profile == "org"),
        }
    }

    /// The material kinds still required (channel rule, plus the authorisation letter when an
    /// agent who is not the legal representative has no online authorisation).
    pub fn required_materials(&self, flow: Flow, channel: &Channel) -> Vec<String> {
        let mut kinds = channel.rule(flow).materials;
        // Only a new organisation application needs the representative's authority; orders
        // about an existing certificate carry its holder's SMS consent instead.
        let agent_needs_letter = flow == Flow::OrgNew
            && self.agent.as_ref().is_some_and(|a| !a.legal_rep_in_person)
            && self.authorized_online_at.is_none();
        if agent_needs_letter && !kinds.iter().any(|k| k == "authorization-letter") {
            kinds.push("authorization-letter".into());
        }
        // A product "with seal" makes the organisation's seal from the image the order carries.
        if self.includes_seal(flow, channel) && !kinds.iter().any(|k| k == "seal-image") {
            kinds.push("seal-image".into());
        }
        // A passport has no back side to copy (handbook C6); the permits and the permanent
        // resident card do.
        if self.id_copies_document() == IdType::Passport {
            kinds.retain(|k| k != "id-back");
        }
        kinds
    }

    /// The document whose copies `id-front` and `id-back` are: the agent's (经办人身份证正反面,
    /// always the resident ID, or the legal representative's own applying in person, likewise),
    /// else a personal applicant's, else the resident ID (nobody is entered yet).
    pub fn id_copies_document(&self) -> IdType {
        let holder = self.agent.as_ref().map(|a| &a.person).or(self.person.as_ref());
        holder.map_or(IdType::ResidentId, |p| p.id_type)
    }

    /// Whether the chosen product includes a seal for the organisation (handbook: 机构云证书含
    /// 电子印章): a new organisation certificate or an organisation's renewal. A seal order is
    /// its own flow with its own materials rule.
    pub fn includes_seal(&self, flow: Flow, channel: &Channel) -> bool {
        let chosen = self.product.as_ref().and_then(|c| channel.products.iter().find(|p| p.id == c.id));
        flow != Flow::Seal && self.organisation(flow) && chosen.is_some_and(|p| p.seal)
    }

    /// The steps of this order, in order.
    pub fn steps(&self, flow: Flow, channel: &Channel) -> Vec<Step> {
        let organisation = self.organisation(flow);
        // An order whose company passed the one-step check before the representative's code
        // existed (done, nothing pending) is not held back by a step it cannot take.
        let rep_code = organisation && (self.subject_check.is_some() || !self.done.contains(&Step::Company));
        let subject_check_async = self.subject_check.is_some()
            || self.verification.is_some_and(|m| m.asynchronous() || (rep_code && m.texts_legal_rep()));
        let shape = Shape {
            organisation,
            subject_check_async,
            agent_check_async: self.agent.as_ref().and_then(|a| a.method).is_some_and(Method::asynchronous),
            // The chosen product's price, once chosen; before, whether the flow can cost
            // anything (a flow may offer a free product beside paid ones).
            paid: match &self.product {
                Some(chosen) => chosen.price_fen > 0,
                None => channel.charges_in(flow),
            },
            // A choice stays open until the order is signed (a redo of the product step is
            // refused after that), so a free product chosen first can still become a paid one.
            choice: channel.products_for(flow).nth(1).is_some(),
            materials: !self.required_materials(flow, channel).is_empty(),
        };
        let steps = flow::steps(flow, shape);
        if self.offline {
            // On paper: the form signed and stamped, the copies mailed, an officer's review.
            return steps.into_iter().filter(|s| OFFLINE_STEPS.contains(s)).collect();
        }
        steps
    }

    /// The code printed on an offline order's form: a digest of what the form shows (the
    /// order, company, person, agent, product and price). The officer types it from the papers
    /// received; a form printed before the data changed (an agent swapped after the signed
    /// form was mailed, say) no longer matches (attacker review of the offline path).
    pub fn form_code(&self, order_id: &str) -> String {
        use sha2::Digest;
        let product = self.product.as_ref().map(|p| (&p.id, p.price_fen));
        let shown = serde_json::json!({ "order": order_id, "company": self.company, "person": self.person,
                                         "agent": self.agent, "product": product });
        let digest = sha2::Sha256::digest(shown.to_string().as_bytes());
        let hex = hex::encode_upper(&digest[..5]);
        format!("{}-{}", &hex[..5], &hex[5..])
    }

    /// The first step not done, if any.
    pub fn next_step(&self, flow: Flow, channel: &Channel) -> Option<Step> {
        self.steps(flow, channel).into_iter().find(|s| !self.done.contains(s))
    }

    /// Marks a step done (once).
    pub fn complete(&mut self, step: Step) {
        if !self.done.contains(&step) {
            self.done.push(step);
        }
    }
}

/// `******78`: every character but the last two hidden.
fn mask_all_but_two(s: &str) -> String {
    let n = s.chars().count();
    s.chars().enumerate().map(|(i, c)| if i + 2 < n { '*' } else { c }).collect()
}

/// An identifier masked (a certificate's identifier or `serialNumber`, an order's subject key,
/// a search filter, a query's subject): a valid credit code or resident ID as every identifier
/// ([`mask`]: first three and last four shown); another document's number
/// ([`crate::ca::identifiers::person_identifier`]) as [`Person::masked_id`] masks it, after its
/// type; anything else (a bare passport number typed into a filter, a name) as short as
/// another document's, every character but the last two hidden: first three and last four of
/// `E12345678` would leave two digits unknown (attacker review of C6).
pub fn mask_identifier(identifier: &str) -> String {
    use crate::ca::identifiers::{document_of, validate_credit_code, validate_resident_id};
    match document_of(identifier) {
        (IdType::ResidentId, _) => {
            // Any birth date up to the end of time: what matters is the form, not the clock.
            let resident = validate_resident_id(identifier, (9999, 12, 31)).is_ok();
            if resident || validate_credit_code(identifier).is_ok() {
                mask(identifier)
            } else {
                mask_all_but_two(identifier)
            }
        }
        (id_type, number) => format!("{}:{}", id_type.name(), mask_all_but_two(number)),
    }
}

impl Person {
    /// The ID number masked: a resident ID as every identifier; other documents are short (8
    /// or 9 characters), so only their last two characters show.
    pub fn masked_id(&self) -> String {
        if self.id_type.is_resident_id() {
            mask(&self.id_number)
        } else {
            mask_all_but_two(&self.id_number)
        }
    }

    /// The person's identifier as the CA stores it and puts it in a certificate's
    /// `serialNumber`, and as the order's subject key: the resident ID number, or the
    /// document's type and number (`passport:E12345678`), so one document's number is never
    /// taken for another's.
    pub fn identifier(&self) -> String {
        crate::ca::identifiers::person_identifier(self.id_type, &self.id_number)
    }

    /// The person with ID number, phone, e-mail and bank card masked; the name stays.
    fn masked(&self) -> Person {
        // Destructured so that a field added to `Person` must be placed here, masked or not.
        let Person { name, id_type, id_number: _, phone, email, card } = self; // id_number: masked_id()
        Person {
            name: name.clone(),
            id_type: *id_type,
            id_number: self.masked_id(),
            phone: mask(phone),
            email: email.as_deref().map(mask),
            card: card.as_deref().map(mask),
        }
    }
}

impl OrderData {
    /// The same data with every personal identifier masked (ID numbers, phones, bank cards and
    /// account numbers, e-mail addresses, a certificate's identifier and `serialNumber`): what
    /// a role that does not decide on the order may see (review L10). Names, the credit code
    /// (the key of a public register) and the delivery address (dispatch needs it) stay.
    ///
    /// Every struct is destructured in full, so a field added to the order data does not
    /// compile until it is decided here whether it is masked.
    pub fn masked(&self) -> OrderData {
        let OrderData {
            done,
            certificate,
            verification,
            company,
            person,
            subject_check,
            agent,
            agent_check,
            authorized_online_at,
            product,
            terms_accepted,
            signature,
            payment,
            revocation_reason,
            check_failures,
            address_changed_in_review_at,
            offline,
            officer_review,
            legal_rep_phone_checked,
            face_links,
            letter_link,
            online_letter,
        } = self;
        OrderData {
            done: done.clone(),
            certificate: certificate.as_ref().map(|c| {
                let CertificateRef { serial, profile, identifier, subject, not_after, holder_phone } = c;
                CertificateRef {
                    serial: serial.clone(),
                    profile: profile.clone(),
                    identifier: mask_identifier(identifier),
                    subject: subject_shown(subject),
                    not_after: *not_after,
                    holder_phone: mask(holder_phone),
                }
            }),
            verification: *verification,
            terms_accepted: terms_accepted.clone(),
            company: company.as_ref().map(|c| {
                let Company { name, credit_code, legal_rep, bank } = c;
                Company {
                    name: name.clone(),
                    credit_code: credit_code.clone(),
                    legal_rep: legal_rep.masked(),
                    bank: bank.as_ref().map(|b| {
                        let BankAccount { account_name, account_number, bank } = b;
                        BankAccount {
                            account_name: account_name.clone(),
                            account_number: mask(account_number),
                            bank: bank.clone(),
                        }
                    }),
                }
            }),
            person: person.as_ref().map(Person::masked),
            subject_check: subject_check.clone(),
            agent: agent.as_ref().map(|a| {
                let Agent { legal_rep_in_person, person, method } = a;
                Agent { legal_rep_in_person: *legal_rep_in_person, person: person.masked(), method: *method }
            }),
            agent_check: agent_check.clone(),
            authorized_online_at: *authorized_online_at,
            product: product.as_ref().map(|p| {
                let ProductChoice {
                    id,
                    name,
                    price_fen,
                    invoice,
                    invoice_email,
                    delivery_address,
                    seal_change,
                    seal_name,
                } = p;
                ProductChoice {
                    id: id.clone(),
                    name: name.clone(),
                    price_fen: *price_fen,
                    invoice: *invoice,
                    invoice_email: invoice_email.as_deref().map(mask),
                    delivery_address: delivery_address.clone(),
                    seal_change: seal_change.clone(),
                    seal_name: seal_name.clone(),
                }
            }),
            signature: signature.as_ref().map(|s| {
                let SignatureEvidence { terms_sha256, accepted_at, phone } = s;
                SignatureEvidence { terms_sha256: terms_sha256.clone(), accepted_at: *accepted_at, phone: mask(phone) }
            }),
            payment: payment.clone(),
            revocation_reason: revocation_reason.clone(),
            check_failures: *check_failures,
            address_changed_in_review_at: *address_changed_in_review_at,
            offline: *offline,
            officer_review: officer_review.clone(),
            legal_rep_phone_checked: *legal_rep_phone_checked,
            face_links: *face_links,
            // Only a hash and a masked phone: nothing to mask further.
            letter_link: letter_link.clone(),
            online_letter: online_letter.clone(),
        }
    }
}

/// The applicant's view of an order (identifiers masked).
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// Order number.
    pub id: String,
    /// Channel.
    pub channel: String,
    /// Flow.
    pub flow: String,
    /// State.
    pub state: String,
    /// The next step, while open.
    pub next_step: Option<String>,
    /// Every step with whether it is done.
    pub steps: Vec<StepView>,
    /// Price in fen.
    pub amount_fen: i64,
    /// Paid at (unix seconds).
    pub paid_at: Option<i64>,
    /// The payment QR code while paying.
    pub payment: Option<PaymentData>,
    /// Material kinds required, and those uploaded.
    pub materials_required: Vec<String>,
    /// Uploaded materials.
    pub materials: Vec<MaterialView>,
    /// Summary of what was entered, masked.
    pub summary: serde_json::Value,
    /// The face-check link or QR of a pending check.
    pub pending_check: Option<PendingCheck>,
    /// The certificate concerned or issued.
    pub serial: Option<String>,
    /// E-invoice number, once issued.
    pub invoice_no: Option<String>,
    /// Why rejected or cancelled.
    pub reason: Option<String>,
    /// Failed identity checks (after one, the offline path is offered).
    pub check_failures: u32,
    /// Why this order must go to an officer whatever the channel's rule (e.g. nobody is on
    /// file to consent for its certificate online).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer_review: Option<String>,
    /// An offline order's form code ([`OrderData::form_code`]), as printed on its form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_code: Option<String>,
    /// A seal order's organisation's active seals, one of which the product step may change
    /// (变章); empty otherwise. Filled by [`super::Ra::view`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<SealOption>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A seal a seal order may change: its id and name (never its image).
#[derive(Debug, Clone, Serialize)]
pub struct SealOption {
    /// Seal id (`seal_change` of the product step).
    pub id: String,
    /// Name.
    pub name: String,
}

/// A step and whether it is done.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Step name.
    pub name: &'static str,
    /// Done.
    pub done: bool,
}

/// An uploaded material, without its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct MaterialView {
    /// Kind.
    pub kind: String,
    /// Sniffed content type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Content address.
    pub sha256: String,
}

impl From<&MaterialRecord> for MaterialView {
    fn from(m: &MaterialRecord) -> Self {
        MaterialView {
            kind: m.kind.clone(),
            content_type: m.content_type.clone(),
            size: m.size,
            sha256: m.sha256.clone(),
        }
    }
}

impl OrderView {
    /// Builds the applicant's view.
    pub fn new(order: &OrderRecord, channel: &Channel, materials: &[MaterialRecord]) -> Result<OrderView, RaError> {
        let data = OrderData::of(order)?;
        let flow = Flow::parse(&order.flow).unwrap_or(Flow::OrgNew);
        let open = order.state == "open";
        // An offline order still takes its agent, product and payment steps online.
        let steps_open = open || order.state == "offline";
        let steps = data.steps(flow, channel);
        let pending_check = match data.next_step(flow, channel) {
            Some(Step::SubjectCheck) if open => data.subject_check.clone(),
            Some(Step::AgentCheck) if open => data.agent_check.clone(),
            _ => None,
        };
        Ok(OrderView {
            id: order.id.clone(),
            channel: order.channel.clone(),
            flow: order.flow.clone(),
            state: order.state.clone(),
            next_step: if steps_open { data.next_step(flow, channel).map(|s| s.name().to_string()) } else { None },
            steps: steps.iter().map(|s| StepView { name: s.name(), done: data.done.contains(s) }).collect(),
            amount_fen: order.amount_fen,
            paid_at: order.paid_at,
            payment: if steps_open && order.paid_at.is_none() { data.payment.clone() } else { None },
            materials_required: data.required_materials(flow, channel),
            materials: materials.iter().map(MaterialView::from).collect(),
            summary: summary(&data),
            pending_check,
            serial: order.serial.clone(),
            invoice_no: order.invoice_no.clone(),
            reason: order.reason.clone(),
            check_failures: data.check_failures,
            officer_review: data.officer_review.clone(),
            form_code: (order.state == "offline").then(|| data.form_code(&order.id)),
            seals: Vec::new(),
            created_at: order.created_at,
            updated_at: order.updated_at,
        })
    }
}

/// Where [`summary`] shows an e-mail address in full (the applicant's own view does).
const SUMMARY_EMAILS: [&str; 4] =
    ["/company/legal_rep/email", "/person/email", "/agent/person/email", "/product/invoice_email"];

impl OrderView {
    /// The view with e-mail addresses masked as well, for anyone but the applicant who typed
    /// them in (order-query sessions: an agent proving their phone sees the orders they
    /// handled, not other people's contacts). ID numbers and phones are masked in every view
    /// already; names, the delivery address, the payment QR code and a pending face check's
    /// link stay, since whoever may act on the order needs them.
    pub fn masked(mut self) -> OrderView {
        for pointer in SUMMARY_EMAILS {
            if let Some(value) = self.summary.pointer_mut(pointer) {
                if let Some(email) = value.as_str() {
                    *value = mask(email).into();
                }
            }
        }
        self
    }
}

/// A certificate's subject as the applicant sees it (read-only): `serialNumber` (an ID
/// number or credit code) masked like every identifier.
fn subject_shown(subject: &[(String, String)]) -> Vec<(String, String)> {
    subject.iter().map(|(k, v)| (k.clone(), if k == "serialNumber" { mask_identifier(v) } else { v.clone() })).collect()
}

/// What was entered, with ID numbers, cards, accounts and phones masked.
fn summary(d: &OrderData) -> serde_json::Value {
    let person = |p: &Person| serde_json::json!({ "name": p.name, "id_type": p.id_type, "id_number": p.masked_id(), "phone": mask(&p.phone), "email": p.email });
    serde_json::json!({
        "certificate": d.certificate.as_ref().map(|c| serde_json::json!({ "serial": c.serial, "profile": c.profile, "identifier": mask_identifier(&c.identifier), "not_after": c.not_after, "subject": subject_shown(&c.subject), "prefill": prefill(c) })),
        "verification": d.verification,
        "terms_accepted": d.terms_accepted,
        "company": d.company.as_ref().map(|c| serde_json::json!({ "name": c.name, "credit_code": c.credit_code, "legal_rep": person(&c.legal_rep) })),
        "person": d.person.as_ref().map(person),
        "agent": d.agent.as_ref().map(|a| serde_json::json!({ "legal_rep_in_person": a.legal_rep_in_person, "method": a.method, "person": person(&a.person) })),
        "authorized_online": d.authorized_online_at.is_some(),
        "product": d.product,
        "signed": d.signature.is_some(),
    })
}

/// What the certificate's data pre-fills in the subject step of a renewal or change (handbook
/// §3.1 证书更新信息): the name, and an organisation's credit code (a public register's key;
/// a person's ID number stays masked and is typed again).
fn prefill(c: &CertificateRef) -> serde_json::Value {
    let attr = |k: &str| c.subject.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    if c.profile == "org" {
        serde_json::json!({ "name": attr("O").or_else(|| attr("CN")), "credit_code": c.identifier })
    } else {
        serde_json::json!({ "name": attr("CN") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11010519491231002X";
    const PHONE: &str = "+8613800138000";
    const EMAIL: &str = "lisi@example.com";
    const CARD: &str = "6222020200112233445";
    const ACCOUNT: &str = "35001234567890123";

    fn person() -> Person {
        Person {
            id_type: IdType::ResidentId,
            name: "张三".into(),
            id_number: ID.into(),
            phone: PHONE.into(),
            email: Some(EMAIL.into()),
            card: Some(CARD.into()),
        }
    }

    fn data() -> OrderData {
        OrderData {
            certificate: Some(CertificateRef {
                serial: "01".into(),
                profile: "personal".into(),
                identifier: ID.into(),
                subject: vec![("CN".into(), "张三".into()), ("serialNumber".into(), ID.into())],
                not_after: 0,
                holder_phone: PHONE.into(),
            }),
            company: Some(Company {
                name: "福建示例科技有限公司".into(),
                credit_code: "91350100M000100Y43".into(),
                legal_rep: person(),
                bank: Some(BankAccount {
                    account_name: "福建示例科技有限公司".into(),
                    account_number: ACCOUNT.into(),
                    bank: "某银行".into(),
                }),
            }),
            person: Some(person()),
            agent: Some(Agent { legal_rep_in_person: false, person: person(), method: Some(Method::Phone) }),
            product: Some(ProductChoice {
                id: "p".into(),
                name: "p".into(),
                price_fen: 1,
                invoice: true,
                invoice_email: Some(EMAIL.into()),
                delivery_address: None,
                seal_change: None,
                seal_name: None,
            }),
            signature: Some(SignatureEvidence { terms_sha256: "00".into(), accepted_at: 0, phone: PHONE.into() }),
            ..OrderData::default()
        }
    }

    /// Attacker review of C6: only a valid resident ID or credit code shows its first three and
    /// last four characters; any other value, a bare passport number included, its last two.
    #[test]
    fn an_identifier_is_masked_by_what_it_is() {
        assert_eq!(mask_identifier("E12345678"), "*******78");
        assert_eq!(mask_identifier("passport:E12345678"), "passport:*******78");
        assert_eq!(mask_identifier("11010519491231002X"), "110***********002X");
        assert_eq!(mask_identifier("91350100M000100Y43"), "913***********0Y43");
        assert_eq!(mask_identifier("110105194912310023"), "****************23", "not a valid resident ID");
        assert_eq!(
            mask_identifier("foreign-permanent-resident:911101199003074338"),
            "foreign-permanent-resident:****************38"
        );
        assert_eq!(mask_identifier(""), "");
    }

    fn shipped_channel() -> Channel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        super::super::channels::load_all(&dir).unwrap().remove("default").unwrap()
    }

    /// Handbook C6: a passport has no back side, so a personal applicant holding one uploads
    /// its photo page alone; the permits and the permanent resident card have a back.
    #[test]
    fn a_passport_holder_is_not_asked_for_the_back_of_the_document() {
        let channel = shipped_channel();
        let applicant = |id_type| OrderData { person: Some(Person { id_type, ..person() }), ..OrderData::default() };
        assert_eq!(
            applicant(IdType::ResidentId).required_materials(Flow::PersonalNew, &channel),
            ["id-front", "id-back"]
        );
        assert_eq!(applicant(IdType::Passport).required_materials(Flow::PersonalNew, &channel), ["id-front"]);
        for id_type in [IdType::HkMacaoPermit, IdType::TaiwanPermit, IdType::ForeignPermanentResident] {
            assert_eq!(applicant(id_type).required_materials(Flow::PersonalNew, &channel), ["id-front", "id-back"]);
        }
        // An organisation's copies are its agent's (a resident ID), whatever the legal
        // representative holds.
        let mut org = data();
        org.company.as_mut().unwrap().legal_rep.id_type = IdType::Passport;
        org.authorized_online_at = Some(0);
        assert_eq!(org.id_copies_document(), IdType::ResidentId);
        assert!(org.required_materials(Flow::OrgNew, &channel).contains(&"id-back".to_string()));
    }

    /// A flow that offers a free product beside paid ones (a free USB key beside the paid
    /// cloud certificate, a free change beside a paid one) asks for payment exactly when the
    /// chosen product costs something. Before, the flow's lowest price decided: one free
    /// product took the payment step away from every paid one, and a paid certificate was
    /// issued unpaid.
    #[test]
    fn the_chosen_products_price_decides_the_payment_step() {
        use super::super::channels::Product;
        let mut channel = shipped_channel();
        let paid = channel.products_for(Flow::PersonalNew).next().unwrap().clone();
        assert!(paid.price_fen > 0, "{paid:?}");
        let free = Product { id: "free-ukey".into(), price_fen: 0, medium: "usb-key".into(), ..paid.clone() };
        channel.products.push(free.clone());
        let choosing = |p: Option<&Product>| OrderData {
            person: Some(person()),
            product: p.map(|p| ProductChoice {
                id: p.id.clone(),
                name: p.name.clone(),
                price_fen: p.price_fen,
                invoice: false,
                invoice_email: None,
                delivery_address: None,
                seal_change: None,
                seal_name: None,
            }),
            ..OrderData::default()
        };
        let pays = |p: Option<&Product>| choosing(p).steps(Flow::PersonalNew, &channel).contains(&Step::Payment);
        assert!(pays(Some(&paid)), "the paid product is paid for");
        assert!(!pays(Some(&free)), "the free one has nothing to pay");
        assert!(pays(None), "before the choice the flow may cost something");
    }

    #[test]
    fn masked_order_data_shows_no_identifier_in_full_and_keeps_names() {
        let text = serde_json::to_string(&data().masked()).unwrap();
        for secret in [ID, PHONE, EMAIL, CARD, ACCOUNT] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains(&mask(ID)) && text.contains(&mask(ACCOUNT)), "{text}");
        assert!(text.contains("张三") && text.contains("91350100M000100Y43"), "{text}");
    }

    #[test]
    fn masked_order_view_masks_the_emails_the_applicant_view_shows() {
        let mut view = OrderView {
            id: "o".into(),
            channel: "default".into(),
            flow: "org-new".into(),
            state: "open".into(),
            next_step: None,
            steps: vec![],
            amount_fen: 0,
            paid_at: None,
            payment: None,
            materials_required: vec![],
            materials: vec![],
            summary: summary(&data()),
            pending_check: None,
            form_code: None,
            seals: vec![],
            serial: None,
            invoice_no: None,
            reason: None,
            check_failures: 0,
            officer_review: None,
            created_at: 0,
            updated_at: 0,
        };
        assert!(view.summary.to_string().contains(EMAIL), "the applicant's own view shows the e-mail");
        view = view.masked();
        let text = view.summary.to_string();
        for secret in [ID, PHONE, EMAIL] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
