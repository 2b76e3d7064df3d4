//! The `rcelery` command line: Celery's commands and flags, so existing scripts keep working.

mod args;
mod banner;
mod logging;
mod worker;

pub use args::{Cli, Command, WorkerArgs};

use std::process::ExitCode;

use clap::Parser;

use crate::App;

/// Parses the process arguments and runs the command with `app`. Returns the exit code.
pub fn main(app: App) -> ExitCode {
    let cli = Cli::parse();
    run(app, cli)
}

/// Runs a parsed command line with `app`.
pub fn run(app: App, cli: Cli) -> ExitCode {
    match cli.command {
        Command::Worker(ref args) => {
            logging::init(args.loglevel.as_deref(), args.logfile.as_deref());
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("rcelery: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = runtime.block_on(worker::run(app, &cli, args));
            // Blocking tasks cut off by a cold shutdown must not keep the process alive.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            code
        }
    }
}
