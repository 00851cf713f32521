//! Reading `ResourceAttrs` in bulk: the one table that grows with every machine.
//!
//! Owns the rows of a bulk read ([`Chunk`], filled by the page reader in
//! `pages` or by SQLite) and their grouping by resource ([`AttrTable`]), for
//! commands that read every machine of every deployment (`export --all`,
//! `info --all`). When the pages cannot be read directly, SQLite reads rows in
//! rowid order (an index walk `order by machine` costs twice as much), on large
//! files in blocks of the rowid range taken in turn by two connections on two
//! threads, made to read the same snapshot (see [`SideReader`]). Values are
//! copied into one buffer per thread instead of one allocation per string, or
//! left in the mapped file. Rows are then grouped by resource in memory, since
//! a machine's rows need not be contiguous in rowid order (`insert or replace`
//! gives a row a new rowid). It only reads, never decides what to show, and
//! never writes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::pages::PageFile;

/// Memory map size for reading connections: large enough for any realistic state
/// file, so pages are read in place instead of copied by `pread()`.
pub(super) const MMAP_SIZE: i64 = 268_435_456;

/// Files smaller than this are read on one connection without looking further.
pub(super) const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// Files with fewer rows than this are scanned on one connection: a second one
/// costs more to open than it saves.
const PARALLEL_MIN_ROWS: i64 = 20_000;

/// [`PARALLEL_MIN_ROWS`] as a count of rows read.
const PARALLEL_MIN_ROWS_USIZE: usize = 20_000;

/// How many blocks a parallel scan splits the rowid range into.
const SCAN_BLOCKS: usize = 32;

/// Maps resource ids to positions in a list sorted by id. Ids are autoincrement
/// and therefore dense in practice: index them with a table instead of hashing
/// every row; fall back to a map for sparse ids.
pub(super) enum SlotMap {
    /// `table[id - min]` is the slot, `u32::MAX` for none.
    Dense { min: i64, table: Vec<u32> },
    /// Sparse ids.
    Sparse(HashMap<i64, u32>),
}

impl SlotMap {
    /// The map for `ids`, sorted ascending.
    pub(super) fn new(ids: impl ExactSizeIterator<Item = i64> + Clone) -> SlotMap {
        let n = ids.len();
        let (Some(min), Some(max)) = (ids.clone().next(), ids.clone().last()) else {
            return SlotMap::Sparse(HashMap::new());
        };
        let span = usize::try_from(max.saturating_sub(min)).unwrap_or(usize::MAX);
        if span < n.saturating_mul(4) + 1024 {
            let mut table = vec![u32::MAX; span + 1];
            for (i, id) in ids.enumerate() {
                let slot = usize::try_from(id - min).expect("invariant: min <= id <= max");
                table[slot] = u32::try_from(i).unwrap_or(u32::MAX);
            }
            SlotMap::Dense { min, table }
        } else {
            SlotMap::Sparse(
                ids.enumerate()
                    .map(|(i, id)| (id, u32::try_from(i).unwrap_or(u32::MAX)))
                    .collect(),
            )
        }
    }

    /// The slot of resource `id`, if it is one of ours.
    pub(super) fn get(&self, id: i64) -> Option<usize> {
        match self {
            SlotMap::Dense { min, table } => {
                let i = usize::try_from(id.checked_sub(*min)?).ok()?;
                table
                    .get(i)
                    .filter(|&&s| s != u32::MAX)
                    .map(|&s| s as usize)
            }
            SlotMap::Sparse(map) => map.get(&id).map(|&s| s as usize),
        }
    }
}

/// One row of a [`Chunk`]: the resource id, the attribute name (an index into
/// the chunk's names, or'ed with [`PLAIN`] when the value needs no JSON escaping
/// and with [`MAPPED`] when the value is in the mapped file) and where the value
/// is: in the chunk's text, or in the file.
#[derive(Clone, Copy)]
struct ChunkRow {
    machine: i64,
    name: u32,
    start: u32,
    end: u32,
}

/// Flag bit: the value is printable ASCII without `"` or `\`, so its JSON string
/// literal is the value in quotes. Checked while the bytes are being copied anyway.
const PLAIN: u32 = 1 << 31;

/// Flag bit: the value was left where it is in the mapped database file
/// (see [`super::pages::PageFile`]), not copied.
const MAPPED: u32 = 1 << 30;

/// Both flag bits.
const FLAGS: u32 = PLAIN | MAPPED;

/// Whether `s` is printable ASCII without `"` and `\` (a JSON string literal
/// as is, also with Python's `ensure_ascii`).
pub(super) fn is_plain(s: &[u8]) -> bool {
    let (blocks, rest) = s.as_chunks::<16>();
    blocks.iter().all(|b| super::pyjson::escape_mask(b) == 0)
        && rest.iter().all(|&b| super::pyjson::is_plain_byte(b))
}

/// The rows of one scan, their values concatenated in one string.
#[derive(Default)]
pub(super) struct Chunk {
    text: String,
    rows: Vec<ChunkRow>,
    /// In column mode, where the rows go instead of `rows`.
    columns: Option<Columns>,
    /// How many rows were added, and the bytes of their values.
    added: usize,
    added_bytes: usize,
    names: Vec<String>,
    /// Per name: whether it is wanted (in `only`).
    wanted: Vec<bool>,
    /// Per name: the name of the row that followed one of it last, `u32::MAX`
    /// for none yet.
    next: Vec<u32>,
    index: HashMap<Box<[u8]>, u32, crate::names::FnvBuild>,
}

/// A cell of [`Columns`] holds a value: bits 0–31 are where it starts, bits
/// 32–59 its length, and the bits below say where it is and what it needs.
const CELL_SET: u64 = 1 << 63;

/// Cell bit: the value is in the chunk's text, not in the mapped file.
const CELL_COPIED: u64 = 1 << 62;

/// Cell bit: the value needs no JSON escaping (see [`PLAIN`]).
const CELL_PLAIN: u64 = 1 << 61;

/// Cell bit: the value is in the second chunk's text (set as the columns of
/// two chunks are merged).
const CELL_SECOND: u64 = 1 << 60;

/// Values this long or longer do not fit a cell.
const CELL_MAX_LEN: u64 = 1 << 28;

/// A chunk's rows laid out as they are used, when resource ids are dense: a
/// column per attribute name, a cell per resource id, so that reading them
/// needs no grouping afterwards. The rows of a page scan come in file order,
/// which is rarely by resource.
struct Columns {
    /// The first resource id of the columns.
    lo: i64,
    /// How many resource ids the columns cover.
    span: usize,
    /// By local name index: `span` cells, 0 for no value, or no cells until the
    /// name has a value.
    cells: Vec<Vec<u64>>,
    /// How many more columns may be made: a bound on memory for files with
    /// very many names.
    room: usize,
}

impl Columns {
    /// Record the value of resource `machine`, name `name`, `len` bytes at
    /// `start`; rows of ids outside the columns belong to no resource.
    fn set(
        &mut self,
        machine: i64,
        name: u32,
        start: u32,
        len: usize,
        bits: u64,
    ) -> Result<(), RowError> {
        let Some(at) = machine
            .checked_sub(self.lo)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|&at| at < self.span)
        else {
            return Ok(());
        };
        let len = u64::try_from(len)
            .ok()
            .filter(|&len| len < CELL_MAX_LEN)
            .ok_or(RowError::TooLarge)?;
        let name = name as usize;
        if self.cells.len() <= name {
            self.cells.resize_with(name + 1, Vec::new);
        }
        let column = &mut self.cells[name];
        if column.is_empty() {
            self.room = self.room.checked_sub(1).ok_or(RowError::TooLarge)?;
            *column = vec![0; self.span];
        }
        column[at] = CELL_SET | bits | len << 32 | u64::from(start);
        Ok(())
    }
}

/// Whether `a` and `b` are equal: for short names, eight bytes at a time inline
/// rather than through a call to `memcmp`, as for every row.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (words_a, rest_a) = a.as_chunks::<8>();
    let (words_b, rest_b) = b.as_chunks::<8>();
    words_a.iter().zip(words_b).all(|(x, y)| x == y)
        && rest_a.iter().zip(rest_b).all(|(x, y)| x == y)
}

/// Why a row could not be added to a [`Chunk`].
#[derive(Debug)]
pub(super) enum RowError {
    /// A name or value that is not UTF-8.
    Utf8(std::str::Utf8Error),
    /// More than 4 GiB of values, or 2^31 names, in one chunk.
    TooLarge,
}

impl From<RowError> for rusqlite::Error {
    fn from(e: RowError) -> rusqlite::Error {
        match e {
            RowError::Utf8(e) => rusqlite::Error::Utf8Error(e),
            RowError::TooLarge => rusqlite::Error::IntegralValueOutOfRange(2, i64::MAX),
        }
    }
}

impl Chunk {
    /// An empty chunk with room for `text` bytes of values and `rows` rows up
    /// front: memory not written to costs nothing, while growing would copy what
    /// was read so far.
    pub(super) fn with_capacity(text: usize, rows: usize) -> Chunk {
        Chunk {
            text: String::with_capacity(text),
            rows: Vec::with_capacity(rows),
            ..Chunk::default()
        }
    }

    /// An empty chunk in column mode, for resource ids `lo..lo + span`, with
    /// room for `text` bytes of values up front. `text_hint` (the file's size)
    /// bounds the memory its columns may take.
    pub(super) fn with_columns(text: usize, lo: i64, span: usize, text_hint: usize) -> Chunk {
        Chunk {
            text: String::with_capacity(text),
            columns: Some(Columns {
                lo,
                span,
                cells: Vec::new(),
                room: (text_hint / 4 / span.max(1)).max(64),
            }),
            ..Chunk::default()
        }
    }

    /// The local index of attribute name `name` (UTF-8 checked once per name).
    fn intern(&mut self, name: &[u8], only: Option<&[&str]>) -> Result<u32, RowError> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        self.wanted
            .push(only.is_none_or(|only| only.iter().any(|n| n.as_bytes() == name)));
        let s = std::str::from_utf8(name).map_err(RowError::Utf8)?;
        let i = u32::try_from(self.names.len())
            .ok()
            .filter(|&i| i < MAPPED)
            .ok_or(RowError::TooLarge)?;
        self.names.push(s.to_owned());
        self.next.push(u32::MAX);
        self.index.insert(name.into(), i);
        Ok(i)
    }

    /// The local index of `name` if rows of it are wanted (in `only`). `last` is
    /// the name of the previous row. Rows come grouped by resource, each with its
    /// names in the same order (attributes set together), or grouped by name
    /// (one attribute set for every machine): the name that followed `last`
    /// the time before, or `last` itself, mostly spares the hash lookup.
    pub(super) fn wanted(
        &mut self,
        last: &mut Option<u32>,
        name: &[u8],
        only: Option<&[&str]>,
    ) -> Result<Option<u32>, RowError> {
        let id = match *last {
            Some(prev) => {
                let guess = self.next[prev as usize];
                if guess != u32::MAX && same(self.names[guess as usize].as_bytes(), name) {
                    guess
                } else if same(self.names[prev as usize].as_bytes(), name) {
                    prev
                } else {
                    let id = self.intern(name, only)?;
                    self.next[prev as usize] = id;
                    id
                }
            }
            None => self.intern(name, only)?,
        };
        *last = Some(id);
        Ok(self.wanted[id as usize].then_some(id))
    }

    /// Append a row of resource `machine`, name `name_id` (from
    /// [`Chunk::wanted`]) and value `value`.
    pub(super) fn push(
        &mut self,
        machine: i64,
        name_id: u32,
        value: &[u8],
    ) -> Result<(), RowError> {
        let plain = if is_plain(value) { PLAIN } else { 0 };
        let value = std::str::from_utf8(value).map_err(RowError::Utf8)?;
        let start = u32::try_from(self.text.len()).map_err(|_| RowError::TooLarge)?;
        self.text.push_str(value);
        let end = u32::try_from(self.text.len()).map_err(|_| RowError::TooLarge)?;
        self.added += 1;
        self.added_bytes += value.len();
        if let Some(columns) = &mut self.columns {
            let bits = CELL_COPIED | if plain != 0 { CELL_PLAIN } else { 0 };
            return columns.set(machine, name_id, start, value.len(), bits);
        }
        self.rows.push(ChunkRow {
            machine,
            name: name_id | plain,
            start,
            end,
        });
        Ok(())
    }

    /// Append a row whose value stays in the mapped file, `len` bytes at
    /// `offset`. It is not checked here: [`AttrTable::ranked`] says who does.
    pub(super) fn push_mapped(
        &mut self,
        machine: i64,
        name_id: u32,
        offset: u32,
        len: usize,
    ) -> Result<(), RowError> {
        self.added += 1;
        self.added_bytes += len;
        if let Some(columns) = &mut self.columns {
            return columns.set(machine, name_id, offset, len, 0);
        }
        let len = u32::try_from(len).map_err(|_| RowError::TooLarge)?;
        self.rows.push(ChunkRow {
            machine,
            name: name_id | MAPPED,
            start: offset,
            end: offset.checked_add(len).ok_or(RowError::TooLarge)?,
        });
        Ok(())
    }

    /// Every row as (resource id, name, value), in rows or in columns.
    #[cfg(test)]
    pub(super) fn triples(&self) -> Vec<(i64, &str, &str)> {
        let mut triples: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                assert_eq!(r.name & MAPPED, 0, "values were copied");
                let name = &self.names[(r.name & !FLAGS) as usize];
                (
                    r.machine,
                    name.as_str(),
                    &self.text[r.start as usize..r.end as usize],
                )
            })
            .collect();
        if let Some(columns) = &self.columns {
            assert!(triples.is_empty(), "rows go into columns");
            for (name, column) in self.names.iter().zip(&columns.cells) {
                for (at, &cell) in column.iter().enumerate() {
                    if cell & CELL_SET != 0 {
                        assert_ne!(cell & CELL_COPIED, 0, "values were copied");
                        let e = entry_of_cell(0, cell);
                        let id = columns.lo + i64::try_from(at).expect("small");
                        triples.push((id, name, &self.text[e.start as usize..e.end as usize]));
                    }
                }
            }
        }
        triples
    }

    /// Append every row of `rows` (`machine, name, value`), skipping names not in
    /// `only` before copying anything.
    pub(super) fn read(
        &mut self,
        mut rows: rusqlite::Rows<'_>,
        only: Option<&[&str]>,
    ) -> rusqlite::Result<()> {
        let mut last = None;
        while let Some(r) = rows.next()? {
            let name = text_bytes(r.get_ref(1)?, 1, "name")?;
            // Rows of unwanted names are skipped before anything else is read.
            let Some(name_id) = self.wanted(&mut last, name, only)? else {
                continue;
            };
            let machine = r.get_ref(0)?.as_i64()?;
            let value = text_bytes(r.get_ref(2)?, 2, "value")?;
            self.push(machine, name_id, value)?;
        }
        Ok(())
    }
}

fn text_bytes<'a>(v: ValueRef<'a>, col: usize, name: &str) -> rusqlite::Result<&'a [u8]> {
    match v {
        ValueRef::Text(b) => Ok(b),
        other => Err(rusqlite::Error::InvalidColumnType(
            col,
            name.to_owned(),
            other.data_type(),
        )),
    }
}

/// A second connection waiting to join the main connection's read transaction.
///
/// Consistency: `PRAGMA data_version` on a connection changes exactly when another
/// connection has committed since its previous read. The side connection reads it
/// once in autocommit mode *before* the main connection starts its read
/// transaction, and again as the first read of its own transaction *after* the
/// main one has started. Equal values mean no commit happened in between, so both
/// transactions read the same snapshot (in WAL mode the same WAL end mark; in
/// rollback mode no writer can commit while the main connection holds its shared
/// lock). Otherwise the side connection is dropped and the caller scans alone.
pub(super) struct SideReader {
    conn: Connection,
    version: i64,
}

impl SideReader {
    /// Open a second connection to `path` and note the data version. Call before
    /// the main connection begins its read transaction.
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> rusqlite::Result<SideReader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        let version = conn.query_row("pragma data_version", [], |r| r.get(0))?;
        Ok(SideReader { conn, version })
    }

    /// Begin the side connection's read transaction; call after the main
    /// connection's has started (after its first read). `None` when a commit came
    /// in between and the snapshots may differ.
    pub(super) fn join(self) -> rusqlite::Result<Option<Connection>> {
        self.conn.execute_batch("begin")?;
        let now: i64 = self
            .conn
            .query_row("pragma data_version", [], |r| r.get(0))?;
        Ok((now == self.version).then_some(self.conn))
    }
}

/// `ResourceAttrs` rowid bounds, `None` when empty. As the main connection's first
/// read it also starts its read transaction.
pub(super) fn rowid_bounds(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row(
        // Two subqueries: SQLite answers a lone min() or max() from the b-tree's
        // ends, but both in one select scan the whole table.
        "select (select min(rowid) from ResourceAttrs), (select max(rowid) from ResourceAttrs)",
        [],
        |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
    )
}

/// Whether a file with these rowid bounds is worth a second connection.
pub(super) fn wants_side(bounds: Option<(i64, i64)>) -> bool {
    bounds.is_some_and(|(lo, hi)| hi.saturating_sub(lo) >= PARALLEL_MIN_ROWS)
}

/// Every row of `ResourceAttrs` (names in `only`, if given) within `bounds`, in
/// rowid order within blocks of the rowid range. With a `side` connection, a
/// thread of its own starts on the blocks at once while `main_work` runs on
/// `main`, which then takes blocks too: whichever is faster (the machine is
/// shared, the main thread has more to do) scans more. `text_hint` bounds the
/// bytes of values one connection may copy (the file's size). Returns
/// `main_work`'s result and one chunk per connection.
pub(super) fn scan_all<T>(
    main: &Connection,
    side: Option<Connection>,
    bounds: Option<(i64, i64)>,
    only: Option<&[&str]>,
    text_hint: usize,
    main_work: impl FnOnce() -> rusqlite::Result<T>,
) -> rusqlite::Result<(T, Vec<Chunk>)> {
    let Some((lo, hi)) = bounds else {
        return Ok((main_work()?, Vec::new()));
    };
    let blocks = if side.is_some() { SCAN_BLOCKS } else { 1 };
    let next = AtomicUsize::new(0);
    // Block `k` of `blocks` equal parts of lo..=hi (in i128: the span of two
    // i64s may not fit one).
    let bound = |k: usize| -> i64 {
        let span = i128::from(hi) - i128::from(lo) + 1;
        let at = i128::from(lo) + span * k as i128 / blocks as i128;
        i64::try_from(at).unwrap_or(i64::MAX)
    };
    let scan = |conn: &Connection| -> rusqlite::Result<Chunk> {
        // Rowids may be sparse, but every row takes a few bytes of the file.
        let mut chunk = Chunk::with_capacity(
            text_hint,
            usize::try_from(hi - lo)
                .unwrap_or(0)
                .saturating_add(1)
                .min(text_hint / 8),
        );
        // No `name in (...)` for `only`: SQLite evaluates that per row at a
        // higher cost than the check on our side, which sees each name once.
        let mut stmt = conn.prepare_cached(
            "select machine, name, value from ResourceAttrs where rowid >= ?1 and rowid <= ?2",
        )?;
        loop {
            let k = next.fetch_add(1, AtomicOrdering::Relaxed);
            if k >= blocks {
                return Ok(chunk);
            }
            // The last block ends at `hi` itself (`bound(blocks)` may overflow).
            let end = if k + 1 == blocks {
                hi
            } else {
                bound(k + 1) - 1
            };
            stmt.raw_bind_parameter(1, bound(k))?;
            stmt.raw_bind_parameter(2, end)?;
            chunk.read(stmt.raw_query(), only)?;
        }
    };
    let Some(side) = side else {
        let t = main_work()?;
        return Ok((t, vec![scan(main)?]));
    };
    std::thread::scope(|s| {
        let scan = &scan;
        let other = s.spawn(move || scan(&side));
        let mine = main_work().and_then(|t| Ok((t, scan(main)?)));
        if mine.is_err() {
            // Stop the other thread early; its result no longer matters.
            next.store(blocks, AtomicOrdering::Relaxed);
        }
        let other = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (t, mine) = mine?;
        Ok((t, vec![mine, other?]))
    })
}

/// Run `a` here and `b` on another thread.
fn both<A, B: Send>(a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        (a, b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// Resource attributes grouped by resource slot, each slot's sorted by name.
pub(super) struct AttrTable {
    chunks: Vec<Chunk>,
    /// The mapped file that [`MAPPED`] values are in.
    file: Option<PageFile>,
    /// Distinct names, sorted by code point.
    names: Vec<String>,
    layout: Layout,
}

/// Where [`AttrTable`] finds a slot's attributes.
enum Layout {
    /// `entries[starts[s]..starts[s + 1]]` are slot `s`'s attributes (see
    /// [`to_cell`]).
    Lists {
        starts: Vec<u32>,
        entries: Vec<Cell>,
    },
    /// The chunks' [`Columns`], merged: slot `s`'s attribute of rank `k` is
    /// cell `at[s]` (`u32::MAX` for none) of `columns[k]`.
    Columns {
        at: Vec<u32>,
        columns: Vec<Vec<u64>>,
    },
}

/// The attributes of a slot, in name order.
enum Slot<'a> {
    List(std::slice::Iter<'a, Cell>),
    Columns {
        columns: &'a [Vec<u64>],
        at: usize,
        rank: usize,
    },
}

impl Iterator for Slot<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        match self {
            Slot::List(cells) => cells.find_map(from_cell),
            Slot::Columns { columns, at, rank } => {
                while let Some(column) = columns.get(*rank) {
                    let k = *rank;
                    *rank += 1;
                    if let Some(&cell) = column.get(*at).filter(|&&c| c & CELL_SET != 0) {
                        return Some(entry_of_cell(k, cell));
                    }
                }
                None
            }
        }
    }
}

/// The [`Entry`] of rank `rank` that `cell` of a merged column holds.
fn entry_of_cell(rank: usize, cell: u64) -> Entry {
    let start = cell as u32;
    let len = ((cell >> 32) & (CELL_MAX_LEN - 1)) as u32;
    let chunk = u32::from(cell & CELL_SECOND != 0);
    let mut flags = 0;
    if cell & CELL_COPIED == 0 {
        flags |= MAPPED;
    }
    if cell & CELL_PLAIN != 0 {
        flags |= PLAIN;
    }
    Entry {
        rank: u32::try_from(rank).expect("invariant: fewer names than rows"),
        chunk: chunk | flags,
        start,
        end: start + len,
    }
}

/// An [`Entry`] as stored: `[rank + 1, chunk, start, end]`, all zero for none.
/// All zero, a new table of cells takes memory the system hands out zeroed, so
/// nothing is written to the cells that stay empty.
type Cell = [u32; 4];

fn to_cell(e: Entry) -> Cell {
    [e.rank + 1, e.chunk, e.start, e.end]
}

fn from_cell(c: &Cell) -> Option<Entry> {
    let [rank, chunk, start, end] = *c;
    (rank != 0).then(|| Entry {
        rank: rank - 1,
        chunk,
        start,
        end,
    })
}

#[derive(Clone, Copy)]
struct Entry {
    /// Position of the name in `AttrTable::names`.
    rank: u32,
    /// The chunk, or'ed with [`PLAIN`] and [`MAPPED`] as its row was.
    chunk: u32,
    start: u32,
    end: u32,
}

impl AttrTable {
    /// The entries of slot `s`, sorted by name.
    fn slot(&self, s: usize) -> Slot<'_> {
        match &self.layout {
            Layout::Lists { starts, entries } => {
                Slot::List(entries[starts[s] as usize..starts[s + 1] as usize].iter())
            }
            Layout::Columns { at, columns } => Slot::Columns {
                columns,
                at: at[s] as usize,
                rank: 0,
            },
        }
    }

    /// Group the rows of `chunks` by resource: slot `s` is resource `ids[s]`
    /// (`ids` ascending); rows of other resources are dropped. `file` is the
    /// mapped file of values left in place, if any.
    pub(super) fn group(
        mut chunks: Vec<Chunk>,
        file: Option<PageFile>,
        ids: impl ExactSizeIterator<Item = i64> + Clone,
    ) -> AttrTable {
        // One sorted list of names, and each chunk's local index → its rank.
        // Names seen but not wanted have no rows, and no rank.
        let mut names: Vec<String> = chunks
            .iter()
            .flat_map(|c| c.names.iter().zip(&c.wanted).filter(|(_, &w)| w))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        let ranks: Vec<Vec<u32>> = chunks
            .iter()
            .map(|c| {
                c.names
                    .iter()
                    .map(|n| {
                        names.binary_search(n).map_or(u32::MAX, |i| {
                            u32::try_from(i).expect("invariant: fewer names than rows")
                        })
                    })
                    .collect()
            })
            .collect();
        // Chunks in column mode are laid out already: their columns are
        // merged by name, each row having been read by one of them.
        if let Some(Columns { lo, span, .. }) = chunks.first().and_then(|c| c.columns.as_ref()) {
            let (lo, span) = (*lo, *span);
            assert!(chunks.len() <= 2, "a page scan makes one chunk per thread");
            let at = ids
                .map(|id| {
                    id.checked_sub(lo)
                        .and_then(|d| u32::try_from(d).ok())
                        .filter(|&at| (at as usize) < span)
                        .unwrap_or(u32::MAX)
                })
                .collect();
            let mut columns: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
            for (ci, (c, ranks)) in chunks.iter_mut().zip(&ranks).enumerate() {
                let Some(mine) = c.columns.as_mut() else {
                    continue;
                };
                let second = if ci == 0 { 0 } else { CELL_SECOND };
                // Set cells of the second chunk are tagged (branch-free).
                let tag = |c: u64| c | ((c >> 63) * second);
                for (local, column) in mine.cells.iter_mut().enumerate() {
                    let rank = ranks.get(local).copied().unwrap_or(u32::MAX);
                    if rank == u32::MAX || column.is_empty() {
                        continue;
                    }
                    let merged = &mut columns[rank as usize];
                    if merged.is_empty() {
                        // The column of the first chunk to have the name is
                        // taken as it is, not copied.
                        *merged = std::mem::take(column);
                        if second != 0 {
                            merged.iter_mut().for_each(|c| *c = tag(*c));
                        }
                    } else {
                        for (m, &c) in merged.iter_mut().zip(column.iter()) {
                            *m |= tag(c);
                        }
                    }
                }
            }
            return AttrTable {
                chunks,
                file,
                names,
                layout: Layout::Columns { at, columns },
            };
        }
        let nslots = ids.len();
        let slots = &SlotMap::new(ids);
        let total: usize = chunks.iter().map(|c| c.rows.len()).sum();
        let parallel = chunks.len() == 2 && total >= PARALLEL_MIN_ROWS_USIZE;
        // Most resources have most of the names read: then each slot gets a row
        // of a matrix, a cell per name, filled in one pass without sorting.
        let width = names.len();
        let cells = nslots
            .checked_mul(width)
            .filter(|&cells| cells <= total.saturating_mul(2).saturating_add(1024))
            .and_then(|cells| u32::try_from(cells).ok());
        if let Some(cells) = cells {
            let mut entries: Vec<Cell> = vec![[0; 4]; cells as usize];
            let fill = |lo: usize, hi: usize, out: &mut [Cell]| {
                for (ci, c) in chunks.iter().enumerate() {
                    let chunk = u32::try_from(ci).expect("invariant: few chunks");
                    for r in &c.rows {
                        let Some(s) = slots.get(r.machine).filter(|s| (lo..hi).contains(s)) else {
                            continue;
                        };
                        let rank = ranks[ci][(r.name & !FLAGS) as usize];
                        out[(s - lo) * width + rank as usize] = to_cell(Entry {
                            rank,
                            chunk: chunk | (r.name & FLAGS),
                            start: r.start,
                            end: r.end,
                        });
                    }
                }
            };
            if parallel {
                let mid = nslots / 2;
                let (a, b) = entries.split_at_mut(mid * width);
                both(|| fill(0, mid, a), || fill(mid, nslots, b));
            } else {
                fill(0, nslots, &mut entries);
            }
            let starts = (0..=nslots).map(|s| (s * width) as u32).collect();
            return AttrTable {
                chunks,
                file,
                names,
                layout: Layout::Lists { starts, entries },
            };
        }
        // Otherwise a counting sort by slot: count, prefix sums, scatter; on
        // large reads the counting runs on one thread per chunk, the scatter on
        // one per half of the slots (each writing its own part of `entries`).
        let slot_rows = |c: &Chunk| -> (Vec<u32>, Vec<u32>) {
            let mut counts = vec![0u32; nslots + 1];
            let slot_of = c
                .rows
                .iter()
                .map(|r| match slots.get(r.machine) {
                    Some(s) => {
                        counts[s] += 1;
                        u32::try_from(s).expect("invariant: slots are u32")
                    }
                    None => u32::MAX,
                })
                .collect();
            (slot_of, counts)
        };
        let per_chunk: Vec<(Vec<u32>, Vec<u32>)> = if parallel {
            let (a, b) = both(|| slot_rows(&chunks[0]), || slot_rows(&chunks[1]));
            vec![a, b]
        } else {
            chunks.iter().map(slot_rows).collect()
        };
        let mut starts = vec![0u32; nslots + 1];
        for (_, counts) in &per_chunk {
            for (s, n) in starts[1..].iter_mut().zip(counts) {
                *s += n;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut entries: Vec<Cell> = vec![[0; 4]; starts[nslots] as usize];
        // Slots `lo..hi` into `out`, which is `entries` from slot `lo` on.
        let fill = |lo: usize, hi: usize, out: &mut [Cell]| {
            let base = starts[lo];
            let mut next: Vec<u32> = starts[lo..hi].iter().map(|s| s - base).collect();
            for (ci, (c, (slot_of, _))) in chunks.iter().zip(&per_chunk).enumerate() {
                let chunk = u32::try_from(ci).expect("invariant: few chunks");
                for (r, &s) in c.rows.iter().zip(slot_of) {
                    let s = s as usize;
                    if (lo..hi).contains(&s) {
                        let pos = &mut next[s - lo];
                        out[*pos as usize] = to_cell(Entry {
                            rank: ranks[ci][(r.name & !FLAGS) as usize],
                            chunk: chunk | (r.name & FLAGS),
                            start: r.start,
                            end: r.end,
                        });
                        *pos += 1;
                    }
                }
            }
            for w in starts[lo..=hi].windows(2) {
                out[(w[0] - base) as usize..(w[1] - base) as usize].sort_unstable_by_key(|c| c[0]);
            }
        };
        if parallel {
            let mid = nslots / 2;
            let (a, b) = entries.split_at_mut(starts[mid] as usize);
            both(|| fill(0, mid, a), || fill(mid, nslots, b));
        } else {
            fill(0, nslots, &mut entries);
        }
        AttrTable {
            chunks,
            file,
            names,
            layout: Layout::Lists { starts, entries },
        }
    }

    /// The attributes of slot `s`, sorted by name. Names are unique per resource
    /// (the table's primary key).
    pub(super) fn attrs(&self, s: usize) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.slot(s)
            .map(|e| (self.names[e.rank as usize].as_str(), self.value(&e)))
    }

    /// The value of attribute `name` of slot `s`.
    pub(super) fn get(&self, s: usize, name: &str) -> Option<&str> {
        let entry = match &self.layout {
            // The name first (a few short strings), then its one cell.
            Layout::Columns { at, columns } => {
                let rank = self.names.iter().position(|n| n == name)?;
                let cell = *columns[rank].get(at[s] as usize)?;
                (cell & CELL_SET != 0).then(|| entry_of_cell(rank, cell))?
            }
            Layout::Lists { .. } => self.slot(s).find(|e| self.names[e.rank as usize] == name)?,
        };
        Some(self.value(&entry))
    }

    fn value(&self, e: &Entry) -> &str {
        std::str::from_utf8(self.value_bytes(e))
            .expect("invariant: values read as text were checked for UTF-8 as they were read")
    }

    /// The attributes of slot `s` as (position in [`AttrTable::names`], value,
    /// whether the value needs no escaping), sorted by name. A value that needs
    /// escaping may also not be UTF-8 if it was left in the mapped file: whoever
    /// escapes it checks it on the way (see `pyjson::write_utf8_to`).
    pub(super) fn ranked(&self, s: usize) -> impl Iterator<Item = (usize, &[u8], bool)> + '_ {
        self.slot(s)
            .map(|e| (e.rank as usize, self.value_bytes(&e), e.chunk & PLAIN != 0))
    }

    /// Ask for every cache line of slot `s`'s values, so that they are on their
    /// way into the cache before they are used.
    pub(super) fn touch(&self, s: usize) {
        for e in self.slot(s) {
            for line in self.value_bytes(&e).chunks(64) {
                prefetch(line);
            }
        }
    }

    /// The bytes of a value.
    fn value_bytes(&self, e: &Entry) -> &[u8] {
        let range = e.start as usize..e.end as usize;
        match &self.file {
            Some(file) if e.chunk & MAPPED != 0 => &file.bytes()[range],
            _ => &self.chunks[(e.chunk & !FLAGS) as usize].text.as_bytes()[range],
        }
    }

    /// Every attribute name read, sorted by code point.
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    /// Roughly how many bytes a slot's attributes take on average (for
    /// balancing work).
    pub(super) fn mean_weight(&self) -> usize {
        let slots = match &self.layout {
            Layout::Lists { starts, .. } => starts.len().saturating_sub(1),
            Layout::Columns { at, .. } => at.len(),
        };
        let bytes: usize = self
            .chunks
            .iter()
            .map(|c| c.added_bytes + 32 * c.added)
            .sum();
        bytes / slots.max(1)
    }
}

/// Start loading the cache line that `bytes` begins in, without waiting for it.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(super) fn prefetch(bytes: &[u8]) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch is a hint: it never faults and changes no memory, and
    // SSE, which it needs, is part of every x86-64 CPU.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast()) }
}

/// Start loading the cache line that `bytes` begins in (by reading it, where
/// there is no prefetch instruction to call).
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn prefetch(bytes: &[u8]) {
    if let Some(&b) = bytes.first() {
        std::hint::black_box(b);
    }
}

/// The `ResourceAttrs` rows of one deployment's resources (names in `only`).
pub(super) fn scan_deployment(
    conn: &Connection,
    uuid: &str,
    only: Option<&[&str]>,
) -> rusqlite::Result<Chunk> {
    let mut chunk = Chunk::default();
    let mut stmt = conn.prepare_cached(
        "select a.machine, a.name, a.value from ResourceAttrs a join Resources r on r.id = a.machine where r.deployment = ?1",
    )?;
    chunk.read(stmt.query([uuid])?, only)?;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_means_no_json_escape() {
        for s in [
            "",
            "abc",
            "/nix/store/x-y_z.1",
            "~ !#$%&'()*+,-./:;<=>?@[]^`{|}",
        ] {
            assert!(is_plain(s.as_bytes()), "{s:?}");
        }
        let long = "x".repeat(100);
        for bad in ["\"", "\\", "\n", "\u{1f}", "\u{7f}", "é", "☃"] {
            assert!(!is_plain(bad.as_bytes()), "{bad:?}");
            // In the vectorised blocks and in the remainder.
            assert!(
                !is_plain(format!("{long}{bad}{long}").as_bytes()),
                "{bad:?}"
            );
            assert!(!is_plain(format!("{long}{bad}").as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn side_reader_refuses_a_snapshot_after_a_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.nixops");
        let sf = super::super::StateFile::open(&path).expect("create");
        let writer = Connection::open(&path).expect("writer");
        let main = &sf.conn;
        let begin_main = || {
            main.execute_batch("begin").expect("begin");
            rowid_bounds(main).expect("first read");
        };

        // Nothing committed between the side's look and the main read: joined.
        let side = SideReader::open(&path, Duration::from_secs(1)).expect("side");
        begin_main();
        let joined = side.join().expect("join");
        assert!(joined.is_some());
        main.execute_batch("commit").expect("end");

        // A commit in between: the snapshots could differ, the side is dropped.
        let side = SideReader::open(&path, Duration::from_secs(1)).expect("side");
        writer
            .execute("insert into Deployments(uuid) values ('x')", [])
            .expect("commit");
        begin_main();
        assert!(side.join().expect("join").is_none());
        main.execute_batch("commit").expect("end");
    }
}
