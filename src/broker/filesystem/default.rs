//! The embedded default: with no broker configured anywhere (no `broker_url` in the TOML
//! file or the Celery app, no `CELERY_BROKER_URL`, no `-b`), rcelery uses the filesystem
//! transport in `./.rcelery/` and, unless a result backend is configured, Celery's `file://`
//! result backend beside it. A fresh machine then needs nothing but the binary.

use crate::config::Config;

/// The data folder of the embedded default, relative to the working directory.
pub const DATA_DIR: &str = ".rcelery";

/// The broker URL of the embedded default.
pub const BROKER_URL: &str = "filesystem://";

/// The result backend of the embedded default (Celery's `file://` takes the rest of the URL
/// as a path, here relative to the working directory).
pub const RESULT_BACKEND: &str = "file://.rcelery/results";

/// How often an idle worker of the embedded default lists its folder, in seconds (kombu's
/// default is 1 s; a listing of a small local folder costs next to nothing, and a task sent
/// from the shell starts sooner).
pub const POLLING_INTERVAL: f64 = 0.1;

/// The transport options of the embedded default: one folder both ways, so a worker and a
/// producer on this machine meet there.
pub fn transport_options() -> [(&'static str, toml::Value); 5] {
    let folder = |name: &str| toml::Value::String(format!("{DATA_DIR}/{name}"));
    [
        ("data_folder_in", folder("queue")),
        ("data_folder_out", folder("queue")),
        ("processed_folder", folder("processed")),
        ("control_folder", folder("control")),
        ("polling_interval", toml::Value::Float(POLLING_INTERVAL)),
    ]
}

/// What the banner says after the transport when the embedded default is used.
pub const BANNER_NOTE: &str = "[embedded default: no broker configured; data in ./.rcelery]";

/// Applies the embedded default when no broker is configured (`cli_broker` is `-b`); says
/// whether it did. A configured result backend is kept.
pub fn apply(config: &mut Config, cli_broker: Option<&str>) -> bool {
    let configured = cli_broker.is_some_and(|b| !b.is_empty())
        || config.broker_url.as_deref().is_some_and(|b| !b.is_empty());
    if configured {
        return false;
    }
    config.broker_url = Some(BROKER_URL.to_owned());
    let other = &mut config.broker_transport_options;
    for (key, value) in transport_options() {
        other.entry(key).or_insert(value);
    }
    if config.result_backend.as_deref().is_none_or(str::is_empty) {
        config.result_backend = Some(RESULT_BACKEND.to_owned());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_only_when_nothing_is_configured() {
        let mut c = Config::default();
        assert!(apply(&mut c, None));
        assert_eq!(c.broker_url.as_deref(), Some("filesystem://"));
        assert_eq!(c.result_backend.as_deref(), Some(RESULT_BACKEND));
        assert_eq!(
            c.broker_transport_options.get("data_folder_in"),
            Some(&toml::Value::String(".rcelery/queue".into()))
        );
        let mut c = Config::default();
        assert!(!apply(&mut c, Some("redis://localhost:6379/0")));
        assert_eq!(c.broker_url, None);
        let mut c = Config {
            broker_url: Some("redis://h/0".into()),
            ..Config::default()
        };
        assert!(!apply(&mut c, None));
        assert_eq!(c.result_backend, None);
    }
}
