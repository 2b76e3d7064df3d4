//! The `rpc://` result backend (Celery's `RPCBackend`): results are not stored anywhere but
//! sent as messages to the caller's reply queue, through the broker connection the worker
//! already has ([`Broker::publish`]), so it works on every transport: on Redis the message
//! is pushed onto the list the `reply_to` names, on AMQP it goes through the default
//! exchange to the queue of that name.
//!
//! - Each state change (STARTED with `task_track_started`, RETRY, SUCCESS, FAILURE,
//!   REVOKED) is one message ([`message::reply_message`]); a request without `reply_to`
//!   gets none.
//! - A result cannot be read back by task id ([`ResultBackend::get_meta`] fails, as
//!   does [`ResultBackend::restore_group`], like Celery's `NotImplementedError`), except by
//!   the client that listens on its reply queue ([`RpcBackend::listen`], `rcelery call
//!   --wait`).
//! - Chords are refused ([`E_NO_CHORD_SUPPORT`]): a task applying one fails with
//!   `NotImplementedError`, as in Celery.

pub mod message;
mod replies;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{BackendError, MetaEncoder, ResultBackend, ResultRecord};
use crate::broker::{Broker, BrokerError};
use crate::value::Value;

pub use replies::Replies;

/// The message of the `NotImplementedError` a chord raises on this backend (Celery's
/// `E_NO_CHORD_SUPPORT`, stripped), which the failed task's result carries.
pub const E_NO_CHORD_SUPPORT: &str = "The \"rpc\" result backend does not support chords!\n\nNote that a group chained with a task is also upgraded to be a chord,\nas this pattern requires synchronization.\n\nResult backends that supports chords: Redis, Database, Memcached, and more.";

/// Celery's retry policy for result messages: up to 20 retries, the first at once, then
/// one a second.
const PUBLISH_RETRIES: u32 = 20;

/// True for the URLs Celery maps to its rpc backend (`rpc://`, or the bare alias `rpc`).
pub fn is_rpc_url(url: &str) -> bool {
    let url = url.trim();
    url.eq_ignore_ascii_case("rpc")
        || url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rpc"))
}

/// The `rpc://` backend: publishes results through the broker.
pub struct RpcBackend {
    broker: Arc<dyn Broker>,
    encoder: MetaEncoder,
    persistent: bool,
    replies: Option<Replies>,
}

impl RpcBackend {
    /// A backend publishing with `broker`; `persistent` is `result_persistent` (transient
    /// messages when unset, as Celery's rpc backend).
    pub fn new(broker: Arc<dyn Broker>, encoder: MetaEncoder, persistent: Option<bool>) -> Self {
        RpcBackend {
            broker,
            encoder,
            persistent: persistent.unwrap_or(false),
            replies: None,
        }
    }

    /// Starts consuming the reply queue `queue` (the `reply_to` of the tasks this process
    /// sends), as Celery's client does before sending: [`ResultBackend::get_meta`] then
    /// answers with the latest state received for a task id. For a process that consumes
    /// nothing else from the broker (`rcelery call --wait`): dropping the backend stops the
    /// broker's consuming.
    pub async fn listen(&mut self, queue: &str) -> Result<(), BackendError> {
        self.replies = Some(Replies::start(Arc::clone(&self.broker), queue).await?);
        Ok(())
    }

    async fn publish(&self, record: &ResultRecord) -> Result<(), BackendError> {
        let Some(message) = message::reply_message(&self.encoder, record, self.persistent) else {
            tracing::debug!(task_id = %record.task_id, "no reply_to: the result is not sent");
            return Ok(());
        };
        let mut attempt = 0;
        loop {
            match self.broker.publish(&message).await {
                Ok(()) => return Ok(()),
                Err(e @ BrokerError::ConnectionLost { .. }) if attempt < PUBLISH_RETRIES => {
                    tracing::warn!(task_id = %record.task_id, error = %e, "could not send the result; retrying");
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    attempt += 1;
                }
                Err(e) => return Err(BackendError::Store(e.to_string())),
            }
        }
    }
}

impl ResultBackend for RpcBackend {
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move { self.publish(&record).await })
    }

    fn get_meta<'a>(
        &'a self,
        task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        Box::pin(async move {
            match &self.replies {
                Some(replies) => Ok(replies.latest(task_id)),
                None => Err(BackendError::Unsupported(
                    "rpc:// results are messages to the caller's reply queue; they cannot be read back by task id".into(),
                )),
            }
        })
    }

    fn restore_group<'a>(
        &'a self,
        _group_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        Box::pin(async {
            Err(BackendError::Unsupported(
                "restore_group is not supported by this backend.".into(),
            ))
        })
    }

    fn chords_refused(&self) -> Option<&'static str> {
        Some(E_NO_CHORD_SUPPORT)
    }

    fn display_url(&self) -> String {
        "rpc://".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_celery_maps_to_rpc() {
        assert!(is_rpc_url("rpc://"));
        assert!(is_rpc_url("RPC://"));
        assert!(is_rpc_url("rpc"));
        assert!(!is_rpc_url("redis://h/0"));
        assert!(!is_rpc_url("rpcx://"));
    }
}
