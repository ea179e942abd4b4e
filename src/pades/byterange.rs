//! The `/ByteRange` and `/Contents` placeholders of a signature dictionary and the maths
//! around them. Both have a fixed width, so filling them in moves no byte: the ranges cover
//! the whole file except the `/Contents` hex string, `<` and `>` included (ISO 32000-1
//! §12.8.1), and the digest is SHA-256 over the two ranges.

use sha2::Digest;

/// Bytes reserved for the DER CMS (signer certificate and chain, signature, an RFC 3161 token
/// with the TSA's certificates): 2 × this hex digits in the file.
pub const CONTENTS_BYTES: usize = 16 * 1024;

/// Width of each of the four `/ByteRange` numbers.
const NUMBER_WIDTH: usize = 10;

/// The placeholder `[` + room for four numbers + `]`, all spaces inside.
pub fn byte_range_placeholder() -> Vec<u8> {
    let mut out = vec![b'['];
    out.resize(1 + 4 * NUMBER_WIDTH + 3, b' ');
    out.push(b']');
    out
}

/// The placeholder `<000...0>`.
pub fn contents_placeholder() -> Vec<u8> {
    let mut out = vec![b'<'];
    out.resize(1 + 2 * CONTENTS_BYTES, b'0');
    out.push(b'>');
    out
}

/// The four numbers for a file of `file_len` bytes whose `/Contents` hex string (with `<>`)
/// starts at `contents_at` and is `contents_len` long.
pub fn ranges(file_len: usize, contents_at: usize, contents_len: usize) -> [usize; 4] {
    let after = contents_at + contents_len;
    [0, contents_at, after, file_len - after]
}

/// Writes `ranges` into the placeholder at `at` (left-aligned, padded with spaces).
pub fn patch_ranges(file: &mut [u8], at: usize, ranges: [usize; 4]) -> Result<(), super::PadesError> {
    let text = format!("[{} {} {} {}", ranges[0], ranges[1], ranges[2], ranges[3]);
    let placeholder_len = byte_range_placeholder().len();
    if text.len() + 1 > placeholder_len || file.get(at) != Some(&b'[') {
        return Err(super::PadesError::Container("the file is too large for the /ByteRange placeholder".into()));
    }
    file[at..at + text.len()].copy_from_slice(text.as_bytes());
    Ok(())
}

/// SHA-256 over the bytes `ranges` name.
pub fn digest(file: &[u8], ranges: [usize; 4]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(&file[ranges[0]..ranges[0] + ranges[1]]);
    h.update(&file[ranges[2]..ranges[2] + ranges[3]]);
    h.finalize().into()
}

/// Writes the DER CMS as hex into the `/Contents` placeholder at `at` (zero-padded).
pub fn patch_contents(file: &mut [u8], at: usize, cms: &[u8]) -> Result<(), super::PadesError> {
    if cms.len() > CONTENTS_BYTES {
        return Err(super::PadesError::Container(format!(
            "{} bytes, more than the {CONTENTS_BYTES} reserved",
            cms.len()
        )));
    }
    if file.get(at) != Some(&b'<') || file.get(at + 1 + 2 * CONTENTS_BYTES) != Some(&b'>') {
        return Err(super::PadesError::Container("the /Contents placeholder is not where it was".into()));
    }
    let hex = hex::encode_upper(cms);
    file[at + 1..at + 1 + hex.len()].copy_from_slice(hex.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_but_the_contents_string() {
        let mut file = b"%PDF head /ByteRange ".to_vec();
        let range_at = file.len();
        file.extend(byte_range_placeholder());
        file.extend_from_slice(b" /Contents ");
        let contents_at = file.len();
        file.extend(contents_placeholder());
        file.extend_from_slice(b" tail %%EOF\n");
        let r = ranges(file.len(), contents_at, contents_placeholder().len());
        assert_eq!(r[0], 0);
        assert_eq!(r[1], contents_at);
        assert_eq!(&file[r[1]..r[2]], contents_placeholder().as_slice(), "the gap is exactly <...>");
        assert_eq!(r[2] + r[3], file.len(), "the second range runs to the end");
        let before = file.len();
        patch_ranges(&mut file, range_at, r).unwrap();
        assert_eq!(file.len(), before, "fixed width: nothing moves");
        let text = String::from_utf8_lossy(&file);
        assert!(text.contains(&format!("/ByteRange [0 {} {} {}", r[1], r[2], r[3])), "{text}");
        let d = digest(&file, r);
        // Filling in the contents does not change the digest; touching a covered byte does.
        patch_contents(&mut file, contents_at, &[0x30, 0x03, 0x02, 0x01, 0x05]).unwrap();
        assert!(String::from_utf8_lossy(&file).contains("<3003020105000"));
        assert_eq!(digest(&file, r), d);
        file[3] ^= 1;
        assert_ne!(digest(&file, r), d);
    }

    #[test]
    fn an_oversized_container_or_moved_placeholder_is_refused() {
        let mut file = contents_placeholder();
        assert!(patch_contents(&mut file, 0, &vec![1u8; CONTENTS_BYTES + 1]).is_err());
        assert!(patch_contents(&mut file, 1, &[1]).is_err());
        let mut small = byte_range_placeholder();
        assert!(patch_ranges(&mut small, 0, [0, 1 << 50, 1 << 50, 1 << 50]).is_err(), "numbers too wide");
    }
}
