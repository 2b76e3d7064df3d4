//! A log writer that collects lines in memory and writes them out in batches: a busy worker
//! logs two lines per task, and one `write` system call per line cost more than the task.
//!
//! Lines reach the file within [`FLUSH_EVERY`], at once for warnings and errors, and at exit
//! ([`flush`]). A process killed with SIGKILL loses at most the last interval's lines.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Longest time a line waits in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Buffered bytes that trigger an immediate write.
const HIGH_WATER: usize = 64 * 1024;

struct Inner {
    buffer: Mutex<Vec<u8>>,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Inner {
    fn flush(&self) {
        // The sink lock is taken first so batches reach the sink in the order they were cut.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let batch = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        if !batch.is_empty() {
            let _ = sink.write_all(&batch);
            let _ = sink.flush();
        }
    }
}

static ACTIVE: OnceLock<Arc<Inner>> = OnceLock::new();

/// Writes out every buffered line now (call before the process exits).
pub fn flush() {
    if let Some(inner) = ACTIVE.get() {
        inner.flush();
    }
}

/// The [`MakeWriter`] for the subscriber.
#[derive(Clone)]
pub struct BatchedWriter {
    inner: Arc<Inner>,
}

impl BatchedWriter {
    /// Batches lines for `sink` and starts the thread that writes them out. Only the first
    /// writer created in a process is flushed by [`flush`].
    pub fn new(sink: Box<dyn Write + Send>) -> BatchedWriter {
        let inner = Arc::new(Inner {
            buffer: Mutex::new(Vec::with_capacity(HIGH_WATER)),
            sink: Mutex::new(sink),
        });
        let _ = ACTIVE.set(Arc::clone(&inner));
        let flusher = Arc::clone(&inner);
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush();
            });
        if let Err(e) = spawned {
            eprintln!("rcelery: cannot start the log flusher ({e}); lines are written at once");
        }
        BatchedWriter { inner }
    }
}

/// One log line being written.
pub struct LineWriter<'a> {
    inner: &'a Inner,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.inner
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        let full = self
            .inner
            .buffer
            .lock()
            .map(|b| b.len() >= HIGH_WATER)
            .unwrap_or(true);
        if self.urgent || full {
            self.inner.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            inner: &self.inner,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            inner: &self.inner,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}
