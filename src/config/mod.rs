//! Configuration with Celery's setting names, read from a TOML file (`--config FILE`, or
//! `rcelery.toml` in the working directory) or from the project's Celery app (asked of
//! Python once at start-up, see [`python`]), then the environment (`CELERY_BROKER_URL`,
//! `CELERY_RESULT_BACKEND`), then command-line flags. [`Config::resolve`] decides which.

pub mod python;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::QueueSpec;
use crate::redis_client::url::{CertReqs, TlsOptions};
use crate::task::Seconds;
use crate::value::{Dict, Value};

/// rcelery's broker when none is configured (Celery's is `amqp://guest@localhost//`):
/// kombu's filesystem transport in `./.rcelery/`, the embedded default (see
/// [`crate::broker::filesystem::default`]).
pub const DEFAULT_BROKER_URL: &str = crate::broker::filesystem::default::BROKER_URL;

/// `rcelery_wedge_warn_after` when not set, in seconds.
const DEFAULT_WEDGE_WARN_AFTER: f64 = 60.0;

/// One entry of `task_queues`: kombu's `Queue` with its `Exchange`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue name.
    pub name: String,
    /// Exchange (defaults to the queue name).
    pub exchange: Option<String>,
    /// Exchange type (`direct`).
    pub exchange_type: Option<String>,
    /// Routing key (defaults to the queue name).
    pub routing_key: Option<String>,
    /// `max_priority` (`x-max-priority`; wins over `queue_arguments`, as in kombu).
    pub max_priority: Option<u8>,
    /// kombu's `queue_arguments` (`x-queue-type`, `x-max-priority`, `x-expires`, ...),
    /// declared as given on AMQP (`x-max-priority` is read from it on Redis too).
    pub queue_arguments: Option<toml::Table>,
    /// Queue `durable` (true).
    pub durable: Option<bool>,
    /// Queue `auto_delete` (false; true when `exclusive`).
    pub auto_delete: Option<bool>,
    /// Queue `exclusive` (false).
    pub exclusive: Option<bool>,
    /// Exchange `durable` (true).
    pub exchange_durable: Option<bool>,
    /// Exchange `auto_delete` (false).
    pub exchange_auto_delete: Option<bool>,
}

impl QueueConfig {
    /// The queue as the broker layer sees it.
    pub fn to_spec(&self) -> QueueSpec {
        let mut arguments = Dict::new();
        for (key, value) in self.queue_arguments.iter().flatten() {
            arguments.insert(key.as_str(), toml_to_value(value));
        }
        if let Some(p) = self.max_priority {
            arguments.remove("x-max-priority");
            arguments.insert("x-max-priority", Value::Int(i64::from(p)));
        }
        let exclusive = self.exclusive.unwrap_or(false);
        QueueSpec {
            name: self.name.clone(),
            exchange: self.exchange.clone().unwrap_or_else(|| self.name.clone()),
            exchange_type: self
                .exchange_type
                .clone()
                .unwrap_or_else(|| "direct".to_owned()),
            routing_key: self
                .routing_key
                .clone()
                .unwrap_or_else(|| self.name.clone()),
            max_priority: self.max_priority,
            durable: self.durable.unwrap_or(true),
            auto_delete: exclusive || self.auto_delete.unwrap_or(false),
            exclusive,
            exchange_durable: self.exchange_durable.unwrap_or(true),
            exchange_auto_delete: self.exchange_auto_delete.unwrap_or(false),
            arguments,
        }
        .with_default_max_priority(None)
    }
}

/// A TOML value as the Python value it stands for (queue arguments).
fn toml_to_value(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::Str(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::Str(d.to_string()),
        toml::Value::Array(items) => Value::List(items.iter().map(toml_to_value).collect()),
        toml::Value::Table(t) => {
            let mut d = Dict::new();
            for (k, v) in t {
                d.insert(k.as_str(), toml_to_value(v));
            }
            Value::Dict(d)
        }
    }
}

/// A rate limit as written in the config: Celery's string notation or a bare number (per
/// second).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RateLimitSetting {
    /// `"10/s"`, `"100/m"`, `"1000/h"`, `"5"`.
    Text(String),
    /// Tasks per second.
    Number(f64),
}

impl RateLimitSetting {
    /// The limit in Celery's string notation.
    pub fn to_text(&self) -> String {
        match self {
            RateLimitSetting::Text(t) => t.clone(),
            RateLimitSetting::Number(n) => n.to_string(),
        }
    }
}

/// `result_backend_transport_options`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ResultTransportOptions {
    /// Prefix for result keys.
    pub global_keyprefix: String,
    /// `result_chord_ordered` (true): chord parts kept in header order (a sorted set), or in
    /// completion order (a list) when false.
    pub result_chord_ordered: bool,
    /// `master_name`: for a `sentinel://` result backend, the name the sentinels monitor
    /// the master under (required there).
    pub master_name: Option<String>,
    /// `min_other_sentinels` (0): a sentinel's answer counts only when it sees this many
    /// other sentinels.
    pub min_other_sentinels: u32,
    /// `sentinel_kwargs`: how to connect to the sentinels themselves (`password`,
    /// `username`, `socket_timeout`, `socket_connect_timeout`).
    pub sentinel_kwargs: Option<toml::Table>,
}

impl Default for ResultTransportOptions {
    fn default() -> Self {
        ResultTransportOptions {
            global_keyprefix: String::new(),
            result_chord_ordered: true,
            master_name: None,
            min_other_sentinels: 0,
            sentinel_kwargs: None,
        }
    }
}

/// The settings rcelery reads, under Celery's names and with Celery's defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// `broker_url`.
    pub broker_url: Option<String>,
    /// `result_backend`.
    pub result_backend: Option<String>,
    /// `task_queues`.
    pub task_queues: Vec<QueueConfig>,
    /// `task_default_queue` (`celery`).
    pub task_default_queue: String,
    /// `task_create_missing_queues` (true).
    pub task_create_missing_queues: bool,
    /// `task_default_exchange` (unset: the default queue's name).
    pub task_default_exchange: Option<String>,
    /// `task_default_exchange_type` (`direct`).
    pub task_default_exchange_type: String,
    /// `task_default_routing_key` (unset: the default queue's name).
    pub task_default_routing_key: Option<String>,
    /// `task_default_queue_type` (`classic`): `quorum` declares the default queue (when
    /// `task_queues` is not set) with `x-queue-type: quorum`.
    pub task_default_queue_type: String,
    /// `task_create_missing_queue_type` (`classic`): the type of queues created from `-Q`
    /// names missing from `task_queues`.
    pub task_create_missing_queue_type: String,
    /// `task_create_missing_queue_exchange_type` (unset: `direct`): the exchange type of
    /// such queues.
    pub task_create_missing_queue_exchange_type: Option<String>,
    /// `task_queue_max_priority` (none): `x-max-priority` of every queue that has none.
    pub task_queue_max_priority: Option<u8>,
    /// `task_default_priority` (none): the priority of tasks published without one.
    pub task_default_priority: Option<u8>,
    /// `broker_heartbeat` in seconds (120; 0 turns heartbeats off), on transports that have
    /// them (AMQP).
    pub broker_heartbeat: f64,
    /// `task_acks_late` (false).
    pub task_acks_late: bool,
    /// `task_track_started` (false).
    pub task_track_started: bool,
    /// `worker_send_task_events` (false): send task events, as `-E`.
    pub worker_send_task_events: bool,
    /// `task_send_sent_event` (false): send `task-sent` for the tasks rcelery publishes.
    pub task_send_sent_event: bool,
    /// rcelery's own: `HOST:PORT` to serve Prometheus metrics and `/healthz` on (none);
    /// `--metrics-addr` overrides it.
    pub rcelery_metrics_addr: Option<String>,
    /// `task_ignore_result` (false).
    pub task_ignore_result: bool,
    /// `worker_prefetch_multiplier` (4).
    pub worker_prefetch_multiplier: usize,
    /// `worker_concurrency` (number of CPUs).
    pub worker_concurrency: Option<usize>,
    /// `result_expires` in seconds (1 day); 0 stores results without expiry.
    pub result_expires: f64,
    /// `result_extended` (false).
    pub result_extended: bool,
    /// `result_persistent` (unset: the backend's default; transient for `rpc://`): whether
    /// the `rpc://` backend's result messages are persistent (delivery mode 2) or not (1).
    pub result_persistent: Option<bool>,
    /// `accept_content` (`["json"]`).
    pub accept_content: Vec<String>,
    /// `task_serializer` (`json`); used when rcelery publishes.
    pub task_serializer: String,
    /// `result_serializer` (`json`).
    pub result_serializer: String,
    /// `timezone` (UTC).
    pub timezone: Option<String>,
    /// `enable_utc` (true).
    pub enable_utc: bool,
    /// `broker_transport_options`, as given: its keys depend on the transport, which reads
    /// the ones it understands (see [`crate::broker::redis::RedisTransportOptions`]).
    pub broker_transport_options: toml::Table,
    /// `result_backend_transport_options`.
    pub result_backend_transport_options: ResultTransportOptions,
    /// `result_chord_retry_interval` in seconds (1): how often `celery.chord_unlock` checks
    /// a chord header that is not done.
    pub result_chord_retry_interval: f64,
    /// `result_chord_join_timeout` in seconds (3): how long a chord saved as a `GroupResult`
    /// waits for its header's results when joining them.
    pub result_chord_join_timeout: f64,
    /// Seconds a warm shutdown waits for running tasks (rcelery's own; 60).
    pub worker_shutdown_timeout: f64,
    /// `task_time_limit`: hard time limit in seconds (none); `--time-limit` overrides it.
    pub task_time_limit: Option<Seconds>,
    /// `task_soft_time_limit` in seconds (none); `--soft-time-limit` overrides it.
    pub task_soft_time_limit: Option<Seconds>,
    /// `task_default_rate_limit`: `"10/s"`, `"100/m"`, `"1000/h"` or a number per second
    /// (none).
    pub task_default_rate_limit: Option<RateLimitSetting>,
    /// `worker_disable_rate_limits` (false).
    pub worker_disable_rate_limits: bool,
    /// `task_routes`: a table from task name (or `*` pattern) to a queue name or a table of
    /// `queue`/`exchange`/`routing_key`/`priority`, or a list of such tables. Applied to the
    /// tasks rcelery publishes (chain steps, callbacks, `rcelery call`), as Celery's router
    /// applies it; see [`crate::producer::Routes`].
    pub task_routes: Option<toml::Value>,
    /// rcelery's own: the queue to forward messages for tasks this binary does not have to
    /// (unchanged, e.g. to a queue a Python worker consumes) instead of failing them with
    /// `NotRegistered`. `--forward-unknown-tasks` overrides it.
    pub rcelery_forward_unknown_tasks: Option<String>,
    /// `broker_connection_retry` (true): reconnect when the broker connection is lost; false
    /// stops the worker at the first failed reconnect.
    pub broker_connection_retry: bool,
    /// `broker_connection_retry_on_startup` (unset: as `broker_connection_retry`): keep
    /// trying when the broker is not there at start.
    pub broker_connection_retry_on_startup: Option<bool>,
    /// `broker_connection_max_retries` (100): failed connection attempts in a row before
    /// the worker gives up; 0 retries forever.
    pub broker_connection_max_retries: u32,
    /// `broker_connection_timeout` in seconds (4): how long one connection attempt may take.
    pub broker_connection_timeout: f64,
    /// `broker_failover_strategy` (`round-robin` when unset; or `shuffle`): how the next URL
    /// of a `;`-separated `broker_url` is chosen (see [`crate::broker::failover`]).
    pub broker_failover_strategy: Option<String>,
    /// `result_backend_base_sleep_between_retries_ms` (10): the first wait before a failed
    /// result-backend command is retried; each later wait doubles.
    pub result_backend_base_sleep_between_retries_ms: u64,
    /// `result_backend_max_sleep_between_retries_ms` (10000): the longest such wait.
    pub result_backend_max_sleep_between_retries_ms: u64,
    /// rcelery's own: results kept in memory while the result backend cannot be reached
    /// (10000). When the buffer is full, finished tasks wait for room before the worker
    /// starts more; see docs/reliability.md.
    pub rcelery_result_buffer: usize,
    /// rcelery's own: seconds every slot may stay busy with the same tasks before the worker
    /// warns that it may be wedged (60); wedge warnings repeat at this interval. See
    /// [`Config::wedge_warn_after`].
    pub rcelery_wedge_warn_after: f64,
    /// rcelery's own: restart in place (as on SIGHUP) when every slot has been held by a
    /// thread abandoned at its time limit for `rcelery_wedge_warn_after` (true); the restart
    /// ends those threads, as Celery's pool replaces a child killed at its hard limit.
    pub rcelery_restart_when_wedged: bool,
    /// `broker_use_ssl`: TLS options for the broker connection (see [`UseSsl`]).
    pub broker_use_ssl: Option<UseSsl>,
    /// `redis_backend_use_ssl`: TLS options for a Redis result backend (see [`UseSsl`]).
    pub redis_backend_use_ssl: Option<UseSsl>,
    /// `database_table_names` (`task`, `group`) for the `db+` result backend.
    pub database_table_names: BTreeMap<String, String>,
    /// `database_table_schemas` (`task`, `group`) for the `db+` result backend.
    pub database_table_schemas: BTreeMap<String, String>,
    /// `database_create_tables_at_setup`: create the result tables at start.
    pub database_create_tables_at_setup: bool,
    /// `database_engine_options`: `pool_size`, `max_overflow` and `pool_recycle` are read;
    /// the rest (SQLAlchemy's own) is accepted and ignored.
    pub database_engine_options: BTreeMap<String, toml::Value>,
    /// `database_url`: the database of the `django-db` result backend
    /// (`postgresql://user:password@host:5432/db`, `mysql://...`, `sqlite:///path`). When the
    /// settings come from a Django project's Celery app and this is unset, the URL of
    /// Django's `DATABASES["default"]` is used.
    pub database_url: Option<String>,
    /// `worker_enable_remote_control` (true): the worker answers remote control commands.
    pub worker_enable_remote_control: bool,
    /// `control_exchange` (`celery`): the pidbox namespace.
    pub control_exchange: String,
    /// `control_queue_ttl` (300 s): message TTL of pidbox queues.
    pub control_queue_ttl: Option<f64>,
    /// `control_queue_expires` (10 s): how long an unused pidbox queue lives.
    pub control_queue_expires: Option<f64>,
    /// `control_queue_durable` (false).
    pub control_queue_durable: bool,
    /// `control_queue_exclusive` (true, Celery 5.7).
    pub control_queue_exclusive: bool,
    /// Anything else: accepted, warned about once at startup.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

/// Celery's `broker_use_ssl` / `redis_backend_use_ssl`: a table of the `ssl_*` options a
/// Redis URL's query takes (`ssl_cert_reqs` as `"required"`, `"CERT_NONE"`, ... or as
/// Python's `ssl.CERT_*` number 0, 1, 2), or a boolean, which, as kombu's Redis transport
/// does with `True`, changes nothing (a `rediss://` URL turns TLS on).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum UseSsl {
    /// `true` / `false`: no effect on Redis (warned about at startup).
    Flag(bool),
    /// The options.
    Options(SslOptions),
}

/// The table form of [`UseSsl`] (the un-prefixed names AMQP uses are accepted too).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SslOptions {
    /// `ssl_cert_reqs`: how the server's certificate is checked.
    #[serde(alias = "cert_reqs")]
    pub ssl_cert_reqs: Option<CertReqsSetting>,
    /// `ssl_ca_certs`: PEM file of the CAs to trust.
    #[serde(alias = "ca_certs")]
    pub ssl_ca_certs: Option<PathBuf>,
    /// `ssl_certfile`: PEM client certificate.
    #[serde(alias = "certfile")]
    pub ssl_certfile: Option<PathBuf>,
    /// `ssl_keyfile`: PEM private key of the client certificate.
    #[serde(alias = "keyfile")]
    pub ssl_keyfile: Option<PathBuf>,
    /// `ssl_check_hostname`: also check that the certificate names the host.
    pub ssl_check_hostname: Option<bool>,
}

/// `ssl_cert_reqs` as written: a name or Python's `ssl.CERT_*` value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum CertReqsSetting {
    /// `ssl.CERT_NONE` (0), `CERT_OPTIONAL` (1), `CERT_REQUIRED` (2).
    Number(i64),
    /// `required`, `optional`, `none` or `CERT_REQUIRED`, ...
    Name(String),
}

impl UseSsl {
    /// The TLS options for a Redis connection ([`UseSsl::tls_options`]); `true` is accepted
    /// and, as kombu's Redis transport does, changes nothing (said once at startup). `name`
    /// is the setting's.
    pub fn for_redis(&self, name: &str) -> Result<Option<TlsOptions>, String> {
        // `false` is Celery's default, said by every Celery app: nothing to warn about.
        if let UseSsl::Flag(flag @ true) = self {
            tracing::warn!(
                "{name} = {flag} has no effect on Redis (as with kombu): use a rediss:// URL or \
                 a table of ssl_* options"
            );
        }
        self.tls_options(name)
    }

    /// The TLS options for the Redis client, or `None` when the setting has no effect.
    /// `name` is the setting's, for the error.
    pub fn tls_options(&self, name: &str) -> Result<Option<TlsOptions>, String> {
        let UseSsl::Options(o) = self else {
            return Ok(None);
        };
        let cert_reqs = match &o.ssl_cert_reqs {
            None => None,
            Some(CertReqsSetting::Number(0)) => Some(CertReqs::None),
            Some(CertReqsSetting::Number(1)) => Some(CertReqs::Optional),
            Some(CertReqsSetting::Number(2)) => Some(CertReqs::Required),
            Some(CertReqsSetting::Number(n)) => {
                return Err(format!(
                    "{name}: ssl_cert_reqs {n} is not 0, 1 or 2 (ssl.CERT_*)"
                ))
            }
            Some(CertReqsSetting::Name(text)) => {
                Some(CertReqs::parse(text).map_err(|e| format!("{name}: {e}"))?)
            }
        };
        Ok(Some(TlsOptions {
            cert_reqs,
            ca_certs: o.ssl_ca_certs.clone(),
            certfile: o.ssl_certfile.clone(),
            keyfile: o.ssl_keyfile.clone(),
            check_hostname: o.ssl_check_hostname.unwrap_or(false),
        }))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            broker_url: None,
            result_backend: None,
            task_queues: Vec::new(),
            task_default_queue: "celery".to_owned(),
            task_create_missing_queues: true,
            task_default_exchange: None,
            task_default_exchange_type: "direct".to_owned(),
            task_default_routing_key: None,
            task_default_queue_type: "classic".to_owned(),
            task_create_missing_queue_type: "classic".to_owned(),
            task_create_missing_queue_exchange_type: None,
            task_queue_max_priority: None,
            task_default_priority: None,
            broker_heartbeat: 120.0,
            task_acks_late: false,
            task_track_started: false,
            worker_send_task_events: false,
            task_send_sent_event: false,
            rcelery_metrics_addr: None,
            task_ignore_result: false,
            worker_prefetch_multiplier: 4,
            worker_concurrency: None,
            result_expires: 86400.0,
            result_extended: false,
            result_persistent: None,
            accept_content: vec!["json".to_owned()],
            task_serializer: "json".to_owned(),
            result_serializer: "json".to_owned(),
            timezone: None,
            enable_utc: true,
            broker_transport_options: toml::Table::new(),
            result_backend_transport_options: ResultTransportOptions::default(),
            result_chord_retry_interval: 1.0,
            result_chord_join_timeout: 3.0,
            worker_shutdown_timeout: 60.0,
            task_time_limit: None,
            task_soft_time_limit: None,
            task_default_rate_limit: None,
            worker_disable_rate_limits: false,
            task_routes: None,
            rcelery_forward_unknown_tasks: None,
            broker_connection_retry: true,
            broker_connection_retry_on_startup: None,
            broker_connection_max_retries: 100,
            broker_connection_timeout: 4.0,
            broker_failover_strategy: None,
            result_backend_base_sleep_between_retries_ms: 10,
            result_backend_max_sleep_between_retries_ms: 10_000,
            rcelery_result_buffer: 10_000,
            rcelery_wedge_warn_after: DEFAULT_WEDGE_WARN_AFTER,
            rcelery_restart_when_wedged: true,
            broker_use_ssl: None,
            redis_backend_use_ssl: None,
            database_table_names: BTreeMap::new(),
            database_table_schemas: BTreeMap::new(),
            database_create_tables_at_setup: false,
            database_engine_options: BTreeMap::new(),
            database_url: None,
            worker_enable_remote_control: true,
            control_exchange: "celery".to_owned(),
            control_queue_ttl: Some(300.0),
            control_queue_expires: Some(10.0),
            control_queue_durable: false,
            control_queue_exclusive: true,
            unknown: BTreeMap::new(),
        }
    }
}

impl Config {
    /// `rcelery_wedge_warn_after` as a duration: a value that is not a positive number of
    /// seconds means the default (60 s).
    pub fn wedge_warn_after(&self) -> Duration {
        let secs = self.rcelery_wedge_warn_after;
        let valid = secs.is_finite() && secs > 0.0;
        Duration::from_secs_f64(if valid {
            secs.min(1e9)
        } else {
            DEFAULT_WEDGE_WARN_AFTER
        })
    }

    /// `task_routes`, read (empty when unset).
    pub fn routes(&self) -> Result<crate::producer::Routes, String> {
        match &self.task_routes {
            Some(value) => crate::producer::Routes::from_config(value),
            None => Ok(crate::producer::Routes::default()),
        }
    }
}

/// Celery settings that only concern Python or that rcelery handles by itself; present in
/// the config without a warning.
const KNOWN_WITHOUT_EFFECT: &[&str] = &[
    "imports",
    "include",
    "worker_max_tasks_per_child",
    "worker_max_memory_per_child",
    "beat_scheduler",
    "result_backend_always_retry",
    "result_backend_max_retries",
    "worker_hijack_root_logger",
];

/// Every setting [`Config`] has a field for (the names Python is asked for; see
/// [`python`]).
pub const SETTING_NAMES: &[&str] = &[
    "broker_url",
    "result_backend",
    "task_queues",
    "task_default_queue",
    "task_create_missing_queues",
    "task_default_exchange",
    "task_default_exchange_type",
    "task_default_routing_key",
    "task_default_queue_type",
    "task_create_missing_queue_type",
    "task_create_missing_queue_exchange_type",
    "task_queue_max_priority",
    "task_default_priority",
    "broker_heartbeat",
    "task_acks_late",
    "task_track_started",
    "worker_send_task_events",
    "task_send_sent_event",
    "rcelery_metrics_addr",
    "task_ignore_result",
    "worker_prefetch_multiplier",
    "worker_concurrency",
    "result_expires",
    "result_extended",
    "result_persistent",
    "accept_content",
    "task_serializer",
    "result_serializer",
    "timezone",
    "enable_utc",
    "broker_transport_options",
    "result_backend_transport_options",
    "result_chord_retry_interval",
    "result_chord_join_timeout",
    "worker_shutdown_timeout",
    "task_time_limit",
    "task_soft_time_limit",
    "task_default_rate_limit",
    "worker_disable_rate_limits",
    "task_routes",
    "rcelery_forward_unknown_tasks",
    "broker_connection_retry",
    "broker_connection_retry_on_startup",
    "broker_connection_max_retries",
    "broker_connection_timeout",
    "broker_failover_strategy",
    "result_backend_base_sleep_between_retries_ms",
    "result_backend_max_sleep_between_retries_ms",
    "rcelery_result_buffer",
    "rcelery_wedge_warn_after",
    "rcelery_restart_when_wedged",
    "broker_use_ssl",
    "redis_backend_use_ssl",
    "database_table_names",
    "database_table_schemas",
    "database_create_tables_at_setup",
    "database_engine_options",
    "database_url",
    "worker_enable_remote_control",
    "control_exchange",
    "control_queue_ttl",
    "control_queue_expires",
    "control_queue_durable",
    "control_queue_exclusive",
];

/// Where the settings came from (shown in the banner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A TOML file: `--config FILE`, or `rcelery.toml` in the working directory.
    File(PathBuf),
    /// A Python Celery app (`-A`), as described by [`python::CeleryApp::describe`].
    CeleryApp(String),
    /// Neither: rcelery's defaults, which are Celery's.
    Defaults,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::CeleryApp(what) => f.write_str(what),
            ConfigSource::Defaults => f.write_str("defaults (no rcelery.toml, no Celery app)"),
        }
    }
}

/// What the command line says about where the settings are.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigRequest<'a> {
    /// `--config`: a TOML file (a `.toml` name or an existing file), else a Python module
    /// name, handed to the Celery app as `CELERY_CONFIG_MODULE` (as `celery --config` does).
    pub config: Option<&'a str>,
    /// `-A`.
    pub app: Option<&'a str>,
    /// `--loader`.
    pub loader: Option<&'a str>,
    /// `-b`.
    pub broker: Option<&'a str>,
    /// `--result-backend`.
    pub result_backend: Option<&'a str>,
    /// `--skip-checks`.
    pub skip_checks: bool,
}

/// The configuration, where it came from, and the Celery app's answer when Python was
/// asked.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The settings (environment overrides applied).
    pub config: Config,
    /// Where they came from.
    pub source: ConfigSource,
    /// The Celery app's answer (task names, Django, what was skipped), when Python was asked.
    pub celery_app: Option<python::CeleryApp>,
}

impl LoadedConfig {
    /// Logs, once at startup, what the source had that rcelery does not use: settings
    /// unknown to rcelery (a warning for a TOML file, debug for a Celery app, which reports
    /// every setting it changed), settings the app holds as code, and the helper's notes.
    pub fn log_unused(&self) {
        let from_app = self.celery_app.is_some();
        for key in self.config.unknown_settings() {
            if from_app {
                tracing::debug!("setting {key:?} of the Celery app is not used by rcelery");
            } else {
                tracing::warn!("setting {key:?} is not used by rcelery");
            }
        }
        let Some(app) = &self.celery_app else {
            return;
        };
        for s in &app.skipped {
            if SETTING_NAMES.contains(&s.setting.as_str()) {
                tracing::warn!(
                    "setting {:?} of the Celery app is not data; rcelery's default is used: {}",
                    s.setting,
                    s.reason
                );
            } else {
                tracing::debug!(
                    "setting {:?} of the Celery app is not data (not used by rcelery): {}",
                    s.setting,
                    s.reason
                );
            }
        }
        for note in &app.notes {
            tracing::warn!("Celery app {}: {note}", app.app);
        }
        if let Some(django) = &app.django {
            let db = django.database.as_ref();
            tracing::debug!(
                "Django settings {}: default database {} {} at {}:{}",
                django.settings_module.as_deref().unwrap_or("?"),
                db.and_then(|d| d.engine.as_deref()).unwrap_or("none"),
                db.and_then(|d| d.name.as_deref()).unwrap_or(""),
                db.and_then(|d| d.host.as_deref()).unwrap_or(""),
                db.and_then(|d| d.port.as_deref()).unwrap_or(""),
            );
        }
    }
}

/// Whether `--config VALUE` names a TOML file (rather than a Python module).
pub fn looks_like_file(value: &str) -> bool {
    value.ends_with(".toml") || Path::new(value).is_file()
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The Celery app's settings could not be read.
    #[error(transparent)]
    Python(#[from] python::PythonConfigError),
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        message: String,
    },
}

impl Config {
    /// Finds the settings as the command line asks, in this order:
    ///
    /// 1. a TOML file: `--config FILE`, else `rcelery.toml` in the working directory;
    /// 2. else, when `-A` names a Python Celery app by [`python::wants_python`]'s rule, that
    ///    app's settings, asked of Python once ([`python::ask`]);
    /// 3. else rcelery's defaults (Celery's).
    ///
    /// Then `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND` from the environment win.
    pub fn resolve(request: &ConfigRequest<'_>) -> Result<LoadedConfig, ConfigError> {
        let file_flag = request.config.filter(|c| looks_like_file(c));
        let module_flag = request.config.filter(|c| !looks_like_file(c));
        let default_file = Path::new("rcelery.toml");
        let file = file_flag
            .map(Path::new)
            .or_else(|| default_file.exists().then_some(default_file));
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let python_app = request
            .app
            .filter(|a| python::wants_python(a, &here))
            .filter(|_| file.is_none());
        if let (Some(module), None) = (module_flag, python_app) {
            tracing::warn!(
                "--config {module:?} is a Python module name, and no Celery app is read; \
                 rcelery reads a TOML file (ignored)"
            );
        }
        let mut loaded = if let Some(path) = file {
            if let Some(app) = request.app.filter(|a| python::wants_python(a, &here)) {
                tracing::info!(
                    "settings from {}; the Celery app {app:?} is not asked (without a TOML \
                     file, rcelery reads the app's settings)",
                    path.display()
                );
            }
            LoadedConfig {
                config: Config::from_file(path)?,
                source: ConfigSource::File(path.to_owned()),
                celery_app: None,
            }
        } else if let Some(app) = python_app {
            let interpreter = python::find_python()?;
            let answer = python::ask(
                &interpreter,
                &python::Request {
                    app,
                    config_module: module_flag,
                    loader: request.loader,
                    broker: request.broker,
                    result_backend: request.result_backend,
                    skip_checks: request.skip_checks,
                },
            )?;
            let mut config = answer.config()?;
            if config.database_url.is_none() {
                // django-db: the Django project's own database.
                config.database_url = answer.django.as_ref().and_then(|d| d.database_url.clone());
            }
            LoadedConfig {
                config,
                source: ConfigSource::CeleryApp(answer.describe()),
                celery_app: Some(answer),
            }
        } else {
            LoadedConfig {
                config: Config::default(),
                source: ConfigSource::Defaults,
                celery_app: None,
            }
        };
        loaded.config.apply_environment();
        Ok(loaded)
    }

    /// Loads `path`, or `rcelery.toml` in the working directory if it exists, else defaults;
    /// then applies `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND` from the environment.
    /// (No Celery app is asked; see [`Config::resolve`].)
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default_file = Path::new("rcelery.toml");
        let file = path.or_else(|| default_file.exists().then_some(default_file));
        let mut config = match file {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        config.apply_environment();
        Ok(config)
    }

    /// `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND` from the environment, when set,
    /// replace `broker_url` and `result_backend` (as Celery's `Settings` reads them).
    fn apply_environment(&mut self) {
        let config = self;
        if let Ok(url) = std::env::var("CELERY_BROKER_URL") {
            if !url.is_empty() {
                config.broker_url = Some(url);
            }
        }
        if let Ok(url) = std::env::var("CELERY_RESULT_BACKEND") {
            if !url.is_empty() {
                config.result_backend = Some(url);
            }
        }
    }

    /// Reads one TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        // The parser's message quotes the offending line, which may hold a password.
        toml::from_str(text)
            .map_err(|e| crate::redis_client::mask::mask_secrets_in_text(&e.to_string()))
    }

    /// Reads settings given as JSON under Celery's names (the Celery app's answer, see
    /// [`python`]) through the same deserialization as a TOML file: each value becomes its
    /// TOML form (`null` means "not set", so rcelery's default, which is Celery's), then the
    /// table is read as a TOML file's would be. Unknown settings land in
    /// [`Config::unknown`]. An error names every setting whose value does not fit.
    pub fn from_json_settings(
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Config, String> {
        let mut table = toml::Table::new();
        let mut errors = Vec::new();
        for (key, value) in settings {
            match json_to_toml(value) {
                Ok(Some(v)) => {
                    table.insert(key.clone(), v);
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("{key}: {e}")),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Config::from_table(table)
    }

    /// Reads a TOML table of settings; an error names each setting that does not fit.
    pub fn from_table(table: toml::Table) -> Result<Config, String> {
        match toml::Value::Table(table.clone()).try_into::<Config>() {
            Ok(config) => Ok(config),
            Err(whole) => {
                let errors: Vec<String> = table
                    .into_iter()
                    .filter_map(|(key, value)| {
                        let one = toml::Table::from_iter([(key.clone(), value)]);
                        toml::Value::Table(one)
                            .try_into::<Config>()
                            .err()
                            .map(|e| format!("{key}: {}", e.to_string().trim_end()))
                    })
                    .collect();
                Err(if errors.is_empty() {
                    whole.to_string()
                } else {
                    errors.join("; ")
                })
            }
        }
    }

    /// Settings present in the file that rcelery does not know.
    pub fn unknown_settings(&self) -> Vec<&str> {
        self.unknown
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_WITHOUT_EFFECT.contains(k))
            .collect()
    }

    /// The queues to consume: the `-Q` names (each from `task_queues`, or created as a direct
    /// queue), else all of `task_queues`, else the default queue.
    pub fn select_queues(
        &self,
        names: &[String],
        exclude: &[String],
    ) -> Result<Vec<QueueSpec>, String> {
        let declared = |n: &str| {
            self.task_queues
                .iter()
                .find(|q| q.name == n)
                .map(QueueConfig::to_spec)
        };
        let mut queues = Vec::new();
        if names.is_empty() {
            if self.task_queues.is_empty() {
                queues.push(self.default_queue_spec());
            } else {
                queues.extend(self.task_queues.iter().map(QueueConfig::to_spec));
            }
        } else {
            for n in names {
                match declared(n) {
                    Some(q) => queues.push(q),
                    None if self.task_queues.is_empty() && *n == self.task_default_queue => {
                        queues.push(self.default_queue_spec())
                    }
                    None if self.task_create_missing_queues => {
                        queues.push(self.missing_queue_spec(n))
                    }
                    None => return Err(format!("Queue {n:?} missing from task_queues")),
                }
            }
        }
        let mut queues: Vec<QueueSpec> = queues
            .into_iter()
            .map(|q| q.with_default_max_priority(self.task_queue_max_priority))
            .collect();
        queues.retain(|q| !exclude.contains(&q.name));
        if queues.is_empty() {
            return Err("no queues left to consume".to_owned());
        }
        Ok(queues)
    }

    /// The default queue as Celery declares it when `task_queues` is not set: bound to
    /// `task_default_exchange` (of `task_default_exchange_type`) with
    /// `task_default_routing_key`, quorum when `task_default_queue_type` says so
    /// (`celery/app/amqp.py` `AMQP.Queues`).
    pub fn default_queue_spec(&self) -> QueueSpec {
        let name = &self.task_default_queue;
        let mut q = QueueSpec::direct(name);
        q.exchange = self
            .task_default_exchange
            .clone()
            .unwrap_or_else(|| name.clone());
        q.exchange_type = self.task_default_exchange_type.clone();
        q.routing_key = self
            .task_default_routing_key
            .clone()
            .unwrap_or_else(|| name.clone());
        if self.task_default_queue_type == "quorum" {
            q.arguments.insert("x-queue-type", "quorum");
        }
        q
    }

    /// A queue named on the command line but missing from `task_queues`, as Celery creates
    /// it (`Queues.new_missing`): its own direct exchange (or
    /// `task_create_missing_queue_exchange_type`), quorum when
    /// `task_create_missing_queue_type` says so.
    pub fn missing_queue_spec(&self, name: &str) -> QueueSpec {
        let mut q = QueueSpec::direct(name);
        if let Some(t) = &self.task_create_missing_queue_exchange_type {
            q.exchange_type = t.clone();
        }
        if self.task_create_missing_queue_type == "quorum" {
            q.arguments.insert("x-queue-type", "quorum");
        }
        q
    }

    /// The queues the app knows and how it creates missing ones, for the broker (see
    /// [`crate::broker::QueueCatalog`]): `task_queues`, or the default queue when it is not
    /// set.
    pub fn queue_catalog(&self) -> crate::broker::QueueCatalog {
        let queues = if self.task_queues.is_empty() {
            vec![self.default_queue_spec()]
        } else {
            self.task_queues.iter().map(QueueConfig::to_spec).collect()
        };
        crate::broker::QueueCatalog {
            queues: queues
                .into_iter()
                .map(|q| q.with_default_max_priority(self.task_queue_max_priority))
                .collect(),
            create_missing: self.task_create_missing_queues,
            missing_template: self
                .missing_queue_spec("")
                .with_default_max_priority(self.task_queue_max_priority),
        }
    }

    /// The broker connection settings (`broker_connection_*`).
    pub fn broker_connection(&self) -> crate::broker::ConnectionSettings {
        crate::broker::ConnectionSettings {
            retry: self.broker_connection_retry,
            retry_on_startup: self
                .broker_connection_retry_on_startup
                .unwrap_or(self.broker_connection_retry),
            max_retries: Some(self.broker_connection_max_retries).filter(|n| *n > 0),
            timeout: std::time::Duration::try_from_secs_f64(
                self.broker_connection_timeout.max(0.1),
            )
            .unwrap_or(std::time::Duration::from_secs(4)),
            heartbeat: (self.broker_heartbeat > 0.0)
                .then(|| std::time::Duration::try_from_secs_f64(self.broker_heartbeat).ok())
                .flatten(),
        }
    }

    /// The result backend's retry policy (`result_backend_*_sleep_between_retries_ms`);
    /// results are retried until they are stored.
    pub fn backend_retry(&self) -> crate::redis_client::link::RetryPolicy {
        crate::redis_client::link::RetryPolicy {
            base: std::time::Duration::from_millis(
                self.result_backend_base_sleep_between_retries_ms.max(1),
            ),
            max_delay: std::time::Duration::from_millis(
                self.result_backend_max_sleep_between_retries_ms.max(1),
            ),
            max_retries: None,
        }
    }

    /// The `database_*` settings the SQL result backends read (`db+` and `django-db`).
    pub fn database_options(&self) -> crate::backend::database::DatabaseOptions {
        let option = |key: &str| self.database_engine_options.get(key);
        let number = |key: &str| {
            option(key).and_then(|v| match v {
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::Float(f) => Some(*f),
                _ => None,
            })
        };
        let pool_size = number("pool_size")
            .map(|size| size + number("max_overflow").unwrap_or(10.0).max(0.0))
            .map(|n| n.clamp(1.0, 1000.0) as u32);
        crate::backend::database::DatabaseOptions {
            tables: crate::backend::database::schema::TableNames {
                task: self.database_table_names.get("task").cloned(),
                group: self.database_table_names.get("group").cloned(),
                task_schema: self.database_table_schemas.get("task").cloned(),
                group_schema: self.database_table_schemas.get("group").cloned(),
            },
            create_tables_at_setup: self.database_create_tables_at_setup,
            pool_size,
            pool_recycle: number("pool_recycle")
                .filter(|s| *s > 0.0)
                .map(std::time::Duration::from_secs_f64),
            django_url: self.database_url.clone(),
        }
    }

    /// The app timezone (`timezone`, else UTC).
    pub fn tz(&self) -> Result<chrono_tz::Tz, String> {
        match &self.timezone {
            Some(name) => name
                .parse()
                .map_err(|_| format!("unknown timezone {name:?}")),
            None => Ok(chrono_tz::UTC),
        }
    }
}

/// A JSON value as TOML: `null` is "not set" (dropped; `Ok(None)`), also inside objects; an
/// array cannot hold one.
fn json_to_toml(value: &serde_json::Value) -> Result<Option<toml::Value>, String> {
    use serde_json::Value as J;
    Ok(Some(match value {
        J::Null => return Ok(None),
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => match n.as_f64() {
                Some(f) if n.is_u64() => {
                    return Err(format!("{f} is too large an integer"));
                }
                Some(f) => toml::Value::Float(f),
                None => return Err(format!("{n} is not a number rcelery can read")),
            },
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|item| json_to_toml(item)?.ok_or_else(|| "a list holds None".to_owned()))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(members) => {
            let mut table = toml::Table::new();
            for (k, v) in members {
                if let Some(v) = json_to_toml(v).map_err(|e| format!("{k}: {e}"))? {
                    table.insert(k.clone(), v);
                }
            }
            toml::Value::Table(table)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = r#"
broker_url = "redis://:123456@localhost:6379/3"
task_serializer = "pickle"
accept_content = ["json", "pickle"]
task_default_queue = "default"
task_acks_late = true
worker_prefetch_multiplier = 4
timezone = "Asia/Shanghai"
imports = ["tasks.async_tasks"]
[[task_queues]]
name = "default"
exchange = "default"
exchange_type = "direct"
routing_key = "default"
max_priority = 10
[broker_transport_options]
visibility_timeout = 2
"#;

    #[test]
    fn reads_a_deployment_config() {
        let c = Config::from_toml(DEPLOYMENT).unwrap();
        assert!(c.task_acks_late);
        assert_eq!(
            c.broker_transport_options["visibility_timeout"].as_integer(),
            Some(2)
        );
        assert_eq!(c.task_queues[0].max_priority, Some(10));
        assert!(c.unknown_settings().is_empty());
        assert_eq!(c.tz().unwrap(), chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn selects_queues_like_celery() {
        let c = Config::from_toml(DEPLOYMENT).unwrap();
        let q = c
            .select_queues(&["default".into(), "other".into()], &[])
            .unwrap();
        assert_eq!(q[0].max_priority, Some(10));
        assert_eq!(q[1], QueueSpec::direct("other"));
        let d = Config::default().select_queues(&[], &[]).unwrap();
        assert_eq!(d, vec![QueueSpec::direct("celery")]);
    }

    #[test]
    fn reads_limits_keeping_int_and_float_apart() {
        let c = Config::from_toml("task_time_limit = 10\ntask_soft_time_limit = 2.5\ntask_default_rate_limit = \"10/m\"\nworker_disable_rate_limits = true").unwrap();
        assert_eq!(c.task_time_limit, Some(Seconds::Int(10)));
        assert_eq!(c.task_soft_time_limit, Some(Seconds::Float(2.5)));
        assert_eq!(
            c.task_default_rate_limit
                .as_ref()
                .map(|r| r.to_text())
                .as_deref(),
            Some("10/m")
        );
        assert!(c.worker_disable_rate_limits && c.unknown_settings().is_empty());
        let c = Config::from_toml("task_default_rate_limit = 5").unwrap();
        assert_eq!(
            c.task_default_rate_limit,
            Some(RateLimitSetting::Number(5.0))
        );
    }

    #[test]
    fn wedge_warn_after_defaults_to_a_minute() {
        let minute = Duration::from_secs(60);
        assert_eq!(Config::default().wedge_warn_after(), minute);
        let c = Config::from_toml("rcelery_wedge_warn_after = 2.5").unwrap();
        assert_eq!(c.wedge_warn_after(), Duration::from_millis(2500));
        assert!(c.unknown_settings().is_empty());
        let zero = Config::from_toml("rcelery_wedge_warn_after = 0").unwrap();
        assert_eq!(zero.wedge_warn_after(), minute);
    }

    #[test]
    fn setting_names_are_the_config_fields() {
        let source = include_str!("mod.rs");
        let start = source.find("pub struct Config {").unwrap();
        let end = start + source[start..].find("\n}\n").unwrap();
        let fields: Vec<&str> = source[start..end]
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.split_once(':').map(|(name, _)| name))
            .filter(|name| *name != "unknown")
            .collect();
        assert_eq!(fields, SETTING_NAMES);
    }

    fn json(text: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn json_settings_read_like_the_same_toml() {
        let from_json = Config::from_json_settings(&json(
            r#"{"broker_url": "redis://:123456@localhost:6379/3", "task_serializer": "pickle",
                "accept_content": ["json", "pickle"], "task_default_queue": "default",
                "task_acks_late": true, "worker_prefetch_multiplier": 4,
                "timezone": "Asia/Shanghai", "imports": ["tasks.async_tasks"],
                "task_queues": [{"name": "default", "exchange": "default",
                    "exchange_type": "direct", "routing_key": "default", "max_priority": 10}],
                "broker_transport_options": {"visibility_timeout": 2}}"#,
        ))
        .unwrap();
        let from_toml = Config::from_toml(DEPLOYMENT).unwrap();
        assert_eq!(from_json.broker_url, from_toml.broker_url);
        assert_eq!(from_json.task_queues, from_toml.task_queues);
        assert_eq!(from_json.accept_content, from_toml.accept_content);
        assert_eq!(from_json.task_acks_late, from_toml.task_acks_late);
        assert_eq!(
            from_json.broker_transport_options,
            from_toml.broker_transport_options
        );
        assert_eq!(from_json.tz().unwrap(), chrono_tz::Asia::Shanghai);
        assert!(from_json.unknown_settings().is_empty());
    }

    #[test]
    fn json_null_is_unset_and_unknown_settings_are_kept_aside() {
        let c = Config::from_json_settings(&json(
            r#"{"result_backend": null, "task_time_limit": null, "worker_concurrency": null,
                "result_expires": 60, "task_soft_time_limit": 2.5,
                "worker_max_tasks_per_child": 100, "beat_scheduler": "x",
                "custom_thing": {"a": [1, 2], "b": null},
                "broker_transport_options": {"visibility_timeout": 30, "sep": ":"}}"#,
        ))
        .unwrap();
        assert_eq!(c.result_backend, None);
        assert_eq!(c.task_time_limit, None);
        assert_eq!(c.worker_concurrency, None);
        assert_eq!(c.result_expires, 60.0);
        assert_eq!(c.task_soft_time_limit, Some(Seconds::Float(2.5)));
        assert_eq!(c.unknown_settings(), vec!["custom_thing"]);
        assert_eq!(
            c.broker_transport_options["visibility_timeout"].as_integer(),
            Some(30)
        );
    }

    #[test]
    fn json_settings_that_do_not_fit_are_named() {
        let err = Config::from_json_settings(&json(
            r#"{"task_acks_late": "yes", "worker_prefetch_multiplier": -1, "timezone": "UTC"}"#,
        ))
        .unwrap_err();
        assert!(err.contains("task_acks_late"), "{err}");
        assert!(err.contains("worker_prefetch_multiplier"), "{err}");
        assert!(!err.contains("timezone"), "{err}");
        let err =
            Config::from_json_settings(&json(r#"{"accept_content": ["json", null]}"#)).unwrap_err();
        assert!(err.contains("accept_content"), "{err}");
    }

    #[test]
    fn queue_arguments_give_the_max_priority() {
        let c = Config::from_json_settings(&json(
            r#"{"task_queues": [{"name": "q", "queue_arguments": {"x-max-priority": 5}},
                                {"name": "r", "max_priority": 3,
                                 "queue_arguments": {"x-max-priority": 9}}]}"#,
        ))
        .unwrap();
        let specs: Vec<_> = c.task_queues.iter().map(QueueConfig::to_spec).collect();
        assert_eq!(specs[0].max_priority, Some(5));
        assert_eq!(specs[0].exchange, "q");
        assert_eq!(specs[1].max_priority, Some(3));
    }

    #[test]
    fn queues_are_declared_as_celery_declares_them() {
        use crate::value::Value;
        let c = Config::from_json_settings(&json(
            r#"{"task_default_queue_type": "quorum", "task_queue_max_priority": 10,
                "task_create_missing_queue_type": "quorum",
                "task_default_exchange": "ex", "task_default_routing_key": "rk"}"#,
        ))
        .unwrap();
        let q = c.select_queues(&[], &[]).unwrap();
        assert_eq!(
            (q[0].name.as_str(), q[0].exchange.as_str()),
            ("celery", "ex")
        );
        assert_eq!(q[0].routing_key, "rk");
        assert!(q[0].is_quorum());
        assert_eq!(q[0].arguments.get("x-max-priority"), Some(&Value::Int(10)));
        assert_eq!(q[0].max_priority, Some(10));
        let missing = c.select_queues(&["other".into()], &[]).unwrap();
        assert_eq!(missing[0].exchange, "other");
        assert!(missing[0].is_quorum());
        let catalog = c.queue_catalog();
        assert!(catalog.has_quorum());
        assert_eq!(catalog.missing("x").routing_key, "x");
        let t = Config::from_json_settings(&json(
            r#"{"task_queues": [{"name": "q", "durable": false, "exclusive": true,
                                 "exchange_durable": false,
                                 "queue_arguments": {"x-queue-type": "classic"}}]}"#,
        ))
        .unwrap();
        let spec = t.task_queues[0].to_spec();
        assert!(
            !spec.durable && spec.exclusive && spec.auto_delete,
            "exclusive implies auto_delete"
        );
        assert!(!spec.exchange_durable);
        assert_eq!(spec.queue_type(), "classic");
        assert_eq!(
            t.broker_connection().heartbeat,
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn json_task_routes_read_as_toml_ones() {
        let c = Config::from_json_settings(&json(
            r#"{"task_routes": {"tasks.add": "math", "tasks.*": {"queue": "rest", "priority": 3}}}"#,
        ))
        .unwrap();
        let routes = c.routes().unwrap();
        assert_eq!(
            routes.lookup("tasks.add").unwrap().queue.as_deref(),
            Some("math")
        );
        assert_eq!(routes.lookup("tasks.mul").unwrap().priority, Some(3));
    }

    #[test]
    fn unknown_settings_are_reported() {
        let c = Config::from_toml("frobnicate = 1").unwrap();
        assert_eq!(c.unknown_settings(), vec!["frobnicate"]);
    }

    #[test]
    fn use_ssl_tables_read_as_celery_writes_them() {
        let c = Config::from_toml(
            "broker_use_ssl = { ssl_cert_reqs = 2, ssl_ca_certs = \"/ca.pem\" }\n\
             redis_backend_use_ssl = { ssl_cert_reqs = \"CERT_NONE\" }",
        )
        .unwrap();
        let broker = c
            .broker_use_ssl
            .unwrap()
            .tls_options("broker_use_ssl")
            .unwrap()
            .unwrap();
        assert_eq!(broker.cert_reqs, Some(CertReqs::Required));
        assert_eq!(broker.ca_certs.as_deref(), Some(Path::new("/ca.pem")));
        let backend = c
            .redis_backend_use_ssl
            .unwrap()
            .tls_options("x")
            .unwrap()
            .unwrap();
        assert_eq!(backend.cert_reqs, Some(CertReqs::None));
        let flag = Config::from_toml("broker_use_ssl = true").unwrap();
        assert_eq!(flag.broker_use_ssl.unwrap().tls_options("x"), Ok(None));
        let bad = Config::from_toml("broker_use_ssl = { ssl_cert_reqs = 7 }").unwrap();
        assert!(bad
            .broker_use_ssl
            .unwrap()
            .tls_options("broker_use_ssl")
            .is_err());
        assert!(Config::from_toml("broker_use_ssl = { ssl_frob = 1 }").is_err());
    }
}
