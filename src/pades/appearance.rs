//! The visible seal: the rectangle checked against the page, and the widget's normal
//! appearance, a form XObject that draws the seal PNG as an RGB image XObject whose alpha
//! channel is its `/SMask` (a red seal on a transparent background stays transparent).

use std::io::Write as _;

use lopdf::{Dictionary, Object, Stream};

use super::{PadesError, Placement};

/// The rectangle `[x1 y1 x2 y2]` for `placement` on a page whose MediaBox is `media_box`,
/// or why it does not fit.
pub fn rectangle(placement: &Placement, media_box: [f64; 4]) -> Result<[f64; 4], PadesError> {
    let Placement { x, y, w, h, .. } = *placement;
    if ![x, y, w, h].iter().all(|v| v.is_finite()) || w < 1.0 || h < 1.0 {
        return Err(PadesError::Placement("x, y, w, h must be numbers, w and h at least 1 point".into()));
    }
    let [mx1, my1, mx2, my2] = media_box;
    if x < mx1 || y < my1 || x + w > mx2 || y + h > my2 {
        return Err(PadesError::Placement(format!(
            "the rectangle {x},{y} {w}x{h} is not inside the page's MediaBox [{mx1} {my1} {mx2} {my2}]"
        )));
    }
    Ok([x, y, x + w, y + h])
}

/// The seal image as an image XObject and its soft mask, both Flate-compressed.
pub struct Image {
    /// `/Subtype /Image /ColorSpace /DeviceRGB`, `/SMask` to be set by the caller.
    pub rgb: Stream,
    /// `/Subtype /Image /ColorSpace /DeviceGray`.
    pub alpha: Stream,
}

/// Decodes the PNG (any bit depth, palette or grey) to 8-bit RGB and alpha planes.
pub fn image(png_bytes: &[u8]) -> Result<Image, PadesError> {
    crate::seals::check_png(png_bytes).map_err(|e| PadesError::SealImage(e.to_string()))?;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| PadesError::SealImage(e.to_string()))?;
    let size = reader.output_buffer_size().ok_or_else(|| PadesError::SealImage("too large".into()))?;
    let mut buffer = vec![0; size];
    let frame = reader.next_frame(&mut buffer).map_err(|e| PadesError::SealImage(e.to_string()))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    let pixels = &buffer[..frame.buffer_size()];
    let mut rgb = Vec::with_capacity(width * height * 3);
    let mut alpha = Vec::with_capacity(width * height);
    for px in pixels.chunks_exact(channels) {
        match channels {
            1 => (rgb.extend_from_slice(&[px[0]; 3]), alpha.push(255)),
            2 => (rgb.extend_from_slice(&[px[0]; 3]), alpha.push(px[1])),
            3 => (rgb.extend_from_slice(px), alpha.push(255)),
            _ => (rgb.extend_from_slice(&px[..3]), alpha.push(px[3])),
        };
    }
    let plane = |data: &[u8], colour: &str| -> Result<Stream, PadesError> {
        let mut d = Dictionary::new();
        d.set("Type", Object::Name(b"XObject".to_vec()));
        d.set("Subtype", Object::Name(b"Image".to_vec()));
        d.set("Width", Object::Integer(width as i64));
        d.set("Height", Object::Integer(height as i64));
        d.set("ColorSpace", Object::Name(colour.as_bytes().to_vec()));
        d.set("BitsPerComponent", Object::Integer(8));
        d.set("Filter", Object::Name(b"FlateDecode".to_vec()));
        Ok(Stream::new(d, deflate(data)?))
    };
    Ok(Image { rgb: plane(&rgb, "DeviceRGB")?, alpha: plane(&alpha, "DeviceGray")? })
}

/// The form XObject `/AP /N`: the image `/Im0` scaled to `w` × `h` points.
pub fn form(w: f64, h: f64, image: lopdf::ObjectId) -> Stream {
    let (w, h) = (super::object::real(w), super::object::real(h));
    let mut d = Dictionary::new();
    d.set("Type", Object::Name(b"XObject".to_vec()));
    d.set("Subtype", Object::Name(b"Form".to_vec()));
    d.set("BBox", Object::Array(vec![0.into(), 0.into(), real(&w), real(&h)]));
    let mut xobjects = Dictionary::new();
    xobjects.set("Im0", Object::Reference(image));
    let mut resources = Dictionary::new();
    resources.set("XObject", Object::Dictionary(xobjects));
    d.set("Resources", Object::Dictionary(resources));
    Stream::new(d, format!("q {w} 0 0 {h} 0 0 cm /Im0 Do Q").into_bytes())
}

/// An already formatted real as an object.
fn real(text: &str) -> Object {
    text.parse::<i64>().map(Object::Integer).unwrap_or_else(|_| Object::Real(text.parse().unwrap_or(0.0)))
}

fn deflate(data: &[u8]) -> Result<Vec<u8>, PadesError> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).map_err(|e| PadesError::SealImage(e.to_string()))?;
    e.finish().map_err(|e| PadesError::SealImage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rectangle_off_the_page_is_refused() {
        let page = [0.0, 0.0, 595.0, 842.0];
        let p = |x, y, w, h| Placement { page: 1, x, y, w, h };
        assert_eq!(rectangle(&p(400.0, 60.0, 120.0, 120.0), page).unwrap(), [400.0, 60.0, 520.0, 180.0]);
        for bad in
            [p(500.0, 60.0, 120.0, 120.0), p(-1.0, 0.0, 10.0, 10.0), p(0.0, 800.0, 10.0, 50.0), p(0.0, 0.0, 0.0, 5.0)]
        {
            assert!(matches!(rectangle(&bad, page), Err(PadesError::Placement(_))), "{bad:?}");
        }
        assert!(rectangle(&p(f64::NAN, 0.0, 10.0, 10.0), page).is_err());
    }

    #[test]
    fn the_seal_png_becomes_rgb_with_an_alpha_mask() {
        let png = crate::signing::qr::render_png("seal", 2).unwrap();
        let img = image(&png).unwrap();
        assert_eq!(img.rgb.dict.get(b"ColorSpace").unwrap(), &Object::Name(b"DeviceRGB".to_vec()));
        assert_eq!(img.alpha.dict.get(b"Width").unwrap(), img.rgb.dict.get(b"Width").unwrap());
        assert!(image(b"not a png").is_err());
    }
}
