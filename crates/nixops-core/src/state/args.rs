//! `set-args`: editing the persistent network arguments.
//!
//! Owns the pure transformation of a deployment's `args` map (name → Nix expression
//! text) by `--arg`, `--argstr` and `--unset`, and the rendering of a string as an
//! inline Nix string literal (NixOps' `py2nix(value, inline=True)`). It does not
//! read or write the state file; the caller stores the result with
//! `AttrValue::str_map`.

use std::collections::BTreeMap;

use super::error::StateError;

/// `--argstr` values are stored as NixOps' `py2nix(value, inline=True)` makes
/// them: a one-line Nix string literal (`\`, `${`, `"`, newline and tab escaped).
pub use crate::eval::py2nix::quote_string as nix_string_literal;

/// Whether `name` can be a formal argument of the network function, i.e. a Nix
/// identifier: `[A-Za-z_][A-Za-z0-9_'-]*`.
pub fn is_valid_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
}

/// The changes one `set-args` invocation asks for.
#[derive(Debug, Clone, Default)]
pub struct SetArgs {
    /// `--arg NAME VALUE`: VALUE is a Nix expression, stored verbatim.
    pub arg: Vec<(String, String)>,
    /// `--argstr NAME VALUE`: VALUE is a string, stored as a Nix string literal.
    pub argstr: Vec<(String, String)>,
    /// `--unset NAME`.
    pub unset: Vec<String>,
}

/// Apply `changes` to `args` in NixOps' order: every `--arg`, then every `--argstr`,
/// then every `--unset`. Nothing is changed when a name or value is refused.
pub fn apply_set_args(
    args: &BTreeMap<String, String>,
    changes: &SetArgs,
) -> Result<BTreeMap<String, String>, StateError> {
    for (name, value) in &changes.arg {
        if !is_valid_arg_name(name) {
            return Err(StateError::InvalidArgName { name: name.clone() });
        }
        if value.trim().is_empty() {
            return Err(StateError::EmptyArgValue { name: name.clone() });
        }
    }
    if let Some((name, _)) = changes.argstr.iter().find(|(n, _)| !is_valid_arg_name(n)) {
        return Err(StateError::InvalidArgName { name: name.clone() });
    }
    let mut out = args.clone();
    for (name, value) in &changes.arg {
        out.insert(name.clone(), value.clone());
    }
    for (name, value) in &changes.argstr {
        out.insert(name.clone(), nix_string_literal(value));
    }
    for name in &changes.unset {
        out.remove(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literal_escapes_like_py2nix() {
        assert_eq!(nix_string_literal("plain"), r#""plain""#);
        assert_eq!(
            nix_string_literal("a\\b ${x} $y \"q\"\n\tz"),
            r#""a\\b \${x} $y \"q\"\n\tz""#
        );
    }

    #[test]
    fn order_is_arg_argstr_unset() {
        let start = BTreeMap::from([("old".to_string(), "1".to_string())]);
        let changes = SetArgs {
            arg: vec![("n".into(), "42".into()), ("s".into(), "true".into())],
            argstr: vec![("s".into(), "hello".into())],
            unset: vec!["old".into(), "n".into(), "absent".into()],
        };
        let out = apply_set_args(&start, &changes).expect("valid");
        assert_eq!(
            out,
            BTreeMap::from([("s".to_string(), "\"hello\"".to_string())])
        );
    }

    #[test]
    fn bad_names_and_empty_values_are_refused() {
        let bad = SetArgs {
            arg: vec![("1x".into(), "1".into())],
            ..SetArgs::default()
        };
        let err = apply_set_args(&BTreeMap::new(), &bad).expect_err("bad name");
        assert_eq!(err.to_string(), "invalid argument name ‘1x’");
        let empty = SetArgs {
            arg: vec![("x".into(), " ".into())],
            ..SetArgs::default()
        };
        assert!(apply_set_args(&BTreeMap::new(), &empty).is_err());
        assert!(is_valid_arg_name("foo-bar'_1"));
        assert!(!is_valid_arg_name(""));
        assert!(!is_valid_arg_name("a.b"));
    }
}
