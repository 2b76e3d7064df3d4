//! Log setup: Celery's level names, stderr or `--logfile`, and panics logged instead of printed.

mod format;
mod writer;

pub use writer::flush;

use tracing_subscriber::EnvFilter;

/// Maps a Celery log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, `FATAL`, any
/// case) to a tracing filter directive.
pub fn level_directive(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => "warn",
    }
}

/// Installs the subscriber. `RUST_LOG` wins over `--loglevel` when set.
pub fn init(level: Option<&str>, logfile: Option<&str>) {
    let directive = level.map_or("warn", level_directive);
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
