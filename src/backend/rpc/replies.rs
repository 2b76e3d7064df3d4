//! The client side of the rpc backend: consuming this process's reply queue (Celery's
//! `ResultConsumer`), keeping the latest state received per task id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::meta::decode_stored;
use crate::backend::BackendError;
use crate::broker::{Broker, PrefetchWindow, QueueSpec};
use crate::value::{Dict, Value};

/// Result messages received on a reply queue, by task id (the message's `correlation_id`,
/// else the `task_id` of its body). Consuming stops when this is dropped.
pub struct Replies {
    latest: Arc<Mutex<HashMap<String, Value>>>,
    broker: Arc<dyn Broker>,
    reader: tokio::task::JoinHandle<()>,
}

impl Replies {
    /// Starts consuming `queue` (declared as Celery 5.7's client declares its reply queue:
    /// on the anonymous exchange, bound by nothing but its name, durable, auto-delete,
    /// `x-expires` Celery's default `result_expires` of one day).
    pub async fn start(broker: Arc<dyn Broker>, queue: &str) -> Result<Self, BackendError> {
        let mut arguments = Dict::new();
        arguments.insert("x-expires", Value::Int(86_400_000));
        let spec = QueueSpec {
            exchange: String::new(),
            auto_delete: true,
            arguments,
            ..QueueSpec::direct(queue)
        };
        let mut deliveries = Arc::clone(&broker)
            .consume(vec![spec].into(), PrefetchWindow::new(0))
            .await
            .map_err(|e| BackendError::Server(e.to_string()))?;
        let latest: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let (seen, acker) = (Arc::clone(&latest), Arc::clone(&broker));
        let reader = tokio::spawn(async move {
            while let Some(delivery) = deliveries.recv().await {
                match decode_stored(&delivery.raw.body) {
                    Ok(meta) => {
                        let id = delivery.raw.properties.correlation_id.clone().or_else(|| {
                            meta.as_dict()
                                .and_then(|d| d.get("task_id"))
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        });
                        if let (Some(id), Ok(mut map)) = (id, seen.lock()) {
                            map.insert(id, meta);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable message on the reply queue"),
                }
                acker.ack(&delivery.tag);
            }
        });
        Ok(Replies {
            latest,
            broker,
            reader,
        })
    }

    /// The latest result meta received for `task_id` (`None`: nothing yet, PENDING).
    pub fn latest(&self, task_id: &str) -> Option<Value> {
        self.latest.lock().ok()?.get(task_id).cloned()
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        self.broker.stop_consuming();
        self.reader.abort();
    }
}
