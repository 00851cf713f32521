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

/// The pieces of `name`, in order.
fn pieces(name: &str) -> impl Iterator<Item = Piece<'_>> + '_ {
    let bytes = name.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let digit = bytes[start].is_ascii_digit();
        let end = bytes[start..]
            .iter()
            .position(|b| b.is_ascii_digit() != digit)
            .map_or(bytes.len(), |n| start + n);
        let run = &name[start..end];
        start = end;
        Some(if digit {
            Piece::Number(run.parse().unwrap_or(u128::MAX), run)
        } else {
            Piece::Text(run)
        })
    })
}

/// Compare two names naturally (`a2` < `a10`), without allocating.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    pieces(a).cmp(pieces(b)).then_with(|| a.cmp(b))
}

/// A key that orders names as [`natural_cmp`] does: for sorting many names with
/// `sort_by_cached_key`, which splits each name once instead of at every comparison.
pub fn natural_key(name: &str) -> impl Ord + '_ {
    (pieces(name).collect::<Vec<_>>(), name)
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
