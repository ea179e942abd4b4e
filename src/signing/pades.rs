//! Signing sessions with `format: "pades"`: the platform sends the PDF (base64 `document`, its
//! name in `documents[0]`), optionally `seal_placement`, `timestamp` and `level`; the session's
//! one hash is the PDF's SHA-256, so the holder's authorisation binds to exactly that file; on
//! approval [`sign_pdf`] returns the signed PDF ([`crate::pades`] does the PDF work).
//!
//! The PDF is kept in the session's request JSON (`signing_sessions.request`) between opening
//! and approval: it lives and dies with the session row, is written in the same transaction
//! as `signing.opened`, and needs no migration on either database; its size is bounded by
//! `custody.max_pdf_bytes`.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{cms, Format, OpenRequest, SigningError};
use crate::pades::{self, dss, PadesError, Placement, Seal};

/// The PAdES baseline level asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Level {
    /// Signature only.
    #[default]
    #[serde(rename = "B-B")]
    BB,
    /// With a signature timestamp from our TSA.
    #[serde(rename = "B-T")]
    BT,
    /// B-T plus a DSS with the chain, our OCSP response and CRL.
    #[serde(rename = "B-LT")]
    BLt,
}

/// What the holder's app shows of the PDF.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentView {
    /// The name the platform gave (`documents[0]`).
    pub name: String,
    /// Pages.
    pub pages: usize,
    /// SHA-256 of the PDF as given, hex.
    pub sha256: String,
}

/// What the signing service needs beside custody for PAdES: our TSA and status service.
#[derive(Clone)]
pub struct Documents {
    /// For B-T and B-LT.
    pub tsa: crate::tsa::Tsa,
    /// For B-LT (OCSP responses and CRLs).
    pub status: crate::status::StatusService,
    /// The signer certificate's issuer and CRL shard.
    pub store: crate::store::Store,
}

/// The level a request asks for (`timestamp: true` means at least B-T).
pub fn level(request: &OpenRequest) -> Level {
    match (request.level.unwrap_or_default(), request.timestamp) {
        (Level::BB, true) => Level::BT,
        (level, _) => level,
    }
}

/// Runs PDF work on untrusted input (parsing takes a second or more on a large file, one at a
/// time: [`pades::parse`]) without holding an async worker: the runtime moves its other tasks
/// to another thread meanwhile (attacker review H1). On a single-threaded runtime (unit tests,
/// the CLI) it simply runs.
fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn invalid(e: PadesError) -> SigningError {
    SigningError::Invalid(e.to_string())
}

/// Checks a PAdES request before anything is stored and returns it with its one hash (the
/// PDF's SHA-256) filled in; the PDF is parsed strictly and the seal rectangle checked against
/// its page. Other formats must not carry the PAdES fields.
pub(crate) fn check_open(
    mut request: OpenRequest,
    max_pdf_bytes: usize,
    documents: Option<&Documents>,
) -> Result<OpenRequest, SigningError> {
    let pades_fields =
        request.document.is_some() || request.seal_placement.is_some() || request.timestamp || request.level.is_some();
    if request.format != Format::Pades {
        if pades_fields {
            return Err(SigningError::Invalid(
                "document, seal_placement, timestamp and level belong to format \"pades\"".into(),
            ));
        }
        return Ok(request);
    }
    if !request.hashes.is_empty() {
        return Err(SigningError::Invalid("hashes: not with format \"pades\" (the document is signed)".into()));
    }
    if request.documents.len() != 1 {
        return Err(SigningError::Invalid("documents: the PDF's name, exactly one".into()));
    }
    let encoded =
        request.document.as_deref().ok_or_else(|| SigningError::Invalid("document: the PDF, base64".into()))?;
    if encoded.len() > max_pdf_bytes.div_ceil(3) * 4 {
        return Err(invalid(PadesError::TooLarge { size: encoded.len() / 4 * 3, max: max_pdf_bytes }));
    }
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::Invalid("document: not base64".into()))?;
    let parsed = off_runtime(|| pades::parse(&pdf, max_pdf_bytes)).map_err(invalid)?;
    if let Some(p) = &request.seal_placement {
        let page = usize::try_from(p.page).ok().and_then(|n| n.checked_sub(1)).and_then(|i| parsed.pages.get(i));
        let page = page.ok_or_else(|| {
            invalid(PadesError::Placement(format!("page {}: the document has {} pages", p.page, parsed.pages.len())))
        })?;
        pades::appearance::rectangle(p, parsed.media_box(*page).map_err(invalid)?).map_err(invalid)?;
        request.seal = true;
    } else if request.seal {
        return Err(SigningError::Invalid("seal_placement: where the seal goes (page, x, y, w, h)".into()));
    }
    if level(&request) != Level::BB && !documents.is_some_and(|d| d.tsa.has_key()) {
        return Err(SigningError::Invalid(
            "timestamp: this instance has no timestamp authority key (B-T and B-LT need one)".into(),
        ));
    }
    let hash = sha2::Sha256::digest(&pdf);
    request.hashes = vec![base64::engine::general_purpose::STANDARD.encode(hash)];
    Ok(request)
}

/// The holder's view of the session's PDF.
pub(crate) fn view(request: &OpenRequest, max_pdf_bytes: usize) -> Result<Option<DocumentView>, SigningError> {
    let Some(encoded) = request.document.as_deref() else { return Ok(None) };
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::Internal("stored document is not base64".into()))?;
    // What the holder is shown is what the session's hash (and so the approval) binds: a document
    // changed in the database since opening is refused here, not shown (attacker review M3).
    let digest = sha2::Sha256::digest(&pdf);
    let bound = request.hashes.first().and_then(|h| base64::engine::general_purpose::STANDARD.decode(h).ok());
    if bound.as_deref() != Some(digest.as_slice()) {
        return Err(SigningError::Internal("the stored document is not the one the session was opened with".into()));
    }
    let parsed = off_runtime(|| pades::parse(&pdf, max_pdf_bytes.max(pdf.len())))
        .map_err(|e| SigningError::Internal(e.to_string()))?;
    Ok(Some(DocumentView {
        name: request.documents.first().cloned().unwrap_or_default(),
        pages: parsed.pages.len(),
        sha256: hex::encode(digest),
    }))
}

/// How to sign one PDF.
pub struct PdfOptions<'a> {
    /// The visible seal, or none for an invisible signature.
    pub seal: Option<Seal<'a>>,
    /// B-B, B-T or B-LT.
    pub level: Level,
    /// `/M` of the signature dictionary.
    pub now: time::OffsetDateTime,
    /// Size limit when re-reading (the document was checked at opening).
    pub max_pdf_bytes: usize,
}

/// Signs `pdf` as PAdES with the signer's key: the signature revision, the CMS over its byte
/// ranges (no signing-time, signing-certificate-v2, the chain) signed once through `sign`
/// (SHA-256 digest in, DER ECDSA out), for B-T our TSA's token over the signature value (in
/// process, through the same path as `POST /tsa`), for B-LT a DSS revision. A CSC `signDoc`
/// can call this with its own `sign`.
pub async fn sign_pdf<F, Fut>(
    documents: Option<&Documents>,
    signer_der: &[u8],
    chain: &[Vec<u8>],
    pdf: &[u8],
    options: PdfOptions<'_>,
    sign: F,
) -> Result<Vec<u8>, SigningError>
where
    F: FnOnce([u8; 32]) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, SigningError>>,
{
    let internal = |e: &dyn std::fmt::Display| SigningError::Internal(e.to_string());
    let prepared =
        off_runtime(|| pades::prepare(pdf, options.max_pdf_bytes, options.seal, options.now)).map_err(invalid)?;
    let attributes = cms::signed_attributes_pades(&prepared.digest(), signer_der).map_err(|e| internal(&e))?;
    let signature = sign(sha2::Sha256::digest(&attributes).into()).await?;
    let mut container =
        cms::signed_data(signer_der, chain, &attributes, &signature, cms::CmsAlgorithm::EcdsaP256Sha256)
            .map_err(|e| internal(&e))?;
    if options.level != Level::BB {
        let documents = documents.ok_or_else(|| SigningError::Internal("no timestamp authority wired".into()))?;
        let imprint = pades::cms::signature_digest(&container).map_err(|e| internal(&e))?;
        let query = crate::tsa::request::sha256_query(&imprint, Some(rand::random::<u64>() >> 1), true);
        let reply = timestamp_waiting(&documents.tsa, &query).await;
        let token = pades::cms::token_of(&reply.der).map_err(|e| internal(&e))?;
        container = pades::cms::with_signature_timestamp(&container, &token).map_err(|e| internal(&e))?;
    }
    let signed = prepared.finish(&container).map_err(|e| internal(&e))?;
    if options.level != Level::BLt {
        return Ok(signed);
    }
    let documents = documents.ok_or_else(|| SigningError::Internal("no status service wired".into()))?;
    let data = validation_data(documents, signer_der, chain).await?;
    off_runtime(|| dss::append(&signed, options.max_pdf_bytes.max(signed.len()), &data)).map_err(|e| internal(&e))
}

/// Our TSA's answer for a signature the holder has already approved: when its share of the HSM
/// is taken (a `POST /tsa` flood), wait for a slot up to ten seconds rather than fail the
/// signature after the PIN was spent (attacker review M2). Public requests still never wait.
async fn timestamp_waiting(tsa: &crate::tsa::Tsa, query: &[u8]) -> crate::tsa::Reply {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = tsa.answer(query).await;
        if reply.outcome != crate::tsa::Outcome::Busy || tokio::time::Instant::now() >= deadline {
            return reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The chain, our current OCSP response for the signer, its issuer's CRL and the root's.
async fn validation_data(
    documents: &Documents,
    signer_der: &[u8],
    chain: &[Vec<u8>],
) -> Result<dss::Validation, SigningError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(signer_der).map_err(|e| SigningError::Internal(e.to_string()))?;
    let serial = crate::ca::serial::parse(&hex::encode(cert.raw_serial())).unwrap_or_default();
    let record = documents.status_record(&serial).await?;
    let mut data = dss::Validation::default();
    data.certificates.push(signer_der.to_vec());
    data.certificates.extend(chain.iter().cloned());
    let (issuer, shard) = record;
    let status = &documents.status;
    let ocsp = status.response_for(&serial, &issuer).await.map_err(|e| SigningError::Internal(e.to_string()))?;
    data.ocsp.extend(ocsp);
    // The issuing CA's CRL for the signer, and the root's for the CAs (and the TSA) below it.
    for (name, shard) in [(issuer.as_str(), shard), ("root", 0)] {
        if let Ok(crl) = status.crl(name, shard).await {
            data.crls.push(crl.der.to_vec());
        }
    }
    if let Some(responder) = status.issuers().iter().find(|i| i.name == issuer) {
        let responder: &Arc<crate::status::IssuerKeys> = responder;
        if !data.certificates.contains(&responder.responder_certificate) {
            data.certificates.push(responder.responder_certificate.clone());
        }
    }
    Ok(data)
}

impl Documents {
    /// The signer certificate's issuer and CRL shard.
    async fn status_record(&self, serial: &str) -> Result<(String, i64), SigningError> {
        let record = self.store.certificate(serial).await?.ok_or(SigningError::NotFound)?;
        Ok((record.issuer, record.crl_shard))
    }
}

/// `--seal PAGE,X,Y,W,H` as a placement.
pub fn parse_placement(text: &str) -> Result<Placement, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [page, x, y, w, h] = parts.as_slice() else {
        return Err("PAGE,X,Y,W,H (points)".into());
    };
    let n = |s: &str| s.parse::<f64>().map_err(|_| format!("{s}: not a number"));
    Ok(Placement {
        page: page.parse().map_err(|_| format!("{page}: not a page number"))?,
        x: n(x)?,
        y: n(y)?,
        w: n(w)?,
        h: n(h)?,
    })
}
