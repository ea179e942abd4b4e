//! The signature revision: everything one signature adds to the file, appended after the
//! original bytes, with its placeholders filled in two passes (ranges now, CMS later).

use lopdf::{Dictionary, Object, ObjectId};

use super::byterange;
use super::parse::Parsed;
use super::xref::Revision;
use super::{appearance, PadesError, Seal};

/// A file with its signature revision appended, waiting for the CMS.
#[derive(Debug)]
pub struct Prepared {
    /// The whole file, `/Contents` still zero.
    file: Vec<u8>,
    /// Offset of the `/Contents` `<`.
    contents_at: usize,
    /// SHA-256 over the byte ranges.
    digest: [u8; 32],
    /// Pages of the document (for the holder's view and audit).
    pub page_count: usize,
}

impl Prepared {
    /// What the CMS's message-digest attribute must be.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The signed PDF: the CMS written into the placeholder.
    pub fn finish(mut self, cms_der: &[u8]) -> Result<Vec<u8>, PadesError> {
        byterange::patch_contents(&mut self.file, self.contents_at, cms_der)?;
        Ok(self.file)
    }
}

/// Appends a signature revision to `pdf` (read strictly, at most `max` bytes): an invisible
/// signature, or the seal at its placement. `now` is the dictionary's `/M`.
pub fn prepare(
    pdf: &[u8],
    max: usize,
    seal: Option<Seal<'_>>,
    now: time::OffsetDateTime,
) -> Result<Prepared, PadesError> {
    let parsed = super::parse(pdf, max)?;
    let page_number = seal.as_ref().map_or(1, |s| s.placement.page);
    let page_id = usize::try_from(page_number)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| parsed.pages.get(i).copied())
        .ok_or_else(|| {
            PadesError::Placement(format!("page {page_number}: the document has {} pages", parsed.pages.len()))
        })?;
    let rect = match &seal {
        Some(s) => appearance::rectangle(&s.placement, parsed.media_box(page_id)?)?,
        None => [0.0; 4],
    };
    let mut rev = Revision::new(pdf, &parsed);
    let sig_id = rev.allocate();
    let field_id = rev.allocate();

    let mut field = Dictionary::new();
    field.set("Type", Object::Name(b"Annot".to_vec()));
    field.set("Subtype", Object::Name(b"Widget".to_vec()));
    field.set("FT", Object::Name(b"Sig".to_vec()));
    let name = format!("Signature{}", parsed.signature_count() + 1);
    field.set("T", Object::String(name.into_bytes(), lopdf::StringFormat::Literal));
    field.set("V", Object::Reference(sig_id));
    // Print + Locked.
    field.set("F", Object::Integer(132));
    field.set("P", Object::Reference(page_id));
    field.set("Rect", Object::Array(rect.iter().map(|v| number(*v)).collect()));
    if let Some(s) = &seal {
        let image = appearance::image(s.png)?;
        let (rgb_id, alpha_id, form_id) = (rev.allocate(), rev.allocate(), rev.allocate());
        let mut rgb = image.rgb;
        rgb.dict.set("SMask", Object::Reference(alpha_id));
        rev.object(alpha_id, &Object::Stream(image.alpha));
        rev.object(rgb_id, &Object::Stream(rgb));
        rev.object(form_id, &Object::Stream(appearance::form(s.placement.w, s.placement.h, rgb_id)));
        let mut ap = Dictionary::new();
        ap.set("N", Object::Reference(form_id));
        field.set("AP", Object::Dictionary(ap));
    }
    rev.object(field_id, &Object::Dictionary(field));
    add_to_page(&parsed, &mut rev, page_id, field_id)?;
    add_to_form(&parsed, &mut rev, field_id)?;

    // The signature dictionary, by hand: the placeholders' offsets are noted as written.
    rev.begin(sig_id);
    rev.bytes.extend_from_slice(b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /M ");
    super::object::write(&mut rev.bytes, &Object::String(pdf_date(now).into_bytes(), lopdf::StringFormat::Literal));
    rev.bytes.extend_from_slice(b" /ByteRange ");
    let range_at = rev.position();
    rev.bytes.extend(byterange::byte_range_placeholder());
    rev.bytes.extend_from_slice(b" /Contents ");
    let contents_at = rev.position();
    let contents = byterange::contents_placeholder();
    let contents_len = contents.len();
    rev.bytes.extend(contents);
    rev.bytes.extend_from_slice(b" >>");
    rev.end();

    let appended = rev.finish(&parsed);
    let mut file = Vec::with_capacity(pdf.len() + appended.len());
    file.extend_from_slice(pdf);
    file.extend_from_slice(&appended);
    let ranges = byterange::ranges(file.len(), contents_at, contents_len);
    byterange::patch_ranges(&mut file, range_at, ranges)?;
    let digest = byterange::digest(&file, ranges);
    Ok(Prepared { file, contents_at, digest, page_count: parsed.pages.len() })
}

/// The page again, its `/Annots` (inline, or its own array object) with the widget added.
fn add_to_page(parsed: &Parsed, rev: &mut Revision, page_id: ObjectId, field_id: ObjectId) -> Result<(), PadesError> {
    let mut page = parsed.page(page_id)?.clone();
    match page.get(b"Annots").ok().cloned() {
        Some(Object::Reference(array_id)) => {
            let Ok(Object::Array(items)) = parsed.document.get_object(array_id) else {
                return Err(PadesError::Broken("a page's /Annots is not an array".into()));
            };
            let mut items = items.clone();
            items.push(Object::Reference(field_id));
            rev.object(array_id, &Object::Array(items));
            return Ok(());
        }
        Some(Object::Array(mut items)) => {
            items.push(Object::Reference(field_id));
            page.set("Annots", Object::Array(items));
        }
        Some(_) => return Err(PadesError::Broken("a page's /Annots is not an array".into())),
        None => page.set("Annots", Object::Array(vec![Object::Reference(field_id)])),
    }
    rev.object(page_id, &Object::Dictionary(page));
    Ok(())
}

/// The AcroForm with the field in `/Fields` and `/SigFlags 3`: rewritten where it lives (its
/// own object, or inline in the catalog), or created and linked from a new catalog revision.
fn add_to_form(parsed: &Parsed, rev: &mut Revision, field_id: ObjectId) -> Result<(), PadesError> {
    let (root_id, mut catalog) = parsed.catalog()?;
    let (form_id, mut form) = match catalog.get(b"AcroForm").ok().cloned() {
        Some(Object::Reference(id)) => {
            let form = parsed.document.get_dictionary(id).map_err(|e| PadesError::Broken(format!("AcroForm: {e}")))?;
            (Some(id), form.clone())
        }
        Some(Object::Dictionary(d)) => (None, d),
        Some(_) => return Err(PadesError::Broken("/AcroForm is not a dictionary".into())),
        None => (None, Dictionary::new()),
    };
    match form.get(b"Fields").ok().cloned() {
        Some(Object::Reference(array_id)) => {
            let Ok(Object::Array(items)) = parsed.document.get_object(array_id) else {
                return Err(PadesError::Broken("/Fields is not an array".into()));
            };
            let mut items = items.clone();
            items.push(Object::Reference(field_id));
            rev.object(array_id, &Object::Array(items));
        }
        Some(Object::Array(mut items)) => {
            items.push(Object::Reference(field_id));
            form.set("Fields", Object::Array(items));
        }
        Some(_) => return Err(PadesError::Broken("/Fields is not an array".into())),
        None => form.set("Fields", Object::Array(vec![Object::Reference(field_id)])),
    }
    form.set("SigFlags", Object::Integer(3));
    match form_id {
        Some(id) => rev.object(id, &Object::Dictionary(form)),
        None => {
            let id = rev.allocate();
            rev.object(id, &Object::Dictionary(form));
            catalog.set("AcroForm", Object::Reference(id));
            rev.object(root_id, &Object::Dictionary(catalog));
        }
    }
    Ok(())
}

/// A coordinate as an integer when whole, else a real.
fn number(v: f64) -> Object {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        Object::Integer(v as i64)
    } else {
        Object::Real(v as f32)
    }
}

/// `D:YYYYMMDDHHmmSS+00'00'` in UTC.
pub fn pdf_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pades::parse::tests::sample;

    #[test]
    fn the_revision_is_appended_and_reads_back_with_the_field() {
        let pdf = sample();
        let now = time::macros::datetime!(2026-12-07 03:04:05 UTC);
        let prepared = prepare(&pdf, 1 << 20, None, now).unwrap();
        let digest = prepared.digest();
        let signed = prepared.finish(&[0x30, 0x00]).unwrap();
        assert!(signed.starts_with(&pdf), "the original bytes are untouched");
        let text = String::from_utf8_lossy(&signed[pdf.len()..]).to_string();
        let m = format!("/SubFilter /ETSI.CAdES.detached /M <{}>", hex::encode("D:20261207030405+00'00'"));
        assert!(text.contains(&m), "{text}");
        // The ranges name the whole file but the /Contents string, and the digest is theirs.
        let parsed = crate::pades::parse(&signed, 1 << 20).unwrap();
        let sig = parsed.document.objects.values().find_map(|o| match o {
            Object::Dictionary(d) if d.has(b"ByteRange") => Some(d.clone()),
            _ => None,
        });
        let sig = sig.expect("a signature dictionary");
        let r: Vec<usize> = match sig.get(b"ByteRange").unwrap() {
            Object::Array(a) => a.iter().map(|v| v.as_i64().unwrap() as usize).collect(),
            _ => panic!(),
        };
        assert_eq!(r[2] + r[3], signed.len());
        assert_eq!(signed[r[1]], b'<');
        assert_eq!(signed[r[2] - 1], b'>');
        assert_eq!(byterange::digest(&signed, [r[0], r[1], r[2], r[3]]), digest);
        assert_eq!(parsed.signature_count(), 1);
        assert_eq!(pdf_date(now), "D:20261207030405+00'00'");
        // A second signature goes on top and keeps the first revision byte for byte.
        let again = prepare(&signed, 1 << 20, None, now).unwrap().finish(&[0x30, 0x00]).unwrap();
        assert!(again.starts_with(&signed));
        assert_eq!(crate::pades::parse(&again, 1 << 20).unwrap().signature_count(), 2);
    }
}
