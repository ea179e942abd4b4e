//! Strict reading of a platform's PDF before anything is stored or signed. `lopdf` reads the
//! objects (strict mode: no repaired cross-references); the checks around it are ours, so
//! each refusal names its problem.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
const MAX_STREAM_BYTES: usize = 16 * 1024 * 1024;

/// Objects one file may hold, object streams' members included (attacker review H1: lopdf keeps
/// every object it reads, about a hundred bytes each, so the count bounds the memory a parse
/// takes; a real 10 MiB document holds tens of thousands).
const MAX_OBJECTS: usize = 400_000;

/// Members one object stream may declare (`/N`).
const MAX_OBJSTM_MEMBERS: i64 = 20_000;

/// Decompressed bytes all object streams of one file may hold together: lopdf decodes each at
/// load and parses every member, so the per-stream bound alone let a few small streams of
/// `[0 0 0 …]` become gigabytes of objects.
const MAX_OBJSTM_TOTAL: usize = 24 * 1024 * 1024;

/// One parse at a time in the process: with the bounds above a parse's memory is bounded, and
/// the gate keeps concurrent sessions from multiplying it. Callers run [`parse`] on a blocking
/// thread (`tokio::task::spawn_blocking`), never on the async workers.
static GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The running parse's counts (one parse at a time: [`GATE`]); lopdf's filter is a plain `fn`
/// and may run on several threads.
static OBJECTS: AtomicUsize = AtomicUsize::new(0);
static OBJSTM_BYTES: AtomicUsize = AtomicUsize::new(0);
static OVER: AtomicBool = AtomicBool::new(false);

/// lopdf's per-object hook, called for every object read (object streams' members too) and
/// for an object stream before lopdf decodes it: counts objects and checks the stream first.
fn bounded(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    if OBJECTS.fetch_add(1, Ordering::SeqCst) >= MAX_OBJECTS {
        OVER.store(true, Ordering::SeqCst);
        return None;
    }
    if let Object::Stream(stream) = object {
        if stream.dict.has_type(b"ObjStm") && !object_stream_within_bounds(stream) {
            OVER.store(true, Ordering::SeqCst);
            return None;
        }
    }
    Some((id, object.clone()))
}

/// An object stream lopdf may decode: at most [`MAX_OBJSTM_MEMBERS`] members, within the
/// file's [`MAX_OBJSTM_TOTAL`], and an index whose offsets strictly increase inside the data
/// (a repeated offset made lopdf parse, and keep, the same large object once per entry).
fn object_stream_within_bounds(stream: &lopdf::Stream) -> bool {
    let int = |key: &[u8]| stream.dict.get(key).ok().and_then(|o| o.as_i64().ok());
    let (Some(n), Some(first)) = (int(b"N"), int(b"First")) else { return false };
    if !(0..=MAX_OBJSTM_MEMBERS).contains(&n) || first < 0 {
        return false;
    }
    let left = MAX_OBJSTM_TOTAL.saturating_sub(OBJSTM_BYTES.load(Ordering::SeqCst));
    let Ok(data) = stream.decompressed_content_with_limit(left.min(MAX_STREAM_BYTES)) else { return false };
    if OBJSTM_BYTES.fetch_add(data.len(), Ordering::SeqCst) + data.len() > MAX_OBJSTM_TOTAL {
        return false;
    }
    let Some(index) = usize::try_from(first).ok().and_then(|f| data.get(..f)) else { return false };
    let Ok(index) = std::str::from_utf8(index) else { return false };
    let numbers: Vec<usize> = index.split_ascii_whitespace().map_while(|t| t.parse().ok()).collect();
    if numbers.len() != 2 * n as usize {
        return false;
    }
    let body = data.len() - index.len();
    let offsets: Vec<usize> = numbers.chunks(2).map(|pair| pair[1]).collect();
    offsets.windows(2).all(|w| w[0] < w[1]) && offsets.last().is_none_or(|&last| last < body)
}

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
    let options = lopdf::LoadOptions {
        strict: true,
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        filter: Some(bounded),
        ..Default::default()
    };
    let gate = GATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    OBJECTS.store(0, Ordering::SeqCst);
    OBJSTM_BYTES.store(0, Ordering::SeqCst);
    OVER.store(false, Ordering::SeqCst);
    let loaded = Document::load_mem_with_options(pdf, options);
    let over = OVER.load(Ordering::SeqCst);
    drop(gate);
    if over {
        return Err(PadesError::Broken(format!(
            "too many objects (at most {MAX_OBJECTS}), or an object stream out of bounds (at most \
             {MAX_OBJSTM_MEMBERS} members, increasing offsets, {} MiB in all)",
            MAX_OBJSTM_TOTAL >> 20
        )));
    }
    let document = match loaded {
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

    /// The catalog's object number and a copy of it to rewrite in a new revision.
    pub fn catalog(&self) -> Result<(ObjectId, Dictionary), PadesError> {
        let root_id = self
            .document
            .trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .map_err(|_| PadesError::Broken("the trailer has no /Root reference".into()))?;
        let catalog = self.document.catalog().map_err(|e| PadesError::Broken(e.to_string()))?.clone();
        Ok((root_id, catalog))
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

    fn object_stream(n: i64, first: i64, content: &[u8]) -> lopdf::Stream {
        let mut dict = Dictionary::new();
        dict.set("Type", Object::Name(b"ObjStm".to_vec()));
        dict.set("N", Object::Integer(n));
        dict.set("First", Object::Integer(first));
        lopdf::Stream::new(dict, content.to_vec())
    }

    #[test]
    fn object_streams_out_of_bounds_are_refused_before_lopdf_decodes_them() {
        let _gate = GATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        OBJSTM_BYTES.store(0, Ordering::SeqCst);
        let index = b"1 0 2 4 ";
        let good = [&index[..], b"<<>> [0]"].concat();
        assert!(object_stream_within_bounds(&object_stream(2, index.len() as i64, &good)));
        // The same offset twice: lopdf would parse (and keep) that object once per entry.
        let repeated = [&b"1 0 2 0 "[..], b"[0 0 0 0]"].concat();
        assert!(!object_stream_within_bounds(&object_stream(2, 8, &repeated)));
        assert!(!object_stream_within_bounds(&object_stream(MAX_OBJSTM_MEMBERS + 1, 8, &good)), "too many members");
        assert!(
            !object_stream_within_bounds(&object_stream(3, index.len() as i64, &good)),
            "N does not match the index"
        );
        // A flat array larger than one stream may be: refused before it becomes objects.
        let flat = [&b"1 0 "[..], &b"0 ".repeat(MAX_STREAM_BYTES / 2 + 1)].concat();
        assert!(!object_stream_within_bounds(&object_stream(1, 4, &flat)));
        // Several streams within the per-stream bound still meet the file's total.
        OBJSTM_BYTES.store(MAX_OBJSTM_TOTAL - 4, Ordering::SeqCst);
        assert!(!object_stream_within_bounds(&object_stream(2, index.len() as i64, &good)), "over the file's total");
        OBJSTM_BYTES.store(0, Ordering::SeqCst);
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
