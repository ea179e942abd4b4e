//! Load for the fault tests: clients of the real listeners, bounded load tasks, the record of
//! every request, and the figures printed per fault.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// What a load task needs to reach the daemon, shared by every task.
pub struct Target {
    /// `https://localhost:PORT` of the admin listener.
    pub admin: String,
    /// `http://127.0.0.1:PORT` of the public listener.
    pub public: String,
    /// `http://127.0.0.1:PORT` of the metrics listener.
    pub metrics: String,
    /// The operator's certificate and key (PEM), and the operator CA (PEM).
    pub operator: (Vec<u8>, Vec<u8>),
    /// One CSR (PEM) per issuer task.
    pub csrs: Vec<String>,
    /// OCSP requests (DER, SHA-1 CertID, no nonce: the pre-signed path) for certificates that
    /// stay good.
    pub ocsp_requests: Vec<Vec<u8>>,
    /// Serials of certificates the readers look up.
    pub read_serials: Vec<String>,
}

/// A reqwest client with a back-office role's certificate (the dev-init client credentials).
pub fn role_client(ca: &TestCa, role: &str) -> reqwest::Client {
    let tls = ca.config_path.parent().unwrap().join("tls");
    let mut identity = std::fs::read(tls.join(format!("clients/{role}.pem"))).unwrap();
    identity.extend(std::fs::read(tls.join(format!("clients/{role}.key"))).unwrap());
    client_with(&(identity, std::fs::read(tls.join("operator-ca.pem")).unwrap()))
}

pub fn client_with(credentials: &(Vec<u8>, Vec<u8>)) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .identity(reqwest::Identity::from_pem(&credentials.0).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&credentials.1).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A plain HTTP client with the same 20 s bound.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

/// An answer: status, content type, body; or the transport error.
pub type Answer = Result<(u16, String, Vec<u8>), String>;

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = response.bytes().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, content_type, body.to_vec()))
}

impl Target {
    /// Pre-issues `readers` certificates (their OCSP responses are pre-signed before the load
    /// starts) and makes one CSR per issuer.
    pub async fn new(ca: &TestCa, issuers: usize, readers: usize) -> Target {
        let tls = ca.config_path.parent().unwrap().join("tls");
        let mut identity = std::fs::read(tls.join("clients/operator.pem")).unwrap();
        identity.extend(std::fs::read(tls.join("clients/operator.key")).unwrap());
        let mut target = Target {
            admin: format!("https://localhost:{}", ca.config.listeners.admin.port()),
            public: format!("http://{}", ca.config.listeners.public),
            metrics: format!("http://{}", ca.config.listeners.metrics),
            operator: (identity, std::fs::read(tls.join("operator-ca.pem")).unwrap()),
            csrs: (0..issuers).map(|i| csr(ca, &format!("load{i}"))).collect(),
            ocsp_requests: Vec::new(),
            read_serials: Vec::new(),
        };
        let client = client_with(&target.operator);
        for i in 0..readers {
            let (serial, der) = issue_once(&client, &target.admin, &csr(ca, &format!("pre{i}"))).await;
            let path = ca.path(&format!("pre{i}.pem"));
            write_pem(&path, "CERTIFICATE", &der);
            target.ocsp_requests.push(ocsp_request(ca, &path));
            target.read_serials.push(serial);
        }
        // The first answer loads each pre-signed response into the daemon's memory.
        for request in &target.ocsp_requests {
            let answer = send(ocsp_post(&plain_client(), &target.public, request)).await;
            assert_eq!(ocsp_outcome(&answer), Outcome::Ok, "OCSP before the load");
        }
        target
    }
}

/// A CSR (PEM) for the organisation profile with a new P-256 key.
pub fn csr(ca: &TestCa, name: &str) -> String {
    let key = make_key(ca.dir.path(), name, "ec:P-256");
    String::from_utf8(make_csr(ca.dir.path(), name, &key, ORG_SUBJECT)).unwrap()
}

/// Issues one certificate that must succeed; returns (serial, DER).
pub async fn issue_once(client: &reqwest::Client, admin: &str, csr: &str) -> (String, Vec<u8>) {
    let answer =
        send(client.post(format!("{admin}/v1/certificates")).json(&json!({ "csr": csr, "profile": "org" }))).await;
    let (status, _, body) = answer.expect("issuance answered");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    issued(&body)
}

/// (serial, DER) from an issuance answer.
pub fn issued(body: &[u8]) -> (String, Vec<u8>) {
    let v: Value = serde_json::from_slice(body).unwrap();
    let der = pem::parse(v["pem"].as_str().unwrap()).unwrap().into_contents();
    (v["serial"].as_str().unwrap().to_string(), der)
}

pub fn ocsp_post(client: &reqwest::Client, public: &str, der: &[u8]) -> reqwest::RequestBuilder {
    client.post(format!("{public}/ocsp/org")).header("content-type", "application/ocsp-request").body(der.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Load and its record
// ---------------------------------------------------------------------------------------------

/// What kind of request an event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Issue,
    Revoke,
    Ocsp,
    Read,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// A clean failure, labelled by status (`503`, `500`, `tryLater`).
    Clean(String),
    /// An answer that is not a clean failure.
    Unclean(String),
    /// No answer at all (connection refused, reset, closed, timed out).
    Transport(String),
}

/// One request.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

/// Everything the load saw.
#[derive(Default)]
pub struct Record {
    pub events: Vec<Event>,
    /// Certificates clients received: (serial, DER).
    pub issued: Vec<(String, Vec<u8>)>,
    /// Revocations the daemon acknowledged (200 revoked / already revoked).
    pub revoked: Vec<String>,
    /// `/ready` answers: (when asked, what it said).
    pub readiness: Vec<(Instant, String)>,
}

/// A failed admin answer: clean if it is a 5xx problem document.
pub fn failure(answer: Answer) -> Outcome {
    match answer {
        Err(e) => Outcome::Transport(e),
        Ok((status, content_type, body)) => {
            let problem = content_type.starts_with("application/problem+json")
                && serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["status"] == status);
            if status >= 500 && problem {
                Outcome::Clean(status.to_string())
            } else {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
                Outcome::Unclean(format!("{status} {content_type}: {text}"))
            }
        }
    }
}

/// The responseStatus of an OCSP answer: successful → Ok, tryLater → clean, anything else
/// unclean.
pub fn ocsp_outcome(answer: &Answer) -> Outcome {
    let (status, _, body) = match answer {
        Err(e) => return Outcome::Transport(e.clone()),
        Ok(a) => a,
    };
    let response_status = (|| {
        let (&tag, rest) = body.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let rest = if len & 0x80 != 0 { rest.get(usize::from(len & 0x7f)..)? } else { rest };
        (tag == 0x30 && rest.get(..2)? == [0x0a, 0x01]).then_some(*rest.get(2)?)
    })();
    match (status, response_status) {
        (200, Some(0)) => Outcome::Ok,
        (200, Some(3)) => Outcome::Clean("tryLater".into()),
        _ => Outcome::Unclean(format!("OCSP {status}, responseStatus {response_status:?}")),
    }
}

/// Bounds of the load.
#[derive(Clone)]
pub struct Plan {
    /// Issuance tasks (one CSR each).
    pub issuers: usize,
    /// Every n-th request of an issuer revokes its oldest certificate instead (0: never).
    pub revoke_every: usize,
    /// Revocations per issuer at most (each is checked with openssl afterwards).
    pub max_revocations: usize,
    /// OCSP tasks.
    pub ocsp: usize,
    /// Tasks reading certificates over the admin API.
    pub readers: usize,
    /// Requests per task at most.
    pub max_requests: usize,
    /// No task sends after this.
    pub deadline: Duration,
    /// Pause between two requests of one task.
    pub pause: Duration,
}

/// Running load: stop it to get the record.
pub struct Load {
    pub record: Arc<Mutex<Record>>,
    pub stop: Arc<AtomicBool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(target: Target, plan: Plan) -> Load {
        let target = Arc::new(target);
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let until = Instant::now() + plan.deadline;
        let mut tasks = Vec::new();
        let ctx = |i| Task {
            target: target.clone(),
            record: record.clone(),
            stop: stop.clone(),
            until,
            plan: plan.clone(),
            id: i,
        };
        for i in 0..plan.issuers {
            tasks.push(tokio::spawn(ctx(i).issuer()));
        }
        for i in 0..plan.ocsp {
            tasks.push(tokio::spawn(ctx(i).ocsp()));
        }
        for i in 0..plan.readers {
            tasks.push(tokio::spawn(ctx(i).reader()));
        }
        tasks.push(tokio::spawn(ctx(0).readiness()));
        Load { record, stop, tasks }
    }

    /// Waits (bounded) until the record satisfies `condition`.
    pub async fn wait_until(&self, what: &str, limit: Duration, condition: impl Fn(&Record) -> bool) {
        let deadline = Instant::now() + limit;
        while !condition(&self.record.lock().unwrap()) {
            assert!(Instant::now() < deadline, "the load never reached: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Certificates received so far.
    pub fn issued(&self) -> usize {
        self.record.lock().unwrap().issued.len()
    }

    pub async fn stop(self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task");
        }
        Arc::try_unwrap(self.record).ok().expect("tasks done").into_inner().unwrap()
    }
}

/// One load task.
pub struct Task {
    pub target: Arc<Target>,
    pub record: Arc<Mutex<Record>>,
    pub stop: Arc<AtomicBool>,
    pub until: Instant,
    pub plan: Plan,
    pub id: usize,
}

impl Task {
    pub fn done(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() > self.until
    }

    pub fn note(&self, kind: Kind, start: Instant, outcome: Outcome) -> bool {
        let transport = matches!(outcome, Outcome::Transport(_));
        self.record.lock().unwrap().events.push(Event { kind, start, end: Instant::now(), outcome });
        transport
    }

    /// After a request: a short pause, longer when nobody answered (the daemon is down).
    pub async fn pause(&self, transport: bool) {
        tokio::time::sleep(if transport { Duration::from_millis(50) } else { self.plan.pause }).await;
    }

    pub async fn issuer(self) {
        let client = client_with(&self.target.operator);
        let (admin, csr) = (&self.target.admin, &self.target.csrs[self.id]);
        let mut mine: Vec<String> = Vec::new();
        let mut revocations = 0;
        for n in 0..self.plan.max_requests {
            if self.done() {
                break;
            }
            let start = Instant::now();
            let every = self.plan.revoke_every;
            let transport =
                if every > 0 && n % every == every - 1 && revocations < self.plan.max_revocations && !mine.is_empty() {
                    let serial = mine.remove(0);
                    revocations += 1;
                    let body = json!({ "reason": "keyCompromise" });
                    let answer =
                        send(client.post(format!("{admin}/v1/certificates/{serial}/revoke")).json(&body)).await;
                    let outcome = match &answer {
                        Ok((200, _, body)) => {
                            let v: Value = serde_json::from_slice(body).unwrap_or_default();
                            if v["outcome"] == "revoked" || v["outcome"] == "already revoked" {
                                self.record.lock().unwrap().revoked.push(serial);
                                Outcome::Ok
                            } else {
                                Outcome::Unclean(format!("revocation answered {v}"))
                            }
                        }
                        _ => failure(answer),
                    };
                    self.note(Kind::Revoke, start, outcome)
                } else {
                    let body = json!({ "csr": csr, "profile": "org" });
                    let answer = send(client.post(format!("{admin}/v1/certificates")).json(&body)).await;
                    let outcome = match &answer {
                        Ok((201, _, body)) => {
                            let (serial, der) = issued(body);
                            mine.push(serial.clone());
                            self.record.lock().unwrap().issued.push((serial, der));
                            Outcome::Ok
                        }
                        _ => failure(answer),
                    };
                    self.note(Kind::Issue, start, outcome)
                };
            self.pause(transport).await;
        }
    }

    pub async fn ocsp(self) {
        let client = plain_client();
        for n in 0..self.plan.max_requests {
            if self.done() {
                break;
            }
            let requests = &self.target.ocsp_requests;
            let start = Instant::now();
            let answer = send(ocsp_post(&client, &self.target.public, &requests[(n + self.id) % requests.len()])).await;
            let transport = self.note(Kind::Ocsp, start, ocsp_outcome(&answer));
            self.pause(transport).await;
        }
    }

    pub async fn reader(self) {
        let client = client_with(&self.target.operator);
        for n in 0..self.plan.max_requests {
            if self.done() {
                break;
            }
            let serials = &self.target.read_serials;
            let serial = &serials[(n + self.id) % serials.len()];
            let start = Instant::now();
            let answer = send(client.get(format!("{}/v1/certificates/{serial}", self.target.admin))).await;
            let outcome = match &answer {
                Ok((200, _, _)) => Outcome::Ok,
                _ => failure(answer),
            };
            let transport = self.note(Kind::Read, start, outcome);
            self.pause(transport).await;
        }
    }

    /// Asks `/ready` every 100 ms (3 s bound: a readiness probe that does not answer is
    /// recorded as `no answer`).
    pub async fn readiness(self) {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build().unwrap();
        while !self.done() {
            let start = Instant::now();
            let said = match send(client.get(format!("{}/ready", self.target.metrics))).await {
                Ok((_, _, body)) => serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "unreadable".into()),
                Err(_) => "no answer".into(),
            };
            self.record.lock().unwrap().readiness.push((start, said));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/// A fault: from when it started to when it ended (the cause removed).
pub struct Fault {
    pub name: String,
    pub start: Instant,
    pub end: Instant,
}

/// The figures of one fault.
#[derive(Debug, Default)]
pub struct Figures {
    pub sent: usize,
    pub succeeded: usize,
    /// Clean failures by label, per kind.
    pub clean: BTreeMap<String, usize>,
    pub unclean: Vec<String>,
    /// Transport errors of requests in flight at, or sent during, a `kill -9`.
    pub interrupted: usize,
    /// Of those, the requests in flight at the kill.
    pub in_flight_at_kill: usize,
    /// OCSP answers (successful) to requests made and answered during the fault.
    pub ocsp_during: usize,
    /// From the end of the fault to the end of the first issuance that succeeded after it.
    pub recovery: Option<Duration>,
    /// What `/ready` said during the fault.
    pub readiness: BTreeSet<String>,
    /// Requests and successes by kind.
    pub by_kind: BTreeMap<Kind, (usize, usize)>,
    /// The longest time a request of the window waited for its answer.
    pub longest: Duration,
}

/// The figures of `fault`: requests in flight at its start or sent until service recovered
/// (the first issuance succeeding after its end). `killed` is the window in which connection errors are
/// the kill's (kill instant, restarted daemon ready).
pub fn figures(record: &Record, fault: &Fault, killed: Option<(Instant, Instant)>) -> Figures {
    let mut f = Figures::default();
    let recovered = record
        .events
        .iter()
        .filter(|e| e.kind == Kind::Issue && e.outcome == Outcome::Ok && e.start >= fault.end)
        .map(|e| e.end)
        .min();
    f.recovery = recovered.map(|r| r - fault.end);
    let until = recovered.unwrap_or_else(Instant::now);
    for e in record.events.iter().filter(|e| e.end >= fault.start && e.start <= until) {
        f.sent += 1;
        f.longest = f.longest.max(e.end - e.start);
        let k = f.by_kind.entry(e.kind).or_default();
        k.0 += 1;
        match &e.outcome {
            Outcome::Ok => {
                f.succeeded += 1;
                k.1 += 1;
                if e.kind == Kind::Ocsp && e.end <= fault.end {
                    f.ocsp_during += 1;
                }
            }
            Outcome::Clean(label) => *f.clean.entry(format!("{:?} {label}", e.kind)).or_default() += 1,
            Outcome::Transport(_) if killed.is_some_and(|(kill, ready)| e.end >= kill && e.start <= ready) => {
                f.interrupted += 1;
                if killed.is_some_and(|(kill, _)| e.start < kill) {
                    f.in_flight_at_kill += 1;
                }
            }
            Outcome::Transport(why) | Outcome::Unclean(why) => f.unclean.push(format!("{:?}: {why}", e.kind)),
        }
    }
    f.readiness = record
        .readiness
        .iter()
        .filter(|(at, _)| *at >= fault.start && *at <= fault.end)
        .map(|(_, s)| s.clone())
        .collect();
    f
}

impl Figures {
    pub fn print(&self, test: &str, fault: &str) {
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, (sent, ok))| format!("{k:?} {ok}/{sent}")).collect();
        eprintln!(
            "[faults] {test} / {fault}: {} requests sent, {} succeeded, failed cleanly {:?}, failed uncleanly {}{}, \
             OCSP answers served during the fault {}, recovery {}, readiness seen {:?}, longest wait for an answer \
             {} ms; succeeded/sent by kind: {}",
            self.sent,
            self.succeeded,
            self.clean,
            self.unclean.len(),
            if self.interrupted > 0 {
                format!(
                    ", interrupted by the kill {} ({} in flight at the kill)",
                    self.interrupted, self.in_flight_at_kill
                )
            } else {
                String::new()
            },
            self.ocsp_during,
            self.recovery.map_or_else(|| "none".to_string(), |d| format!("{} ms", d.as_millis())),
            self.readiness,
            self.longest.as_millis(),
            kinds.join(", "),
        );
        for u in self.unclean.iter().take(10) {
            eprintln!("[faults]   unclean: {u}");
        }
    }
}

/// Totals of the whole run.
pub fn print_totals(test: &str, record: &Record) {
    let ok = record.events.iter().filter(|e| e.outcome == Outcome::Ok).count();
    eprintln!(
        "[faults] {test} / whole run: {} requests, {} succeeded, {} certificates received, {} revocations acknowledged",
        record.events.len(),
        ok,
        record.issued.len(),
        record.revoked.len()
    );
}
