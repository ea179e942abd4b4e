//! `cloudca app ...`: a reference mobile client on the command line. It speaks only the
//! documented `api` listener (`openapi/api.json`), so it is how integrators see the flow and how
//! we test it end to end. PINs are read from standard input (or asked for on a terminal),
//! never taken as arguments, so they do not appear in `ps` or shell history.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

/// `app` subcommands; the session lives in `--state FILE` between calls.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Ask for an SMS code and log in with it.
    Login {
        /// `https://HOST:PORT` of the api listener.
        #[arg(long)]
        api: String,
        /// CA certificate (PEM) that verifies the api listener.
        #[arg(long)]
        ca: PathBuf,
        /// The phone, E.164.
        #[arg(long)]
        phone: String,
        /// Development only: read the code from the sandbox SMS outbox file.
        #[arg(long, value_name = "FILE")]
        outbox: Option<PathBuf>,
    },
    /// Approvals waiting for a PIN, and credentials.
    Credentials,
    /// Prove identity, then set the first PIN for an approval (the key is generated and the
    /// certificate issued).
    Enroll {
        /// The approval id.
        #[arg(long)]
        approval: String,
        #[command(flatten)]
        proof: ProofArgs,
    },
    /// Prove identity, then set a new PIN on a locked credential.
    Unlock {
        /// Credential id.
        #[arg(long)]
        credential: String,
        #[command(flatten)]
        proof: ProofArgs,
    },
    /// Prove identity, then replace the forgotten PIN of an active credential.
    ResetPin {
        /// Credential id.
        #[arg(long)]
        credential: String,
        #[command(flatten)]
        proof: ProofArgs,
    },
    /// Claim a signing session from a scanned QR payload and show what it is about.
    Claim {
        /// The payload text.
        #[arg(long)]
        payload: String,
    },
    /// Change the PIN of an active credential: the current PIN, then the new one, a line each
    /// on standard input.
    ChangePin {
        /// Credential id.
        #[arg(long)]
        credential: String,
    },
    /// The organisations this phone belongs to, its role in each, their seals (and, for the
    /// administrator, the members).
    Orgs,
    /// Approve a claimed session with a credential and its PIN.
    Approve {
        /// Session id.
        #[arg(long)]
        session: String,
        /// Credential id.
        #[arg(long)]
        credential: String,
        /// The seal to stamp with, when the platform asked for one (an id from `app orgs`).
        #[arg(long)]
        seal: Option<String>,
    },
    /// Refuse a claimed session.
    Refuse {
        /// Session id.
        #[arg(long)]
        session: String,
    },
    /// Let a member of the organisation stamp with a seal (印章授权; the administrator or a seal
    /// administrator). An `admin` code for the organisation is texted to the logged-in phone first and
    /// read from `--outbox` or standard input.
    SealGrant {
        #[command(flatten)]
        seal: SealUserArgs,
    },
    /// Withdraw a member's leave to stamp with a seal (the administrator or a seal
    /// administrator), with an `admin` code as for `seal-grant`.
    SealWithdraw {
        #[command(flatten)]
        seal: SealUserArgs,
    },
}

/// Which seal, which member: the ids `app orgs` lists.
#[derive(Debug, clap::Args)]
pub struct SealUserArgs {
    /// The organisation's credit code.
    #[arg(long, value_name = "CREDIT_CODE")]
    org: String,
    /// The seal id.
    #[arg(long, value_name = "SEAL_ID")]
    seal: String,
    /// The member's phone, E.164.
    #[arg(long, value_name = "E164")]
    member: String,
    /// Development only: read the administrator code from the sandbox SMS outbox file.
    #[arg(long, value_name = "FILE")]
    outbox: Option<PathBuf>,
}

/// How the holder proves who they are before a PIN is set: a face check (the app opens the
/// provider's page; the sandbox's is passed here, as the person in front of the camera would),
/// or a bank card with its reserved phone (the code comes from `--outbox` or standard input).
#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    /// `face` or `bank-card`.
    #[arg(long, default_value = "face")]
    method: String,
    /// Bank card number (bank-card method).
    #[arg(long)]
    card: Option<String>,
    /// The phone the bank has for the card, E.164 (bank-card method).
    #[arg(long)]
    card_phone: Option<String>,
    /// Development only: read the bank card's code from the sandbox SMS outbox file.
    #[arg(long, value_name = "FILE")]
    outbox: Option<PathBuf>,
}

/// What the client remembers between calls.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    api: String,
    ca: PathBuf,
    token: String,
    /// The phone logged in: organisation changes need an `admin` code texted to it. Absent in
    /// a state file written before it was kept (log in again).
    #[serde(default)]
    phone: Option<String>,
}

/// Runs an `app` command with its state file.
pub fn run(state_path: &Path, action: Action) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        if let Action::Login { api, ca, phone, outbox } = action {
            let client = client(&ca, None)?;
            let body = serde_json::json!({ "phone": phone, "purpose": "login" });
            call(&client, reqwest::Method::POST, &format!("{api}/v1/mobile/sms"), None, Some(body)).await?;
            let code = match outbox {
                Some(path) => code_from_outbox(&path, &phone)?,
                None => read_secret("SMS code: ")?,
            };
            let body = serde_json::json!({ "phone": phone, "code": code.trim() });
            let session =
                call(&client, reqwest::Method::POST, &format!("{api}/v1/mobile/login"), None, Some(body)).await?;
            let token = session["token"].as_str().context("no token in the answer")?.to_string();
            let state = State { api, ca, token, phone: Some(phone) };
            crate::devinit::write_file(state_path, serde_json::to_string(&state)?.as_bytes(), 0o600)?;
            println!("logged in; session until {}", session["expires_at"]);
            return Ok(());
        }
        let state: State = serde_json::from_slice(&std::fs::read(state_path).context("log in first: no state file")?)?;
        let client = client(&state.ca, None)?;
        let token = Some(state.token.as_str());
        let url = |path: &str| format!("{}{path}", state.api);
        let answer = match action {
            Action::Login { .. } => unreachable!("handled above"),
            Action::Credentials => {
                call(&client, reqwest::Method::GET, &url("/v1/mobile/credentials"), token, None).await?
            }
            Action::Enroll { approval, proof } => {
                let pin = read_secret("new PIN: ")?;
                let (proof_id, code) = prove(&client, &state, "enrol", &approval, &proof).await?;
                let body = serde_json::json!({ "approval_id": approval, "proof_id": proof_id, "code": code, "pin": pin.trim() });
                call(&client, reqwest::Method::POST, &url("/v1/mobile/credentials"), token, Some(body)).await?
            }
            Action::Unlock { credential, proof } => {
                new_pin(&client, &state, "unlock", &credential, &proof).await?
            }
            Action::ResetPin { credential, proof } => {
                new_pin(&client, &state, "reset", &credential, &proof).await?
            }
            Action::Claim { payload } => {
                let body = serde_json::json!({ "payload": payload });
                call(&client, reqwest::Method::POST, &url("/v1/mobile/sessions/claim"), token, Some(body)).await?
            }
            Action::ChangePin { credential } => {
                let old = read_secret("current PIN: ")?;
                let new = read_secret("new PIN: ")?;
                let body = serde_json::json!({ "old_pin": old.trim(), "new_pin": new.trim() });
                let path = format!("/v1/mobile/credentials/{credential}/pin");
                call(&client, reqwest::Method::POST, &url(&path), token, Some(body)).await?;
                serde_json::json!({ "credential": credential, "pin": "changed" })
            }
            Action::Orgs => call(&client, reqwest::Method::GET, &url("/v1/mobile/orgs"), token, None).await?,
            Action::Approve { session, credential, seal } => {
                let pin = read_secret("PIN: ")?;
                let mut body = serde_json::json!({ "credential_id": credential, "pin": pin.trim() });
                if let Some(seal) = seal {
                    body["seal_id"] = seal.into();
                }
                let path = format!("/v1/mobile/sessions/{session}/approve");
                call(&client, reqwest::Method::POST, &url(&path), token, Some(body)).await?
            }
            Action::Refuse { session } => {
                let path = format!("/v1/mobile/sessions/{session}/refuse");
                call(&client, reqwest::Method::POST, &url(&path), token, None).await?
            }
            Action::SealGrant { seal } => seal_user(&client, &state, &seal, true).await?,
            Action::SealWithdraw { seal } => seal_user(&client, &state, &seal, false).await?,
        };
        println!("{}", serde_json::to_string_pretty(&answer)?);
        Ok(())
    })
}

/// Unlock (`purpose` unlock) or reset a credential's PIN: the new PIN from standard input, an
/// identity proof, then the call.
async fn new_pin(
    client: &reqwest::Client,
    state: &State,
    purpose: &str,
    credential: &str,
    proof: &ProofArgs,
) -> anyhow::Result<serde_json::Value> {
    let pin = read_secret("new PIN: ")?;
    let (proof_id, code) = prove(client, state, purpose, credential, proof).await?;
    let route = if purpose == "unlock" { "unlock" } else { "pin-reset" };
    let url = format!("{}/v1/mobile/credentials/{credential}/{route}", state.api);
    let body = serde_json::json!({ "proof_id": proof_id, "code": code, "new_pin": pin.trim() });
    call(client, reqwest::Method::POST, &url, Some(&state.token), Some(body)).await?;
    Ok(serde_json::json!({ "credential": credential, "pin": "set" }))
}

/// Allows (`allowed`) or withdraws a member's use of a seal: an `admin` code for the
/// organisation texted to the logged-in phone, then the change with it.
async fn seal_user(
    client: &reqwest::Client,
    state: &State,
    args: &SealUserArgs,
    allowed: bool,
) -> anyhow::Result<serde_json::Value> {
    let code = admin_code(client, state, &args.org, args.outbox.as_deref()).await?;
    let body = serde_json::json!({ "phone": args.member, "allowed": allowed, "code": code.trim() });
    let url = format!("{}/v1/mobile/orgs/{}/seals/{}/users", state.api, args.org, args.seal);
    call(client, reqwest::Method::POST, &url, Some(&state.token), Some(body)).await?;
    Ok(serde_json::json!({ "org": args.org, "seal": args.seal, "member": args.member, "allowed": allowed }))
}

/// A fresh `admin` code for an organisation change: asked for, then read from the sandbox
/// outbox (development) or standard input.
async fn admin_code(
    client: &reqwest::Client,
    state: &State,
    org: &str,
    outbox: Option<&Path>,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let phone = state.phone.as_deref().context("log in again: this state file does not name the phone")?;
    let body = serde_json::json!({ "phone": phone, "purpose": "admin", "object": org });
    call(client, reqwest::Method::POST, &format!("{}/v1/mobile/sms", state.api), None, Some(body)).await?;
    match outbox {
        Some(path) => code_from_outbox(path, phone),
        None => read_secret("administrator code: "),
    }
}

/// Runs an identity proof for `purpose` on `target` and waits for it to pass. Returns the
/// proof id and, for a bank card, the code texted to its reserved phone.
async fn prove(
    client: &reqwest::Client,
    state: &State,
    purpose: &str,
    target: &str,
    args: &ProofArgs,
) -> anyhow::Result<(String, Option<String>)> {
    let token = Some(state.token.as_str());
    let mut body = serde_json::json!({ "purpose": purpose, "target": target });
    match args.method.as_str() {
        "face" => body["method"] = "face".into(),
        "bank-card" => {
            body["method"] = "bank_card".into();
            body["card"] = args.card.clone().context("--card is required with --method bank-card")?.into();
            body["card_phone"] =
                args.card_phone.clone().context("--card-phone is required with --method bank-card")?.into();
        }
        other => anyhow::bail!("--method {other}: face or bank-card"),
    }
    let url = format!("{}/v1/mobile/proofs", state.api);
    let started = call(client, reqwest::Method::POST, &url, token, Some(body)).await?;
    let proof_id = started["proof_id"].as_str().context("no proof id in the answer")?.to_string();
    if let Some(phone) = args.card_phone.as_deref().filter(|_| args.method == "bank-card") {
        let code = match &args.outbox {
            Some(path) => code_from_outbox(path, phone)?,
            None => read_secret("code sent to the card's phone: ")?,
        };
        return Ok((proof_id, Some(code.trim().to_string())));
    }
    let face_url = started["face_url"].as_str().context("no face-check page in the answer")?;
    take_face_check(client, face_url).await?;
    let poll = format!("{}/v1/mobile/proofs/{proof_id}", state.api);
    for _ in 0..120 {
        let view = call(client, reqwest::Method::GET, &poll, token, None).await?;
        match view["state"].as_str() {
            Some("passed") => return Ok((proof_id, None)),
            Some("pending") => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            other => anyhow::bail!("the identity check ended {}", other.unwrap_or("unknown")),
        }
    }
    anyhow::bail!("the identity check did not finish within a minute")
}

/// The face check: a sandbox page is passed here, as the person in front of the camera would;
/// a real provider's page is for the holder to open on the phone.
async fn take_face_check(client: &reqwest::Client, face_url: &str) -> anyhow::Result<()> {
    if face_url.contains("/sandbox/face/") {
        let response = client.post(face_url).form(&[("result", "pass")]).send().await?;
        anyhow::ensure!(
            response.status().is_success() || response.status().is_redirection(),
            "sandbox face page: {}",
            response.status()
        );
    } else {
        eprintln!("open {face_url} on the phone to take the face check");
    }
    Ok(())
}

/// An HTTPS client that trusts only the given CA, never uses a proxy, and presents a client
/// certificate and key (PEM) when given one (relying platforms).
pub(crate) fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<reqwest::Client> {
    let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem).context("the CA file is not a PEM certificate")?;
    let mut builder =
        reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false).add_root_certificate(ca);
    if let Some((cert, key)) = identity {
        let mut both = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        both.extend(std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?);
        builder = builder.identity(reqwest::Identity::from_pem(&both).context("client certificate or key unreadable")?);
    }
    Ok(builder.no_proxy().build()?)
}

/// One JSON call; a problem document becomes an error naming its title and status.
pub(crate) async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut request = client.request(method, url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        anyhow::bail!("{status}: {}", value["title"].as_str().unwrap_or(&text));
    }
    Ok(value)
}

/// A secret line from standard input; on a terminal, asked for first.
fn read_secret(prompt: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin.lock().read_line(&mut line)?;
    anyhow::ensure!(!line.trim().is_empty(), "nothing on standard input for {}", prompt.trim_end_matches(": "));
    Ok(line)
}

/// The newest code the sandbox provider wrote for this phone.
fn code_from_outbox(path: &Path, phone: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Skip other texts to the phone (expiry reminders, face-check links).
    let code_sms = |l: &&str| l.contains(phone) && l.contains("cloudca code");
    let line = text.lines().rev().find(code_sms).context("no code SMS for this phone in the outbox")?;
    let message: serde_json::Value = serde_json::from_str(line)?;
    let code = message["text"].as_str().and_then(|t| t.split_whitespace().nth(2)).context("no code in the SMS")?;
    Ok(zeroize::Zeroizing::new(code.trim_end_matches('.').to_string()))
}
