//! Strict reading of a platform's PDF before anything is stored or signed. `lopdf` reads the
//! objects (strict mode: no repaired cross-references); the checks around it are ours, so
//! each refusal names its problem.

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::PadesError;

/// The cross-reference kind of the latest revision; the appended one uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrefKind {
    /// `xref` ... `trailer`.
    Table,
    /// A `/Type /XRef` stream (PDF 1.5).
    Stream,
}

/// A PDF that passed the checks.
pub struct Parsed {
    /// Its objects (all revisions merged; the latest trailer).
    pub document: Document,
    /// Offset of the latest cross-reference section (the `/Prev` of the next).
    pub startxref: usize,
    /// Its kind.
    pub xref: XrefKind,
    /// Pages in order.
    pub pages: Vec<ObjectId>,
}

/// Decompressed size allowed for any one stream while reading (a compression bomb stops here).
const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// Reads `pdf` strictly; `max` is `custody.max_pdf_bytes`.
pub fn parse(pdf: &[u8], max: usize) -> Result<Parsed, PadesError> {
    if pdf.len() > max {
        return Err(PadesError::TooLarge { size: pdf.len(), max });
    }
    if !(pdf.starts_with(b"%PDF-1.") || pdf.starts_with(b"%PDF-2.")) {
        return Err(PadesError::NotPdf);
    }
    let startxref = tail(pdf)?;
    let xref = if pdf[startxref..].starts_with(b"xref") { XrefKind::Table } else { XrefKind::Stream };
    let options =
        lopdf::LoadOptions { strict: true, max_decompressed_size: Some(MAX_STREAM_BYTES), ..Default::default() };
    let document = match Document::load_mem_with_options(pdf, options) {
        Ok(d) => d,
        // An encrypted file that does not open with the empty password fails here.
        Err(_) if declares_encryption(pdf) => return Err(PadesError::Encrypted),
        Err(e) => return Err(PadesError::Broken(e.to_string())),
    };
    if document.encryption_state.is_some() || document.trailer.has(b"Encrypt") || declares_encryption(pdf) {
        return Err(PadesError::Encrypted);
    }
    if document.xref_recovery.is_some() {
        return Err(PadesError::Broken("the cross-reference table does not match the objects".into()));
    }
    document.catalog().map_err(|e| PadesError::Broken(format!("no document catalog: {e}")))?;
    let pages: Vec<ObjectId> = document.get_pages().into_values().collect();
    if pages.is_empty() {
        return Err(PadesError::Broken("no pages".into()));
    }
    Ok(Parsed { document, startxref, xref, pages })
}

/// The offset `startxref` names, after checking the file ends with `startxref N %%EOF` and
/// nothing but white space.
fn tail(pdf: &[u8]) -> Result<usize, PadesError> {
    let eof = rfind(pdf, b"%%EOF").ok_or(PadesError::Truncated("no %%EOF"))?;
    let after = &pdf[eof + 5..];
    let garbage = after.iter().filter(|b| !b.is_ascii_whitespace() && **b != 0).count();
    if garbage > 0 {
        return Err(PadesError::TrailingGarbage(after.len()));
    }
    let start = rfind(&pdf[..eof], b"startxref").ok_or(PadesError::Truncated("no startxref"))?;
    let number = std::str::from_utf8(&pdf[start + 9..eof]).map_err(|_| PadesError::Truncated("bad startxref"))?;
    let offset: usize = number.trim().parse().map_err(|_| PadesError::Truncated("bad startxref"))?;
    if offset == 0 || offset >= start {
        return Err(PadesError::Truncated("startxref points outside the file"));
    }
    Ok(offset)
}

/// Whether any trailer or cross-reference stream of the file names an `/Encrypt` dictionary.
fn declares_encryption(pdf: &[u8]) -> bool {
    pdf.windows(8).any(|w| w == b"/Encrypt")
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

impl Parsed {
    /// Resolves a reference (or returns the object itself).
    pub fn resolve<'a>(&'a self, object: &'a Object) -> Result<&'a Object, PadesError> {
        self.document.dereference(object).map(|(_, o)| o).map_err(|e| PadesError::Broken(e.to_string()))
    }

    /// A page's dictionary.
    pub fn page(&self, id: ObjectId) -> Result<&Dictionary, PadesError> {
        self.document.get_dictionary(id).map_err(|e| PadesError::Broken(format!("page {id:?}: {e}")))
    }

    /// A page's MediaBox `[x1 y1 x2 y2]`, inherited from its parents when not its own.
    pub fn media_box(&self, id: ObjectId) -> Result<[f64; 4], PadesError> {
        let mut dict = self.page(id)?;
        for _ in 0..32 {
            if let Ok(b) = dict.get(b"MediaBox") {
                let Object::Array(items) = self.resolve(b)? else {
                    return Err(PadesError::Broken("MediaBox is not an array".into()));
                };
                let n: Vec<f64> = items.iter().filter_map(|v| number(self.resolve(v).ok()?)).collect();
                if n.len() != 4 {
                    return Err(PadesError::Broken("MediaBox is not four numbers".into()));
                }
                return Ok([n[0].min(n[2]), n[1].min(n[3]), n[0].max(n[2]), n[1].max(n[3])]);
            }
            let parent = dict.get(b"Parent").map_err(|_| PadesError::Broken("a page has no MediaBox".into()))?;
            let Object::Dictionary(d) = self.resolve(parent)? else {
                return Err(PadesError::Broken("a page's /Parent is not a dictionary".into()));
            };
            dict = d;
        }
        Err(PadesError::Broken("page tree too deep".into()))
    }

    /// Number of signature fields already in the AcroForm (names the next one).
    pub fn signature_count(&self) -> usize {
        let Ok(catalog) = self.document.catalog() else { return 0 };
        let Some(Object::Dictionary(form)) = catalog.get(b"AcroForm").ok().and_then(|f| self.resolve(f).ok()) else {
            return 0;
        };
        match form.get(b"Fields").ok().and_then(|f| self.resolve(f).ok()) {
            Some(Object::Array(fields)) => fields.len(),
            _ => 0,
        }
    }
}

/// An integer or real as f64.
pub fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A one-page PDF from the project's own writer (classic cross-reference table).
    pub(crate) fn sample() -> Vec<u8> {
        crate::pdf::render(&crate::pdf::Document {
            title: "Bid".into(),
            sections: vec![crate::pdf::Section { heading: "Tender".into(), rows: vec![("No.".into(), "117".into())] }],
        })
    }

    #[test]
    fn a_clean_pdf_parses_with_its_page_and_table() {
        let pdf = sample();
        let parsed = parse(&pdf, 1 << 20).unwrap();
        assert_eq!(parsed.pages.len(), 1);
        assert_eq!(parsed.xref, XrefKind::Table);
        assert!(pdf[parsed.startxref..].starts_with(b"xref"));
        let mb = parsed.media_box(parsed.pages[0]).unwrap();
        assert_eq!(mb, [0.0, 0.0, 595.0, 842.0]);
    }

    #[test]
    fn bad_inputs_are_refused_by_name() {
        let pdf = sample();
        assert!(matches!(parse(&pdf, 100), Err(PadesError::TooLarge { .. })));
        assert!(matches!(parse(b"GIF89a", 100), Err(PadesError::NotPdf)));
        assert!(matches!(parse(&pdf[..pdf.len() / 2], 1 << 20), Err(PadesError::Truncated(_))));
        let mut garbage = pdf.clone();
        garbage.extend_from_slice(b"<script>");
        assert!(matches!(parse(&garbage, 1 << 20), Err(PadesError::TrailingGarbage(_))));
        let mut spaced = pdf.clone();
        spaced.extend_from_slice(b"\r\n\n");
        assert!(parse(&spaced, 1 << 20).is_ok(), "white space after %%EOF is fine");
        // A startxref that points at nothing.
        let text = String::from_utf8_lossy(&pdf).to_string();
        let at = text.rfind("startxref").unwrap();
        let broken = format!("{}startxref\n{}\n%%EOF\n", &text[..at], at - 3);
        assert!(
            matches!(parse(broken.as_bytes(), 1 << 20), Err(PadesError::Broken(_))),
            "{:?}",
            parse(broken.as_bytes(), 1 << 20).err()
        );
    }
}
