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
    /// Set the first PIN for an approval (the key is generated and the certificate issued).
    Enroll {
        /// The approval id.
        #[arg(long)]
        approval: String,
    },
    /// Claim a signing session from a scanned QR payload and show what it is about.
    Claim {
        /// The payload text.
        #[arg(long)]
        payload: String,
    },
    /// Approve a claimed session with a credential and its PIN.
    Approve {
        /// Session id.
        #[arg(long)]
        session: String,
        /// Credential id.
        #[arg(long)]
        credential: String,
    },
    /// Refuse a claimed session.
    Refuse {
        /// Session id.
        #[arg(long)]
        session: String,
    },
}

/// What the client remembers between calls.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    api: String,
    ca: PathBuf,
    token: String,
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
            let state = State { api, ca, token };
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
            Action::Enroll { approval } => {
                let pin = read_secret("new PIN: ")?;
                let body = serde_json::json!({ "approval_id": approval, "pin": pin.trim() });
                call(&client, reqwest::Method::POST, &url("/v1/mobile/credentials"), token, Some(body)).await?
            }
            Action::Claim { payload } => {
                let body = serde_json::json!({ "payload": payload });
                call(&client, reqwest::Method::POST, &url("/v1/mobile/sessions/claim"), token, Some(body)).await?
            }
            Action::Approve { session, credential } => {
                let pin = read_secret("PIN: ")?;
                let body = serde_json::json!({ "credential_id": credential, "pin": pin.trim() });
                let path = format!("/v1/mobile/sessions/{session}/approve");
                call(&client, reqwest::Method::POST, &url(&path), token, Some(body)).await?
            }
            Action::Refuse { session } => {
                let path = format!("/v1/mobile/sessions/{session}/refuse");
                call(&client, reqwest::Method::POST, &url(&path), token, None).await?
            }
        };
        println!("{}", serde_json::to_string_pretty(&answer)?);
        Ok(())
    })
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
