//! The URL → broker factory: reads the broker URL, picks the transport its scheme names and
//! connects it. The command line calls this; it never builds a transport itself.

use std::sync::Arc;

use super::filesystem::{FilesystemBroker, FilesystemOptions};
use super::redis::{RedisBroker, RedisTransportOptions};
use super::{Broker, BrokerError, ConnectionSettings};
use crate::health::Health;
use crate::redis_client::lane::SettleLane;
use crate::redis_client::{self, UrlRefusal};

/// What a broker is connected with.
pub struct BrokerSetup {
    /// `broker_transport_options` (with `broker_use_ssl` applied).
    pub transport_options: RedisTransportOptions,
    /// `broker_connection_*`.
    pub connection: ConnectionSettings,
    /// Where outages are reported.
    pub health: Arc<Health>,
}

/// A connected broker and, for a Redis broker, its URL and settle lane (which a result
/// backend on the same server shares).
pub struct ConnectedBroker {
    /// The broker.
    pub broker: Arc<dyn Broker>,
    /// The URL and settle lane of a Redis broker.
    pub lane: Option<(String, Arc<SettleLane>)>,
}

/// Why no broker could be had.
#[derive(Debug, thiserror::Error)]
pub enum BrokerSetupError {
    /// The URL was refused before connecting.
    #[error(transparent)]
    Url(#[from] UrlRefusal),
    /// The broker could not be reached (after the retries `broker_connection_*` allow).
    #[error("cannot connect to broker {url}: {source}")]
    Connect {
        /// The URL, masked.
        url: String,
        /// Why.
        source: BrokerError,
    },
}

/// Connects the broker `url` names: `filesystem://` is kombu's filesystem transport,
/// anything else is read as a Redis URL.
pub async fn connect(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
    if url.starts_with("filesystem:") {
        return open_filesystem(url, &setup.transport_options);
    }
    let parsed = redis_client::read_url("broker", url)?
        .with_use_ssl(setup.transport_options.use_ssl.as_ref())
        .map_err(|source| UrlRefusal::Invalid {
            role: "broker",
            url: redis_client::mask_password(url),
            source,
        })?;
    let broker =
        RedisBroker::connect_with(url, setup.transport_options, setup.connection, setup.health)
            .await
            .map_err(|source| BrokerSetupError::Connect {
                url: parsed.to_string(),
                source,
            })?;
    let lane = Some((url.to_owned(), broker.settle_lane()));
    Ok(ConnectedBroker {
        broker: Arc::new(broker),
        lane,
    })
}

/// Opens kombu's filesystem transport with the folders `broker_transport_options` names.
fn open_filesystem(
    url: &str,
    options: &RedisTransportOptions,
) -> Result<ConnectedBroker, BrokerSetupError> {
    let connect_error = |source| BrokerSetupError::Connect {
        url: url.to_owned(),
        source,
    };
    let fs_options =
        FilesystemOptions::from_table(&options.other, options.rcelery_max_message_bytes)
            .map_err(|e| connect_error(BrokerError::Filesystem(e.to_string())))?;
    let broker = FilesystemBroker::open(url, fs_options).map_err(connect_error)?;
    Ok(ConnectedBroker {
        broker: Arc::new(broker),
        lane: None,
    })
}
