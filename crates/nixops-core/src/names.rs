//! Ordering of machine names as NixOps shows them: digit runs compare as numbers,
//! so `web9` comes before `web10`.

use std::cmp::Ordering;

/// One piece of a name: a run of digits (compared as a number) or of other text.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Piece<'a> {
    // Text sorts before numbers at the same position, as in Python when the first
    // pieces differ in kind only through an empty leading text piece.
    Text(&'a str),
    Number(u128, &'a str),
}

fn pieces(name: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let bytes = name.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let digit = bytes[start].is_ascii_digit();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() == digit {
            end += 1;
        }
        let run = &name[start..end];
        out.push(if digit {
            Piece::Number(run.parse().unwrap_or(u128::MAX), run)
        } else {
            Piece::Text(run)
        });
        start = end;
    }
    out
}

/// Compare two names naturally (`a2` < `a10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    pieces(a).cmp(&pieces(b)).then_with(|| a.cmp(b))
}

/// A key that orders names as [`natural_cmp`] does: for sorting many names with
/// `sort_by_cached_key`, which splits each name once instead of at every comparison.
pub fn natural_key(name: &str) -> impl Ord + '_ {
    (pieces(name), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_compare_as_numbers() {
        let mut names = vec!["web10", "web9", "db", "web1", "a", "web1x"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "db", "web1", "web1x", "web9", "web10"]);
        let mut by_key = vec!["web10", "web9", "db", "web01", "web1", "a", "web1x"];
        by_key.sort_by_cached_key(|n| natural_key(n));
        let mut by_cmp = by_key.clone();
        by_cmp.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(by_key, by_cmp);
    }
}
