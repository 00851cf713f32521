//! Reading `Resources` and `ResourceAttrs` straight from the database file's pages.
//!
//! Owns the fastest bulk read of the two tables that grow with the machines: a
//! walk of their b-trees in the SQLite file format (database header, table
//! b-tree pages, cells, overflow chains, records) through a read-only mapping of
//! the file, `ResourceAttrs` on two threads. SQLite's own scan of a large state
//! file spends most of its time in its virtual machine and its column accessors;
//! the rows of these tables are a few plain columns, decoded here directly.
//!
//! It is only used where it reads exactly what SQLite would (see
//! [`PageFile::open`]), and it gives up on anything it does not expect (a page
//! of an unexpected kind, a record with other columns, text that is not UTF-8,
//! any offset out of bounds): the caller then reads with SQLite, which reports a
//! real problem as such. It never writes.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

use super::scan::{prefetch, Chunk};

/// B-tree page kinds (the first byte of a page header).
const INTERIOR_TABLE: u8 = 5;
const LEAF_TABLE: u8 = 13;

/// How many blocks the leaves of `ResourceAttrs` are split into, taken in turn
/// by the threads: one from the front, the other from the back, so that each
/// reads one part of the file. In a file written attribute by attribute, each
/// then meets about half of the names and makes a column for only those.
const BLOCKS: usize = 32;

/// Tables with fewer leaves than this (a megabyte of 4 KiB pages) are read on
/// one thread: a second costs more to start than it saves.
const PARALLEL_LEAVES: usize = 256;

/// Deeper than any table b-tree of a file that fits on a disk: a guard against
/// a page that points back to its parent.
const MAX_DEPTH: usize = 16;

#[cfg(test)]
thread_local! {
    static DIRECT_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static RESOURCE_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many scans of `ResourceAttrs` this thread read from the pages.
#[cfg(test)]
pub(super) fn direct_reads() -> usize {
    DIRECT_READS.with(std::cell::Cell::get)
}

/// How many reads of all of `Resources` this thread made from the pages.
#[cfg(test)]
pub(super) fn resource_reads() -> usize {
    RESOURCE_READS.with(std::cell::Cell::get)
}

/// Where the values of a bulk read end up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Values {
    /// Copied out of the file, checked for UTF-8.
    Copy,
    /// Left in the mapped file, unchecked: whoever reads them checks them.
    InPlace,
    /// Left in the mapped file, checked for UTF-8 as they are read (only
    /// those that are wanted).
    Checked,
}

/// The database file, mapped, with the roots of the two tables read here.
pub(super) struct PageFile {
    map: Mapped,
    page_size: usize,
    /// The page size less the bytes reserved at the end of each page.
    usable: usize,
    /// Pages in the file.
    pages: u64,
    resources_root: u32,
    attrs_root: u32,
}

impl PageFile {
    /// The database at `path` ready to be read page by page, or `None` when it
    /// cannot be read this way.
    ///
    /// Call inside `conn`'s read transaction, after its first read, and read
    /// only while it lasts. Consistency: in WAL mode, a connection that began
    /// reading while the WAL held no frames not yet copied into the database
    /// reads the database file alone, under SQLite's read lock 0, and no
    /// checkpoint can write to the database file while that lock is held. Such a
    /// reader finds the WAL file missing or empty (a WAL that still holds frames
    /// is never emptied while a reader may use them): only then is the file
    /// read directly. In rollback-journal mode the connection's shared lock keeps
    /// writers out of the file.
    pub(super) fn open(path: &Path, conn: &Connection) -> Option<PageFile> {
        let root = |table: &str| -> Option<u32> {
            let n: i64 = conn
                .query_row(
                    "select rootpage from sqlite_master where type = 'table' and name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .ok()?;
            u32::try_from(n).ok()
        };
        let (resources_root, attrs_root) = (root("Resources")?, root("ResourceAttrs")?);
        match std::fs::metadata(super::wal_path(path)) {
            Ok(m) if m.len() > 0 => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
        let file = File::open(path).ok()?;
        let mut header = [0u8; 100];
        file.read_exact_at(&mut header, 0).ok()?;
        if &header[..16] != b"SQLite format 3\0" || be32(&header, 56)? != 1 {
            // Not SQLite, or text stored as UTF-16.
            return None;
        }
        let page_size = match be16(&header, 16)? {
            1 => 65_536,
            n => n,
        };
        if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
            return None;
        }
        let usable = page_size - usize::from(header[20]);
        if usable < 480 {
            return None;
        }
        let pages = file.metadata().ok()?.len() / page_size as u64;
        Some(PageFile {
            map: Mapped::new(&file, usize::try_from(pages).ok()? * page_size)?,
            page_size,
            usable,
            pages,
            resources_root,
            attrs_root,
        })
    }

    /// The whole file.
    pub(super) fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Where `part`, a slice of [`PageFile::bytes`], starts in the file, if it is
    /// one and the file is small enough for 32-bit offsets.
    fn offset_of(&self, part: &[u8]) -> Option<u32> {
        let bytes = self.map.bytes();
        let at = (part.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
        let end = at.checked_add(part.len())?;
        if end > bytes.len() {
            return None;
        }
        u32::try_from(end).ok()?;
        u32::try_from(at).ok()
    }

    /// Start loading page `next`, if any, so that it is on its way while the
    /// page before it is decoded.
    fn prefetch_page(&self, next: Option<&u32>) {
        if let Some(page) = next.and_then(|&n| self.page(n)) {
            page.chunks(64).for_each(prefetch);
        }
    }

    /// Page `n`.
    fn page(&self, n: u32) -> Option<&[u8]> {
        if n < 2 || u64::from(n) > self.pages {
            // Page 1 holds the schema; a number past the end is corruption.
            return None;
        }
        let at = (n - 1) as usize * self.page_size;
        self.map.bytes().get(at..at + self.page_size)
    }

    /// The leaves of the table b-tree rooted at page `root`, in rowid order. All
    /// leaves of a b-tree are at the same depth: the path down the first
    /// children tells which level holds them, without reading them.
    fn leaves(&self, root: u32) -> Option<Vec<u32>> {
        let mut level = vec![root];
        for _ in 0..MAX_DEPTH {
            match self.page(*level.first()?)?[0] {
                LEAF_TABLE => return Some(level),
                INTERIOR_TABLE => {}
                _ => return None,
            }
            let mut children = Vec::new();
            for &n in &level {
                let page = self.page(n)?;
                if page[0] != INTERIOR_TABLE {
                    return None;
                }
                for i in 0..be16(page, 3)? {
                    children.push(be32(page, be16(page, 12 + 2 * i)?)?);
                }
                children.push(be32(page, 8)?);
                if children.len() as u64 > self.pages {
                    return None;
                }
            }
            level = children;
        }
        None
    }

    /// The leaves of `Resources`, with its number of rows.
    pub(super) fn resources(&self) -> Option<ResourceTable<'_>> {
        let leaves = self.leaves(self.resources_root)?;
        Some(ResourceTable {
            file: self,
            len: self.cells(&leaves)?,
            leaves,
        })
    }

    /// How many cells (rows) the leaves `leaves` hold, from their headers.
    fn cells(&self, leaves: &[u32]) -> Option<usize> {
        leaves
            .iter()
            .try_fold(0, |n, &leaf| Some(n + be16(self.page(leaf)?, 3)?))
    }

    /// Every row of `ResourceAttrs` (names in `only`), read on this thread and,
    /// for a large table, one more, while `main_work` runs here first.
    /// [`Values::InPlace`] leaves values in the mapped file (only those that
    /// spill onto overflow pages are copied): then the file must stay mapped,
    /// and the read transaction open, for as long as the values are used. `text_hint` bounds
    /// the bytes of values one thread may copy. Returns `main_work`'s result and
    /// one chunk per thread, or `None` for the chunks if a page could not be
    /// read as expected. Rows are grouped by resource afterwards, so the leaves
    /// are read in file order.
    pub(super) fn scan_attrs<T>(
        &self,
        only: Option<&[&str]>,
        values: Values,
        text_hint: usize,
        ids: Option<(i64, usize)>,
        main_work: impl FnOnce() -> T,
    ) -> (T, Option<Vec<Chunk>>) {
        let Some(mut leaves) = self.leaves(self.attrs_root) else {
            return (main_work(), None);
        };
        leaves.sort_unstable();
        let per_block = leaves.len().div_ceil(BLOCKS).max(1);
        let blocks = leaves.len().div_ceil(per_block);
        // Room for every row, unless rows go into columns.
        let rows = match ids {
            Some(_) => 0,
            None => match self.cells(&leaves) {
                Some(rows) => rows,
                None => return (main_work(), None),
            },
        };
        // The blocks not taken yet: `ends.0..ends.1`.
        let ends = Mutex::new((0, blocks));
        let ends = || ends.lock().unwrap_or_else(PoisonError::into_inner);
        let take = |from_back: bool| {
            let mut ends = ends();
            if ends.0 >= ends.1 {
                return None;
            }
            if from_back {
                ends.1 -= 1;
                Some(ends.1)
            } else {
                ends.0 += 1;
                Some(ends.0 - 1)
            }
        };
        let work = |from_back: bool| -> Option<Chunk> {
            let copy = values == Values::Copy;
            let text = if copy { text_hint } else { 0 };
            let mut chunk = match ids {
                Some((lo, span)) => Chunk::with_columns(text, lo, span, text_hint),
                None => Chunk::with_capacity(text, rows),
            };
            let mut reader = CellReader::new(self);
            let mut last = None;
            let mut read = |_rowid, payload: &[u8]| -> Option<()> {
                let (machine, name, value) = attr_record(payload)?;
                let Some(name) = chunk.wanted(&mut last, name, only).ok()? else {
                    return Some(());
                };
                match self.offset_of(value).filter(|_| !copy) {
                    Some(_) if values == Values::Checked && std::str::from_utf8(value).is_err() => {
                        // As a copy would: SQLite reads the file, and says why.
                        None
                    }
                    Some(at) => chunk.push_mapped(machine, name, at, value.len()).ok(),
                    None => chunk.push(machine, name, value).ok(),
                }
            };
            loop {
                let Some(k) = take(from_back) else {
                    return Some(chunk);
                };
                let block = &leaves[k * per_block..((k + 1) * per_block).min(leaves.len())];
                let mut read_block = || {
                    for (i, &n) in block.iter().enumerate() {
                        self.prefetch_page(block.get(i + 1));
                        reader.payloads(n, &mut read)?;
                    }
                    Some(())
                };
                if read_block().is_none() {
                    // Stop the other thread early: its result no longer matters.
                    let mut ends = ends();
                    ends.0 = ends.1;
                    return None;
                }
            }
        };
        let (t, chunks) = if leaves.len() < PARALLEL_LEAVES {
            let t = main_work();
            (t, work(false).map(|chunk| vec![chunk]))
        } else {
            std::thread::scope(|s| {
                let other = s.spawn(|| work(true));
                let t = main_work();
                let mine = work(false);
                let other = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (t, mine.zip(other).map(|(a, b)| vec![a, b]))
            })
        };
        #[cfg(test)]
        if chunks.is_some() {
            DIRECT_READS.with(|n| n.set(n.get() + 1));
        }
        (t, chunks)
    }
}

/// The `Resources` table, ready to be read.
pub(super) struct ResourceTable<'a> {
    file: &'a PageFile,
    leaves: Vec<u32>,
    /// How many rows it has.
    pub(super) len: usize,
}

impl ResourceTable<'_> {
    /// The first id and the span of ids of the table, when they are dense
    /// enough to index a table by: see [`Chunk::with_columns`].
    pub(super) fn dense_ids(&self) -> Option<(i64, usize)> {
        let first = self.file.page(*self.leaves.first()?)?;
        let last = self.file.page(*self.leaves.last()?)?;
        let lo = cell_header(first, 0)?.1;
        let hi = cell_header(last, be16(last, 3)?.checked_sub(1)?)?.1;
        let span = usize::try_from(i128::from(hi) - i128::from(lo) + 1).ok()?;
        (span <= self.len.saturating_mul(4).saturating_add(1024)).then_some((lo, span))
    }

    /// Every row (`id, deployment, name, type`), in id order.
    pub(super) fn read(&self, mut row: impl FnMut(i64, &[u8], &[u8], &[u8])) -> Option<()> {
        let mut reader = CellReader::new(self.file);
        for (i, &n) in self.leaves.iter().enumerate() {
            self.file.prefetch_page(self.leaves.get(i + 1));
            reader.records(n, |rowid, r| {
                // `id` is the rowid (`integer primary key`): stored as null.
                if r.len() != 4 || r.serial_type(0) != 0 {
                    return None;
                }
                row(rowid, r.text(1)?, r.text(2)?, r.text(3)?);
                Some(())
            })?;
        }
        #[cfg(test)]
        RESOURCE_READS.with(|n| n.set(n.get() + 1));
        Some(())
    }
}

/// Reads the cells of table leaves; keeps the buffer for payloads that spill
/// onto overflow pages.
struct CellReader<'a> {
    file: &'a PageFile,
    spilled: Vec<u8>,
}

impl<'a> CellReader<'a> {
    fn new(file: &'a PageFile) -> CellReader<'a> {
        CellReader {
            file,
            spilled: Vec::new(),
        }
    }

    /// Call `f` with the rowid and record of each cell of leaf page `n`.
    fn records(&mut self, n: u32, mut f: impl FnMut(i64, &Record<'_>) -> Option<()>) -> Option<()> {
        self.payloads(n, |rowid, payload| f(rowid, &Record::parse(payload)?))
    }

    /// Call `f` with the rowid and the payload (the record) of each cell of
    /// leaf page `n`: in the page, or gathered from its overflow pages.
    fn payloads(&mut self, n: u32, mut f: impl FnMut(i64, &[u8]) -> Option<()>) -> Option<()> {
        let page = self.file.page(n)?;
        if page[0] != LEAF_TABLE {
            return None;
        }
        let usable = self.file.usable;
        for i in 0..be16(page, 3)? {
            let (len, rowid, at) = cell_header(page, i)?;
            let local = local_payload(len, usable);
            if local == len {
                f(rowid, page.get(at..at + len)?)?;
            } else {
                self.spilled.clear();
                self.spilled.extend_from_slice(page.get(at..at + local)?);
                self.follow_overflow(be32(page, at + local)?, len)?;
                f(rowid, &self.spilled)?;
            }
        }
        Some(())
    }

    /// Append the rest of a payload of `len` bytes to `self.spilled` from its
    /// overflow pages, starting at page `next`.
    fn follow_overflow(&mut self, mut next: u32, len: usize) -> Option<()> {
        let room = self.file.usable - 4;
        // Each page adds at least one byte, so a chain that loops ends here too.
        while self.spilled.len() < len {
            let page = self.file.page(next)?;
            let take = (len - self.spilled.len()).min(room);
            self.spilled.extend_from_slice(page.get(4..4 + take)?);
            next = be32(page, 0)?;
        }
        Some(())
    }
}

/// Cell `i` of table leaf `page`: its payload's length, its rowid, and where
/// its payload begins in the page.
fn cell_header(page: &[u8], i: usize) -> Option<(usize, i64, usize)> {
    let mut at = be16(page, 8 + 2 * i)?;
    let (len, n) = varint(page, at)?;
    at += n;
    let (rowid, n) = varint(page, at)?;
    at += n;
    // Rowids are stored as two's complement 64-bit integers.
    Some((usize::try_from(len).ok()?, rowid as i64, at))
}

/// The most columns a record read here has.
const MAX_COLUMNS: usize = 4;

/// One record: its columns' serial types and where their values are.
struct Record<'p> {
    payload: &'p [u8],
    /// Per column: serial type, and offset of the value in `payload`.
    columns: [(u64, usize); MAX_COLUMNS],
    len: usize,
}

impl<'p> Record<'p> {
    /// Decode the header of `payload`; `None` for more than [`MAX_COLUMNS`]
    /// columns or a header that does not fit.
    fn parse(payload: &'p [u8]) -> Option<Record<'p>> {
        let (header_len, mut at) = varint(payload, 0)?;
        let header_len = usize::try_from(header_len).ok()?;
        let mut columns = [(0, 0); MAX_COLUMNS];
        let mut len = 0;
        let mut offset = header_len;
        while at < header_len {
            let (t, n) = varint(payload, at)?;
            at += n;
            *columns.get_mut(len)? = (t, offset);
            len += 1;
            offset += value_len(t)?;
        }
        (at == header_len && offset <= payload.len()).then_some(Record {
            payload,
            columns,
            len,
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    fn serial_type(&self, i: usize) -> u64 {
        self.columns[i].0
    }

    /// Column `i` if it is text.
    fn text(&self, i: usize) -> Option<&'p [u8]> {
        let (t, at) = self.columns[i];
        self.payload.get(at..at + text_len(t)?)
    }
}

/// The integer of serial type `t` at the start of `bytes`, if `t` is one.
#[inline]
fn int_value(t: u64, bytes: &[u8]) -> Option<i64> {
    match t {
        8 => Some(0),
        9 => Some(1),
        1..=6 => {
            let bytes = bytes.get(..value_len(t)?)?;
            // Big-endian two's complement, sign-extended from its first byte.
            let first = i64::from(*bytes.first()? as i8);
            Some(
                bytes[1..]
                    .iter()
                    .fold(first, |acc, &b| (acc << 8) | i64::from(b)),
            )
        }
        _ => None,
    }
}

/// A `ResourceAttrs` record, `(machine, name, value)`: an integer and two
/// texts, decoded straight from the header's three serial types (what
/// [`Record::parse`] and its accessors would give, for every row of the
/// largest table). `None` for any other record.
#[inline]
fn attr_record(payload: &[u8]) -> Option<(i64, &[u8], &[u8])> {
    let (header_len, mut at) = varint(payload, 0)?;
    let mut types = [0u64; 3];
    for t in &mut types {
        let (v, n) = varint(payload, at)?;
        *t = v;
        at += n;
    }
    if at as u64 != header_len {
        return None;
    }
    let [machine_type, name_type, value_type] = types;
    let (name_len, value_len_) = (text_len(name_type)?, text_len(value_type)?);
    let machine = int_value(machine_type, payload.get(at..)?)?;
    at += value_len(machine_type)?;
    let name = payload.get(at..at.checked_add(name_len)?)?;
    at += name_len;
    let value = payload.get(at..at.checked_add(value_len_)?)?;
    Some((machine, name, value))
}

/// The length of a text of serial type `t`; `None` if `t` is not a text's.
#[inline]
fn text_len(t: u64) -> Option<usize> {
    (t >= 13 && t % 2 == 1).then(|| value_len(t))?
}

/// The length of a value of serial type `t`; `None` for the reserved types.
fn value_len(t: u64) -> Option<usize> {
    match t {
        0 | 8 | 9 => Some(0),
        1..=4 => Some(t as usize),
        5 => Some(6),
        6 | 7 => Some(8),
        10 | 11 => None,
        _ => usize::try_from((t - 12) / 2).ok(),
    }
}

/// The database file mapped into memory, read-only: pages are read in place,
/// without a copy each (SQLite reads its own pages the same way).
struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

#[allow(unsafe_code)]
impl Mapped {
    /// Map the first `len` bytes of `file`, `None` if that fails.
    fn new(file: &File, len: usize) -> Option<Mapped> {
        if len == 0 {
            return None;
        }
        // SAFETY: a new read-only mapping at an address the kernel picks; it
        // touches no memory of this process.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Mapped {
            ptr: NonNull::new(ptr.cast())?,
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`.
        // Its bytes do not change while it is read: the file is only mapped
        // inside a SQLite read transaction under which no SQLite connection
        // writes to or truncates the database file (see `DirectScan::prepare`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[allow(unsafe_code)]
impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, no longer borrowed.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: the mapping is only ever read, and owned by one `Mapped`.
#[allow(unsafe_code)]
unsafe impl Send for Mapped {}
#[allow(unsafe_code)]
unsafe impl Sync for Mapped {}

/// How many bytes of a table leaf cell's payload of `len` bytes are stored on
/// the page itself (the file format's rule; the rest goes to overflow pages).
fn local_payload(len: usize, usable: usize) -> usize {
    let max_local = usable - 35;
    if len <= max_local {
        return len;
    }
    let min_local = (usable - 12) * 32 / 255 - 23;
    let k = min_local + (len - min_local) % (usable - 4);
    if k <= max_local {
        k
    } else {
        min_local
    }
}

/// A SQLite varint at `at`: its value and length.
#[inline]
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    // Most are one byte: lengths of short texts, small column counts.
    match b.get(at) {
        Some(&byte) if byte < 0x80 => Some((u64::from(byte), 1)),
        _ => long_varint(b, at),
    }
}

/// [`varint`] of two bytes or more.
#[inline]
fn long_varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..8 {
        let byte = *b.get(at + i)?;
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    Some(((v << 8) | u64::from(*b.get(at + 8)?), 9))
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    let bytes = b.get(at..at + 2)?;
    Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// Resources as the page reader returns them, and as SQLite does.
    type ResourceRows = Vec<(i64, String, String, String)>;

    /// Attributes (resource id, name, value) and resources, as read one way.
    type Read = (Vec<(i64, String, String)>, ResourceRows);

    /// A state file in NixOps' schema with `page_size`, filled by `fill`.
    fn state_file(page_size: u32, fill: impl FnOnce(&Connection)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("s.nixops")).expect("open");
        conn.execute_batch(&format!("pragma page_size = {page_size}"))
            .expect("page size");
        conn.execute_batch(super::super::SCHEMA_DDL)
            .expect("schema");
        conn.execute_batch("pragma journal_mode = wal")
            .expect("wal");
        fill(&conn);
        dir
    }

    /// What the page reader and SQLite read from the file in `dir`, sorted:
    /// (attributes, resources) each.
    fn both_reads(dir: &tempfile::TempDir) -> Option<[Read; 2]> {
        let path = dir.path().join("s.nixops");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("begin").expect("begin");
        let sql_attrs = {
            let mut stmt = conn
                .prepare("select machine, name, value from ResourceAttrs")
                .expect("prepare");
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("query");
            let mut v: Vec<(i64, String, String)> = rows.map(|r| r.expect("row")).collect();
            v.sort();
            v
        };
        let sql_resources = {
            let mut stmt = conn
                .prepare("select id, deployment, name, type from Resources order by id")
                .expect("prepare");
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query");
            rows.map(|r| r.expect("row")).collect::<ResourceRows>()
        };
        let file = PageFile::open(&path, &conn)?;
        let table = file.resources()?;
        // In rows, and in columns where the ids allow them: the same.
        let scan = |ids| -> Option<Vec<(i64, String, String)>> {
            let ((), chunks) = file.scan_attrs(None, Values::Copy, 1 << 20, ids, || ());
            let mut attrs: Vec<(i64, String, String)> = chunks?
                .iter()
                .flat_map(|c| c.triples())
                .map(|(m, n, v)| (m, n.to_owned(), v.to_owned()))
                .collect();
            attrs.sort();
            Some(attrs)
        };
        let attrs = scan(None)?;
        if let Some(ids) = table.dense_ids() {
            assert_eq!(scan(Some(ids)).as_ref(), Some(&attrs), "columns {ids:?}");
        }
        let mut resources = ResourceRows::new();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
        table.read(|id, d, n, t| resources.push((id, text(d), text(n), text(t))))?;
        assert_eq!(table.len, resources.len());
        Some([(attrs, resources), (sql_attrs, sql_resources)])
    }

    /// Resources with ids across every integer size, attributes from empty to
    /// several overflow pages long, in any script, some replaced and deleted.
    fn fill_varied(conn: &Connection) {
        fill_values(
            conn,
            [
                -7,
                1,
                2,
                200,
                40_000,
                9_000_000,
                3_000_000_000,
                1 << 44,
                1 << 60,
            ],
        );
    }

    /// [`fill_varied`] with ids dense enough for columns.
    fn fill_dense(conn: &Connection) {
        fill_values(conn, [0, 1, 2, 200, 201, 202, 203, 204, 205]);
    }

    fn fill_values(conn: &Connection, ids: [i64; 9]) {
        conn.execute("insert into Deployments values ('d')", [])
            .expect("deployment");
        for (i, id) in ids.iter().enumerate() {
            conn.execute(
                "insert into Resources (id, deployment, name, type) values (?1, 'd', ?2, 'none')",
                params![id, format!("machine-{i}")],
            )
            .expect("resource");
        }
        let values = [
            String::new(),
            "1".to_owned(),
            "tschüß ☃ \"quoted\" \\ back".to_owned(),
            "x".repeat(4061),
            "y".repeat(4062),
            "z".repeat(70_000),
            "w".repeat(500),
        ];
        for id in ids {
            for (k, v) in values.iter().enumerate() {
                conn.execute(
                    "insert into ResourceAttrs (machine, name, value) values (?1, ?2, ?3)",
                    params![id, format!("attr{k}"), v],
                )
                .expect("attr");
            }
        }
        // A new rowid for a replaced value, and free space where rows were.
        conn.execute(
            "insert or replace into ResourceAttrs values (200, 'attr1', 'replaced')",
            [],
        )
        .expect("replace");
        conn.execute(
            "delete from ResourceAttrs where name = 'attr6' and machine > 200",
            [],
        )
        .expect("delete");
    }

    #[test]
    fn pages_read_what_sqlite_reads() {
        for page_size in [512, 4096, 65_536] {
            for fill in [fill_varied, fill_dense] {
                let dir = state_file(page_size, fill);
                let [direct, sql] = both_reads(&dir).expect("read directly");
                assert_eq!(direct.0.len(), 9 * 7 - 5, "page size {page_size}");
                assert_eq!(direct.0, sql.0, "page size {page_size}");
                assert_eq!(direct.1, sql.1, "page size {page_size}");
            }
        }
        // Ids from -7 to 2^60 are far too sparse to index a table by.
        let dir = state_file(4096, fill_varied);
        let conn = Connection::open(dir.path().join("s.nixops")).expect("open");
        conn.execute_batch("begin").expect("begin");
        let file = PageFile::open(&dir.path().join("s.nixops"), &conn).expect("pages");
        assert_eq!(file.resources().expect("resources").dense_ids(), None);
    }

    #[test]
    fn deep_trees_are_walked_in_rowid_order() {
        // Small pages and many rows: three levels of interior pages.
        let dir = state_file(512, |conn| {
            conn.execute("insert into Deployments values ('d')", [])
                .expect("deployment");
            let tx = conn.unchecked_transaction().expect("tx");
            for id in 1..=3000 {
                tx.execute(
                    "insert into Resources (deployment, name, type) values ('d', ?1, 'none')",
                    [format!("m{id}")],
                )
                .expect("resource");
                for a in ["state", "publicIpv4", "configsPath"] {
                    tx.execute(
                        "insert into ResourceAttrs values (?1, ?2, ?3)",
                        params![id, a, format!("{a} of {id}")],
                    )
                    .expect("attr");
                }
            }
            tx.commit().expect("commit");
        });
        let [direct, sql] = both_reads(&dir).expect("read directly");
        assert_eq!(direct.0.len(), 9000);
        assert_eq!(direct, sql);
        // Read into columns too (in `both_reads`): the ids are dense.
        let conn = Connection::open(dir.path().join("s.nixops")).expect("open");
        conn.execute_batch("begin").expect("begin");
        let file = PageFile::open(&dir.path().join("s.nixops"), &conn).expect("pages");
        let table = file.resources().expect("resources");
        assert_eq!(table.dense_ids(), Some((1, 3000)));
    }

    #[test]
    fn a_wal_with_frames_is_left_to_sqlite() {
        let dir = state_file(4096, fill_varied);
        let path = dir.path().join("s.nixops");
        // A writer that keeps the WAL: its commits are not in the database file.
        let writer = Connection::open(&path).expect("writer");
        writer
            .execute_batch("pragma wal_autocheckpoint = 0")
            .expect("no checkpoint");
        writer
            .execute(
                "update ResourceAttrs set value = 'new' where name = 'attr1'",
                [],
            )
            .expect("write");
        assert!(both_reads(&dir).is_none());
        drop(writer);
    }

    #[test]
    fn attribute_records_are_an_integer_and_two_texts() {
        // Header: its length, then serial types: a 1-byte integer, texts of
        // 2 and 3 bytes (13 + 2 × length).
        let row = [4, 1, 17, 19, 5, b'a', b'b', b'x', b'y', b'z'];
        assert_eq!(attr_record(&row), Some((5, &b"ab"[..], &b"xyz"[..])));
        // A 2-byte integer, sign-extended; an empty value.
        let row = [4, 2, 17, 13, 0xff, 0xfe, b'a', b'b'];
        assert_eq!(attr_record(&row), Some((-2, &b"ab"[..], &b""[..])));
        // Integers 0 and 1 take no bytes.
        assert_eq!(attr_record(&[4, 9, 13, 13]), Some((1, &b""[..], &b""[..])));
        // Four columns, a name that is an integer, a value that is a blob, a
        // value cut short, a machine that is text: not such a record.
        for bad in [
            &[5, 1, 17, 19, 1, 5, b'a', b'b', b'x', b'y', b'z', 1][..],
            &[4, 1, 1, 19, 5, 7, b'x', b'y', b'z'],
            &[4, 1, 17, 18, 5, b'a', b'b', b'x', b'y', b'z'],
            &[4, 1, 17, 19, 5, b'a', b'b', b'x'],
            &[4, 15, 17, 19, b'q', b'a', b'b', b'x', b'y', b'z'],
        ] {
            assert_eq!(attr_record(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn varints_as_the_file_format_gives_them() {
        assert_eq!(varint(&[0x05], 0), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9], 0), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81], 0), None);
    }

    #[test]
    fn local_payload_follows_the_overflow_rule() {
        // 4096-byte pages: up to 4061 bytes stay on the page.
        assert_eq!(local_payload(4061, 4096), 4061);
        // Beyond: the minimum (489) plus what does not fill an overflow page,
        // unless that is more than fits.
        assert_eq!(local_payload(4062, 4096), 489);
        assert_eq!(local_payload(489 + 4092 * 2 + 100, 4096), 589);
        assert_eq!(local_payload(489 + 4092 * 2, 4096), 489);
    }
}
