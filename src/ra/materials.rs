//! Uploaded materials are judged by their bytes, not their names: PNG, JPEG or PDF only, each
//! recognised by its signature and a plausible end, within a size limit. Stored
//! content-addressed (SHA-256), so the same file uploaded twice is kept once.
//!
//! Each order is bounded (security review M12): its uploads, replaced ones included, may total
//! at most `ra.order_upload_bytes`, and each kind may be uploaded `ra.uploads_per_material`
//! times; a replaced upload's blob is deleted when no other material references it. So one
//! applicant cannot fill the database by uploading again and again.

use sha2::Digest;

/// A material that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// `image/png`, `image/jpeg` or `application/pdf`.
    pub content_type: &'static str,
    /// Hex SHA-256, its address.
    pub sha256: String,
}

/// Why an upload was refused (the message is for the applicant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterialError {
    /// Empty body.
    #[error("the file is empty")]
    Empty,
    /// Over the limit.
    #[error("the file is larger than {0} bytes; scan at a lower resolution or compress it")]
    TooLarge(usize),
    /// Not PNG, JPEG or PDF by content.
    #[error("only PNG, JPEG or PDF files are accepted (this file's content is none of them)")]
    Type,
    /// Signature right but the file is cut short.
    #[error("the file looks truncated; upload it again")]
    Truncated,
    /// The order's uploads would pass `ra.order_upload_bytes` (the bytes, replaced uploads
    /// included).
    #[error("this order has used its upload allowance of {0} bytes; contact the RA to continue")]
    OrderQuota(u64),
    /// This kind was uploaded `ra.uploads_per_material` times already (the count).
    #[error("this material was uploaded {0} times already and cannot be replaced again; contact the RA")]
    Replacements(i64),
}

impl MaterialError {
    /// The machine-readable code of the field error the applicant sees.
    pub fn code(&self) -> &'static str {
        match self {
            MaterialError::OrderQuota(_) => "material.quota",
            MaterialError::Replacements(_) => "material.replacements",
            _ => "material.invalid",
        }
    }

    /// The refusal of an upload by the order's bounds, counted by bound.
    pub fn from_refusal(refusal: crate::store::UploadRefusal, config: &crate::config::RaConfig) -> MaterialError {
        let (bound, error) = match refusal {
            crate::store::UploadRefusal::Quota => {
                ("order_upload_bytes", MaterialError::OrderQuota(config.order_upload_bytes))
            }
            crate::store::UploadRefusal::Replacements => {
                ("uploads_per_material", MaterialError::Replacements(config.uploads_per_material))
            }
        };
        crate::metrics::get().uploads_refused.with_label_values(&[bound]).inc();
        error
    }
}

/// The bounds of one order's uploads, from the configuration.
pub fn bounds(config: &crate::config::RaConfig) -> crate::store::UploadBounds {
    crate::store::UploadBounds {
        order_bytes: i64::try_from(config.order_upload_bytes).unwrap_or(i64::MAX),
        per_material: config.uploads_per_material,
    }
}

/// Checks an upload and computes its address.
pub fn check(bytes: &[u8], max_bytes: usize) -> Result<Material, MaterialError> {
    if bytes.is_empty() {
        return Err(MaterialError::Empty);
    }
    if bytes.len() > max_bytes {
        return Err(MaterialError::TooLarge(max_bytes));
    }
    let content_type = sniff(bytes)?;
    Ok(Material { content_type, sha256: hex::encode(sha2::Sha256::digest(bytes)) })
}

fn sniff(b: &[u8]) -> Result<&'static str, MaterialError> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    const PNG_END: &[u8] = b"IEND\xaeB`\x82";
    if b.starts_with(PNG) {
        return if b.ends_with(PNG_END) { Ok("image/png") } else { Err(MaterialError::Truncated) };
    }
    if b.starts_with(b"\xff\xd8\xff") {
        let end = trim_end(b);
        return if end.ends_with(b"\xff\xd9") { Ok("image/jpeg") } else { Err(MaterialError::Truncated) };
    }
    if b.starts_with(b"%PDF-") {
        // The trailer marker sits within the last kilobyte (after optional whitespace).
        let tail = &b[b.len().saturating_sub(1024)..];
        let found = tail.windows(5).any(|w| w == b"%%EOF");
        return if found { Ok("application/pdf") } else { Err(MaterialError::Truncated) };
    }
    Err(MaterialError::Type)
}

/// JPEG writers may pad after the end-of-image marker with zeros or whitespace.
fn trim_end(b: &[u8]) -> &[u8] {
    let n = b.iter().rposition(|&c| !matches!(c, 0 | b' ' | b'\n' | b'\r')).map_or(0, |i| i + 1);
    &b[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_judged_by_content() {
        let png = [b"\x89PNG\r\n\x1a\n".as_slice(), b"....", b"IEND\xaeB`\x82"].concat();
        assert_eq!(check(&png, 100).unwrap().content_type, "image/png");
        let jpeg = [b"\xff\xd8\xff\xe0".as_slice(), b"data", b"\xff\xd9\n"].concat();
        assert_eq!(check(&jpeg, 100).unwrap().content_type, "image/jpeg");
        let pdf = b"%PDF-1.7\n1 0 obj\nendobj\n%%EOF\n";
        assert_eq!(check(pdf, 100).unwrap().content_type, "application/pdf");
        assert_eq!(check(b"MZ\x90\x00 an exe named licence.pdf", 100), Err(MaterialError::Type));
        assert_eq!(check(&png[..10], 100), Err(MaterialError::Truncated));
        assert_eq!(check(b"", 100), Err(MaterialError::Empty));
        assert_eq!(check(&png, 10), Err(MaterialError::TooLarge(10)));
    }

    #[test]
    fn the_address_is_the_sha256_of_the_bytes() {
        let pdf = b"%PDF-1.4\n%%EOF";
        assert_eq!(check(pdf, 100).unwrap().sha256, hex::encode(sha2::Sha256::digest(pdf)));
    }
}
