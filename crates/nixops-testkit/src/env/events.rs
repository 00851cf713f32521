//! The `--events` JSON lines of a `nixops deploy`, read back for assertions:
//! which machine reached which phase with which status, and when.

use std::path::Path;
use std::time::{Duration, Instant};

/// One `--events` JSON line.
#[derive(Clone, Debug)]
pub struct Ev {
    /// Seconds since the epoch.
    pub time: f64,
    pub machine: Option<String>,
    pub phase: String,
    pub status: String,
    pub message: Option<String>,
    pub error: Option<String>,
    pub store_path: Option<String>,
}

/// The events of one deploy, in the order they were written.
#[derive(Clone, Debug, Default)]
pub struct Events(pub Vec<Ev>);

impl Events {
    /// The events in `path` so far (none if it does not exist yet). Panics on
    /// a line that is not an event.
    pub fn read(path: &Path) -> Events {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let evs = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("events line is not JSON ({e}): {l}"));
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
                Ev {
                    time: v["time"].as_f64().expect("every event has a time"),
                    machine: s("machine"),
                    phase: s("phase").expect("every event has a phase"),
                    status: s("status").expect("every event has a status"),
                    message: s("message"),
                    error: s("error"),
                    store_path: s("store_path"),
                }
            })
            .collect();
        Events(evs)
    }

    /// Whether `machine` had an event of `phase` with `status`.
    pub fn has(&self, machine: &str, phase: &str, status: &str) -> bool {
        self.find(machine, phase, status).is_some()
    }

    /// The machines with an event of `phase` and `status`, sorted, deduplicated.
    pub fn machines_with(&self, phase: &str, status: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|e| e.phase == phase && e.status == status)
            .filter_map(|e| e.machine.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every machine any event is about, sorted, deduplicated.
    pub fn machines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.0.iter().filter_map(|e| e.machine.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The first event of `machine` with `phase` and `status`.
    pub fn find(&self, machine: &str, phase: &str, status: &str) -> Option<&Ev> {
        self.0.iter().find(|e| {
            e.machine.as_deref() == Some(machine) && e.phase == phase && e.status == status
        })
    }

    /// The `error` of `machine`'s first failed event, if any.
    pub fn failure(&self, machine: &str) -> Option<String> {
        self.0
            .iter()
            .find(|e| e.machine.as_deref() == Some(machine) && e.status == "failed")
            .and_then(|e| e.error.clone())
    }
}

/// Wait until `pred` holds on the events written to `path` so far, at most
/// `timeout`; whether it did.
pub fn wait_for_event(path: &Path, timeout: Duration, pred: impl Fn(&Events) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred(&Events::read(path)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
