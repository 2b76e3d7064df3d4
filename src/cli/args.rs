//! Command-line arguments: every flag `celery` and `celery worker` accept (5.5), so a Celery
//! command line runs unchanged. Flags with no meaning for rcelery are accepted and warned
//! about once (see `worker::warn_ignored`).

use clap::{Args, Parser, Subcommand};

/// `rcelery`: a Rust worker for Celery task queues.
#[derive(Debug, Parser)]
#[command(name = "rcelery", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// The app (Celery's `-A`). rcelery runs the tasks compiled into this binary; when `-A`
    /// names a Python Celery app (a dotted or `module:attr` name, or a module found in the
    /// working directory) and no TOML file is given, its settings are read from it, asking
    /// Python once at start-up (`RCELERY_PYTHON`, else the virtualenv, else python3).
    #[arg(short = 'A', long = "app", global = true)]
    pub app: Option<String>,
    /// Broker URL (overrides `broker_url`).
    #[arg(short = 'b', long = "broker", global = true)]
    pub broker: Option<String>,
    /// Result backend URL (overrides `result_backend`).
    #[arg(long = "result-backend", global = true)]
    pub result_backend: Option<String>,
    /// TOML config file with Celery setting names (default: ./rcelery.toml if present); it
    /// wins over the Celery app's settings. A Python module name is given to the Celery app
    /// as `CELERY_CONFIG_MODULE`, as `celery --config` does.
    #[arg(long = "config", global = true)]
    pub config: Option<String>,
    /// Celery's loader (accepted, no effect).
    #[arg(long = "loader", global = true)]
    pub loader: Option<String>,
    /// Change to this directory first.
    #[arg(long = "workdir", global = true)]
    pub workdir: Option<String>,
    /// No colors in output (accepted, no effect).
    #[arg(short = 'C', long = "no-color", global = true)]
    pub no_color: bool,
    /// Quiet (accepted, no effect).
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,
    /// Skip Django checks (accepted, no effect).
    #[arg(long = "skip-checks", global = true)]
    pub skip_checks: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// rcelery's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a worker.
    Worker(WorkerArgs),
    /// Send a task (Celery's `celery call`); prints its id, or with --wait its result.
    Call(CallArgs),
    /// Ask the workers (Celery's `celery inspect COMMAND`), e.g. `inspect ping`.
    Inspect(RemoteArgs),
    /// Tell the workers (Celery's `celery control COMMAND`), e.g. `control revoke ID`.
    Control(RemoteArgs),
    /// The workers online (Celery's `celery status`).
    Status(StatusArgs),
}

/// `celery inspect` / `celery control` arguments.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The command (`ping`, `stats`, `active`, `revoke`, ...).
    pub command: String,
    /// Its arguments, as Celery's command line takes them (e.g. task ids for `revoke`).
    pub args: Vec<String>,
    /// Seconds to wait for replies.
    #[arg(short = 't', long = "timeout", default_value_t = 1.0)]
    pub timeout: f64,
    /// Comma-separated node names to send to (default: every node).
    #[arg(short = 'd', long = "destination", value_delimiter = ',')]
    pub destination: Vec<String>,
    /// Print the replies as one JSON object.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
}

/// `celery status` arguments.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Seconds to wait for replies.
    #[arg(short = 't', long = "timeout", default_value_t = 1.0)]
    pub timeout: f64,
    /// Comma-separated node names to ask (default: every node).
    #[arg(short = 'd', long = "destination", value_delimiter = ',')]
    pub destination: Vec<String>,
    /// Print the replies as one JSON object.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
}

/// `celery call` flags, plus `--wait`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// Task name, e.g. tasks.add.
    pub name: String,
    /// Positional arguments as a JSON list.
    #[arg(short = 'a', long = "args", default_value = "[]")]
    pub args: String,
    /// Keyword arguments as a JSON object.
    #[arg(short = 'k', long = "kwargs", default_value = "{}")]
    pub kwargs: String,
    /// Scheduled time (ISO-8601).
    #[arg(long = "eta")]
    pub eta: Option<String>,
    /// Seconds to wait before running.
    #[arg(long = "countdown")]
    pub countdown: Option<f64>,
    /// Expiry: seconds from now, or an ISO-8601 time.
    #[arg(long = "expires")]
    pub expires: Option<String>,
    /// Serializer for the message (default: task_serializer).
    #[arg(short = 's', long = "serializer")]
    pub serializer: Option<String>,
    /// Queue to send to (default: task_default_queue).
    #[arg(long = "queue")]
    pub queue: Option<String>,
    /// Exchange to send to.
    #[arg(long = "exchange")]
    pub exchange: Option<String>,
    /// Routing key.
    #[arg(long = "routing-key")]
    pub routing_key: Option<String>,
    /// Message priority.
    #[arg(long = "priority")]
    pub priority: Option<u8>,
    /// Wait for the result and print it (JSON); exit 1 if the task failed.
    #[arg(long = "wait")]
    pub wait: bool,
    /// Seconds --wait waits.
    #[arg(long = "timeout", default_value_t = 60.0)]
    pub timeout: f64,
}

/// `celery worker` flags.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// rcelery: forward messages for tasks this binary does not have, unchanged, to this
    /// queue (e.g. one a Python worker consumes) instead of failing them.
    #[arg(long = "forward-unknown-tasks", value_name = "QUEUE")]
    pub forward_unknown_tasks: Option<String>,
    /// Node name, e.g. 'w1@%h' (%h: hostname, %n: name, %d: domain).
    #[arg(short = 'n', long = "hostname")]
    pub hostname: Option<String>,
    /// Run in the background (not supported: runs in the foreground).
    #[arg(short = 'D', long = "detach")]
    pub detach: bool,
    /// Worker state database: keeps the revoked task ids across restarts.
    #[arg(short = 'S', long = "statedb")]
    pub statedb: Option<String>,
    /// DEBUG, INFO, WARNING, ERROR, CRITICAL or FATAL.
    #[arg(short = 'l', long = "loglevel")]
    pub loglevel: Option<String>,
    /// default or fair (accepted; rcelery always dispatches fairly).
    #[arg(short = 'O', long = "optimization")]
    pub optimization: Option<String>,
    /// Prefetch multiplier (prefetch = concurrency × multiplier).
    #[arg(long = "prefetch-multiplier")]
    pub prefetch_multiplier: Option<usize>,
    /// Tasks running at once (default: number of CPUs).
    #[arg(short = 'c', long = "concurrency")]
    pub concurrency: Option<usize>,
    /// Pool (prefork, eventlet, gevent, solo, processes, threads, custom): accepted; rcelery
    /// runs async tasks on tokio and blocking ones on a thread pool; `solo` means -c 1.
    #[arg(short = 'P', long = "pool")]
    pub pool: Option<String>,
    /// Send task events (`worker_send_task_events`), for Flower and `celery events`.
    #[arg(short = 'E', long = "task-events", visible_alias = "events")]
    pub task_events: bool,
    /// rcelery: serve Prometheus metrics on /metrics and a health check on /healthz at
    /// HOST:PORT (`rcelery_metrics_addr`).
    #[arg(long = "metrics-addr", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Hard time limit in seconds, for tasks and messages that set none (`task_time_limit`).
    #[arg(long = "time-limit")]
    pub time_limit: Option<f64>,
    /// Soft time limit in seconds, for tasks and messages that set none
    /// (`task_soft_time_limit`).
    #[arg(long = "soft-time-limit")]
    pub soft_time_limit: Option<f64>,
    /// Recycle a pool process after this many tasks (no processes to recycle).
    #[arg(long = "max-tasks-per-child")]
    pub max_tasks_per_child: Option<u64>,
    /// Recycle a pool process above this RSS in KiB (no processes to recycle).
    #[arg(long = "max-memory-per-child")]
    pub max_memory_per_child: Option<u64>,
    /// Purge queues before starting (not supported).
    #[arg(long = "purge", visible_alias = "discard")]
    pub purge: bool,
    /// Queues to consume, comma separated (may repeat).
    #[arg(short = 'Q', long = "queues", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Queues not to consume, comma separated.
    #[arg(short = 'X', long = "exclude-queues", value_delimiter = ',')]
    pub exclude_queues: Vec<String>,
    /// Python modules to import (no effect: tasks are compiled in).
    #[arg(short = 'I', long = "include", value_delimiter = ',')]
    pub include: Vec<String>,
    /// Do not follow the other workers' events (gossip).
    #[arg(long = "without-gossip")]
    pub without_gossip: bool,
    /// Do not sync revoked ids and clocks with the other workers at start (mingle).
    #[arg(long = "without-mingle")]
    pub without_mingle: bool,
    /// Send no worker heartbeat events (`worker-online`/`-heartbeat`/`-offline`).
    #[arg(long = "without-heartbeat")]
    pub without_heartbeat: bool,
    /// Seconds between worker heartbeat events (2).
    #[arg(long = "heartbeat-interval")]
    pub heartbeat_interval: Option<u64>,
    /// Autoscale 'max,min' (not supported; use -c).
    #[arg(long = "autoscale")]
    pub autoscale: Option<String>,
    /// Embed beat (not supported).
    #[arg(short = 'B', long = "beat")]
    pub beat: bool,
    /// Beat schedule file (no effect).
    #[arg(short = 's', long = "schedule-filename", visible_alias = "schedule")]
    pub schedule_filename: Option<String>,
    /// Beat scheduler (no effect).
    #[arg(long = "scheduler")]
    pub scheduler: Option<String>,
    /// Log to this file instead of stderr.
    #[arg(short = 'f', long = "logfile")]
    pub logfile: Option<String>,
    /// Write the worker's pid to this file.
    #[arg(long = "pidfile")]
    pub pidfile: Option<String>,
    /// Drop privileges to this user (not supported).
    #[arg(long = "uid")]
    pub uid: Option<String>,
    /// Drop privileges to this group (not supported).
    #[arg(long = "gid")]
    pub gid: Option<String>,
    /// umask (not supported).
    #[arg(long = "umask")]
    pub umask: Option<String>,
    /// Python executable (no effect).
    #[arg(long = "executable")]
    pub executable: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn app_flag_goes_before_or_after_the_command() {
        let a = parse(&["rcelery", "worker", "-A", "tasks", "-Q", "default"]);
        let b = parse(&["rcelery", "-A", "tasks", "worker", "-Q", "default"]);
        assert_eq!(a.app.as_deref(), Some("tasks"));
        assert_eq!(b.app.as_deref(), Some("tasks"));
    }

    #[test]
    fn accepts_every_celery_worker_flag() {
        let cli = parse(&[
            "rcelery",
            "-A",
            "tasks.task",
            "worker",
            "-Q",
            "default,other",
            "-c",
            "2",
            "-l",
            "info",
            "-n",
            "w1@%h",
            "-P",
            "solo",
            "-E",
            "-b",
            "redis://localhost",
            "--result-backend",
            "redis://localhost/1",
            "--prefetch-multiplier",
            "4",
            "--max-tasks-per-child",
            "100",
            "--time-limit",
            "10",
            "--soft-time-limit",
            "5",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-O",
            "fair",
            "--loglevel=debug",
            "--pool=eventlet",
            "--events",
            "--autoscale",
            "10,3",
            "-X",
            "x",
            "--heartbeat-interval",
            "5",
            "--purge",
            "-B",
        ]);
        let Command::Worker(w) = cli.command else {
            panic!("not the worker command")
        };
        assert_eq!(w.queues, vec!["default", "other"]);
        assert_eq!(w.concurrency, Some(2));
        assert_eq!(w.pool.as_deref(), Some("eventlet"));
    }

    #[test]
    fn call_takes_celerys_flags() {
        let cli = Cli::parse_from([
            "rcelery",
            "-A",
            "tasks",
            "call",
            "tasks.add",
            "--args",
            "[2, 3]",
            "--queue",
            "q",
            "--countdown",
            "5",
            "--wait",
        ]);
        let Command::Call(c) = cli.command else {
            panic!("not the call command")
        };
        assert_eq!(
            (
                c.name.as_str(),
                c.args.as_str(),
                c.queue.as_deref(),
                c.countdown,
                c.wait
            ),
            ("tasks.add", "[2, 3]", Some("q"), Some(5.0), true)
        );
    }
}
