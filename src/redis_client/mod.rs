//! Redis connections for the broker and the result backend: kombu's URL forms, and passwords
//! kept out of logs.

pub mod lane;
pub mod link;
pub mod spin;

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

/// Opens a multiplexed connection. `response_timeout: None` waits forever (needed for
/// blocking commands such as `BRPOP`).
pub async fn connect(
    url: &str,
    response_timeout: Option<Duration>,
) -> Result<MultiplexedConnection, RedisError> {
    let client = Client::open(normalize_url(url).as_str())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(4)))
        .set_response_timeout(response_timeout);
    client.get_multiplexed_async_connection_with_config(&config).await
}

/// A client for `url` (kombu's spellings accepted); connects nothing yet.
pub fn client(url: &str) -> Result<Client, RedisError> {
    Client::open(normalize_url(url).as_str())
}

/// Rewrites kombu's URL spellings into the ones the redis crate reads:
/// `redis+socket://` / `socket://` → `unix://`, `?virtual_host=N` → `?db=N`, and
/// `ssl_cert_reqs=none` → `#insecure`.
pub fn normalize_url(url: &str) -> String {
    let mut url = url.to_owned();
    for prefix in ["redis+socket://", "socket://"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            url = format!("unix://{rest}");
        }
    }
    if url.starts_with("unix://") {
        url = url.replace("virtual_host=", "db=");
    }
    if url.starts_with("rediss://") {
        let lower = url.to_ascii_lowercase();
        let insecure = lower.contains("ssl_cert_reqs=none") || lower.contains("ssl_cert_reqs=cert_none");
        if let Some(q) = url.find('?') {
            url.truncate(q);
        }
        if insecure && !url.contains('#') {
            url.push_str("#insecure");
        }
    }
    url
}

/// The database number a `redis://host/N` URL selects (0 by default), as kombu reads it for
/// its fanout prefix.
pub fn db_number(url: &str) -> i64 {
    let without_query = url.split(['?', '#']).next().unwrap_or("");
    let after_scheme = without_query.split_once("://").map_or(without_query, |(_, r)| r);
    if url.starts_with("unix://") || url.contains("socket://") {
        return url
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("db=").or_else(|| p.strip_prefix("virtual_host=")))
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
    }
    after_scheme
        .split_once('/')
        .and_then(|(_, db)| db.trim_matches('/').parse().ok())
        .unwrap_or(0)
}

/// True when two URLs reach the same Redis server as the same user; the database may differ.
/// Addresses are compared as written (`localhost` and `127.0.0.1` count as different).
pub fn same_server(a: &str, b: &str) -> bool {
    use redis::IntoConnectionInfo;
    let (Ok(x), Ok(y)) = (
        normalize_url(a).as_str().into_connection_info(),
        normalize_url(b).as_str().into_connection_info(),
    ) else {
        return false;
    };
    let (rx, ry) = (x.redis_settings(), y.redis_settings());
    x.addr() == y.addr() && rx.username() == ry.username() && rx.password() == ry.password()
}

/// The URL with any password replaced by `**`, as Celery's banner shows it.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:**@{host}{tail}")
            } else {
                format!("{scheme}://**@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_password("redis://:123456@localhost:6379/3"), "redis://:**@localhost:6379/3");
        assert_eq!(mask_password("redis://u:p@h/0"), "redis://u:**@h/0");
        assert_eq!(mask_password("redis://localhost:6379/0"), "redis://localhost:6379/0");
    }

    #[test]
    fn same_server_ignores_the_database_only() {
        assert!(same_server("redis://:pw@localhost:6379/3", "redis://:pw@localhost:6379/4"));
        assert!(!same_server("redis://:pw@localhost:6379/3", "redis://:other@localhost:6379/3"));
        assert!(!same_server("redis://localhost:6379/3", "redis://localhost:6380/3"));
        assert!(!same_server("redis://localhost:6379/3", "redis://127.0.0.1:6379/3"));
    }

    #[test]
    fn reads_db_numbers() {
        assert_eq!(db_number("redis://:pw@localhost:6379/3"), 3);
        assert_eq!(db_number("redis://localhost"), 0);
        assert_eq!(db_number("unix:///tmp/r.sock?db=2"), 2);
    }

    #[test]
    fn normalizes_kombu_spellings() {
        assert_eq!(normalize_url("redis+socket:///tmp/r.sock?virtual_host=2"), "unix:///tmp/r.sock?db=2");
        assert_eq!(normalize_url("rediss://h:6380/0?ssl_cert_reqs=none"), "rediss://h:6380/0#insecure");
    }
}
