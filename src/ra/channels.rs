//! Channels (`policies/channels/*.toml`): one deployment serves several partner platforms, and
//! each enables its own features, verification methods, products, prices, review rules and
//! terms. Parsed strictly: an unknown key is a start-up error naming the file and the key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::flow::{Feature, Flow};

/// How a party (organisation, person, agent) can be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// A micro-deposit into the bank account; the applicant reads the remittance code back.
    BankAccount,
    /// Carrier real-name check of name, ID number and phone.
    Phone,
    /// Bank card four elements.
    BankCard,
    /// Face liveness by SMS link.
    FaceSms,
    /// Face liveness by an on-site QR code.
    FaceQr,
}

impl Method {
    /// Whether the check completes later (an extra step reads its result).
    pub fn asynchronous(self) -> bool {
        matches!(self, Method::BankAccount | Method::FaceSms | Method::FaceQr)
    }

    /// Whether, checking a company, the method names the legal representative's phone (the
    /// carrier's three elements, the bank card's reserved phone) and so texts them a code to
    /// type back: the registry and carrier only say the details match, and anyone can read a
    /// legal representative's name and ID off public records (handbook §2.1: 法定代表人本人
    /// 参与，手机短信查收验证码).
    pub fn texts_legal_rep(self) -> bool {
        matches!(self, Method::Phone | Method::BankCard)
    }
}

/// Verification methods per party.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Methods {
    /// For an organisation (bank-account, or the legal representative's phone, bank-card, face).
    pub organisation: Vec<Method>,
    /// For a person.
    pub personal: Vec<Method>,
    /// For an agent.
    pub agent: Vec<Method>,
}

/// A product the channel sells.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stable id, e.g. `org-cloud-1y`.
    pub id: String,
    /// Shown to applicants.
    pub name: String,
    /// Flows it can be chosen in.
    pub flows: Vec<Flow>,
    /// Term in years (0 for services such as a seal change).
    pub years: u32,
    /// Price in fen (0.01 CNY).
    pub price_fen: i64,
    /// `cloud` (key in custody; nothing shipped) or `usb-key` (shipped: delivery address).
    pub medium: String,
    /// A seal image is included.
    #[serde(default)]
    pub seal: bool,
}

/// Whether an officer reviews a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Review {
    /// Waits in the review queue.
    Review,
    /// Carried out as soon as the last step completes.
    Auto,
}

/// What a flow needs in this channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRule {
    /// Review or automatic approval.
    pub review: Review,
    /// Material kinds required (an authorisation letter is added when the agent is not the
    /// legal representative and did not get the representative's online signature).
    #[serde(default)]
    pub materials: Vec<String>,
}

/// One channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Stable name, used in URLs and orders.
    pub name: String,
    /// Shown to applicants.
    pub title: String,
    /// Enabled features.
    pub features: BTreeSet<Feature>,
    /// Verification methods.
    pub methods: Methods,
    /// Products and prices.
    pub products: Vec<Product>,
    /// Per flow: review and materials. A flow without a rule is reviewed and needs nothing.
    pub flows: BTreeMap<Flow, FlowRule>,
    /// The terms the applicant accepts when signing the application.
    pub terms: String,
    /// The customer-service phone every page of the channel shows (digits, spaces, `+`, `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_phone: Option<String>,
    /// The offline path's instructions printed on the application form (handbook: 线下办理):
    /// where the papers go and how to pay. Without them the form sends the applicant to the
    /// customer-service phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<Offline>,
    /// Whether the applicant chooses an e-invoice (handbook B22: "根据渠道配置"): `optional`
    /// (the default), `required` (always issued), `none` (never: the platform invoices). A
    /// free product never has one, whatever the rule (handbook G5).
    #[serde(default)]
    pub invoice: InvoicePolicy,
}

/// A channel's invoice rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoicePolicy {
    /// The applicant ticks whether they want one.
    #[default]
    Optional,
    /// Every paid order gets one (a free product has no amount to invoice, so a channel may
    /// offer free services under this rule too).
    Required,
    /// No order of the channel gets one.
    None,
}

/// Where an offline applicant mails the signed, stamped form and copies, and how they pay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Offline {
    /// The mailing address: recipient, address, postcode, phone, as one printed text.
    pub mail_to: String,
    /// Payment instructions (payee, bank, account); the form adds the amount and asks for the
    /// order number as the transfer's reference.
    pub payment: String,
}

/// Material kinds an applicant can upload.
pub const MATERIAL_KINDS: [&str; 6] =
    ["business-licence", "id-front", "id-back", "authorization-letter", "seal-image", "other"];

impl Channel {
    /// Whether a flow is enabled: its feature, and for new certificates a verification
    /// method for that kind of subject.
    pub fn enables(&self, flow: Flow) -> bool {
        let methods = match flow {
            Flow::OrgNew => !self.methods.organisation.is_empty(),
            Flow::PersonalNew => !self.methods.personal.is_empty(),
            _ => true,
        };
        methods && self.features.contains(&flow.feature())
    }

    /// The rule of a flow (review, no materials, when unlisted).
    pub fn rule(&self, flow: Flow) -> FlowRule {
        self.flows.get(&flow).cloned().unwrap_or(FlowRule { review: Review::Review, materials: Vec::new() })
    }

    /// Products offered in a flow.
    pub fn products_for(&self, flow: Flow) -> impl Iterator<Item = &Product> {
        self.products.iter().filter(move |p| p.flows.contains(&flow))
    }

    /// The lowest price of the flow's products (0 when it has none: the flow is free).
    pub fn price_from(&self, flow: Flow) -> i64 {
        self.products_for(flow).map(|p| p.price_fen).min().unwrap_or(0)
    }

    /// Whether some product of the flow costs something: until a product is chosen, the
    /// order may have a payment step (the chosen product's price decides afterwards).
    pub fn charges_in(&self, flow: Flow) -> bool {
        self.products_for(flow).any(|p| p.price_fen > 0)
    }

    /// SHA-256 of the terms text, kept with each application signature as evidence of what
    /// was accepted.
    pub fn terms_sha256(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.terms.as_bytes()))
    }

    fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err("name: 1 to 32 characters of a-z, 0-9 and -".into());
        }
        if self.terms.trim().is_empty() {
            return Err("terms: the text applicants accept must not be empty".into());
        }
        if let Some(phone) = &self.service_phone {
            let ok = (3..=32).contains(&phone.len())
                && phone.bytes().any(|b| b.is_ascii_digit())
                && phone.bytes().all(|b| b.is_ascii_digit() || b" +-".contains(&b));
            if !ok {
                return Err("service_phone: 3 to 32 characters of digits, spaces, + and -".into());
            }
        }
        if let Some(offline) = &self.offline {
            for (key, text) in [("mail_to", &offline.mail_to), ("payment", &offline.payment)] {
                if text.trim().is_empty() || text.chars().count() > 300 {
                    return Err(format!("offline.{key}: 1 to 300 characters, printed on the form"));
                }
            }
        }
        let mut ids = BTreeSet::new();
        for p in &self.products {
            if !ids.insert(&p.id) {
                return Err(format!("products: duplicate id {:?}", p.id));
            }
            if p.price_fen < 0 {
                return Err(format!("products.{}.price_fen: must not be negative", p.id));
            }
            if p.medium != "cloud" && p.medium != "usb-key" {
                return Err(format!("products.{}.medium: cloud or usb-key", p.id));
            }
        }
        for (flow, rule) in &self.flows {
            if let Some(kind) = rule.materials.iter().find(|k| !MATERIAL_KINDS.contains(&k.as_str())) {
                return Err(format!("flows.{}.materials: unknown kind {kind:?}", flow.name()));
            }
        }
        for flow in [Flow::OrgNew, Flow::PersonalNew, Flow::Renewal] {
            if self.enables(flow) && self.products_for(flow).next().is_none() {
                return Err(format!("products: {} is enabled but no product is offered in it", flow.name()));
            }
        }
        Ok(())
    }
}

/// Loads every `*.toml` in `DIR/channels`; each error names the file and the key.
pub fn load_all(policies_dir: &Path) -> Result<BTreeMap<String, Channel>, String> {
    let dir = policies_dir.join("channels");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    let mut channels = BTreeMap::new();
    for path in paths.into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let channel: Channel = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        channel.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        if channels.insert(channel.name.clone(), channel).is_some() {
            return Err(format!("{}: duplicate channel name", path.display()));
        }
    }
    if channels.is_empty() {
        return Err(format!("{}: no channel defined", dir.display()));
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> BTreeMap<String, Channel> {
        load_all(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
    }

    #[test]
    fn shipped_channels_parse_and_price_new_certificates_and_renewal_at_400_cny() {
        let channels = shipped();
        let default = &channels["default"];
        assert_eq!(default.price_from(Flow::OrgNew), 40000);
        assert_eq!(default.price_from(Flow::Renewal), 40000);
        assert!(Flow::ALL.iter().all(|f| default.enables(*f)));
        assert!(channels.values().all(|c| !c.terms_sha256().is_empty()));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = std::env::temp_dir().join(format!("cloudca-channels-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("channels")).unwrap();
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/channels/default.toml"))
                .unwrap();
        std::fs::write(dir.join("channels/x.toml"), shipped.replace("title =", "colour = \"red\"\ntitle =")).unwrap();
        let err = load_all(&dir).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("x.toml") && err.contains("unknown field `colour`"), "{err}");
    }
}
