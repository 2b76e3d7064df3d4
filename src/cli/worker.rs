//! `rcelery worker`: builds broker, backend and worker from config, environment and flags.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::args::{Cli, WorkerArgs};
use super::banner;
use crate::backend::factory::BackendSetup;
use crate::backend::redis::BackendLinkSettings;
use crate::backend::{self, MetaEncoder, ResultBackend};
use crate::broker;
use crate::broker::factory::{BrokerSetup, ConnectedBroker};
use crate::broker::filesystem::default as embedded_default;
use crate::codec::{AcceptContent, Serializer};
use crate::config::{Config, ConfigRequest, LoadedConfig, DEFAULT_BROKER_URL};
use crate::events::{EventSettings, DEFAULT_BUFFER, DEFAULT_HEARTBEAT_INTERVAL};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::producer::Producer;
use crate::redis_client::link::DEFAULT_RESPONSE_TIMEOUT;
use crate::redis_client::sentinel::SentinelOptions;
use crate::state::Startup;
use crate::task::Seconds;
use crate::worker::{
    ChordSettings, ControlSettings, Exit, TimeLimits, Worker, WorkerParts, WorkerSettings,
};
use crate::App;

/// Runs the worker until shutdown; errors are reported here, with context. Also says whether
/// the worker asked to be started again (SIGHUP).
pub async fn run(app: App, cli: &Cli, args: &WorkerArgs) -> (ExitCode, bool) {
    match start(app, cli, args).await {
        Ok(exit) => (ExitCode::SUCCESS, exit == Exit::Restart),
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("rcelery: {message}");
            (ExitCode::FAILURE, false)
        }
    }
}

async fn start(app: App, cli: &Cli, args: &WorkerArgs) -> Result<Exit, String> {
    if let Some(dir) = &cli.workdir {
        std::env::set_current_dir(dir).map_err(|e| format!("cannot change to {dir}: {e}"))?;
    }
    let mut loaded = Config::resolve(&config_request(cli)).map_err(|e| e.to_string())?;
    loaded.log_unused();
    let embedded = embedded_default::apply(&mut loaded.config, cli.broker.as_deref());
    let config = &loaded.config;
    let routes = config.routes()?;
    if let Some(a) = &cli.app {
        let base = a.split(['.', ':']).next().unwrap_or(a);
        if base != app.name() {
            tracing::warn!("-A {a:?}: this binary runs the app {:?}", app.name());
        }
    }
    warn_ignored(args);
    // A task taking state the app does not provide is refused before anything is opened.
    app.check_state().map_err(|e| e.to_string())?;
    if let Some(pidfile) = &args.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pidfile {pidfile}: {e}"))?;
    }

    let broker_url = cli
        .broker
        .clone()
        .or(config.broker_url.clone())
        .unwrap_or_else(|| DEFAULT_BROKER_URL.to_owned());
    let backend_url = cli.result_backend.clone().or(config.result_backend.clone());
    let tz = config.tz()?;
    let accept = AcceptContent::from_names(&config.accept_content)?;
    let result_serializer = Serializer::from_name(&config.result_serializer).ok_or_else(|| {
        format!(
            "unsupported result_serializer {:?}",
            config.result_serializer
        )
    })?;
    let queues = config.select_queues(&args.queues, &args.exclude_queues)?;
    let pool = args.pool.as_deref().unwrap_or("prefork");
    let concurrency = if pool == "solo" {
        1
    } else {
        args.concurrency
            .or(config.worker_concurrency)
            .filter(|c| *c > 0)
            .unwrap_or_else(num_cpus)
    };
    let hostname = node_name(args.hostname.as_deref());

    let health = Arc::new(Health::new());
    let connected = connect_broker(&broker_url, config, Arc::clone(&health)).await?;
    let encoder = MetaEncoder {
        serializer: result_serializer,
        extended: config.result_extended,
        timezone: tz,
    };
    let backend = connect_backend(
        backend_url.as_deref(),
        encoder,
        config,
        Some(&connected),
        Arc::clone(&health),
    )?;
    backend
        .check_at_start()
        .await
        .map_err(|e| format!("cannot use result backend {}: {e}", backend.display_url()))?;
    let broker = connected.broker;
    let state = app
        .start(Startup {
            config: Arc::new(config.clone()),
            hostname: hostname.clone(),
        })
        .await
        .map_err(|e| e.to_string())?;

    let settings = WorkerSettings {
        hostname: hostname.clone(),
        queues,
        queue_catalog: config.queue_catalog(),
        concurrency,
        prefetch_multiplier: args
            .prefetch_multiplier
            .unwrap_or(config.worker_prefetch_multiplier),
        acks_late: config.task_acks_late,
        track_started: config.task_track_started,
        ignore_result: config.task_ignore_result,
        result_extended: config.result_extended,
        accept,
        shutdown_timeout: Duration::from_secs_f64(config.worker_shutdown_timeout.max(0.0)),
        // Celery: the flag, else the setting (its pool's default limits).
        time_limits: TimeLimits {
            hard: args
                .time_limit
                .map(Seconds::Float)
                .or(config.task_time_limit),
            soft: args
                .soft_time_limit
                .map(Seconds::Float)
                .or(config.task_soft_time_limit),
        },
        default_rate_limit: config.task_default_rate_limit.as_ref().map(|r| r.to_text()),
        disable_rate_limits: config.worker_disable_rate_limits,
        forward_unknown: args
            .forward_unknown_tasks
            .clone()
            .or(config.rcelery_forward_unknown_tasks.clone())
            .filter(|q| !q.is_empty()),
        chord: ChordSettings {
            retry_interval: config.result_chord_retry_interval.max(0.0),
            join_timeout: Duration::from_secs_f64(config.result_chord_join_timeout.max(0.0)),
        },
        wedge_warn_after: config.wedge_warn_after(),
        restart_when_wedged: config.rcelery_restart_when_wedged,
        events: EventSettings {
            task_events: args.task_events || config.worker_send_task_events,
            task_sent: config.task_send_sent_event,
            heartbeat: !args.without_heartbeat,
            heartbeat_interval: args
                .heartbeat_interval
                .filter(|s| *s > 0)
                .map_or(DEFAULT_HEARTBEAT_INTERVAL, |s| s as f64),
            buffer: DEFAULT_BUFFER,
        },
        metrics: None,
        control: ControlSettings {
            mingle: !args.without_mingle,
            gossip: !args.without_gossip,
            ..super::control_settings::build(
                config,
                &broker_url,
                Serializer::from_name(&config.task_serializer).unwrap_or(Serializer::Json),
            )
        },
    };
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let _metrics_guard = metrics_stop.clone().drop_guard();
    let metrics_addr = args
        .metrics_addr
        .clone()
        .or(config.rcelery_metrics_addr.clone())
        .filter(|a| !a.is_empty());
    let mut settings = settings;
    if let Some(addr) = metrics_addr {
        let metrics = Arc::new(Metrics::new());
        let bound = crate::metrics::serve(
            &addr,
            Arc::clone(&metrics),
            Arc::clone(&health),
            metrics_stop.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(addr = %bound, "metrics on http://{bound}/metrics, health check on http://{bound}/healthz");
        settings.metrics = Some(metrics);
    }
    let source = loaded.source.to_string();
    let info = banner::Info {
        hostname: &hostname,
        app: app.name(),
        config: &source,
        python_only_tasks: python_only_tasks(&loaded, &app),
        transport: if embedded {
            format!("{} {}", broker.display_url(), embedded_default::BANNER_NOTE)
        } else {
            broker.display_url()
        },
        results: backend.display_url(),
        concurrency,
        pool,
        settings: &settings,
        tasks: app.registry().names(),
    };
    eprintln!("{}", banner::render(&info));
    let task_serializer = Serializer::from_name(&config.task_serializer)
        .ok_or_else(|| format!("unsupported task_serializer {:?}", config.task_serializer))?;
    let producer = Producer::new(
        Arc::clone(&broker),
        task_serializer,
        tz.name(),
        &config.task_default_queue,
    )
    .with_default_priority(config.task_default_priority)
    .with_backend(Arc::clone(&backend))
    .with_routes(routes);
    let parts = WorkerParts {
        registry: app.registry().clone(),
        broker,
        backend,
        producer,
    };
    let mut worker = Worker::with_state(parts, settings, health, Arc::clone(&state))
        .map_err(|e| e.to_string())?;
    if let Some(path) = &args.statedb {
        worker = worker
            .with_statedb(path.into())
            .map_err(|e| e.to_string())?;
    }
    let exit = worker.run().await;
    app.stop(state).await;
    let exit = exit.map_err(|e| e.to_string())?;
    if let Some(pidfile) = args.pidfile.as_ref().filter(|_| exit == Exit::Stopped) {
        let _ = std::fs::remove_file(pidfile);
    }
    Ok(exit)
}

/// What the command line says about where the settings are.
pub(super) fn config_request(cli: &Cli) -> ConfigRequest<'_> {
    ConfigRequest {
        config: cli.config.as_deref(),
        app: cli.app.as_deref(),
        loader: cli.loader.as_deref(),
        broker: cli.broker.as_deref(),
        result_backend: cli.result_backend.as_deref(),
        skip_checks: cli.skip_checks,
    }
}

/// The Celery app's own tasks (not Celery's built-ins) that this binary does not have.
fn python_only_tasks<'a>(loaded: &'a LoadedConfig, app: &App) -> Vec<&'a str> {
    let Some(celery_app) = &loaded.celery_app else {
        return Vec::new();
    };
    let have = app.registry().names();
    celery_app
        .tasks
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("celery.") && !have.contains(t))
        .collect()
}

/// Connects the broker with the config's settings (see [`broker::factory`]).
pub(super) async fn connect_broker(
    url: &str,
    config: &Config,
    health: Arc<Health>,
) -> Result<ConnectedBroker, String> {
    let setup = BrokerSetup {
        transport_options: config.broker_transport_options.clone(),
        use_ssl: config.broker_use_ssl.clone(),
        connection: config.broker_connection(),
        health,
        failover_strategy: config.broker_failover_strategy.clone(),
        queues: config.queue_catalog(),
    };
    broker::factory::connect(url, setup)
        .await
        .map_err(|e| e.to_string())
}

/// Opens the result backend with the config's settings (see [`backend::factory`]); `broker`
/// is the connected broker (the rpc backend publishes through it; a Redis backend on the
/// broker's server shares its settle lane).
pub(super) fn connect_backend(
    url: Option<&str>,
    encoder: MetaEncoder,
    config: &Config,
    broker: Option<&ConnectedBroker>,
    health: Arc<Health>,
) -> Result<Arc<dyn ResultBackend>, String> {
    let link = BackendLinkSettings {
        retry: config.backend_retry(),
        connect_timeout: config.broker_connection().timeout,
        response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        buffer: config.rcelery_result_buffer,
        health,
        use_ssl: match &config.redis_backend_use_ssl {
            Some(setting) => setting.for_redis("redis_backend_use_ssl")?,
            None => None,
        },
    };
    let setup = BackendSetup {
        encoder,
        expires: (config.result_expires > 0.0)
            .then(|| Duration::from_secs_f64(config.result_expires)),
        global_keyprefix: &config.result_backend_transport_options.global_keyprefix,
        chord_ordered: config.result_backend_transport_options.result_chord_ordered,
        chord_join_timeout: Duration::from_secs_f64(config.result_chord_join_timeout.max(0.0)),
        link,
        database: config.database_options(),
        sentinel: SentinelOptions {
            master_name: config.result_backend_transport_options.master_name.clone(),
            min_other_sentinels: config.result_backend_transport_options.min_other_sentinels,
            sentinel_kwargs: config
                .result_backend_transport_options
                .sentinel_kwargs
                .clone(),
        },
        broker,
        persistent: config.result_persistent,
    };
    backend::factory::open(url, setup).map_err(|e| e.to_string())
}

/// Expands Celery's node-name template (`%h` host, `%n` name, `%d` domain); default
/// `celery@<host>`.
fn node_name(template: Option<&str>) -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let (name, domain) = host.split_once('.').unwrap_or((&host, ""));
    let t = template.unwrap_or("celery@%h");
    let t = if t.contains('@') {
        t.to_owned()
    } else {
        format!("celery@{t}")
    };
    t.replace("%h", &host)
        .replace("%n", name)
        .replace("%d", domain)
        .replace("%%", "%")
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One line per Celery flag that rcelery accepts without acting on it.
fn warn_ignored(args: &WorkerArgs) {
    let mut ignored: Vec<&str> = Vec::new();
    let flags: [(bool, &str); 10] = [
        (args.detach, "--detach (running in the foreground)"),
        (
            args.max_tasks_per_child.is_some(),
            "--max-tasks-per-child (no child processes)",
        ),
        (
            args.max_memory_per_child.is_some(),
            "--max-memory-per-child (no child processes)",
        ),
        (args.purge, "--purge"),
        (args.autoscale.is_some(), "--autoscale (use -c)"),
        (args.beat, "-B/--beat (run celery beat separately)"),
        (
            args.uid.is_some() || args.gid.is_some() || args.umask.is_some(),
            "--uid/--gid/--umask",
        ),
        (
            !args.include.is_empty(),
            "-I/--include (tasks are compiled in)",
        ),
        (
            args.scheduler.is_some() || args.schedule_filename.is_some(),
            "--scheduler/--schedule",
        ),
        (args.executable.is_some(), "--executable"),
    ];
    for (set, name) in flags {
        if set {
            ignored.push(name);
        }
    }
    if let Some(p) = args.pool.as_deref() {
        if !matches!(
            p,
            "prefork" | "solo" | "threads" | "processes" | "eventlet" | "gevent" | "custom"
        ) {
            tracing::warn!("unknown pool {p:?}; using rcelery's runtime");
        }
    }
    for name in ignored {
        tracing::warn!("accepted Celery flag without effect: {name}");
    }
}
