//! The audit entry hash is pinned: chains written by earlier releases must keep verifying, and
//! any tool that implements RFC 8785 (JCS) must be able to recompute it. The expected values
//! below were computed outside Rust (`json.dumps(entry, separators=(",", ":"),
//! ensure_ascii=False)` in Python, then SHA-256) and equal what cloudca wrote before the hash was
//! moved to JCS.

use cloudca::store::audit::{entry_hash, GENESIS};
use cloudca::store::AuditRecord;
use sha2::Digest;

fn record(at: i64, kind: &str, actor: &str, serial: Option<&str>, detail: &str) -> AuditRecord {
    AuditRecord { at, kind: kind.into(), actor: actor.into(), serial: serial.map(Into::into), detail: detail.into() }
}

/// Control characters, quotes and backslashes (escaped), DEL, U+2028, `</script>`, CJK and a
/// character outside the BMP (all written raw): every spelling choice a canonical form makes.
const AWKWARD: &str = "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f} \u{2028} </script> é 😀";

#[test]
fn entry_hashes_written_before_jcs_still_verify() {
    let first = record(
        1_733_500_000_000,
        "certificate.issued",
        "cli",
        Some("0a1b2c"),
        r#"{"profile":"org","subject":"CN=Example"}"#,
    );
    let h1 = entry_hash(1, &first, GENESIS);
    assert_eq!(h1, "31db7ec28d16a14b34eeee6d6b3453229e10be08de48c2ae3f0d55708564a808");

    let detail = format!(r#"{{"note":"a\"b\\c","raw":"{AWKWARD}"}}"#);
    let second = record(1_733_500_000_123, "operator.login", "CN=张三,O=示例", None, &detail);
    let h2 = entry_hash(2, &second, &h1);
    assert_eq!(h2, "81174b76f95a4a1738e9ea4a861082da6fee9be46cdd59b7e43b66edadf4c1de");

    // The largest integer JSON numbers carry exactly (2^53 - 1), a negative time, empty strings.
    let third = record(-1, "", "", Some(""), "");
    let h3 = entry_hash(9_007_199_254_740_991, &third, &h2);
    assert_eq!(h3, "7b38497122fd95a18a2245e1643015371417617ac0b095b0ae16459f0843a302");
}

/// Before JCS the hash input was serde_json's compact text of the same array. For integers and
/// strings the two agree byte for byte (same short escapes, lowercase `\u00xx`, nothing else
/// escaped), so the switch changed no hash: checked here character by character.
#[test]
fn the_jcs_hash_equals_the_earlier_serde_json_hash_for_every_character() {
    let earlier = |seq: i64, a: &AuditRecord, prev: &str| {
        let text = serde_json::json!([seq, a.at, a.kind, a.actor, a.serial, a.detail, prev]).to_string();
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    let mut samples: Vec<String> = (0u32..0x250).filter_map(char::from_u32).map(String::from).collect();
    samples.extend(["\u{2028}", "\u{feff}", "\u{fffd}", "😀", "𠀀", AWKWARD].map(String::from));
    for s in &samples {
        for (seq, at) in [(1, 0), (42, 1_733_500_000_000), (i64::from(u32::MAX), -86_400_000)] {
            let r = record(at, s, s, Some(s), s);
            assert_eq!(entry_hash(seq, &r, GENESIS), earlier(seq, &r, GENESIS), "{s:?}");
            let r = record(at, "k", "a", None, s);
            assert_eq!(entry_hash(seq, &r, s), earlier(seq, &r, s), "{s:?}");
        }
    }
}
