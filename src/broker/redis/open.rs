//! Opening the Redis transport from a URL list and the broker settings: the factory's Redis
//! and Sentinel arm.

use std::sync::Arc;

use super::{RedisBroker, RedisTransportOptions};
use crate::broker::factory::{BrokerSetup, BrokerSetupError, Capabilities, ConnectedBroker};
use crate::broker::failover::{family, FailoverUrls};
use crate::redis_client::lane::SharedLane;
use crate::redis_client::{self, UrlRefusal};

/// Reads the URLs (one plain Redis server, a fail-over list of them, or `sentinel://` URLs),
/// the Redis transport options (from `broker_transport_options`) and `broker_use_ssl`, and
/// connects. A broker on one plain server offers its settle lane as a [`SharedLane`]
/// capability, which a Redis result backend on the same server takes up.
pub async fn open(
    urls: Arc<FailoverUrls>,
    setup: BrokerSetup,
) -> Result<ConnectedBroker, BrokerSetupError> {
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
    let mut shown = redis_client::mask_url_list(&urls.urls().join(";"));
    if family(urls.url(urls.current())) != "sentinel" {
        let mut displays = Vec::with_capacity(urls.len());
        for url in urls.urls() {
            let parsed = redis_client::read_url("broker", url)?
                .with_use_ssl(options.use_ssl.as_ref())
                .map_err(|source| UrlRefusal::Invalid {
                    role: "broker",
                    url: redis_client::mask_password(url),
                    source,
                })?;
            displays.push(parsed.to_string());
        }
        shown = displays.join(";");
    }
    let broker = RedisBroker::connect_to(urls, options, setup.connection, setup.health)
        .await
        .map_err(|source| BrokerSetupError::Connect { url: shown, source })?;
    let capabilities = match broker.single_url() {
        Some(url) => Capabilities::default().with(SharedLane {
            server_url: url.to_owned(),
            lane: broker.settle_lane(),
        }),
        None => Capabilities::default(),
    };
    Ok(ConnectedBroker {
        broker: Arc::new(broker),
        capabilities,
    })
}
