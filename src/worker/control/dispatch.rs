//! The dispatcher: kombu's `Node.handle_message` and `Node.dispatch` with Celery's
//! `Pidbox.on_message` around them. A command not for this node, or whose sender stopped
//! waiting, is dropped; an unknown command or a failing one is answered with Celery's
//! `{"error": ...}`; a reply goes out only when the command asks for one (`reply_to`).
//! Nothing a message holds can stop the worker: garbage is logged and skipped.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::table;
use super::Shared;
use crate::broker::ExchangeSpec;
use crate::control::{error_result, Command, Reply, ReplyTo};
use crate::protocol::{OutgoingMessage, RawMessage};
use crate::value::Value;

/// What to do with a decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Run it.
    Run,
    /// Not for this node (`destination` or `pattern`).
    NotForUs,
    /// Its sender stopped waiting (`expires` header in the past).
    Expired,
}

/// kombu's rule for whether `hostname` runs `cmd` at `now` (epoch seconds).
pub(super) fn decide(cmd: &Command, hostname: &str, now: f64) -> Decision {
    if !cmd.is_for(hostname) {
        Decision::NotForUs
    } else if cmd.is_expired(now) {
        Decision::Expired
    } else {
        Decision::Run
    }
}

/// Handles one mailbox message; returns the reply to publish, if any.
pub(super) async fn handle(
    shared: &Arc<Shared>,
    raw: &RawMessage,
) -> Option<(ReplyTo, OutgoingMessage)> {
    let control = &shared.control;
    let settings = &shared.settings;
    // Celery forwards its clock on every mailbox message (clients seldom send a useful
    // one), then kombu adjusts it with the sender's.
    control.clock.forward();
    let cmd = match Command::decode(raw, &settings.accept) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a remote control message that cannot be read");
            return None;
        }
    };
    control.clock.adjust(cmd.clock);
    match decide(&cmd, &settings.hostname, now()) {
        Decision::Run => {}
        Decision::NotForUs => return None,
        Decision::Expired => {
            tracing::debug!(method = %cmd.method, "remote control command expired before it arrived; dropped");
            return None;
        }
    }
    tracing::debug!(method = %cmd.method, ticket = ?cmd.ticket, "pidbox received method {}", cmd.method);
    let result = run(shared, &cmd).await?;
    let reply_to = cmd.reply_to?;
    let reply = Reply {
        hostname: settings.hostname.clone(),
        result,
        ticket: cmd.ticket,
        clock: control.clock.forward(),
    };
    let message = reply.encode(settings.control.serializer, &reply_to);
    Some((reply_to, message))
}

/// Runs the command; `None` when it answers nothing (shutdown).
async fn run(shared: &Arc<Shared>, cmd: &Command) -> Option<Value> {
    let Some(handler) = table::find(&cmd.method) else {
        tracing::error!(method = %cmd.method, "No such control command: {}", cmd.method);
        return Some(error_result(format!("KeyError({})", py_str(&cmd.method))));
    };
    match AssertUnwindSafe(handler(shared, &cmd.arguments))
        .catch_unwind()
        .await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::error!(method = %cmd.method, error = %e, "pidbox command error: {e}");
            Some(error_result(e.0))
        }
        Err(_) => {
            tracing::error!(method = %cmd.method, "pidbox command panicked");
            Some(error_result(format!(
                "RuntimeError('command {} failed')",
                cmd.method
            )))
        }
    }
}

/// Publishes a reply to its reply exchange (direct, transient, as kombu declares it).
pub(super) async fn send_reply(shared: &Shared, reply_to: &ReplyTo, message: &OutgoingMessage) {
    let exchange = ExchangeSpec::transient(&reply_to.exchange, "direct");
    if let Err(e) = shared.broker.publish_to(&exchange, message).await {
        tracing::warn!(error = %e, exchange = %reply_to.exchange, "could not send a remote control reply");
    }
}

/// Python's `repr` of a `str` (single quotes unless the text has one and no double quote).
pub(super) fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Dict;

    #[test]
    fn destination_pattern_and_expiry() {
        let mut c = Command::new("ping", Dict::new());
        assert_eq!(decide(&c, "a@h", 10.0), Decision::Run);
        c.destination = Some(vec!["b@h".into()]);
        assert_eq!(decide(&c, "a@h", 10.0), Decision::NotForUs);
        c.destination = None;
        c.pattern = Some("b@*".into());
        c.matcher = Some("glob".into());
        assert_eq!(decide(&c, "a@h", 10.0), Decision::NotForUs);
        assert_eq!(decide(&c, "b@h", 10.0), Decision::Run);
        c.expires = Some(5.0);
        assert_eq!(decide(&c, "b@h", 10.0), Decision::Expired);
        assert_eq!(decide(&c, "b@h", 4.0), Decision::Run);
    }

    #[test]
    fn unknown_commands_are_named_as_python_does() {
        assert_eq!(py_str("nope"), "'nope'");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert!(table::find("nope").is_none());
        assert!(table::find("ping").is_some());
    }
}
