//! `tracing` output in the tool's own voice: `warning: ...` for warnings,
//! `debug: ...` for debug lines, prefixed with the machine when there is one.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as one plain line each.
pub struct PlainFormat;

#[derive(Default)]
struct Fields {
    message: String,
    machine: Option<String>,
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "machine" => self.machine = Some(format!("{value:?}").trim_matches('"').to_owned()),
            name => self.rest.push(format!("{name}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "machine" => self.machine = Some(value.to_owned()),
            name => self.rest.push(format!("{name}={value}")),
        }
    }
}

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(machine) = &fields.machine {
            write!(writer, "{machine}> ")?;
        }
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "{level}: {}", fields.message)?;
        for extra in &fields.rest {
            write!(writer, " {extra}")?;
        }
        writeln!(writer)
    }
}
