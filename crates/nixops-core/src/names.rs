//! Ordering of machine names as NixOps shows them: digit runs compare as numbers,
//! so `web9` comes before `web10`. Also a fast hash for the short names of
//! machines and attributes.

use std::cmp::Ordering;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: names are short, and SipHash (the standard maps' default, which
/// resists crafted keys that a state file has no reason to hold) would
/// dominate a lookup.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Hash maps and sets keyed by names: `HashMap<K, V, FnvBuild>`.
pub type FnvBuild = BuildHasherDefault<Fnv>;

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
    // Names mostly share a prefix (`machine-1` and `machine-12`): the pieces
    // before the run that the common prefix ends in are the same, so the
    // comparison starts at that run. It begins at a piece boundary of both
    // names, and at a char boundary: after an ASCII digit, or at one.
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let same = x.iter().zip(y).take_while(|(p, q)| p == q).count();
    if same == x.len() && same == y.len() {
        return Ordering::Equal;
    }
    let mut from = same;
    if let Some(last) = same.checked_sub(1).map(|i| x[i].is_ascii_digit()) {
        while from > 0 && x[from - 1].is_ascii_digit() == last {
            from -= 1;
        }
    }
    match (a.get(from..), b.get(from..)) {
        (Some(ra), Some(rb)) => pieces(ra).cmp(pieces(rb)),
        _ => pieces(a).cmp(pieces(b)),
    }
    .then_with(|| a.cmp(b))
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

    #[test]
    fn a_shared_prefix_changes_nothing() {
        let names = [
            "", "a", "a1", "a01", "a1b", "a10", "a9", "ab", "a b", "1", "01", "10", "x10y2",
            "x10y10", "x1y", "é1", "é10", "éa", "e1", "m-1", "m-10", "m-1x", "m-", "m", "9é",
        ];
        // The comparison of whole names, piece by piece.
        let whole = |a: &str, b: &str| pieces(a).cmp(pieces(b)).then_with(|| a.cmp(b));
        for a in names {
            for b in names {
                assert_eq!(natural_cmp(a, b), whole(a, b), "{a:?} against {b:?}");
            }
        }
    }
}
