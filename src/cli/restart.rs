//! Restarting in place (SIGHUP), as Celery's worker does: after a warm shutdown the process
//! executes its own command line again, keeping its pid, so supervisors see no exit.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::redis_client::mask_password;

/// Replaces this process with a fresh run of the same command line. Returns only if that
/// fails, with the error.
pub fn exec_self() -> std::io::Error {
    let args: Vec<OsString> = std::env::args_os().collect();
    let shown: Vec<String> = args
        .iter()
        .map(|a| mask_password(&a.to_string_lossy()))
        .collect();
    tracing::warn!("Restarting celery worker ({})", shown.join(" "));
    crate::cli::logging::flush();
    // A binary replaced on disk since the start shows as "... (deleted)": use argv[0] then.
    let program = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .or_else(|| args.first().cloned().map(Into::into));
    let Some(program) = program else {
        return std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "cannot find this program to start it again",
        );
    };
    Command::new(program).args(args.iter().skip(1)).exec()
}
