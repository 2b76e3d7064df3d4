//! The AMQP transport's options, read from Celery's `broker_transport_options` (a free table
//! whose keys depend on the transport) with kombu's names where kombu has the option.

use serde::Deserialize;

/// RabbitMQ's default `consumer_timeout`: 30 minutes.
pub const RABBITMQ_CONSUMER_TIMEOUT_SECS: f64 = 1800.0;

/// `broker_transport_options` understood by the AMQP transport.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AmqpTransportOptions {
    /// kombu's `confirm_publish`: wait for the broker to confirm each message published.
    /// kombu's default is off; rcelery's is on (every message the worker publishes —
    /// retries, chain steps, chord bodies, forwarded messages — is confirmed before the
    /// message that caused it is acknowledged). False publishes without confirms.
    pub confirm_publish: bool,
    /// rcelery's own: the server's `consumer_timeout` in seconds (RabbitMQ's default, 1800),
    /// which rcelery cannot read from the server. A message whose ETA is further away than
    /// this is warned about when it is received: RabbitMQ closes the channel of a consumer
    /// that holds a message unacknowledged for longer. 0 turns the warning off.
    pub consumer_timeout: f64,
    /// rcelery's own: the `global` flag of `basic_qos`, when set. Unset, rcelery does what
    /// kombu does with RabbitMQ 3.3–3.x (the server this is tested on): global QoS, except
    /// when a consumed queue is a quorum queue (quorum queues refuse global QoS). kombu
    /// reads the server's version to turn it off on RabbitMQ 4 and later, where global QoS
    /// is deprecated; rcelery cannot, so set this to false there.
    pub qos_global: Option<bool>,
    /// kombu's `connect_timeout` (seconds; default: `broker_connection_timeout`).
    pub connect_timeout: Option<f64>,
}

impl Default for AmqpTransportOptions {
    fn default() -> Self {
        AmqpTransportOptions {
            confirm_publish: true,
            consumer_timeout: RABBITMQ_CONSUMER_TIMEOUT_SECS,
            qos_global: None,
            connect_timeout: None,
        }
    }
}

/// The keys [`AmqpTransportOptions`] reads; any other is ignored (logged at debug).
const KEYS: &[&str] = &[
    "confirm_publish",
    "consumer_timeout",
    "qos_global",
    "connect_timeout",
];

impl AmqpTransportOptions {
    /// Reads the options from `broker_transport_options` as given (TOML file or Celery app).
    /// A value that does not fit is an error naming the setting; keys the transport does not
    /// read are ignored, as kombu ignores them.
    pub fn from_table(table: &toml::Table) -> Result<AmqpTransportOptions, String> {
        crate::broker::transport_options::read(table, KEYS, "AMQP")
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
        let o = AmqpTransportOptions::from_table(&table(
            "confirm_publish = false\nvisibility_timeout = 10\nconsumer_timeout = 60\nqos_global = false",
        ))
        .expect("options");
        assert!(!o.confirm_publish);
        assert_eq!(o.consumer_timeout, 60.0);
        assert_eq!(o.qos_global, Some(false));
        let d = AmqpTransportOptions::from_table(&toml::Table::new()).expect("defaults");
        assert_eq!(d, AmqpTransportOptions::default());
        assert!(d.confirm_publish);
        assert_eq!(d.consumer_timeout, 1800.0);
    }

    #[test]
    fn every_key_listed_is_read() {
        for key in KEYS {
            let o = AmqpTransportOptions::from_table(&table(&format!("{key} = {{ x = 1 }}")));
            assert!(o.is_err(), "{key} is not read");
        }
    }

    #[test]
    fn a_value_that_does_not_fit_names_the_setting() {
        let err = AmqpTransportOptions::from_table(&table("consumer_timeout = \"long\""))
            .expect_err("a string");
        assert!(err.contains("consumer_timeout"), "{err}");
    }
}
