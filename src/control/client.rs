//! The client side of remote control (Celery's `app.control.broadcast` and `inspect`): a
//! command published to the pidbox fanout exchange, the replies collected from a reply queue
//! of the client's own for `timeout`, grouped by node. Works with Python and rcelery workers
//! alike, on every transport whose broker implements `publish_to` and `subscribe`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;

use super::{Command, MailboxSettings, Reply, ReplyTo};
use crate::broker::{Broker, BrokerError};
use crate::codec::{AcceptContent, Serializer};
use crate::value::{Dict, Value};

/// Why a broadcast failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker refused or failed (subscribing to the reply queue, publishing).
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
}

/// What to broadcast and how long to wait.
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// The command (`ping`, `stats`, `revoke`, ...).
    pub method: String,
    /// Its arguments.
    pub arguments: Dict,
    /// The nodes that should run it (`None`: every node).
    pub destination: Option<Vec<String>>,
    /// Wait for replies (inspect commands, `ping`); `false` sends and returns at once.
    pub reply: bool,
    /// How long to collect replies.
    pub timeout: Duration,
    /// Stop after this many replies (kombu's `limit`), e.g. the number of destinations.
    pub limit: Option<usize>,
}

/// A remote-control client on one broker connection.
pub struct ControlClient {
    broker: Arc<dyn Broker>,
    mailbox: MailboxSettings,
    serializer: Serializer,
    accept: AcceptContent,
}

impl ControlClient {
    /// A client publishing with `serializer` and reading replies with `accept`.
    pub fn new(
        broker: Arc<dyn Broker>,
        mailbox: MailboxSettings,
        serializer: Serializer,
        accept: AcceptContent,
    ) -> Self {
        ControlClient {
            broker,
            mailbox,
            serializer,
            accept,
        }
    }

    /// Broadcasts `b` and returns the replies by node, in the order they came (a node that
    /// answered twice keeps its first answer). Malformed replies are logged and skipped.
    pub async fn broadcast(&self, b: &Broadcast) -> Result<IndexMap<String, Value>, ClientError> {
        let mut command = Command::new(&b.method, b.arguments.clone());
        command.destination = b.destination.clone();
        let mut replies = IndexMap::new();
        if !b.reply {
            let msg = command.encode(self.serializer, &self.mailbox.exchange_name());
            self.broker
                .publish_to(&self.mailbox.exchange(), &msg)
                .await?;
            return Ok(replies);
        }
        let oid = uuid::Uuid::new_v4().to_string();
        let ticket = uuid::Uuid::new_v4().to_string();
        // Subscribed before the command goes out, so that no reply is missed.
        let mut rx = Arc::clone(&self.broker)
            .subscribe(self.mailbox.reply_queue(&oid))
            .await?;
        command.ticket = Some(ticket.clone());
        command.reply_to = Some(ReplyTo {
            exchange: self.mailbox.reply_exchange_name(),
            routing_key: oid,
        });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        command.expires = Some(now + b.timeout.as_secs_f64());
        let msg = command.encode(self.serializer, &self.mailbox.exchange_name());
        self.broker
            .publish_to(&self.mailbox.exchange(), &msg)
            .await?;
        let deadline = tokio::time::Instant::now() + b.timeout;
        loop {
            if b.limit.is_some_and(|l| replies.len() >= l) {
                break;
            }
            let raw = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            };
            match Reply::decode(&raw, &self.accept) {
                Ok(got) => {
                    for r in got {
                        if r.ticket.as_deref() == Some(ticket.as_str()) {
                            replies.entry(r.hostname).or_insert(r.result);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "skipping a malformed remote-control reply"),
            }
        }
        Ok(replies)
    }
}
