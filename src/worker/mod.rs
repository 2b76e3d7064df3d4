//! The worker: consumes deliveries within the prefetch window, runs each on the runtime or
//! on its slot's thread with at most `concurrency` running at once, stores results, settles
//! messages, and shuts down without losing any. A watchdog warns when slots stay stuck;
//! SIGUSR1 logs what every slot holds.

mod backend_cleanup;
mod canvas;
mod chord_unlock;
pub mod control;
mod dump;
mod eta;
mod execute;
mod forward;
pub mod gossip;
mod inflight;
mod lease;
pub mod lifecycle;
mod mingle;
mod observe;
mod rate_limit;
mod request;
pub(crate) mod requests;
mod retry;
pub mod revoke;
mod shutdown;
mod slots;
mod throttle;
mod time_limit;
mod timeout;
mod watchdog;
mod wedged;

pub use control::{ControlFlags, ControlSettings};
pub use rate_limit::{parse_rate, RateLimitError, TokenBucket};
pub use shutdown::ShutdownKind;
pub use throttle::ThrottleError;
pub use time_limit::TimeLimits;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::ResultBackend;
use crate::broker::{
    Broker, BrokerError, ConsumedQueues, PrefetchWindow, Qos, QueueCatalog, QueueSpec,
};
use crate::codec::AcceptContent;
use crate::events::{EventDispatcher, EventSettings, Publisher, Stamped, WorkerCounts};
use crate::health::Health;
use crate::metrics::{LiveState, Metrics};
use crate::producer::Producer;
use crate::state::StateMap;
use crate::task::{Registry, TaskEnv};
use inflight::Inflight;
use lifecycle::{Lifecycle, LifecycleObserver};
use revoke::Revocations;
use slots::Slots;
use throttle::Throttle;

/// How the worker behaves (the worker-side Celery settings).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Node name, e.g. `celery@host`.
    pub hostname: String,
    /// Queues to consume at start (`add_consumer` / `cancel_consumer` change the set later).
    pub queues: Vec<QueueSpec>,
    /// The queues the app knows (`task_queues`) and how it creates a missing one: what
    /// `add_consumer` declares a queue with.
    pub queue_catalog: QueueCatalog,
    /// Tasks running at once (`-c`).
    pub concurrency: usize,
    /// `worker_prefetch_multiplier`.
    pub prefetch_multiplier: usize,
    /// `task_acks_late`.
    pub acks_late: bool,
    /// `task_track_started`.
    pub track_started: bool,
    /// `task_ignore_result`.
    pub ignore_result: bool,
    /// `result_extended`.
    pub result_extended: bool,
    /// `accept_content`.
    pub accept: AcceptContent,
    /// How long a warm shutdown waits for running tasks.
    pub shutdown_timeout: Duration,
    /// The worker's time limits (`--time-limit`/`--soft-time-limit`, else `task_time_limit`/
    /// `task_soft_time_limit`), for requests whose message and task set none.
    pub time_limits: TimeLimits,
    /// `task_default_rate_limit`: for tasks without a `rate_limit` of their own.
    pub default_rate_limit: Option<String>,
    /// `worker_disable_rate_limits`.
    pub disable_rate_limits: bool,
    /// Queue that messages for unregistered tasks are forwarded to (`None`: fail them with
    /// `NotRegistered`, as Celery does).
    pub forward_unknown: Option<String>,
    /// How chords are joined from stored results.
    pub chord: ChordSettings,
    /// `rcelery_wedge_warn_after`: how long every slot may be busy with the same tasks before
    /// the worker warns (and says it is wedged); wedge warnings repeat at this interval.
    pub wedge_warn_after: Duration,
    /// `rcelery_restart_when_wedged` (true): restart in place when every slot has been held
    /// by an abandoned thread for `wedge_warn_after`.
    pub restart_when_wedged: bool,
    /// Which monitoring events are sent (`-E`, `--without-heartbeat`, ...).
    pub events: EventSettings,
    /// Where task counts and timings go when the metrics endpoint is on (`--metrics-addr`).
    pub metrics: Option<Arc<Metrics>>,
    /// Remote control (the pidbox).
    pub control: ControlSettings,
}

/// Celery's chord join settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChordSettings {
    /// `result_chord_retry_interval` (1 s): how often `celery.chord_unlock` looks again at a
    /// header that is not done.
    pub retry_interval: f64,
    /// `result_chord_join_timeout` (3 s): how long a header part that completes a chord
    /// saved as a `GroupResult` waits for its results to be readable.
    pub join_timeout: Duration,
}

impl Default for ChordSettings {
    fn default() -> Self {
        ChordSettings {
            retry_interval: 1.0,
            join_timeout: Duration::from_secs(3),
        }
    }
}

/// Counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Tasks executed.
    pub processed: AtomicU64,
}

/// What every request handler shares.
pub(crate) struct Shared {
    registry: Registry,
    broker: Arc<dyn Broker>,
    producer: Producer,
    /// The app's state and the producer, handed to every task's context.
    env: Arc<TaskEnv>,
    backend: Arc<dyn ResultBackend>,
    settings: WorkerSettings,
    slots: Arc<Slots>,
    /// Raised while every slot is held by a blocking thread abandoned at its time limit: the
    /// worker runs nothing until one returns, and only a restart frees them sooner.
    every_slot_abandoned: watch::Sender<bool>,
    throttle: Throttle,
    inflight: Inflight,
    /// The prefetch window the broker fills.
    window: PrefetchWindow,
    /// The broker's hook on that window, widened while an ETA message is held.
    qos: Arc<dyn Qos>,
    shutdown: CancellationToken,
    stats: Stats,
    health: Arc<Health>,
    /// Sends monitoring events; never waits.
    events: EventDispatcher,
    /// The events' receiving end, until `run` starts their publisher.
    event_queue: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Stamped>>>,
    /// Observers of every request's steps (task events, metrics).
    lifecycle: Lifecycle,
    /// Revoked ids and stamps, and the requests held or running here that watch them.
    revocations: Arc<Revocations>,
    /// Remote control state (clock, switches, runtime changes).
    control: control::ControlState,
    /// The requests held, for remote control.
    requests: Arc<requests::Requests>,
    /// The other workers gossip has heard of.
    gossip: Arc<gossip::nodes::Nodes>,
    /// The queues consumed now: the broker's consumer follows it, `active_queues` reports
    /// it, `add_consumer` / `cancel_consumer` change it.
    consumed: ConsumedQueues,
}

/// The prefetch window size at start: concurrency × multiplier (0 = unlimited).
fn prefetch_count(settings: &WorkerSettings) -> usize {
    prefetch_count_for(settings, settings.concurrency)
}

/// The prefetch window size for `slots` slots (the pool resized by remote control).
fn prefetch_count_for(settings: &WorkerSettings, slots: usize) -> usize {
    slots.max(1) * settings.prefetch_multiplier
}

/// Errors that stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The broker failed at startup.
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(#[from] std::io::Error),
    /// The state db (`--statedb`) cannot be read.
    #[error("statedb: {0}")]
    StateDb(#[from] revoke::statedb::StateDbError),
    /// A task's rate limit (or `task_default_rate_limit`) cannot be read.
    #[error("rate limit: {0}")]
    RateLimit(#[from] ThrottleError),
    /// The broker connection was lost and could not be restored.
    #[error("broker connection lost: {0}")]
    BrokerLost(String),
}

/// The connections and tasks a worker is assembled from.
pub struct WorkerParts {
    /// The tasks.
    pub registry: Registry,
    /// The broker consumed from.
    pub broker: Arc<dyn Broker>,
    /// Where results are stored.
    pub backend: Arc<dyn ResultBackend>,
    /// Publishes what tasks set in motion (retries, canvas steps, subtasks).
    pub producer: Producer,
}

/// A configured worker, ready to run.
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    /// Assembles a worker. `health` is shared with the broker and backend connections, which
    /// report their outages there. `producer` publishes what tasks set in motion (retries, callbacks,
    /// chains), normally on the same broker. Fails if a rate limit cannot be read (as Celery
    /// fails at start).
    pub fn new(
        registry: Registry,
        broker: Arc<dyn Broker>,
        backend: Arc<dyn ResultBackend>,
        producer: Producer,
        settings: WorkerSettings,
        health: Arc<Health>,
    ) -> Result<Worker, WorkerError> {
        let parts = WorkerParts {
            registry,
            broker,
            backend,
            producer,
        };
        Worker::with_state(parts, settings, health, Arc::new(StateMap::new()))
    }

    /// [`Worker::new`] for an app with state (see [`crate::App::start`]): tasks taking a
    /// `State<T>` get it from `state`. Call it on the runtime the worker will run on.
    pub fn with_state(
        parts: WorkerParts,
        settings: WorkerSettings,
        health: Arc<Health>,
        state: Arc<StateMap>,
    ) -> Result<Worker, WorkerError> {
        let WorkerParts {
            mut registry,
            broker,
            backend,
            producer,
        } = parts;
        let control = control::ControlState::new();
        control.flags.set_task_events(settings.events.task_events);
        let (events, event_queue) =
            EventDispatcher::new(&settings.events, Arc::clone(&control.clock));
        let producer = if settings.events.task_sent {
            producer.with_sent_events(events.clone())
        } else {
            producer
        };
        if !registry.contains(backend_cleanup::NAME) {
            registry.insert(backend_cleanup::task_def(Arc::clone(&backend)));
        }
        if !registry.contains(chord_unlock::NAME) {
            registry.insert(chord_unlock::task_def(
                Arc::clone(&backend),
                producer.clone(),
                settings.chord,
            ));
        }
        let slots = Slots::new(settings.concurrency);
        let throttle = Throttle::new(
            &registry,
            settings.default_rate_limit.as_deref(),
            settings.disable_rate_limits,
        )?;
        let window = PrefetchWindow::new(prefetch_count(&settings));
        let qos = broker.qos(&window);
        let lifecycle = observe::lifecycle(&events, settings.metrics.as_ref());
        let settings_queues = settings.queues.clone();
        Ok(Worker {
            shared: Arc::new(Shared {
                registry,
                broker,
                env: Arc::new(TaskEnv::new(state, Some(producer.clone()))),
                producer,
                backend,
                settings,
                slots,
                every_slot_abandoned: watch::Sender::new(false),
                throttle,
                inflight: Inflight::default(),
                window,
                qos,
                shutdown: CancellationToken::new(),
                stats: Stats::default(),
                health,
                events,
                event_queue: std::sync::Mutex::new(Some(event_queue)),
                control,
                lifecycle,
                revocations: Arc::new(Revocations::default()),
                requests: Arc::default(),
                gossip: Arc::default(),
                consumed: ConsumedQueues::new(settings_queues),
            }),
        })
    }

    /// Adds an observer of every request's steps (received, started, succeeded, ...). Call
    /// it before [`Worker::run`]; returns false (and adds nothing) once the worker runs.
    pub fn observe(&mut self, observer: Arc<dyn LifecycleObserver>) -> bool {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => {
                shared.lifecycle.add(observer);
                true
            }
            None => false,
        }
    }

    /// Keeps the revoked task ids in `path` across restarts (Celery's `--statedb`): reads
    /// those saved there, and saves them after each revoke and at shutdown. Call it before
    /// [`Worker::run`].
    pub fn with_statedb(mut self, path: std::path::PathBuf) -> Result<Worker, WorkerError> {
        let store = Arc::new(Revocations::open(Some(path))?);
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.revocations = store;
        }
        Ok(self)
    }

    /// The worker's revoked ids and stamps: what the `revoke` and
    /// `revoke_by_stamped_headers` commands change and the `hello` reply reads.
    pub fn revocations(&self) -> Arc<Revocations> {
        Arc::clone(&self.shared.revocations)
    }

    /// The prefetch window size: slots × multiplier (0 = unlimited); the slots are `-c`
    /// until remote control resizes the pool (`pool_grow` / `pool_shrink`).
    pub fn prefetch_count(&self) -> usize {
        prefetch_count_for(&self.shared.settings, self.shared.slots.capacity())
    }

    /// The worker's event dispatcher (the `enable_events` / `disable_events` remote
    /// commands switch its task events).
    pub fn events(&self) -> EventDispatcher {
        self.shared.events.clone()
    }

    /// The worker's Lamport clock, shared by remote control and events.
    pub fn clock(&self) -> Arc<crate::control::LamportClock> {
        Arc::clone(&self.shared.control.clock)
    }

    /// The other workers alive, as gossip has heard of them (their names, sorted).
    pub fn neighbors(&self) -> Vec<String> {
        self.shared.gossip.alive(std::time::Instant::now())
    }

    /// The switches remote control flips (`task_events`).
    pub fn control_flags(&self) -> Arc<ControlFlags> {
        Arc::clone(&self.shared.control.flags)
    }

    /// Consumes until a shutdown signal, then shuts down: warm on the first signal (running
    /// tasks finish, within `shutdown_timeout`), cold on a second. Every message not finished
    /// goes back to its queue. SIGHUP shuts down warm and returns [`Exit::Restart`]: the
    /// caller then starts the worker again (the command line re-executes itself).
    pub async fn run(self) -> Result<Exit, WorkerError> {
        let mut signals = shutdown::listen()?;
        let shared = &self.shared;
        let dump = dump::listen(Arc::clone(shared))?;
        let watchdog = watchdog::spawn(Arc::clone(shared));
        let window = shared.window.clone();
        // Celery's consumer steps: mingle before tasks are consumed, then gossip.
        mingle::run(shared).await;
        let gossip = gossip::spawn(Arc::clone(shared));
        let mut deliveries = Arc::clone(&shared.broker)
            .consume(shared.consumed.clone(), window.clone())
            .await?;
        let tracker = TaskTracker::new();
        let wedged =
            wedged::every_slot_abandoned_for(Arc::clone(shared), shared.settings.wedge_warn_after);
        tokio::pin!(wedged);
        let leases_stop = CancellationToken::new();
        tokio::spawn(lease::keep(Arc::clone(shared), leases_stop.clone()));
        let publisher = start_events(shared);
        let heart_stop = CancellationToken::new();
        let heart = start_heartbeat(shared, heart_stop.clone());
        if let Some(metrics) = &shared.settings.metrics {
            let live = Arc::clone(shared);
            metrics.set_live(Box::new(move || live_state(&live)));
        }
        let mailbox = control::spawn(Arc::clone(shared));
        tracing::info!("{} ready.", shared.settings.hostname);

        let kind = loop {
            tokio::select! {
                d = deliveries.recv() => match d {
                    Some(d) => {
                        if !shared.inflight.insert(&d.tag) {
                            // Restored and fetched again while this worker still holds it
                            // (its hold could not be renewed in time): the held copy runs, and
                            // its settlement settles this one too, as both share the tag.
                            tracing::warn!(delivery_tag = %d.tag, "message redelivered while this worker holds it; the duplicate is dropped");
                            continue;
                        }
                        // The request's state machine is large (kilobytes): boxed once on
                        // first poll instead of being moved through spawn's layers.
                        let shared = Arc::clone(shared);
                        tracker.spawn(async move { Box::pin(request::handle(shared, d)).await });
                    }
                    None => break ShutdownKind::Warm,
                },
                k = signals.recv() => break k.unwrap_or(ShutdownKind::Warm),
                _ = shared.control.shutdown.cancelled() => break ShutdownKind::Warm,
                _ = &mut wedged => {
                    tracing::error!(
                        "every slot has been held by a thread abandoned at its time limit for {:?}: restarting in place to end them (rcelery_restart_when_wedged)",
                        shared.settings.wedge_warn_after
                    );
                    break ShutdownKind::Restart;
                }
            }
        };
        let fatal = shared.broker.fatal_error();
        let kind = if fatal.is_some() {
            ShutdownKind::Cold
        } else {
            kind
        };

        let label = match kind {
            ShutdownKind::Warm => "Warm shutdown",
            ShutdownKind::Cold => "Cold shutdown",
            ShutdownKind::Restart => "Restarting",
        };
        tracing::info!("worker: {label} (MainProcess)");
        shared.broker.stop_consuming();
        window.close();
        shared.shutdown.cancel();
        // Messages fetched but not yet dispatched stay unsettled and are given back below.
        let drained = tokio::time::timeout(SETTLE_LIMIT, async {
            while let Some(d) = deliveries.recv().await {
                shared.inflight.insert(&d.tag);
            }
        });
        if drained.await.is_err() {
            tracing::warn!("the fetch loop did not stop within {SETTLE_LIMIT:?}");
        }
        tracker.close();
        if kind != ShutdownKind::Cold {
            let running = shared.slots.running();
            if running > 0 {
                tracing::info!("waiting for {running} running task(s) to finish");
            }
            tokio::select! {
                _ = tracker.wait() => {}
                _ = tokio::time::sleep(shared.settings.shutdown_timeout) => {
                    tracing::warn!("tasks still running after {:?}; giving their messages back", shared.settings.shutdown_timeout);
                }
                _ = signals.recv() => {
                    tracing::warn!("Cold shutdown requested: not waiting for running tasks");
                }
            }
        }
        heart_stop.cancel();
        if let Some(heart) = heart {
            let _ = heart.await;
            let ev = &shared.settings.events;
            shared.events.send(crate::events::worker_event(
                "worker-offline",
                ev.heartbeat_interval,
                worker_counts(shared),
            ));
        }
        if let Some(publisher) = publisher {
            publisher.close(EVENTS_CLOSE_LIMIT).await;
        }
        if tokio::time::timeout(SETTLE_LIMIT, shared.broker.flush())
            .await
            .is_err()
        {
            tracing::error!("acks could not reach the broker within {SETTLE_LIMIT:?}; those messages will run again after the visibility timeout");
        }
        let pending = shared.backend.pending_results();
        if pending > 0 {
            tracing::error!(count = pending, "{pending} result(s) could not be stored before shutdown (the result backend is unreachable); with acks_late their messages are given back and run again, early-acked ones are lost");
        }
        let unsettled = shared.inflight.drain();
        if !unsettled.is_empty() {
            match tokio::time::timeout(SETTLE_LIMIT, shared.broker.restore(unsettled.clone())).await {
                Ok(Ok(n)) => tracing::info!("Restoring {n} unacknowledged message(s)"),
                Ok(Err(e)) => tracing::error!(error = %e, count = unsettled.len(), "could not restore messages; they return after the visibility timeout"),
                Err(_) => tracing::error!(count = unsettled.len(), "could not restore messages within {SETTLE_LIMIT:?}; they return after the visibility timeout"),
            }
        }
        shared.revocations.save();
        leases_stop.cancel();
        if let Some(mailbox) = mailbox {
            mailbox.abort();
        }
        if let Some(gossip) = gossip {
            gossip.abort();
        }
        watchdog.abort();
        dump.abort();
        if let Some(reason) = fatal {
            return Err(WorkerError::BrokerLost(reason));
        }
        Ok(if kind == ShutdownKind::Restart {
            Exit::Restart
        } else {
            Exit::Stopped
        })
    }
}

/// How a worker run ended (when it did not fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Shut down for good (SIGTERM, SIGINT, SIGQUIT).
    Stopped,
    /// Shut down to start again in place (SIGHUP).
    Restart,
}

/// Starts the event publisher (once per worker).
fn start_events(shared: &Arc<Shared>) -> Option<Publisher> {
    let rx = shared
        .event_queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()?;
    Some(Publisher::spawn(
        Arc::clone(&shared.broker),
        rx,
        shared.events.clone(),
        shared.settings.hostname.clone(),
    ))
}

/// Starts the heartbeat (`worker-online`, then `worker-heartbeat` every `freq` seconds)
/// unless `--without-heartbeat`.
fn start_heartbeat(
    shared: &Arc<Shared>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let ev = &shared.settings.events;
    if !ev.heartbeat {
        return None;
    }
    let counted = Arc::clone(shared);
    Some(tokio::spawn(crate::events::beat(
        shared.events.clone(),
        ev.heartbeat_interval,
        move || worker_counts(&counted),
        stop,
    )))
}

/// What worker events report: tasks running and tasks run.
pub(crate) fn worker_counts(shared: &Shared) -> WorkerCounts {
    WorkerCounts {
        active: shared.slots.running(),
        processed: shared
            .stats
            .processed
            .load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// What the metrics endpoint reads at each scrape.
fn live_state(shared: &Shared) -> LiveState {
    let stats = shared.events.stats();
    LiveState {
        health: shared.health.snapshot(),
        active: shared.slots.running(),
        prefetched: shared.inflight.len(),
        eta_held: shared.requests.count(requests::Phase::Scheduled),
        results_pending: shared.backend.pending_results(),
        events_published: stats.published.load(std::sync::atomic::Ordering::Relaxed),
        events_dropped: stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// How long the events still queued at shutdown (`worker-offline` last) may take to go out.
const EVENTS_CLOSE_LIMIT: Duration = Duration::from_secs(3);

/// The longest each shutdown step that needs the broker (draining the fetch loop, flushing
/// acks, restoring messages) may wait for it, so a broker outage cannot hold the shutdown.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
