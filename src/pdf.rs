//! Placeholder: being written (minimal PDF writer with CJK text).

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

/// Renders the document as PDF bytes.
pub fn render(_doc: &Document) -> Vec<u8> {
    Vec::new()
}
