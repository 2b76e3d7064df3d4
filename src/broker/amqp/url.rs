//! Reading an AMQP broker URL as kombu reads it: `amqp://`, `pyamqp://` (the same transport
//! by its kombu name) and `amqps://` (TLS), `user:password@host:port/vhost`, with kombu's
//! defaults (`guest`/`guest`, `localhost`, 5672 or 5671 with TLS, virtual host `/`).

use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use percent_encoding::percent_decode_str;

/// An AMQP URL, read.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpUrl {
    /// Whether TLS is on (`amqps://`, or `?ssl=true`).
    pub tls: bool,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Virtual host (`/` when the URL names none, as kombu's `amqp://host//` and
    /// `amqp://host/` both mean).
    pub vhost: String,
    /// `?heartbeat=` seconds, when given (wins over `broker_heartbeat`).
    pub heartbeat: Option<u16>,
}

impl AmqpUrl {
    /// Reads `url`; the error says what is wrong (never with the password).
    pub fn parse(url: &str) -> Result<AmqpUrl, String> {
        let url = url.trim();
        // kombu accepts several URLs separated by `;` for fail-over; rcelery takes the first.
        let url = url.split(';').next().unwrap_or(url).trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "not a URL (no scheme://)".to_owned())?;
        let mut tls = match scheme.to_ascii_lowercase().as_str() {
            "amqp" | "pyamqp" => false,
            "amqps" => true,
            other => return Err(format!("scheme {other:?} is not AMQP")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (decode(n), decode(p)),
                None => (decode(u), String::new()),
            },
            None => (String::new(), String::new()),
        };
        let (host, port) = split_host_port(hostport)?;
        let mut heartbeat = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "heartbeat" => {
                    let secs: f64 = v
                        .parse()
                        .map_err(|_| format!("heartbeat={v:?} is not a number"))?;
                    heartbeat = Some(secs.clamp(0.0, f64::from(u16::MAX)) as u16);
                }
                "ssl" => tls = tls || matches!(v, "1" | "true" | "True" | "yes" | "on"),
                _ => {}
            }
        }
        let vhost = path.map(decode).unwrap_or_default();
        Ok(AmqpUrl {
            tls,
            host: if host.is_empty() {
                "localhost".to_owned()
            } else {
                host
            },
            port: port.unwrap_or(if tls { 5671 } else { 5672 }),
            user: if user.is_empty() {
                "guest".to_owned()
            } else {
                user
            },
            password: if password.is_empty() {
                "guest".to_owned()
            } else {
                password
            },
            vhost: if vhost.is_empty() {
                "/".to_owned()
            } else {
                vhost
            },
            heartbeat,
        })
    }

    /// The URL lapin connects to, with `heartbeat` seconds (`None`: off) unless the URL
    /// gave its own, and `connect_timeout`.
    pub fn to_uri(&self, heartbeat: Option<u16>, connect_timeout_ms: u64) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.user.clone(),
                    password: self.password.clone(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(self.heartbeat.or(heartbeat).unwrap_or(0)),
                connection_timeout: Some(connect_timeout_ms),
                ..AMQPQueryString::default()
            },
        }
    }

    /// The URL for logs: password masked, as kombu shows it (`amqp://guest:**@h:5672//`).
    pub fn display(&self) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        format!(
            "{scheme}://{}:**@{}:{}/{}",
            self.user, self.host, self.port, self.vhost
        )
    }
}

/// `host:port`, `[v6]:port`, `host` (port `None`).
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map(Some)
            .map_err(|_| format!("port {p:?} is not a number"))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed [ in host".to_owned())?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_owned(), port(p)?)),
            None => Ok((host.to_owned(), None)),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() => Ok((h.to_owned(), port(p)?)),
        Some((h, _)) => Ok((h.to_owned(), None)),
        None => Ok((s.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kombu_defaults_fill_what_the_url_leaves_out() {
        let u = AmqpUrl::parse("amqp://").expect("url");
        assert_eq!(
            (u.user.as_str(), u.password.as_str(), u.host.as_str()),
            ("guest", "guest", "localhost")
        );
        assert_eq!((u.port, u.vhost.as_str(), u.tls), (5672, "/", false));
        for url in [
            "amqp://guest@localhost//",
            "pyamqp://localhost/",
            "amqp://h:5672",
        ] {
            assert_eq!(AmqpUrl::parse(url).expect("url").vhost, "/", "{url}");
        }
    }

    #[test]
    fn user_password_port_and_vhost_are_read() {
        let u = AmqpUrl::parse("amqps://me:p%40ss@rabbit:5999/my%2Fvh?heartbeat=30").expect("url");
        assert!(u.tls);
        assert_eq!((u.user.as_str(), u.password.as_str()), ("me", "p@ss"));
        assert_eq!((u.host.as_str(), u.port), ("rabbit", 5999));
        assert_eq!(u.vhost, "my/vh");
        assert_eq!(u.heartbeat, Some(30));
        assert_eq!(AmqpUrl::parse("amqps://h").expect("url").port, 5671);
        assert_eq!(AmqpUrl::parse("amqp://u:p@h/v").expect("url").vhost, "v");
    }

    #[test]
    fn the_display_form_has_no_password() {
        let u = AmqpUrl::parse("amqp://me:secret@h:5672/vh").expect("url");
        let shown = u.display();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("me:**@h:5672"), "{shown}");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(AmqpUrl::parse("redis://h").is_err());
        assert!(AmqpUrl::parse("h:5672").is_err());
        assert!(AmqpUrl::parse("amqp://h:port").is_err());
    }

    #[test]
    fn the_uri_carries_the_heartbeat() {
        let u = AmqpUrl::parse("amqp://h/vh").expect("url");
        let uri = u.to_uri(Some(120), 4000);
        assert_eq!(uri.query.heartbeat, Some(120));
        assert_eq!(uri.vhost, "vh");
        assert_eq!(u.to_uri(None, 4000).query.heartbeat, Some(0));
    }
}
