//! Outgoing e-mail (certificates, invoices, notices). The sandbox writes what it would send to
//! a JSON-lines outbox, with attachments stored content-addressed beside it, so tests and the dev
//! instance can read every message that "went out".

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{sandbox_answer, sandbox_io, Behaviour, ProviderFuture};

/// The provider name in errors and metrics.
const PROVIDER: &str = "email";

/// Addresses at this domain make the sandbox fail as if the mail service were down.
pub const DOWN_DOMAIN: &str = "@down.example";

/// A file sent with a message (a certificate, an invoice PDF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the recipient sees.
    pub name: String,
    /// The MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The content.
    pub bytes: Vec<u8>,
}

/// Sends e-mail, so callers do not depend on one mail service.
pub trait EmailProvider: Send + Sync {
    /// Delivers one message to `to` or says why not.
    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
        attachments: &'a [Attachment],
    ) -> ProviderFuture<'a, ()>;
}

/// Records messages in a JSON-lines outbox instead of sending them.
pub struct SandboxEmail {
    /// The outbox, e.g. `DATA_DIR/email-outbox.jsonl`; attachments go to `<stem>-files/` beside it.
    pub outbox: PathBuf,
}

impl SandboxEmail {
    /// Where attachments are stored: `<outbox stem>-files/` in the outbox's folder.
    pub fn files_dir(&self) -> PathBuf {
        let stem = self.outbox.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        self.outbox.with_file_name(format!("{stem}-files"))
    }
}

impl EmailProvider for SandboxEmail {
    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
        attachments: &'a [Attachment],
    ) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, behaviour(to)).await?;
            let outbox = self.outbox.clone();
            let files = self.files_dir();
            let message = Message {
                to: to.to_string(),
                subject: subject.to_string(),
                body: body.to_string(),
                attachments: attachments.to_vec(),
            };
            sandbox_io(PROVIDER, move || record(&outbox, &files, message)).await
        })
    }
}

/// The sandbox behaviour of an address: only the down domain is special.
fn behaviour(to: &str) -> Behaviour {
    if to.trim().to_ascii_lowercase().ends_with(DOWN_DOMAIN) {
        Behaviour::Down
    } else {
        Behaviour::Normal
    }
}

/// An owned copy of a message, for the blocking writer.
struct Message {
    to: String,
    subject: String,
    body: String,
    attachments: Vec<Attachment>,
}

/// Stores the attachments, then appends the message line that refers to them.
fn record(outbox: &Path, files: &Path, message: Message) -> std::io::Result<()> {
    let mut stored = Vec::with_capacity(message.attachments.len());
    for attachment in &message.attachments {
        let (sha256, path) = store_attachment(files, &attachment.bytes)?;
        stored.push(serde_json::json!({
            "name": attachment.name,
            "content_type": attachment.content_type,
            "sha256": sha256,
            "path": path.display().to_string(),
        }));
    }
    let line = serde_json::json!({
        "to": message.to,
        "subject": message.subject,
        "body": message.body,
        "attachments": stored,
        "at": crate::clock::unix_now(),
    });
    super::append_json_line(outbox, &line)
}

/// Writes `bytes` to `files/<sha256>` unless it is already there (same name, same content);
/// writes through a temporary name so a reader never sees a half-written file.
fn store_attachment(files: &Path, bytes: &[u8]) -> std::io::Result<(String, PathBuf)> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let path = files.join(&sha256);
    if !path.exists() {
        std::fs::create_dir_all(files)?;
        let partial = files.join(format!(".{sha256}.{}", super::random_hex(4)));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &path)?;
    }
    Ok((sha256, path))
}

/// Every message in an outbox, oldest first; a missing outbox is empty and unreadable lines are
/// skipped, so tests and the CLI can show what was sent.
pub fn read_outbox(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{test_dir, ProviderError};

    fn pdf(bytes: &[u8]) -> Attachment {
        Attachment { name: "cert.pdf".into(), content_type: "application/pdf".into(), bytes: bytes.to_vec() }
    }

    #[tokio::test]
    async fn messages_go_to_the_outbox_with_content_addressed_attachments() {
        let dir = test_dir("email");
        let email = SandboxEmail { outbox: dir.join("email-outbox.jsonl") };
        let attachments = [pdf(b"%PDF-1 one"), pdf(b"%PDF-1 one")];
        assert_eq!(email.send("a@example.com", "Your certificate", "Hello", &attachments).await, Ok(()));
        assert_eq!(email.send("b@example.com", "Second", "Body", &[]).await, Ok(()));

        let lines = read_outbox(&email.outbox);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["to"], "a@example.com");
        assert_eq!(lines[0]["subject"], "Your certificate");
        assert_eq!(lines[0]["body"], "Hello");
        assert!(lines[0]["at"].as_i64().unwrap_or(0) > 0);
        assert_eq!(lines[1]["attachments"].as_array().map(Vec::len), Some(0));

        let sent = &lines[0]["attachments"][0];
        let sha = hex::encode(Sha256::digest(b"%PDF-1 one"));
        assert_eq!(sent["sha256"], sha.as_str());
        assert_eq!(sent["name"], "cert.pdf");
        assert_eq!(sent["content_type"], "application/pdf");
        let path = dir.join("email-outbox-files").join(&sha);
        assert_eq!(sent["path"], path.display().to_string().as_str());
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"%PDF-1 one");
        assert_eq!(lines[0]["attachments"][1]["path"], sent["path"]);
        assert_eq!(std::fs::read_dir(dir.join("email-outbox-files")).map(Iterator::count).unwrap_or(0), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_down_domain_is_unavailable_and_nothing_is_written() {
        let dir = test_dir("email-down");
        let email = SandboxEmail { outbox: dir.join("email-outbox.jsonl") };
        let got = email.send("someone@Down.Example", "s", "b", &[]).await;
        assert_eq!(got, Err(ProviderError::Unavailable("email".into())));
        assert!(read_outbox(&email.outbox).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_outbox_reads_as_empty() {
        assert!(read_outbox(Path::new("/nonexistent/cloudca/outbox.jsonl")).is_empty());
    }
}
