//! PAdES signed PDFs (ETSI EN 319 142-1 baseline B-B, B-T, B-LT) from a platform's PDF.
//!
//! The original bytes are never rewritten: each step appends an incremental update whose
//! cross-reference section has the kind the file already uses (classic table or stream).
//!
//! 1. [`parse::parse`] reads the PDF strictly (size limit, header, one `%%EOF` at the very end,
//!    no encryption, a cross-reference that reads as written) with `lopdf`, for reading only.
//! 2. [`prepare`] appends the signature revision ([`revision`]): the signature dictionary
//!    (`/Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /M`) with a fixed-width
//!    `/ByteRange` and a zero `/Contents` placeholder ([`byterange`]), a signature field merged
//!    with its widget on the chosen page's `/Annots` and in the AcroForm (`/SigFlags 3`), and,
//!    for a visible seal, the appearance ([`appearance`]: the seal PNG as an image with SMask).
//! 3. The caller signs [`Prepared::digest`] (the SHA-256 over the byte ranges) in a CMS
//!    (`signing::cms::signed_attributes_pades`, `signed_data`), adds a timestamp token for B-T
//!    ([`cms::with_signature_timestamp`]) and calls [`Prepared::finish`], which writes the CMS
//!    into the placeholder.
//! 4. For B-LT, [`dss::append`] adds a second revision with the `/DSS` dictionary.
//!
//! `signing` drives these steps for signing sessions; a CSC `signDoc` can reuse the same four.

pub mod appearance;
pub mod byterange;
pub mod cms;
pub mod dss;
pub mod object;
pub mod parse;
pub mod revision;
pub mod xref;

pub use parse::{parse, Parsed};
pub use revision::{prepare, Prepared};

/// What a platform gets wrong about a PDF, or what cannot be built from it.
#[derive(Debug, thiserror::Error)]
pub enum PadesError {
    /// Larger than `custody.max_pdf_bytes`.
    #[error("document: the PDF is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// No `%PDF-` header.
    #[error("document: not a PDF (no %PDF- header)")]
    NotPdf,
    /// No `startxref` / `%%EOF` at the end: cut short.
    #[error("document: truncated PDF ({0})")]
    Truncated(&'static str),
    /// Bytes after the final `%%EOF`.
    #[error("document: {0} bytes of trailing garbage after the final %%EOF")]
    TrailingGarbage(usize),
    /// An `/Encrypt` dictionary: we do not sign encrypted PDFs.
    #[error("document: the PDF is encrypted; send it unencrypted")]
    Encrypted,
    /// Does not parse strictly.
    #[error("document: broken PDF ({0})")]
    Broken(String),
    /// The seal rectangle does not fit the page.
    #[error("seal_placement: {0}")]
    Placement(String),
    /// The seal image cannot be used.
    #[error("seal image: {0}")]
    SealImage(String),
    /// The CMS is bigger than the space reserved for it, or not a CMS we made.
    #[error("signature container: {0}")]
    Container(String),
}

/// Where the visible seal goes: page (1-based) and rectangle in points from the lower left of
/// the page's MediaBox.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// 1-based page number.
    pub page: u32,
    /// Left edge, points.
    pub x: f64,
    /// Bottom edge, points.
    pub y: f64,
    /// Width, points.
    pub w: f64,
    /// Height, points.
    pub h: f64,
}

/// The visible seal: where, and the PNG drawn there.
#[derive(Debug, Clone)]
pub struct Seal<'a> {
    /// Page and rectangle.
    pub placement: Placement,
    /// The organisation's seal image (PNG).
    pub png: &'a [u8],
}
