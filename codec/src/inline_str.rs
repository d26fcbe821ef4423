//! A short owned string kept inline: topic levels and filters as map keys
//! (the routing tries' levels, a session's subscription filters), where an
//! allocation per key would cost more than the key.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest string stored inline in an [`InlineStr`].
pub const INLINE_MAX: usize = 22;

/// An owned string: inline up to [`INLINE_MAX`] bytes (24 bytes in all,
/// like a `String` header), boxed beyond. Hashes and compares as its bytes,
/// so maps keyed by it are queried with `s.as_bytes()`.
#[derive(Clone)]
pub enum InlineStr {
    /// `bytes[..len]` is the string.
    Inline {
        /// Its length.
        len: u8,
        /// Its bytes, then zeros.
        bytes: [u8; INLINE_MAX],
    },
    /// A string longer than [`INLINE_MAX`].
    Boxed(Box<str>),
}

impl InlineStr {
    /// A copy of `s`.
    pub fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE_MAX => {
                let mut bytes = [0; INLINE_MAX];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Boxed(s.into()),
        }
    }

    /// The string's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Boxed(s) => s.as_bytes(),
        }
    }

    /// The string. Always valid UTF-8: it was copied whole from a `&str`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Self::Boxed(s) => s,
        }
    }
}

impl PartialEq for InlineStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for InlineStr {}

impl Hash for InlineStr {
    /// The hash of `self.as_bytes()`, as [`Borrow<[u8]>`] requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for InlineStr {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_all_read_back() {
        assert_eq!(size_of::<InlineStr>(), 24);
        let exact = "x".repeat(INLINE_MAX);
        let long = "y".repeat(INLINE_MAX + 1);
        assert!(matches!(InlineStr::new(&exact), InlineStr::Inline { .. }));
        assert!(matches!(InlineStr::new(&long), InlineStr::Boxed(_)));
        for s in ["", "é", "ünïcödé/🐦", exact.as_str(), long.as_str()] {
            let k = InlineStr::new(s);
            assert_eq!((k.as_str(), k.as_bytes()), (s, s.as_bytes()));
            assert_eq!(k, InlineStr::new(s));
        }
        assert_ne!(InlineStr::new("a"), InlineStr::new("A"));
    }
}
