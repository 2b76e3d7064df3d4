//! Redis URLs read the way kombu's Redis transport and Celery's Redis result backend read
//! them (kombu 5.5 `kombu.utils.url.url_to_parts`, the transport's `_connparams`, Celery 5.5
//! `RedisBackend._params_from_url`).
//!
//! The text is split with Python's `urllib.parse` rules: the authority ends at the first `/`,
//! `?` or `#`; the user info is everything before the *last* `@` of the authority, the user
//! name what precedes its first `:`; user, password, host and path are percent-decoded; the
//! query is read like `parse_qsl` (`&`-separated, `+` is a space, empty values dropped, the
//! last of a repeated key wins). Query options override what the URL's other parts say, as in
//! Celery's backend. Errors never quote any part of the URL: it may hold a password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// The port a TCP URL without one uses.
pub const DEFAULT_PORT: u16 = 6379;

/// The host a TCP URL without one reaches (kombu's default).
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// Why a Redis URL cannot be used. No variant carries any text of the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    /// No `scheme://` at the start.
    #[error("not a URL: expected redis://, rediss://, redis+socket://, socket:// or unix://")]
    NoScheme,
    /// A scheme rcelery's Redis client does not read.
    #[error("unsupported scheme {0:?}: expected redis://, rediss://, redis+socket://, socket:// or unix://")]
    UnsupportedScheme(String),
    /// The port is not a number from 0 to 65535. Often a password with a raw `/`, `?` or `#`,
    /// which ends the host part: kombu fails on such a URL too.
    #[error(
        "the port is not a number from 0 to 65535 (a password containing / ? # @ must be \
         percent-encoded: %2F %3F %23 %40)"
    )]
    BadPort,
    /// Unbalanced `[` / `]` around an IPv6 address.
    #[error("invalid IPv6 address (brackets do not match)")]
    BadIpv6,
    /// The database (path, `?db=` or `?virtual_host=`) is not a non-negative integer.
    #[error("the database is not a non-negative integer (a password containing / ? # @ must be percent-encoded)")]
    BadDb,
    /// A socket URL without a path.
    #[error("a socket URL needs the socket's path, e.g. redis+socket:///run/redis.sock")]
    MissingSocketPath,
    /// A socket URL that names a host.
    #[error("a socket URL takes no host: write redis+socket:///absolute/path/to/redis.sock")]
    SocketWithHost,
    /// A timeout option that is not a positive number of seconds.
    #[error("{0} is not a positive number of seconds")]
    BadTimeout(&'static str),
    /// `ssl_cert_reqs` with a value kombu does not know.
    #[error("ssl_cert_reqs must be required, optional or none (or CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE)")]
    BadCertReqs,
    /// `ssl_*` options on a socket URL.
    #[error("ssl_* options need a rediss:// URL")]
    TlsOnSocket,
    /// Celery's result backend wants `ssl_*` options only with `rediss://`.
    #[error("ssl_* options are given (in the URL or in redis_backend_use_ssl) but the scheme is redis://: a TLS result backend URL starts with rediss://")]
    BackendTlsWithoutRediss,
    /// Celery's result backend wants `ssl_cert_reqs` for every TLS connection.
    #[error("a TLS result backend needs ssl_cert_reqs (required, optional or none) in its URL or in redis_backend_use_ssl, as Celery's does")]
    BackendWithoutCertReqs,
    /// A TLS file named by the URL cannot be used.
    #[error("{option} {path}: {reason}")]
    TlsFile {
        /// `ssl_ca_certs`, `ssl_certfile` or `ssl_keyfile`.
        option: &'static str,
        /// The file's path as given.
        path: String,
        /// What went wrong reading or parsing it.
        reason: String,
    },
    /// `ssl_keyfile` without `ssl_certfile`.
    #[error("ssl_keyfile is given without ssl_certfile")]
    KeyWithoutCert,
    /// The redis crate refused the TLS settings.
    #[error("TLS settings: {0}")]
    Tls(String),
}

impl From<RedisUrlError> for redis::RedisError {
    fn from(e: RedisUrlError) -> Self {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "invalid Redis URL",
            e.to_string(),
        ))
    }
}

/// The URL's scheme, as written (lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `redis://`: TCP (TLS too when `ssl_*` options are given, as kombu does).
    Redis,
    /// `rediss://`: TCP with TLS.
    Rediss,
    /// `redis+socket://`: a Unix socket (kombu's spelling).
    RedisSocket,
    /// `socket://`: a Unix socket.
    Socket,
    /// `unix://`: a Unix socket (redis-py's spelling).
    Unix,
}

impl Scheme {
    fn from_text(lower: &str) -> Option<Scheme> {
        Some(match lower {
            "redis" => Scheme::Redis,
            "rediss" => Scheme::Rediss,
            "redis+socket" => Scheme::RedisSocket,
            "socket" => Scheme::Socket,
            "unix" => Scheme::Unix,
            _ => return None,
        })
    }

    /// The scheme as written in a URL, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Redis => "redis",
            Scheme::Rediss => "rediss",
            Scheme::RedisSocket => "redis+socket",
            Scheme::Socket => "socket",
            Scheme::Unix => "unix",
        }
    }

    /// True for the Unix-socket schemes.
    pub fn is_socket(self) -> bool {
        matches!(self, Scheme::RedisSocket | Scheme::Socket | Scheme::Unix)
    }
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP host (name or address, IPv6 without brackets) and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket's path.
    Unix(PathBuf),
}

/// A password. Its `Debug` never shows it; [`Password::expose`] gives it to the client.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself, for the server's `AUTH`. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(**)")
    }
}

/// kombu's `ssl_cert_reqs`: how the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertReqs {
    /// `required` / `CERT_REQUIRED`: verified against the CA.
    Required,
    /// `optional` / `CERT_OPTIONAL`: for a client the same as required (a TLS server always
    /// presents a certificate), as in Python's `ssl`.
    Optional,
    /// `none` / `CERT_NONE`: not checked at all.
    None,
}

impl CertReqs {
    /// Reads kombu's spellings: `required`, `optional`, `none` or Python's `CERT_*` names.
    pub fn parse(value: &str) -> Result<CertReqs, RedisUrlError> {
        match value.to_ascii_lowercase().as_str() {
            "required" | "cert_required" => Ok(CertReqs::Required),
            "optional" | "cert_optional" => Ok(CertReqs::Optional),
            "none" | "cert_none" => Ok(CertReqs::None),
            _ => Err(RedisUrlError::BadCertReqs),
        }
    }
}

/// TLS settings from the `ssl_*` query options (the keys of Celery's `broker_use_ssl` /
/// `redis_backend_use_ssl`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `ssl_cert_reqs`, when given.
    pub cert_reqs: Option<CertReqs>,
    /// `ssl_ca_certs`: PEM file of the CAs to trust (default: the system's).
    pub ca_certs: Option<PathBuf>,
    /// `ssl_certfile`: PEM client certificate (chain), for servers that check clients.
    pub certfile: Option<PathBuf>,
    /// `ssl_keyfile`: PEM private key of the client certificate (default: read from
    /// `ssl_certfile`, as Python's `load_cert_chain` does).
    pub keyfile: Option<PathBuf>,
    /// `ssl_check_hostname`: also check that the certificate names the host. Off unless
    /// given, as in redis-py 5 (the chain is verified either way unless `ssl_cert_reqs=none`).
    pub check_hostname: bool,
}

impl TlsOptions {
    /// The check that applies: `ssl_cert_reqs` when given; else, as kombu does, none when no
    /// `ssl_*` option at all was given (kombu warns "defaulting to insecure SSL behaviour"),
    /// and required (redis-py's default) when some other `ssl_*` option was.
    pub fn effective_cert_reqs(&self) -> CertReqs {
        match self.cert_reqs {
            Some(reqs) => reqs,
            None if self.ca_certs.is_none()
                && self.certfile.is_none()
                && self.keyfile.is_none() =>
            {
                CertReqs::None
            }
            None => CertReqs::Required,
        }
    }

    /// True when the server's certificate is not checked at all.
    pub fn is_insecure(&self) -> bool {
        self.effective_cert_reqs() == CertReqs::None
    }

    /// These options (a URL's own) over `setting` (Celery's `broker_use_ssl` /
    /// `redis_backend_use_ssl`): each option the URL gives wins and the setting fills in the
    /// rest, as Celery's backend merges its connection parameters.
    pub fn over(self, setting: &TlsOptions) -> TlsOptions {
        TlsOptions {
            cert_reqs: self.cert_reqs.or(setting.cert_reqs),
            ca_certs: self.ca_certs.or_else(|| setting.ca_certs.clone()),
            certfile: self.certfile.or_else(|| setting.certfile.clone()),
            keyfile: self.keyfile.or_else(|| setting.keyfile.clone()),
            check_hostname: self.check_hostname || setting.check_hostname,
        }
    }
}

/// A parsed broker or result-backend URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisUrl {
    /// The scheme written.
    pub scheme: Scheme,
    /// Where the server is.
    pub address: Address,
    /// ACL user name (user info or `?username=`).
    pub username: Option<String>,
    /// Password (user info or `?password=`, which wins).
    pub password: Option<Password>,
    /// Database number (path `/N` for TCP; `?virtual_host=N` for sockets; `?db=N` wins).
    pub db: i64,
    /// `socket_timeout`: seconds to wait for a reply.
    pub socket_timeout: Option<Duration>,
    /// `socket_connect_timeout`: seconds to wait for the connection (default: the
    /// `socket_timeout`, as in redis-py).
    pub socket_connect_timeout: Option<Duration>,
    /// TLS, for `rediss://` (and for `redis://` with `ssl_*` options, as kombu does).
    pub tls: Option<TlsOptions>,
    /// Query options read and ignored (names only; values are never kept for display).
    pub ignored_options: Vec<String>,
}

impl RedisUrl {
    /// Parses `text` as kombu and Celery read a Redis URL (see the module documentation).
    pub fn parse(text: &str) -> Result<RedisUrl, RedisUrlError> {
        // urllib drops tabs and newlines anywhere, and surrounding blanks.
        let cleaned: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        let (scheme_text, rest) = cleaned.split_once("://").ok_or(RedisUrlError::NoScheme)?;
        if !is_scheme(scheme_text) {
            return Err(RedisUrlError::NoScheme);
        }
        let lower = scheme_text.to_ascii_lowercase();
        let scheme = Scheme::from_text(&lower).ok_or(RedisUrlError::UnsupportedScheme(lower))?;
        let parts = Parts::split(rest)?;
        let mut query = parts.query;

        let mut username = parts.username;
        let mut password = parts.password;
        if let Some(u) = take(&mut query, "username") {
            username = Some(u);
        }
        if let Some(p) = take(&mut query, "password") {
            password = Some(p);
        }

        let query_db = take(&mut query, "db").map(|d| parse_db(&d)).transpose()?;
        let virtual_host = take(&mut query, "virtual_host");
        let mut ignored_options = Vec::new();
        let (address, path_db) = if scheme.is_socket() {
            if !parts.host.is_empty() && parts.host != "localhost" {
                return Err(RedisUrlError::SocketWithHost);
            }
            let path = parts
                .path
                .filter(|p| !p.is_empty())
                .ok_or(RedisUrlError::MissingSocketPath)?;
            let db = virtual_host.map(|v| parse_db(&v)).transpose()?;
            (Address::Unix(PathBuf::from(format!("/{path}"))), db)
        } else {
            if virtual_host.is_some() {
                // Celery's backend reads a TCP URL's database from its path only.
                ignored_options.push("virtual_host".to_owned());
            }
            let host = if parts.host.is_empty() {
                DEFAULT_HOST.to_owned()
            } else {
                parts.host
            };
            let port = parts.port.filter(|p| *p != 0).unwrap_or(DEFAULT_PORT);
            let db = parts.path.as_deref().map(parse_db).transpose()?;
            (Address::Tcp { host, port }, db)
        };
        let db = query_db.or(path_db).unwrap_or(0);

        let socket_timeout = take(&mut query, "socket_timeout")
            .map(|v| parse_seconds(&v, "socket_timeout"))
            .transpose()?;
        let socket_connect_timeout = take(&mut query, "socket_connect_timeout")
            .map(|v| parse_seconds(&v, "socket_connect_timeout"))
            .transpose()?;

        let tls = tls_options(scheme, &mut query)?;

        ignored_options.extend(query.into_iter().map(|(k, _)| k));
        ignored_options.sort();
        ignored_options.dedup();
        Ok(RedisUrl {
            scheme,
            address,
            username: username.filter(|u| !u.is_empty()),
            password: password.filter(|p| !p.is_empty()).map(Password),
            db,
            socket_timeout,
            socket_connect_timeout,
            tls,
            ignored_options,
        })
    }

    /// Applies Celery's `broker_use_ssl` / `redis_backend_use_ssl` table: TLS is on (for a
    /// `redis://` URL too, as kombu and Celery's backend turn it on for such a table), with
    /// the URL's own `ssl_*` options winning over the setting's.
    pub fn with_use_ssl(mut self, setting: Option<&TlsOptions>) -> Result<RedisUrl, RedisUrlError> {
        let Some(setting) = setting else {
            return Ok(self);
        };
        if self.scheme.is_socket() {
            return Err(RedisUrlError::TlsOnSocket);
        }
        self.tls = Some(match self.tls.take() {
            Some(own) => own.over(setting),
            None => setting.clone(),
        });
        Ok(self)
    }

    /// Celery's result backend is stricter than kombu's transport: `ssl_*` options (in the
    /// URL or in `redis_backend_use_ssl`, which `use_ssl` is) need `rediss://`, and TLS
    /// needs `ssl_cert_reqs` in one of them.
    pub fn check_backend_rules(&self, use_ssl: Option<&TlsOptions>) -> Result<(), RedisUrlError> {
        if (self.tls.is_some() || use_ssl.is_some()) && self.scheme == Scheme::Redis {
            return Err(RedisUrlError::BackendTlsWithoutRediss);
        }
        let merged = self.clone().with_use_ssl(use_ssl)?;
        match &merged.tls {
            Some(tls) if tls.cert_reqs.is_none() => Err(RedisUrlError::BackendWithoutCertReqs),
            _ => Ok(()),
        }
    }

    /// True when two URLs reach the same server as the same user (the database may differ).
    /// Hosts are compared as written: `localhost` and `127.0.0.1` count as different.
    pub fn same_server(&self, other: &RedisUrl) -> bool {
        self.address == other.address
            && self.tls.is_some() == other.tls.is_some()
            && self.username == other.username
            && self.password == other.password
    }

    /// Things an operator should hear about once at startup: ignored options, unchecked TLS.
    /// They never contain the password.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.ignored_options.is_empty() {
            let hint = if self.ignored_options.iter().any(|o| o == "virtual_host") {
                " (a TCP URL's database is its path /N or ?db=N, as Celery's result backend reads it)"
            } else {
                ""
            };
            out.push(format!(
                "URL options with no effect in rcelery, ignored: {}{hint}",
                self.ignored_options.join(", ")
            ));
        }
        if let Some(tls) = &self.tls {
            match tls.cert_reqs {
                None if tls.is_insecure() => out.push(
                    "rediss:// URL with no ssl_* options: the server's certificate is not checked, as kombu does \
                     (add ssl_cert_reqs=required&ssl_ca_certs=/path/to/ca.pem)"
                        .to_owned(),
                ),
                Some(CertReqs::None) => {
                    out.push("ssl_cert_reqs=none: the server's certificate is not checked".to_owned())
                }
                Some(CertReqs::Optional) => out.push(
                    "ssl_cert_reqs=optional: the server's certificate is checked as with required".to_owned(),
                ),
                _ => {}
            }
        }
        out
    }
}

/// The URL without its password, in kombu's `as_uri` layout (`redis://user:**@host:6379/0`).
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match (&self.username, &self.password) {
            (Some(u), Some(_)) => write!(f, "{}:**@", encode(u))?,
            (None, Some(_)) => f.write_str(":**@")?,
            (Some(u), None) => write!(f, "{}@", encode(u))?,
            (None, None) => {}
        }
        match &self.address {
            Address::Tcp { host, port } if host.contains(':') => {
                write!(f, "[{host}]:{port}/{}", self.db)
            }
            Address::Tcp { host, port } => write!(f, "{host}:{port}/{}", self.db),
            Address::Unix(path) => write!(f, "{}?virtual_host={}", path.display(), self.db),
        }
    }
}

/// The pieces of `rest` (the URL after `scheme://`), split and decoded like urllib + kombu.
struct Parts {
    username: Option<String>,
    password: Option<String>,
    /// Lower-cased and percent-decoded; empty when none.
    host: String,
    port: Option<u16>,
    /// Decoded, without its leading `/`; `None` when empty.
    path: Option<String>,
    /// `(key, value)` pairs, last one of a key kept.
    query: Vec<(String, String)>,
}

impl Parts {
    fn split(rest: &str) -> Result<Parts, RedisUrlError> {
        let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (netloc, after) = rest.split_at(netloc_end);
        let after = after.split('#').next().unwrap_or("");
        let (path, query) = after.split_once('?').unwrap_or((after, ""));

        let (userinfo, hostinfo) = match netloc.rfind('@') {
            Some(i) => (Some(&netloc[..i]), &netloc[i + 1..]),
            None => (None, netloc),
        };
        let (username, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (Some(unquote(u)), Some(unquote(p))),
                None => (Some(unquote(info)), None),
            },
            None => (None, None),
        };
        if hostinfo.contains('[') != hostinfo.contains(']') {
            return Err(RedisUrlError::BadIpv6);
        }
        let (host, port_text) = match hostinfo.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or(RedisUrlError::BadIpv6)?;
                (host, after.split_once(':').map_or("", |(_, p)| p))
            }
            None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
        };
        let port = match port_text {
            "" => None,
            p if p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u16>().map_err(|_| RedisUrlError::BadPort)?)
            }
            _ => return Err(RedisUrlError::BadPort),
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        Ok(Parts {
            username,
            password,
            host: unquote(&host.to_lowercase()),
            port,
            path: Some(unquote(path)).filter(|p| !p.is_empty()),
            query: parse_qsl(query),
        })
    }
}

/// A valid URL scheme: a letter, then letters, digits, `+`, `-` or `.`.
pub(crate) fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Python's `unquote`: `%XX` decoded, invalid sequences kept, bad UTF-8 replaced.
fn unquote(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Python's `parse_qsl(query)` folded into a dict: the last value of a key wins.
fn parse_qsl(query: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in query.split('&') {
        let Some((k, v)) = piece.split_once('=') else {
            continue;
        };
        if v.is_empty() {
            continue;
        }
        let key = unquote(&k.replace('+', " "));
        let value = unquote(&v.replace('+', " "));
        out.retain(|(existing, _)| *existing != key);
        out.push((key, value));
    }
    out
}

fn take(query: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let i = query.iter().position(|(k, _)| k == key)?;
    Some(query.remove(i).1)
}

/// A database number; `/` around it is allowed, as Celery strips it.
fn parse_db(text: &str) -> Result<i64, RedisUrlError> {
    let t = text.trim().trim_matches('/');
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<i64>()
        .ok()
        .filter(|d| *d >= 0)
        .ok_or(RedisUrlError::BadDb)
}

fn parse_seconds(text: &str, option: &'static str) -> Result<Duration, RedisUrlError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or(RedisUrlError::BadTimeout(option))
}

/// redis-py's `to_bool`, which kombu's `ssl_check_hostname` follows: false for `0`, `f`,
/// `false`, `n`, `no` (any case), true otherwise.
fn to_bool(text: &str) -> bool {
    !matches!(
        text.to_ascii_lowercase().as_str(),
        "0" | "f" | "false" | "n" | "no"
    )
}

fn tls_options(
    scheme: Scheme,
    query: &mut Vec<(String, String)>,
) -> Result<Option<TlsOptions>, RedisUrlError> {
    let cert_reqs = take(query, "ssl_cert_reqs")
        .map(|v| CertReqs::parse(&v))
        .transpose()?;
    let ca_certs = take(query, "ssl_ca_certs").map(PathBuf::from);
    let certfile = take(query, "ssl_certfile").map(PathBuf::from);
    let keyfile = take(query, "ssl_keyfile").map(PathBuf::from);
    let check_hostname = take(query, "ssl_check_hostname");
    let any = cert_reqs.is_some()
        || ca_certs.is_some()
        || certfile.is_some()
        || keyfile.is_some()
        || check_hostname.is_some();
    if scheme.is_socket() {
        return if any {
            Err(RedisUrlError::TlsOnSocket)
        } else {
            Ok(None)
        };
    }
    if scheme == Scheme::Redis && !any {
        return Ok(None);
    }
    Ok(Some(TlsOptions {
        cert_reqs,
        ca_certs,
        certfile,
        keyfile,
        check_hostname: check_hostname.as_deref().is_some_and(to_bool),
    }))
}

/// Percent-encodes a user name for display.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    fn pw(u: &RedisUrl) -> Option<&str> {
        u.password.as_ref().map(Password::expose)
    }

    #[test]
    fn reads_host_port_db_and_user_info() {
        let u = parse("redis://:123456@localhost:6390/3");
        assert_eq!(
            (u.scheme, &u.address, u.db),
            (Scheme::Redis, &tcp("localhost", 6390), 3)
        );
        assert_eq!((u.username.as_deref(), pw(&u)), (None, Some("123456")));
        let u = parse("redis://user:p:w@Host.Example/0");
        assert_eq!((u.username.as_deref(), pw(&u)), (Some("user"), Some("p:w")));
        assert_eq!(
            u.address,
            tcp("host.example", 6379),
            "host lower-cased, default port"
        );
        let u = parse("redis://user@h/1");
        assert_eq!(
            (u.username.as_deref(), pw(&u), u.db),
            (Some("user"), None, 1)
        );
    }

    #[test]
    fn defaults_like_kombu() {
        let u = parse("redis://");
        assert_eq!(
            (&u.address, u.db, u.tls.is_none()),
            (&tcp(DEFAULT_HOST, 6379), 0, true)
        );
        assert_eq!(parse("redis://h//").db, 0);
        assert_eq!(parse("redis://h/").db, 0);
        assert_eq!(
            parse("redis://h/5/").db,
            5,
            "slashes stripped as Celery's backend does"
        );
        assert_eq!(
            parse("redis://h:0/0").address,
            tcp("h", 6379),
            "port 0 is kombu's default port"
        );
        assert_eq!(parse("REDIS://h:1/2").scheme, Scheme::Redis);
        assert_eq!(parse("  redis://h:1/2\n").address, tcp("h", 1));
    }

    #[test]
    fn percent_decodes_like_python_unquote() {
        let u = parse("redis://us%40er:p%2Fa%23s%3Fs%40%25@h/0");
        assert_eq!(
            (u.username.as_deref(), pw(&u)),
            (Some("us@er"), Some("p/a#s?s@%"))
        );
        assert_eq!(
            pw(&parse("redis://:100%zz@h/0")),
            Some("100%zz"),
            "invalid escapes kept"
        );
        assert_eq!(pw(&parse("redis://:%C3%A9t%C3%A9@h/0")), Some("été"));
    }

    #[test]
    fn a_raw_at_sign_belongs_to_the_password() {
        // urllib splits the user info at the last '@' of the authority.
        let u = parse("redis://:p@ss@h:1/0");
        assert_eq!((pw(&u), &u.address), (Some("p@ss"), &tcp("h", 1)));
    }

    #[test]
    fn a_raw_slash_or_hash_in_the_password_is_an_error_that_quotes_nothing() {
        for url in [
            "redis://:ab/cd#S3cret@127.0.0.1:6392/0",
            "redis://:S3cret#x@h/0",
            "redis://:S3?cret@h/0",
        ] {
            let e = RedisUrl::parse(url).expect_err(url);
            assert_eq!(e, RedisUrlError::BadPort, "{url}");
            let text = e.to_string();
            assert!(!text.contains("S3") && !text.contains("ab"), "{text}");
        }
        assert_eq!(
            RedisUrl::parse("redis://h/se/cret@x").unwrap_err(),
            RedisUrlError::BadDb
        );
    }

    #[test]
    fn query_options_override_the_user_info_and_path() {
        let u = parse("redis://:old@h/1?password=n%26w+pw&db=4");
        assert_eq!((pw(&u), u.db), (Some("n&w pw"), 4));
        let u = parse("redis://h:6390/2?password=S3cret");
        assert_eq!(
            (pw(&u), u.db, u.username.as_deref()),
            (Some("S3cret"), 2, None)
        );
        let u = parse("redis://h/0?username=alice&password=x");
        assert_eq!((u.username.as_deref(), pw(&u)), (Some("alice"), Some("x")));
        assert_eq!(
            pw(&parse("redis://:a@h/0?password=")),
            Some("a"),
            "empty values are dropped"
        );
        assert_eq!(
            pw(&parse("redis://h/0?password=a&password=b")),
            Some("b"),
            "the last one wins"
        );
    }

    #[test]
    fn virtual_host_is_the_database_of_socket_urls_only() {
        let u = parse("redis+socket:///tmp/r.sock?virtual_host=2");
        assert_eq!(
            (u.scheme, &u.address, u.db),
            (Scheme::RedisSocket, &Address::Unix("/tmp/r.sock".into()), 2)
        );
        assert_eq!(parse("socket:///tmp/r.sock?virtual_host=/3").db, 3);
        assert_eq!(parse("unix:///tmp/r.sock?db=2").db, 2);
        assert_eq!(
            parse("unix:///tmp/r.sock?db=2&virtual_host=5").db,
            2,
            "db wins"
        );
        let u = parse("redis+socket://:pw@/var/run/redis%20x.sock");
        assert_eq!(
            (pw(&u), &u.address),
            (Some("pw"), &Address::Unix("/var/run/redis x.sock".into()))
        );
        let u = parse("redis://h?virtual_host=3");
        assert_eq!(
            (u.db, u.ignored_options.clone()),
            (0, vec!["virtual_host".to_owned()])
        );
        assert!(u.warnings()[0].contains("virtual_host"));
    }

    #[test]
    fn socket_urls_need_a_path_and_no_host() {
        assert_eq!(
            RedisUrl::parse("redis+socket://").unwrap_err(),
            RedisUrlError::MissingSocketPath
        );
        assert_eq!(
            RedisUrl::parse("socket://host/tmp/r.sock").unwrap_err(),
            RedisUrlError::SocketWithHost
        );
        assert_eq!(
            parse("unix://localhost/tmp/r.sock").address,
            Address::Unix("/tmp/r.sock".into())
        );
        assert_eq!(
            RedisUrl::parse("redis+socket:///tmp/r.sock?ssl_cert_reqs=none").unwrap_err(),
            RedisUrlError::TlsOnSocket
        );
    }

    #[test]
    fn reads_timeouts() {
        let u = parse("redis://h/0?socket_timeout=2.5&socket_connect_timeout=1");
        assert_eq!(u.socket_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(u.socket_connect_timeout, Some(Duration::from_secs(1)));
        for bad in ["0", "-1", "abc", "inf", "nan"] {
            let e = RedisUrl::parse(&format!("redis://h/0?socket_timeout={bad}")).unwrap_err();
            assert_eq!(e, RedisUrlError::BadTimeout("socket_timeout"), "{bad}");
        }
    }

    #[test]
    fn reads_tls_options() {
        let u = parse("rediss://h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=%2Fetc%2Fca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem");
        let tls = u.tls.expect("tls");
        assert_eq!(tls.cert_reqs, Some(CertReqs::Required));
        assert_eq!(
            tls.ca_certs.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(
            tls.certfile.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        assert_eq!(tls.keyfile.as_deref(), Some(std::path::Path::new("/k.pem")));
        assert!(!tls.check_hostname, "off by default, as in redis-py 5");
        for (text, reqs) in [
            ("CERT_REQUIRED", CertReqs::Required),
            ("optional", CertReqs::Optional),
            ("CERT_OPTIONAL", CertReqs::Optional),
            ("none", CertReqs::None),
            ("CERT_NONE", CertReqs::None),
        ] {
            let tls = parse(&format!("rediss://h/0?ssl_cert_reqs={text}"))
                .tls
                .expect("tls");
            assert_eq!(tls.effective_cert_reqs(), reqs, "{text}");
        }
        assert_eq!(
            RedisUrl::parse("rediss://h/0?ssl_cert_reqs=maybe").unwrap_err(),
            RedisUrlError::BadCertReqs
        );
        assert!(
            parse("rediss://h/0?ssl_check_hostname=true")
                .tls
                .expect("tls")
                .check_hostname
        );
        assert!(
            !parse("rediss://h/0?ssl_check_hostname=False")
                .tls
                .expect("tls")
                .check_hostname
        );
    }

    #[test]
    fn tls_defaults_follow_kombu() {
        let bare = parse("rediss://h/0").tls.expect("tls");
        assert!(
            bare.is_insecure(),
            "kombu: rediss with no ssl options is CERT_NONE"
        );
        assert!(parse("rediss://h/0")
            .warnings()
            .iter()
            .any(|w| w.contains("not checked")));
        let ca_only = parse("rediss://h/0?ssl_ca_certs=/ca.pem").tls.expect("tls");
        assert_eq!(
            ca_only.effective_cert_reqs(),
            CertReqs::Required,
            "redis-py's default"
        );
        let plain_with_ssl = parse("redis://h/0?ssl_cert_reqs=required");
        assert!(
            plain_with_ssl.tls.is_some(),
            "kombu turns TLS on for ssl_* options"
        );
        assert_eq!(
            plain_with_ssl.check_backend_rules(None),
            Err(RedisUrlError::BackendTlsWithoutRediss)
        );
        assert_eq!(
            parse("rediss://h/0").check_backend_rules(None),
            Err(RedisUrlError::BackendWithoutCertReqs)
        );
        assert_eq!(
            parse("rediss://h/0?ssl_cert_reqs=none").check_backend_rules(None),
            Ok(())
        );
        assert_eq!(parse("redis://h/0").check_backend_rules(None), Ok(()));
    }

    #[test]
    fn a_use_ssl_setting_turns_tls_on_and_the_url_options_win() {
        let setting = TlsOptions {
            cert_reqs: Some(CertReqs::None),
            ca_certs: Some(PathBuf::from("/setting-ca.pem")),
            ..TlsOptions::default()
        };
        // Celery's backend: a rediss:// URL without ssl_cert_reqs is fine when the setting
        // gives it; a redis:// URL with the setting is refused.
        assert_eq!(
            parse("rediss://h/0").check_backend_rules(Some(&setting)),
            Ok(())
        );
        assert_eq!(
            parse("redis://h/0").check_backend_rules(Some(&setting)),
            Err(RedisUrlError::BackendTlsWithoutRediss)
        );
        assert_eq!(
            parse("rediss://h/0").check_backend_rules(Some(&TlsOptions::default())),
            Err(RedisUrlError::BackendWithoutCertReqs)
        );
        // kombu's transport: a redis:// URL with the setting speaks TLS.
        let plain = parse("redis://h/0")
            .with_use_ssl(Some(&setting))
            .expect("applies");
        assert_eq!(plain.tls, Some(setting.clone()));
        let own = parse("rediss://h/0?ssl_cert_reqs=required&ssl_certfile=/c.pem")
            .with_use_ssl(Some(&setting))
            .expect("applies")
            .tls
            .expect("tls");
        assert_eq!(
            own.cert_reqs,
            Some(CertReqs::Required),
            "the URL's own option wins"
        );
        assert_eq!(
            own.ca_certs,
            Some(PathBuf::from("/setting-ca.pem")),
            "filled in"
        );
        assert_eq!(own.certfile, Some(PathBuf::from("/c.pem")));
        assert_eq!(
            parse("redis://h/0").with_use_ssl(None).expect("no-op").tls,
            None
        );
        assert_eq!(
            parse("redis+socket:///tmp/r.sock")
                .with_use_ssl(Some(&setting))
                .unwrap_err(),
            RedisUrlError::TlsOnSocket
        );
    }

    #[test]
    fn ignored_options_are_named_without_values() {
        let u = parse("redis://h/0?health_check_interval=10&max_connections=5&foo=secretvalue");
        assert_eq!(
            u.ignored_options,
            vec!["foo", "health_check_interval", "max_connections"]
        );
        let w = u.warnings().join("\n");
        assert!(w.contains("foo") && !w.contains("secretvalue"), "{w}");
    }

    #[test]
    fn reads_ipv6_hosts() {
        assert_eq!(parse("redis://[::1]:6390/0").address, tcp("::1", 6390));
        assert_eq!(
            parse("redis://:pw@[fe80::1]/0").address,
            tcp("fe80::1", 6379)
        );
        assert_eq!(
            RedisUrl::parse("redis://[::1/0").unwrap_err(),
            RedisUrlError::BadIpv6
        );
    }

    #[test]
    fn rejects_what_is_not_a_redis_url() {
        assert_eq!(
            RedisUrl::parse("localhost:6379").unwrap_err(),
            RedisUrlError::NoScheme
        );
        assert_eq!(
            RedisUrl::parse(":pw@x://h").unwrap_err(),
            RedisUrlError::NoScheme
        );
        assert_eq!(
            RedisUrl::parse("amqp://h//").unwrap_err(),
            RedisUrlError::UnsupportedScheme("amqp".into())
        );
        assert_eq!(
            RedisUrl::parse("redis://h:99999/0").unwrap_err(),
            RedisUrlError::BadPort
        );
        assert_eq!(
            RedisUrl::parse("redis://h/x").unwrap_err(),
            RedisUrlError::BadDb
        );
        assert_eq!(
            RedisUrl::parse("redis://h/-1").unwrap_err(),
            RedisUrlError::BadDb
        );
    }

    #[test]
    fn display_and_debug_never_show_the_password() {
        let u = parse("redis://alice:S3cret@h:1/2");
        assert_eq!(u.to_string(), "redis://alice:**@h:1/2");
        assert!(!format!("{u:?}").contains("S3cret"));
        assert_eq!(
            parse("redis://h/0?password=S3cret").to_string(),
            "redis://:**@h:6379/0"
        );
        assert_eq!(
            parse("redis+socket:///tmp/r.sock?virtual_host=2").to_string(),
            "redis+socket:///tmp/r.sock?virtual_host=2"
        );
        assert_eq!(parse("redis://[::1]/0").to_string(), "redis://[::1]:6379/0");
    }

    #[test]
    fn same_server_compares_address_user_and_password() {
        let a = parse("redis://:pw@localhost:6379/3");
        assert!(a.same_server(&parse("redis://:pw@localhost:6379/4")));
        assert!(a.same_server(&parse("redis://localhost:6379/4?password=pw")));
        assert!(!a.same_server(&parse("redis://:other@localhost:6379/3")));
        assert!(!a.same_server(&parse("redis://:pw@127.0.0.1:6379/3")));
        assert!(!a.same_server(&parse("rediss://:pw@localhost:6379/3?ssl_cert_reqs=none")));
    }
}
