//! Reading `sentinel://` URL lists and the Sentinel transport options.

use std::time::Duration;

use crate::redis_client::url::{Address, Password, RedisUrl, RedisUrlError, TlsOptions};
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
        let differs = |u: &RedisUrl| {
            (u.password.is_some() && u.password != first.password)
                || (u.username.is_some() && u.username != first.username)
        };
        if parsed.iter().skip(1).any(differs) {
            tracing::warn!(
                "{setting}: the sentinel URLs give different users or passwords: the first \
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
            display: crate::redis_client::mask_url_list(&urls.join(";")),
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
}
