//! The worker's side of remote control (Celery's `worker/pidbox.py` and
//! `worker/control.py`): a mailbox consumer subscribed to `<nodename>.celery.pidbox`, a
//! dispatcher that applies kombu's rules, and one file per command, listed in [`table`].
//!
//! Adding a command is adding its file here and one line in `table.rs`.

mod active;
mod active_queues;
mod add_consumer;
mod args;
mod cancel_consumer;
mod clock;
mod conf;
mod consumer;
mod dispatch;
mod election;
mod events;
pub mod flags;
mod heartbeat;
mod hello;
mod ping;
mod pool_grow;
mod pool_shrink;
mod query_task;
mod rate_limit;
mod registered;
mod reserved;
mod revoke;
mod revoke_by_stamped_headers;
mod scheduled;
mod shutdown;
mod stats;
mod table;
mod time_limit;

pub use flags::ControlFlags;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::time_limit::TimeLimits;
use super::Shared;
use crate::codec::Serializer;
use crate::control::{LamportClock, MailboxSettings};
use crate::value::{Dict, Value};

pub(crate) use consumer::spawn;

/// Remote control settings of a worker.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// `worker_enable_remote_control` (true).
    pub enabled: bool,
    /// The mailbox (`control_exchange`, `control_queue_*`).
    pub mailbox: MailboxSettings,
    /// How replies are serialized (`task_serializer`, as Celery's mailbox).
    pub serializer: Serializer,
    /// What `conf` answers: the settings that differ from the defaults, secrets masked.
    pub conf: Dict,
    /// What `conf with_defaults=True` answers: every setting, secrets masked.
    pub conf_with_defaults: Dict,
    /// The `broker` part of `stats` (hostname, port, userid, ...; never the password).
    pub broker_info: Dict,
    /// Mingle at start (true; `--without-mingle` turns it off): take in the other workers'
    /// revoked ids and clocks before consuming.
    pub mingle: bool,
    /// Gossip (true; `--without-gossip` turns it off): follow the other workers' events.
    pub gossip: bool,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            enabled: true,
            mailbox: MailboxSettings::default(),
            serializer: Serializer::Json,
            conf: Dict::new(),
            conf_with_defaults: Dict::new(),
            broker_info: Dict::new(),
            mingle: true,
            gossip: true,
        }
    }
}

/// Remote control state shared with the rest of the worker.
pub(crate) struct ControlState {
    /// The worker's Lamport clock (pidbox and events).
    pub clock: Arc<LamportClock>,
    /// Switches other parts read (`task_events`).
    pub flags: Arc<ControlFlags>,
    /// When the worker started (`stats.uptime`).
    pub started: Instant,
    /// Time limits set by the `time_limit` command, by task name.
    pub time_limits: Mutex<HashMap<String, TimeLimits>>,
    /// Cancelled by the `shutdown` command: the worker shuts down warm.
    pub shutdown: CancellationToken,
}

impl ControlState {
    pub(crate) fn new() -> Self {
        ControlState {
            clock: Arc::new(LamportClock::default()),
            flags: Arc::new(ControlFlags::default()),
            started: Instant::now(),
            time_limits: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        }
    }

    /// The time limits the `time_limit` command set for `task`, if any.
    pub(crate) fn time_limits_for(&self, task: &str) -> Option<TimeLimits> {
        self.time_limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(task)
            .copied()
    }
}

/// The time limits of a request of `def`: the message's own, else those the `time_limit`
/// command set for the task type, else the task's, else the worker's.
pub(crate) fn time_limits(
    shared: &Shared,
    message: &crate::protocol::TaskMessage,
    def: &crate::task::TaskDef,
) -> TimeLimits {
    let defaults = &shared.settings.time_limits;
    match shared.control.time_limits_for(&def.name) {
        Some(set) => {
            let options = crate::task::TaskOptions {
                time_limit: set.hard,
                soft_time_limit: set.soft,
                ..def.options.clone()
            };
            super::time_limit::resolve(message, &options, defaults)
        }
        None => super::time_limit::resolve(message, &def.options, defaults),
    }
}

/// Why a command failed: its text is the `error` of the reply (Celery replies
/// `{"error": repr(exc)}` for an exception, or its own `nok` text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

/// What a command answers: `None` sends no reply even when one is asked for (the
/// `shutdown` command, as Celery's `WorkerShutdown` leaves before replying).
pub(crate) type Answer = Result<Option<Value>, CommandError>;

/// A command: the worker and the command's arguments in, its answer out.
pub(crate) type Handler = for<'a> fn(&'a Arc<Shared>, &'a Dict) -> BoxFuture<'a, Answer>;
