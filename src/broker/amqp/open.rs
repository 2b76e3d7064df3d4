//! Opening the AMQP transport from a URL and the broker settings: the factory's AMQP arm.

use std::sync::Arc;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

use super::link::{Link, Target};
use super::{secs, AmqpBroker, AmqpTransportOptions, AmqpUrl};
use crate::broker::factory::{BrokerSetup, BrokerSetupError, Capabilities, ConnectedBroker};
use crate::config::UseSsl;
use crate::redis_client::url::CertReqs;

/// Reads the URL, the AMQP transport options (from `broker_transport_options`) and
/// `broker_use_ssl`, and connects (retrying as `broker_connection_retry_on_startup` and
/// `broker_connection_max_retries` allow).
pub async fn open(url: &str, setup: BrokerSetup) -> Result<ConnectedBroker, BrokerSetupError> {
    let options = AmqpTransportOptions::from_table(&setup.transport_options)
        .map_err(BrokerSetupError::Options)?;
    let mut parsed = AmqpUrl::parse(url).map_err(|reason| {
        BrokerSetupError::Options(format!(
            "invalid broker URL {}: {reason}",
            crate::redis_client::mask_password(url)
        ))
    })?;
    let tls = match &setup.use_ssl {
        Some(UseSsl::Flag(true)) => {
            parsed.tls = true;
            OwnedTLSConfig::default()
        }
        Some(setting @ UseSsl::Options(_)) => {
            parsed.tls = true;
            tls_config(setting)?
        }
        _ => OwnedTLSConfig::default(),
    };
    if parsed.tls && parsed.port == 5672 && !url.contains(":5672") {
        parsed.port = 5671;
    }
    let heartbeat = setup
        .connection
        .heartbeat
        .map(|h| h.as_secs().clamp(1, u64::from(u16::MAX)) as u16);
    let connect_timeout = options
        .connect_timeout
        .map(secs)
        .unwrap_or(setup.connection.timeout);
    let target = Target {
        uri: parsed.to_uri(heartbeat, connect_timeout.as_millis() as u64),
        tls,
        display: parsed.display(),
        connect_timeout,
        confirms: options.confirm_publish,
    };
    let display = target.display.clone();
    let link = Arc::new(Link::new(target, &setup.connection, setup.health));
    let startup = if setup.connection.retry_on_startup {
        setup.connection.max_retries.filter(|n| *n > 0)
    } else {
        Some(0)
    };
    link.connect(startup)
        .await
        .map_err(|source| BrokerSetupError::Connect {
            url: display,
            source,
        })?;
    let broker = AmqpBroker::new(link, options, setup.queues);
    Ok(ConnectedBroker {
        broker: Arc::new(broker),
        capabilities: Capabilities::default(),
    })
}

/// `broker_use_ssl` as lapin's TLS settings: `ca_certs` as the trusted chain, `certfile` and
/// `keyfile` as the client identity. Certificates are always verified: `cert_reqs` none is
/// refused (rustls has no switch for it).
fn tls_config(setting: &UseSsl) -> Result<OwnedTLSConfig, BrokerSetupError> {
    let options = setting
        .tls_options("broker_use_ssl")
        .map_err(BrokerSetupError::Options)?;
    let Some(o) = options else {
        return Ok(OwnedTLSConfig::default());
    };
    if o.cert_reqs == Some(CertReqs::None) {
        return Err(BrokerSetupError::Options(
            "broker_use_ssl: cert_reqs CERT_NONE is not supported on AMQP (the server's certificate is always verified); give ca_certs instead".to_owned(),
        ));
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            BrokerSetupError::Options(format!(
                "broker_use_ssl: cannot read {}: {e}",
                path.display()
            ))
        })
    };
    let cert_chain = match &o.ca_certs {
        Some(p) => Some(String::from_utf8_lossy(&read(p)?).into_owned()),
        None => None,
    };
    let identity = match (&o.certfile, &o.keyfile) {
        (Some(cert), key) => {
            let pem = read(cert)?;
            let key = match key {
                Some(k) => read(k)?,
                None => pem.clone(),
            };
            Some(OwnedIdentity::PKCS8 { pem, key })
        }
        (None, _) => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}
