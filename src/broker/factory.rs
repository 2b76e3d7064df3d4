//! The URL → broker factory: reads the broker URL, picks the transport its scheme names and
//! connects it. The command line calls this; it never builds a transport itself.

use std::sync::Arc;

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

/// Connects the broker `url` names.
pub async fn connect(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
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
