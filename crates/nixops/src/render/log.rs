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
    stderr: Mutex<()>,
    debug: bool,
}

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
            stderr: Mutex::new(()),
            debug,
        }
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
        if let Some(line) = self.line(&event) {
            let _guard = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
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
