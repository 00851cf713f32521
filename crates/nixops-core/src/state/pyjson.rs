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

/// Append `s` as a JSON string literal with Python's `ensure_ascii=True` escaping.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    // Runs of plain bytes are copied in one go; they are skipped 16 at a time
    // (a test without early exit, which the compiler vectorises).
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(block) = bytes.get(i..i + 16) {
            if block.iter().fold(true, |ok, &b| ok & is_plain_byte(b)) {
                i += 16;
                continue;
            }
        }
        if is_plain_byte(bytes[i]) {
            i += 1;
            continue;
        }
        // `i` is a char boundary: plain bytes are ASCII and escapes take whole chars.
        out.push_str(&s[run..i]);
        let short = match bytes[i] {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            _ => None,
        };
        if let Some(escape) = short {
            // The common escapes, without decoding a char.
            out.push_str(escape);
            i += 1;
            run = i;
            continue;
        }
        let c = s[i..]
            .chars()
            .next()
            .expect("invariant: i is a char boundary inside s");
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
        i += c.len_utf8();
        run = i;
    }
    out.push_str(&s[run..]);
    out.push('"');
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
    fn escapes_like_python_ensure_ascii() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\te\u{1}\u{7f}é€😀/");
        assert_eq!(
            out,
            r#""a\"b\\c\nd\te\u0001\u007f\u00e9\u20ac\ud83d\ude00/""#
        );
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
