//! Nested attribute templates: `CKA_WRAP_TEMPLATE` and `CKA_UNWRAP_TEMPLATE`, whose value is
//! itself an array of `CK_ATTRIBUTE`. cryptoki 0.12 has no variant for them, so the array is
//! laid out here by hand and passed as a vendor-defined attribute carrying raw bytes.
//!
//! A `CK_ATTRIBUTE` is `{ CK_ULONG type; void *pValue; CK_ULONG ulValueLen; }`. On every Unix
//! target `CK_ULONG` (C `unsigned long`) and a pointer are both one machine word, so an entry
//! is three native-endian words with no padding. `pValue` holds the address of a value owned
//! by the [`Nested`]: taking an address is safe Rust, and the module reads it only during the
//! PKCS#11 call the attribute is passed to, while the `Nested` is alive (the callers keep it in
//! scope across that call).

use std::mem::size_of;
use std::os::raw::c_ulong;

use cryptoki::object::{Attribute, AttributeType};

use super::HsmError;

/// `CKA_WRAP_TEMPLATE` (`CKF_ARRAY_ATTRIBUTE | 0x211`).
pub(crate) const CKA_WRAP_TEMPLATE: c_ulong = 0x4000_0211;
/// `CKA_UNWRAP_TEMPLATE` (`CKF_ARRAY_ATTRIBUTE | 0x212`).
pub(crate) const CKA_UNWRAP_TEMPLATE: c_ulong = 0x4000_0212;

/// One machine word: the size of `CK_ULONG` and of a pointer.
const WORD: usize = size_of::<usize>();
const _: () = assert!(size_of::<c_ulong>() == WORD, "CK_ATTRIBUTE layout assumes an LP64 or ILP32 Unix target");

/// A nested template ready to be passed as one attribute.
pub(crate) struct Nested {
    /// The values the entries point at. Boxed, so they stay put when the `Nested` moves; only
    /// kept alive, never read from Rust.
    _values: Vec<Box<[u8]>>,
    /// The `CK_ATTRIBUTE` array, pointing into `_values`.
    array: Vec<u8>,
}

impl Nested {
    /// Lays out `attributes` (boolean attributes and `CKA_CLASS` only: what key templates
    /// restrict) as a `CK_ATTRIBUTE` array.
    pub(crate) fn new(attributes: &[Attribute]) -> Result<Nested, HsmError> {
        let mut values = Vec::with_capacity(attributes.len());
        let mut array = Vec::with_capacity(attributes.len() * 3 * WORD);
        for attribute in attributes {
            let value = raw_value(attribute).ok_or_else(|| {
                HsmError::BadData(format!("{:?} cannot go into a nested template", attribute.attribute_type()))
            })?;
            array.extend_from_slice(&c_ulong::from(attribute.attribute_type()).to_ne_bytes());
            array.extend_from_slice(&(value.as_ptr() as usize).to_ne_bytes());
            array.extend_from_slice(&(value.len() as c_ulong).to_ne_bytes());
            values.push(value);
        }
        Ok(Nested { _values: values, array })
    }

    /// The template as the attribute `kind` ([`CKA_WRAP_TEMPLATE`] or [`CKA_UNWRAP_TEMPLATE`]).
    /// It points into `self`: keep `self` alive until the call that takes it has returned.
    pub(crate) fn attribute(&self, kind: c_ulong) -> Attribute {
        Attribute::VendorDefined((AttributeType::VendorDefined(kind), self.array.clone()))
    }
}

/// The value bytes of a boolean attribute (`CK_BBOOL`) or of `CKA_CLASS` (`CK_ULONG`).
fn raw_value(attribute: &Attribute) -> Option<Box<[u8]>> {
    let flag = match attribute {
        Attribute::Class(class) => return Some(Box::from(c_ulong::from(*class).to_ne_bytes())),
        Attribute::Token(b)
        | Attribute::Private(b)
        | Attribute::Sensitive(b)
        | Attribute::Extractable(b)
        | Attribute::AlwaysSensitive(b)
        | Attribute::Local(b)
        | Attribute::Sign(b)
        | Attribute::Decrypt(b)
        | Attribute::Derive(b)
        | Attribute::Unwrap(b)
        | Attribute::Copyable(b)
        | Attribute::Modifiable(b) => *b,
        _ => return None,
    };
    Some(Box::from([u8::from(flag)]))
}

/// How many entries a nested template of `size` bytes holds, the size being what
/// `C_GetAttributeValue` reports (cryptoki 0.12 cannot return the value itself: it refuses
/// array attribute types when converting the answer).
pub(crate) fn entries(size: usize) -> usize {
    size / (3 * WORD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::object::ObjectClass;

    #[test]
    fn entries_are_three_words_pointing_at_owned_values() {
        let nested = Nested::new(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Extractable(false)]).unwrap();
        let Attribute::VendorDefined((AttributeType::VendorDefined(kind), bytes)) =
            nested.attribute(CKA_UNWRAP_TEMPLATE)
        else {
            panic!("a vendor-defined attribute");
        };
        assert_eq!(kind, CKA_UNWRAP_TEMPLATE);
        assert_eq!(bytes.len(), 2 * 3 * WORD);
        assert_eq!(entries(bytes.len()), 2);
        let word = |i: usize| usize::from_ne_bytes(bytes[i * WORD..(i + 1) * WORD].try_into().unwrap());
        assert_eq!(word(0), c_ulong::from(AttributeType::Class) as usize);
        assert_eq!(word(1), nested._values[0].as_ptr() as usize);
        assert_eq!(word(2), WORD, "CKA_CLASS is a CK_ULONG");
        assert_eq!(word(3), c_ulong::from(AttributeType::Extractable) as usize);
        assert_eq!(word(4), nested._values[1].as_ptr() as usize);
        assert_eq!(word(5), 1, "a CK_BBOOL");
        assert_eq!(nested._values[1][..], [0]);
    }

    #[test]
    fn attributes_that_are_not_flags_are_refused() {
        assert!(Nested::new(&[Attribute::Label(b"x".to_vec())]).is_err());
    }
}
