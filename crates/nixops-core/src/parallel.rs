//! Running work on threads: one task per machine, with an optional limit on how
//! many run at once; and large outputs formatted in pieces on two threads.
//!
//! Nothing is cancelled when a machine's task fails: every task runs to completion
//! and every result is returned, in the order of the inputs, so the caller can
//! summarise.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Condvar, Mutex, PoisonError};

/// A counting semaphore: at most `limit` holders at once (`None`: no limit).
pub struct Limit {
    limit: Option<usize>,
    in_use: Mutex<usize>,
    freed: Condvar,
}

/// Holding a place in a [`Limit`]; the place is given back on drop.
pub struct Permit<'a>(&'a Limit);

impl Limit {
    /// At most `limit` at once (`Some(0)` counts as 1); `None`: no limit.
    pub fn new(limit: Option<usize>) -> Self {
        Limit {
            limit: limit.map(|l| l.max(1)),
            in_use: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// NixOps' convention: a negative number means no limit.
    pub fn from_nixops(n: i64) -> Self {
        Limit::new(usize::try_from(n).ok())
    }

    /// Wait for a place.
    pub fn acquire(&self) -> Permit<'_> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = self.limit {
            while *in_use >= limit {
                in_use = self.freed.wait(in_use).unwrap_or_else(|e| e.into_inner());
            }
        }
        *in_use += 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut in_use = self.0.in_use.lock().unwrap_or_else(|e| e.into_inner());
        *in_use -= 1;
        self.0.freed.notify_one();
    }
}

/// Run `task` on every item, each on its own thread, and collect the results in
/// input order. Concurrency is bounded by whatever [`Limit`]s the task takes.
pub fn for_each<T, R, F>(items: Vec<T>, task: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let task = &task;
                scope.spawn(move || task(item))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// How many pieces past the next one to hand out the other thread of
/// [`in_order`] may have taken: a bound on the buffers in use when handing out
/// is slow.
const AHEAD: usize = 3;

/// Format pieces `0..n` with `format` on this thread and one more, and hand them
/// to `sink` in order from this thread, up to the first that fails. Buffers go
/// back to a pool once handed out, so a large output (an export, a table of
/// thousands of machines) reuses a few buffers of `capacity` bytes instead of
/// touching fresh memory for all of its text.
pub fn in_order<E: Send>(
    n: usize,
    capacity: usize,
    format: impl Fn(usize, &mut Vec<u8>) -> Result<(), E> + Sync,
    sink: &mut impl FnMut(&[u8]),
) -> Result<(), E> {
    struct Shared<E> {
        /// Formatted pieces not yet handed out, by number.
        done: Vec<Option<Result<Vec<u8>, E>>>,
        /// Buffers handed out, to format into again.
        pool: Vec<Vec<u8>>,
        /// How many pieces were handed out.
        written: usize,
        /// The other thread has stopped (done, or panicked).
        helper_gone: bool,
    }
    let shared = Mutex::new(Shared {
        done: (0..n).map(|_| None).collect(),
        pool: Vec::new(),
        written: 0,
        helper_gone: false,
    });
    // Notified when a piece is done or handed out.
    let changed = Condvar::new();
    let next = AtomicUsize::new(0);
    let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
    let wait = |guard| changed.wait(guard).unwrap_or_else(PoisonError::into_inner);
    // Take piece numbers until none is left; false when there was none.
    let format_one = || -> bool {
        let piece = next.fetch_add(1, AtomicOrdering::Relaxed);
        if piece >= n {
            return false;
        }
        // Sized for a piece up front (`capacity`): growing would copy what
        // was written.
        let mut buf = lock()
            .pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(capacity));
        let result = format(piece, &mut buf).map(|()| buf);
        if result.is_err() {
            // No more pieces: the output stops at this one.
            next.store(n, AtomicOrdering::Relaxed);
        }
        lock().done[piece] = Some(result);
        changed.notify_all();
        true
    };
    // The other thread's turn: wait while it is `AHEAD` pieces ahead of the
    // writer, then format a piece; false when none was left.
    let take_turn = || -> bool {
        let mut guard = lock();
        loop {
            let piece = next.load(AtomicOrdering::Relaxed);
            if piece >= n || piece < guard.written + AHEAD {
                break;
            }
            guard = wait(guard);
        }
        drop(guard);
        format_one()
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // However it stops, this thread says so: the other must not
            // wait for a piece it will never format.
            let _gone = OnDrop(|| {
                lock().helper_gone = true;
                changed.notify_all();
            });
            while take_turn() {}
        });
        // However this thread leaves (an error, a panic), the other takes no
        // more pieces and stops waiting for room.
        let _stop = OnDrop(|| {
            let guard = lock();
            next.store(n, AtomicOrdering::Relaxed);
            drop(guard);
            changed.notify_all();
        });
        let mut written = 0;
        while written < n {
            let ready_piece = lock().done[written].take();
            match ready_piece {
                Some(Ok(mut buf)) => {
                    sink(&buf);
                    buf.clear();
                    written += 1;
                    let mut guard = lock();
                    guard.pool.push(buf);
                    guard.written = written;
                    drop(guard);
                    changed.notify_all();
                }
                Some(Err(e)) => return Err(e),
                None => {
                    if !format_one() {
                        // Everything is taken: wait for the other thread's piece.
                        let mut guard = lock();
                        while guard.done[written].is_none() {
                            if guard.helper_gone {
                                // It panicked with this piece: the scope
                                // raises its panic once this returns.
                                return Ok(());
                            }
                            guard = wait(guard);
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

/// Runs its closure when dropped, also while a panic unwinds.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn limit_bounds_concurrency_and_results_keep_order() {
        let limit = Limit::new(Some(2));
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = for_each((0..8).collect(), |i: u32| {
            let _p = limit.acquire();
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 10
        });
        assert_eq!(out, (0..8).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn pieces_come_out_in_order_up_to_the_first_failure() {
        let format = |piece: usize, out: &mut Vec<u8>| {
            // Later pieces are quicker: they are ready before earlier ones.
            std::thread::sleep(Duration::from_micros(200 * (50 - piece as u64)));
            out.extend_from_slice(format!("{piece},").as_bytes());
            if piece == 37 {
                return Err(piece);
            }
            Ok(())
        };
        let mut text = Vec::new();
        let done = in_order(30, 4, format, &mut |p: &[u8]| text.extend_from_slice(p));
        assert_eq!(done, Ok(()));
        let want: String = (0..30).map(|i| format!("{i},")).collect();
        assert_eq!(String::from_utf8(text).expect("utf-8"), want);

        let mut text = Vec::new();
        let done = in_order(50, 4, format, &mut |p: &[u8]| text.extend_from_slice(p));
        assert_eq!(done, Err(37));
        let want: String = (0..37).map(|i| format!("{i},")).collect();
        assert_eq!(String::from_utf8(text).expect("utf-8"), want);
    }

    #[test]
    fn a_slow_sink_keeps_few_buffers_in_use() {
        let mut buffers = std::collections::HashSet::new();
        let mut text = Vec::new();
        let format = |piece: usize, out: &mut Vec<u8>| -> Result<(), ()> {
            out.extend_from_slice(format!("{piece},").as_bytes());
            Ok(())
        };
        let done = in_order(40, 64, format, &mut |p: &[u8]| {
            std::thread::sleep(Duration::from_millis(2));
            buffers.insert(p.as_ptr() as usize);
            text.extend_from_slice(p);
        });
        assert_eq!(done, Ok(()));
        let want: String = (0..40).map(|i| format!("{i},")).collect();
        assert_eq!(String::from_utf8(text).expect("utf-8"), want);
        // The pieces in flight: this thread's, the one being handed out, and
        // the other thread's, up to AHEAD (3) past it; not one per piece.
        assert!(buffers.len() <= 5, "{} buffers", buffers.len());
    }

    #[test]
    fn a_panic_while_formatting_is_raised_not_a_hang() {
        for bad in [0, 1, 5, 29] {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let result = std::panic::catch_unwind(|| {
                    let format = |piece: usize, out: &mut Vec<u8>| -> Result<(), ()> {
                        // Let either thread get to the bad piece.
                        std::thread::sleep(Duration::from_micros(300));
                        assert_ne!(piece, bad, "a bug in formatting");
                        out.push(b'x');
                        Ok(())
                    };
                    in_order(30, 8, format, &mut |_: &[u8]| {})
                });
                let _ = tx.send(result.is_err());
            });
            let panicked = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("in_order returns or panics instead of hanging");
            assert!(panicked, "the panic of piece {bad} is raised");
        }
    }

    #[test]
    fn negative_means_unlimited() {
        let limit = Limit::from_nixops(-1);
        let permits: Vec<_> = (0..100).map(|_| limit.acquire()).collect();
        assert_eq!(permits.len(), 100);
    }
}
