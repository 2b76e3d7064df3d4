//! Celery's log line format: `[2026-11-24 14:39:00,123: INFO/MainProcess] message`, in local
//! time, so log parsers and habits built on a Celery worker's output keep working.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as Celery's worker does. The task id and name fields are left out: the
/// messages already carry them, as Celery's do.
#[derive(Debug, Default, Clone, Copy)]
pub struct CeleryFormat;

impl<S, N> FormatEvent<S, N> for CeleryFormat
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
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            _ => "DEBUG",
        };
        write_timestamp(&mut writer)?;
        write!(writer, ": {level}/MainProcess] ")?;
        let mut visitor = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;
        writer.write_char('\n')
    }
}

struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.result = match field.name() {
            "message" => write!(self.writer, "{value:?}"),
            "task_id" | "task_name" => Ok(()),
            name => write!(self.writer, " {name}={value:?}"),
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = match field.name() {
            "message" => self.writer.write_str(value),
            "task_id" | "task_name" => Ok(()),
            name => write!(self.writer, " {name}={value}"),
        };
    }
}

thread_local! {
    /// The formatted local date and time of the last second seen: formatting a date costs
    /// more than the rest of a log line.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `[YYYY-MM-DD HH:MM:SS,mmm` in local time (Python logging's `asctime`).
fn write_timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (now.as_secs(), now.subsec_millis());
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let local = chrono::DateTime::from_timestamp(secs as i64, 0)
                .map(|utc| {
                    utc.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            *cached = (secs, local);
        }
        write!(writer, "[{},{millis:03}", cached.1)
    })
}
