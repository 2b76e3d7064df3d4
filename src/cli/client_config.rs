//! The settings a client command (`call`, `inspect`, `control`, `status`) works with: read as
//! the worker reads them, the embedded default applied, and the broker URL chosen the same
//! way (`-b`, else `broker_url`, else the default).

use crate::broker::filesystem::default as embedded_default;
use crate::config::{Config, DEFAULT_BROKER_URL};

use super::args::Cli;
use super::worker::config_request;

/// A client command's settings and the broker it talks to.
pub(super) struct ClientConfig {
    /// The resolved settings.
    pub config: Config,
    /// The broker URL to connect to.
    pub broker_url: String,
}

/// Reads the settings as the command line says.
pub(super) fn load(cli: &Cli) -> Result<ClientConfig, String> {
    let mut loaded = Config::resolve(&config_request(cli)).map_err(|e| e.to_string())?;
    embedded_default::apply(&mut loaded.config, cli.broker.as_deref());
    let config = loaded.config;
    let broker_url = cli
        .broker
        .clone()
        .or(config.broker_url.clone())
        .unwrap_or_else(|| DEFAULT_BROKER_URL.to_owned());
    Ok(ClientConfig { config, broker_url })
}
