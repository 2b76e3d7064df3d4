//! The redis crate's client and connection settings, built from a parsed [`RedisUrl`]
//! (never from URL text): address, user, password, database, TLS and timeouts.

use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, RedisConnectionInfo, RedisError, TlsCertificates,
};

use super::url::{Address, RedisUrl, RedisUrlError, TlsOptions};

/// How long a connection attempt may take when neither the caller nor the URL says.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// A connection's time limits. `None` waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For establishing the connection (TCP, TLS, `AUTH`, `SELECT`).
    pub connect: Option<Duration>,
    /// For each reply.
    pub response: Option<Duration>,
}

impl Timeouts {
    /// The limits for a connection to `url`: the URL's `socket_connect_timeout` (else its
    /// `socket_timeout`, as redis-py does) and `socket_timeout` win over `defaults`. A
    /// connection for blocking commands passes `response: None` and keeps it: such a caller
    /// adds [`RedisUrl::socket_timeout`] to its own block time if it wants a bound.
    pub fn for_url(url: &RedisUrl, defaults: Timeouts) -> Timeouts {
        Timeouts {
            connect: url
                .socket_connect_timeout
                .or(url.socket_timeout)
                .or(defaults.connect),
            response: defaults.response.map(|d| url.socket_timeout.unwrap_or(d)),
        }
    }

    /// The redis crate's settings for these limits.
    pub fn config(self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(self.connect)
            .set_response_timeout(self.response)
    }
}

/// The address, user, password and database of `url` (TLS certificates aside: see
/// [`client`]).
pub fn connection_info(url: &RedisUrl) -> Result<ConnectionInfo, RedisUrlError> {
    let addr = match &url.address {
        Address::Tcp { host, port } => match &url.tls {
            None => ConnectionAddr::Tcp(host.clone(), *port),
            Some(tls) => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: tls.is_insecure(),
                tls_params: None,
            },
        },
        Address::Unix(path) => ConnectionAddr::Unix(path.clone()),
    };
    let mut settings = RedisConnectionInfo::default().set_db(url.db);
    if let Some(user) = &url.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &url.password {
        settings = settings.set_password(password.expose());
    }
    let info = addr
        .into_connection_info()
        .map_err(|e| RedisUrlError::Tls(e.to_string()))?;
    Ok(info.set_redis_settings(settings))
}

/// The redis crate's client for `url`, with its TLS settings: the CA file
/// (`ssl_ca_certs`, else the system's CAs), the client certificate and key
/// (`ssl_certfile` / `ssl_keyfile`), no check at all for `ssl_cert_reqs=none`, and the host
/// name checked only with `ssl_check_hostname=true` (redis-py 5's default). The files are
/// read here, once: keep the client to reconnect.
pub fn client(url: &RedisUrl) -> Result<Client, RedisUrlError> {
    let info = connection_info(url)?;
    let Some(tls) = &url.tls else {
        return Client::open(info).map_err(|e| RedisUrlError::Tls(e.to_string()));
    };
    let certificates = certificates(tls)?;
    let client = if certificates.client_tls.is_some() || certificates.root_cert.is_some() {
        Client::build_with_tls(info, certificates).map_err(|e| RedisUrlError::Tls(e.to_string()))?
    } else {
        Client::open(info).map_err(|e| RedisUrlError::Tls(e.to_string()))?
    };
    if tls.check_hostname || tls.is_insecure() {
        return Ok(client);
    }
    let info = client.get_connection_info().clone();
    let mut addr = info.addr().clone();
    addr.set_danger_accept_invalid_hostnames(true);
    Client::open(info.set_addr(addr)).map_err(|e| RedisUrlError::Tls(e.to_string()))
}

/// Opens a multiplexed connection to `url` with `defaults` adjusted by the URL's timeouts
/// (see [`Timeouts::for_url`]).
pub async fn connect_url(
    url: &RedisUrl,
    defaults: Timeouts,
) -> Result<MultiplexedConnection, RedisError> {
    let client = client(url)?;
    client
        .get_multiplexed_async_connection_with_config(&Timeouts::for_url(url, defaults).config())
        .await
}

fn certificates(tls: &TlsOptions) -> Result<TlsCertificates, RedisUrlError> {
    let root_cert = tls
        .ca_certs
        .as_deref()
        .map(|p| read("ssl_ca_certs", p))
        .transpose()?;
    let client_tls = match (&tls.certfile, &tls.keyfile) {
        (None, None) => None,
        (None, Some(_)) => return Err(RedisUrlError::KeyWithoutCert),
        (Some(cert), key) => {
            let client_cert = read("ssl_certfile", cert)?;
            // Python's load_cert_chain reads the key from the certificate file when no key
            // file is given.
            let client_key = match key {
                Some(key) => read("ssl_keyfile", key)?,
                None => client_cert.clone(),
            };
            Some(ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

fn read(option: &'static str, path: &Path) -> Result<Vec<u8>, RedisUrlError> {
    std::fs::read(path).map_err(|e| RedisUrlError::TlsFile {
        option,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn builds_tcp_and_socket_connection_info() {
        let info = connection_info(&url("redis://alice:p%2Fw@h:6390/3")).expect("info");
        assert_eq!(info.addr(), &ConnectionAddr::Tcp("h".into(), 6390));
        let s = info.redis_settings();
        assert_eq!(
            (s.db(), s.username(), s.password()),
            (3, Some("alice"), Some("p/w"))
        );
        let info = connection_info(&url("redis+socket:///tmp/r.sock?virtual_host=2&password=x"))
            .expect("info");
        assert_eq!(info.addr(), &ConnectionAddr::Unix("/tmp/r.sock".into()));
        assert_eq!(
            (info.redis_settings().db(), info.redis_settings().password()),
            (2, Some("x"))
        );
    }

    #[test]
    fn builds_tls_addresses() {
        let info = connection_info(&url("rediss://h:6380/0?ssl_cert_reqs=none")).expect("info");
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        let info = connection_info(&url("rediss://h:6380/0?ssl_cert_reqs=required")).expect("info");
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        ));
        assert!(client(&url("rediss://h/0?ssl_cert_reqs=required")).is_ok());
        assert!(client(&url(
            "rediss://h/0?ssl_cert_reqs=required&ssl_check_hostname=true"
        ))
        .is_ok());
    }

    #[test]
    fn a_missing_tls_file_is_a_clear_error() {
        let e = client(&url(
            "rediss://h/0?ssl_cert_reqs=required&ssl_ca_certs=/nonexistent/ca.pem",
        ))
        .unwrap_err();
        assert!(
            matches!(
                e,
                RedisUrlError::TlsFile {
                    option: "ssl_ca_certs",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = client(&url(
            "rediss://h/0?ssl_cert_reqs=required&ssl_keyfile=/k.pem",
        ))
        .unwrap_err();
        assert_eq!(e, RedisUrlError::KeyWithoutCert);
    }

    #[test]
    fn url_timeouts_override_the_defaults() {
        let defaults = Timeouts {
            connect: Some(DEFAULT_CONNECT_TIMEOUT),
            response: Some(Duration::from_secs(30)),
        };
        assert_eq!(Timeouts::for_url(&url("redis://h/0"), defaults), defaults);
        let t = Timeouts::for_url(&url("redis://h/0?socket_timeout=2"), defaults);
        assert_eq!(
            t,
            Timeouts {
                connect: Some(Duration::from_secs(2)),
                response: Some(Duration::from_secs(2))
            }
        );
        let t = Timeouts::for_url(
            &url("redis://h/0?socket_timeout=2&socket_connect_timeout=0.5"),
            defaults,
        );
        assert_eq!(t.connect, Some(Duration::from_millis(500)));
        let blocking = Timeouts {
            response: None,
            ..defaults
        };
        assert_eq!(
            Timeouts::for_url(&url("redis://h/0?socket_timeout=2"), blocking).response,
            None
        );
    }
}
