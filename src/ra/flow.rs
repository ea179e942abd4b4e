//! The flows an order can follow and the steps each one takes. Which steps an order still
//! needs depends on its channel and on what was entered (a bank-account check adds a step to
//! read the remittance code back; a free product has no payment), so the list is computed
//! from the order, never stored: an interrupted order resumes at the first step not done.

use serde::{Deserialize, Serialize};

/// An application flow (mission flows 1, 2, 6-9, 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// New organisation certificate.
    OrgNew,
    /// New personal certificate.
    PersonalNew,
    /// Renewal of a certificate near its expiry.
    Renewal,
    /// Information change (new subject data, same identifier).
    Change,
    /// Revocation.
    Revocation,
    /// Re-issue: a new key and certificate, the old one revoked.
    Reissue,
    /// PIN unlock of a locked cloud key.
    Unlock,
    /// Add or change a seal image of an organisation.
    Seal,
}

/// A feature a channel can enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// New organisation and personal certificates.
    New,
    /// Renewal.
    Renewal,
    /// Information change.
    Change,
    /// Revocation.
    Revocation,
    /// Re-issue.
    Reissue,
    /// PIN unlock.
    Unlock,
    /// Seal requests.
    Seals,
    /// Order query.
    OrderQuery,
}

/// One step of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The existing certificate the order is about, confirmed by an SMS code to its holder.
    Certificate,
    /// How the organisation or person is verified.
    Verification,
    /// Company data (and the legal representative's check).
    Company,
    /// Personal data (and the person's check).
    Person,
    /// Completing an asynchronous check of the company or person (remittance code, face).
    SubjectCheck,
    /// The agent and their check.
    Agent,
    /// Completing an asynchronous check of the agent (face).
    AgentCheck,
    /// Product, invoice and delivery.
    Product,
    /// Uploaded materials complete.
    Materials,
    /// SMS code and acceptance of the terms.
    Signature,
    /// Paid (completed by the payment webhook).
    Payment,
}

impl Flow {
    /// Every flow.
    pub const ALL: [Flow; 8] = [
        Flow::OrgNew,
        Flow::PersonalNew,
        Flow::Renewal,
        Flow::Change,
        Flow::Revocation,
        Flow::Reissue,
        Flow::Unlock,
        Flow::Seal,
    ];

    /// The name used in the API, policies and the database.
    pub fn name(self) -> &'static str {
        match self {
            Flow::OrgNew => "org-new",
            Flow::PersonalNew => "personal-new",
            Flow::Renewal => "renewal",
            Flow::Change => "change",
            Flow::Revocation => "revocation",
            Flow::Reissue => "reissue",
            Flow::Unlock => "unlock",
            Flow::Seal => "seal",
        }
    }

    /// Parses [`Flow::name`].
    pub fn parse(text: &str) -> Option<Flow> {
        Flow::ALL.into_iter().find(|f| f.name() == text)
    }

    /// The channel feature that enables it.
    pub fn feature(self) -> Feature {
        match self {
            Flow::OrgNew | Flow::PersonalNew => Feature::New,
            Flow::Renewal => Feature::Renewal,
            Flow::Change => Feature::Change,
            Flow::Revocation => Feature::Revocation,
            Flow::Reissue => Feature::Reissue,
            Flow::Unlock => Feature::Unlock,
            Flow::Seal => Feature::Seals,
        }
    }

    /// Whether it starts from an existing certificate.
    pub fn about_certificate(self) -> bool {
        !matches!(self, Flow::OrgNew | Flow::PersonalNew)
    }
}

impl Step {
    /// Every step, in the order a flow lists them.
    pub const ALL: [Step; 11] = [
        Step::Certificate,
        Step::Verification,
        Step::Company,
        Step::Person,
        Step::SubjectCheck,
        Step::Agent,
        Step::AgentCheck,
        Step::Product,
        Step::Materials,
        Step::Signature,
        Step::Payment,
    ];

    /// The name used in the API (`/steps/{name}`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Certificate => "certificate",
            Step::Verification => "verification",
            Step::Company => "company",
            Step::Person => "person",
            Step::SubjectCheck => "subject-check",
            Step::Agent => "agent",
            Step::AgentCheck => "agent-check",
            Step::Product => "product",
            Step::Materials => "materials",
            Step::Signature => "signature",
            Step::Payment => "payment",
        }
    }

    /// Parses [`Step::name`].
    pub fn parse(text: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// What the step list depends on besides the flow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// The certificate concerned is an organisation's (flows about a certificate).
    pub organisation: bool,
    /// The subject's check completes in a step of its own (micro-deposit, face, or the code
    /// texted to a company's legal representative).
    pub subject_check_async: bool,
    /// The agent's check completes asynchronously (face).
    pub agent_check_async: bool,
    /// The channel prices this flow above zero.
    pub paid: bool,
    /// The channel offers more than one product in this flow: the product step stays, even
    /// once a free one is chosen, so the applicant can still switch to another before signing
    /// (the step is redone like any other; `paid` follows the product chosen last).
    pub choice: bool,
    /// The channel asks for materials in this flow.
    pub materials: bool,
}

/// The steps of a flow, in order.
pub fn steps(flow: Flow, shape: Shape) -> Vec<Step> {
    use Step::*;
    let subject = |org: bool| if org { Company } else { Person };
    let mut out = match flow {
        Flow::OrgNew => vec![Verification, Company, SubjectCheck, Agent, AgentCheck],
        Flow::PersonalNew => vec![Verification, Person, SubjectCheck],
        // The certificate's data, pre-filled, edited and checked again (handbook §3.1
        // 证书更新信息, §3.2).
        Flow::Change | Flow::Renewal => {
            vec![Certificate, Verification, subject(shape.organisation), SubjectCheck, Agent, AgentCheck]
        }
        // An organisation's revocation verifies the company (企业认证, §3.3) before the agent.
        Flow::Revocation if shape.organisation => {
            vec![Certificate, Verification, Company, SubjectCheck, Agent, AgentCheck]
        }
        Flow::Revocation | Flow::Reissue | Flow::Unlock | Flow::Seal => vec![Certificate, Agent, AgentCheck],
    };
    out.retain(|s| match s {
        SubjectCheck => shape.subject_check_async,
        AgentCheck => shape.agent_check_async,
        _ => true,
    });
    if flow != Flow::Unlock {
        if shape.paid || shape.choice || matches!(flow, Flow::OrgNew | Flow::PersonalNew | Flow::Renewal | Flow::Seal) {
            out.push(Product);
        }
        if shape.materials {
            out.push(Materials);
        }
        out.push(Signature);
        if shape.paid {
            out.push(Payment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Flow::ALL {
            assert_eq!(Flow::parse(f.name()), Some(f));
        }
        for s in steps(
            Flow::OrgNew,
            Shape {
                subject_check_async: true,
                agent_check_async: true,
                paid: true,
                choice: true,
                materials: true,
                organisation: true,
            },
        ) {
            assert_eq!(Step::parse(s.name()), Some(s));
        }
        assert_eq!(Flow::parse("org_new"), None);
    }

    #[test]
    fn a_new_organisation_certificate_takes_the_handbooks_steps() {
        let shape = Shape { paid: true, materials: true, ..Shape::default() };
        let names: Vec<_> = steps(Flow::OrgNew, shape).into_iter().map(Step::name).collect();
        assert_eq!(names, ["verification", "company", "agent", "product", "materials", "signature", "payment"]);
        let shape = Shape { subject_check_async: true, ..shape };
        assert!(steps(Flow::OrgNew, shape).contains(&Step::SubjectCheck));
    }

    #[test]
    fn free_flows_skip_payment_and_unlock_is_short() {
        let names: Vec<_> = steps(Flow::Revocation, Shape { materials: true, ..Shape::default() })
            .into_iter()
            .map(Step::name)
            .collect();
        assert_eq!(names, ["certificate", "agent", "materials", "signature"]);
        let names: Vec<_> = steps(Flow::Unlock, Shape::default()).into_iter().map(Step::name).collect();
        assert_eq!(names, ["certificate", "agent"]);
    }

    #[test]
    fn a_choice_of_products_keeps_the_product_step_after_a_free_one_is_chosen() {
        // A change, re-issue or revocation whose channel offers a free product beside a paid
        // one: with the free one chosen there is no payment, but the product step stays so
        // the applicant can switch to the paid one (and the payment step comes back).
        for flow in [Flow::Change, Flow::Reissue, Flow::Revocation] {
            let free = steps(flow, Shape { choice: true, ..Shape::default() });
            assert!(free.contains(&Step::Product) && !free.contains(&Step::Payment), "{flow:?}: {free:?}");
            let paid = steps(flow, Shape { choice: true, paid: true, ..Shape::default() });
            assert_eq!(&paid[paid.len() - 3..], [Step::Product, Step::Signature, Step::Payment], "{flow:?}");
            // A single free product is no choice: nothing to ask.
            assert!(!steps(flow, Shape::default()).contains(&Step::Product), "{flow:?}");
        }
    }

    #[test]
    fn organisation_revocation_and_every_renewal_verify_the_subject_again() {
        let org = Shape { organisation: true, ..Shape::default() };
        let names: Vec<_> = steps(Flow::Revocation, org).into_iter().map(Step::name).collect();
        assert_eq!(names, ["certificate", "verification", "company", "agent", "signature"]);
        let names: Vec<_> = steps(Flow::Renewal, Shape::default()).into_iter().map(Step::name).collect();
        assert_eq!(names, ["certificate", "verification", "person", "agent", "product", "signature"]);
    }
}
