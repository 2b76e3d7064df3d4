//! The URL → broker factory: picks the transport the URL's scheme names and lets it connect.
//! The command line calls this; it never builds a transport itself. A new transport is one
//! folder under `src/broker/` with an `open` function and one arm in [`connect`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use super::{amqp, filesystem, redis, Broker, BrokerError, ConnectionSettings, QueueCatalog};
use crate::config::UseSsl;
use crate::health::Health;
use crate::redis_client::{self, UrlRefusal};

/// What a broker is connected with: Celery's settings as given, each transport reading what
/// it understands.
pub struct BrokerSetup {
    /// `broker_transport_options`, the raw table (its keys depend on the transport).
    pub transport_options: toml::Table,
    /// `broker_use_ssl`.
    pub use_ssl: Option<UseSsl>,
    /// `broker_connection_*`.
    pub connection: ConnectionSettings,
    /// Where outages are reported.
    pub health: Arc<Health>,
    /// The queues the app knows (AMQP declares them as Celery does before publishing).
    pub queues: QueueCatalog,
}

/// A connected broker and what it offers besides the [`Broker`] trait.
pub struct ConnectedBroker {
    /// The broker.
    pub broker: Arc<dyn Broker>,
    /// Capabilities other parts may take up (a Redis broker offers its settle lane to a Redis
    /// result backend on the same server).
    pub capabilities: Capabilities,
}

/// What a connected broker offers to other parts, keyed by type so that this layer names no
/// transport's types: the part that can use a capability asks for its type with
/// [`Capabilities::get`]; a broker without it simply does not offer it.
#[derive(Clone, Default)]
pub struct Capabilities {
    items: Vec<Arc<dyn Any + Send + Sync>>,
}

impl Capabilities {
    /// These capabilities and `item`.
    pub fn with<T: Any + Send + Sync>(mut self, item: T) -> Self {
        self.items.push(Arc::new(item));
        self
    }

    /// The capability of type `T`, if the broker offers it.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.items.iter().find_map(|i| i.downcast_ref::<T>())
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capabilities({} offered)", self.items.len())
    }
}

/// Why no broker could be had.
#[derive(Debug, thiserror::Error)]
pub enum BrokerSetupError {
    /// The URL was refused before connecting.
    #[error(transparent)]
    Url(#[from] UrlRefusal),
    /// `broker_transport_options` or `broker_use_ssl` do not fit the transport.
    #[error("{0}")]
    Options(String),
    /// The broker could not be reached (after the retries `broker_connection_*` allow).
    #[error("cannot connect to broker {url}: {source}")]
    Connect {
        /// The URL, masked.
        url: String,
        /// Why.
        source: BrokerError,
    },
}

/// Connects the broker `url` names, by its scheme.
pub async fn connect(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
    match scheme(url).as_str() {
        "redis" | "rediss" | "redis+socket" | "socket" | "unix" => redis::open(url, setup).await,
        "filesystem" => filesystem::open(url, setup),
        "amqp" | "pyamqp" | "amqps" => amqp::open(url, setup).await,
        _ => Err(redis_client::refuse_scheme("broker", url).into()),
    }
}

/// The URL's scheme, lower case (empty when there is none).
fn scheme(url: &str) -> String {
    url.trim_start()
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_case_blind() {
        assert_eq!(scheme(" Redis://h/0"), "redis");
        assert_eq!(scheme("redis+socket:///tmp/r.sock"), "redis+socket");
        assert_eq!(scheme("localhost:6379"), "");
    }

    #[test]
    fn capabilities_are_found_by_type() {
        #[derive(Debug, PartialEq)]
        struct Lane(u8);
        let offered = Capabilities::default().with(Lane(7)).with("other");
        assert_eq!(offered.get::<Lane>(), Some(&Lane(7)));
        assert_eq!(Capabilities::default().get::<Lane>(), None);
    }

    #[tokio::test]
    async fn other_schemes_are_refused_before_connecting() {
        let setup = || BrokerSetup {
            transport_options: toml::Table::new(),
            use_ssl: None,
            connection: ConnectionSettings::default(),
            health: Arc::new(Health::new()),
            queues: QueueCatalog::default(),
        };
        let err = connect("sqs://key:secret@h//", setup())
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.contains("\"sqs\" is not supported"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let err = connect("h:6379", setup()).await.err().expect("refused");
        assert!(err.to_string().contains("not a URL"), "{err}");
    }
}
