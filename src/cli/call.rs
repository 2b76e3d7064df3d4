//! `rcelery call NAME --args '[...]' --kwargs '{...}' [--queue Q] [--countdown N] [--wait]`:
//! publishes a task as Celery's `celery call` does and prints its id (or, with `--wait`, its
//! result as JSON).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::args::{CallArgs, Cli};
use super::client_config::{self, ClientConfig};
use super::worker::{connect_backend, connect_broker};
use crate::backend::rpc::{self, RpcBackend};
use crate::backend::MetaEncoder;
use crate::codec::{json, Serializer};
use crate::producer::{Producer, SendOptions, WaitError};
use crate::value::{DateTime, Value};

/// Runs the command; errors are printed with context.
pub async fn run(cli: &Cli, args: &CallArgs) -> ExitCode {
    match call(cli, args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rcelery call: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn call(cli: &Cli, args: &CallArgs) -> Result<ExitCode, String> {
    let ClientConfig { config, broker_url } = client_config::load(cli)?;
    let config = &config;
    let backend_url = cli.result_backend.clone().or(config.result_backend.clone());
    let tz = config.tz()?;
    let serializer_name = args
        .serializer
        .clone()
        .unwrap_or_else(|| config.task_serializer.clone());
    let serializer = Serializer::from_name(&serializer_name)
        .ok_or_else(|| format!("unsupported serializer {serializer_name:?}"))?;

    let positional =
        match json::decode(args.args.as_bytes()).map_err(|e| format!("--args is not JSON: {e}"))? {
            Value::List(items) | Value::Tuple(items) => items,
            other => return Err(format!("--args must be a JSON list, got {other:?}")),
        };
    let keywords = match json::decode(args.kwargs.as_bytes())
        .map_err(|e| format!("--kwargs is not JSON: {e}"))?
    {
        Value::Dict(d) => d,
        other => return Err(format!("--kwargs must be a JSON object, got {other:?}")),
    };
    let mut options = SendOptions {
        queue: args.queue.clone(),
        exchange: args.exchange.clone(),
        routing_key: args.routing_key.clone(),
        priority: args.priority,
        countdown: args.countdown,
        eta: args.eta.as_deref().map(parse_time).transpose()?,
        ..SendOptions::default()
    };
    if let Some(e) = &args.expires {
        match e.parse::<f64>() {
            Ok(secs) => options.expires_in = Some(secs),
            Err(_) => options.expires_at = Some(parse_time(e)?),
        }
    }

    let health = Arc::new(crate::health::Health::new());
    let connected = connect_broker(&broker_url, config, Arc::clone(&health)).await?;
    let broker = Arc::clone(&connected.broker);
    let mut producer = Producer::new(
        Arc::clone(&broker),
        serializer,
        tz.name(),
        &config.task_default_queue,
    )
    .with_default_priority(config.task_default_priority)
    .with_routes(config.routes()?);
    if args.wait {
        let encoder = MetaEncoder {
            serializer,
            extended: false,
            timezone: tz,
        };
        let backend = match backend_url.as_deref().filter(|u| rpc::is_rpc_url(u)) {
            // As Celery's client: consume the reply queue before the task goes out.
            Some(_) => {
                let mut rpc = RpcBackend::new(Arc::clone(&broker), encoder, None);
                rpc.listen(producer.reply_to())
                    .await
                    .map_err(|e| format!("cannot consume the reply queue: {e}"))?;
                Arc::new(rpc)
            }
            None => connect_backend(
                backend_url.as_deref(),
                encoder,
                config,
                Some(&connected),
                health,
            )?,
        };
        producer = producer.with_backend(backend);
    }
    let result = producer
        .send_task(&args.name, positional, keywords, options)
        .await
        .map_err(|e| format!("cannot publish {}: {e}", args.name))?;
    if !args.wait {
        println!("{}", result.id());
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = result
        .get(Some(Duration::from_secs_f64(args.timeout.max(0.0))))
        .await;
    // Reply messages taken are acknowledged before the process ends.
    broker.stop_consuming();
    broker.flush().await;
    match outcome {
        Ok(value) => {
            println!("{}", String::from_utf8_lossy(&json::encode(&value)));
            Ok(ExitCode::SUCCESS)
        }
        Err(WaitError::Failed {
            state,
            exc_type,
            message,
        }) => {
            eprintln!("{} {state}: {exc_type}({message})", result.id());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(format!("{}: {e}", result.id())),
    }
}

fn parse_time(text: &str) -> Result<DateTime, String> {
    DateTime::parse_iso(text).map_err(|e| format!("{text:?} is not an ISO-8601 time: {e}"))
}
