//! Redis Sentinel, as kombu's `SentinelChannel` (broker) and Celery's `SentinelBackend`
//! (result backend) use it: `sentinel://h1:26379;sentinel://h2:26379` with the transport
//! option `master_name`.
//!
//! What is read, and from where (kombu 5.7 / Celery 5.7 / redis-py):
//! - the sentinels' addresses: every `sentinel://` URL of the list (port 26379 when none);
//! - the master's user, password and database: the first URL's (Celery's backend takes them
//!   from the first URL explicitly; kombu from the URL in use, the first one at start). The
//!   sentinels themselves get no password from the URL: give it in the transport option
//!   `sentinel_kwargs = {password = "..."}` (`username`, `socket_timeout`,
//!   `socket_connect_timeout` are read too);
//! - `master_name` (required: kombu refuses to start without it) and `min_other_sentinels`
//!   (0).
//!
//! For every connection the sentinels are asked in turn (the one that answered last first,
//! as redis-py does) for `SENTINEL MASTER <master_name>`; an answer counts when its flags say
//! `master` and neither `s_down` nor `o_down`, and it sees at least `min_other_sentinels`
//! other sentinels (redis-py's check). The master found must answer `ROLE` with `master`. A
//! lost connection or a `READONLY` reply (the old master, demoted) makes the link connect
//! again, which asks the sentinels again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::{Client, ErrorKind, RedisError};

use super::client::{client, Timeouts};
use super::endpoint::{Endpoint, OpenError, Opened};
use super::url::{Address, Password, RedisUrl, RedisUrlError, Scheme, TlsOptions};

/// The port of a `sentinel://` URL that names none (kombu's Sentinel transport default).
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// The Sentinel transport options, read from `broker_transport_options` or
/// `result_backend_transport_options`.
#[derive(Debug, Clone, Default)]
pub struct SentinelOptions {
    /// `master_name`: the name the sentinels monitor the master under.
    pub master_name: Option<String>,
    /// `min_other_sentinels` (0): a sentinel's answer counts only when it sees this many
    /// other sentinels.
    pub min_other_sentinels: u32,
    /// `sentinel_kwargs`: how to connect to the sentinels themselves.
    pub sentinel_kwargs: Option<toml::Table>,
}

/// Why a `sentinel://` setup cannot be used. Nothing in it quotes a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SentinelError {
    /// No `master_name` transport option.
    #[error(
        "'master_name' transport option must be specified: set {setting} = {{master_name = \
         \"mymaster\"}} (the name the sentinels monitor the master under)"
    )]
    NoMasterName {
        /// `broker_transport_options` or `result_backend_transport_options`.
        setting: &'static str,
    },
    /// A URL of the list is not a `sentinel://` TCP URL.
    #[error("sentinel URL #{index}: {reason}")]
    Url {
        /// Its place in the list (1-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// `sentinel_kwargs` holds a value that does not fit.
    #[error("{setting}.sentinel_kwargs: {reason}")]
    Kwargs {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// How to reach the sentinels and the master they name.
#[derive(Debug, Clone)]
pub struct SentinelSetup {
    /// The sentinels, in the order written.
    pub sentinels: Vec<RedisUrl>,
    /// The master's connection settings (user, password, database, TLS, timeouts from the
    /// first URL); its address is replaced by the one the sentinels give.
    pub master: RedisUrl,
    /// `master_name`.
    pub master_name: String,
    /// `min_other_sentinels`.
    pub min_other_sentinels: u32,
    /// The URL list, each password masked.
    pub display: String,
}

impl SentinelSetup {
    /// Reads the `sentinel://` URLs of a list and the Sentinel transport options of
    /// `setting`; `use_ssl` (`broker_use_ssl` / `redis_backend_use_ssl`) turns TLS on for
    /// the master connection.
    pub fn parse(
        urls: &[String],
        options: &SentinelOptions,
        setting: &'static str,
        use_ssl: Option<&TlsOptions>,
    ) -> Result<SentinelSetup, SentinelError> {
        let mut parsed = Vec::with_capacity(urls.len());
        for (i, text) in urls.iter().enumerate() {
            let url = parse_sentinel_url(text).map_err(|e| SentinelError::Url {
                index: i + 1,
                reason: e.to_string(),
            })?;
            parsed.push(url);
        }
        let first = parsed.first().cloned().ok_or(SentinelError::Url {
            index: 1,
            reason: "no sentinel URL".into(),
        })?;
        let master_name = options
            .master_name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(SentinelError::NoMasterName { setting })?;
        if parsed.iter().any(|u| {
            u.password != first.password || u.username != first.username || u.db != first.db
        }) {
            tracing::warn!(
                "{setting}: the sentinel URLs differ in user, password or database: the first \
                 URL's apply to the master (as Celery's result backend reads them)"
            );
        }
        let kwargs = read_kwargs(options.sentinel_kwargs.as_ref(), setting)?;
        let sentinels = parsed
            .into_iter()
            .map(|u| RedisUrl {
                username: kwargs.username.clone(),
                password: kwargs.password.clone(),
                db: 0,
                socket_timeout: kwargs.socket_timeout,
                socket_connect_timeout: kwargs.socket_connect_timeout,
                tls: None,
                ignored_options: Vec::new(),
                ..u
            })
            .collect();
        let master = first
            .with_use_ssl(use_ssl)
            .map_err(|e| SentinelError::Url {
                index: 1,
                reason: e.to_string(),
            })?;
        Ok(SentinelSetup {
            sentinels,
            master,
            master_name,
            min_other_sentinels: options.min_other_sentinels,
            display: super::mask_url_list(&urls.join(";")),
        })
    }
}

/// Reads one `sentinel://` URL as a Redis TCP URL (port 26379 when none is given).
pub fn parse_sentinel_url(text: &str) -> Result<RedisUrl, RedisUrlError> {
    let trimmed = text.trim();
    let (scheme, rest) = trimmed.split_once("://").ok_or(RedisUrlError::NoScheme)?;
    if !scheme.eq_ignore_ascii_case("sentinel") {
        return Err(RedisUrlError::UnsupportedScheme(
            scheme.to_ascii_lowercase(),
        ));
    }
    let mut url = RedisUrl::parse(&format!("redis://{rest}"))?;
    if !has_port(rest) {
        if let Address::Tcp { port, .. } = &mut url.address {
            *port = DEFAULT_SENTINEL_PORT;
        }
    }
    Ok(url)
}

/// True when the authority of `rest` (a URL after `scheme://`) names a port other than 0.
fn has_port(rest: &str) -> bool {
    let netloc = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let port = match host.strip_prefix('[') {
        Some(b) => b.split_once(']').and_then(|(_, a)| a.strip_prefix(':')),
        None => host.split_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse::<u16>().ok())
        .is_some_and(|p| p != 0)
}

/// `sentinel_kwargs` as read.
#[derive(Debug, Default)]
struct Kwargs {
    username: Option<String>,
    password: Option<Password>,
    socket_timeout: Option<Duration>,
    socket_connect_timeout: Option<Duration>,
}

fn read_kwargs(
    table: Option<&toml::Table>,
    setting: &'static str,
) -> Result<Kwargs, SentinelError> {
    let mut out = Kwargs::default();
    let Some(table) = table else {
        return Ok(out);
    };
    let bad = |reason: String| SentinelError::Kwargs { setting, reason };
    for (key, value) in table {
        match key.as_str() {
            "password" | "username" => {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    _ => return Err(bad(format!("{key} must be a string"))),
                };
                if key == "password" {
                    out.password = Some(Password::new(text)).filter(|p| !p.expose().is_empty());
                } else {
                    out.username = Some(text).filter(|u| !u.is_empty());
                }
            }
            "socket_timeout" | "socket_connect_timeout" => {
                let secs = match value {
                    toml::Value::Integer(i) => *i as f64,
                    toml::Value::Float(f) => *f,
                    _ => return Err(bad(format!("{key} must be a number of seconds"))),
                };
                let d = Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad(format!("{key} must be a positive number of seconds")))?;
                if key == "socket_timeout" {
                    out.socket_timeout = Some(d);
                } else {
                    out.socket_connect_timeout = Some(d);
                }
            }
            other => tracing::warn!("{setting}.sentinel_kwargs: {other} is not read by rcelery"),
        }
    }
    Ok(out)
}

/// The master the sentinels name, found anew for every connection.
pub struct SentinelEndpoint {
    setup: SentinelSetup,
    clients: Vec<Client>,
    /// Indexes into `clients`, the sentinel that answered last first.
    order: Mutex<Vec<usize>>,
    /// The master's address at the last connection.
    master: Mutex<Option<(String, u16)>>,
    stamp: AtomicU64,
}

impl SentinelEndpoint {
    /// An endpoint for `setup` (nothing is connected yet).
    pub fn new(setup: SentinelSetup) -> Result<SentinelEndpoint, RedisUrlError> {
        let clients = setup
            .sentinels
            .iter()
            .map(client)
            .collect::<Result<Vec<_>, _>>()?;
        // The master's TLS files are read once here too, so a bad one fails the start.
        client(&setup.master)?;
        Ok(SentinelEndpoint {
            order: Mutex::new((0..clients.len()).collect()),
            clients,
            setup,
            master: Mutex::new(None),
            stamp: AtomicU64::new(0),
        })
    }

    /// The setup.
    pub fn setup(&self) -> &SentinelSetup {
        &self.setup
    }

    /// Asks the sentinels for the master's address.
    async fn resolve(&self, timeouts: Timeouts) -> Result<(String, u16), RedisError> {
        let order = lock(&self.order).clone();
        let mut errors = Vec::new();
        for i in order {
            let shown = match &self.setup.sentinels[i].address {
                Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
                Address::Tcp { host, port } => format!("{host}:{port}"),
                Address::Unix(path) => path.display().to_string(),
            };
            match self.ask(i, timeouts).await {
                Ok(Ok(addr)) => {
                    let mut o = lock(&self.order);
                    if let Some(pos) = o.iter().position(|&x| x == i) {
                        o.swap(0, pos);
                    }
                    return Ok(addr);
                }
                Ok(Err(why)) => errors.push(format!("{shown}: {why}")),
                Err(e) => errors.push(format!("{shown}: {e}")),
            }
        }
        Err(RedisError::from((
            ErrorKind::MasterNameNotFoundBySentinel,
            "no master found",
            format!(
                "no sentinel names a master for {:?} ({})",
                self.setup.master_name,
                errors.join("; ")
            ),
        )))
    }

    /// One sentinel's answer: the master's address, or why it gave none.
    async fn ask(
        &self,
        i: usize,
        timeouts: Timeouts,
    ) -> Result<Result<(String, u16), String>, RedisError> {
        let url = &self.setup.sentinels[i];
        let mut conn = self.clients[i]
            .get_multiplexed_async_connection_with_config(
                &Timeouts::for_url(url, timeouts).config(),
            )
            .await?;
        let reply: Result<Vec<String>, RedisError> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.setup.master_name)
            .query_async(&mut conn)
            .await;
        let fields = match reply {
            Ok(fields) => fields,
            Err(e) if e.code() == Some("ERR") => return Ok(Err(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(master_state(&fields, self.setup.min_other_sentinels))
    }

    fn display_for(&self, master: Option<&(String, u16)>) -> String {
        match master {
            Some((host, port)) => {
                let mut url = self.setup.master.clone();
                url.address = Address::Tcp {
                    host: host.clone(),
                    port: *port,
                };
                format!("{url} (sentinel master {})", self.setup.master_name)
            }
            None => format!("{} (master {})", self.setup.display, self.setup.master_name),
        }
    }
}

/// Reads a `SENTINEL MASTER` reply (a flat list of names and values) as redis-py's
/// `check_master_state` does: the address, or why this answer does not count.
fn master_state(fields: &[String], min_other_sentinels: u32) -> Result<(String, u16), String> {
    let get = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair.len() == 2 && pair[0] == name)
            .map(|pair| pair[1].as_str())
    };
    let flags = get("flags").unwrap_or("");
    let flags: Vec<&str> = flags.split(',').collect();
    if !flags.contains(&"master") || flags.contains(&"s_down") || flags.contains(&"o_down") {
        return Err(format!("the master is down (flags {})", flags.join(",")));
    }
    let others: u32 = get("num-other-sentinels")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if others < min_other_sentinels {
        return Err(format!(
            "sees {others} other sentinel(s), fewer than min_other_sentinels {min_other_sentinels}"
        ));
    }
    let ip = get("ip").ok_or("no ip in the answer")?;
    let port = get("port")
        .and_then(|p| p.parse().ok())
        .ok_or("no port in the answer")?;
    Ok((ip.to_owned(), port))
}

impl Endpoint for SentinelEndpoint {
    fn open(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<Opened, OpenError>> {
        async move {
            let (host, port) = self.resolve(timeouts).await?;
            let mut url = self.setup.master.clone();
            url.address = Address::Tcp {
                host: host.clone(),
                port,
            };
            url.scheme = if url.tls.is_some() {
                Scheme::Rediss
            } else {
                Scheme::Redis
            };
            let master = client(&url).map_err(RedisError::from)?;
            let mut conn = master
                .get_multiplexed_async_connection_with_config(&timeouts.config())
                .await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            let role = match role.first() {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => String::new(),
            };
            if role != "master" {
                return Err(RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "not the master",
                    format!(
                        "the sentinels name {host}:{port} as master {:?} but it says its role is {role:?}",
                        self.setup.master_name
                    ),
                ))
                .into());
            }
            let stamp = {
                let mut current = lock(&self.master);
                if current.as_ref() != Some(&(host.clone(), port)) {
                    if current.is_some() {
                        self.stamp.fetch_add(1, Ordering::SeqCst);
                    }
                    *current = Some((host, port));
                }
                self.stamp.load(Ordering::SeqCst)
            };
            Ok((conn, stamp))
        }
        .boxed()
    }

    fn display(&self) -> String {
        self.display_for(lock(&self.master).as_ref())
    }

    fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(master: Option<&str>) -> SentinelOptions {
        SentinelOptions {
            master_name: master.map(str::to_owned),
            ..SentinelOptions::default()
        }
    }

    fn urls(text: &str) -> Vec<String> {
        text.split(';').map(str::to_owned).collect()
    }

    #[test]
    fn reads_the_sentinels_and_the_first_urls_credentials() {
        let setup = SentinelSetup::parse(
            &urls("sentinel://:S3cret@h1:26380/3;sentinel://h2;sentinel://[::1]:0/0"),
            &options(Some("mymaster")),
            "broker_transport_options",
            None,
        )
        .expect("setup");
        let addrs: Vec<_> = setup.sentinels.iter().map(|u| u.address.clone()).collect();
        assert_eq!(
            addrs,
            vec![
                Address::Tcp {
                    host: "h1".into(),
                    port: 26380
                },
                Address::Tcp {
                    host: "h2".into(),
                    port: 26379
                },
                Address::Tcp {
                    host: "::1".into(),
                    port: 26379
                },
            ]
        );
        assert!(
            setup
                .sentinels
                .iter()
                .all(|u| u.password.is_none() && u.db == 0),
            "the URL's password and database are the master's, not the sentinels'"
        );
        assert_eq!(
            setup.master.password.as_ref().map(Password::expose),
            Some("S3cret")
        );
        assert_eq!(setup.master.db, 3);
        assert_eq!(setup.master_name, "mymaster");
        assert_eq!(
            setup.display,
            "sentinel://:**@h1:26380/3;sentinel://h2;sentinel://[::1]:0/0"
        );
        assert!(!format!("{setup:?}").contains("S3cret"));
    }

    #[test]
    fn sentinel_kwargs_give_the_sentinels_their_password() {
        let kwargs: toml::Table =
            toml::from_str("password = \"SentPw\"\nsocket_timeout = 0.5\nssl = true")
                .expect("toml");
        let setup = SentinelSetup::parse(
            &urls("sentinel://:pw@h1;sentinel://h2"),
            &SentinelOptions {
                master_name: Some("m".into()),
                min_other_sentinels: 1,
                sentinel_kwargs: Some(kwargs),
            },
            "result_backend_transport_options",
            None,
        )
        .expect("setup");
        for s in &setup.sentinels {
            assert_eq!(s.password.as_ref().map(Password::expose), Some("SentPw"));
            assert_eq!(s.socket_timeout, Some(Duration::from_millis(500)));
        }
        assert_eq!(
            setup.master.password.as_ref().map(Password::expose),
            Some("pw")
        );
        assert_eq!(setup.min_other_sentinels, 1);
        let bad: toml::Table = toml::from_str("password = 5").expect("toml");
        let e = SentinelSetup::parse(
            &urls("sentinel://h1"),
            &SentinelOptions {
                master_name: Some("m".into()),
                sentinel_kwargs: Some(bad),
                ..SentinelOptions::default()
            },
            "broker_transport_options",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("sentinel_kwargs: password"), "{e}");
    }

    #[test]
    fn master_name_is_required() {
        let e = SentinelSetup::parse(
            &urls("sentinel://:S3cret@h1"),
            &options(None),
            "broker_transport_options",
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SentinelError::NoMasterName {
                setting: "broker_transport_options"
            }
        );
        assert!(e.to_string().contains("master_name"), "{e}");
        assert!(
            SentinelSetup::parse(&urls("sentinel://h1"), &options(Some("")), "x", None).is_err()
        );
    }

    #[test]
    fn bad_urls_are_named_by_place_without_their_text() {
        let e = SentinelSetup::parse(
            &urls("sentinel://h1;redis://:S3cret@h2"),
            &options(Some("m")),
            "broker_transport_options",
            None,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("sentinel URL #2"), "{text}");
        assert!(!text.contains("S3cret"), "{text}");
        assert!(parse_sentinel_url("sentinel://h:99999").is_err());
    }

    #[test]
    fn reads_master_states_as_redis_py_checks_them() {
        let state = |flags: &str, others: &str| -> Vec<String> {
            [
                "name",
                "mymaster",
                "ip",
                "127.0.0.1",
                "port",
                "6451",
                "flags",
                flags,
                "num-other-sentinels",
                others,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        assert_eq!(
            master_state(&state("master", "2"), 2),
            Ok(("127.0.0.1".to_owned(), 6451))
        );
        assert!(master_state(&state("master,s_down", "2"), 0).is_err());
        assert!(master_state(&state("master,s_down,o_down", "2"), 0).is_err());
        assert!(master_state(&state("master", "1"), 2).is_err());
        assert!(master_state(&[], 0).is_err());
    }
}
