//! One appended revision: its objects, then a cross-reference section of the original's kind
//! (a table with `trailer`, or a `/Type /XRef` stream), `/Prev` pointing at the previous one,
//! `startxref` and `%%EOF`.

use lopdf::{Dictionary, Object, ObjectId};

use super::object;
use super::parse::{Parsed, XrefKind};

/// The bytes of a revision being written (appended to `base_len` original bytes).
pub struct Revision {
    /// Length of everything before this revision.
    pub base_len: usize,
    /// The revision's own bytes.
    pub bytes: Vec<u8>,
    /// Objects written, with their offset in the whole file.
    offsets: Vec<(ObjectId, usize)>,
    /// Next free object number.
    next_id: u32,
}

impl Revision {
    /// A revision after `original`, the next object number past everything in `parsed`.
    pub fn new(original: &[u8], parsed: &Parsed) -> Revision {
        let size = parsed.document.trailer.get(b"Size").ok().and_then(|s| s.as_i64().ok()).unwrap_or(0);
        let next_id = (parsed.document.max_id + 1).max(u32::try_from(size).unwrap_or(0));
        // The original may end without an end-of-line after %%EOF.
        let bytes = if original.ends_with(b"\n") || original.ends_with(b"\r") { Vec::new() } else { b"\n".to_vec() };
        Revision { base_len: original.len(), bytes, offsets: Vec::new(), next_id }
    }

    /// A fresh object number.
    pub fn allocate(&mut self) -> ObjectId {
        let id = (self.next_id, 0);
        self.next_id += 1;
        id
    }

    /// Where the revision's next byte lands in the whole file.
    pub fn position(&self) -> usize {
        self.base_len + self.bytes.len()
    }

    /// Writes `id gen obj <o> endobj`.
    pub fn object(&mut self, id: ObjectId, o: &Object) {
        self.begin(id);
        object::write(&mut self.bytes, o);
        self.end();
    }

    /// Starts an object by hand (the signature dictionary, whose offsets the caller notes).
    pub fn begin(&mut self, id: ObjectId) {
        self.offsets.push((id, self.position()));
        self.bytes.extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
    }

    /// Ends an object begun by hand.
    pub fn end(&mut self) {
        self.bytes.extend_from_slice(b"\nendobj\n");
    }

    /// Writes the cross-reference section and trailer; returns the revision's bytes.
    pub fn finish(mut self, parsed: &Parsed) -> Vec<u8> {
        let mut trailer = Dictionary::new();
        for key in [b"Root".as_slice(), b"Info", b"ID"] {
            if let Ok(v) = parsed.document.trailer.get(key) {
                trailer.set(key, v.clone());
            }
        }
        trailer.set("Prev", Object::Integer(parsed.startxref as i64));
        match parsed.xref {
            XrefKind::Table => {
                trailer.set("Size", Object::Integer(i64::from(self.next_id)));
                let start = self.position();
                let mut section = b"xref\n".to_vec();
                for run in runs(&self.offsets) {
                    section.extend_from_slice(format!("{} {}\n", run[0].0 .0, run.len()).as_bytes());
                    for ((_, generation), offset) in run {
                        section.extend_from_slice(format!("{offset:010} {generation:05} n\r\n").as_bytes());
                    }
                }
                section.extend_from_slice(b"trailer\n");
                object::dictionary(&mut section, &trailer);
                self.bytes.extend_from_slice(&section);
                self.bytes.extend_from_slice(format!("\nstartxref\n{start}\n%%EOF\n").as_bytes());
            }
            XrefKind::Stream => {
                let id = self.allocate();
                let start = self.position();
                self.offsets.push((id, start));
                trailer.set("Type", Object::Name(b"XRef".to_vec()));
                trailer.set("Size", Object::Integer(i64::from(self.next_id)));
                trailer.set("W", Object::Array(vec![Object::Integer(1), Object::Integer(4), Object::Integer(2)]));
                let mut index = Vec::new();
                let mut data = Vec::new();
                for run in runs(&self.offsets) {
                    index.push(Object::Integer(i64::from(run[0].0 .0)));
                    index.push(Object::Integer(run.len() as i64));
                    for ((_, generation), offset) in run {
                        data.push(1u8);
                        data.extend_from_slice(&(offset as u32).to_be_bytes());
                        data.extend_from_slice(&generation.to_be_bytes());
                    }
                }
                trailer.set("Index", Object::Array(index));
                let stream = Object::Stream(lopdf::Stream::new(trailer, data));
                self.object_at(id, &stream);
                self.bytes.extend_from_slice(format!("startxref\n{start}\n%%EOF\n").as_bytes());
            }
        }
        self.bytes
    }

    /// Writes an object whose offset is already recorded.
    fn object_at(&mut self, id: ObjectId, o: &Object) {
        self.bytes.extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
        object::write(&mut self.bytes, o);
        self.end();
    }
}

/// The written objects sorted by number and cut into runs of consecutive numbers.
fn runs(offsets: &[(ObjectId, usize)]) -> Vec<Vec<(ObjectId, usize)>> {
    let mut sorted = offsets.to_vec();
    sorted.sort_by_key(|(id, _)| id.0);
    sorted.dedup_by_key(|(id, _)| id.0);
    let mut out: Vec<Vec<(ObjectId, usize)>> = Vec::new();
    for entry in sorted {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|(id, _)| id.0 + 1 == entry.0 .0) => run.push(entry),
            _ => out.push(vec![entry]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_gaps_and_sort() {
        let r = runs(&[((9, 0), 90), ((3, 0), 30), ((4, 1), 40), ((10, 0), 100)]);
        assert_eq!(r, vec![vec![((3, 0), 30), ((4, 1), 40)], vec![((9, 0), 90), ((10, 0), 100)]]);
    }
}
