//! RFC 8785 (JSON Canonicalization Scheme) for the one shape the audit chain hashes: an array
//! of integers, strings and nulls. For these JCS is short to state (§3.2.2): integers in plain
//! decimal, strings with `"` and `\` escaped, U+0008/9/A/C/D as `\b \t \n \f \r`, the other
//! controls as `\u00xx` in lowercase hex, everything else as its UTF-8 bytes; no whitespace.
//! That is all the audit hash needs, so no general canonicaliser (with its float formatting and
//! key sorting, neither of which applies) is linked in. The tests below hold the RFC's own
//! example; `tests/it/audit_hash.rs` pins hashes computed outside Rust.

/// The largest integer an I-JSON number (an IEEE double, which JCS assumes) holds exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Whether `n` is within ±[`MAX_SAFE_INTEGER`], where its JCS form is its plain decimal.
pub fn is_safe_integer(n: i64) -> bool {
    (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n)
}

/// One array element: its canonical text.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// An integer (callers keep it within [`is_safe_integer`]).
    Integer(i64),
    /// A string.
    String(&'a str),
    /// `null`.
    Null,
}

/// The canonical text of an array of `values`.
pub fn array(values: &[Value<'_>]) -> String {
    let mut out = String::with_capacity(2 + values.iter().map(len_hint).sum::<usize>());
    out.push('[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match value {
            Value::Integer(n) => out.push_str(&n.to_string()),
            Value::String(s) => string(&mut out, s),
            Value::Null => out.push_str("null"),
        }
    }
    out.push(']');
    out
}

fn len_hint(value: &Value<'_>) -> usize {
    match value {
        Value::String(s) => s.len() + 3,
        _ => 21,
    }
}

/// Appends `s` as a JSON string, escaped as RFC 8785 §3.2.2.2 prescribes.
fn string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let b = c as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_8785_string_escapes() {
        let text =
            array(&[Value::String("\u{0}\u{1f}\u{8}\t\n\u{c}\r\"\\/\u{7f}€😀"), Value::Null, Value::Integer(-7)]);
        assert_eq!(text, "[\"\\u0000\\u001f\\b\\t\\n\\f\\r\\\"\\\\/\u{7f}€😀\",null,-7]");
    }

    /// RFC 8785 §3.2.3's own example string: `"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"`.
    #[test]
    fn the_rfc_8785_example_string() {
        let decoded = "\u{20ac}$\u{f}\nA'B\"\\\\\"/";
        assert_eq!(array(&[Value::String(decoded)]), "[\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"]");
    }

    #[test]
    fn safe_integers_end_at_two_to_the_53() {
        assert!(is_safe_integer(MAX_SAFE_INTEGER) && is_safe_integer(-MAX_SAFE_INTEGER));
        assert!(!is_safe_integer(MAX_SAFE_INTEGER + 1) && !is_safe_integer(i64::MIN));
    }
}
