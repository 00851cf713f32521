//! Rendering events on stderr the way NixOps logs: `machine> line`, names padded
//! to the longest machine name, one colour per machine on a terminal, a live
//! per-machine status view under the log on a terminal; and JSON lines for
//! `--events`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use nixops_core::events::{Event, Phase, Reporter, Status};

/// Colours NixOps cycles through for machine prefixes (`31 + index % 7`).
const COLOURS: usize = 7;

/// Footer lines are cut to this many characters so that none wraps.
const LIVE_WIDTH: usize = 78;

/// Writes events as NixOps-style log lines to stderr, and optionally as JSON lines
/// to a second sink.
pub struct LogRenderer {
    use_colour: bool,
    live: bool,
    debug: bool,
    json: Option<Mutex<Box<dyn Write + Send>>>,
    /// Guards stderr and what is on it.
    screen: Mutex<Screen>,
}

#[derive(Default)]
struct Screen {
    /// Longest machine name: prefixes are padded to it.
    width: usize,
    /// Machines in index order, with what each is doing (for the live view).
    machines: Vec<(String, String)>,
    /// Lines of the live view currently on screen.
    drawn: usize,
}

impl Screen {
    fn learn(&mut self, machine: &str) {
        if !self.machines.iter().any(|(m, _)| m == machine) {
            self.machines
                .push((machine.to_owned(), "waiting".to_owned()));
            self.width = self.width.max(machine.chars().count());
        }
    }
}

impl LogRenderer {
    /// `machines` are the names known so far, in index order; more are learnt from
    /// [`Reporter::machines`] and from the events themselves.
    pub fn new(machines: &[String], debug: bool) -> Self {
        let use_colour = std::io::stderr().is_terminal()
            && crate::env_vars::get(crate::env_vars::NO_COLOR).is_none();
        let mut screen = Screen::default();
        for m in machines {
            screen.learn(m);
        }
        LogRenderer {
            use_colour,
            live: false,
            debug,
            json: None,
            screen: Mutex::new(screen),
        }
    }

    /// Show a live per-machine status view under the log (only on a terminal).
    pub fn with_live_view(mut self) -> Self {
        let term_ok = std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false);
        self.live = self.use_colour && term_ok && !self.debug;
        self
    }

    /// Also write every event as a JSON line to `sink`.
    pub fn with_json(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.json = Some(Mutex::new(sink));
        self
    }

    fn prefix(&self, screen: &Screen, machine: &str) -> String {
        let dots = ".".repeat(screen.width.saturating_sub(machine.chars().count()));
        let plain = format!("{machine}{dots}> ");
        if !self.use_colour {
            return plain;
        }
        let colour = screen
            .machines
            .iter()
            .position(|(m, _)| m == machine)
            .unwrap_or(0)
            % COLOURS;
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
    fn line(&self, screen: &Screen, ev: &Event) -> Option<String> {
        let body = match ev.status {
            Status::Log | Status::Started => ev.message.clone()?,
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
            Some(m) => format!("{}{body}", self.prefix(screen, m)),
            None => body,
        })
    }

    fn draw(&self, screen: &mut Screen, err: &mut impl Write, line: Option<&str>) {
        if !self.live {
            if let Some(line) = line {
                let _ = writeln!(err, "{line}");
            }
            return;
        }
        if screen.drawn > 0 {
            // Back to the view's first line, and clear to the end of the screen.
            let _ = write!(err, "\x1b[{}A\x1b[J", screen.drawn);
        }
        if let Some(line) = line {
            let _ = writeln!(err, "{line}");
        }
        for (machine, text) in &screen.machines {
            let pad = " ".repeat(screen.width - machine.chars().count().min(screen.width));
            let row: String = format!("  {machine}{pad}  {text}")
                .chars()
                .take(LIVE_WIDTH)
                .collect();
            let _ = writeln!(err, "\x1b[2m{row}\x1b[0m");
        }
        screen.drawn = screen.machines.len();
    }
}

impl Reporter for LogRenderer {
    fn machines(&self, names: &[String]) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        for n in names {
            screen.learn(n);
        }
    }

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
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(machine) = &event.machine {
            screen.learn(machine);
            if let Some(text) = live_status(&event) {
                if let Some(slot) = screen.machines.iter_mut().find(|(m, _)| m == machine) {
                    slot.1 = text;
                }
            }
        }
        let line = self.line(&screen, &event);
        let mut err = std::io::stderr().lock();
        self.draw(&mut screen, &mut err, line.as_deref());
        let _ = err.flush();
    }
}

/// What the live view says a machine is doing after `ev`, if that changes.
fn live_status(ev: &Event) -> Option<String> {
    let text = match (ev.phase, ev.status) {
        (_, Status::Failed) => format!(
            "failed: {}",
            ev.error.as_deref().or(ev.message.as_deref()).unwrap_or("")
        ),
        (Phase::Connect, Status::Started) => "connecting".to_owned(),
        (Phase::Copy, Status::Started) => "copying closure".to_owned(),
        (Phase::Copy, Status::Succeeded) => "copied".to_owned(),
        (Phase::Keys, Status::Log) => "sending keys".to_owned(),
        (Phase::Activate, Status::Started) => "activating".to_owned(),
        (Phase::Activate, Status::Succeeded) => "activated".to_owned(),
        (Phase::Activate, Status::Skipped) => "up to date".to_owned(),
        (Phase::Reboot, Status::Log) => "rebooting".to_owned(),
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

    #[test]
    fn prefixes_are_padded_to_the_longest_name() {
        let r = LogRenderer {
            use_colour: false,
            ..LogRenderer::new(&["web1".into()], false)
        };
        r.machines(&["proxy".into()]);
        let screen = r.screen.lock().expect("invariant: not poisoned");
        let ev = Event::new(Some("web1"), Phase::Copy, Status::Log).message("copying closure...");
        assert_eq!(
            r.line(&screen, &ev).as_deref(),
            Some("web1.> copying closure...")
        );
        let ev = Event::new(Some("proxy"), Phase::Activate, Status::Failed)
            .error("unable to activate new configuration (exit code 4)");
        assert_eq!(
            r.line(&screen, &ev).as_deref(),
            Some("proxy> error: unable to activate new configuration (exit code 4)")
        );
    }
}
