//! Rendering events on stderr the way NixOps logs: `machine> line`, names padded
//! to the longest machine name, one colour per machine on a terminal; and JSON
//! lines for `--events`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use nixops_core::events::{Event, Reporter, Status};

/// Colours NixOps cycles through for machine prefixes (`31 + index % 7`).
const COLOURS: usize = 7;

/// Writes events as NixOps-style log lines to stderr, and optionally as JSON lines
/// to a second sink.
pub struct LogRenderer {
    width: usize,
    colours: Vec<(String, usize)>,
    use_colour: bool,
    json: Option<Mutex<Box<dyn Write + Send>>>,
    /// Guards stderr, and holds the live view when there is one.
    stderr: Mutex<Live>,
    debug: bool,
}

/// The live view: one status line per machine under the log, redrawn on every
/// event (terminals only).
#[derive(Default)]
struct Live {
    enabled: bool,
    /// Lines of the footer currently on screen.
    drawn: usize,
    /// Machine → what it is doing, in index order.
    status: Vec<(String, String)>,
}

/// Footer lines are cut to this many characters so that none wraps.
const LIVE_WIDTH: usize = 78;

impl LogRenderer {
    /// `machines` are all names known to the deployment, in index order; they fix
    /// the prefix width and colours.
    pub fn new(machines: &[String], debug: bool) -> Self {
        let use_colour = std::io::stderr().is_terminal()
            && crate::env_vars::get(crate::env_vars::NO_COLOR).is_none();
        LogRenderer {
            width: machines
                .iter()
                .map(|m| m.chars().count())
                .max()
                .unwrap_or(0),
            colours: machines
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), i % COLOURS))
                .collect(),
            use_colour,
            json: None,
            stderr: Mutex::new(Live::default()),
            debug,
        }
    }

    /// Show a live per-machine status view under the log (only on a terminal).
    pub fn with_live_view(self) -> Self {
        let term_ok = std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false);
        if self.use_colour && term_ok && !self.debug {
            let mut live = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            live.enabled = true;
            live.status = self
                .colours
                .iter()
                .map(|(m, _)| (m.clone(), "waiting".to_owned()))
                .collect();
        }
        self
    }

    /// Also write every event as a JSON line to `sink`.
    pub fn with_json(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.json = Some(Mutex::new(sink));
        self
    }

    fn prefix(&self, machine: &str) -> String {
        let dots = ".".repeat(self.width.saturating_sub(machine.chars().count()));
        let plain = format!("{machine}{dots}> ");
        if !self.use_colour {
            return plain;
        }
        let colour = self
            .colours
            .iter()
            .find(|(m, _)| m == machine)
            .map(|(_, c)| *c)
            .unwrap_or(0);
        format!("\x1b[1;{}m{plain}\x1b[0m", 31 + colour)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.use_colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// The text line for an event, or `None` if it is not shown.
    fn line(&self, ev: &Event) -> Option<String> {
        let body = match ev.status {
            Status::Log => ev.message.clone()?,
            Status::Started => ev.message.clone()?,
            Status::Succeeded | Status::Skipped => {
                let msg = ev.message.clone()?;
                self.paint("1;32", &msg)
            }
            Status::Warning => {
                let msg = format!("warning: {}", ev.message.as_deref().unwrap_or(""));
                self.paint("1;33", &msg)
            }
            Status::Failed => {
                let msg = format!(
                    "error: {}",
                    ev.error.as_deref().or(ev.message.as_deref()).unwrap_or("")
                );
                self.paint("1;31", &msg)
            }
        };
        Some(match &ev.machine {
            Some(m) => format!("{}{body}", self.prefix(m)),
            None => body,
        })
    }
}

impl Reporter for LogRenderer {
    fn report(&self, event: Event) {
        if let Some(json) = &self.json {
            let mut sink = json.lock().unwrap_or_else(|e| e.into_inner());
            // A closed events sink must not stop the deployment.
            let _ = writeln!(sink, "{}", event.to_json_line());
            let _ = sink.flush();
        }
        if event.status == Status::Log && event.message.is_none() && !self.debug {
            return;
        }
        let line = self.line(&event);
        let mut live = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if live.enabled {
            if live.drawn > 0 {
                // Up to the footer's first line, and clear to the end of the screen.
                let _ = write!(err, "\x1b[{}A\x1b[J", live.drawn);
            }
            if let Some(line) = &line {
                let _ = writeln!(err, "{line}");
            }
            if let (Some(machine), Some(text)) = (&event.machine, live_status(&event)) {
                if let Some(slot) = live.status.iter_mut().find(|(m, _)| m == machine) {
                    slot.1 = text;
                }
            }
            for (machine, text) in &live.status {
                let row = format!(
                    "  {}{} {text}",
                    machine,
                    " ".repeat(self.width - machine.chars().count().min(self.width))
                );
                let row: String = row.chars().take(LIVE_WIDTH).collect();
                let _ = writeln!(err, "\x1b[2m{row}\x1b[0m");
            }
            live.drawn = live.status.len();
        } else if let Some(line) = line {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

/// What the live view says a machine is doing after `ev`, if it changes.
fn live_status(ev: &Event) -> Option<String> {
    use nixops_core::events::Phase;
    let text = match (ev.phase, ev.status) {
        (_, Status::Failed) => format!(
            "✗ failed: {}",
            ev.error.as_deref().or(ev.message.as_deref()).unwrap_or("")
        ),
        (Phase::Connect, Status::Started) => "connecting".to_owned(),
        (Phase::Copy, Status::Started) => "copying closure".to_owned(),
        (Phase::Copy, Status::Succeeded) => "copied".to_owned(),
        (Phase::Activate, Status::Started) => "activating".to_owned(),
        (Phase::Activate, Status::Succeeded) => "✓ activated".to_owned(),
        (Phase::Activate, Status::Skipped) => "✓ up to date".to_owned(),
        (Phase::Reboot, Status::Log) => "rebooting".to_owned(),
        (Phase::Keys, Status::Log) => "sending keys".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// The sink for `--events FILE` (`-` is stdout).
pub fn open_events(
    path: &std::path::Path,
) -> Result<Box<dyn Write + Send>, crate::error::CliError> {
    if path == std::path::Path::new("-") {
        return Ok(Box::new(std::io::stdout()));
    }
    let file = std::fs::File::create(path).map_err(|e| {
        crate::error::CliError::new(format!("cannot write events to ‘{}’: {e}", path.display()))
    })?;
    Ok(Box::new(std::io::LineWriter::new(file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixops_core::events::Phase;

    #[test]
    fn prefixes_are_padded_to_the_longest_name() {
        let r = LogRenderer {
            use_colour: false,
            ..LogRenderer::new(&["web1".into(), "proxy".into()], false)
        };
        let ev = Event::new(Some("web1"), Phase::Copy, Status::Log).message("copying closure...");
        assert_eq!(r.line(&ev).as_deref(), Some("web1.> copying closure..."));
        let ev = Event::new(Some("proxy"), Phase::Activate, Status::Failed)
            .error("unable to activate new configuration (exit code 4)");
        assert_eq!(
            r.line(&ev).as_deref(),
            Some("proxy> error: unable to activate new configuration (exit code 4)")
        );
    }
}
