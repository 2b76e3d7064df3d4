//! Opening the Redis transport from a URL and the broker settings: the factory's Redis arm.

use std::sync::Arc;

use super::{RedisBroker, RedisTransportOptions};
use crate::broker::factory::{BrokerSetup, BrokerSetupError, Capabilities, ConnectedBroker};
use crate::redis_client::lane::SharedLane;
use crate::redis_client::{self, UrlRefusal};

/// Reads the URL, the Redis transport options (from `broker_transport_options`) and
/// `broker_use_ssl`, and connects. The broker offers its settle lane as a [`SharedLane`]
/// capability, which a Redis result backend on the same server takes up.
pub async fn open(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
    let use_ssl = match &setup.use_ssl {
        Some(setting) => setting
            .for_redis("broker_use_ssl")
            .map_err(BrokerSetupError::Options)?,
        None => None,
    };
    let options = RedisTransportOptions {
        use_ssl,
        ..RedisTransportOptions::from_table(&setup.transport_options)
            .map_err(BrokerSetupError::Options)?
    };
    let parsed = redis_client::read_url("broker", url)?
        .with_use_ssl(options.use_ssl.as_ref())
        .map_err(|source| UrlRefusal::Invalid {
            role: "broker",
            url: redis_client::mask_password(url),
            source,
        })?;
    let broker = RedisBroker::connect_with(url, options, setup.connection, setup.health)
        .await
        .map_err(|source| BrokerSetupError::Connect {
            url: parsed.to_string(),
            source,
        })?;
    let lane = SharedLane {
        server_url: url.to_owned(),
        lane: broker.settle_lane(),
    };
    Ok(ConnectedBroker {
        broker: Arc::new(broker),
        capabilities: Capabilities::default().with(lane),
    })
}
