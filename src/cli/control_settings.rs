//! The worker's remote control settings from the config: the mailbox, the reply serializer,
//! what `conf` shows (secrets masked as Celery's `filter_hidden_settings` masks them) and
//! the `broker` part of `stats` (never the password).

use crate::codec::json;
use crate::codec::Serializer;
use crate::config::Config;
use crate::control::MailboxSettings;
use crate::value::{Dict, Value};
use crate::worker::ControlSettings;

/// Celery's mask.
const MASK: &str = "********";

/// The remote control settings for `config`, whose broker is `broker_url`.
pub(super) fn build(config: &Config, broker_url: &str, serializer: Serializer) -> ControlSettings {
    let all = settings_table(config);
    let defaults = settings_table(&Config::default());
    let mut changed = Dict::new();
    for (k, v) in all.iter() {
        let key = k.as_str().unwrap_or_default();
        if defaults.get(key) != Some(v) {
            changed.insert(k.clone(), v.clone());
        }
    }
    ControlSettings {
        enabled: config.worker_enable_remote_control,
        mailbox: MailboxSettings {
            namespace: config.control_exchange.clone(),
            queue_ttl: config.control_queue_ttl,
            queue_expires: config.control_queue_expires,
            queue_durable: config.control_queue_durable,
            queue_exclusive: config.control_queue_exclusive,
        },
        serializer,
        conf: censor(changed),
        conf_with_defaults: censor(all),
        broker_info: broker_info(broker_url, config),
        mingle: true,
        gossip: true,
    }
}

/// Every setting rcelery reads, under Celery's names.
fn settings_table(config: &Config) -> Dict {
    let Ok(bytes) = serde_json::to_vec(config) else {
        return Dict::new();
    };
    match json::decode(&bytes) {
        Ok(Value::Dict(d)) => d,
        _ => Dict::new(),
    }
}

/// Celery's `filter_hidden_settings`.
fn censor(table: Dict) -> Dict {
    let mut out = Dict::with_capacity(table.len());
    for (k, v) in table.0 {
        let key = k.as_str().unwrap_or_default().to_owned();
        let v = match v {
            Value::Dict(d) => Value::Dict(censor(d)),
            v if hidden(&key) => {
                let _ = v;
                Value::Str(MASK.into())
            }
            Value::Str(url)
                if matches!(
                    key.to_ascii_lowercase().as_str(),
                    "broker_url" | "broker_read_url" | "broker_write_url"
                ) || key.to_ascii_lowercase().contains("backend") =>
            {
                Value::Str(mask_urls(&url))
            }
            v => v,
        };
        out.insert(k, v);
    }
    out
}

/// Celery's `HIDDEN_SETTINGS` (case-insensitive search).
fn hidden(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "API",
        "TOKEN",
        "KEY",
        "SECRET",
        "PASS",
        "PROFANITIES_LIST",
        "SIGNATURE",
        "DATABASE",
        "BEAT_DBURI",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Each URL of a `;` list with its password replaced by Celery's mask.
fn mask_urls(urls: &str) -> String {
    urls.split(';')
        .map(|u| mask_url(u.trim()))
        .collect::<Vec<_>>()
        .join(";")
}

fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(x) => x,
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, pass)) if !pass.is_empty() => format!("{scheme}://{user}:{MASK}@{host}"),
        _ => url.to_owned(),
    }
}

/// kombu's `Connection.info()` without `password`, for the first URL of the list; the
/// others are the `alternates` (masked).
fn broker_info(broker_url: &str, config: &Config) -> Dict {
    let urls: Vec<&str> = broker_url.split(';').map(str::trim).collect();
    let first = urls.first().copied().unwrap_or_default();
    let (scheme, rest) = first.split_once("://").unwrap_or(("amqp", first));
    let transport = match scheme {
        "rediss" | "redis" | "sentinel" | "socket" => "redis",
        "amqps" | "amqp" | "pyamqp" => "amqp",
        other => other,
    };
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let userid = auth
        .map(|a| a.split_once(':').map_or(a, |(u, _)| u))
        .filter(|u| !u.is_empty())
        .map(|u| Value::Str(decode(u)));
    let (hostport, path) = hostpart.split_once('/').unwrap_or((hostpart, ""));
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            (h.trim_matches(['[', ']']), p.parse::<i64>().ok())
        }
        _ => (hostport, None),
    };
    let default_port = if transport == "redis" { 6379 } else { 5672 };
    let vhost = if transport == "redis" {
        if path.is_empty() {
            "0".to_owned()
        } else {
            decode(path)
        }
    } else if path.is_empty() {
        "/".to_owned()
    } else {
        decode(path)
    };
    let mut d = Dict::with_capacity(15);
    d.insert("hostname", if host.is_empty() { "localhost" } else { host });
    d.insert(
        "userid",
        userid.unwrap_or(if transport == "amqp" {
            Value::Str("guest".into())
        } else {
            Value::None
        }),
    );
    d.insert("virtual_host", vhost);
    d.insert("port", port.unwrap_or(default_port));
    d.insert("insist", false);
    d.insert(
        "ssl",
        matches!(scheme, "rediss" | "amqps") || config.broker_use_ssl.is_some(),
    );
    d.insert("transport", transport);
    d.insert(
        "connect_timeout",
        Value::Float(config.broker_connection_timeout),
    );
    let options = settings_table(config)
        .get("broker_transport_options")
        .cloned()
        .unwrap_or(Value::Dict(Dict::new()));
    d.insert(
        "transport_options",
        match options {
            Value::Dict(o) => Value::Dict(censor(o)),
            other => other,
        },
    );
    d.insert("login_method", Value::None);
    d.insert("uri_prefix", Value::None);
    d.insert("heartbeat", Value::Float(config.broker_heartbeat));
    d.insert(
        "failover_strategy",
        config
            .broker_failover_strategy
            .clone()
            .unwrap_or_else(|| "round-robin".into()),
    );
    d.insert(
        "alternates",
        Value::List(
            urls.iter()
                .skip(1)
                .map(|u| Value::Str(mask_url(u)))
                .collect(),
        ),
    );
    d
}

/// Percent-decoding of a URL part.
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_as_celery_does() {
        let config = Config::from_toml(
            "broker_url = \"redis://:s3cret@localhost:6379/2\"\nresult_backend = \"redis://u:pw@h/1\"\ntask_default_queue = \"q\"\n[broker_transport_options]\nvisibility_timeout = 10\nsentinel_password = \"x\"",
        )
        .expect("config");
        let c = build(
            &config,
            "redis://:s3cret@localhost:6379/2",
            Serializer::Json,
        );
        let text = String::from_utf8(json::encode(&Value::Dict(c.conf.clone()))).expect("utf-8");
        assert!(!text.contains("s3cret") && !text.contains("pw@"), "{text}");
        assert_eq!(
            c.conf.get("broker_url"),
            Some(&Value::Str("redis://:********@localhost:6379/2".into()))
        );
        assert_eq!(
            c.conf.get("task_default_queue"),
            Some(&Value::Str("q".into()))
        );
        assert!(c.conf.get("task_serializer").is_none(), "defaults left out");
        assert!(c.conf_with_defaults.get("task_serializer").is_some());
        let b = &c.broker_info;
        assert_eq!(b.get("hostname"), Some(&Value::Str("localhost".into())));
        assert_eq!(b.get("port"), Some(&Value::Int(6379)));
        assert_eq!(b.get("virtual_host"), Some(&Value::Str("2".into())));
        assert_eq!(b.get("transport"), Some(&Value::Str("redis".into())));
        assert!(b.get("password").is_none());
        let text = String::from_utf8(json::encode(&Value::Dict(b.clone()))).expect("utf-8");
        assert!(
            !text.contains("s3cret") && !text.contains("\"x\""),
            "{text}"
        );
    }

    #[test]
    fn amqp_broker_info() {
        let config = Config::default();
        let c = build(
            &config,
            "amqp://guest:guest@rabbit:5672/v1",
            Serializer::Json,
        );
        let b = &c.broker_info;
        assert_eq!(b.get("userid"), Some(&Value::Str("guest".into())));
        assert_eq!(b.get("virtual_host"), Some(&Value::Str("v1".into())));
        assert_eq!(b.get("transport"), Some(&Value::Str("amqp".into())));
        assert_eq!(c.mailbox.node_queue("n").name, "n.celery.pidbox");
    }
}
