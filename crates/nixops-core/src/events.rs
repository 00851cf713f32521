//! Progress events: what the library tells the outside world while it works.
//!
//! Every long-running operation reports through a [`Reporter`]. The CLI turns the
//! same events into NixOps-style `machine> line` logs, a live view on a terminal,
//! or JSON lines (`--events FILE`). The library itself never prints.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The step of the pipeline an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Evaluate,
    Create,
    Connect,
    Build,
    Copy,
    Profile,
    Keys,
    Activate,
    Reboot,
    Check,
    Destroy,
    Deploy,
}

/// What happened in that phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The phase began.
    Started,
    /// A line of output of a program run in the phase, or a progress message.
    Log,
    /// A warning that does not stop anything.
    Warning,
    /// The phase finished successfully.
    Succeeded,
    /// The phase was not needed (e.g. the configuration was already active).
    Skipped,
    /// The phase failed; `error` says why.
    Failed,
}

/// One event. `machine` is `None` for events about the whole deployment.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch, with millisecond precision.
    pub time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub phase: Phase,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    pub fn new(machine: Option<&str>, phase: Phase, status: Status) -> Self {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_millis() as f64) / 1000.0)
            .unwrap_or(0.0);
        Event {
            time,
            machine: machine.map(str::to_owned),
            phase,
            status,
            message: None,
            store_path: None,
            error: None,
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn store_path(mut self, path: impl Into<String>) -> Self {
        self.store_path = Some(path.into());
        self
    }

    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("invariant: events always serialise")
    }
}

/// Receives events. Called from many threads at once.
pub trait Reporter: Send + Sync {
    fn report(&self, event: Event);

    /// The machines an operation will report about, in index order (for
    /// renderers that lay out one line or colour per machine).
    fn machines(&self, _names: &[String]) {}
}

/// A reporter that drops everything, for callers that don't care.
pub struct Discard;

impl Reporter for Discard {
    fn report(&self, _event: Event) {}
}

/// Convenience methods for reporting about one machine.
pub struct MachineReporter<'a> {
    pub reporter: &'a dyn Reporter,
    pub machine: &'a str,
}

impl MachineReporter<'_> {
    pub fn event(&self, phase: Phase, status: Status) -> Event {
        Event::new(Some(self.machine), phase, status)
    }

    pub fn send(&self, event: Event) {
        self.reporter.report(event);
    }

    pub fn log(&self, phase: Phase, line: impl Into<String>) {
        self.send(self.event(phase, Status::Log).message(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_documented_fields() {
        let mut ev = Event::new(Some("web1"), Phase::Activate, Status::Failed)
            .store_path("/nix/store/abc-nixos-system-web1")
            .error("unable to activate new configuration (exit code 4)");
        ev.time = 1.5;
        assert_eq!(
            ev.to_json_line(),
            r#"{"time":1.5,"machine":"web1","phase":"activate","status":"failed","store_path":"/nix/store/abc-nixos-system-web1","error":"unable to activate new configuration (exit code 4)"}"#
        );
    }
}
