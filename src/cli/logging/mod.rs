//! Log setup: Celery's level names, stderr or `--logfile`, and panics logged instead of printed.

mod format;
mod writer;

pub use writer::flush;

use tracing_subscriber::EnvFilter;

/// Maps a Celery log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, `FATAL`, any
/// case) to a tracing filter directive.
///
/// `DEBUG` leaves out the SQL statements the database result backend's driver (sqlx) logs
/// at debug, several lines per result: Celery's `--loglevel=debug` does not show
/// SQLAlchemy's statements either. Slow statements still warn; `RUST_LOG` with
/// `sqlx::query=debug` shows them all.
///
/// lapin (the AMQP driver) logs a lost connection at ERROR itself; the AMQP transport says
/// it once, with the outage's length when it is back, so lapin's own lines show only at DEBUG.
pub fn level_directive(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug,sqlx::query=info,lapin=warn",
        "INFO" => "info,lapin=off",
        "WARN" | "WARNING" => "warn,lapin=off",
        "ERROR" | "CRITICAL" | "FATAL" => "error,lapin=off",
        _ => "warn,lapin=off",
    }
}

/// Installs the subscriber. `RUST_LOG` wins over `--loglevel` when set.
pub fn init(level: Option<&str>, logfile: Option<&str>) {
    let directive = level.map_or("warn,lapin=off", level_directive);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(format::CeleryFormat);
    let file = logfile.and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| eprintln!("rcelery: cannot open log file {path}: {e}; logging to stderr"))
            .ok()
    });
    let sink: Box<dyn std::io::Write + Send> = match file {
        Some(f) => Box::new(f),
        None => Box::new(std::io::stderr()),
    };
    let _ = builder
        .with_writer(writer::BatchedWriter::new(sink))
        .try_init();
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!("panic{location}: {message}");
        flush();
    }));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged_at(level: &str) -> String {
        let sink = Captured::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(level_directive(level)))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "sqlx::query", "INSERT INTO celery_taskmeta");
            tracing::warn!(target: "sqlx::query", "slow statement");
            tracing::debug!(target: "rcelery::worker", "own debug line");
            tracing::info!(target: "rcelery::worker", "own info line");
        });
        let bytes = sink.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn debug_shows_rcelerys_debug_lines_but_not_every_sql_statement() {
        let out = logged_at("debug");
        assert!(out.contains("own debug line"), "{out}");
        assert!(!out.contains("INSERT INTO"), "{out}");
        assert!(out.contains("slow statement"), "{out}");
    }

    #[test]
    fn every_celery_level_is_a_valid_filter() {
        for level in [
            "DEBUG", "info", "Warning", "ERROR", "critical", "FATAL", "bogus",
        ] {
            assert!(
                EnvFilter::try_new(level_directive(level)).is_ok(),
                "{level}"
            );
        }
        let out = logged_at("INFO");
        assert!(
            out.contains("own info line") && !out.contains("own debug line"),
            "{out}"
        );
    }
}
