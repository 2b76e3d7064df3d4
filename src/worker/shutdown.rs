//! Shutdown signals, as Celery reads them: the first SIGTERM/SIGINT asks for a warm shutdown
//! (finish running tasks), a second one (or SIGQUIT) for a cold one (stop now), and SIGHUP
//! for a restart in place (a warm shutdown, then the same command line again in the same
//! process).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Which shutdown was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    /// Stop fetching, let running tasks finish.
    Warm,
    /// Stop now.
    Cold,
    /// A warm shutdown, then start again (SIGHUP).
    Restart,
}

/// Starts listening; each received request arrives on the returned channel.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<ShutdownKind>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0u32;
        loop {
            let kind = tokio::select! {
                _ = term.recv() => None,
                _ = int.recv() => None,
                _ = quit.recv() => Some(ShutdownKind::Cold),
                _ = hup.recv() => {
                    if seen > 0 {
                        // A shutdown is under way already; a restart request adds nothing.
                        continue;
                    }
                    Some(ShutdownKind::Restart)
                }
            };
            seen += 1;
            let kind = kind.unwrap_or(if seen == 1 {
                ShutdownKind::Warm
            } else {
                ShutdownKind::Cold
            });
            if tx.send(kind).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}
