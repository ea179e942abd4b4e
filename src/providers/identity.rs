//! Identity checks: carrier real-name (phone three elements), bank card four elements,
//! micro-deposits into a bank account, and face liveness. The RA checks applicants with them, and
//! custody checks a holder again before a PIN is set (`crate::custody::proof`): one provider,
//! chosen by `providers.identity`; with none configured every check fails closed
//! ([`NoIdentityChecks`]).
//!
//! The sandbox follows [`super::sandbox_behaviour`] on the phone, card, account and ID numbers,
//! writes micro-deposits to `DATA_DIR/bank-statements.jsonl` (what the applicant would read on
//! their bank statement) and texts face-check links through the [`SmsProvider`].
//!
//! Whatever the provider, a face-check link texted to a phone is bounded like an SMS code
//! ([`BoundedFaceLinks`]): the country list, the phone's limits and the global SMS budget, so
//! redoing a face check again and again cannot bomb a phone or run up SMS charges.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use super::sandbox_state::SandboxTable;
use super::{sandbox_answer, sandbox_behaviour, sandbox_behaviour_of, sandbox_io, Behaviour, ProviderError};
use super::{ProviderFuture, SmsProvider};
use crate::ca::identifiers::IdType;
use crate::clock::{Clock, SystemClock};
use crate::store::Store;

/// Sandbox state kinds.
const DEPOSITS: &str = "micro-deposit";
const FACES: &str = "face";

/// The provider name in errors and metrics.
const PROVIDER: &str = "identity";

/// How long a remittance code can be read back.
pub const DEPOSIT_VALIDITY: time::Duration = time::Duration::hours(48);

/// Wrong remittance codes after which the deposit is spent.
pub const MAX_WRONG_CODES: u32 = 3;

/// The sandbox's reason when a face does not match.
const FACE_MISMATCH: &str = "the face did not match the ID photo";

/// The answer of a check that ran: passed, or failed with the provider's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The elements belong together.
    Passed,
    /// They do not; the reason is one a person can read, e.g. "the name and ID number do not
    /// match the phone's real-name registration".
    Failed(String),
}

/// A micro-deposit that was paid, so the applicant can be asked for its remittance code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicroDeposit {
    /// The provider's reference, to confirm the code against.
    pub reference: String,
    /// The amount paid, in fen (1–99).
    pub amount_fen: i64,
}

/// How the applicant reaches the face check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaceVia {
    /// The holder's app opens the link itself (the provider's liveness page or SDK).
    App,
    /// A link is texted to this phone.
    Sms {
        /// The phone (E.164) the link goes to.
        phone: String,
    },
    /// The link is shown as a QR code at the counter.
    OnSite,
}

/// A started face check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceSession {
    /// The session id, to poll [`IdentityChecks::face_status`].
    pub id: String,
    /// The page the applicant opens: shown as a QR code (on site) or texted (SMS).
    pub url: String,
}

/// Where a face check stands; it completes asynchronously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaceStatus {
    /// The applicant has not finished yet.
    Pending,
    /// The live face matched the ID photo.
    Passed,
    /// It did not; the reason is the provider's.
    Failed(String),
}

/// The RA's identity-check provider, so the RA flows do not depend on one vendor.
pub trait IdentityChecks: Send + Sync {
    /// Carrier real-name check: name, ID number and mobile belong together.
    fn phone_three<'a>(&'a self, name: &'a str, id_number: &'a str, phone: &'a str)
        -> ProviderFuture<'a, CheckOutcome>;
    /// Bank card four elements: name, identity document (type and number: banks hold the
    /// document the card was opened with, and real APIs take its type, 证件类型, passports and
    /// travel permits included), card number, reserved phone. Carriers and the face check
    /// take no type: they know people by the resident ID only.
    fn bank_card_four<'a>(
        &'a self,
        name: &'a str,
        id_type: IdType,
        id_number: &'a str,
        card: &'a str,
        phone: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome>;
    /// Pays a random small amount with a 6-digit remittance code into the account (company bank
    /// account or personal account).
    fn start_micro_deposit<'a>(
        &'a self,
        account_name: &'a str,
        account_number: &'a str,
        bank: &'a str,
    ) -> ProviderFuture<'a, MicroDeposit>;
    /// The applicant reads the remittance code back.
    fn confirm_micro_deposit<'a>(&'a self, reference: &'a str, code: &'a str) -> ProviderFuture<'a, CheckOutcome>;
    /// Starts a face liveness check; it completes asynchronously.
    fn start_face<'a>(&'a self, name: &'a str, id_number: &'a str, via: FaceVia) -> ProviderFuture<'a, FaceSession>;
    /// Where a started face check stands.
    fn face_status<'a>(&'a self, session: &'a str) -> ProviderFuture<'a, FaceStatus>;
    /// The enterprise registry check (企业三要素 plus the legal representative's identity
    /// document): the credit code is registered to this company name, and this person (name,
    /// document type and number) is its legal representative. What ties the legal
    /// representative to the company (review H3). The registry records a foreign
    /// representative by passport or permit, so the type goes with the number.
    fn enterprise_elements<'a>(
        &'a self,
        credit_code: &'a str,
        company_name: &'a str,
        legal_rep_name: &'a str,
        legal_rep_id_type: IdType,
        legal_rep_id: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome>;
}

/// The provider when none is configured: every check fails closed as unavailable, so nothing
/// that needs an identity check (an RA step, a PIN set after enrolment, unlock or reset) can
/// pass without one.
pub struct NoIdentityChecks;

/// Why [`NoIdentityChecks`] answers nothing.
const NOT_CONFIGURED: &str = "identity (no provider configured: providers.identity)";

impl NoIdentityChecks {
    fn refuse<'a, T: Send + 'a>() -> ProviderFuture<'a, T> {
        Box::pin(async { Err(ProviderError::Unavailable(NOT_CONFIGURED.into())) })
    }
}

impl IdentityChecks for NoIdentityChecks {
    fn phone_three<'a>(&'a self, _: &'a str, _: &'a str, _: &'a str) -> ProviderFuture<'a, CheckOutcome> {
        Self::refuse()
    }
    fn bank_card_four<'a>(
        &'a self,
        _: &'a str,
        _: IdType,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        Self::refuse()
    }
    fn start_micro_deposit<'a>(&'a self, _: &'a str, _: &'a str, _: &'a str) -> ProviderFuture<'a, MicroDeposit> {
        Self::refuse()
    }
    fn confirm_micro_deposit<'a>(&'a self, _: &'a str, _: &'a str) -> ProviderFuture<'a, CheckOutcome> {
        Self::refuse()
    }
    fn start_face<'a>(&'a self, _: &'a str, _: &'a str, _: FaceVia) -> ProviderFuture<'a, FaceSession> {
        Self::refuse()
    }
    fn face_status<'a>(&'a self, _: &'a str) -> ProviderFuture<'a, FaceStatus> {
        Self::refuse()
    }
    fn enterprise_elements<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: IdType,
        _: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        Self::refuse()
    }
}

/// Any identity provider with its texted face-check links bounded by [`crate::mobile::Mobile`]:
/// before a link goes to a phone, the phone must be in `custody.sms_country_codes`, within its
/// per-phone SMS limits (`custody.sms_min_interval_seconds`, `custody.sms_per_hour`), and the
/// hour's global budget must have room; the link then counts against the phone like a code.
/// The real providers text the link themselves, so the bound sits here, before the call.
pub struct BoundedFaceLinks {
    inner: Arc<dyn IdentityChecks>,
    mobile: crate::mobile::Mobile,
}

impl BoundedFaceLinks {
    /// Wraps `inner`; `mobile` keeps the per-phone counts and the gate.
    pub fn new(inner: Arc<dyn IdentityChecks>, mobile: crate::mobile::Mobile) -> BoundedFaceLinks {
        BoundedFaceLinks { inner, mobile }
    }
}

/// What a refused face-check link tells the applicant (the reason, never the phone).
fn face_link_refusal(e: crate::mobile::LoginError) -> ProviderError {
    use crate::mobile::LoginError;
    match e {
        LoginError::Sms(cause) => cause,
        LoginError::RateLimited(r) => ProviderError::Refused(format!(
            "too many texts to this phone; the face-check link can be texted again in {} s",
            r.retry_after()
        )),
        LoginError::Invalid(reason) => {
            ProviderError::Refused(format!("the face-check link cannot be texted: {reason}"))
        }
        LoginError::BadCode | LoginError::Hsm(_) | LoginError::Store(_) => {
            tracing::warn!(error = %e, "face-check link not admitted");
            ProviderError::Unavailable(format!("{} (face-check link)", super::SMS))
        }
    }
}

impl IdentityChecks for BoundedFaceLinks {
    fn phone_three<'a>(
        &'a self,
        name: &'a str,
        id_number: &'a str,
        phone: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        self.inner.phone_three(name, id_number, phone)
    }
    fn bank_card_four<'a>(
        &'a self,
        name: &'a str,
        id_type: IdType,
        id_number: &'a str,
        card: &'a str,
        phone: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        self.inner.bank_card_four(name, id_type, id_number, card, phone)
    }
    fn start_micro_deposit<'a>(
        &'a self,
        account_name: &'a str,
        account_number: &'a str,
        bank: &'a str,
    ) -> ProviderFuture<'a, MicroDeposit> {
        self.inner.start_micro_deposit(account_name, account_number, bank)
    }
    fn confirm_micro_deposit<'a>(&'a self, reference: &'a str, code: &'a str) -> ProviderFuture<'a, CheckOutcome> {
        self.inner.confirm_micro_deposit(reference, code)
    }
    fn start_face<'a>(&'a self, name: &'a str, id_number: &'a str, via: FaceVia) -> ProviderFuture<'a, FaceSession> {
        Box::pin(async move {
            if let FaceVia::Sms { phone } = &via {
                self.mobile.admit_face_link(phone).await.map_err(face_link_refusal)?;
            }
            self.inner.start_face(name, id_number, via).await
        })
    }
    fn face_status<'a>(&'a self, session: &'a str) -> ProviderFuture<'a, FaceStatus> {
        self.inner.face_status(session)
    }
    fn enterprise_elements<'a>(
        &'a self,
        credit_code: &'a str,
        company_name: &'a str,
        legal_rep_name: &'a str,
        legal_rep_id_type: IdType,
        legal_rep_id: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        self.inner.enterprise_elements(credit_code, company_name, legal_rep_name, legal_rep_id_type, legal_rep_id)
    }
}

/// A paid micro-deposit waiting for its code.
#[derive(serde::Serialize, serde::Deserialize)]
struct Deposit {
    code: String,
    /// Unix seconds.
    paid_at: i64,
    wrong: u32,
}

/// A started face check.
#[derive(serde::Serialize, serde::Deserialize)]
struct Face {
    /// Unix milliseconds.
    started_ms: i64,
    mismatch: bool,
    completed: Option<bool>,
}

/// The sandbox identity checks: deterministic by the entered data (see the module docs).
pub struct SandboxIdentityChecks {
    data_dir: PathBuf,
    sms: Arc<dyn SmsProvider>,
    face_after: Duration,
    base_url: String,
    clock: Arc<dyn Clock>,
    deposits: SandboxTable<Deposit>,
    faces: SandboxTable<Face>,
}

impl SandboxIdentityChecks {
    /// A sandbox writing bank statements under `data_dir`, texting face links through `sms`,
    /// passing face checks `face_after` after they start, with links under `base_url`.
    pub fn new(data_dir: PathBuf, sms: Arc<dyn SmsProvider>, face_after: Duration, base_url: String) -> Self {
        SandboxIdentityChecks {
            data_dir,
            sms,
            face_after,
            base_url,
            clock: Arc::new(SystemClock),
            deposits: SandboxTable::memory(DEPOSITS),
            faces: SandboxTable::memory(FACES),
        }
    }

    /// The same sandbox keeping its deposits and face sessions in the database, so several
    /// daemons and a restart see them (a daemon always uses this).
    pub fn with_store(mut self, store: Store) -> Self {
        self.deposits = SandboxTable::database(DEPOSITS, store.clone());
        self.faces = SandboxTable::database(FACES, store);
        self
    }

    /// The same sandbox on another clock, so tests can let remittance codes expire.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The file micro-deposits are written to (the applicant's "bank statement").
    pub fn bank_statements(&self) -> PathBuf {
        self.data_dir.join("bank-statements.jsonl")
    }

    /// Finishes a face session at once (the sandbox face page, tests); unknown ids are ignored.
    pub async fn complete_face(&self, id: &str, passed: bool) -> Result<(), ProviderError> {
        self.faces.update(id, |face| Ok(((), Some(Face { completed: Some(passed), ..face })))).await?;
        Ok(())
    }

    /// Wall-clock milliseconds: a face check takes real time on whichever daemon asks (the
    /// `Clock` trait gives whole seconds).
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    /// Remembers a paid deposit and returns its reference.
    async fn remember_deposit(&self, code: String) -> Result<String, ProviderError> {
        let reference = format!("md{}", super::random_hex(8));
        let deposit = Deposit { code, paid_at: self.clock.now().unix_timestamp(), wrong: 0 };
        self.deposits.insert(&reference, &deposit).await?;
        Ok(reference)
    }

    /// Checks a code against a deposit, spending it when the check is final.
    async fn check_code(&self, reference: &str, code: &str) -> Result<CheckOutcome, ProviderError> {
        let now = self.clock.now();
        let judged = self
            .deposits
            .update(reference, |mut deposit| {
                let (outcome, spent) = judge_code(&mut deposit, code.trim(), now);
                Ok((outcome, if spent { None } else { Some(deposit) }))
            })
            .await?;
        judged.ok_or_else(|| ProviderError::Refused("unknown or spent micro-deposit reference".into()))
    }

    /// Registers a face session and returns it.
    async fn remember_face(&self, mismatch: bool) -> Result<FaceSession, ProviderError> {
        let id = super::random_hex(16);
        let url = format!("{}/sandbox/face/{id}", self.base_url.trim_end_matches('/'));
        let face = Face { started_ms: self.now_ms(), mismatch, completed: None };
        self.faces.insert(&id, &face).await?;
        Ok(FaceSession { id, url })
    }

    /// Where a face session stands now.
    async fn face_now(&self, id: &str) -> Result<FaceStatus, ProviderError> {
        let face = self.faces.get(id).await?.ok_or_else(|| ProviderError::Refused("unknown face session".into()))?;
        let elapsed = u64::try_from(self.now_ms() - face.started_ms).unwrap_or(0);
        let passed = match face.completed {
            Some(passed) => passed,
            None if u128::from(elapsed) < self.face_after.as_millis() => return Ok(FaceStatus::Pending),
            None => !face.mismatch,
        };
        Ok(if passed { FaceStatus::Passed } else { FaceStatus::Failed(FACE_MISMATCH.into()) })
    }

    /// Texts the face-check link, as the real provider would.
    /// (Bounded by the deadline of the identity call it is part of.)
    async fn text_link(&self, phone: &str, url: &str) -> Result<(), ProviderError> {
        let text = format!("Open this link to complete your face check: {url}");
        self.sms.send(phone, &text).await.map_err(|e| match e {
            ProviderError::Refused(reason) => {
                ProviderError::Refused(format!("the face-check link could not be texted: {reason}"))
            }
            away => away,
        })
    }
}

/// The outcome of one code attempt against a deposit (counting a wrong one), and whether the
/// deposit is spent by it (passed, expired, or out of tries).
fn judge_code(deposit: &mut Deposit, code: &str, now: OffsetDateTime) -> (CheckOutcome, bool) {
    if now.unix_timestamp() - deposit.paid_at > DEPOSIT_VALIDITY.whole_seconds() {
        return (CheckOutcome::Failed("the remittance code has expired; start a new deposit".into()), true);
    }
    if code == deposit.code {
        return (CheckOutcome::Passed, true);
    }
    deposit.wrong += 1;
    match MAX_WRONG_CODES.saturating_sub(deposit.wrong) {
        0 => (CheckOutcome::Failed("too many wrong codes; start a new deposit".into()), true),
        left => (CheckOutcome::Failed(format!("the remittance code does not match; {left} tries left")), false),
    }
}

/// A random deposit: 1–99 fen and a 6-digit remittance code.
fn random_deposit() -> (i64, String) {
    let mut rng = rand::thread_rng();
    (rng.gen_range(1..=99), format!("{:06}", rng.gen_range(0..1_000_000)))
}

/// Maps a check's behaviour to its answer, with the provider's mismatch reason.
fn check_answer(behaviour: Behaviour, mismatch_reason: &str) -> CheckOutcome {
    match behaviour {
        Behaviour::Mismatch => CheckOutcome::Failed(mismatch_reason.to_string()),
        _ => CheckOutcome::Passed,
    }
}

impl IdentityChecks for SandboxIdentityChecks {
    /// The sandbox rule on the credit code's digits (a registry knows every company; the
    /// sandbox cannot, so the code chooses the answer), after the document's type.
    fn enterprise_elements<'a>(
        &'a self,
        credit_code: &'a str,
        _company_name: &'a str,
        _legal_rep_name: &'a str,
        legal_rep_id_type: IdType,
        legal_rep_id: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        Box::pin(async move {
            let behaviour = sandbox_answer(PROVIDER, sandbox_behaviour(credit_code)).await?;
            if !of_its_type(legal_rep_id_type, legal_rep_id) {
                // The registry knows a representative by document type and number: a passport
                // number sent as a resident ID (a caller that dropped the type) matches no one.
                return Ok(CheckOutcome::Failed(
                    "the legal representative's ID type and number do not match the registry".into(),
                ));
            }
            Ok(check_answer(
                behaviour,
                "the enterprise registry does not list this company name and legal representative under the credit code",
            ))
        })
    }

    fn phone_three<'a>(
        &'a self,
        _name: &'a str,
        id_number: &'a str,
        phone: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        Box::pin(async move {
            let behaviour = sandbox_answer(PROVIDER, sandbox_behaviour_of(&[id_number, phone])).await?;
            Ok(check_answer(behaviour, "the name and ID number do not match the phone's real-name registration"))
        })
    }

    /// The sandbox rule on the number, card and phone, whatever the document's type.
    fn bank_card_four<'a>(
        &'a self,
        _name: &'a str,
        id_type: IdType,
        id_number: &'a str,
        card: &'a str,
        phone: &'a str,
    ) -> ProviderFuture<'a, CheckOutcome> {
        Box::pin(async move {
            let behaviour = sandbox_answer(PROVIDER, sandbox_behaviour_of(&[id_number, card, phone])).await?;
            if !of_its_type(id_type, id_number) {
                // A bank knows a document by its type and number: a number sent under another
                // document's type (a caller that dropped a passport's type) matches no record.
                return Ok(CheckOutcome::Failed("the ID type and number do not match the bank's records".into()));
            }
            Ok(check_answer(
                behaviour,
                "the name, ID number, card number and reserved phone do not match the bank's records",
            ))
        })
    }

    fn start_micro_deposit<'a>(
        &'a self,
        account_name: &'a str,
        account_number: &'a str,
        bank: &'a str,
    ) -> ProviderFuture<'a, MicroDeposit> {
        Box::pin(async move {
            if sandbox_answer(PROVIDER, sandbox_behaviour(account_number)).await? == Behaviour::Mismatch {
                return Err(ProviderError::Refused("the account name does not match the account number".into()));
            }
            let (amount_fen, code) = random_deposit();
            let reference = self.remember_deposit(code.clone()).await?;
            let line = serde_json::json!({
                "account_name": account_name,
                "account_number": account_number,
                "bank": bank,
                "amount_fen": amount_fen,
                "remittance_code": code,
                "reference": reference,
                "at": self.clock.now().unix_timestamp(),
            });
            let path = self.bank_statements();
            sandbox_io(PROVIDER, move || super::append_json_line(&path, &line)).await?;
            Ok(MicroDeposit { reference, amount_fen })
        })
    }

    fn confirm_micro_deposit<'a>(&'a self, reference: &'a str, code: &'a str) -> ProviderFuture<'a, CheckOutcome> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, Behaviour::Normal).await?;
            self.check_code(reference, code).await
        })
    }

    fn start_face<'a>(&'a self, _name: &'a str, id_number: &'a str, via: FaceVia) -> ProviderFuture<'a, FaceSession> {
        Box::pin(async move {
            let behaviour = sandbox_answer(PROVIDER, sandbox_behaviour(id_number)).await?;
            let session = self.remember_face(behaviour == Behaviour::Mismatch).await?;
            if let FaceVia::Sms { phone } = &via {
                self.text_link(phone, &session.url).await?;
            }
            Ok(session)
        })
    }

    fn face_status<'a>(&'a self, session: &'a str) -> ProviderFuture<'a, FaceStatus> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, Behaviour::Normal).await?;
            self.face_now(session).await
        })
    }
}

/// Whether a number has the form of its document type, as the sandbox bank sees it: a resident
/// ID's 18 characters (17 digits and a digit or X), another document's number by its rules.
fn of_its_type(id_type: IdType, number: &str) -> bool {
    if id_type.is_resident_id() {
        let b = number.as_bytes();
        return b.len() == 18 && b[..17].iter().all(u8::is_ascii_digit) && (b[17].is_ascii_digit() || b[17] == b'X');
    }
    crate::ca::identifiers::validate_document(id_type, number, (9999, 12, 31)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::providers::{test_dir, SandboxSms};

    const ID: &str = "110101199001011234";
    const PHONE: &str = "+8613800138000";

    fn sandbox(name: &str, face_after: Duration) -> (SandboxIdentityChecks, PathBuf) {
        let dir = test_dir(name);
        let sms = Arc::new(SandboxSms { outbox: dir.join("sms-outbox.jsonl") });
        (SandboxIdentityChecks::new(dir.clone(), sms, face_after, "https://ra.example/".into()), dir)
    }

    /// The remittance code the "bank statement" shows for a reference.
    fn statement_code(checks: &SandboxIdentityChecks, reference: &str) -> String {
        let lines = crate::providers::email::read_outbox(&checks.bank_statements());
        let line = lines.iter().find(|l| l["reference"] == reference).cloned().unwrap_or_default();
        line["remittance_code"].as_str().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn phone_three_and_bank_card_four_follow_the_sandbox_rule() {
        let (checks, dir) = sandbox("id-checks", Duration::ZERO);
        assert_eq!(checks.phone_three("张三", ID, PHONE).await, Ok(CheckOutcome::Passed));
        let failed = checks.phone_three("张三", ID, "+8613800130000").await;
        assert!(
            matches!(failed, Ok(CheckOutcome::Failed(ref r)) if r.contains("real-name registration")),
            "{failed:?}"
        );
        assert_eq!(
            checks.phone_three("张三", "110101199001019999", PHONE).await,
            Err(ProviderError::Unavailable("identity".into()))
        );
        assert_eq!(
            checks.bank_card_four("张三", IdType::ResidentId, ID, "6222021234567890123", PHONE).await,
            Ok(CheckOutcome::Passed)
        );
        let failed = checks.bank_card_four("张三", IdType::ResidentId, ID, "6222021234567890000", PHONE).await;
        assert!(matches!(failed, Ok(CheckOutcome::Failed(_))), "{failed:?}");
        // Another document's four elements follow the same rule, whatever the type.
        let passport = checks.bank_card_four("John Smith", IdType::Passport, "E12345678", "6222021234567890123", PHONE);
        assert_eq!(passport.await, Ok(CheckOutcome::Passed));
        let permit = checks.bank_card_four("陈一", IdType::TaiwanPermit, "12340000", "6222021234567890123", PHONE);
        assert!(matches!(permit.await, Ok(CheckOutcome::Failed(_))));
        // The type counts: a caller that drops it (a passport number sent as a resident ID's,
        // or the other way round) is told no, so tests of the RA and custody notice.
        let untyped =
            checks.bank_card_four("John Smith", IdType::ResidentId, "E12345678", "6222021234567890123", PHONE);
        assert!(matches!(untyped.await, Ok(CheckOutcome::Failed(ref r)) if r.contains("ID type")));
        let retyped =
            checks.bank_card_four("张三", IdType::Passport, "110105194912310021", "6222021234567890123", PHONE);
        assert!(matches!(retyped.await, Ok(CheckOutcome::Passed)), "an 18-digit passport number is a passport's");
        let slow = checks.bank_card_four("张三", IdType::ResidentId, ID, "6222021234567898888", PHONE);
        let got = crate::providers::call("test-identity-slow", "bank_card_four", Duration::from_millis(30), slow).await;
        assert_eq!(got, Err(ProviderError::Timeout("test-identity-slow".into())));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_enterprise_registry_knows_the_legal_representative_by_document_type_and_number() {
        let (checks, dir) = sandbox("id-registry", Duration::ZERO);
        let credit = "91350100M000100Y43";
        let check =
            |id_type, number| checks.enterprise_elements(credit, "示例科技有限公司", "John Smith", id_type, number);
        assert_eq!(check(IdType::ResidentId, ID).await, Ok(CheckOutcome::Passed));
        assert_eq!(check(IdType::Passport, "E12345678").await, Ok(CheckOutcome::Passed));
        // A passport number sent as a resident ID's (a caller that dropped the type) matches no one.
        let untyped = check(IdType::ResidentId, "E12345678").await;
        assert!(matches!(untyped, Ok(CheckOutcome::Failed(ref r)) if r.contains("ID type")), "{untyped:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_right_remittance_code_passes_once() {
        let (checks, dir) = sandbox("id-deposit", Duration::ZERO);
        let deposit = checks.start_micro_deposit("示例有限公司", "6222021234567", "ICBC").await;
        let deposit = deposit.unwrap_or_else(|e| panic!("{e}"));
        assert!((1..=99).contains(&deposit.amount_fen));
        let lines = crate::providers::email::read_outbox(&checks.bank_statements());
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["account_number"], "6222021234567");
        assert_eq!(lines[0]["amount_fen"], deposit.amount_fen);
        let code = statement_code(&checks, &deposit.reference);
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(checks.confirm_micro_deposit(&deposit.reference, &code).await, Ok(CheckOutcome::Passed));
        assert!(matches!(
            checks.confirm_micro_deposit(&deposit.reference, &code).await,
            Err(ProviderError::Refused(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn three_wrong_codes_spend_the_deposit() {
        let (checks, dir) = sandbox("id-wrong", Duration::ZERO);
        let deposit =
            checks.start_micro_deposit("张三", "6222021234567", "ICBC").await.unwrap_or_else(|e| panic!("{e}"));
        let code = statement_code(&checks, &deposit.reference);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for left in [2, 1] {
            let got = checks.confirm_micro_deposit(&deposit.reference, wrong).await;
            assert_eq!(got, Ok(CheckOutcome::Failed(format!("the remittance code does not match; {left} tries left"))));
        }
        let got = checks.confirm_micro_deposit(&deposit.reference, wrong).await;
        assert_eq!(got, Ok(CheckOutcome::Failed("too many wrong codes; start a new deposit".into())));
        let after = checks.confirm_micro_deposit(&deposit.reference, &code).await;
        assert!(matches!(after, Err(ProviderError::Refused(_))), "{after:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_wrong_code_then_the_right_one_passes() {
        let (checks, dir) = sandbox("id-retry", Duration::ZERO);
        let deposit =
            checks.start_micro_deposit("张三", "6222021234567", "ICBC").await.unwrap_or_else(|e| panic!("{e}"));
        let code = statement_code(&checks, &deposit.reference);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(matches!(checks.confirm_micro_deposit(&deposit.reference, wrong).await, Ok(CheckOutcome::Failed(_))));
        assert_eq!(checks.confirm_micro_deposit(&deposit.reference, &code).await, Ok(CheckOutcome::Passed));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn unknown_references_are_refused_and_codes_expire() {
        let clock = Arc::new(FakeClock::new(OffsetDateTime::now_utc()));
        let (checks, dir) = sandbox("id-expire", Duration::ZERO);
        let checks = checks.with_clock(clock.clone());
        let unknown = checks.confirm_micro_deposit("md-nope", "123456").await;
        assert!(matches!(unknown, Err(ProviderError::Refused(_))), "{unknown:?}");
        let deposit =
            checks.start_micro_deposit("张三", "6222021234567", "ICBC").await.unwrap_or_else(|e| panic!("{e}"));
        let code = statement_code(&checks, &deposit.reference);
        clock.advance(DEPOSIT_VALIDITY + time::Duration::seconds(1));
        let got = checks.confirm_micro_deposit(&deposit.reference, &code).await;
        assert_eq!(got, Ok(CheckOutcome::Failed("the remittance code has expired; start a new deposit".into())));
        assert!(matches!(
            checks.confirm_micro_deposit(&deposit.reference, &code).await,
            Err(ProviderError::Refused(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn deposit_accounts_follow_the_sandbox_rule() {
        let (checks, dir) = sandbox("id-account", Duration::ZERO);
        let mismatch = checks.start_micro_deposit("张三", "6222020000", "ICBC").await;
        assert!(matches!(mismatch, Err(ProviderError::Refused(_))), "{mismatch:?}");
        let down = checks.start_micro_deposit("张三", "6222029999", "ICBC").await;
        assert_eq!(down, Err(ProviderError::Unavailable("identity".into())));
        assert!(crate::providers::email::read_outbox(&checks.bank_statements()).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn face_is_pending_then_passes_and_the_link_is_texted() {
        // Half a second of pending: far longer than the start (an SMS and a file append on a
        // loaded machine) takes, so "pending" is never read after it has lapsed.
        let (checks, dir) = sandbox("id-face", Duration::from_millis(500));
        let via = FaceVia::Sms { phone: PHONE.into() };
        let session = checks.start_face("张三", ID, via).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(session.url, format!("https://ra.example/sandbox/face/{}", session.id));
        assert_eq!(checks.face_status(&session.id).await, Ok(FaceStatus::Pending));
        tokio::time::sleep(Duration::from_millis(520)).await;
        assert_eq!(checks.face_status(&session.id).await, Ok(FaceStatus::Passed));
        let texts = crate::providers::email::read_outbox(&dir.join("sms-outbox.jsonl"));
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0]["to"], PHONE);
        assert!(texts[0]["text"].as_str().unwrap_or_default().contains(&session.url));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_mismatched_face_fails_and_unknown_sessions_are_refused() {
        let (checks, dir) = sandbox("id-face-fail", Duration::ZERO);
        let session = checks.start_face("张三", "110101199001010000", FaceVia::OnSite).await;
        let session = session.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checks.face_status(&session.id).await, Ok(FaceStatus::Failed(FACE_MISMATCH.into())));
        assert_eq!(checks.face_status("nope").await, Err(ProviderError::Refused("unknown face session".into())));
        assert!(!dir.join("sms-outbox.jsonl").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn complete_face_finishes_a_session_at_once() {
        let (checks, dir) = sandbox("id-face-complete", Duration::from_secs(3600));
        let first = checks.start_face("张三", ID, FaceVia::OnSite).await.unwrap_or_else(|e| panic!("{e}"));
        let second = checks.start_face("张三", ID, FaceVia::OnSite).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checks.face_status(&first.id).await, Ok(FaceStatus::Pending));
        checks.complete_face(&first.id, true).await.unwrap();
        checks.complete_face(&second.id, false).await.unwrap();
        checks.complete_face("unknown", true).await.unwrap();
        assert_eq!(checks.face_status(&first.id).await, Ok(FaceStatus::Passed));
        assert_eq!(checks.face_status(&second.id).await, Ok(FaceStatus::Failed(FACE_MISMATCH.into())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
