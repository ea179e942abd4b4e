//! B-LT: the Document Security Store (ETSI EN 319 142-1 §5.4, ISO 32000-2 §12.8.4.3) in its own
//! incremental update after the signature: the chain's certificates, our OCSP responses and CRLs
//! as streams, listed in the catalog's `/DSS`. A DSS already there is extended, not replaced.

use lopdf::{Dictionary, Object, Stream};

use super::xref::Revision;
use super::PadesError;

/// What goes into the DSS (DER each).
#[derive(Debug, Default, Clone)]
pub struct Validation {
    /// Certificates: signer, issuing CA(s), root, and the OCSP responders'.
    pub certificates: Vec<Vec<u8>>,
    /// OCSP responses (`OCSPResponse`).
    pub ocsp: Vec<Vec<u8>>,
    /// CRLs.
    pub crls: Vec<Vec<u8>>,
}

/// `signed_pdf` with a DSS revision appended.
pub fn append(signed_pdf: &[u8], max: usize, data: &Validation) -> Result<Vec<u8>, PadesError> {
    let parsed = super::parse(signed_pdf, max)?;
    let (root_id, mut catalog) = parsed.catalog()?;
    let mut dss = match catalog.get(b"DSS").ok().map(|o| parsed.resolve(o)) {
        Some(Ok(Object::Dictionary(d))) => d.clone(),
        Some(_) => return Err(PadesError::Broken("/DSS is not a dictionary".into())),
        None => Dictionary::new(),
    };
    let mut rev = Revision::new(signed_pdf, &parsed);
    for (key, items) in [("Certs", &data.certificates), ("OCSPs", &data.ocsp), ("CRLs", &data.crls)] {
        let mut list = match dss.get(key.as_bytes()).ok().map(|o| parsed.resolve(o)) {
            Some(Ok(Object::Array(a))) => a.clone(),
            Some(_) => return Err(PadesError::Broken(format!("/DSS /{key} is not an array"))),
            None => Vec::new(),
        };
        for der in items {
            let id = rev.allocate();
            rev.object(id, &Object::Stream(Stream::new(Dictionary::new(), der.clone())));
            list.push(Object::Reference(id));
        }
        if !list.is_empty() {
            dss.set(key, Object::Array(list));
        }
    }
    let dss_id = rev.allocate();
    rev.object(dss_id, &Object::Dictionary(dss));
    catalog.set("DSS", Object::Reference(dss_id));
    rev.object(root_id, &Object::Dictionary(catalog));
    let appended = rev.finish(&parsed);
    let mut out = signed_pdf.to_vec();
    out.extend_from_slice(&appended);
    Ok(out)
}
