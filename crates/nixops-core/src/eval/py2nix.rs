//! Rendering of values as Nix expressions, byte-compatible with NixOps'
//! `py2nix` (used for `show-physical`, `physical.nix` and `--arg` values).
//!
//! Pure: it owns the value model ([`NixValue`]), the layout rules and the
//! merge of physical fragments ([`merge`]). It runs nothing and reads nothing.

use std::collections::BTreeMap;

/// A value to render as Nix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NixValue {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<NixValue>),
    /// An attribute set; rendered with keys sorted.
    Attrs(BTreeMap<String, NixValue>),
    /// Nix text inserted verbatim (e.g. `<nixpkgs>`, `lib.mkDefault "x"`).
    Raw(String),
    /// `head: body`, e.g. `{ config, lib, pkgs, ... }: { ... }`.
    Function {
        head: String,
        body: Box<NixValue>,
    },
    /// `( fun arg )`.
    Call {
        fun: Box<NixValue>,
        arg: Box<NixValue>,
    },
}

impl NixValue {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        NixValue::Str(s.into())
    }

    /// Raw Nix text.
    pub fn raw(s: impl Into<String>) -> Self {
        NixValue::Raw(s.into())
    }

    /// An empty attribute set.
    pub fn attrs() -> Self {
        NixValue::Attrs(BTreeMap::new())
    }

    /// `value` nested under the attribute path `path` (NixOps' tuple keys):
    /// `at(&["a", "b"], v)` is `{ a = { b = v; }; }`.
    pub fn at(path: &[&str], value: NixValue) -> Self {
        path.iter().rev().fold(value, |acc, key| {
            let mut m = BTreeMap::new();
            m.insert((*key).to_owned(), acc);
            NixValue::Attrs(m)
        })
    }
}

/// Two physical fragments could not be merged (NixOps' `nixmerge`).
#[derive(Debug, thiserror::Error)]
#[error("unable to merge {left} with {right}")]
pub struct MergeError {
    pub left: &'static str,
    pub right: &'static str,
}

fn type_name(v: &NixValue) -> &'static str {
    match v {
        NixValue::Null => "null",
        NixValue::Bool(_) => "bool",
        NixValue::Int(_) => "int",
        NixValue::Str(_) => "string",
        NixValue::List(_) => "list",
        NixValue::Attrs(_) => "attrset",
        NixValue::Raw(_) => "raw value",
        NixValue::Function { .. } => "function",
        NixValue::Call { .. } => "call",
    }
}

/// Merge `b` into `a`: attribute sets recursively, lists concatenated without
/// duplicates, equal values kept; anything else is a conflict.
pub fn merge(a: NixValue, b: NixValue) -> Result<NixValue, MergeError> {
    match (a, b) {
        (NixValue::Attrs(mut x), NixValue::Attrs(y)) => {
            for (k, v) in y {
                let merged = match x.remove(&k) {
                    Some(old) => merge(old, v)?,
                    None => v,
                };
                x.insert(k, merged);
            }
            Ok(NixValue::Attrs(x))
        }
        (NixValue::List(mut x), NixValue::List(y)) => {
            for v in y {
                if !x.contains(&v) {
                    x.push(v);
                }
            }
            Ok(NixValue::List(x))
        }
        (a, b) if a == b => Ok(a),
        (a, b) => Err(MergeError {
            left: type_name(&a),
            right: type_name(&b),
        }),
    }
}

/// The layout tree: a verbatim atom or a container with children.
enum Node {
    Raw(String),
    Container {
        prefix: String,
        children: Vec<Node>,
        suffix: String,
        /// What to print instead when the container is inlined (indented strings).
        inline_variant: Option<String>,
    },
}

const MAX_WIDTH: usize = 80;

impl Node {
    fn min_length(&self) -> usize {
        match self {
            Node::Raw(s) => s.chars().count(),
            Node::Container {
                prefix,
                children,
                suffix,
                ..
            } => {
                prefix.chars().count()
                    + suffix.chars().count()
                    + 1
                    + children.len()
                    + children.iter().map(Node::min_length).sum::<usize>()
            }
        }
    }

    fn indent(&self, level: usize, inline: bool) -> String {
        let ind = "  ".repeat(level);
        match self {
            Node::Raw(s) => format!("{ind}{s}"),
            Node::Container {
                prefix,
                children,
                suffix,
                inline_variant,
            } => {
                let inline = inline || level * 2 + self.min_length() < MAX_WIDTH;
                if inline {
                    if let Some(v) = inline_variant {
                        return format!("{ind}{v}");
                    }
                    let lines: Vec<String> = children.iter().map(|c| c.indent(0, true)).collect();
                    format!("{ind}{prefix} {} {suffix}", lines.join(" "))
                } else {
                    let lines: Vec<String> = children
                        .iter()
                        .map(|c| c.indent(level + 1, false))
                        .collect();
                    format!("{ind}{prefix}\n{}\n{ind}{suffix}", lines.join("\n"))
                }
            }
        }
    }
}

fn enclose(node: Node, pre: &str, post: &str) -> Node {
    match node {
        Node::Raw(s) => Node::Raw(format!("{pre}{s}{post}")),
        Node::Container {
            prefix,
            children,
            suffix,
            inline_variant,
        } => Node::Container {
            prefix: format!("{pre}{prefix}"),
            children,
            suffix: format!("{suffix}{post}"),
            inline_variant: inline_variant.map(|v| format!("{pre}{v}{post}")),
        },
    }
}

/// `s` as a double-quoted Nix string literal.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An attribute name: bare when it is an identifier, else quoted.
pub fn attr_name(key: &str) -> String {
    let bare = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if bare {
        key.to_owned()
    } else {
        quote_string(key)
    }
}

fn enc_str(s: &str) -> Node {
    let quoted = quote_string(s);
    match s.strip_suffix('\n') {
        Some(body) => {
            let body = body
                .replace("''", "'''")
                .replace("${", "''${")
                .replace('\t', "'\\t");
            Node::Container {
                prefix: "''".to_owned(),
                children: split_lines(&body)
                    .map(|l| Node::Raw(l.to_owned()))
                    .collect(),
                suffix: "''".to_owned(),
                inline_variant: Some(quoted),
            }
        }
        None => Node::Raw(quoted),
    }
}

/// Lines as Python's `str.splitlines()` gives them for `\n`-separated text:
/// no trailing empty line for a final newline, nothing for "".
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let empty = s.is_empty();
    s.split('\n').filter(move |_| !empty)
}

fn enc(value: &NixValue, in_list: bool) -> Node {
    match value {
        NixValue::Null => Node::Raw("null".to_owned()),
        NixValue::Bool(b) => Node::Raw(b.to_string()),
        NixValue::Int(n) if *n < 0 => Node::Raw(format!("builtins.sub 0 {}", n.unsigned_abs())),
        NixValue::Int(n) => Node::Raw(n.to_string()),
        NixValue::Str(s) => enc_str(s),
        NixValue::Raw(s) => {
            if in_list && s.chars().any(char::is_whitespace) {
                Node::Raw(format!("({s})"))
            } else {
                Node::Raw(s.clone())
            }
        }
        NixValue::List(items) => {
            if items.is_empty() {
                return Node::Raw("[]".to_owned());
            }
            let (mut pre, mut post) = ("[".to_owned(), "]".to_owned());
            let mut items = items;
            while let [NixValue::List(inner)] = items.as_slice() {
                items = inner;
                pre.push_str(" [");
                post.push_str(" ]");
            }
            Node::Container {
                prefix: pre,
                children: items.iter().map(|v| enc(v, true)).collect(),
                suffix: post,
                inline_variant: None,
            }
        }
        NixValue::Attrs(map) => {
            if map.is_empty() {
                return Node::Raw("{}".to_owned());
            }
            let children = map
                .iter()
                .map(|(key, value)| {
                    let mut name = attr_name(key);
                    let mut value = value;
                    // A chain of single-attribute sets collapses to `a.b.c = ...;`.
                    while let NixValue::Attrs(inner) = value {
                        let mut it = inner.iter();
                        match (it.next(), it.next()) {
                            (Some((k, v)), None) => {
                                name.push('.');
                                name.push_str(&attr_name(k));
                                value = v;
                            }
                            _ => break,
                        }
                    }
                    enclose(enc(value, false), &format!("{name} = "), ";")
                })
                .collect();
            Node::Container {
                prefix: "{".to_owned(),
                children,
                suffix: "}".to_owned(),
                inline_variant: None,
            }
        }
        NixValue::Function { head, body } => {
            let node = enclose(enc(body, false), &format!("{head}: "), "");
            if in_list {
                enclose(node, "(", ")")
            } else {
                node
            }
        }
        NixValue::Call { fun, arg } => {
            let node = Node::Container {
                prefix: "(".to_owned(),
                children: vec![enc(fun, false), enc(arg, false)],
                suffix: ")".to_owned(),
                inline_variant: None,
            };
            if in_list {
                enclose(node, "(", ")")
            } else {
                node
            }
        }
    }
}

/// Render `value` as Nix. `inline` forces one line (for `--arg` values).
pub fn py2nix(value: &NixValue, inline: bool) -> String {
    enc(value, false).indent(0, inline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: Vec<(&str, NixValue)>) -> NixValue {
        NixValue::Attrs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn inline_scalars_and_negative_ints() {
        let v = attrs(vec![
            ("a", NixValue::Int(1)),
            ("b", NixValue::Int(-2)),
            ("c", NixValue::Bool(true)),
            ("d", NixValue::Null),
        ]);
        assert_eq!(
            py2nix(&v, true),
            "{ a = 1; b = builtins.sub 0 2; c = true; d = null; }"
        );
    }

    #[test]
    fn list_with_raw_value() {
        let v = NixValue::List(vec![NixValue::str("/a/b.nix"), NixValue::raw("<x>")]);
        assert_eq!(py2nix(&v, true), r#"[ "/a/b.nix" <x> ]"#);
        let v = NixValue::List(vec![NixValue::raw("lib.mkDefault 1")]);
        assert_eq!(py2nix(&v, true), "[ (lib.mkDefault 1) ]");
    }

    #[test]
    fn string_escapes() {
        let v = NixValue::str("a\\b \"q\" ${x} $y\tz\nw");
        assert_eq!(py2nix(&v, true), r#""a\\b \"q\" \${x} $y\tz\nw""#);
    }

    #[test]
    fn string_ending_in_newline_is_indented_when_long() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc ${x} ''q''\n\tt\n-----END OPENSSH PRIVATE KEY-----\n";
        let v = attrs(vec![("k", NixValue::str(text))]);
        assert_eq!(
            py2nix(&v, false),
            "{\n  k = ''\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    abc ''${x} '''q'''\n    '\\tt\n    -----END OPENSSH PRIVATE KEY-----\n  '';\n}"
        );
        // Short enough: the quoted variant is used.
        assert_eq!(py2nix(&NixValue::str("a\n"), false), r#""a\n""#);
    }

    #[test]
    fn attr_paths_collapse_and_keys_sort_and_quote() {
        let v = merge(
            NixValue::at(&["b", "c", "d"], NixValue::Int(1)),
            NixValue::at(&["a-b", "x"], NixValue::Bool(false)),
        )
        .expect("invariant: disjoint");
        let v = merge(v, NixValue::at(&["1x"], NixValue::Null)).expect("invariant: disjoint");
        assert_eq!(
            py2nix(&v, true),
            r#"{ "1x" = null; "a-b".x = false; b.c.d = 1; }"#
        );
    }

    #[test]
    fn multi_line_layout_breaks_long_containers() {
        let long: Vec<NixValue> = (0..12)
            .map(|i| NixValue::str(format!("item-{i}")))
            .collect();
        let v = attrs(vec![
            ("xs", NixValue::List(long)),
            ("y", NixValue::List(vec![])),
        ]);
        let out = py2nix(&v, false);
        assert!(out.starts_with("{\n  xs = [\n    \"item-0\"\n"), "{out}");
        assert!(out.ends_with("  ];\n  y = [];\n}"), "{out}");
        // inline forces one line whatever the width.
        assert!(!py2nix(&v, true).contains('\n'));
    }

    #[test]
    fn functions_and_calls() {
        let f = NixValue::Function {
            head: "{ config, lib, pkgs, ... }".to_owned(),
            body: Box::new(attrs(vec![("config", NixValue::attrs())])),
        };
        assert_eq!(
            py2nix(&f, false),
            "{ config, lib, pkgs, ... }: { config = {}; }"
        );
        let c = NixValue::Call {
            fun: Box::new(NixValue::raw("f")),
            arg: Box::new(NixValue::Int(1)),
        };
        assert_eq!(py2nix(&NixValue::List(vec![c]), true), "[ (( f 1 )) ]");
    }

    #[test]
    fn nested_single_lists_collapse() {
        let v = NixValue::List(vec![NixValue::List(vec![
            NixValue::Int(1),
            NixValue::Int(2),
        ])]);
        assert_eq!(py2nix(&v, true), "[ [ 1 2 ] ]");
    }

    #[test]
    fn merge_conflict_is_an_error() {
        let err = merge(NixValue::Int(1), NixValue::str("x")).expect_err("invariant: conflict");
        assert_eq!(err.to_string(), "unable to merge int with string");
        let l = merge(
            NixValue::List(vec![NixValue::Int(1)]),
            NixValue::List(vec![NixValue::Int(1), NixValue::Int(2)]),
        )
        .expect("invariant: lists merge");
        assert_eq!(l, NixValue::List(vec![NixValue::Int(1), NixValue::Int(2)]));
    }
}
