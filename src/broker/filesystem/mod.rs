//! kombu's filesystem transport (`broker_url = "filesystem://"`), in kombu's layout, so
//! Python producers, Python workers and rcelery share one folder: one JSON envelope per
//! file (`<ms>_<uuid>.<queue>.msg`, see [`naming`]) written to `data_folder_out` and taken
//! from `data_folder_in`; exchange bindings in `control_folder` (see [`exchange`]).
//!
//! A message is taken with one atomic `rename` (see [`store::claim`]), so with several
//! consumers on one folder, rcelery's or kombu's, each message goes to exactly one. Unlike
//! kombu, which deletes a file as it reads it, rcelery keeps the claimed file until the
//! message is settled: acked or rejected, it is removed (or moved to `processed_folder`
//! with `store_processed`); given back at shutdown, it returns under its own name.

mod broadcast;
pub mod default;
pub mod exchange;
pub mod naming;
mod open;
pub mod options;
pub mod store;

pub use open::open;
pub use options::FilesystemOptions;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch, Notify};

use super::redis::{mark_redelivered, parse_envelope, publish_envelope};
use super::{
    Broker, BrokerError, ConsumedQueues, Delivery, ExchangeSpec, PrefetchWindow, QueueSpec,
};
use crate::codec::json;
use crate::protocol::{OutgoingMessage, RawMessage, TooLarge};
#[cfg(test)]
use crate::value::Value;
use exchange::Binding;
use store::{Claimed, Contents};

/// The filesystem transport.
pub struct FilesystemBroker {
    options: FilesystemOptions,
    /// What the banner says (the URL and the folders).
    display: String,
    /// Messages delivered and not yet settled, by tag.
    held: Mutex<HashMap<String, Claimed>>,
    /// Exchange types of the queues consumed (kombu keeps them in memory too); others are
    /// taken for direct.
    exchange_types: Mutex<HashMap<String, String>>,
    stopped: AtomicBool,
    /// Wakes an idle consumer: stop, or a message this process wrote to its own folder.
    wake: Notify,
}

/// An error of this transport (a folder it cannot read or write, a name it cannot use).
fn refused(reason: String) -> BrokerError {
    BrokerError::Refused {
        transport: "filesystem",
        reason,
    }
}

fn fs_error(what: &str, path: &Path, e: impl std::fmt::Display) -> BrokerError {
    refused(format!("{what} {}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| refused(format!("file task failed: {e}")))?
}

impl FilesystemBroker {
    /// Opens the folders (creating those missing, which kombu does not do) for `url`
    /// (`filesystem://`; kombu reads nothing from the rest of it).
    pub fn open(url: &str, options: FilesystemOptions) -> Result<FilesystemBroker, BrokerError> {
        let mut folders = vec![
            &options.data_folder_in,
            &options.data_folder_out,
            &options.control_folder,
        ];
        if options.store_processed {
            folders.push(&options.processed_folder);
        }
        for dir in folders {
            std::fs::create_dir_all(dir).map_err(|e| fs_error("cannot create", dir, e))?;
        }
        let display = if options.data_folder_in == options.data_folder_out {
            format!("{url} (folder {})", options.data_folder_in.display())
        } else {
            format!(
                "{url} (in {}, out {})",
                options.data_folder_in.display(),
                options.data_folder_out.display()
            )
        };
        Ok(FilesystemBroker {
            options,
            display,
            held: Mutex::new(HashMap::new()),
            exchange_types: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// Says `note` after the URL in the banner (the embedded default says so).
    pub fn with_note(mut self, note: &str) -> Self {
        self.display = format!("{} {note}", self.display);
        self
    }

    fn processed(&self) -> Option<PathBuf> {
        self.options
            .store_processed
            .then(|| self.options.processed_folder.clone())
    }

    fn take_held(&self, tag: &str) -> Option<Claimed> {
        self.held.lock().ok()?.remove(tag)
    }

    fn settle_now(&self, tag: &str) {
        let Some(claimed) = self.take_held(tag) else {
            return;
        };
        if let Err(e) = store::settle(&claimed, self.processed().as_deref()) {
            tracing::error!(file = %claimed.path().display(), "cannot settle message file: {e}");
        }
    }

    /// Records the bindings of `queues` in the control folder as kombu's `queue_bind` does
    /// (the exchange types kept in memory), after checking their names.
    async fn bind(self: Arc<Self>, queues: Vec<QueueSpec>) -> Result<(), BrokerError> {
        for q in &queues {
            naming::check_queue_name(&q.name).map_err(|e| refused(e.to_string()))?;
        }
        blocking(move || {
            for q in &queues {
                if let Ok(mut types) = self.exchange_types.lock() {
                    types.insert(q.exchange.clone(), q.exchange_type.clone());
                }
                // kombu stores a regex for topic bindings, nothing for the others.
                let pattern = if q.exchange_type == "topic" {
                    exchange::topic_pattern(&q.routing_key)
                } else {
                    String::new()
                };
                let binding = Binding {
                    routing_key: q.routing_key.clone(),
                    pattern,
                    queue: q.name.clone(),
                };
                exchange::bind(&self.options.control_folder, &q.exchange, &binding)
                    .map_err(|e| refused(e.to_string()))?;
            }
            Ok(())
        })
        .await
    }

    /// Takes the next message of `queues`, listing the folder again when `listing` runs
    /// out; `None` when there is none.
    fn next(
        &self,
        queues: &[String],
        listing: &mut VecDeque<String>,
    ) -> Result<Option<Delivery>, BrokerError> {
        let folder = &self.options.data_folder_in;
        let mut relisted = false;
        loop {
            let Some(name) = listing.pop_front() else {
                if relisted {
                    return Ok(None);
                }
                *listing =
                    store::list(folder, queues).map_err(|e| fs_error("cannot list", folder, e))?;
                relisted = true;
                continue;
            };
            let claimed = match store::claim(folder, &name) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(file = %name, "cannot take message file: {e}");
                    continue;
                }
            };
            let tag = claimed.path().to_string_lossy().into_owned();
            let raw = match store::read(&claimed.path(), self.options.max_message_bytes) {
                Ok(Contents::Bytes(raw)) => raw,
                Ok(Contents::TooLarge(size)) => {
                    let limit = self.options.max_message_bytes;
                    self.hold(&tag, claimed.clone());
                    let message = RawMessage {
                        too_large: Some(TooLarge {
                            size: usize::try_from(size).unwrap_or(usize::MAX),
                            limit,
                        }),
                        ..RawMessage::default()
                    };
                    return Ok(Some(self.delivery(message, tag, claimed.queue)));
                }
                Err(e) => {
                    tracing::error!(file = %name, "cannot read message file: {e}");
                    continue;
                }
            };
            match parse_envelope(&raw) {
                Ok(env) => {
                    self.hold(&tag, claimed.clone());
                    return Ok(Some(self.delivery(env.message, tag, claimed.queue)));
                }
                Err(bad) => {
                    tracing::error!(
                        queue = %claimed.queue,
                        file = %name,
                        error = %bad.error,
                        message = %String::from_utf8_lossy(&raw[..raw.len().min(256)]),
                        "Received and deleted unknown message. Wrong destination?!?"
                    );
                    if let Err(e) = store::settle(&claimed, self.processed().as_deref()) {
                        tracing::error!(file = %name, "cannot remove message file: {e}");
                    }
                }
            }
        }
    }

    fn hold(&self, tag: &str, claimed: Claimed) {
        if let Ok(mut held) = self.held.lock() {
            held.insert(tag.to_owned(), claimed);
        }
    }

    fn delivery(&self, raw: RawMessage, tag: String, queue: String) -> Delivery {
        Delivery {
            raw,
            tag,
            queue,
            permit: None,
        }
    }

    /// The queues a message for `exchange` with `routing_key` goes to: the routing key
    /// itself for the anonymous exchange (and, as rcelery's Redis transport does, when the
    /// exchange has no matching binding).
    fn route(&self, exchange: &str, routing_key: &str) -> Result<Vec<String>, BrokerError> {
        if exchange.is_empty() {
            return Ok(vec![routing_key.to_owned()]);
        }
        let table = exchange::read_table(&self.options.control_folder, exchange)
            .map_err(|e| refused(e.to_string()))?;
        let kind = self
            .exchange_types
            .lock()
            .ok()
            .and_then(|t| t.get(exchange).cloned())
            .unwrap_or_else(|| "direct".to_owned());
        let mut queues = exchange::lookup(&table, &kind, routing_key);
        if queues.is_empty() {
            queues.push(routing_key.to_owned());
        }
        Ok(queues)
    }

    /// Rewrites a held message back into the queue: under its own name (`restore`, flagged
    /// redelivered) or as a new, last message (`requeue`).
    fn give_back(&self, claimed: &Claimed, requeue: bool) -> Result<(), BrokerError> {
        let path = claimed.path();
        let raw = match store::read(&path, self.options.max_message_bytes) {
            Ok(Contents::Bytes(raw)) => raw,
            Ok(Contents::TooLarge(_)) => {
                // Never read into memory: back under its own name as it is.
                return std::fs::rename(&path, claimed.folder.join(&claimed.name))
                    .map_err(|e| fs_error("cannot restore", &path, e));
            }
            Err(e) => return Err(fs_error("cannot read", &path, e)),
        };
        if requeue {
            store::put(&claimed.folder, &claimed.queue, &raw)
                .map_err(|e| fs_error("cannot write to", &claimed.folder, e))?;
            return store::settle(claimed, None).map_err(|e| fs_error("cannot remove", &path, e));
        }
        let payload = match json::decode(&raw) {
            Ok(doc) => json::encode(&mark_redelivered(doc)),
            Err(_) => raw,
        };
        store::put_back(claimed, &payload).map_err(|e| fs_error("cannot restore", &path, e))
    }
}

impl FilesystemBroker {
    /// Gives one held message back under its own name, flagged redelivered; false when the
    /// tag is not held (or the file could not be rewritten, which is logged).
    fn restore_now(&self, tag: &str) -> bool {
        let Some(claimed) = self.take_held(tag) else {
            return false;
        };
        match self.give_back(&claimed, false) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("cannot give a message back: {e}");
                false
            }
        }
    }
}

impl Broker for FilesystemBroker {
    fn consume(
        self: Arc<Self>,
        consumed: ConsumedQueues,
        window: PrefetchWindow,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<Delivery>, BrokerError>> {
        Box::pin(async move {
            let mut set = consumed.watch();
            let queues = set.borrow_and_update().clone();
            Arc::clone(&self).bind(queues.clone()).await?;
            let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(consume_loop(self, names, set, window, tx));
            Ok(rx)
        })
    }

    fn stop_consuming(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    fn ack(&self, tag: &str) {
        self.settle_now(tag);
    }

    fn reject(&self, tag: &str, requeue: bool) {
        if !requeue {
            return self.settle_now(tag);
        }
        let Some(claimed) = self.take_held(tag) else {
            return;
        };
        if let Err(e) = self.give_back(&claimed, true) {
            tracing::error!("cannot requeue message: {e}");
        }
    }

    fn restore(&self, tags: Vec<String>) -> BoxFuture<'_, Result<usize, BrokerError>> {
        Box::pin(async move { Ok(tags.iter().filter(|tag| self.restore_now(tag)).count()) })
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        // Acks are done as they are issued.
        Box::pin(async {})
    }

    fn publish<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let queues = self.route(&message.exchange, &message.routing_key)?;
            let payload = publish_envelope(message);
            let folder = self.options.data_folder_out.clone();
            let written = blocking(move || {
                for q in &queues {
                    store::put(&folder, q, &payload)
                        .map_err(|e| fs_error("cannot write message to", &folder, e))?;
                }
                Ok(())
            })
            .await;
            if self.options.data_folder_out == self.options.data_folder_in {
                self.wake.notify_waiters();
            }
            written
        })
    }

    fn publish_to<'a>(
        &'a self,
        exchange: &'a ExchangeSpec,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(broadcast::publish_to(self, exchange, message))
    }

    fn subscribe(
        self: Arc<Self>,
        queue: QueueSpec,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<RawMessage>, BrokerError>> {
        Box::pin(broadcast::subscribe(self, queue))
    }

    fn transport(&self) -> &'static str {
        "filesystem"
    }

    fn display_url(&self) -> String {
        self.display.clone()
    }
}

/// Hands out messages while the prefetch window has room; lists the folder again every
/// `polling_interval` while there is nothing (or sooner when this process wrote one, or the
/// consumed set changed: a queue added is bound first, and the listing of the old set is
/// dropped).
async fn consume_loop(
    broker: Arc<FilesystemBroker>,
    mut queues: Vec<String>,
    mut consumed: watch::Receiver<Vec<QueueSpec>>,
    window: PrefetchWindow,
    tx: mpsc::Sender<Delivery>,
) {
    let mut listing: VecDeque<String> = VecDeque::new();
    loop {
        let Some(permit) = window.acquire_up_to(1).await.pop() else {
            return;
        };
        if broker.stopped.load(Ordering::SeqCst) {
            return;
        }
        if consumed.has_changed().unwrap_or(false) {
            let wanted = consumed.borrow_and_update().clone();
            let added: Vec<QueueSpec> = wanted
                .iter()
                .filter(|q| !queues.contains(&q.name))
                .cloned()
                .collect();
            if let Err(e) = Arc::clone(&broker).bind(added).await {
                tracing::warn!(error = %e, "could not bind an added queue");
            }
            queues = wanted.into_iter().map(|q| q.name).collect();
            listing.clear();
        }
        if queues.is_empty() {
            drop(permit);
            tokio::select! {
                Ok(()) = consumed.changed() => {}
                _ = broker.wake.notified() => {}
                _ = tokio::time::sleep(broker.options.polling_interval) => {}
            }
            continue;
        }
        let b = Arc::clone(&broker);
        let q = queues.clone();
        let mut l = std::mem::take(&mut listing);
        // Registered before the look, so a message written meanwhile is not missed.
        let woken = broker.wake.notified();
        let found = tokio::task::spawn_blocking(move || {
            let found = b.next(&q, &mut l);
            (found, l)
        })
        .await;
        let found = match found {
            Ok((found, l)) => {
                listing = l;
                found
            }
            Err(e) => Err(refused(format!("file task failed: {e}"))),
        };
        match found {
            Ok(Some(mut delivery)) => {
                if broker.stopped.load(Ordering::SeqCst) {
                    // Taken just as the worker stopped: straight back.
                    let tag = delivery.tag.clone();
                    if let Err(e) = broker.restore(vec![tag]).await {
                        tracing::error!("cannot give a message back: {e}");
                    }
                    return;
                }
                delivery.permit = Some(permit);
                if tx.send(delivery).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(broker.options.polling_interval) => {}
                }
            }
            Err(e) => {
                drop(permit);
                tracing::error!("{e}");
                tokio::time::sleep(broker.options.polling_interval).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_MESSAGE: &[u8] =
        include_bytes!("../../../python-fixtures/golden/filesystem/message.msg");
    const GOLDEN_NAME: &str =
        include_str!("../../../python-fixtures/golden/filesystem/message.name");
    const GOLDEN_TABLE: &[u8] =
        include_bytes!("../../../python-fixtures/golden/filesystem/celery.exchange");

    fn temp_options() -> FilesystemOptions {
        let root = std::env::temp_dir().join(format!("rcelery-fsb-{}", uuid::Uuid::new_v4()));
        FilesystemOptions {
            data_folder_in: root.join("q"),
            data_folder_out: root.join("q"),
            processed_folder: root.join("p"),
            control_folder: root.join("c"),
            ..FilesystemOptions::default()
        }
    }

    #[test]
    fn kombus_file_name_and_table_as_captured() {
        let name = GOLDEN_NAME.trim();
        assert_eq!(naming::queue_of(name), Some("celery"));
        let (millis, rest) = name.split_once('_').unwrap();
        assert!(millis.parse::<u64>().is_ok());
        let id = rest.split_once('.').unwrap().0;
        assert!(uuid::Uuid::parse_str(id).is_ok());
        let binding = Binding {
            routing_key: "celery".into(),
            pattern: String::new(),
            queue: "celery".into(),
        };
        assert_eq!(exchange::parse_table(GOLDEN_TABLE), vec![binding.clone()]);
        assert_eq!(exchange::render_table(&[binding]), GOLDEN_TABLE);
    }

    #[tokio::test]
    async fn queues_added_and_cancelled_while_consuming() {
        let options = FilesystemOptions {
            polling_interval: std::time::Duration::from_millis(50),
            ..temp_options()
        };
        let folder = options.data_folder_in.clone();
        let broker = Arc::new(FilesystemBroker::open("filesystem://", options.clone()).unwrap());
        let set = ConsumedQueues::new(vec![QueueSpec::direct("a")]);
        // One slot: the loop takes nothing more while the test holds a delivery.
        let mut rx = Arc::clone(&broker)
            .consume(set.clone(), PrefetchWindow::new(1))
            .await
            .unwrap();
        let wait = std::time::Duration::from_secs(30);

        assert!(set.add(QueueSpec::direct("b")));
        store::put(&folder, "b", GOLDEN_MESSAGE).unwrap();
        let d = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.queue, "b");
        let table = exchange::read_table(&options.control_folder, "b").unwrap();
        assert_eq!(
            table.iter().map(|b| b.queue.as_str()).collect::<Vec<_>>(),
            ["b"]
        );

        // Cancelled while the loop waits for the slot: what comes next is from `a` only.
        assert!(set.cancel("b"));
        store::put(&folder, "b", GOLDEN_MESSAGE).unwrap();
        store::put(&folder, "a", GOLDEN_MESSAGE).unwrap();
        broker.ack(&d.tag);
        drop(d);
        let d = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.queue, "a");
        broker.ack(&d.tag);
        assert_eq!(store::list(&folder, &["b".to_owned()]).unwrap().len(), 1);
        broker.stop_consuming();
    }

    #[test]
    fn a_message_kombu_wrote_is_delivered_and_settled() {
        let options = temp_options();
        let broker = FilesystemBroker::open("filesystem://", options.clone()).unwrap();
        let name = GOLDEN_NAME.trim();
        std::fs::write(options.data_folder_in.join(name), GOLDEN_MESSAGE).unwrap();
        let queues = vec!["celery".to_owned()];
        let mut listing = VecDeque::new();
        let d = broker.next(&queues, &mut listing).unwrap().unwrap();
        assert_eq!(d.queue, "celery");
        assert_eq!(
            d.raw.headers.get("task"),
            Some(&Value::Str("tasks.add".into()))
        );
        assert_eq!(d.raw.content_type, "application/json");
        assert!(d.raw.body.starts_with(b"[[2, 3], {}"));
        assert_eq!(d.raw.delivery_info.routing_key, "celery");
        // Taken: nobody else sees it, and the next look finds nothing.
        assert!(broker.next(&queues, &mut listing).unwrap().is_none());
        broker.restore_now(&d.tag);
        let again = broker.next(&queues, &mut listing).unwrap().unwrap();
        assert!(again.raw.delivery_info.redelivered);
        broker.ack(&again.tag);
        assert!(store::list(&options.data_folder_in, &queues)
            .unwrap()
            .is_empty());
        let left = std::fs::read_dir(&options.data_folder_in).unwrap().count();
        assert_eq!(left, 0);
        let _ = std::fs::remove_dir_all(options.data_folder_in.parent().unwrap());
    }

    #[test]
    fn garbage_is_removed_and_skipped() {
        let options = temp_options();
        let broker = FilesystemBroker::open("filesystem://", options.clone()).unwrap();
        std::fs::write(options.data_folder_in.join("1_x.celery.msg"), b"{not json").unwrap();
        std::fs::write(
            options.data_folder_in.join("2_y.celery.msg"),
            GOLDEN_MESSAGE,
        )
        .unwrap();
        let queues = vec!["celery".to_owned()];
        let d = broker.next(&queues, &mut VecDeque::new()).unwrap().unwrap();
        assert!(d.tag.contains("2_y.celery.msg"));
        assert!(!options.data_folder_in.join("1_x.celery.msg").exists());
        let _ = std::fs::remove_dir_all(options.data_folder_in.parent().unwrap());
    }
}
