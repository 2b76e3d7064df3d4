//! Opening the filesystem transport from its URL and the broker settings: the factory's
//! `filesystem://` arm.

use std::sync::Arc;

use super::{FilesystemBroker, FilesystemOptions};
use crate::broker::factory::{BrokerSetup, BrokerSetupError, Capabilities, ConnectedBroker};

/// `rcelery_max_message_bytes` when not set (as for the Redis transport): 64 MiB.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Reads the folders from `broker_transport_options` and opens them (`broker_use_ssl` and
/// the connection settings mean nothing here).
pub fn open(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
    let table = &setup.transport_options;
    let max = match table.get("rcelery_max_message_bytes") {
        None => DEFAULT_MAX_MESSAGE_BYTES,
        Some(toml::Value::Integer(n)) => usize::try_from(*n).map_err(|_| {
            BrokerSetupError::Options(
                "broker_transport_options.rcelery_max_message_bytes: must be 0 or more".into(),
            )
        })?,
        Some(_) => {
            return Err(BrokerSetupError::Options(
                "broker_transport_options.rcelery_max_message_bytes: must be a number of bytes"
                    .into(),
            ))
        }
    };
    let options = FilesystemOptions::from_table(table, max)
        .map_err(|e| BrokerSetupError::Options(e.to_string()))?;
    let broker =
        FilesystemBroker::open(url, options).map_err(|source| BrokerSetupError::Connect {
            url: url.to_owned(),
            source,
        })?;
    Ok(ConnectedBroker {
        broker: Arc::new(broker),
        capabilities: Capabilities::default(),
    })
}
