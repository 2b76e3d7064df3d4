//! The consumer loop: on each connection, declare the consumed queues as Celery does (and the
//! native delayed delivery topology when a queue is a quorum queue), set `basic_qos`, start a
//! consumer per queue, and hand deliveries to the worker within the prefetch window. When
//! the connection or channel is lost, the loop waits for a new one and does it all again; the
//! server redelivers what the old channel held. A queue added to the consumed set is declared
//! and consumed on the live channel; a queue cancelled gets a `basic_cancel`, and what the
//! channel already delivered from it is still handed over. Each new channel consumes the set
//! as it is then.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::Channel;
use tokio::sync::{mpsc, watch};

use super::declare;
use super::envelope;
use super::link::{Link, Session};
use super::qos::{self, QosState};
use super::settle::Ackers;
use crate::broker::{Delivery, PrefetchWindow, QueueSpec};
use crate::protocol::RawMessage;
use crate::value::{DateTime, Value};

/// Everything the consumer loop needs.
pub(super) struct Consumer {
    pub link: Arc<Link>,
    /// The consumed set, as the worker changes it.
    pub queues: watch::Receiver<Vec<QueueSpec>>,
    /// Whether quorum queues are in use (Celery's `detect_quorum_queues`).
    pub quorum: bool,
    /// `basic_qos`'s `global` flag.
    pub global_qos: bool,
    pub window: PrefetchWindow,
    pub tx: mpsc::Sender<Delivery>,
    pub stop: watch::Receiver<bool>,
    pub ackers: Arc<Ackers>,
    pub qos: Arc<QosState>,
    pub fatal: Arc<OnceLock<String>>,
    /// `consumer_timeout` in seconds (0: no warning).
    pub consumer_timeout: f64,
}

/// What became of one delivery.
enum Forward {
    /// The worker has it.
    Sent,
    /// Delivery stopped.
    Stopped,
    /// Its channel closed while it waited for room in the window.
    ChannelGone,
}

/// What one consumer's stream yields: its queue, its consumer tag, and a delivery (`None`
/// once the stream ended: the consumer was cancelled, by us or by the server).
type Item = (
    String,
    ShortString,
    Option<Result<lapin::message::Delivery, lapin::Error>>,
);

/// How a session's consuming ended.
enum End {
    /// `stop_consuming`, or the worker dropped the receiver.
    Stopped,
    /// The connection or channel failed.
    Failed(String),
}

impl Consumer {
    /// Consumes until stopped, or until the connection cannot be restored.
    pub async fn run(mut self) {
        loop {
            if *self.stop.borrow() {
                return;
            }
            let session = tokio::select! {
                s = self.link.get() => s,
                _ = self.stop.changed() => return,
            };
            let session = match session {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "the broker connection could not be restored; the worker stops");
                    let _ = self.fatal.set(e.to_string());
                    return;
                }
            };
            match self.on_session(&session).await {
                End::Stopped => return,
                End::Failed(e) => self.link.failed(session.generation, &e),
            }
        }
    }

    async fn on_session(&mut self, session: &Arc<Session>) -> End {
        let channel = &session.channel;
        let queues = self.queues.borrow_and_update().clone();
        let setup = async {
            for q in &queues {
                declare::queue(channel, q).await?;
            }
            if self.quorum {
                declare::delayed_delivery(channel, "quorum").await?;
                for q in &queues {
                    declare::bind_delayed(channel, q).await?;
                }
            }
            channel
                .basic_qos(
                    self.qos.current(),
                    BasicQosOptions {
                        global: self.global_qos,
                    },
                )
                .await?;
            let mut consumers = Vec::with_capacity(queues.len());
            for q in &queues {
                consumers.push(start_consumer(channel, q).await?);
            }
            Ok::<_, lapin::Error>(consumers)
        };
        let consumers = match setup.await {
            Ok(c) => c,
            Err(e) => {
                if e.is_amqp_soft_error() {
                    // PRECONDITION_FAILED (a queue declared with other arguments), NOT_FOUND,
                    // ACCESS_REFUSED: retried as a lost connection, but said loudly.
                    tracing::error!(error = %e, "the broker refused to declare or consume the worker's queues");
                }
                return End::Failed(e.to_string());
            }
        };
        tokio::spawn(qos::follow(
            channel.clone(),
            self.global_qos,
            self.qos.subscribe(),
        ));
        let mut tags: HashMap<String, ShortString> = HashMap::new();
        let mut merged: SelectAll<BoxStream<'static, Item>> = SelectAll::new();
        for (queue, c) in consumers {
            tags.insert(queue.clone(), c.tag());
            merged.push(item_stream(queue, c));
        }
        let mut watching = true;
        let end = loop {
            let next = tokio::select! {
                next = merged.next(), if !merged.is_empty() => next,
                changed = self.queues.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                    } else if let Err(e) = self.follow_set(channel, &mut tags, &mut merged).await {
                        if e.is_amqp_soft_error() {
                            tracing::error!(error = %e, "the broker refused to declare or consume an added queue");
                        }
                        break End::Failed(e.to_string());
                    }
                    continue;
                },
                _ = self.stop.changed() => break End::Stopped,
            };
            match next {
                Some((queue, _, Some(Ok(d)))) => match self.forward(session, queue, d).await {
                    Forward::Sent => {}
                    Forward::Stopped => break End::Stopped,
                    Forward::ChannelGone => break End::Failed("the channel closed".to_owned()),
                },
                Some((_, _, Some(Err(e)))) => break End::Failed(e.to_string()),
                Some((queue, tag, None)) => {
                    if tags.get(&queue) == Some(&tag) {
                        break End::Failed(format!("the server cancelled the consumer of {queue}"));
                    }
                    tracing::debug!(queue = %queue, "consumer of a cancelled queue drained");
                }
                // Nothing consumed (every queue cancelled): wait for a change.
                None => {}
            }
        };
        if matches!(end, End::Stopped) {
            for tag in tags.into_values() {
                let _ = channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await;
            }
        }
        end
    }

    /// Brings the channel's consumers in line with the consumed set: `basic_cancel` for a
    /// queue cancelled (its stream still yields what was delivered before, then ends),
    /// declare and `basic_consume` for a queue added.
    async fn follow_set(
        &mut self,
        channel: &Channel,
        tags: &mut HashMap<String, ShortString>,
        merged: &mut SelectAll<BoxStream<'static, Item>>,
    ) -> Result<(), lapin::Error> {
        let wanted = self.queues.borrow_and_update().clone();
        let gone: Vec<String> = tags
            .keys()
            .filter(|name| !wanted.iter().any(|q| &&q.name == name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(tag) = tags.remove(&name) {
                channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await?;
                tracing::info!(queue = %name, "stopped consuming from {name}");
            }
        }
        let added: Vec<&QueueSpec> = wanted
            .iter()
            .filter(|q| !tags.contains_key(&q.name))
            .collect();
        for q in added {
            declare::queue(channel, q).await?;
            if self.quorum {
                declare::bind_delayed(channel, q).await?;
            }
            let (queue, c) = start_consumer(channel, q).await?;
            tags.insert(queue.clone(), c.tag());
            merged.push(item_stream(queue, c));
            tracing::info!(queue = %q.name, "started consuming from {}", q.name);
        }
        Ok(())
    }

    /// Hands one delivery to the worker once the window has room. Not when delivery stopped
    /// meanwhile (the message stays unacknowledged, and is given back at shutdown or when
    /// the channel closes), nor when its channel closed while it waited for room: the server
    /// delivers it again on the next channel, and it must not run twice.
    async fn forward(
        &mut self,
        session: &Session,
        queue: String,
        d: lapin::message::Delivery,
    ) -> Forward {
        let permit = tokio::select! {
            mut p = self.window.acquire_up_to(1) => p.pop(),
            _ = self.stop.changed() => None,
        };
        let Some(permit) = permit else {
            return Forward::Stopped;
        };
        if !session.channel.status().connected() || d.acker.poisoned() {
            return Forward::ChannelGone;
        }
        let raw = envelope::raw_message(&d);
        let tag = Ackers::tag(session.generation, d.delivery_tag);
        self.ackers.insert(tag.clone(), d.acker);
        self.warn_past_consumer_timeout(&raw);
        let sent = self
            .tx
            .send(Delivery {
                raw,
                tag,
                queue,
                permit: Some(permit),
            })
            .await;
        if sent.is_ok() {
            Forward::Sent
        } else {
            Forward::Stopped
        }
    }

    /// RabbitMQ closes the channel of a consumer that keeps a message unacknowledged longer
    /// than its `consumer_timeout`; a task whose ETA is further away will be held that long.
    fn warn_past_consumer_timeout(&self, raw: &RawMessage) {
        let Some(wait) = eta_beyond(raw, self.consumer_timeout, chrono::Utc::now()) else {
            return;
        };
        let text = |key: &str| match raw.headers.get(key) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let (id, name) = (text("id"), text("task"));
        tracing::warn!(
            task_id = %id,
            task_name = %name,
            "Task {name}[{id}] has an ETA {wait:.0}s away, beyond RabbitMQ's consumer_timeout ({:.0}s): the server will close the channel before it runs and deliver it again (raise consumer_timeout on the server, use native delayed delivery with quorum queues, or set broker_transport_options.consumer_timeout to what the server has)",
            self.consumer_timeout
        );
    }
}

/// Starts a consumer of `queue` on `channel`.
async fn start_consumer(
    channel: &Channel,
    queue: &QueueSpec,
) -> Result<(String, lapin::Consumer), lapin::Error> {
    let c = channel
        .basic_consume(
            queue.name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((queue.name.clone(), c))
}

/// A consumer's deliveries, each with its queue and tag, then one end marker.
fn item_stream(queue: String, c: lapin::Consumer) -> BoxStream<'static, Item> {
    let tag = c.tag();
    let (q, t) = (queue.clone(), tag.clone());
    c.map(move |d| (q.clone(), t.clone(), Some(d)))
        .chain(stream::once(async move { (queue, tag, None) }))
        .boxed()
}

/// Seconds from `now` until the message's ETA, when that is beyond `consumer_timeout`
/// seconds (0: never).
fn eta_beyond(
    raw: &RawMessage,
    consumer_timeout: f64,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<f64> {
    if consumer_timeout <= 0.0 {
        return None;
    }
    let Some(Value::Str(eta)) = raw.headers.get("eta") else {
        return None;
    };
    let at = DateTime::parse_iso(eta).ok()?.to_utc_assuming_utc()?;
    let wait = (at - now).num_milliseconds() as f64 / 1000.0;
    (wait > consumer_timeout).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_eta(eta: &str) -> RawMessage {
        let mut raw = RawMessage::default();
        raw.headers.insert("eta", eta);
        raw
    }

    #[test]
    fn an_eta_beyond_the_consumer_timeout_is_noticed() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let far = with_eta("2026-01-01T01:00:00+00:00");
        assert_eq!(eta_beyond(&far, 1800.0, now), Some(3600.0));
        assert_eq!(eta_beyond(&far, 0.0, now), None, "0 turns it off");
        let near = with_eta("2026-01-01T08:10:00+08:00");
        assert_eq!(eta_beyond(&near, 1800.0, now), None);
        assert_eq!(eta_beyond(&RawMessage::default(), 1800.0, now), None);
    }
}
