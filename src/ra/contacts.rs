//! Who is on file for a subject or a certificate (review H1, H2). The only source is
//! `ra_contacts`: the agent and legal representative of each *approved* order, written with
//! the approval, and the certificate the order produced. Nothing an open, failed or cancelled
//! order typed ever makes someone a contact, so opening an order for a company gives nobody a
//! say over that company's certificates or orders.

use super::flow::Flow;
use super::model::OrderData;
use super::{Ra, RaError};
use crate::store::{ContactRecord, OrderRecord};

/// The flows whose approval produces a certificate, and so a certificate's contacts.
fn issues(flow: Flow) -> bool {
    matches!(flow, Flow::OrgNew | Flow::PersonalNew | Flow::Renewal | Flow::Change | Flow::Reissue)
}

/// The contacts an order establishes when it is approved; None for flows that issue nothing
/// or an order without a subject.
pub(super) fn of_approved(order: &OrderRecord, now: i64) -> Result<Option<ContactRecord>, RaError> {
    let Some(flow) = Flow::parse(&order.flow) else { return Ok(None) };
    let Some(subject_key) = order.subject_key.clone() else { return Ok(None) };
    if !issues(flow) {
        return Ok(None);
    }
    let data = OrderData::of(order)?;
    let rep = data.company.as_ref().map(|c| &c.legal_rep);
    Ok(Some(ContactRecord {
        order_id: order.id.clone(),
        subject_key,
        serial: None,
        agent_phone: order.agent_phone.clone(),
        legal_rep_name: rep.map(|r| r.name.clone()),
        // Typed (`passport:E12345678`), as a certificate's identifier: a bare number would
        // read as a resident ID, and one document's number could match another's.
        legal_rep_id: rep.map(|r| r.identifier()),
        legal_rep_phone: rep.filter(|_| data.legal_rep_phone_checked).map(|r| r.phone.clone()),
        approved_at: now,
    }))
}

/// What a subject has on file: its verified agents' phones and its legal representative as
/// the newest approved order recorded them.
#[derive(Debug, Default)]
pub(super) struct OnFile {
    /// Verified agent phones, newest first, without repeats.
    pub agents: Vec<String>,
    /// The legal representative of the newest approved order: (name, identifier as
    /// [`super::model::Person::identifier`] gives it, phone if that order checked it). Rows
    /// approved before the identifier was typed hold the bare number, which is the same for
    /// a resident ID and matches no other document's identifier (so fails closed).
    pub legal_rep: Option<(String, String, Option<String>)>,
    /// Whether the subject has any approved order at all.
    pub approved: bool,
}

impl OnFile {
    /// Whether `phone` is the legal representative's on file.
    pub fn is_legal_rep(&self, phone: &str) -> bool {
        self.legal_rep.as_ref().and_then(|r| r.2.as_deref()) == Some(phone)
    }

    /// Whether `phone` is a verified agent's.
    pub fn is_agent(&self, phone: &str) -> bool {
        self.agents.iter().any(|a| a == phone)
    }
}

impl Ra {
    /// The subject's contacts on file (see the module docs for where they come from).
    pub(super) async fn on_file(&self, subject: &str) -> Result<OnFile, RaError> {
        let mut on_file = OnFile::default();
        for c in self.store.contacts_of_subject(subject).await? {
            on_file.approved = true;
            if let Some(phone) = c.agent_phone {
                if !on_file.agents.contains(&phone) {
                    on_file.agents.push(phone);
                }
            }
            if on_file.legal_rep.is_none() {
                if let (Some(name), Some(id)) = (c.legal_rep_name, c.legal_rep_id) {
                    on_file.legal_rep = Some((name, id, c.legal_rep_phone));
                }
            }
        }
        Ok(on_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attacker review of C6: the representative's number was kept without its type, so a
    /// passport number on file read as a resident ID number.
    #[test]
    fn an_approved_order_keeps_its_legal_representatives_identifier_with_its_type() {
        let rep = serde_json::json!({ "name": "John Smith", "id_type": "passport", "id_number": "E12345678",
                                      "phone": "+8613900139000" });
        let data = serde_json::json!({ "company": { "name": "示例科技有限公司", "credit_code": "91350100M000100Y43",
                                                    "legal_rep": rep } });
        let order = OrderRecord {
            subject_key: Some("91350100M000100Y43".into()),
            ..OrderRecord::fixture("RA20261207-APPROVED", "org-new", "approved", &data.to_string())
        };
        let contact = of_approved(&order, 2).unwrap().expect("a new organisation certificate has contacts");
        assert_eq!(contact.legal_rep_id.as_deref(), Some("passport:E12345678"));
        let mut unreadable = order;
        unreadable.data = "{".into();
        assert!(matches!(of_approved(&unreadable, 2), Err(RaError::UnreadableOrder(_))));
    }
}
