//! Building a CRL in one pass into one buffer, however many entries it has.
//!
//! The entries stream from the database straight into their final place in the buffer, after a
//! reserved gap; once their total length is known, the TBS header (which needs that length) is
//! written into the end of the gap, the TBS is hashed and signed in place, and the signature is
//! appended. The finished CRL is a slice of that same buffer: nothing is copied, so a CRL of N
//! bytes needs N bytes of memory (plus one row at a time from the database).

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use time::OffsetDateTime;

use crate::asn1::{self, tag};
use crate::status::RevocationReason;

/// One revoked certificate on a CRL.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Serial magnitude (big-endian).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why (unspecified: no reasonCode).
    pub reason: RevocationReason,
    /// When the key is known or suspected to have been compromised, if given.
    pub invalidity_date: Option<OffsetDateTime>,
}

/// What goes around the entries.
pub struct Header<'a> {
    /// Signature AlgorithmIdentifier DER.
    pub algorithm_id: &'a [u8],
    /// The issuer's subject Name DER.
    pub issuer: &'a [u8],
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The issuer's key identifier (AKI).
    pub key_id: &'a [u8],
    /// The CRL number.
    pub number: u64,
    /// For a partitioned CRL: the distribution point URL it covers (IDP, critical).
    pub partition_url: Option<&'a str>,
}

/// Room left before the entries for the TBS prefix and outer header (issuer names are well
/// under 1 KiB; checked).
const GAP: usize = 2048;

/// An unsigned CRL, laid out in its final buffer, waiting for its signature.
pub struct Unsigned {
    buffer: Vec<u8>,
    tbs_start: usize,
    algorithm_id: Vec<u8>,
    /// Number of entries written.
    pub entries: usize,
}

impl Unsigned {
    /// The exact bytes to sign.
    pub fn tbs(&self) -> &[u8] {
        &self.buffer[self.tbs_start..]
    }

    /// Appends the signature and returns the finished CRL (a view of the same buffer).
    pub fn finish(mut self, signature: &[u8]) -> Bytes {
        self.buffer.extend_from_slice(&self.algorithm_id);
        let bits_len = signature.len() + 1;
        self.buffer.push(tag::BIT_STRING);
        asn1::write_len(&mut self.buffer, bits_len);
        self.buffer.push(0);
        self.buffer.extend_from_slice(signature);
        let body = self.buffer.len() - self.tbs_start;
        let mut header = vec![tag::SEQUENCE];
        asn1::write_len(&mut header, body);
        let start = self.tbs_start - header.len();
        self.buffer[start..self.tbs_start].copy_from_slice(&header);
        Bytes::from(self.buffer).slice(start..)
    }
}

/// Streams DER entries (see [`encode_entry`]) into a CRL buffer and lays out the TBS around them.
pub async fn lay_out<S, E>(header: &Header<'_>, entries: S, size_hint: usize) -> Result<Unsigned, E>
where
    S: Stream<Item = Result<Vec<u8>, E>>,
{
    let mut buffer = Vec::with_capacity(GAP + size_hint * 56 + 512);
    buffer.resize(GAP, 0);
    let mut count = 0usize;
    futures_util::pin_mut!(entries);
    while let Some(entry) = entries.try_next().await? {
        buffer.extend_from_slice(&entry);
        count += 1;
    }
    let entries_len = buffer.len() - GAP;
    buffer.extend_from_slice(&extensions(header));
    let extensions_len = buffer.len() - GAP - entries_len;

    let mut prefix = Vec::with_capacity(512);
    prefix.extend_from_slice(&asn1::small_integer(1)); // v2
    prefix.extend_from_slice(header.algorithm_id);
    prefix.extend_from_slice(header.issuer);
    prefix.extend_from_slice(&asn1::time(header.this_update));
    prefix.extend_from_slice(&asn1::time(header.next_update));
    if entries_len > 0 {
        // revokedCertificates is omitted altogether when empty (RFC 5280 §5.1.2.6).
        prefix.push(tag::SEQUENCE);
        asn1::write_len(&mut prefix, entries_len);
    }
    let tbs_body = prefix.len() + entries_len + extensions_len;
    let mut tbs_header = vec![tag::SEQUENCE];
    asn1::write_len(&mut tbs_header, tbs_body);
    let prefix_len = tbs_header.len() + prefix.len();
    assert!(prefix_len + 8 <= GAP, "issuer name too long for the CRL gap");
    let tbs_start = GAP - prefix_len;
    buffer[tbs_start..tbs_start + tbs_header.len()].copy_from_slice(&tbs_header);
    buffer[tbs_start + tbs_header.len()..GAP].copy_from_slice(&prefix);
    Ok(Unsigned { buffer, tbs_start, algorithm_id: header.algorithm_id.to_vec(), entries: count })
}

/// The DER of one revokedCertificates entry, encoded once when the certificate is revoked.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_entry(&mut out, e);
    out
}

fn write_entry(out: &mut Vec<u8>, e: &Entry) {
    let serial = asn1::unsigned_integer(&e.serial);
    let date = asn1::time(e.revoked_at);
    let mut extensions = Vec::new();
    if let Some(code) = e.reason.code() {
        extensions.extend(extension(&[2, 5, 29, 21], false, &asn1::tlv(tag::ENUMERATED, &[code])));
    }
    if let Some(at) = e.invalidity_date {
        extensions.extend(extension(&[2, 5, 29, 24], false, &asn1::generalized_time(at)));
    }
    let mut len = serial.len() + date.len();
    if !extensions.is_empty() {
        len += asn1::header_len(extensions.len()) + extensions.len();
    }
    out.push(tag::SEQUENCE);
    asn1::write_len(out, len);
    out.extend_from_slice(&serial);
    out.extend_from_slice(&date);
    if !extensions.is_empty() {
        out.push(tag::SEQUENCE);
        asn1::write_len(out, extensions.len());
        out.extend_from_slice(&extensions);
    }
}

fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = asn1::oid(oid);
    if critical {
        parts.extend(asn1::tlv(tag::BOOLEAN, &[0xff]));
    }
    parts.extend(asn1::tlv(tag::OCTET_STRING, value));
    asn1::tlv(tag::SEQUENCE, &parts)
}

/// crlExtensions: AKI, CRL number, and IDP for partitions.
fn extensions(h: &Header<'_>) -> Vec<u8> {
    let aki = asn1::sequence(&[&asn1::context(0, false, h.key_id)]);
    let mut list = extension(&[2, 5, 29, 35], false, &aki);
    list.extend(extension(&[2, 5, 29, 20], false, &asn1::small_integer(h.number)));
    if let Some(url) = h.partition_url {
        let uri = asn1::context(6, false, url.as_bytes());
        let idp = asn1::sequence(&[&asn1::context(0, true, &asn1::context(0, true, &uri))]);
        list.extend(extension(&[2, 5, 29, 28], true, &idp));
    }
    asn1::context(0, true, &asn1::tlv(tag::SEQUENCE, &list))
}
