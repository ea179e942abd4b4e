//! A minimal, dependency-free PDF 1.7 writer for printable application forms (offline path) and
//! sandbox e-invoices.
//!
//! Text is usually Chinese, so everything is set in the predefined CJK font `STSong-Light` with the
//! `UniGB-UCS2-H` CMap: every PDF viewer supplies it, nothing is embedded, and strings are written
//! as hex UTF-16BE. Characters outside the Basic Multilingual Plane become `?`.
//!
//! Layout is deliberately simple: an A4 page, the title at the top, then each section heading with
//! its rows as `label: value` lines, wrapped by character count (ASCII counts as half a Chinese
//! character), new pages as needed and a `page N / M` footer. The output carries no timestamps, so
//! the same document always renders to the same bytes.

use std::fmt::Write as _;

/// A document: a title and sections of label/value rows.
pub struct Document {
    /// Shown at the top.
    pub title: String,
    /// In order.
    pub sections: Vec<Section>,
}

/// A heading and its rows.
pub struct Section {
    /// Section heading.
    pub heading: String,
    /// Label and value pairs.
    pub rows: Vec<(String, String)>,
}

/// A4 width in points.
const PAGE_W: i32 = 595;
/// A4 height in points.
const PAGE_H: i32 = 842;
/// Left, right and top margin in points.
const MARGIN: i32 = 50;
/// Lowest baseline allowed for body text; the footer sits below it.
const BOTTOM: i32 = 60;
/// Baseline of the page footer.
const FOOTER_Y: i32 = 30;

/// Font size and line advance of one kind of line.
#[derive(Clone, Copy)]
struct Style {
    size: i32,
    lead: i32,
}

const TITLE: Style = Style { size: 18, lead: 28 };
const HEADING: Style = Style { size: 13, lead: 22 };
const BODY: Style = Style { size: 11, lead: 16 };
const FOOTER: Style = Style { size: 9, lead: 0 };
/// Extra space above a section heading.
const HEADING_GAP: i32 = 8;
/// Indent of a row's continuation lines, in half-width columns.
const CONTINUATION_COLS: usize = 4;

/// Renders the document as PDF bytes.
pub fn render(doc: &Document) -> Vec<u8> {
    let pages = layout(doc);
    write_pdf(&doc.title, &pages)
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

/// One line of text placed on a page; `text` is already sanitised.
struct Line {
    x: i32,
    y: i32,
    size: i32,
    text: String,
}

/// Places lines top to bottom, starting a new page when the current one is full.
struct Layout {
    pages: Vec<Vec<Line>>,
    /// Baseline of the last line placed (the top margin on a fresh page).
    y: i32,
}

impl Layout {
    /// Starts with one empty page, so even an empty document has a page.
    fn new() -> Self {
        Layout { pages: vec![Vec::new()], y: PAGE_H - MARGIN }
    }

    /// True when nothing has been placed on the current page yet.
    fn at_page_top(&self) -> bool {
        self.y == PAGE_H - MARGIN
    }

    /// Starts a new page unless `height` more points fit on the current one.
    fn ensure(&mut self, height: i32) {
        if self.y - height < BOTTOM && !self.at_page_top() {
            self.pages.push(Vec::new());
            self.y = PAGE_H - MARGIN;
        }
    }

    /// Places one line `indent` points right of the margin.
    fn put(&mut self, style: Style, indent: i32, text: String) {
        self.ensure(style.lead);
        self.y -= style.lead;
        let line = Line { x: MARGIN + indent, y: self.y, size: style.size, text };
        self.pages.last_mut().expect("layout always has a page").push(line);
    }
}

/// Lays the whole document out into pages of lines.
fn layout(doc: &Document) -> Vec<Vec<Line>> {
    let mut l = Layout::new();
    for line in wrap(&sanitise(&doc.title), columns(TITLE.size), columns(TITLE.size)) {
        l.put(TITLE, 0, line);
    }
    for section in &doc.sections {
        layout_heading(&mut l, &section.heading);
        for (label, value) in &section.rows {
            layout_row(&mut l, label, value);
        }
    }
    l.pages
}

/// Places a section heading, keeping it on the same page as its first row.
fn layout_heading(l: &mut Layout, heading: &str) {
    l.ensure(HEADING_GAP + HEADING.lead + BODY.lead);
    if !l.at_page_top() {
        l.y -= HEADING_GAP;
    }
    for line in wrap(&sanitise(heading), columns(HEADING.size), columns(HEADING.size)) {
        l.put(HEADING, 0, line);
    }
}

/// Places one `label: value` row; value line breaks are kept and long lines wrap with an indent.
fn layout_row(l: &mut Layout, label: &str, value: &str) {
    let full = columns(BODY.size);
    let indent_pt = CONTINUATION_COLS as i32 * BODY.size / 2;
    let text = format!("{label}: {value}");
    for (p, paragraph) in text.split('\n').enumerate() {
        let first = if p == 0 { full } else { full - CONTINUATION_COLS };
        for (i, line) in wrap(&sanitise(paragraph), first, full - CONTINUATION_COLS).into_iter().enumerate() {
            let indent = if p == 0 && i == 0 { 0 } else { indent_pt };
            l.put(BODY, indent, line);
        }
    }
}

/// Half-width columns that fit between the margins at font size `size`.
fn columns(size: i32) -> usize {
    ((PAGE_W - 2 * MARGIN) * 2 / size) as usize
}

/// Width of a character in half-width columns: printable ASCII is half-width, the rest full-width.
fn char_cols(c: char) -> usize {
    if (' '..='~').contains(&c) {
        1
    } else {
        2
    }
}

/// Replaces what the font cannot show: control characters become spaces, characters outside the
/// BMP (which UCS-2 cannot encode) become `?`.
fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if u32::from(c) > 0xFFFF => '?',
            c => c,
        })
        .collect()
}

/// Breaks `text` into lines of at most `first` columns, then `rest` columns. Prefers breaking at
/// a space in the second half of a line so Latin words stay whole; Chinese breaks anywhere.
fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur: Vec<char> = Vec::new();
    for c in text.chars() {
        let limit = if lines.is_empty() { first } else { rest };
        if !cur.is_empty() && width(&cur) + char_cols(c) > limit {
            let carry = split_at_space(&mut cur);
            lines.push(cur.iter().collect::<String>().trim_end().to_string());
            cur = carry;
        }
        if c == ' ' && cur.is_empty() && !lines.is_empty() {
            continue;
        }
        cur.push(c);
    }
    lines.push(cur.into_iter().collect());
    lines
}

/// Width of a run of characters in half-width columns.
fn width(chars: &[char]) -> usize {
    chars.iter().map(|&c| char_cols(c)).sum()
}

/// If the line has a space in its second half, cuts the line after it and returns the tail.
fn split_at_space(cur: &mut Vec<char>) -> Vec<char> {
    match cur.iter().rposition(|&c| c == ' ') {
        Some(i) if i >= cur.len() / 2 => cur.split_off(i + 1),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Serialisation
// ---------------------------------------------------------------------------------------------

/// Object numbers of the fixed objects; pages follow as (page, contents) pairs.
const CATALOG: usize = 1;
const PAGES: usize = 2;
const FONT: usize = 3;
const CID_FONT: usize = 4;
const DESCRIPTOR: usize = 5;
const INFO: usize = 6;
const FIRST_PAGE: usize = 7;

/// Accumulates numbered objects and remembers where each starts, for the xref table.
struct Writer {
    out: Vec<u8>,
    offsets: Vec<usize>,
}

impl Writer {
    /// Writes the header; the binary comment tells transfer tools the file is not text.
    fn new() -> Self {
        let mut out = b"%PDF-1.7\n%".to_vec();
        out.extend_from_slice(&[0xE2, 0xE3, 0xCF, 0xD3, b'\n']);
        Writer { out, offsets: Vec::new() }
    }

    /// Writes the next object; objects must be written in number order.
    fn object(&mut self, body: &[u8]) {
        self.offsets.push(self.out.len());
        let number = self.offsets.len();
        self.out.extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\nendobj\n");
    }

    /// Writes the next object as an uncompressed stream.
    fn stream(&mut self, data: &[u8]) {
        let mut body = format!("<< /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.object(&body);
    }

    /// Writes the xref table and trailer and returns the finished file.
    fn finish(mut self) -> Vec<u8> {
        let xref = self.out.len();
        let size = self.offsets.len() + 1;
        let mut tail = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for off in &self.offsets {
            let _ = writeln!(tail, "{off:010} 00000 n ");
        }
        let _ = write!(
            tail,
            "trailer\n<< /Size {size} /Root {CATALOG} 0 R /Info {INFO} 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        );
        self.out.extend_from_slice(tail.as_bytes());
        self.out
    }
}

/// Serialises laid-out pages into a complete PDF file.
fn write_pdf(title: &str, pages: &[Vec<Line>]) -> Vec<u8> {
    let mut w = Writer::new();
    let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", FIRST_PAGE + 2 * i)).collect();
    w.object(format!("<< /Type /Catalog /Pages {PAGES} 0 R >>").as_bytes());
    w.object(format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()).as_bytes());
    write_fonts(&mut w);
    let info = format!("<< /Producer (cloudca) /Title <FEFF{}> >>", utf16_hex(&sanitise(title)));
    w.object(info.as_bytes());
    for (i, page) in pages.iter().enumerate() {
        let contents = FIRST_PAGE + 2 * i + 1;
        w.object(page_dict(contents).as_bytes());
        w.stream(&content_stream(page, i + 1, pages.len()));
    }
    w.finish()
}

/// Writes the Type0 font, its CIDFont and the font descriptor (objects 3 to 5).
fn write_fonts(w: &mut Writer) {
    w.object(
        format!(
            "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H \
             /DescendantFonts [{CID_FONT} 0 R] >>"
        )
        .as_bytes(),
    );
    w.object(
        format!(
            "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light \
             /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> \
             /FontDescriptor {DESCRIPTOR} 0 R /DW 1000 /W [1 95 500] >>"
        )
        .as_bytes(),
    );
    w.object(
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-134 -254 1001 905] \
          /ItalicAngle 0 /Ascent 905 /Descent -254 /CapHeight 626 /StemV 48 >>",
    );
}

/// The page dictionary pointing at its contents stream.
fn page_dict(contents: usize) -> String {
    format!(
        "<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
         /Resources << /Font << /F1 {FONT} 0 R >> >> /Contents {contents} 0 R >>"
    )
}

/// Drawing operators for one page's lines plus its `page N / M` footer.
fn content_stream(lines: &[Line], number: usize, total: usize) -> Vec<u8> {
    let mut s = String::new();
    for line in lines {
        text_op(&mut s, line.x, line.y, line.size, &line.text);
    }
    let footer = format!("page {number} / {total}");
    let footer_w = (width(&footer.chars().collect::<Vec<_>>()) as i32) * FOOTER.size / 2;
    text_op(&mut s, (PAGE_W - footer_w) / 2, FOOTER_Y, FOOTER.size, &footer);
    s.into_bytes()
}

/// Appends one positioned text line.
fn text_op(s: &mut String, x: i32, y: i32, size: i32, text: &str) {
    let _ = writeln!(s, "BT /F1 {size} Tf {x} {y} Td <{}> Tj ET", utf16_hex(text));
}

/// Hex of the UTF-16BE encoding, as `UniGB-UCS2-H` expects.
fn utf16_hex(text: &str) -> String {
    let mut hex = String::with_capacity(text.len() * 4);
    for unit in text.encode_utf16() {
        let _ = write!(hex, "{unit:04X}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        Document {
            title: "数字证书申请表 Certificate application".into(),
            sections: vec![
                Section {
                    heading: "申请单位".into(),
                    rows: vec![
                        ("单位名称".into(), "北京某某科技有限公司".into()),
                        ("统一社会信用代码".into(), "91110000802100433B".into()),
                    ],
                },
                Section { heading: "经办人".into(), rows: vec![("姓名".into(), "张三".into())] },
            ],
        }
    }

    fn long_document() -> Document {
        let rows = (0..120).map(|i| (format!("第{i}项"), "很长的说明文字".repeat(12))).collect();
        Document { title: "长文档".into(), sections: vec![Section { heading: "明细".into(), rows }] }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    /// Parses `startxref` and the xref table; returns (xref offset, object offsets).
    fn xref(pdf: &[u8]) -> (usize, Vec<usize>) {
        let text = String::from_utf8_lossy(pdf);
        let sx = text.rfind("startxref\n").unwrap();
        let xref_off: usize = text[sx + 10..].lines().next().unwrap().parse().unwrap();
        let table = String::from_utf8_lossy(&pdf[xref_off..]);
        let mut lines = table.lines().skip(1);
        let size: usize = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let entries: Vec<&str> = lines.take(size).collect();
        assert_eq!(entries[0], "0000000000 65535 f ");
        let offs = entries[1..].iter().map(|e| e[..10].parse().unwrap()).collect();
        (xref_off, offs)
    }

    #[test]
    fn header_and_trailer() {
        let pdf = render(&sample());
        assert!(pdf.starts_with(b"%PDF-1.7"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        assert!(find(&pdf, b"/Producer (cloudca)").is_some());
        assert!(find(&pdf, b"/CreationDate").is_none());
        assert!(find(&pdf, b"/BaseFont /STSong-Light /Encoding /UniGB-UCS2-H").is_some());
    }

    #[test]
    fn xref_offsets_point_at_objects() {
        for doc in [sample(), long_document()] {
            let pdf = render(&doc);
            let (xref_off, offs) = xref(&pdf);
            assert!(pdf[xref_off..].starts_with(b"xref\n"));
            for (i, off) in offs.iter().enumerate() {
                let head = format!("{} 0 obj\n", i + 1);
                assert!(pdf[*off..].starts_with(head.as_bytes()), "object {}", i + 1);
            }
            let trailer = format!("/Size {} /Root 1 0 R", offs.len() + 1);
            assert!(find(&pdf, trailer.as_bytes()).is_some());
        }
    }

    #[test]
    fn stream_lengths_are_exact() {
        let pdf = render(&long_document());
        let mut streams = 0;
        let mut from = 0;
        while let Some(at) = find(&pdf[from..], b"<< /Length ").map(|i| from + i) {
            let digits = &pdf[at + 11..];
            let len: usize = std::str::from_utf8(&digits[..find(digits, b" ").unwrap()]).unwrap().parse().unwrap();
            let start = at + find(&pdf[at..], b"stream\n").unwrap() + 7;
            assert!(pdf[start + len..].starts_with(b"\nendstream"));
            streams += 1;
            from = start;
        }
        assert!(streams > 1);
    }

    #[test]
    fn long_document_has_several_pages_with_footers() {
        let pdf = render(&long_document());
        let pages = count(&pdf, b"/Type /Page ");
        assert_eq!(count(&pdf, b"/Type /Page") - count(&pdf, b"/Type /Pages"), pages);
        assert!(pages >= 3, "{pages} pages");
        let footer = format!("page {pages} / {pages}");
        assert!(find(&pdf, utf16_hex(&footer).as_bytes()).is_some());
        assert!(find(&pdf, format!("/Count {pages}").as_bytes()).is_some());
        assert_eq!(count(&render(&sample()), b"/Type /Page "), 1);
    }

    #[test]
    fn chinese_text_is_utf16be_hex() {
        let pdf = render(&sample());
        // 张三 = U+5F20 U+4E09; 申请单位 = U+7533 U+8BF7 U+5355 U+4F4D.
        assert!(find(&pdf, b"5F204E09").is_some());
        assert!(find(&pdf, b"<75338BF753554F4D>").is_some());
        assert_eq!(utf16_hex(&sanitise("a😀")), "0061003F");
    }

    #[test]
    fn deterministic() {
        assert_eq!(render(&sample()), render(&sample()));
        assert_eq!(render(&long_document()), render(&long_document()));
    }

    #[test]
    fn empty_document_has_one_page() {
        let pdf = render(&Document { title: String::new(), sections: Vec::new() });
        assert_eq!(count(&pdf, b"/Type /Page "), 1);
        assert!(find(&pdf, utf16_hex("page 1 / 1").as_bytes()).is_some());
    }

    #[test]
    fn wrapping_respects_width() {
        let lines = wrap(&"中".repeat(100), 90, 86);
        assert_eq!(lines[0].chars().count(), 45);
        assert!(lines[1..].iter().all(|l| width(&l.chars().collect::<Vec<_>>()) <= 86));
        assert_eq!(lines.concat(), "中".repeat(100));
        let words = wrap("alpha beta gamma delta", 12, 12);
        assert_eq!(words, vec!["alpha beta", "gamma delta"]);
        assert_eq!(wrap("", 10, 10), vec![String::new()]);
    }

    #[test]
    fn sanitise_replaces_unshowable() {
        assert_eq!(sanitise("a\tb😀c"), "a b?c");
    }
}
