//! `cloudca rp sign ...`: a relying-platform demo. It opens a signing session for a file over
//! mutual TLS, shows the animated QR code (terminal, and a PNG refreshed every second), waits
//! for the holder, and checks what comes back: the signer certificate must chain to the root
//! it was given, and a raw signature must verify over the file. With `--format pades` the file
//! is a PDF sent whole, `--out` receives the signed PDF (which must begin with the original
//! bytes), `--seal PAGE,X,Y,W,H` places the organisation's seal and `--timestamp` / `--level`
//! ask for B-T / B-LT.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use clap::Subcommand;
use sha2::Digest;

use crate::signing::qr;

/// `rp` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Ask a holder to sign a file.
    Sign {
        /// `https://HOST:PORT` of the api listener.
        #[arg(long)]
        api: String,
        /// CA certificate (PEM) that verifies the api listener.
        #[arg(long)]
        ca: PathBuf,
        /// The platform's client certificate and key (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM, PKCS#8).
        #[arg(long)]
        key: PathBuf,
        /// The root CA certificate (PEM) the signer's chain must end in.
        #[arg(long)]
        root: PathBuf,
        /// The file to sign.
        #[arg(long)]
        file: PathBuf,
        /// raw, cms or pades.
        #[arg(long, default_value = "raw")]
        format: String,
        /// pades: the visible seal's page and rectangle in points, `PAGE,X,Y,W,H`.
        #[arg(long)]
        seal: Option<String>,
        /// pades: a signature timestamp from the service's TSA (B-T).
        #[arg(long)]
        timestamp: bool,
        /// pades: B-B, B-T or B-LT.
        #[arg(long)]
        level: Option<String>,
        /// Shown to the holder.
        #[arg(long, default_value = "Please sign this document")]
        description: String,
        /// Also write the QR code as PNG here, refreshed every second.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also write the current payload text here every second (for scripted tests).
        #[arg(long)]
        payload_file: Option<PathBuf>,
        /// Where to write the signature (DER ECDSA for raw, DER CMS for cms).
        #[arg(long)]
        out: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

/// Runs an `rp` command.
pub fn run(action: Action) -> anyhow::Result<()> {
    let Action::Sign {
        api,
        ca,
        cert,
        key,
        root,
        file,
        format,
        seal,
        timestamp,
        level,
        description,
        png,
        payload_file,
        out,
        timeout,
    } = action;
    let document = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let client = super::app::client(&ca, Some((&cert, &key)))?;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&document));
        let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let body = if format == "pades" {
            let mut body = serde_json::json!({
                "document": base64::engine::general_purpose::STANDARD.encode(&document),
                "description": description,
                "documents": [name],
                "format": format,
                "timestamp": timestamp,
            });
            if let Some(seal) = &seal {
                let p = crate::signing::pades::parse_placement(seal).map_err(|e| anyhow::anyhow!("--seal: {e}"))?;
                body["seal_placement"] = serde_json::to_value(p)?;
            }
            if let Some(level) = &level {
                body["level"] = serde_json::json!(level);
            }
            body
        } else {
            anyhow::ensure!(
                seal.is_none() && !timestamp && level.is_none(),
                "--seal, --timestamp and --level need --format pades"
            );
            serde_json::json!({ "hashes": [hash], "description": description, "documents": [name], "format": format })
        };
        let opened =
            super::app::call(&client, reqwest::Method::POST, &format!("{api}/v1/signing/sessions"), None, Some(body))
                .await?;
        let session = opened["session_id"].as_str().context("no session id")?.to_string();
        let token = opened["start_token"].as_str().context("no start token")?.to_string();
        let secret = qr::QrSecret::from_base64(opened["start_secret"].as_str().context("no secret")?)?;
        let started = Instant::now();
        println!("{}", qr::render_terminal(&qr::payload(&token, &secret, 0))?);
        println!("session {session}: scan the code with the app (it changes every second)");
        let poll_url = format!("{api}/v1/signing/sessions/{session}?wait=1");
        let view = loop {
            let payload = qr::payload(&token, &secret, started.elapsed().as_secs());
            if let Some(path) = &payload_file {
                replace(path, payload.as_bytes())?;
            }
            if let Some(path) = &png {
                replace(path, &qr::render_png(&payload, 8)?)?;
            }
            let view = super::app::call(&client, reqwest::Method::GET, &poll_url, None, None).await?;
            let state = view["state"].as_str().unwrap_or("");
            if !matches!(state, "pending" | "claimed") {
                break view;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(timeout), "no answer within {timeout} s");
        };
        anyhow::ensure!(view["state"] == "signed", "the session ended {}", view["state"]);
        let result = &view["result"];
        let field = if format == "pades" { &result["document"] } else { &result["signatures"][0] };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(field.as_str().context("no signature")?)
            .context("signature is not base64")?;
        check(result, &root, &format, &document, &signature)?;
        std::fs::write(&out, &signature).with_context(|| format!("cannot write {}", out.display()))?;
        println!("signed; signer chain verified up to the root; signature written to {}", out.display());
        Ok(())
    })
}

/// The signer certificate chains to the pinned root; a raw signature verifies over the file.
fn check(
    result: &serde_json::Value,
    root: &Path,
    format: &str,
    document: &[u8],
    signature: &[u8],
) -> anyhow::Result<()> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = |text: &str| -> anyhow::Result<Vec<u8>> { Ok(pem::parse(text).context("bad PEM")?.into_contents()) };
    let signer = der(result["certificate"].as_str().context("no certificate")?)?;
    let mut chain = vec![signer.clone()];
    for c in result["chain"].as_array().context("no chain")? {
        chain.push(der(c.as_str().unwrap_or(""))?);
    }
    let root_der = pem::parse(std::fs::read(root)?).context("the root file is not PEM")?.into_contents();
    anyhow::ensure!(chain.last() == Some(&root_der), "the chain does not end in the given root");
    for pair in chain.windows(2) {
        let (_, child) = X509Certificate::from_der(&pair[0]).map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
        let (_, parent) = X509Certificate::from_der(&pair[1]).map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
        child.verify_signature(Some(parent.public_key())).map_err(|e| anyhow::anyhow!("chain does not verify: {e}"))?;
    }
    if format == "pades" {
        anyhow::ensure!(
            signature.len() > document.len() && signature.starts_with(document),
            "the signed PDF does not keep the original bytes (not an incremental update)"
        );
    }
    if format == "raw" {
        let (_, cert) = X509Certificate::from_der(&signer).map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
        let key = cert.public_key().subject_public_key.data.to_vec();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
            .verify(document, signature)
            .map_err(|_| anyhow::anyhow!("the signature does not verify over the file"))?;
    }
    Ok(())
}

/// Writes a file by renaming a sibling, so readers never see half of it.
fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
