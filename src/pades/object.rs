//! Writes `lopdf` objects back as PDF syntax for the appended revision (the original bytes are
//! never re-serialised; only objects the revision changes are written again). Strings are
//! written in hex so their bytes survive exactly; names escape every irregular byte (`#xx`).

use lopdf::{Dictionary, Object};

/// Appends `o` in PDF syntax.
pub fn write(out: &mut Vec<u8>, o: &Object) {
    match o {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Object::Real(r) => out.extend_from_slice(real(f64::from(*r)).as_bytes()),
        Object::Name(n) => name(out, n),
        Object::String(s, _) => {
            out.push(b'<');
            out.extend_from_slice(hex::encode(s).as_bytes());
            out.push(b'>');
        }
        Object::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(d) => dictionary(out, d),
        Object::Stream(s) => {
            let mut dict = s.dict.clone();
            dict.set("Length", Object::Integer(s.content.len() as i64));
            dictionary(out, &dict);
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(&s.content);
            out.extend_from_slice(b"\nendstream");
        }
        Object::Reference((id, generation)) => out.extend_from_slice(format!("{id} {generation} R").as_bytes()),
    }
}

/// Appends `<< /Key value ... >>`.
pub fn dictionary(out: &mut Vec<u8>, d: &Dictionary) {
    out.extend_from_slice(b"<<");
    for (key, value) in d.iter() {
        out.push(b' ');
        name(out, key);
        out.push(b' ');
        write(out, value);
    }
    out.extend_from_slice(b" >>");
}

/// Appends `/Name`, escaping delimiters, white space, `#` and bytes outside `!`..`~`.
pub fn name(out: &mut Vec<u8>, n: &[u8]) {
    out.push(b'/');
    for &b in n {
        let regular = (b'!'..=b'~').contains(&b) && !b"()<>[]{}/%#".contains(&b);
        if regular {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

/// A real without exponent (PDF has none), trailing zeros trimmed.
pub fn real(r: f64) -> String {
    if !r.is_finite() {
        return "0".into();
    }
    let text = format!("{r:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" || text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(o: &Object) -> String {
        let mut out = Vec::new();
        write(&mut out, o);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn objects_round_trip_through_lopdf() {
        let mut d = Dictionary::new();
        d.set("Type", Object::Name(b"Annot".to_vec()));
        d.set("T", Object::String(b"a (b) \\ c".to_vec(), lopdf::StringFormat::Literal));
        d.set("Odd Name", Object::Array(vec![Object::Integer(-3), Object::Real(1.5), Object::Reference((7, 2))]));
        let written = text(&Object::Dictionary(d.clone()));
        assert_eq!(written, "<< /Type /Annot /T <6120286229205c2063> /Odd#20Name [-3 1.5 7 2 R] >>");
        assert_eq!(real(595.2756), "595.2756");
        assert_eq!(real(12.0), "12");
        assert_eq!(real(-0.00001), "0");
        assert_eq!(real(f64::NAN), "0");
    }
}
