//! The legal representative's authorisation letter (法定代表人授权委托书; handbook §2, coverage
//! B29-B31): generated from the order with its scope and period, printed and stamped (uploaded as
//! `authorization-letter`), or signed online by the legal representative with the code texted to
//! their own phone, in which case the signed letter is kept with the order as evidence.

use super::flow::Flow;
use super::model::{Agent, Company, OrderData};
use super::{Ra, RaError};
use crate::pdf::{render, Document, Section};
use crate::store::OrderRecord;

/// How the letter was signed online: the legal representative's masked phone and when.
pub(super) struct OnlineSignature {
    /// Masked phone the code went to.
    pub phone: String,
    /// Unix seconds.
    pub at: i64,
}

/// The business a flow is, in the handbook's words.
pub(super) fn business(flow: Flow) -> &'static str {
    match flow {
        Flow::OrgNew | Flow::PersonalNew => "新办 / new certificate",
        Flow::Renewal => "更新 / renewal",
        Flow::Change => "信息变更 / change",
        Flow::Revocation => "吊销 / revocation",
        Flow::Reissue => "补办 / re-issue",
        Flow::Unlock => "解锁 / unlock",
        Flow::Seal => "印章 / seal",
    }
}

/// The letter's parties: the company, its legal representative and the agent, ID numbers and
/// phone masked by document (another document's number shows its type's last two characters
/// only, as everywhere: [`super::model::Person::masked_id`]).
fn parties(company: &Company, agent: &Agent) -> Vec<Section> {
    let row = |k: &str, v: &str| (k.to_string(), v.to_string());
    let rep = &company.legal_rep;
    vec![
        Section {
            heading: "委托单位 / Company".into(),
            rows: vec![row("单位名称 Name", &company.name), row("统一社会信用代码 Credit code", &company.credit_code)],
        },
        Section {
            heading: "法定代表人 / Legal representative".into(),
            rows: vec![row("姓名 Name", &rep.name), row("证件号码 ID number", &rep.masked_id())],
        },
        Section {
            heading: "受托人（经办人）/ Agent".into(),
            rows: vec![
                row("姓名 Name", &agent.person.name),
                row("证件号码 ID number", &agent.person.masked_id()),
                row("手机 Phone", &super::validate::mask(&agent.person.phone)),
            ],
        },
    ]
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_default()
}

impl Ra {
    /// The letter for an order whose company and agent are entered: who authorises whom, for
    /// what (scope: the business, product and order) and until when (period: from `from` for
    /// the order's lifetime, `ra.open_order_days`, at most).
    pub(super) fn letter_pdf(
        &self,
        order: &OrderRecord,
        from: i64,
        signed: Option<&OnlineSignature>,
    ) -> Result<Vec<u8>, RaError> {
        let data = OrderData::of(order)?;
        let flow = Flow::parse(&order.flow).ok_or(RaError::NotFound)?;
        let channel = self.channel(&order.channel)?;
        let company = data.company.as_ref().ok_or(RaError::State("enter the company first".into()))?;
        let agent = data.agent.as_ref().ok_or(RaError::State("enter the agent first".into()))?;
        let row = |k: &str, v: &str| (k.to_string(), v.to_string());
        let product = data.product.as_ref().map_or("-", |p| p.name.as_str());
        let until = from + self.config.open_order_days * 86400;
        let signature = match signed {
            Some(s) => vec![
                row(
                    "签署方式 Signed",
                    "法定代表人本人手机短信验证码在线签署 / online, with the code texted to the legal representative",
                ),
                row("手机 Phone", &s.phone),
                row(
                    "签署时间 At (UTC)",
                    &time::OffsetDateTime::from_unix_timestamp(s.at).map(|t| t.to_string()).unwrap_or_default(),
                ),
            ],
            None => vec![
                row("单位盖章 Company stamp", "____________________"),
                row("法定代表人签字 Legal representative", "____________________"),
                row("日期 Date", "____________________"),
            ],
        };
        let mut sections = parties(company, agent);
        sections.extend([
            Section {
                heading: "授权范围与期限 / Scope and period".into(),
                rows: vec![
                    row("业务 Business", business(flow)),
                    row("产品 Product", product),
                    row("订单 Order", &order.id),
                    row("渠道 Channel", &channel.title),
                    row(
                        "期限 Period",
                        &format!("{} 至 {}（订单办结即止）/ until the order is done", date(from), date(until)),
                    ),
                ],
            },
            Section { heading: "签署 / Signature".into(), rows: signature },
        ]);
        Ok(render(&Document { title: "法定代表人授权委托书 / Authorisation letter".into(), sections }))
    }

    /// The unsigned letter to print, stamp and upload (B29).
    pub async fn authorisation_letter(&self, order: &OrderRecord) -> Result<Vec<u8>, RaError> {
        self.letter_pdf(order, self.now(), None)
    }

    /// The legal representative signed online: the letter they signed (scope and period) is kept
    /// as the order's `authorization-letter` material, evidence an officer sees with the others,
    /// and the order records the authorisation, in one transaction (review of the letter link,
    /// L2: stored apart, a lost race left a signed letter behind with no authorisation).
    pub(super) async fn save_signed_letter(
        &self,
        order: &mut OrderRecord,
        data: &mut OrderData,
        phone: &str,
    ) -> Result<(), RaError> {
        let now = self.now();
        let signed = OnlineSignature { phone: super::validate::mask(phone), at: now };
        let pdf = self.letter_pdf(order, order.created_at, Some(&signed))?;
        let material = super::materials::check(&pdf, usize::MAX)
            .map_err(|e| RaError::BadRequest(format!("authorisation letter: {e}")))?;
        let kind = "authorization-letter";
        data.authorized_online_at = Some(now);
        data.online_letter = Some(material.sha256.clone());
        data.store(order);
        let actor = super::orders::phone_actor(phone);
        let detail =
            serde_json::json!({ "kind": kind, "sha256": material.sha256, "bytes": pdf.len(), "signed": "online" });
        let kept = self.event("order.material", &actor, order, detail);
        let detail = serde_json::json!({ "letter_sha256": material.sha256 });
        let authorized = self.event("order.authorized_online", &actor, order, detail);
        let new = crate::store::NewMaterial {
            order_id: &order.id,
            kind,
            sha256: &material.sha256,
            content_type: material.content_type,
            bytes: &pdf,
        };
        let bounds = super::materials::bounds(&self.config);
        order.updated_at = now;
        match self.store.save_order_with_material(order, &new, bounds, now, &[&kept, &authorized]).await? {
            Ok(true) => {
                order.version += 1;
                Ok(())
            }
            Ok(false) => Err(RaError::Conflict),
            Err(_) => {
                Err(RaError::State("the order's upload allowance is used up; the letter could not be kept".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ra::model::{IdType, Person};

    fn person(id_type: IdType, id_number: &str) -> Person {
        let (name, phone) = ("张三".to_string(), "+8613800138000".to_string());
        Person { name, id_type, id_number: id_number.into(), phone, email: None, card: None }
    }

    /// Attacker review of C6: a passport holder's number showed its first three and last four
    /// characters (two digits left to guess); it shows its type's last two, as everywhere.
    #[test]
    fn the_letter_masks_a_passport_legal_representatives_number_to_its_last_two_characters() {
        let company = Company {
            name: "示例科技有限公司".into(),
            credit_code: "91350100M000100Y43".into(),
            legal_rep: person(IdType::Passport, "E12345678"),
            bank: None,
        };
        let agent = Agent {
            legal_rep_in_person: false,
            person: person(IdType::ResidentId, "11010519491231002X"),
            method: None,
        };
        let rows: Vec<(String, String)> = parties(&company, &agent).into_iter().flat_map(|s| s.rows).collect();
        let id_rows: Vec<&str> =
            rows.iter().filter(|(k, _)| k.contains("ID number")).map(|(_, v)| v.as_str()).collect();
        assert_eq!(id_rows, ["*******78", "110***********002X"], "{rows:?}");
        assert!(!format!("{rows:?}").contains("12345678"), "{rows:?}");
    }
}
