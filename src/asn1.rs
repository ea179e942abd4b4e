//! A tiny DER writer for the few structures we assemble by hand: ECDSA signature values,
//! RSA public keys, and the certificate extensions rcgen has no field for (AIA, certificate
//! policies). Writing them directly keeps the hot issuance path free of generic encoders, and
//! lets the CRL writer stream entries without building a tree first.

/// Tag numbers we use (universal class unless noted).
pub mod tag {
    /// BOOLEAN
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// ENUMERATED
    pub const ENUMERATED: u8 = 0x0a;
    /// UTF8String
    pub const UTF8_STRING: u8 = 0x0c;
    /// PrintableString
    pub const PRINTABLE_STRING: u8 = 0x13;
    /// IA5String
    pub const IA5_STRING: u8 = 0x16;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// SEQUENCE (constructed)
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed)
    pub const SET: u8 = 0x31;
}

/// Appends a DER length to `out`.
pub fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Number of bytes the header of a TLV with this content length takes.
pub fn header_len(len: usize) -> usize {
    if len < 0x80 {
        2
    } else {
        2 + (usize::BITS as usize / 8 - len.leading_zeros() as usize / 8)
    }
}

/// One tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    write_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already-encoded parts.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes (leading zeros stripped, a zero byte
/// added when the high bit is set so the value stays positive).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() || trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(tag::INTEGER, &content)
}

/// A small non-negative INTEGER.
pub fn small_integer(value: u64) -> Vec<u8> {
    unsigned_integer(&value.to_be_bytes())
}

/// An OBJECT IDENTIFIER from its arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let first = arcs[0] * 40 + arcs.get(1).copied().unwrap_or(0);
    for arc in std::iter::once(first).chain(arcs.iter().skip(2).copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        content.extend(chunk.iter().rev());
    }
    tlv(tag::OID, &content)
}

/// A context-specific tag: `[n]` constructed or primitive.
pub fn context(n: u8, constructed: bool, content: &[u8]) -> Vec<u8> {
    let tag = 0x80 | if constructed { 0x20 } else { 0 } | n;
    tlv(tag, content)
}

/// A DER time: UTCTime through 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 requires.
pub fn time(at: time::OffsetDateTime) -> Vec<u8> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let (y, mo, d) = (at.year(), at.month() as u8, at.day());
    let (h, mi, s) = (at.hour(), at.minute(), at.second());
    if (1950..2050).contains(&y) {
        let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        tlv(tag::UTC_TIME, text.as_bytes())
    } else {
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        tlv(tag::GENERALIZED_TIME, text.as_bytes())
    }
}

/// A GeneralizedTime, which OCSP and invalidity dates always use.
pub fn generalized_time(at: time::OffsetDateTime) -> Vec<u8> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    tlv(tag::GENERALIZED_TIME, text.as_bytes())
}

/// Reads one TLV from the front of `input`: (tag, content, rest). None on malformed input.
pub fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_stay_positive_and_minimal() {
        assert_eq!(unsigned_integer(&[0x00, 0x00, 0x7f]), vec![0x02, 0x01, 0x7f]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0x00]), vec![0x02, 0x01, 0x00]);
    }

    #[test]
    fn oids_encode_multi_byte_arcs() {
        // 1.2.840.10045.2.1 ecPublicKey
        assert_eq!(oid(&[1, 2, 840, 10045, 2, 1]), hex::decode("06072a8648ce3d0201").unwrap());
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let v = tlv(0x04, &[0u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(header_len(300), 4);
        assert_eq!(header_len(5), 2);
        let (t, c, rest) = read_tlv(&v).unwrap();
        assert_eq!((t, c.len(), rest.len()), (0x04, 300, 0));
    }

    #[test]
    fn times_switch_to_generalized_after_2049() {
        let t = time::macros::datetime!(2050-01-01 0:00 UTC);
        assert_eq!(time(t)[0], tag::GENERALIZED_TIME);
        let t = time::macros::datetime!(2026-11-24 1:02:03 UTC);
        assert_eq!(&time(t)[2..], b"261124010203Z");
    }
}
