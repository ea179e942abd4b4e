//! Draws the order query's random code (随机码, [`crate::ra::Challenge`]) as a PNG for an
//! `img` with a `data:` URL: no script, nothing fetched, and no text in the page a script could
//! copy. Glyphs are a 5×7 bitmap font, scaled, each shifted at random, over random dots and
//! strokes. A determined bot reads it, as it reads any picture code; what it buys is that each
//! SMS the fallbacks send costs a fresh picture read, and the SMS limits do the rest.

use base64::Engine;
use rand::Rng;

/// Pixels per font dot.
const SCALE: usize = 4;
/// Room for each character, in pixels.
const CELL: usize = 5 * SCALE + 8;
/// Picture height.
const HEIGHT: usize = 7 * SCALE + 16;

/// The 5×7 glyph of a character of [`crate::ra`]'s random-code alphabet (rows top down, the
/// low five bits left to right); None for any other character.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        'A' => [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        'C' => [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
        'D' => [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110],
        'E' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        'F' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        'H' => [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        'J' => [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
        'K' => [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
        'M' => [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
        'N' => [0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b10001],
        'P' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        'R' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        'T' => [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        'U' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        'V' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
        'W' => [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b11011, 0b10001],
        'X' => [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
        'Y' => [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100],
        '3' => [0b11110, 0b00001, 0b00001, 0b01110, 0b00001, 0b00001, 0b11110],
        '4' => [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        '7' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        '9' => [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001, 0b01110],
        _ => return None,
    })
}

/// The code as a grey-scale PNG `data:` URL; None if it holds a character the font lacks or
/// the encoder fails (the page then says to reload).
pub fn data_url(code: &str) -> Option<String> {
    let mut rng = rand::rngs::OsRng;
    let width = CELL * code.chars().count() + 12;
    let mut pixels = vec![235u8; width * HEIGHT];
    for _ in 0..(width * HEIGHT / 9) {
        let i = rng.gen_range(0..pixels.len());
        pixels[i] = rng.gen_range(120..200);
    }
    for (n, c) in code.chars().enumerate() {
        let rows = glyph(c)?;
        let (x0, y0) = (6 + n * CELL + rng.gen_range(0..6), rng.gen_range(2..14));
        let ink = rng.gen_range(10..70);
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0b10000 >> col) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        pixels[(y0 + r * SCALE + dy) * width + x0 + col * SCALE + dx] = ink;
                    }
                }
            }
        }
    }
    for _ in 0..3 {
        let (mut y, slope) = (rng.gen_range(4..HEIGHT - 4) as f32, rng.gen_range(-0.25f32..0.25));
        for x in 0..width {
            y = (y + slope).clamp(0.0, (HEIGHT - 1) as f32);
            pixels[y as usize * width + x] = 90;
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, u32::try_from(width).ok()?, HEIGHT as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_of_the_alphabet_is_drawn_and_others_are_not() {
        for c in "ACDEFHJKMNPRTUVWXY3479".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
        let url = data_url("AC3X9").unwrap();
        assert!(url.starts_with("data:image/png;base64,"));
        assert!(!url.contains("AC3X9"));
        assert!(data_url("A0").is_none());
    }
}
