//! The self-healing AMQP connection: one connection with a consumer channel (QoS, consumers,
//! acks) and a publisher channel (publisher confirms), made anew with Celery's
//! `broker_connection_*` retry settings when it is lost. Each new connection is a new
//! [`Session`] with a new generation; delivery tags of an older generation are stale (their
//! messages were given back by the server when the old channel closed).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::tcp::OwnedTLSConfig;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

use crate::broker::failover::FailoverUrls;
use crate::broker::{BrokerError, ConnectionSettings};
use crate::health::{Health, LinkKind};
use crate::redis_client::link::RetryPolicy;

/// How often a link that stays down says so.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Where and how to connect.
#[derive(Clone)]
pub(super) struct Target {
    /// The URL lapin connects to.
    pub uri: AMQPUri,
    /// TLS certificates (CA chain, client identity).
    pub tls: OwnedTLSConfig,
    /// The URL for logs (password masked).
    pub display: String,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// Whether the publisher channel uses publisher confirms.
    pub confirms: bool,
}

/// One live connection and its channels.
pub(super) struct Session {
    /// Counts connections made; delivery tags carry it.
    pub generation: u64,
    /// The connection.
    pub connection: Connection,
    /// The consumer channel: declarations of consumed queues, QoS, consumers, acks.
    pub channel: Channel,
    /// The publisher channel, opened on first use and again after the server closed it
    /// (a refused publish or declaration closes only this channel).
    publisher: tokio::sync::Mutex<Option<Channel>>,
    confirms: bool,
    /// Queues declared on this connection for publishing (kombu's `maybe_declare` cache).
    pub declared: Mutex<HashSet<String>>,
}

impl Session {
    /// The publisher channel, opened (in confirm mode) if it is not open.
    pub async fn publisher(&self) -> Result<Channel, lapin::Error> {
        let mut slot = self.publisher.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(c.clone());
        }
        let c = self.connection.create_channel().await?;
        if self.confirms {
            c.confirm_select(Default::default()).await?;
        }
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A short-lived channel for an operation that may be refused (a passive declaration
    /// closes its channel when the queue is missing).
    pub async fn scratch_channel(&self) -> Result<Channel, lapin::Error> {
        self.connection.create_channel().await
    }
}

#[derive(Default)]
struct State {
    current: Option<Arc<Session>>,
    generation: u64,
    attempts: u32,
    failures: u32,
    last_report: Option<Instant>,
    down: bool,
    /// The index in the fail-over list of the URL last connected to.
    connected_to: Option<usize>,
}

/// The broker link: hands out the current [`Session`], connecting when there is none, to
/// the URL of the fail-over list in use (one [`Target`] per URL, in the list's order).
pub(super) struct Link {
    targets: Vec<Target>,
    urls: Arc<FailoverUrls>,
    retry: RetryPolicy,
    health: Arc<Health>,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
    epochs: watch::Sender<u64>,
}

impl Link {
    /// A link that has not connected yet; `targets` has one entry per URL of `urls`.
    pub fn new(
        targets: Vec<Target>,
        urls: Arc<FailoverUrls>,
        settings: &ConnectionSettings,
        health: Arc<Health>,
    ) -> Link {
        let retry = RetryPolicy::broker(settings.max_retries);
        let retry = if settings.retry {
            retry
        } else {
            RetryPolicy {
                max_retries: Some(0),
                ..retry
            }
        };
        Link {
            targets,
            urls,
            retry,
            health,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
            epochs: watch::Sender::new(0),
        }
    }

    /// The URL in use, for logs.
    pub fn display(&self) -> &str {
        &self.target(self.urls.current().index).display
    }

    fn target(&self, index: usize) -> &Target {
        &self.targets[index.min(self.targets.len() - 1)]
    }

    /// Changes with every new connection.
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.epochs.subscribe()
    }

    /// The current session, connecting (with backoff, within the retry policy) if there is
    /// none.
    pub async fn get(&self) -> Result<Arc<Session>, BrokerError> {
        self.get_within(self.retry.max_retries).await
    }

    /// The first connection, allowing `max_retries` failed attempts (`None`: forever).
    pub async fn connect(&self, max_retries: Option<u32>) -> Result<Arc<Session>, BrokerError> {
        self.get_within(max_retries).await
    }

    async fn get_within(&self, max_retries: Option<u32>) -> Result<Arc<Session>, BrokerError> {
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let _one_at_a_time = self.connecting.lock().await;
        loop {
            if let Some(s) = self.live() {
                return Ok(s);
            }
            let attempt = self.urls.current();
            let target = self.target(attempt.index);
            match self.open(target).await {
                Ok((connection, channel)) => {
                    self.urls.succeeded();
                    let (session, moved_from) = {
                        let mut s = lock(&self.state);
                        let moved_from = s
                            .connected_to
                            .replace(attempt.index)
                            .filter(|was| *was != attempt.index);
                        s.generation += 1;
                        s.attempts = 0;
                        s.failures = 0;
                        s.last_report = None;
                        let session = Arc::new(Session {
                            generation: s.generation,
                            connection,
                            channel,
                            publisher: tokio::sync::Mutex::new(None),
                            confirms: target.confirms,
                            declared: Mutex::default(),
                        });
                        s.current = Some(Arc::clone(&session));
                        (session, moved_from)
                    };
                    self.epochs.send_replace(session.generation);
                    self.restored();
                    if let Some(was) = moved_from {
                        tracing::warn!(
                            "broker now connected to {} (was {})",
                            target.display,
                            self.target(was).display
                        );
                    }
                    tracing::debug!(url = %target.display, generation = session.generation, "broker connected");
                    return Ok(session);
                }
                Err(e) => {
                    let next = self.urls.next_on_failure(attempt);
                    let moving_to = (!next.round_failed)
                        .then(|| self.target(next.attempt.index).display.as_str());
                    let (attempts, delay) = self.note_failure(&target.display, &e, true, moving_to);
                    if !next.round_failed {
                        // kombu moves on to the next URL of the list at once; it waits only
                        // when every URL has failed.
                        continue;
                    }
                    if let Some(max) = max_retries {
                        if attempts > max {
                            return Err(BrokerError::GaveUp {
                                target: format!("broker {}", target.display),
                                attempts,
                                last: e,
                            });
                        }
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Whether the session of `generation` is the current one and still up: the deliveries
    /// of any other have been given back by the server.
    pub fn is_live(&self, generation: u64) -> bool {
        self.live().is_some_and(|s| s.generation == generation)
    }

    /// The current session if its connection and consumer channel are still up.
    fn live(&self) -> Option<Arc<Session>> {
        let mut s = lock(&self.state);
        let alive = s
            .current
            .as_ref()
            .is_some_and(|c| c.connection.status().connected() && c.channel.status().connected());
        if !alive {
            s.current = None;
        }
        s.current.clone()
    }

    /// Records that the session of `generation` failed with `error`: it is dropped (and its
    /// connection closed), so the next [`Link::get`] connects anew.
    pub fn failed(&self, generation: u64, error: &str) {
        let dropped = {
            let mut s = lock(&self.state);
            if s.current.as_ref().map(|c| c.generation) == Some(generation) {
                s.current.take()
            } else {
                None
            }
        };
        if let Some(session) = dropped {
            let display = self.display().to_owned();
            self.note_failure(&display, error, false, None);
            tokio::spawn(async move {
                let _ = session
                    .connection
                    .close(320, "connection lost".into())
                    .await;
            });
        }
    }

    async fn open(&self, target: &Target) -> Result<(Connection, Channel), String> {
        let attempt = async {
            let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
            let props = ConnectionProperties::default()
                .with_connection_name(format!("rcelery {}", std::process::id()).into());
            let connection = Connection::connect_uri_with_config(
                target.uri.clone(),
                props,
                target.tls.clone(),
                runtime,
            )
            .await
            .map_err(|e| e.to_string())?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| e.to_string())?;
            Ok((connection, channel))
        };
        match tokio::time::timeout(target.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no connection within {:.1}s",
                target.connect_timeout.as_secs_f64()
            )),
        }
    }

    /// Ends an outage: says how long it lasted, once.
    fn restored(&self) {
        let was_down = std::mem::take(&mut lock(&self.state).down);
        if !was_down {
            return;
        }
        if let Some(outage) = self.health.link_up(LinkKind::Broker) {
            tracing::warn!(
                outage_secs = outage.as_secs_f64(),
                "broker connection restored after {:.1}s",
                outage.as_secs_f64()
            );
        }
    }

    /// Counts a failure, logs it as the outage calls for, and returns the attempt number and
    /// the wait before the next attempt (none when the fail-over list is `moving_to` another
    /// URL at once).
    fn note_failure(
        &self,
        shown: &str,
        error: &str,
        connecting: bool,
        moving_to: Option<&str>,
    ) -> (u32, Duration) {
        let error = crate::redis_client::mask::mask_secrets_in_text(error);
        let (attempt, failures, report) = {
            let mut s = lock(&self.state);
            s.down = true;
            s.failures = s.failures.saturating_add(1);
            if connecting {
                s.attempts = s.attempts.saturating_add(1);
            }
            let report = match s.last_report {
                None => true,
                Some(at) => at.elapsed() >= REPORT_EVERY,
            };
            if report {
                s.last_report = Some(Instant::now());
            }
            (s.attempts, s.failures, report)
        };
        let delay = self.retry.delay(failures);
        let first = self.health.link_down(LinkKind::Broker, &error);
        let of_max = self
            .retry
            .max_retries
            .map_or(String::new(), |m| format!("/{m}"));
        if let (true, Some(next)) = (first, moving_to) {
            tracing::warn!("broker {shown} unavailable: {error}; trying {next} now");
        } else if first {
            tracing::warn!(
                "broker {shown} unavailable: {error}; retrying in {:.1}s",
                delay.as_secs_f64()
            );
        } else if report {
            let down = self.health.down_for(LinkKind::Broker).unwrap_or_default();
            tracing::warn!(
                outage_secs = down.as_secs_f64(),
                "broker {shown} still unavailable after {:.0}s (attempt {attempt}{of_max}): {error}",
                down.as_secs_f64()
            );
        }
        (attempt, delay)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
