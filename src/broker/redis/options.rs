//! The Redis transport's options, read from Celery's `broker_transport_options` (a free table
//! whose keys depend on the transport) with kombu's names and defaults.

use serde::Deserialize;

use super::keys::DEFAULT_PRIORITY_STEPS;
use crate::redis_client::url::TlsOptions;

/// `broker_transport_options` understood by the Redis transport (kombu's names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisTransportOptions {
    /// Seconds a message may stay unacked before another worker restores it (3600).
    pub visibility_timeout: f64,
    /// Priority steps (`[0, 3, 6, 9]`).
    pub priority_steps: Vec<u8>,
    /// Prefix for every key (`global_keyprefix`, empty).
    pub global_keyprefix: String,
    /// Name of the unacked hash.
    pub unacked_key: String,
    /// Name of the unacked index.
    pub unacked_index_key: String,
    /// Name of the restore lock.
    pub unacked_mutex_key: String,
    /// Restore lock lifetime in seconds (300).
    pub unacked_mutex_expire: u64,
    /// Seconds a `BRPOP` waits before polling again (1).
    pub brpop_timeout: f64,
    /// rcelery's own (kombu ignores it): microseconds the fetch loop polls for a fetch
    /// reply before sleeping, so the core does not go idle for a reply due within
    /// microseconds (500; 0 never spins). See `redis_client::spin`.
    pub rcelery_fetch_spin_us: u64,
    /// kombu's `socket_timeout`: seconds a reply may take before the connection is taken
    /// for dead and made anew (kombu: none; rcelery: 30, so a silent network never wedges
    /// the worker).
    pub socket_timeout: Option<f64>,
    /// kombu's `socket_connect_timeout`: seconds a connection attempt may take (default:
    /// `broker_connection_timeout`).
    pub socket_connect_timeout: Option<f64>,
    /// rcelery's own (kombu ignores it): a message larger than this many bytes is never
    /// decoded; it is acked with an error logged and, when its task id can be read, a
    /// `kombu.exceptions.DecodeError` failure stored for it (64 MiB; 0 for no limit).
    pub rcelery_max_message_bytes: usize,
    /// kombu's Sentinel transport (`sentinel://` URLs): the name the sentinels monitor the
    /// master under (required with `sentinel://`).
    pub master_name: Option<String>,
    /// kombu's Sentinel transport: a sentinel's answer counts only when it sees this many
    /// other sentinels (0).
    pub min_other_sentinels: u32,
    /// kombu's Sentinel transport: how to connect to the sentinels themselves (`password`,
    /// `username`, `socket_timeout`, `socket_connect_timeout` are read); the URL's password
    /// is the master's.
    pub sentinel_kwargs: Option<toml::Table>,
    /// kombu's `fanout_prefix`: `true` (the default) puts `/<db>.` before fanout channel
    /// names, `false` nothing, a string that string.
    pub fanout_prefix: FanoutPrefix,
    /// kombu's `fanout_patterns` (true): a fanout message with a routing key goes to channel
    /// `<exchange>/<routing_key>`, and queues subscribe with patterns.
    pub fanout_patterns: bool,
    /// TLS options from Celery's `broker_use_ssl` (not a transport option; set from the
    /// config): TLS on, the URL's own `ssl_*` options winning.
    #[serde(skip)]
    pub use_ssl: Option<TlsOptions>,
}

impl Default for RedisTransportOptions {
    fn default() -> Self {
        RedisTransportOptions {
            visibility_timeout: 3600.0,
            priority_steps: DEFAULT_PRIORITY_STEPS.to_vec(),
            global_keyprefix: String::new(),
            unacked_key: "unacked".into(),
            unacked_index_key: "unacked_index".into(),
            unacked_mutex_key: "unacked_mutex".into(),
            unacked_mutex_expire: 300,
            brpop_timeout: 1.0,
            rcelery_fetch_spin_us: 500,
            socket_timeout: None,
            socket_connect_timeout: None,
            rcelery_max_message_bytes: 64 * 1024 * 1024,
            master_name: None,
            min_other_sentinels: 0,
            sentinel_kwargs: None,
            fanout_prefix: FanoutPrefix::Flag(true),
            fanout_patterns: true,
            use_ssl: None,
        }
    }
}

/// The keys [`RedisTransportOptions`] reads; any other is ignored (logged at debug: Celery
/// apps often set kombu keys rcelery has no use for, such as `sep`).
const KEYS: &[&str] = &[
    "visibility_timeout",
    "priority_steps",
    "global_keyprefix",
    "unacked_key",
    "unacked_index_key",
    "unacked_mutex_key",
    "unacked_mutex_expire",
    "brpop_timeout",
    "rcelery_fetch_spin_us",
    "socket_timeout",
    "socket_connect_timeout",
    "rcelery_max_message_bytes",
    "master_name",
    "min_other_sentinels",
    "sentinel_kwargs",
    "fanout_prefix",
    "fanout_patterns",
];

/// kombu's `fanout_prefix` option: a flag or the prefix itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FanoutPrefix {
    /// `true`: `/<db>.`; `false`: none.
    Flag(bool),
    /// The prefix as given.
    Text(String),
}

impl FanoutPrefix {
    /// The prefix for database `db`.
    pub fn for_db(&self, db: i64) -> String {
        match self {
            FanoutPrefix::Flag(true) => format!("/{db}."),
            FanoutPrefix::Flag(false) => String::new(),
            FanoutPrefix::Text(t) => t.clone(),
        }
    }
}

impl RedisTransportOptions {
    /// Reads the options from `broker_transport_options` as given (TOML file or Celery app).
    /// A value that does not fit is an error naming the setting; keys the transport does not
    /// read are ignored, as kombu's Redis transport ignores them.
    pub fn from_table(table: &toml::Table) -> Result<RedisTransportOptions, String> {
        let ignored: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| !KEYS.contains(k))
            .collect();
        if !ignored.is_empty() {
            tracing::debug!(
                "broker_transport_options: not read by the Redis transport: {}",
                ignored.join(", ")
            );
        }
        toml::Value::Table(table.clone())
            .try_into::<RedisTransportOptions>()
            .map_err(|e| format!("broker_transport_options: {}", e.to_string().trim_end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("TOML")
    }

    #[test]
    fn reads_its_keys_and_ignores_the_rest() {
        let o = RedisTransportOptions::from_table(&table(
            "visibility_timeout = 2\nsep = \":\"\nglobal_keyprefix = \"p:\"\npriority_steps = [0, 5]",
        ))
        .expect("options");
        assert_eq!(o.visibility_timeout, 2.0);
        assert_eq!(o.global_keyprefix, "p:");
        assert_eq!(o.priority_steps, vec![0, 5]);
        assert_eq!(o.unacked_key, "unacked");
        let empty = RedisTransportOptions::from_table(&toml::Table::new()).expect("defaults");
        assert_eq!(empty.visibility_timeout, 3600.0);
    }

    #[test]
    fn every_key_listed_is_read() {
        // A table fits none of them (but `sentinel_kwargs`, a table itself): each key read
        // is refused.
        for key in KEYS
            .iter()
            .filter(|k| !["sentinel_kwargs", "fanout_prefix"].contains(k))
        {
            let o = RedisTransportOptions::from_table(&table(&format!("{key} = {{ x = 1 }}")));
            assert!(o.is_err(), "{key} is not read");
        }
    }

    #[test]
    fn a_value_that_does_not_fit_names_the_setting() {
        let err = RedisTransportOptions::from_table(&table("visibility_timeout = \"long\""))
            .expect_err("a string");
        assert!(err.starts_with("broker_transport_options: "), "{err}");
        assert!(err.contains("visibility_timeout"), "{err}");
    }
}
