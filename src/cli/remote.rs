//! `rcelery inspect COMMAND`, `rcelery control COMMAND` and `rcelery status`: thin commands
//! over [`crate::control::ControlClient`], printing as Celery's CLI does. No reply within
//! the timeout exits with 69 (`EX_UNAVAILABLE`), as Celery's does.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::args::{Cli, RemoteArgs, StatusArgs};
use super::client_config::{self, ClientConfig};
use super::remote_output::{as_json, node_reply, online};
use super::worker::connect_broker;
use crate::codec::{AcceptContent, Serializer};
use crate::control::panel::{self, Kind};
use crate::control::{Broadcast, ControlClient, MailboxSettings};
use crate::value::Dict;

/// Celery's `EX_UNAVAILABLE`.
const EX_UNAVAILABLE: u8 = 69;

/// `rcelery inspect` (`kind` Inspect) or `rcelery control` (`kind` Control).
pub async fn run(cli: &Cli, args: &RemoteArgs, kind: Kind) -> ExitCode {
    let word = match kind {
        Kind::Inspect => "inspect",
        Kind::Control => "control",
    };
    let arguments = match panel::compile(kind, &args.command, &args.args) {
        Ok(a) => a,
        Err(usage) => {
            eprintln!("Error: {usage}");
            return ExitCode::from(2);
        }
    };
    let request = Request {
        command: &args.command,
        arguments,
        timeout: args.timeout,
        destination: &args.destination,
        json: args.json,
    };
    report(cli, &format!("{word} {}", args.command), request, true).await
}

/// `rcelery status`: `ping` every node, print who answered.
pub async fn status(cli: &Cli, args: &StatusArgs) -> ExitCode {
    let request = Request {
        command: "ping",
        arguments: Dict::new(),
        timeout: args.timeout,
        destination: &args.destination,
        json: args.json,
    };
    report(cli, "status", request, false).await
}

struct Request<'a> {
    command: &'a str,
    arguments: Dict,
    timeout: f64,
    destination: &'a [String],
    json: bool,
}

async fn report(cli: &Cli, what: &str, r: Request<'_>, show_body: bool) -> ExitCode {
    let replies = match broadcast(cli, &r).await {
        Ok(replies) => replies,
        Err(e) => {
            eprintln!("Error: {what}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if replies.is_empty() {
        eprintln!("Error: No nodes replied within time constraint");
        return ExitCode::from(EX_UNAVAILABLE);
    }
    if r.json {
        println!("{}", as_json(&replies));
        if show_body {
            return ExitCode::SUCCESS;
        }
    } else {
        for (node, reply) in &replies {
            println!("{}", node_reply(node, reply, show_body));
        }
    }
    println!("{}", online(replies.len()));
    ExitCode::SUCCESS
}

async fn broadcast(
    cli: &Cli,
    r: &Request<'_>,
) -> Result<indexmap::IndexMap<String, crate::value::Value>, String> {
    let ClientConfig { config, broker_url } = client_config::load(cli)?;
    let config = &config;
    let serializer = Serializer::from_name(&config.task_serializer).unwrap_or(Serializer::Json);
    let accept = AcceptContent::from_names(&config.accept_content).map_err(|e| e.to_string())?;
    let health = Arc::new(crate::health::Health::new());
    let connected = connect_broker(&broker_url, config, health).await?;
    let mailbox = MailboxSettings {
        namespace: config.control_exchange.clone(),
        queue_ttl: config.control_queue_ttl,
        queue_expires: config.control_queue_expires,
        queue_durable: config.control_queue_durable,
        queue_exclusive: config.control_queue_exclusive,
    };
    let client = ControlClient::new(Arc::clone(&connected.broker), mailbox, serializer, accept);
    let destination = (!r.destination.is_empty()).then(|| r.destination.to_vec());
    let limit = destination.as_ref().map(Vec::len);
    let b = Broadcast {
        method: r.command.to_owned(),
        arguments: r.arguments.clone(),
        destination,
        reply: true,
        timeout: Duration::from_secs_f64(r.timeout.max(0.0)),
        limit,
    };
    client.broadcast(&b).await.map_err(|e| e.to_string())
}
