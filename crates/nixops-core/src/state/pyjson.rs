//! JSON text exactly as Python's `json.dumps` writes it.
//!
//! Owns the byte-level rendering NixOps produces: the compact default
//! (`json.dumps(x)`: separators `", "` and `": "`) used for JSON-typed state
//! attributes, and the pretty form (`indent=2, sort_keys=True`) used by `export`.
//! Both escape like `ensure_ascii=True`: every character outside printable ASCII
//! becomes `\u` and four lower-case hex digits (UTF-16 surrogate pairs above U+FFFF). It does
//! not parse JSON (serde_json does that) and does no I/O.

use std::fmt::Write as _;

/// Which Python wrote the pretty form. Python 2 (NixOps 1.x) keeps the `", "` item
/// separator with `indent`, so lines end in a space after the comma; Python 3
/// (NixOps 2.x) writes a bare `,`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyStyle {
    /// Python 2.7 `json.dumps(indent=2)`: `",␠"` at the end of continued lines.
    Python2,
    /// Python 3 `json.dumps(indent=2)`: `","` at the end of continued lines.
    Python3,
}

/// Whether byte `b` stands for itself in a JSON string literal with
/// `ensure_ascii=True`: printable ASCII other than `"` and `\`.
pub(super) fn is_plain_byte(b: u8) -> bool {
    (b.wrapping_sub(b' ') < 0x5f) & (b != b'"') & (b != b'\\')
}

/// Where JSON text goes: a `String`, or a byte buffer that is handed out as
/// bytes (so text that is known to be UTF-8 need not be checked again).
pub(super) trait JsonOut {
    fn push_text(&mut self, s: &str);
    /// Append `ascii`, which is ASCII.
    fn push_ascii(&mut self, ascii: &[u8]);
    /// Append the first `k` bytes of `block`, which are ASCII.
    fn push_ascii_prefix(&mut self, block: &[u8; 16], k: usize) {
        self.push_ascii(&block[..k]);
    }
    fn reserve_text(&mut self, n: usize);
}

impl JsonOut for String {
    fn push_text(&mut self, s: &str) {
        self.push_str(s);
    }

    fn push_ascii(&mut self, ascii: &[u8]) {
        self.push_str(std::str::from_utf8(ascii).expect("invariant: ASCII is UTF-8"));
    }

    fn reserve_text(&mut self, n: usize) {
        self.reserve(n);
    }
}

impl JsonOut for Vec<u8> {
    fn push_text(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    fn push_ascii(&mut self, ascii: &[u8]) {
        self.extend_from_slice(ascii);
    }

    /// The whole block, then cut back: a copy of a known size is a store or
    /// two, where one of `k` bytes is a call.
    fn push_ascii_prefix(&mut self, block: &[u8; 16], k: usize) {
        let len = self.len();
        self.extend_from_slice(block);
        self.truncate(len + k);
    }

    fn reserve_text(&mut self, n: usize) {
        self.reserve(n);
    }
}

/// Append `s` as a JSON string literal with Python's `ensure_ascii=True` escaping.
pub fn write_str(out: &mut String, s: &str) {
    write_str_to(out, s);
}

/// [`write_str`] to any [`JsonOut`].
pub(super) fn write_str_to(out: &mut impl JsonOut, s: &str) {
    write_utf8_to(out, s.as_bytes()).expect("invariant: a str is UTF-8");
}

/// [`write_str`] of bytes that should be UTF-8, checked on the way: one pass
/// over the bytes checks and escapes them. On an error `out` holds part of the
/// literal.
pub(super) fn write_utf8_to(
    out: &mut impl JsonOut,
    bytes: &[u8],
) -> Result<(), std::str::Utf8Error> {
    out.reserve_text(bytes.len() + 2);
    out.push_ascii(b"\"");
    write_utf8_body(out, bytes)?;
    out.push_ascii(b"\"");
    Ok(())
}

/// The bytes of `block` that are not plain ([`is_plain_byte`]), as bits (bit
/// `j` for byte `j`): a few SSE2 instructions.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
pub(super) fn escape_mask(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: an unaligned load of 16 bytes from a reference to 16 bytes reads
    // only them; the other intrinsics only compute on values. All need SSE2,
    // which is part of every x86-64 CPU.
    let bad = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // Printable ASCII, 0x20..=0x7e, moved by 0x60 becomes -128..=-34 as a
        // signed byte: anything greater is outside it.
        let outside = _mm_cmpgt_epi8(_mm_add_epi8(v, _mm_set1_epi8(0x60)), _mm_set1_epi8(-34));
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(outside, _mm_or_si128(quote, backslash)))
    };
    // Only the low 16 bits can be set.
    bad as u32
}

/// The bytes of `block` that are not plain ([`is_plain_byte`]), as bits (bit
/// `j` for byte `j`).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(super) fn escape_mask(block: &[u8; 16]) -> u32 {
    let mut mask = 0u32;
    for (j, &b) in block.iter().enumerate() {
        mask |= u32::from(!is_plain_byte(b)) << j;
    }
    mask
}

/// `rest` (fewer than 16 bytes) in a block padded with spaces, which are
/// plain. It is put together in registers from at most two overlapping loads:
/// copying the bytes into an array and loading that as one block would stall
/// the load until the copy's smaller stores retire, for every value.
#[inline]
pub(super) fn tail_block(rest: &[u8]) -> [u8; 16] {
    let n = rest.len();
    debug_assert!(n < 16, "a tail is shorter than a block");
    let word = |at: usize| -> u64 {
        u64::from_le_bytes(rest[at..at + 8].try_into().expect("invariant: 8 bytes"))
    };
    let half = |at: usize| -> u32 {
        u32::from_le_bytes(rest[at..at + 4].try_into().expect("invariant: 4 bytes"))
    };
    // The second load ends at the last byte; shifted, it supplies the bytes
    // the first one does not have.
    let bytes = if n >= 8 {
        u128::from(word(0)) | (u128::from(word(n - 8)) >> (8 * (16 - n))) << 64
    } else if n >= 4 {
        u128::from(half(0)) | (u128::from(half(n - 4)) >> (8 * (8 - n))) << 32
    } else {
        rest.iter()
            .enumerate()
            .fold(0, |v, (j, &b)| v | u128::from(b) << (8 * j))
    };
    let kept = (1u128 << (8 * n)) - 1;
    let spaces = u128::from_le_bytes([b' '; 16]);
    (bytes & kept | spaces & !kept).to_le_bytes()
}

/// Per byte, the letter of its two-character escape (`\"`, `\\`, `\n`, `\r`,
/// `\t`, `\b`, `\f`), or 0 when it has none.
const SHORT_ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

/// [`write_utf8_to`] without the quotes.
pub(super) fn write_utf8_body(
    out: &mut impl JsonOut,
    bytes: &[u8],
) -> Result<(), std::str::Utf8Error> {
    // Plain bytes (ASCII, so UTF-8) are copied 16 at a time; a block with a
    // byte to escape is copied up to that byte, which the mask tells. The last
    // bytes make a block padded with spaces (plain).
    let mut i = 0;
    loop {
        let rest = &bytes[i..];
        let (block, len) = match rest.first_chunk::<16>() {
            Some(block) => (*block, 16),
            None => (tail_block(rest), rest.len()),
        };
        let k = (escape_mask(&block).trailing_zeros() as usize).min(len);
        out.push_ascii_prefix(&block, k);
        if k == len {
            if len < 16 {
                return Ok(());
            }
            i += 16;
            continue;
        }
        i += k;
        let short = SHORT_ESCAPES[usize::from(bytes[i])];
        if short != 0 {
            // Two bytes of known length: stored directly, not copied by a call.
            out.push_ascii(&[b'\\', short]);
            i += 1;
            continue;
        }
        // Another control character, or the first byte of a non-ASCII one:
        // checked as UTF-8 here, and written as UTF-16 code units.
        let len = match bytes[i] {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        let end = (i + len).min(bytes.len());
        let c = std::str::from_utf8(&bytes[i..end])?
            .chars()
            .next()
            .expect("invariant: a non-empty str has a char");
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let mut escape = String::with_capacity(6);
            // Writing to a String cannot fail.
            let _ = write!(escape, "\\u{unit:04x}");
            out.push_text(&escape);
        }
        i = end;
    }
}

/// `json.dumps(value)` with Python's defaults (object keys in the value's order).
pub fn dumps(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_compact(&mut out, value);
    out
}

fn write_compact(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_compact(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_compact(out, v);
            }
            out.push('}');
        }
    }
}

/// A tree of nested string maps borrowing its strings, the only shape `export`
/// needs. Map entries must be sorted by key (code point order, as Python sorts).
/// `export` writes its text directly (see `transfer`); the tree is the plain model
/// its tests compare against.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON object, entries sorted by key.
    Map(Vec<(&'a str, Tree<'a>)>),
}

#[cfg(test)]
impl<'a> Tree<'a> {
    /// A map from already sorted entries plus one extra entry put in its place.
    pub fn sorted_with(
        mut entries: Vec<(&'a str, Tree<'a>)>,
        key: &'a str,
        value: Tree<'a>,
    ) -> Self {
        match entries.binary_search_by(|(k, _)| (*k).cmp(key)) {
            Ok(i) => entries[i].1 = value,
            Err(i) => entries.insert(i, (key, value)),
        }
        Tree::Map(entries)
    }
}

/// `json.dumps(tree, indent=2, sort_keys=True)` in the given Python's style, without
/// a trailing newline.
#[cfg(test)]
pub fn dumps_pretty(tree: &Tree<'_>, style: PyStyle) -> String {
    let mut out = String::new();
    write_pretty(&mut out, tree, 0, style);
    out
}

#[cfg(test)]
fn write_pretty(out: &mut String, tree: &Tree<'_>, level: usize, style: PyStyle) {
    match tree {
        Tree::Str(s) => write_str(out, s),
        Tree::Map(map) if map.is_empty() => out.push_str("{}"),
        Tree::Map(map) => {
            let sep = match style {
                PyStyle::Python2 => ", ",
                PyStyle::Python3 => ",",
            };
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                out.push('\n');
                push_indent(out, level + 1);
                write_str(out, k);
                out.push_str(": ");
                write_pretty(out, v, level + 1, style);
            }
            out.push('\n');
            push_indent(out, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
fn push_indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_block_is_the_tail_padded_with_spaces() {
        let bytes: Vec<u8> = (1..=15).map(|b| b * 17).collect();
        for n in 0..16 {
            let mut want = [b' '; 16];
            want[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(tail_block(&bytes[..n]), want, "{n} bytes");
        }
    }

    #[test]
    fn escapes_like_python_ensure_ascii() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\te\u{1}\u{7f}é€😀/");
        assert_eq!(
            out,
            r#""a\"b\\c\nd\te\u0001\u007f\u00e9\u20ac\ud83d\ude00/""#
        );
        // Long plain runs around escapes, in and out of 16-byte blocks.
        let long = format!(
            "{}\u{8}\u{c}{}\"{}",
            "x".repeat(40),
            "y".repeat(15),
            "z".repeat(17)
        );
        let mut out = String::new();
        write_str(&mut out, &long);
        assert_eq!(
            out,
            format!(
                "\"{}\\b\\f{}\\\"{}\"",
                "x".repeat(40),
                "y".repeat(15),
                "z".repeat(17)
            )
        );
    }

    #[test]
    fn bytes_are_checked_for_utf8_as_they_are_escaped() {
        let mut out = Vec::new();
        write_utf8_to(&mut out, "é€😀 plain".as_bytes()).expect("UTF-8");
        assert_eq!(out, br#""\u00e9\u20ac\ud83d\ude00 plain""#);
        for bad in [
            &b"\x80"[..],
            b"abc\xc3",
            b"\xc3(",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\xf8\x88\x80\x80\x80",
            b"0123456789abcdef\xff",
        ] {
            assert!(write_utf8_to(&mut Vec::new(), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn compact_uses_python_separators() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, "x"], "a": {"k": null, "t": true}}"#)
                .expect("test json");
        assert_eq!(dumps(&v), r#"{"b": [1, "x"], "a": {"k": null, "t": true}}"#);
    }

    #[test]
    fn pretty_matches_both_pythons() {
        let inner = vec![("a", Tree::Str("1")), ("e", Tree::Map(Vec::new()))];
        let inner = Tree::sorted_with(inner, "b", Tree::Str("2"));
        let tree = Tree::Map(vec![("u", inner)]);
        assert_eq!(
            dumps_pretty(&tree, PyStyle::Python3),
            "{\n  \"u\": {\n    \"a\": \"1\",\n    \"b\": \"2\",\n    \"e\": {}\n  }\n}"
        );
        assert_eq!(
            dumps_pretty(&tree, PyStyle::Python2),
            "{\n  \"u\": {\n    \"a\": \"1\", \n    \"b\": \"2\", \n    \"e\": {}\n  }\n}"
        );
    }
}
