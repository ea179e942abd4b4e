//! The legal representative signs the authorisation letter on their own phone (handbook §2,
//! coverage B30): the agent's page asks for it, and the RA texts the legal representative
//! (only to a phone proven to be theirs: [`Ra::authorisation_phone`]) a link to the web
//! front's letter page, `{ra.front_url}/letter/{order}.{secret}`. There they read the letter
//! (scope and period), have a code texted to the same phone, and sign with it; the signed
//! letter is kept with the order as evidence ([`Ra::keep_signed_letter`]). The agent never
//! sees the code: the order only moves on once the legal representative has signed.
//!
//! The link is a bearer to read the letter and to ask for the code, never to sign: signing
//! takes the code from the legal representative's phone. Only the SHA-256 of its secret is
//! stored; it opens for [`LINK_SECONDS`], a new link replaces the last, and an unknown,
//! altered or expired link is "not found" like any other.

use serde::Serialize;

use super::model::{LetterLink, OrderData};
use super::orders::phone_actor;
use super::validate::mask;
use super::{token_hash, Ra, RaError};
use crate::mobile::Purpose;
use crate::store::OrderRecord;

/// How long a letter link opens the letter: a day, for a legal representative who is not at
/// hand when the agent applies.
pub const LINK_SECONDS: i64 = 24 * 3600;

/// The company in a letter.
#[derive(Debug, Clone, Serialize)]
pub struct LetterCompany {
    /// Name.
    pub name: String,
    /// Unified social credit code.
    pub credit_code: String,
}

/// The agent in a letter (ID number masked).
#[derive(Debug, Clone, Serialize)]
pub struct LetterAgent {
    /// Name.
    pub name: String,
    /// ID number, masked by document ([`super::model::Person::masked_id`]; agents give the
    /// resident ID).
    pub id_number: String,
}

/// What the letter page shows the legal representative.
#[derive(Debug, Clone, Serialize)]
pub struct LetterView {
    /// The order.
    pub order: String,
    /// Its channel.
    pub channel: String,
    /// The business authorised, in the handbook's words.
    pub business: String,
    /// Who authorises.
    pub company: LetterCompany,
    /// The legal representative's name.
    pub legal_rep: String,
    /// Who is authorised.
    pub agent: LetterAgent,
    /// The product applied for, once chosen.
    pub product: Option<String>,
    /// Unix seconds: the authorisation ends then at the latest (or when the order is done).
    pub period_until: i64,
    /// The masked phone the link and the code go to.
    pub phone: String,
    /// Unix seconds: when the legal representative signed, if they have.
    pub signed_at: Option<i64>,
    /// Unix seconds: the link opens nothing after this.
    pub expires_at: i64,
}

/// What a signing code is texted for: the order and the link it was asked through, so a code
/// asked on one link signs nothing once that link is replaced or withdrawn.
fn code_object(order: &OrderRecord, link: &LetterLink) -> String {
    format!("{}/{}", order.id, &link.hash[..16.min(link.hash.len())])
}

impl Ra {
    /// Texts the legal representative the link to the letter (what the agent's "authorization"
    /// code request does): a new link replaces the last.
    pub(super) async fn send_letter_link(&self, mut order: OrderRecord) -> Result<(), RaError> {
        let mut data = OrderData::of(&order)?;
        if data.authorized_online_at.is_some() {
            return Err(RaError::State("the legal representative has signed the letter already".into()));
        }
        let phone = self.authorisation_phone(&order, &data).await?;
        let front = self.config.front_url.clone().ok_or_else(|| {
            RaError::NotOffered("online signing is not set up here (ra.front_url); upload the stamped letter".into())
        })?;
        let secret = super::new_token();
        let expires_at = self.now() + LINK_SECONDS;
        let company = data.company.as_ref().map_or("", |c| c.name.as_str());
        let agent = data.agent.as_ref().map_or("", |a| a.person.name.as_str());
        let flow = super::flow::Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let text = format!(
            "【cloudca】{company}的经办人{agent}申请办理{}，需要您作为法定代表人签署授权委托书。请本人打开 \
             {front}/letter/{}.{secret} 查看并签署 / Sign the authorisation letter for {agent} at this link.",
            super::authorisation::business(flow),
            order.id,
        );
        // Texted first, kept after: a send refused (the phone's interval, the budget) leaves
        // the link already delivered working (review of the letter link, L1). If the save
        // loses a race, the new link opens nothing and the agent asks again.
        self.services.mobile.send_link(&phone, &text).await?;
        data.letter_link = Some(LetterLink { hash: token_hash(&secret), expires_at, phone: mask(&phone) });
        data.store(&mut order);
        let detail = serde_json::json!({ "expires_at": expires_at });
        let audit = self.event("order.letter_link_sent", &phone_actor(&phone), &order, detail);
        self.save(&mut order, &[&audit]).await?;
        Ok(())
    }

    /// The order a letter link opens; anything else (unknown, altered, expired, replaced) is
    /// [`RaError::NotFound`].
    async fn by_link(&self, link: &str) -> Result<(OrderRecord, OrderData, LetterLink), RaError> {
        let (id, secret) = link.split_once('.').ok_or(RaError::NotFound)?;
        if id.is_empty() || id.len() > 64 || secret.is_empty() || secret.len() > 128 {
            return Err(RaError::NotFound);
        }
        let order = self.store.order(id).await?.ok_or(RaError::NotFound)?;
        let data = OrderData::of(&order)?;
        let stored = data.letter_link.clone().ok_or(RaError::NotFound)?;
        let matches = crate::mobile::constant_time_eq(token_hash(secret).as_bytes(), stored.hash.as_bytes());
        if !matches || stored.expires_at < self.now() {
            return Err(RaError::NotFound);
        }
        Ok((order, data, stored))
    }

    fn letter_view(&self, order: &OrderRecord, data: &OrderData, link: &LetterLink) -> Result<LetterView, RaError> {
        let flow = super::flow::Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let company = data.company.as_ref().ok_or(RaError::NotFound)?;
        let agent = data.agent.as_ref().ok_or(RaError::NotFound)?;
        Ok(LetterView {
            order: order.id.clone(),
            channel: order.channel.clone(),
            business: super::authorisation::business(flow).into(),
            company: LetterCompany { name: company.name.clone(), credit_code: company.credit_code.clone() },
            legal_rep: company.legal_rep.name.clone(),
            agent: LetterAgent { name: agent.person.name.clone(), id_number: agent.person.masked_id() },
            product: data.product.as_ref().map(|p| p.name.clone()),
            period_until: order.created_at + self.config.open_order_days * 86400,
            phone: link.phone.clone(),
            signed_at: data.authorized_online_at,
            expires_at: link.expires_at,
        })
    }

    /// The letter a link opens, as its page shows it (with the order, for the caller's
    /// channel check).
    pub async fn letter_by_link(&self, link: &str) -> Result<(OrderRecord, LetterView), RaError> {
        let (order, data, stored) = self.by_link(link).await?;
        let view = self.letter_view(&order, &data, &stored)?;
        Ok((order, view))
    }

    /// The letter's PDF: as kept once signed, else as it will be signed.
    pub async fn letter_pdf_by_link(&self, link: &str) -> Result<(OrderRecord, Vec<u8>), RaError> {
        let (order, data, _) = self.by_link(link).await?;
        if data.authorized_online_at.is_some() {
            let kept = self.store.materials(&order.id).await?;
            if let Some(m) = kept.iter().find(|m| m.kind == "authorization-letter") {
                if let Some((_, bytes)) = self.store.material_bytes(&order.id, &m.sha256).await? {
                    return Ok((order, bytes));
                }
            }
        }
        let pdf = self.letter_pdf(&order, order.created_at, None)?;
        Ok((order, pdf))
    }

    /// Texts the legal representative the code to sign with (to the phone the link went to).
    pub async fn letter_code(&self, link: &str) -> Result<OrderRecord, RaError> {
        let (order, data, stored) = self.by_link(link).await?;
        if order.state != "open" {
            return Err(RaError::State(format!("the order is {}", order.state)));
        }
        if data.authorized_online_at.is_some() {
            return Err(RaError::State("the letter is signed already".into()));
        }
        let phone = self.authorisation_phone(&order, &data).await?;
        let detail = serde_json::json!({ "phone": crate::audit::masked_phone(&phone) });
        let audit = self.event("order.letter_code_sent", &phone_actor(&phone), &order, detail);
        self.services.mobile.send_code(&phone, Purpose::LegalRepAuthorisation, &code_object(&order, &stored)).await?;
        self.store.audit(&audit).await?;
        Ok(order)
    }

    /// The legal representative signs with the code texted to their phone.
    pub async fn sign_letter(&self, link: &str, code: &str) -> Result<(OrderRecord, LetterView), RaError> {
        let (order, data, stored) = self.by_link(link).await?;
        if data.authorized_online_at.is_some() {
            return Err(RaError::State("the letter is signed already".into()));
        }
        let object = code_object(&order, &stored);
        let order = self.authorize_online(order, &object, code).await?;
        let view = self.letter_view(&order, &OrderData::of(&order)?, &stored)?;
        Ok((order, view))
    }
}
