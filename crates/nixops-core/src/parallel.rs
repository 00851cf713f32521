//! Running one task per machine on threads, with an optional limit on how many run
//! at once.
//!
//! Nothing is cancelled when a task fails: every task runs to completion and every
//! result is returned, in the order of the inputs, so the caller can summarise.

use std::sync::{Condvar, Mutex};

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
    fn negative_means_unlimited() {
        let limit = Limit::from_nixops(-1);
        let permits: Vec<_> = (0..100).map(|_| limit.acquire()).collect();
        assert_eq!(permits.len(), 100);
    }
}
