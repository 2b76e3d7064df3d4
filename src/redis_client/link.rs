//! A Redis connection that heals: [`Link`] hands out a multiplexed connection, notices when
//! it breaks (the server restarted, `CLIENT KILL`, a fail-over, a timeout), and reconnects
//! with capped exponential backoff and jitter, Celery's `broker_connection_*` settings
//! deciding how long to try.
//!
//! The redis crate's `MultiplexedConnection` stays broken for good once its socket is gone:
//! every later command fails at once with "broken pipe". So every user of a link reports the
//! failures it sees ([`Link::failed`]), and the next [`Link::get`] opens a new connection.
//! [`Link::run`] wraps that loop around one operation.
//!
//! Errors fall into three classes ([`Failure`]): the connection is unusable (reconnect), the
//! server refuses for now (`OOM`, `LOADING`, `BUSY`, `MASTERDOWN`, ...: wait and retry on the
//! same connection), or the command itself is wrong (returned to the caller). A link reports
//! its outages to the worker's [`Health`]: one log line when it goes, one at a low rate while
//! it stays down (with the outage's length), one when it is back.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rand::Rng;
use redis::aio::MultiplexedConnection;
use redis::{Client, RedisError};
use tokio::sync::watch;

use super::client::Timeouts;
use super::endpoint::{Endpoint, FixedEndpoint};
use crate::health::{Health, LinkKind};

/// How long a reply may take when neither the URL nor the transport options say
/// (`socket_timeout`): kombu waits forever, which lets a silent network wedge a worker.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a link that stays down says so.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// How long to keep retrying, and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The first wait; each later one doubles, up to `max_delay`.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// Consecutive failed connection attempts before giving up (`None`: never give up).
    pub max_retries: Option<u32>,
}

impl RetryPolicy {
    /// The broker's policy: Celery's `broker_connection_max_retries` (100 by default; 0 or
    /// none retry forever), waits from 0.2 s doubling up to 5 s.
    pub fn broker(max_retries: Option<u32>) -> Self {
        RetryPolicy {
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retries: max_retries.filter(|n| *n > 0),
        }
    }

    /// The wait before attempt `attempt` (1-based): `base × 2^(attempt-1)`, capped, with
    /// up to a quarter taken off at random so that many workers do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max_delay);
        let jitter = rand::thread_rng().gen_range(0.75..=1.0);
        raw.mul_f64(jitter)
    }
}

/// What a link is for and how it connects.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Which health entry its outages count against.
    pub kind: LinkKind,
    /// Whether it reports to [`Health`] and logs outages at WARNING (one link per server and
    /// role should; helper links such as the blocking `BRPOP` connection log at DEBUG).
    pub reports: bool,
    /// How long one connection attempt may take (`broker_connection_timeout`, 4 s).
    pub connect_timeout: Duration,
    /// How long a reply may take before the connection is considered dead (`None`: forever).
    pub response_timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
}

/// How a failed command should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection is unusable: open a new one and retry.
    Connection,
    /// The server refuses for now (out of memory, loading, busy script, fail-over): wait and
    /// retry.
    Transient,
    /// The command itself failed; retrying would fail the same way.
    Permanent,
}

/// Sorts an error into its [`Failure`] class.
pub fn classify(error: &RedisError) -> Failure {
    match error.code() {
        Some(
            "OOM" | "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "MISCONF"
            | "NOREPLICAS",
        ) => return Failure::Transient,
        // A replica after a fail-over: a new connection may reach the new master.
        Some("READONLY") => return Failure::Connection,
        _ => {}
    }
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            redis::ErrorKind::Parse | redis::ErrorKind::AuthenticationFailed
        )
    {
        return Failure::Connection;
    }
    Failure::Permanent
}

/// Errors of a link.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The URL cannot be used (the message is password-free).
    #[error("{0}")]
    Url(String),
    /// Every allowed attempt to reach the server failed.
    #[error("cannot reach {target}: gave up after {attempts} attempt(s): {last}")]
    GaveUp {
        /// Role and masked URL.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The server answered with an error that retrying cannot cure.
    #[error("{0}")]
    Command(#[from] RedisError),
}

/// Runs after each new connection, before anyone else uses it (loading scripts, recording
/// bindings that a restarted server lost).
pub type OnConnect =
    Arc<dyn Fn(MultiplexedConnection) -> BoxFuture<'static, Result<(), RedisError>> + Send + Sync>;

struct State {
    conn: Option<MultiplexedConnection>,
    /// The endpoint's stamp when `conn` was opened.
    stamp: u64,
    /// Where the last connection went (masked), to say so when the endpoint moves.
    connected_to: String,
    /// Bumped on every new connection.
    generation: u64,
    /// Consecutive failures (connection attempts and commands) since the last success.
    failures: u32,
    /// Consecutive failed connection attempts, for `max_retries`.
    attempts: u32,
    last_error: String,
    last_report: Option<Instant>,
}

/// A self-healing connection to one Redis server.
pub struct Link {
    endpoint: Arc<dyn Endpoint>,
    role: &'static str,
    options: LinkOptions,
    health: Arc<Health>,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
    on_connect: Mutex<Option<OnConnect>>,
    epochs: watch::Sender<u64>,
}

impl Link {
    /// A link to `client`, not connected yet. `display` is the password-free URL for logs,
    /// `role` what the server is to us (`broker`, `result backend`).
    pub fn new(
        client: Client,
        display: String,
        role: &'static str,
        options: LinkOptions,
        health: Arc<Health>,
    ) -> Link {
        Link::with_endpoint(
            Arc::new(FixedEndpoint::new(client, display)),
            role,
            options,
            health,
        )
    }

    /// A link to wherever `endpoint` names at each connection (a Sentinel-managed master, a
    /// fail-over list), not connected yet.
    pub fn with_endpoint(
        endpoint: Arc<dyn Endpoint>,
        role: &'static str,
        options: LinkOptions,
        health: Arc<Health>,
    ) -> Link {
        let (epochs, _) = watch::channel(0);
        Link {
            endpoint,
            role,
            options,
            health,
            state: Mutex::new(State {
                conn: None,
                stamp: 0,
                connected_to: String::new(),
                generation: 0,
                failures: 0,
                attempts: 0,
                last_error: String::new(),
                last_report: None,
            }),
            connecting: tokio::sync::Mutex::new(()),
            on_connect: Mutex::new(None),
            epochs,
        }
    }

    /// Sets what runs after every new connection (replacing any earlier hook). The current
    /// connection, if any, is dropped so that the hook runs before the next command.
    pub fn set_on_connect(&self, hook: OnConnect) {
        *lock(&self.on_connect) = Some(hook);
        lock(&self.state).conn = None;
    }

    /// The password-free URL of the server the link connects to now.
    pub fn display_url(&self) -> String {
        self.endpoint.display()
    }

    /// Which health entry the link reports to.
    pub fn kind(&self) -> LinkKind {
        self.options.kind
    }

    /// Resolves each time a new connection is made (the value counts them), so that users
    /// can redo what a restarted server forgot.
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.epochs.subscribe()
    }

    /// The current connection, connecting (with backoff, within the retry policy) if there
    /// is none. Returns the connection's generation, to hand back to [`Link::failed`].
    pub async fn get(&self) -> Result<(u64, MultiplexedConnection), LinkError> {
        self.get_within(self.options.retry.max_retries).await
    }

    /// The first connection (at startup), allowing `max_retries` failed attempts (`None`:
    /// forever, `Some(0)`: one attempt) instead of the policy's.
    pub async fn connect(
        &self,
        max_retries: Option<u32>,
    ) -> Result<(u64, MultiplexedConnection), LinkError> {
        self.get_within(max_retries).await
    }

    async fn get_within(
        &self,
        max_retries: Option<u32>,
    ) -> Result<(u64, MultiplexedConnection), LinkError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        loop {
            if let Some(c) = self.current() {
                return Ok(c);
            }
            // Named before the attempt: a failed attempt may move the endpoint on.
            let target = self.endpoint.display();
            match self.open().await {
                Ok((conn, stamp)) => {
                    let shown = self.endpoint.display();
                    let (generation, moved_from) = {
                        let mut s = lock(&self.state);
                        s.generation += 1;
                        s.attempts = 0;
                        s.conn = Some(conn.clone());
                        s.stamp = stamp;
                        let before = std::mem::replace(&mut s.connected_to, shown.clone());
                        let moved = (!before.is_empty() && before != shown).then_some(before);
                        (s.generation, moved)
                    };
                    if let Some(before) = moved_from {
                        let line = format!("{} now connected to {shown} (was {before})", self.role);
                        if self.options.reports {
                            tracing::warn!("{line}");
                        } else {
                            tracing::debug!("{line}");
                        }
                    }
                    self.epochs.send_replace(generation);
                    self.succeeded();
                    tracing::debug!(url = %shown, generation, "{} connected", self.role);
                    return Ok((generation, conn));
                }
                Err(open_error) => {
                    let e = open_error.error;
                    let (attempt, delay) =
                        self.note_failure(&target, &e.to_string(), Failure::Connection, true);
                    // A fail-over list tries every URL of a round before it may give up.
                    if let Some(max) = max_retries.filter(|_| !open_error.try_next_now) {
                        if attempt > max {
                            return Err(LinkError::GaveUp {
                                target: self.target(),
                                attempts: attempt,
                                last: e.to_string(),
                            });
                        }
                    }
                    if !open_error.try_next_now {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }

    /// Records a failed command on the connection of `generation`; returns its class. A
    /// connection failure drops that connection, so the next [`Link::get`] reconnects.
    pub fn failed(&self, generation: u64, error: &RedisError) -> Failure {
        let class = classify(error);
        if class == Failure::Permanent {
            return class;
        }
        if class == Failure::Connection {
            let current = {
                let mut s = lock(&self.state);
                let current = s.generation == generation && s.conn.is_some();
                if s.generation == generation {
                    s.conn = None;
                }
                current
            };
            if current {
                self.endpoint.lost(error);
            }
        }
        self.note_failure(&self.endpoint.display(), &error.to_string(), class, false);
        class
    }

    /// Drops the current connection without counting a failure, so the next use opens a
    /// fresh one. The redis crate keeps a connection's read and write buffers as large as the
    /// largest reply or command it carried; after a message of many megabytes, a fresh
    /// connection gives that memory back. Commands in flight finish on the old one.
    pub fn recycle(&self) {
        lock(&self.state).conn = None;
    }

    /// The wait before retrying after the failures recorded so far.
    pub fn backoff(&self) -> Duration {
        let failures = lock(&self.state).failures.max(1);
        self.options.retry.delay(failures)
    }

    /// Records a successful command: ends an outage (logging its length once).
    pub fn succeeded(&self) {
        {
            let mut s = lock(&self.state);
            if s.failures == 0 {
                return;
            }
            s.failures = 0;
            s.last_report = None;
        }
        if self.options.reports {
            if let Some(outage) = self.health.link_up(self.options.kind) {
                tracing::warn!(
                    outage_secs = outage.as_secs_f64(),
                    "{} connection restored after {:.1}s",
                    self.role,
                    outage.as_secs_f64()
                );
            }
        } else {
            tracing::debug!(url = %self.endpoint.display(), "{} connection restored", self.role);
        }
    }

    /// Runs `op` on the link's connection until it succeeds, reconnecting and waiting as the
    /// failures call for. Returns a permanent error at once, and [`LinkError::GaveUp`] when
    /// the retry policy runs out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, LinkError>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        loop {
            let (generation, conn) = self.get().await?;
            match op(conn).await {
                Ok(value) => {
                    self.succeeded();
                    return Ok(value);
                }
                Err(e) => match self.failed(generation, &e) {
                    Failure::Permanent => return Err(LinkError::Command(e)),
                    Failure::Connection | Failure::Transient => {
                        tokio::time::sleep(self.backoff()).await
                    }
                },
            }
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let stamp = self.endpoint.stamp();
        let mut s = lock(&self.state);
        if s.conn.is_some() && s.stamp != stamp {
            // The endpoint moved (another connection of the same broker failed over): this
            // connection reaches a server the others have left.
            s.conn = None;
        }
        s.conn.clone().map(|c| (s.generation, c))
    }

    async fn open(&self) -> Result<super::endpoint::Opened, super::endpoint::OpenError> {
        let timeouts = Timeouts {
            connect: Some(self.options.connect_timeout),
            response: self.options.response_timeout,
        };
        let (conn, stamp) = self.endpoint.open(timeouts).await?;
        let hook = lock(&self.on_connect).clone();
        if let Some(hook) = hook {
            hook(conn.clone()).await?;
        }
        Ok((conn, stamp))
    }

    /// Counts a failure, logs it as the outage calls for, and returns the attempt number and
    /// the wait before the next one.
    fn note_failure(
        &self,
        target: &str,
        error: &str,
        class: Failure,
        connecting: bool,
    ) -> (u32, Duration) {
        let error = crate::redis_client::mask::mask_secrets_in_text(error);
        let (attempt, failures, report) = {
            let mut s = lock(&self.state);
            s.failures = s.failures.saturating_add(1);
            if connecting {
                s.attempts = s.attempts.saturating_add(1);
            }
            s.last_error = error.clone();
            let report = match s.last_report {
                None => true,
                Some(at) => at.elapsed() >= REPORT_EVERY,
            };
            if report {
                s.last_report = Some(Instant::now());
            }
            (s.attempts, s.failures, report)
        };
        let delay = self.options.retry.delay(failures);
        if !self.options.reports {
            tracing::debug!(url = %target, error = %error, "{} connection failed; retrying in {:.1}s", self.role, delay.as_secs_f64());
            return (attempt, delay);
        }
        let first = self.health.link_down(self.options.kind, &error);
        let of_max = self
            .options
            .retry
            .max_retries
            .map_or(String::new(), |m| format!("/{m}"));
        let state = if class == Failure::Transient {
            "refuses commands"
        } else {
            "unavailable"
        };
        if first {
            tracing::warn!(
                "{} {} {state}: {error}; retrying in {:.1}s",
                self.role,
                target,
                delay.as_secs_f64()
            );
        } else if report {
            let down = self.health.down_for(self.options.kind).unwrap_or_default();
            tracing::warn!(
                outage_secs = down.as_secs_f64(),
                "{} {} still {state} after {:.0}s (attempt {attempt}{of_max}): {error}",
                self.role,
                target,
                down.as_secs_f64()
            );
        }
        (attempt, delay)
    }

    fn target(&self) -> String {
        format!("{} {}", self.role, self.endpoint.display())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retries: None,
        };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(
                d1 >= Duration::from_millis(75) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = p.delay(3);
            assert!(
                d3 >= Duration::from_millis(300) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d30 = p.delay(30);
            assert!(
                d30 >= Duration::from_millis(750) && d30 <= Duration::from_secs(1),
                "{d30:?}"
            );
        }
    }

    #[test]
    fn zero_retries_means_forever() {
        assert_eq!(RetryPolicy::broker(Some(0)).max_retries, None);
        assert_eq!(RetryPolicy::broker(None).max_retries, None);
        assert_eq!(RetryPolicy::broker(Some(100)).max_retries, Some(100));
    }

    #[test]
    fn errors_are_classified() {
        let io: RedisError = std::io::Error::from(std::io::ErrorKind::BrokenPipe).into();
        assert_eq!(classify(&io), Failure::Connection);
        let timeout: RedisError = std::io::Error::from(std::io::ErrorKind::TimedOut).into();
        assert_eq!(classify(&timeout), Failure::Connection);
        let oom = redis::make_extension_error("OOM".into(), Some("command not allowed".into()));
        assert_eq!(classify(&oom), Failure::Transient);
        let wrong = redis::make_extension_error("WRONGTYPE".into(), None);
        assert_eq!(classify(&wrong), Failure::Permanent);
    }
}
