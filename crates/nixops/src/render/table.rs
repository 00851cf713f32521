//! Text tables laid out exactly as NixOps prints them (Python's prettytable).
//!
//! Borders are `+---+`, cells have one space of padding, headers are aligned like
//! their column, multi-line cells are split on newlines, and ANSI colour escapes
//! do not count towards a column's width. Centring follows Python's `str.center`.

use std::borrow::Cow;

/// How the cells of a column are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// Cells of whole rows, one row after the other.
type Cells<'a> = [Cow<'a, str>];

/// A table with a header row. Cells may borrow their text (`'a`), so a table of
/// thousands of machines need not copy every name.
#[derive(Debug)]
pub struct Table<'a> {
    columns: Vec<(String, Align)>,
    /// Every row's cells, one row after the other.
    cells: Vec<Cow<'a, str>>,
}

impl<'a> Table<'a> {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            cells: Vec::new(),
        }
    }

    /// Room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        self.cells.reserve(rows * self.columns.len());
    }

    /// Add a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<String>) {
        self.push_cells(row.into_iter().map(Cow::Owned));
    }

    /// Add a row of cells that may borrow their text; one cell per column.
    pub fn push_cells(&mut self, row: impl IntoIterator<Item = Cow<'a, str>>) {
        let before = self.cells.len();
        self.cells.extend(row);
        debug_assert_eq!(self.cells.len() - before, self.columns.len());
    }

    /// The table as text, ending in a newline. Tables of thousands of rows are
    /// measured and laid out on two threads.
    pub fn render(&self) -> String {
        // The widths, and whether every cell is printable ASCII on one line (then
        // laying out needs no second look at any cell).
        let measure = |rows: &Cells<'a>| {
            let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| width(h)).collect();
            let mut simple = true;
            for row in rows.chunks_exact(self.columns.len()) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = match one_line_width(cell) {
                        Some(n) => n.max(*w),
                        None => {
                            simple = false;
                            cell.split('\n').map(width).fold(*w, usize::max)
                        }
                    };
                }
            }
            (widths, simple)
        };
        let (widths, simple) = match self.halves() {
            None => measure(&self.cells),
            Some((a, b)) => {
                let ((wa, sa), (wb, sb)) = in_parallel(|| measure(a), || measure(b));
                let widths = wa.into_iter().zip(wb).map(|(a, b)| a.max(b)).collect();
                (widths, sa && sb)
            }
        };
        let border = {
            let mut s = String::from("+");
            for w in &widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s.push('\n');
            s
        };
        let rows = self.cells.len() / self.columns.len().max(1);
        let mut out = String::with_capacity(border.len() * (rows + 4));
        out.push_str(&border);
        let header: Vec<&str> = self.columns.iter().map(|(h, _)| h.as_str()).collect();
        self.push_line(&mut out, &widths, header.iter().copied());
        out.push_str(&border);
        if self.cells.is_empty() {
            return out;
        }
        let lay_out = |out: &mut String, rows: &Cells<'a>| {
            for row in rows.chunks_exact(self.columns.len()) {
                if simple {
                    self.push_simple_line(out, &widths, row);
                    continue;
                }
                if !row.iter().any(|c| c.contains('\n')) {
                    self.push_line(out, &widths, row.iter().map(|c| c.as_ref()));
                    continue;
                }
                let lines: Vec<Vec<&str>> = row.iter().map(|c| c.split('\n').collect()).collect();
                let height = lines.iter().map(Vec::len).max().unwrap_or(1);
                for i in 0..height {
                    let cells = lines.iter().map(|l| l.get(i).copied().unwrap_or(""));
                    self.push_line(out, &widths, cells);
                }
            }
        };
        match self.halves() {
            None => lay_out(&mut out, &self.cells),
            Some((a, b)) => {
                let second = in_parallel(
                    || lay_out(&mut out, a),
                    || {
                        let mut text = String::with_capacity(border.len() * rows / 2);
                        lay_out(&mut text, b);
                        text
                    },
                )
                .1;
                out.push_str(&second);
            }
        }
        out.push_str(&border);
        out
    }

    /// The cells in two halves of whole rows, when there are enough to share out.
    fn halves(&self) -> Option<(&Cells<'a>, &Cells<'a>)> {
        let n = self.columns.len();
        let rows = self.cells.len() / n.max(1);
        (rows >= PARALLEL_ROWS).then(|| self.cells.split_at(rows / 2 * n))
    }

    /// [`Table::push_line`] of cells that are printable ASCII: their width is
    /// their length.
    fn push_simple_line(&self, out: &mut String, widths: &[usize], cells: &Cells<'a>) {
        out.push('|');
        for ((cell, &w), (_, align)) in cells.iter().zip(widths).zip(&self.columns) {
            out.push(' ');
            pad_to(out, cell, cell.len(), w, *align);
            out.push_str(" |");
        }
        out.push('\n');
    }

    fn push_line<'c>(
        &self,
        out: &mut String,
        widths: &[usize],
        cells: impl Iterator<Item = &'c str>,
    ) {
        out.push('|');
        for ((cell, w), (_, align)) in cells.zip(widths).zip(&self.columns) {
            out.push(' ');
            pad(out, cell, *w, *align);
            out.push_str(" |");
        }
        out.push('\n');
    }
}

/// Tables with more rows than this are rendered on two threads.
const PARALLEL_ROWS: usize = 2000;

/// Run `a` here and `b` on another thread.
fn in_parallel<A, B: Send>(a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        (a, b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

fn pad(out: &mut String, text: &str, width: usize, align: Align) {
    pad_to(out, text, self::width(text), width, align);
}

/// [`pad`] of a text `text_width` wide.
fn pad_to(out: &mut String, text: &str, text_width: usize, width: usize, align: Align) {
    let margin = width.saturating_sub(text_width);
    let left = match align {
        Align::Left => 0,
        Align::Right => margin,
        // Python's str.center: the odd space goes left only when both the margin
        // and the total width are odd.
        Align::Center => margin / 2 + (margin & width & 1),
    };
    push_spaces(out, left);
    out.push_str(text);
    push_spaces(out, margin - left);
}

fn push_spaces(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                                                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// The width of `text` if it is printable ASCII on one line, the common case,
/// checked in one pass that the compiler can vectorise.
fn one_line_width(text: &str) -> Option<usize> {
    let simple = |b: u8| (0x20..0x7f).contains(&b);
    let (blocks, rest) = text.as_bytes().as_chunks::<16>();
    let ok = blocks.iter().all(|block| {
        // An OR of flags without early exit: a few vector instructions.
        let mut bad = 0u8;
        for &b in block {
            bad |= u8::from(!simple(b));
        }
        bad == 0
    }) && rest.iter().all(|&b| simple(b));
    ok.then_some(text.len())
}

/// Display width: characters, not counting ANSI escape sequences.
pub fn width(text: &str) -> usize {
    if let Some(n) = one_line_width(text) {
        return n;
    }
    let mut n = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // Skip `ESC [ ... letter`.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_layout_matches_nixops() {
        let mut t = Table::new(&[
            ("UUID", Align::Left),
            ("Name", Align::Left),
            ("Description", Align::Left),
            ("# Machines", Align::Right),
            ("Type", Align::Center),
        ]);
        t.push(vec![
            "80dc8e11-287d-11e2-b05a-a810fd2f513f".into(),
            "test".into(),
            "Test network".into(),
            "4".into(),
            "ec2".into(),
        ]);
        let expected = "\
+--------------------------------------+------+--------------+------------+------+
| UUID                                 | Name | Description  | # Machines | Type |
+--------------------------------------+------+--------------+------------+------+
| 80dc8e11-287d-11e2-b05a-a810fd2f513f | test | Test network |          4 | ec2  |
+--------------------------------------+------+--------------+------------+------+
";
        assert_eq!(t.render(), expected);
    }

    #[test]
    fn info_layout_matches_nixops() {
        let mut t = Table::new(&[
            ("Name", Align::Left),
            ("Status", Align::Center),
            ("Type", Align::Left),
            ("Resource Id", Align::Left),
            ("IP address", Align::Left),
        ]);
        t.push(vec![
            "machine".into(),
            "Up / Up-to-date".into(),
            "none".into(),
            "nixops-80dc8e11-287d-11e2-b05a-a810fd2f513f-machine".into(),
            "1.2.3.4".into(),
        ]);
        t.push(vec![
            "m2".into(),
            "Missing".into(),
            "virtualbox".into(),
            String::new(),
            String::new(),
        ]);
        let expected = "\
+---------+-----------------+------------+-----------------------------------------------------+------------+
| Name    |      Status     | Type       | Resource Id                                         | IP address |
+---------+-----------------+------------+-----------------------------------------------------+------------+
| machine | Up / Up-to-date | none       | nixops-80dc8e11-287d-11e2-b05a-a810fd2f513f-machine | 1.2.3.4    |
| m2      |     Missing     | virtualbox |                                                     |            |
+---------+-----------------+------------+-----------------------------------------------------+------------+
";
        assert_eq!(t.render(), expected);
    }

    #[test]
    fn empty_table_is_three_lines_and_colours_do_not_count() {
        let t = Table::new(&[("A", Align::Left)]);
        assert_eq!(t.render(), "+---+\n| A |\n+---+\n");
        assert_eq!(width("\x1b[1;32mYes\x1b[0m"), 3);
    }

    #[test]
    fn multi_line_cells() {
        let mut t = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        t.push(vec!["x".into(), "1\n22".into()]);
        assert_eq!(
            t.render(),
            "+---+----+\n| A | B  |\n+---+----+\n| x | 1  |\n|   | 22 |\n+---+----+\n"
        );
    }
}
