//! Text tables laid out exactly as NixOps prints them (Python's prettytable).
//!
//! Borders are `+---+`, cells have one space of padding, headers are aligned like
//! their column, multi-line cells are split on newlines, and ANSI colour escapes
//! do not count towards a column's width. Centring follows Python's `str.center`.

use std::borrow::Cow;
use std::convert::Infallible;

use nixops_core::parallel;

/// How the cells of a column are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// The cells of a table, by row and column: a [`Table`]'s own, or a caller's
/// rows shown as they are, without copying every cell into a table first.
pub trait Cells: Sync {
    /// How many rows there are.
    fn rows(&self) -> usize;
    /// The text of column `column` of row `row`.
    fn cell(&self, row: usize, column: usize) -> &str;
}

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

    /// The table as text, ending in a newline.
    pub fn render(&self) -> String {
        let columns: Vec<(&str, Align)> =
            self.columns.iter().map(|(h, a)| (h.as_str(), *a)).collect();
        let mut out = Vec::new();
        write(&columns, self, |piece| out.extend_from_slice(piece));
        String::from_utf8(out).expect("invariant: a table is made of str pieces")
    }
}

impl Cells for Table<'_> {
    fn rows(&self) -> usize {
        self.cells.len() / self.columns.len().max(1)
    }

    fn cell(&self, row: usize, column: usize) -> &str {
        &self.cells[row * self.columns.len() + column]
    }
}

/// Tables with more rows than this are measured and laid out on two threads.
const PARALLEL_ROWS: usize = 2000;

/// Rows laid out at a time, into a buffer that is handed to the sink and reused.
const PIECE_ROWS: usize = 512;

/// Write the table of `columns` (header text and alignment) and `cells`, ending in
/// a newline, to `sink` in pieces. A table of thousands of rows is measured and
/// laid out on two threads, a piece of rows at a time, so its text is never
/// held whole.
pub fn write(columns: &[(&str, Align)], cells: &impl Cells, mut sink: impl FnMut(&[u8])) {
    let rows = cells.rows();
    // The widths, and whether every cell is printable ASCII on one line (then
    // laying out needs no second look at any cell).
    let measure = |from: usize, to: usize| {
        let mut widths: Vec<usize> = columns.iter().map(|(h, _)| width(h)).collect();
        let mut simple = true;
        for row in from..to {
            for (column, w) in widths.iter_mut().enumerate() {
                let cell = cells.cell(row, column);
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
    let (widths, simple) = if rows < PARALLEL_ROWS {
        measure(0, rows)
    } else {
        let ((wa, sa), (wb, sb)) = in_parallel(|| measure(0, rows / 2), || measure(rows / 2, rows));
        let widths = wa.into_iter().zip(wb).map(|(a, b)| a.max(b)).collect();
        (widths, sa && sb)
    };
    let lines = Lines {
        columns,
        widths: &widths,
    };
    let border = {
        let mut s = Vec::from(*b"+");
        for w in &widths {
            s.resize(s.len() + w + 2, b'-');
            s.push(b'+');
        }
        s.push(b'\n');
        s
    };
    let mut head = border.clone();
    lines.push(&mut head, columns.iter().map(|(h, _)| *h));
    head.extend_from_slice(&border);
    sink(&head);
    if rows == 0 {
        return;
    }
    let lay_out = |piece: usize, out: &mut Vec<u8>| -> Result<(), Infallible> {
        let from = piece * PIECE_ROWS;
        for row in from..rows.min(from + PIECE_ROWS) {
            let row_cells = (0..columns.len()).map(|column| cells.cell(row, column));
            if simple {
                lines.push_simple(out, row_cells);
                continue;
            }
            if !row_cells.clone().any(|c| c.contains('\n')) {
                lines.push(out, row_cells);
                continue;
            }
            let split: Vec<Vec<&str>> = row_cells.map(|c| c.split('\n').collect()).collect();
            let height = split.iter().map(Vec::len).max().unwrap_or(1);
            for i in 0..height {
                lines.push(out, split.iter().map(|l| l.get(i).copied().unwrap_or("")));
            }
        }
        Ok(())
    };
    let pieces = rows.div_ceil(PIECE_ROWS);
    let laid_out = if rows < PARALLEL_ROWS {
        let mut out = Vec::with_capacity(border.len() * rows.min(PIECE_ROWS));
        (0..pieces).try_for_each(|piece| {
            lay_out(piece, &mut out)?;
            sink(&out);
            out.clear();
            Ok(())
        })
    } else {
        // Lines are as long as the border unless a cell has several lines.
        let capacity = border.len() * (PIECE_ROWS + PIECE_ROWS / 4);
        parallel::in_order(pieces, capacity, lay_out, &mut sink)
    };
    match laid_out {
        Ok(()) => {}
        Err(never) => match never {},
    }
    sink(&border);
}

/// Lays out lines of cells in their columns.
struct Lines<'c> {
    columns: &'c [(&'c str, Align)],
    widths: &'c [usize],
}

impl Lines<'_> {
    /// [`Lines::push`] of cells that are printable ASCII: their width is their
    /// length.
    fn push_simple<'t>(&self, out: &mut Vec<u8>, cells: impl Iterator<Item = &'t str>) {
        out.push(b'|');
        for ((cell, &w), (_, align)) in cells.zip(self.widths).zip(self.columns) {
            out.push(b' ');
            pad_to(out, cell, cell.len(), w, *align);
            out.extend_from_slice(b" |");
        }
        out.push(b'\n');
    }

    fn push<'t>(&self, out: &mut Vec<u8>, cells: impl Iterator<Item = &'t str>) {
        out.push(b'|');
        for ((cell, &w), (_, align)) in cells.zip(self.widths).zip(self.columns) {
            out.push(b' ');
            pad_to(out, cell, width(cell), w, *align);
            out.extend_from_slice(b" |");
        }
        out.push(b'\n');
    }
}

/// Run `a` here and `b` on another thread.
fn in_parallel<A, B: Send>(a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        (a, b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// Append `text`, which is `text_width` wide, aligned in a column `width` wide.
fn pad_to(out: &mut Vec<u8>, text: &str, text_width: usize, width: usize, align: Align) {
    let margin = width.saturating_sub(text_width);
    let left = match align {
        Align::Left => 0,
        Align::Right => margin,
        // Python's str.center: the odd space goes left only when both the margin
        // and the total width are odd.
        Align::Center => margin / 2 + (margin & width & 1),
    };
    out.resize(out.len() + left, b' ');
    out.extend_from_slice(text.as_bytes());
    out.resize(out.len() + margin - left, b' ');
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

    #[test]
    fn a_large_table_in_pieces_on_two_threads_is_laid_out_as_a_small_one() {
        let rows = 3 * PARALLEL_ROWS + 7;
        for tall in [None, Some(PARALLEL_ROWS + 3)] {
            let mut t = Table::new(&[("N", Align::Right), ("Text", Align::Center)]);
            for i in 0..rows {
                let text = if tall == Some(i) {
                    "a\nbb".to_owned()
                } else {
                    "x".repeat(i % 7)
                };
                t.push(vec![i.to_string(), text]);
            }
            let n = rows.to_string().len();
            let border = format!("+{}+--------+\n", "-".repeat(n + 2));
            let mut want = format!("{border}| {:>n$} |  Text  |\n{border}", "N");
            for i in 0..rows {
                if tall == Some(i) {
                    want.push_str(&format!("| {i:>n$} |   a    |\n| {:>n$} |   bb   |\n", ""));
                    continue;
                }
                // Python's centring: the odd space goes left when the margin
                // and the width (6) are both odd, which they never are.
                let text = "x".repeat(i % 7);
                let margin = 6usize.saturating_sub(text.len());
                let (left, right) = (margin / 2, margin - margin / 2);
                let cell = format!("{}{text}{}", " ".repeat(left), " ".repeat(right));
                want.push_str(&format!("| {i:>n$} | {cell} |\n"));
            }
            want.push_str(&border);
            assert_eq!(t.render(), want, "tall row: {tall:?}");
        }
    }
}
