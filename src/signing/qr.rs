//! Animated QR payloads for signing sessions, and their rendering.
//!
//! A signing session is started from a device other than the one holding the signer's key: the
//! relying platform shows a QR code, the signer scans it with the cloudca app, and the app sends
//! the scanned text to the service. Like Swedish BankID's animated QR, the code changes every
//! second, so a photo or a relayed screenshot goes stale within seconds; that narrows remote
//! phishing ("scan this code I am showing you") to a live relay.
//!
//! # Payload format
//!
//! ```text
//! cloudca1.{start_token}.{t}.{code}
//!
//! start_token  32 lowercase hex digits (16 random bytes), public, identifies the session
//! t            whole seconds since the session started, decimal, no sign, no leading zeros,
//!              at most 10 digits
//! code         32 lowercase hex digits: the first 16 bytes of
//!              HMAC-SHA256(key = start_secret,
//!                          msg = "cloudca-qr-v1\n" || start_token || "\n" || t)
//! ```
//!
//! For example, with `start_secret` = bytes `00 01 .. 1f` and `start_token` =
//! `00112233445566778899aabbccddeeff`, the payload at `t = 30` is
//! `cloudca1.00112233445566778899aabbccddeeff.30.b8d54d65e829b65d45b03af504f47a9c`
//! (pinned by a known-answer test below, so that platforms in other languages can check their
//! implementations against it).
//!
//! The `start_secret` (32 random bytes) goes only to the relying platform's back end over
//! mutual TLS; it never appears in the QR code. Compared with BankID's scheme
//! (HMAC over the bare time counter), the MAC here also covers the start token and a versioned
//! domain-separation prefix, so a code can never be replayed under another session's token, nor
//! confused with any other use of the same key.
//!
//! # Flow
//!
//! 1. The service creates [`new_start_token`] and [`QrSecret::generate`] per session.
//! 2. Each second the platform shows [`payload`] for the elapsed whole seconds, rendered with
//!    [`render_png`] (web) or [`render_terminal`] (CLI).
//! 3. The service [`parse`]s the scanned text, looks up the session by
//!    [`ScannedPayload::start_token`], and calls [`verify`] with that session's secret and its
//!    own elapsed time.
//!
//! Rendering always uses error-correction level M and at least QR version 5, which holds every
//! payload with `t` up to 9 digits: the picture keeps the same size from frame to frame instead
//! of jumping when `t` gains a digit.

#![forbid(unsafe_code)]

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use qrcode::{Color, EcLevel, QrCode, Version};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroize;

/// Versioned scheme prefix of every payload, so that scanners can tell our codes from others and
/// a future format can coexist with this one.
pub const PAYLOAD_PREFIX: &str = "cloudca1.";

/// Domain-separation prefix of the MAC input, so that a code computed here can never be valid in
/// any other protocol that might (wrongly) share the key.
const MAC_DOMAIN: &[u8] = b"cloudca-qr-v1\n";

/// Length of a start token in hex digits (16 random bytes): enough that guessing a live
/// session's token is hopeless.
pub const START_TOKEN_HEX_LEN: usize = 32;

/// Length of the code in hex digits (16 bytes of the MAC): 128 bits, so forging is hopeless even
/// with unlimited online attempts.
pub const CODE_HEX_LEN: usize = 32;

/// Largest number of decimal digits `t` may have. Ten digits (over 300 years) leave every real
/// session room while bounding what `parse` accepts.
pub const MAX_ELAPSED_DIGITS: usize = 10;

/// Largest `t` a payload can carry; [`payload`] must not be called with a larger value, because
/// [`parse`] rejects it.
pub const MAX_ELAPSED_SECS: u64 = 9_999_999_999;

/// Longest well-formed payload, in bytes. `parse` rejects longer input before looking at it.
pub const MAX_PAYLOAD_LEN: usize =
    PAYLOAD_PREFIX.len() + START_TOKEN_HEX_LEN + 1 + MAX_ELAPSED_DIGITS + 1 + CODE_HEX_LEN;

/// Longest text the renderers accept, in bytes. Well above [`MAX_PAYLOAD_LEN`], but far below
/// what would make a dense, hard-to-scan QR code on a screen.
pub const MAX_RENDER_LEN: usize = 256;

/// Largest PNG scale (pixels per module). Bounds the image at 5 920 pixels square even for the
/// largest QR version, so a caller-supplied scale cannot make us allocate without limit.
pub const MAX_PNG_SCALE: u32 = 32;

/// Quiet zone (light border) of the terminal rendering, in modules. Smaller than the standard
/// four because terminal cells are large and screens are scanned at close range.
const TERMINAL_QUIET_ZONE: usize = 2;

/// Quiet zone of the PNG rendering, in modules: the size the QR standard asks for.
const PNG_QUIET_ZONE: usize = 4;

/// Smallest QR version used, so the code keeps one size across frames (see module docs).
const MIN_QR_VERSION: i16 = 5;

/// Why a QR payload was refused or could not be produced.
///
/// The variants are separate because the service reacts differently: `Malformed` and `BadCode`
/// are noise or forgery, `Stale` of an authentic code is a replayed or relayed picture (worth an
/// audit record: `Signing::claim` writes `signing.claim_refused`), and `WindowClosed` means the
/// session must be restarted (also recorded, as the code was authentic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// The text is not a syntactically valid payload. The reason is fixed text: the offending
    /// input is never echoed, so logs cannot be injected through it.
    #[error("malformed QR payload: {0}")]
    Malformed(&'static str),
    /// The code does not authenticate under the session's secret (forged, altered, or from
    /// another session).
    #[error("QR code does not authenticate")]
    BadCode,
    /// The code is authentic but its time is too far from the server's (an old picture, or one
    /// from the future).
    #[error("QR code is stale: t={payload_secs}, server at {server_secs}, allowed skew {max_skew_secs}s")]
    Stale {
        /// `t` carried by the payload.
        payload_secs: u64,
        /// The server's own elapsed time for the session.
        server_secs: u64,
        /// The allowed difference.
        max_skew_secs: u64,
    },
    /// The session's scan window is over; the signer must start again.
    #[error("QR scan window of {window_secs}s is closed")]
    WindowClosed {
        /// The session's scan window.
        window_secs: u64,
    },
    /// A stored or transmitted secret is not 32 bytes of unpadded base64url.
    #[error("invalid QR secret encoding")]
    InvalidSecret,
    /// The QR code or image could not be produced.
    #[error("cannot render QR code: {0}")]
    Render(String),
}

/// The per-session MAC key (`start_secret`).
///
/// A wrapper rather than a bare array so that it is wiped from memory when dropped and can never
/// be printed by accident (its `Debug` shows no bytes). It deliberately has no `PartialEq`:
/// comparing secrets is not something the protocol needs, and a naive comparison would not be
/// constant-time.
pub struct QrSecret([u8; 32]);

impl QrSecret {
    /// A fresh secret from the operating system's CSPRNG, for a new session.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let secret = QrSecret(bytes);
        bytes.zeroize();
        secret
    }

    /// Wraps existing key bytes (from storage or a test vector).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        QrSecret(bytes)
    }

    /// The raw key, for handing to the platform over mutual TLS or storing encrypted.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as unpadded base64url (43 characters), the form used in JSON to the platform.
    ///
    /// The returned string holds the secret: callers should not log it and may wipe it with
    /// [`zeroize::Zeroize`] when done.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses the form written by [`QrSecret::to_base64`]: exactly 43 characters of unpadded
    /// base64url. Strict, so that a truncated or mangled secret fails here rather than later as
    /// mysterious `BadCode`s.
    pub fn from_base64(s: &str) -> Result<Self, QrError> {
        if s.len() != 43 {
            return Err(QrError::InvalidSecret);
        }
        // A little room: the engine wants space for its length estimate (33 bytes for 43 chars).
        let mut buf = [0u8; 36];
        let result = URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut buf);
        let secret = match result {
            Ok(32) => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&buf[..32]);
                let secret = QrSecret(bytes);
                bytes.zeroize();
                Ok(secret)
            }
            _ => Err(QrError::InvalidSecret),
        };
        buf.zeroize();
        secret
    }
}

impl Drop for QrSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for QrSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QrSecret(..)")
    }
}

/// A fresh public start token: 16 bytes from the OS CSPRNG as 32 lowercase hex digits.
/// Unguessable, so that only the platform that started a session can show its QR code.
pub fn new_start_token() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The MAC over the domain prefix, token and time; shared by [`payload`] and [`verify`] so that
/// both sides compute exactly the same message.
fn code_mac(start_token: &str, secret: &QrSecret, elapsed_secs: u64) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail; no input reaches this expect.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(MAC_DOMAIN);
    mac.update(start_token.as_bytes());
    mac.update(b"\n");
    mac.update(elapsed_secs.to_string().as_bytes());
    mac
}

/// The text to show as a QR code `elapsed_secs` whole seconds after the session started.
///
/// The platform calls this once a second. `start_token` must come from [`new_start_token`] and
/// `elapsed_secs` must not exceed [`MAX_ELAPSED_SECS`]; otherwise the result is still produced
/// but [`parse`] will refuse it.
pub fn payload(start_token: &str, secret: &QrSecret, elapsed_secs: u64) -> String {
    let tag = code_mac(start_token, secret, elapsed_secs).finalize().into_bytes();
    format!("{PAYLOAD_PREFIX}{start_token}.{elapsed_secs}.{}", hex::encode(&tag[..16]))
}

/// A payload that is well formed but not yet verified.
///
/// Parsed but not yet verified: the service looks up the session by `start_token` to find the
/// secret, then calls [`verify`]. The code is private so that the only way to act on it is
/// through `verify`'s constant-time check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedPayload {
    /// The session's public token (32 lowercase hex digits).
    pub start_token: String,
    /// `t`, the elapsed seconds the payload claims.
    pub elapsed_secs: u64,
    code: [u8; 16],
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses scanned text strictly: the exact prefix, exactly three dot-separated fields, a token
/// of 32 lowercase hex digits, `t` in canonical decimal (no sign, no leading zeros, at most 10
/// digits) and a code of 32 lowercase hex digits. Nothing is trimmed.
///
/// Strict because the text comes from anyone who can show a QR code to the app: accepting only
/// the one canonical spelling keeps every later step simple and makes every altered payload fail.
pub fn parse(payload: &str) -> Result<ScannedPayload, QrError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(QrError::Malformed("too long"));
    }
    let rest = payload.strip_prefix(PAYLOAD_PREFIX).ok_or(QrError::Malformed("wrong prefix"))?;
    let mut fields = rest.split('.');
    let (Some(token), Some(t), Some(code), None) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
        return Err(QrError::Malformed("wrong number of fields"));
    };

    if token.len() != START_TOKEN_HEX_LEN || !is_lower_hex(token) {
        return Err(QrError::Malformed("start token is not 32 lowercase hex digits"));
    }

    if t.is_empty() || t.len() > MAX_ELAPSED_DIGITS || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QrError::Malformed("time is not 1 to 10 decimal digits"));
    }
    if t.len() > 1 && t.starts_with('0') {
        return Err(QrError::Malformed("time has leading zeros"));
    }
    let elapsed_secs: u64 = t.parse().map_err(|_| QrError::Malformed("time out of range"))?;

    if code.len() != CODE_HEX_LEN || !is_lower_hex(code) {
        return Err(QrError::Malformed("code is not 32 lowercase hex digits"));
    }
    let mut code_bytes = [0u8; 16];
    hex::decode_to_slice(code, &mut code_bytes)
        .map_err(|_| QrError::Malformed("code is not 32 lowercase hex digits"))?;

    Ok(ScannedPayload { start_token: token.to_owned(), elapsed_secs, code: code_bytes })
}

/// Verifies a scanned payload against its session and returns its `t`.
///
/// Checks, in order:
/// 1. the code, in constant time, under `secret` (else [`QrError::BadCode`]), so that timing
///    errors below are only ever reported for authentic codes;
/// 2. the scan window: `t ≤ window_secs`, and the server itself not past
///    `window_secs + max_skew_secs` (else [`QrError::WindowClosed`]);
/// 3. freshness: `t` within `max_skew_secs` of `server_elapsed_secs`, in both directions (else
///    [`QrError::Stale`]). A code from the future is as suspicious as an old one.
///
/// `server_elapsed_secs` is the service's own whole seconds since it started the session, so the
/// platform's clock is never trusted; `max_skew_secs` absorbs network and scanning delay.
pub fn verify(
    scanned: &ScannedPayload,
    secret: &QrSecret,
    server_elapsed_secs: u64,
    max_skew_secs: u64,
    window_secs: u64,
) -> Result<u64, QrError> {
    let t = scanned.elapsed_secs;
    code_mac(&scanned.start_token, secret, t).verify_truncated_left(&scanned.code).map_err(|_| QrError::BadCode)?;

    if t > window_secs || server_elapsed_secs > window_secs.saturating_add(max_skew_secs) {
        return Err(QrError::WindowClosed { window_secs });
    }
    if t.abs_diff(server_elapsed_secs) > max_skew_secs {
        return Err(QrError::Stale { payload_secs: t, server_secs: server_elapsed_secs, max_skew_secs });
    }
    Ok(t)
}

/// The QR symbol for `text`: level M, at least version 5 (stable size across frames), larger
/// only if the text needs it.
fn qr_symbol(text: &str) -> Result<QrCode, QrError> {
    if text.len() > MAX_RENDER_LEN {
        return Err(QrError::Render(format!("text longer than {MAX_RENDER_LEN} bytes")));
    }
    let version = Version::Normal(MIN_QR_VERSION);
    QrCode::with_version(text, version, EcLevel::M)
        .or_else(|_| byte_mode_symbol(text, version))
        .or_else(|_| QrCode::with_error_correction_level(text, EcLevel::M))
        .map_err(|e| QrError::Render(e.to_string()))
}

/// `text` as one byte-mode segment at `version`. The `qrcode` crate's mixed-mode segmentation is
/// a heuristic: for hex text whose digit runs happen to fall badly it can spend more bits than
/// plain byte mode, which made about one session in eleven jump to the next version once `t`
/// had nine digits.
fn byte_mode_symbol(text: &str, version: Version) -> qrcode::types::QrResult<QrCode> {
    let mut bits = qrcode::bits::Bits::new(version);
    bits.push_byte_data(text.as_bytes())?;
    bits.push_terminator(EcLevel::M)?;
    QrCode::with_bits(bits, EcLevel::M)
}

/// A QR symbol with a quiet zone around it, answering "is this module dark?" for any
/// coordinate, including ones outside (which are light).
struct Grid {
    dark: Vec<bool>,
    width: usize,
    quiet: usize,
}

impl Grid {
    fn new(code: &QrCode, quiet: usize) -> Self {
        let dark = code.to_colors().into_iter().map(|c| c == Color::Dark).collect();
        Grid { dark, width: code.width(), quiet }
    }

    /// Side length including the quiet zone on both sides.
    fn size(&self) -> usize {
        self.width + 2 * self.quiet
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(self.quiet), y.checked_sub(self.quiet)) else {
            return false;
        };
        x < self.width && y < self.width && self.dark.get(y * self.width + x).copied().unwrap_or(false)
    }
}

/// Which colour the terminal's background is, which decides which modules get ink.
///
/// A scanner needs dark modules on a light field. A terminal can only draw glyphs in its
/// foreground colour, so on a dark background the light modules (and the quiet zone) are drawn
/// and the dark modules left as background; on a light background it is the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminalTheme {
    /// Light text on a dark background: the common default, and what [`render_terminal`]
    /// assumes.
    #[default]
    DarkBackground,
    /// Dark text on a light background.
    LightBackground,
}

/// The payload as a QR code in Unicode half blocks (`▀`, `▄`, `█` and space), two modules per
/// character cell, with a 2-module quiet zone, for a terminal with a dark background.
///
/// For operators and CLI-driven signing where no browser is at hand. The result shows dark
/// modules on a light field (see [`TerminalTheme`]); every line has the same number of
/// characters and ends with `\n`.
pub fn render_terminal(payload: &str) -> Result<String, QrError> {
    render_terminal_themed(payload, TerminalTheme::DarkBackground)
}

/// Like [`render_terminal`], for a terminal whose background is `theme`, so that the code is dark
/// on light whatever the terminal's colours.
pub fn render_terminal_themed(payload: &str, theme: TerminalTheme) -> Result<String, QrError> {
    let grid = Grid::new(&qr_symbol(payload)?, TERMINAL_QUIET_ZONE);
    let size = grid.size();
    // Ink is drawn in the foreground colour. Rows past the bottom (when the size is odd) are
    // left as background: they lie outside the quiet zone.
    let ink = |x: usize, y: usize| -> bool {
        y < size
            && match theme {
                TerminalTheme::DarkBackground => !grid.is_dark(x, y),
                TerminalTheme::LightBackground => grid.is_dark(x, y),
            }
    };
    let mut out = String::with_capacity(size.div_ceil(2) * (size * 3 + 1));
    for y in (0..size).step_by(2) {
        for x in 0..size {
            out.push(match (ink(x, y), ink(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The payload as a QR code in a 1-bit grayscale PNG, `scale` pixels per module, with the
/// standard 4-module quiet zone: for the relying platform's web page.
///
/// `scale` must be between 1 and [`MAX_PNG_SCALE`]. The image is square, `(width + 8) * scale`
/// pixels on a side, black modules on white.
pub fn render_png(payload: &str, scale: u32) -> Result<Vec<u8>, QrError> {
    if !(1..=MAX_PNG_SCALE).contains(&scale) {
        return Err(QrError::Render(format!("scale must be 1 to {MAX_PNG_SCALE}")));
    }
    let grid = Grid::new(&qr_symbol(payload)?, PNG_QUIET_ZONE);
    let scale = scale as usize;
    let px = grid.size() * scale;
    let side = u32::try_from(px).map_err(|_| QrError::Render("image too large".into()))?;

    // One bit per pixel, rows padded to whole bytes; 1 is white.
    let row_bytes = px.div_ceil(8);
    let mut data = vec![0u8; row_bytes * px];
    for (py, row) in data.chunks_exact_mut(row_bytes).enumerate() {
        for px_x in 0..px {
            if !grid.is_dark(px_x / scale, py / scale) {
                row[px_x / 8] |= 0x80 >> (px_x % 8);
            }
        }
    }

    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let render_err = |e: png::EncodingError| QrError::Render(e.to_string());
    let mut writer = encoder.write_header().map_err(render_err)?;
    writer.write_image_data(&data).map_err(render_err)?;
    writer.finish().map_err(render_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff";

    fn test_secret() -> QrSecret {
        let mut b = [0u8; 32];
        for (i, v) in b.iter_mut().enumerate() {
            *v = i as u8;
        }
        QrSecret::from_bytes(b)
    }

    #[test]
    fn known_answer_vectors() {
        // Computed independently with Python's hmac module.
        let s = test_secret();
        assert_eq!(
            payload(TOKEN, &s, 0),
            "cloudca1.00112233445566778899aabbccddeeff.0.3653e0dd9fdfb7c9af9d583c6e2cb8f9"
        );
        assert_eq!(
            payload(TOKEN, &s, 1),
            "cloudca1.00112233445566778899aabbccddeeff.1.270349006420ed7aeb5bdc51d14dec08"
        );
        assert_eq!(
            payload(TOKEN, &s, 30),
            "cloudca1.00112233445566778899aabbccddeeff.30.b8d54d65e829b65d45b03af504f47a9c"
        );
        assert_eq!(
            payload(TOKEN, &s, 4_294_967_296),
            "cloudca1.00112233445566778899aabbccddeeff.4294967296.f7ca9f29ba29254aad04e4b8ed77ec89"
        );
        assert_eq!(s.to_base64(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    }

    #[test]
    fn round_trip() {
        let token = new_start_token();
        let secret = QrSecret::generate();
        for t in [0, 1, 7, 29, 30] {
            let p = payload(&token, &secret, t);
            let scanned = parse(&p).unwrap();
            assert_eq!(scanned.start_token, token);
            assert_eq!(scanned.elapsed_secs, t);
            assert_eq!(verify(&scanned, &secret, t, 3, 30), Ok(t));
        }
        // The largest t a payload may carry still round-trips.
        let p = payload(&token, &secret, MAX_ELAPSED_SECS);
        assert_eq!(p.len(), MAX_PAYLOAD_LEN);
        let scanned = parse(&p).unwrap();
        assert_eq!(verify(&scanned, &secret, MAX_ELAPSED_SECS, 0, u64::MAX), Ok(MAX_ELAPSED_SECS));
    }

    #[test]
    fn start_tokens_are_fresh_lowercase_hex() {
        let a = new_start_token();
        let b = new_start_token();
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(t.len(), START_TOKEN_HEX_LEN);
            assert!(is_lower_hex(t));
        }
    }

    #[test]
    fn secret_encoding_and_debug() {
        let s = QrSecret::generate();
        let b64 = s.to_base64();
        assert_eq!(b64.len(), 43);
        let back = QrSecret::from_base64(&b64).unwrap();
        assert_eq!(back.as_bytes(), s.as_bytes());
        assert_ne!(QrSecret::generate().as_bytes(), s.as_bytes());

        let dbg = format!("{s:?} {:?}", test_secret());
        assert_eq!(dbg, "QrSecret(..) QrSecret(..)");
        assert!(!dbg.contains(&b64));

        for bad in [
            "",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", // padded
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",   // short
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A", // long
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd+h8",  // standard alphabet
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",  // non-zero trailing bits
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHé",   // unicode, 43 bytes
            "...........................................",
        ] {
            assert!(matches!(QrSecret::from_base64(bad), Err(QrError::InvalidSecret)), "{bad:?}");
        }
        assert!(QrSecret::from_base64(&"A".repeat(10_000)).is_err());
    }

    /// Rejected by parse as malformed, or by verify as not authentic, at a time and window where
    /// the original payload is accepted.
    fn assert_rejected(candidate: &str, original: &str, secret: &QrSecret) {
        assert_ne!(candidate, original);
        match parse(candidate) {
            Err(QrError::Malformed(_)) => {}
            Err(e) => panic!("{candidate:?}: unexpected {e:?}"),
            Ok(scanned) => {
                let t = scanned.elapsed_secs;
                assert_eq!(
                    verify(&scanned, secret, t, u64::MAX, u64::MAX),
                    Err(QrError::BadCode),
                    "{candidate:?} accepted"
                );
            }
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let secret = test_secret();
        let mut alphabet: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
        alphabet.extend(['\0', '\n', '\t', 'é', 'ａ', '٣', '\u{200b}', '𝟘']);
        for t in [0, 7, 30, 1234] {
            let original = payload(TOKEN, &secret, t);
            assert!(parse(&original).is_ok());
            let chars: Vec<char> = original.chars().collect();
            let mut tried = 0;
            for i in 0..=chars.len() {
                // Insertions before position i.
                for &c in &alphabet {
                    let mut v = chars.clone();
                    v.insert(i, c);
                    assert_rejected(&v.iter().collect::<String>(), &original, &secret);
                    tried += 1;
                }
                if i == chars.len() {
                    break;
                }
                // Deletion and substitutions at position i.
                let mut v = chars.clone();
                v.remove(i);
                assert_rejected(&v.iter().collect::<String>(), &original, &secret);
                for &c in alphabet.iter().filter(|&&c| c != chars[i]) {
                    let mut v = chars.clone();
                    v[i] = c;
                    assert_rejected(&v.iter().collect::<String>(), &original, &secret);
                    tried += 1;
                }
            }
            assert!(tried > 10_000);
        }
    }

    #[test]
    fn other_sessions_secret_or_token_is_bad_code() {
        let (tok_a, sec_a) = (new_start_token(), QrSecret::generate());
        let (tok_b, sec_b) = (new_start_token(), QrSecret::generate());
        let scanned = parse(&payload(&tok_a, &sec_a, 5)).unwrap();
        assert_eq!(verify(&scanned, &sec_b, 5, 2, 30), Err(QrError::BadCode));
        // A code lifted onto another session's token does not verify under that session either.
        let mut moved = scanned.clone();
        moved.start_token = tok_b;
        assert_eq!(verify(&moved, &sec_a, 5, 2, 30), Err(QrError::BadCode));
        // Nor does a code relabelled with another time.
        let mut shifted = scanned;
        shifted.elapsed_secs = 6;
        assert_eq!(verify(&shifted, &sec_a, 6, 2, 30), Err(QrError::BadCode));
    }

    #[test]
    fn stale_and_future_times_are_rejected() {
        let s = test_secret();
        let scanned = parse(&payload(TOKEN, &s, 10)).unwrap();
        // Within skew, both directions, including the exact boundary.
        for server in [8, 9, 10, 11, 12] {
            assert_eq!(verify(&scanned, &s, server, 2, 60), Ok(10), "server at {server}");
        }
        // Old picture.
        assert_eq!(
            verify(&scanned, &s, 13, 2, 60),
            Err(QrError::Stale { payload_secs: 10, server_secs: 13, max_skew_secs: 2 })
        );
        assert!(matches!(verify(&scanned, &s, 40, 2, 60), Err(QrError::Stale { .. })));
        // From the future.
        assert!(matches!(verify(&scanned, &s, 7, 2, 60), Err(QrError::Stale { .. })));
        assert!(matches!(verify(&scanned, &s, 0, 2, 60), Err(QrError::Stale { .. })));
        // Zero skew means exactly the current second.
        assert_eq!(verify(&scanned, &s, 10, 0, 60), Ok(10));
        assert!(matches!(verify(&scanned, &s, 11, 0, 60), Err(QrError::Stale { .. })));
        // Extreme values do not overflow.
        assert!(matches!(verify(&scanned, &s, u64::MAX, 2, u64::MAX), Err(QrError::Stale { .. })));
        assert_eq!(verify(&scanned, &s, u64::MAX, u64::MAX, u64::MAX), Ok(10));
    }

    #[test]
    fn closed_window_is_rejected() {
        let s = test_secret();
        let at_30 = parse(&payload(TOKEN, &s, 30)).unwrap();
        let at_31 = parse(&payload(TOKEN, &s, 31)).unwrap();
        assert_eq!(verify(&at_30, &s, 30, 2, 30), Ok(30));
        assert_eq!(verify(&at_31, &s, 31, 2, 30), Err(QrError::WindowClosed { window_secs: 30 }));
        // Authentic, in-window t, but the server's clock says the window (plus skew) is over.
        assert_eq!(verify(&at_30, &s, 33, 2, 30), Err(QrError::WindowClosed { window_secs: 30 }));
        let at_29 = parse(&payload(TOKEN, &s, 29)).unwrap();
        assert_eq!(verify(&at_29, &s, 33, 2, 30), Err(QrError::WindowClosed { window_secs: 30 }));
        assert_eq!(verify(&at_29, &s, 33, 4, 30), Ok(29));
        assert_eq!(verify(&at_30, &s, 33, 5, 27), Err(QrError::WindowClosed { window_secs: 27 }));
        // Window zero: only t = 0 at server time ≤ skew.
        let at_0 = parse(&payload(TOKEN, &s, 0)).unwrap();
        assert_eq!(verify(&at_0, &s, 1, 1, 0), Ok(0));
        assert!(matches!(verify(&at_0, &s, 2, 1, 0), Err(QrError::WindowClosed { .. })));
        // Forged codes are BadCode even when the window is closed: no timing info for forgers.
        let other = QrSecret::generate();
        assert_eq!(verify(&at_31, &other, 31, 2, 30), Err(QrError::BadCode));
    }

    #[test]
    fn strict_parse_rejects_near_misses() {
        let good = payload(TOKEN, &test_secret(), 30);
        let code = &good[good.len() - 32..];
        let cases = [
            format!("CLOUDCA1.{TOKEN}.30.{code}"),
            format!("cloudca2.{TOKEN}.30.{code}"),
            format!("cloudca1.{}.30.{code}", TOKEN.to_uppercase()),
            format!("cloudca1.{TOKEN}.30.{}", code.to_uppercase()),
            format!("cloudca1.{TOKEN}.030.{code}"),
            format!("cloudca1.{TOKEN}.00.{code}"),
            format!("cloudca1.{TOKEN}.+30.{code}"),
            format!("cloudca1.{TOKEN}.-0.{code}"),
            format!("cloudca1.{TOKEN}..{code}"),
            format!("cloudca1.{TOKEN}.12345678901.{code}"),
            format!("cloudca1.{TOKEN}.30.{code}."),
            format!("cloudca1.{TOKEN}.30.{code}.x"),
            format!("cloudca1.{TOKEN}.30"),
            format!("cloudca1.{TOKEN}.30.{code}\n"),
            format!(" {good}"),
            format!("cloudca1.{TOKEN}.3 0.{code}"),
            format!("cloudca1.{TOKEN}.٣٠.{code}"),
            format!("cloudca1.{}.30.{code}", &TOKEN[..30]),
            format!("cloudca1.{TOKEN}ab.30.{code}"),
            format!("cloudca1.{TOKEN}.30.{}", &code[..31]),
            format!("cloudca1.{}g.30.{code}", &TOKEN[..31]),
            format!("cloudca1.{TOKEN}.30.{}é", &code[..30]),
            "cloudca1.".to_owned(),
            "cloudca1...".to_owned(),
            "cloudca1....".to_owned(),
        ];
        for c in &cases {
            assert!(matches!(parse(c), Err(QrError::Malformed(_))), "{c:?} parsed");
        }
        // Ten digits are allowed, even with a value above u32.
        assert!(parse(&format!("cloudca1.{TOKEN}.9999999999.{code}")).is_ok());
        assert!(parse(&format!("cloudca1.{TOKEN}.0.{code}")).is_ok());
    }

    #[test]
    fn garbage_does_not_panic() {
        let big = "x".repeat(10 * 1024);
        let big_dots = ".".repeat(10 * 1024);
        let big_prefixed = format!("cloudca1.{}", "a.".repeat(5000));
        let unicode = "cloudca1.ÅÄÖ漢字🦀\u{0}\u{feff}.1.ü";
        let mut inputs: Vec<String> = vec![
            String::new(),
            ".".into(),
            "cloudca1".into(),
            big.clone(),
            big_dots,
            big_prefixed,
            unicode.into(),
            "🦀".repeat(30),
            "\u{0}".repeat(85),
            format!("cloudca1.{}", "é".repeat(38)),
        ];
        // Every prefix of a valid payload.
        let good = payload(TOKEN, &test_secret(), 123);
        inputs.extend((0..good.len()).map(|i| good[..i].to_owned()));
        for input in &inputs {
            assert!(matches!(parse(input), Err(QrError::Malformed(_))), "{input:?}");
        }
        assert_eq!(parse(&big), Err(QrError::Malformed("too long")));

        // Renderers: empty and unicode render; oversized text is a typed error.
        for text in ["", unicode, &good] {
            render_terminal(text).unwrap();
            render_png(text, 2).unwrap();
        }
        assert!(matches!(render_terminal(&big), Err(QrError::Render(_))));
        assert!(matches!(render_png(&big, 4), Err(QrError::Render(_))));
        assert!(matches!(render_png(&good, 0), Err(QrError::Render(_))));
        assert!(matches!(render_png(&good, MAX_PNG_SCALE + 1), Err(QrError::Render(_))));
        assert!(matches!(render_png(&good, u32::MAX), Err(QrError::Render(_))));
        // The largest renderable text at the largest scale still works.
        render_png(&"z".repeat(MAX_RENDER_LEN), MAX_PNG_SCALE).unwrap();
    }

    #[test]
    fn symbol_size_is_stable_across_frames() {
        let s = QrSecret::generate();
        let token = new_start_token();
        for t in [0, 9, 10, 99, 600, 86_400, 999_999_999] {
            assert_eq!(qr_symbol(&payload(&token, &s, t)).unwrap().width(), 37, "t = {t}");
        }
        // Nine digits fill version 5 exactly, and the encoder's choice depends on where digits
        // fall in the random token and code: about one session in eleven (178 of 2 000) used to
        // get the larger symbol, so try many.
        for _ in 0..500 {
            let p = payload(&new_start_token(), &QrSecret::generate(), 999_999_999);
            assert_eq!(qr_symbol(&p).unwrap().width(), 37, "{p}");
        }
        // Ten digits of t may need the next version; it still renders.
        assert!(qr_symbol(&payload(&token, &s, MAX_ELAPSED_SECS)).is_ok());
    }

    fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().expect("the image fits in memory")];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_has_signature_dimensions_and_modules() {
        let p = payload(TOKEN, &test_secret(), 30);
        let symbol = qr_symbol(&p).unwrap();
        let colors = symbol.to_colors();
        let w = symbol.width();
        for scale in [1u32, 3, 8] {
            let bytes = render_png(&p, scale).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            let (width, height, pixels) = decode_png(&bytes);
            let side = (w as u32 + 8) * scale;
            assert_eq!((width, height), (side, side));
            assert_eq!(pixels.len(), (side * side) as usize);
            let s = scale as usize;
            for py in 0..side as usize {
                for px in 0..side as usize {
                    let (mx, my) = ((px / s) as isize - 4, (py / s) as isize - 4);
                    let inside = (0..w as isize).contains(&mx) && (0..w as isize).contains(&my);
                    let dark = inside && colors[my as usize * w + mx as usize] == Color::Dark;
                    assert_eq!(pixels[py * side as usize + px], if dark { 0 } else { 255 });
                }
            }
        }
    }

    /// Reads a terminal rendering back into modules (true = ink).
    fn terminal_ink(text: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?}"),
                };
                top.push(t);
                bottom.push(b);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn terminal_rendering_is_rectangular_and_faithful() {
        let p = payload(TOKEN, &test_secret(), 30);
        let symbol = qr_symbol(&p).unwrap();
        let colors = symbol.to_colors();
        let w = symbol.width();
        let size = w + 4;
        for theme in [TerminalTheme::DarkBackground, TerminalTheme::LightBackground] {
            let text = render_terminal_themed(&p, theme).unwrap();
            assert!(text.ends_with('\n'));
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), size.div_ceil(2));
            assert!(lines.iter().all(|l| l.chars().count() == size), "ragged lines");

            let ink = terminal_ink(&text);
            for (y, row) in ink.iter().enumerate() {
                for (x, &inked) in row.iter().enumerate() {
                    let dark = if y >= size {
                        // The half row below an odd-sized symbol is left as background.
                        assert!(!inked);
                        continue;
                    } else if (2..w + 2).contains(&x) && (2..w + 2).contains(&y) {
                        colors[(y - 2) * w + (x - 2)] == Color::Dark
                    } else {
                        false // quiet zone
                    };
                    let expect = match theme {
                        TerminalTheme::DarkBackground => !dark,
                        TerminalTheme::LightBackground => dark,
                    };
                    assert_eq!(inked, expect, "{theme:?} at ({x},{y})");
                }
            }
        }
        assert_eq!(render_terminal(&p).unwrap(), render_terminal_themed(&p, TerminalTheme::default()).unwrap());
    }

    /// What zbarimg reads from `text` rendered as a PNG at `scale` and saved at `path`.
    fn zbar_read(path: &std::path::Path, text: &str, scale: u32) -> String {
        std::fs::write(path, render_png(text, scale).unwrap()).unwrap();
        let out = std::process::Command::new("zbarimg")
            .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "zbarimg failed: {}", String::from_utf8_lossy(&out.stderr));
        let decoded = String::from_utf8(out.stdout).unwrap();
        decoded.strip_suffix('\n').unwrap_or(&decoded).to_owned()
    }

    #[test]
    fn png_decodes_back_to_payload_with_zbarimg() {
        if std::process::Command::new("zbarimg").arg("--version").output().is_err() {
            println!("note: zbarimg not installed (Debian package zbar-tools); skipping QR decode test");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = QrSecret::generate();
        let token = new_start_token();
        for (t, scale) in [(0u64, 4u32), (30, 3), (86_400, 6), (MAX_ELAPSED_SECS, 4)] {
            let p = payload(&token, &secret, t);
            let decoded = zbar_read(&dir.path().join(format!("qr-{t}.png")), &p, scale);
            assert_eq!(decoded, p);
            // And what the scanner read verifies.
            let scanned = parse(&decoded).unwrap();
            assert_eq!(verify(&scanned, &secret, t, 2, MAX_ELAPSED_SECS), Ok(t));
        }
        // A payload that only fits version 5 as one byte-mode segment scans as well.
        let t = 999_999_999;
        let (secret, p) = std::iter::repeat_with(|| {
            let secret = QrSecret::generate();
            let p = payload(&new_start_token(), &secret, t);
            (secret, p)
        })
        .find(|(_, p)| QrCode::with_version(p, Version::Normal(MIN_QR_VERSION), EcLevel::M).is_err())
        .unwrap();
        assert_eq!(zbar_read(&dir.path().join("qr-byte-mode.png"), &p, 4), p);
        assert_eq!(verify(&parse(&p).unwrap(), &secret, t, 2, MAX_ELAPSED_SECS), Ok(t));
    }
}
