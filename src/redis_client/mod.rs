//! Redis connections for the broker and the result backend: kombu's URL forms, servers that
//! move (Redis Sentinel, fail-over lists: see [`endpoint`]), and passwords
//! kept out of logs.

pub mod client;
pub mod endpoint;
pub mod lane;
pub mod link;
pub mod mask;
pub mod sentinel;
pub mod spin;
pub mod url;

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::RedisError;

pub use client::{client, connect_url, connection_info, Timeouts, DEFAULT_CONNECT_TIMEOUT};
pub use mask::mask_secrets;
pub use url::{RedisUrl, RedisUrlError};

/// Opens a multiplexed connection. `response_timeout: None` waits forever (needed for
/// blocking commands such as `BRPOP`); the URL's `socket_timeout` and
/// `socket_connect_timeout` apply otherwise (see [`Timeouts::for_url`]).
pub async fn connect(
    url: &str,
    response_timeout: Option<Duration>,
) -> Result<MultiplexedConnection, RedisError> {
    let url = RedisUrl::parse(url)?;
    connect_url(
        &url,
        Timeouts {
            connect: Some(DEFAULT_CONNECT_TIMEOUT),
            response: response_timeout,
        },
    )
    .await
}

/// The URL in the spelling the redis crate itself reads (`unix://...?db=N`,
/// `rediss://...#insecure`), password percent-encoded; the text unchanged when it does not
/// parse. TLS files cannot be written this way: build the client with [`client`] instead.
pub fn normalize_url(url: &str) -> String {
    let Ok(parsed) = RedisUrl::parse(url) else {
        return url.to_owned();
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let auth = match (&parsed.username, &parsed.password) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p.expose())),
        (None, Some(p)) => format!(":{}@", enc(p.expose())),
        (Some(u), None) => format!("{}@", enc(u)),
        (None, None) => String::new(),
    };
    match &parsed.address {
        url::Address::Unix(path) => {
            let mut out = format!("unix://{}?db={}", path.display(), parsed.db);
            if let Some(u) = &parsed.username {
                out.push_str(&format!("&user={}", enc(u)));
            }
            if let Some(p) = &parsed.password {
                out.push_str(&format!("&pass={}", enc(p.expose())));
            }
            out
        }
        url::Address::Tcp { host, port } => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            match &parsed.tls {
                None => format!("redis://{auth}{host}:{port}/{}", parsed.db),
                Some(tls) if tls.is_insecure() => {
                    format!("rediss://{auth}{host}:{port}/{}#insecure", parsed.db)
                }
                Some(_) => format!("rediss://{auth}{host}:{port}/{}", parsed.db),
            }
        }
    }
}

/// The database number a URL selects (0 by default or when it does not parse), as kombu
/// reads it for its fanout prefix.
pub fn db_number(url: &str) -> i64 {
    RedisUrl::parse(url).map_or(0, |u| u.db)
}

/// True when two URLs reach the same Redis server as the same user; the database may differ.
/// Addresses are compared as written (`localhost` and `127.0.0.1` count as different).
pub fn same_server(a: &str, b: &str) -> bool {
    match (RedisUrl::parse(a), RedisUrl::parse(b)) {
        (Ok(x), Ok(y)) => x.same_server(&y),
        _ => false,
    }
}

/// The URL with any password replaced by `**`, as Celery's banner shows it; also safe for
/// text that does not parse (see [`mask_secrets`]).
pub fn mask_password(url: &str) -> String {
    mask_secrets(url)
}

/// A `;`-separated URL list (a broker fail-over list, Sentinel URLs) with each URL's
/// password masked, as Celery's Sentinel backend shows its URL. kombu and Celery split such a
/// list on every `;`, so each piece is one URL.
pub fn mask_url_list(text: &str) -> String {
    text.split(';')
        .map(mask_secrets)
        .collect::<Vec<_>>()
        .join(";")
}

/// True when `url`'s scheme is one the Redis broker and result backend read.
pub fn is_redis_url(url: &str) -> bool {
    let scheme = url
        .trim_start()
        .split("://")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        scheme.as_str(),
        "redis" | "rediss" | "unix" | "redis+socket" | "socket"
    )
}

/// Why a broker or backend URL was refused before any connection was tried. Every URL in
/// it is masked.
#[derive(Debug, thiserror::Error)]
pub enum UrlRefusal {
    /// A URL whose scheme names a transport rcelery does not speak (`sqs://`, ...).
    #[error("{role} transport {scheme:?} is not supported yet; URL {url}")]
    Unsupported {
        /// `broker` or `result backend`.
        role: &'static str,
        /// The scheme as written.
        scheme: String,
        /// The URL, masked.
        url: String,
    },
    /// Text that is not a URL at all.
    #[error("invalid {role} URL {url}: not a URL (use redis://)")]
    NotAUrl {
        /// `broker` or `result backend`.
        role: &'static str,
        /// The text, masked.
        url: String,
    },
    /// A Redis URL that cannot be used.
    #[error("invalid {role} URL {url}: {source}")]
    Invalid {
        /// `broker` or `result backend`.
        role: &'static str,
        /// The URL, masked.
        url: String,
        /// What is wrong with it.
        source: RedisUrlError,
    },
}

/// The refusal of a URL whose scheme names no transport rcelery has (or that is no URL at
/// all), its password masked.
pub fn refuse_scheme(role: &'static str, url: &str) -> UrlRefusal {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s)
        .filter(|s| url::is_scheme(s));
    match scheme {
        Some(s) => UrlRefusal::Unsupported {
            role,
            scheme: s.to_owned(),
            url: mask_password(url),
        },
        None => UrlRefusal::NotAUrl {
            role,
            url: mask_password(url),
        },
    }
}

/// Reads a broker or backend URL once, up front: a URL rcelery cannot use is refused with its
/// password masked (whatever its shape), and the URL's warnings are logged once.
pub fn read_url(role: &'static str, url: &str) -> Result<RedisUrl, UrlRefusal> {
    if !is_redis_url(url) {
        return Err(refuse_scheme(role, url));
    }
    let parsed = RedisUrl::parse(url).map_err(|source| UrlRefusal::Invalid {
        role,
        url: mask_password(url),
        source,
    })?;
    for warning in parsed.warnings() {
        tracing::warn!("{role} URL {parsed}: {warning}");
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_password("redis://:123456@localhost:6379/3"),
            "redis://:**@localhost:6379/3"
        );
        assert_eq!(mask_password("redis://u:p@h/0"), "redis://u:**@h/0");
        assert_eq!(
            mask_password("redis://localhost:6379/0"),
            "redis://localhost:6379/0"
        );
    }

    #[test]
    fn same_server_ignores_the_database_only() {
        assert!(same_server(
            "redis://:pw@localhost:6379/3",
            "redis://:pw@localhost:6379/4"
        ));
        assert!(!same_server(
            "redis://:pw@localhost:6379/3",
            "redis://:other@localhost:6379/3"
        ));
        assert!(!same_server(
            "redis://localhost:6379/3",
            "redis://localhost:6380/3"
        ));
        assert!(!same_server(
            "redis://localhost:6379/3",
            "redis://127.0.0.1:6379/3"
        ));
    }

    #[test]
    fn reads_db_numbers() {
        assert_eq!(db_number("redis://:pw@localhost:6379/3"), 3);
        assert_eq!(db_number("redis://localhost"), 0);
        assert_eq!(db_number("unix:///tmp/r.sock?db=2"), 2);
        assert_eq!(db_number("redis://h/0?db=7"), 7);
        assert_eq!(db_number("redis://:ab/cd#x@h/3"), 0, "unparseable");
    }

    #[test]
    fn normalizes_kombu_spellings() {
        assert_eq!(
            normalize_url("redis+socket:///tmp/r.sock?virtual_host=2"),
            "unix:///tmp/r.sock?db=2"
        );
        assert_eq!(
            normalize_url("rediss://h:6380/0?ssl_cert_reqs=none"),
            "rediss://h:6380/0#insecure"
        );
        assert_eq!(
            normalize_url("redis://h/1?password=a%2Fb"),
            "redis://:a%2Fb@h:6379/1"
        );
        assert_eq!(normalize_url("not a url"), "not a url");
    }

    #[test]
    fn reads_the_redis_schemes() {
        for u in [
            "redis://h",
            "REDISS://h",
            "unix:///s",
            "redis+socket:///s",
            "socket:///s",
        ] {
            assert!(is_redis_url(u), "{u}");
        }
        assert!(!is_redis_url("amqp://h") && !is_redis_url("garbage"));
    }

    #[test]
    fn masks_unparseable_urls() {
        let masked = mask_password("redis://:ab/cd#S3cret@127.0.0.1:6392/0");
        assert!(
            !masked.contains("S3cret") && !masked.contains("ab/cd"),
            "{masked}"
        );
    }
}
