//! The URL → broker factory: picks the transport the URL's scheme names and lets it connect.
//! The command line calls this; it never builds a transport itself. A new transport is one
//! folder under `src/broker/` with an `open` function and one arm in [`connect`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use super::failover::{self, FailoverError, FailoverUrls};
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
    /// `broker_failover_strategy` (`round-robin` when unset): how the next URL of a
    /// `;`-separated `broker_url` is chosen (see [`failover`]).
    pub failover_strategy: Option<String>,
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
    /// The `;`-separated URL list or `broker_failover_strategy` cannot be used.
    #[error(transparent)]
    Failover(#[from] FailoverError),
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

/// Connects the broker `url` names, by its scheme. A `;`-separated list is a fail-over list
/// (all of one transport, ordered by `broker_failover_strategy`), handed whole to the
/// transport; `sentinel://` URLs name the sentinels of a Redis master.
pub async fn connect(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
    let urls = FailoverUrls::parse(url, setup.failover_strategy.as_deref())?;
    let first = urls.url(urls.current()).to_owned();
    match scheme(&first).as_str() {
        "redis" | "rediss" | "redis+socket" | "socket" | "unix" | "sentinel" => {
            redis::open(Arc::new(urls), setup).await
        }
        "filesystem" if urls.len() == 1 => filesystem::open(&first, setup),
        "filesystem" => Err(BrokerSetupError::Options(format!(
            "a fail-over list of filesystem:// URLs has no use ({})",
            failover::mask_list(url)
        ))),
        "amqp" | "pyamqp" | "amqps" => amqp::open(Arc::new(urls), setup).await,
        _ => Err(redis_client::refuse_scheme("broker", &first).into()),
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
            failover_strategy: None,
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

    #[tokio::test]
    async fn lists_are_read_before_connecting() {
        let setup = |strategy: Option<&str>| BrokerSetup {
            transport_options: toml::Table::new(),
            use_ssl: None,
            connection: ConnectionSettings::default(),
            health: Arc::new(Health::new()),
            failover_strategy: strategy.map(str::to_owned),
            queues: QueueCatalog::default(),
        };
        let err = connect("redis://:S3cret@a/0;amqp://b//", setup(None))
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.contains("mix transports"), "{text}");
        assert!(!text.contains("S3cret"), "{text}");
        let err = connect("redis://a/0;redis://b/0", setup(Some("fastest")))
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("broker_failover_strategy"),
            "{err}"
        );
        let err = connect(
            "sentinel://:S3cret@127.0.0.1:1;sentinel://127.0.0.1:2",
            setup(None),
        )
        .await
        .err()
        .expect("refused");
        let text = err.to_string();
        assert!(text.contains("master_name"), "{text}");
        assert!(!text.contains("S3cret"), "{text}");
    }
}
