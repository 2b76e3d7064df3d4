//! Names and declarations of the pidbox (kombu's `Mailbox`, as Celery's `app.control`
//! builds it): the fanout exchange `<namespace>.pidbox` the commands go to, the direct
//! exchange `reply.<namespace>.pidbox` the replies go to, each worker's queue
//! `<nodename>.<namespace>.pidbox` and each client's reply queue
//! `<oid>.reply.<namespace>.pidbox`.

use crate::broker::{ExchangeSpec, QueueSpec};
use crate::value::{Dict, Value};

/// The pidbox settings (`control_exchange`, `control_queue_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxSettings {
    /// `control_exchange` (`celery`): the mailbox namespace.
    pub namespace: String,
    /// `control_queue_ttl` (300 s): the message TTL of node and reply queues; `None` for none.
    pub queue_ttl: Option<f64>,
    /// `control_queue_expires` (10 s): how long an unused queue lives; `None` for ever.
    pub queue_expires: Option<f64>,
    /// `control_queue_durable` (false).
    pub queue_durable: bool,
    /// `control_queue_exclusive` (true since Celery 5.7).
    pub queue_exclusive: bool,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        MailboxSettings {
            namespace: "celery".to_owned(),
            queue_ttl: Some(300.0),
            queue_expires: Some(10.0),
            queue_durable: false,
            queue_exclusive: true,
        }
    }
}

impl MailboxSettings {
    /// The command exchange name, `<namespace>.pidbox`.
    pub fn exchange_name(&self) -> String {
        format!("{}.pidbox", self.namespace)
    }

    /// The reply exchange name, `reply.<namespace>.pidbox`.
    pub fn reply_exchange_name(&self) -> String {
        format!("reply.{}.pidbox", self.namespace)
    }

    /// The command exchange: fanout, not durable.
    pub fn exchange(&self) -> ExchangeSpec {
        ExchangeSpec::transient(&self.exchange_name(), "fanout")
    }

    /// The reply exchange: direct, not durable.
    pub fn reply_exchange(&self) -> ExchangeSpec {
        ExchangeSpec::transient(&self.reply_exchange_name(), "direct")
    }

    /// The name of node `hostname`'s queue, `<hostname>.<namespace>.pidbox`.
    pub fn node_queue_name(&self, hostname: &str) -> String {
        format!("{hostname}.{}.pidbox", self.namespace)
    }

    /// Node `hostname`'s queue, bound to the command exchange with routing key `""`, declared
    /// as kombu's `Mailbox.get_queue` does.
    pub fn node_queue(&self, hostname: &str) -> QueueSpec {
        self.queue(
            self.node_queue_name(hostname),
            &self.exchange(),
            String::new(),
        )
    }

    /// A client's reply queue for `oid` (`<oid>.reply.<namespace>.pidbox`, routing key
    /// `oid`), declared as kombu's `Mailbox.get_reply_queue` does.
    pub fn reply_queue(&self, oid: &str) -> QueueSpec {
        self.queue(
            format!("{oid}.{}", self.reply_exchange_name()),
            &self.reply_exchange(),
            oid.to_owned(),
        )
    }

    fn queue(&self, name: String, exchange: &ExchangeSpec, routing_key: String) -> QueueSpec {
        QueueSpec {
            name,
            exchange: exchange.name.clone(),
            exchange_type: exchange.kind.clone(),
            routing_key,
            max_priority: None,
            durable: self.queue_durable,
            auto_delete: !self.queue_durable,
            exclusive: self.queue_exclusive,
            exchange_durable: exchange.durable,
            exchange_auto_delete: exchange.auto_delete,
            arguments: queue_arguments(self.queue_ttl, self.queue_expires),
        }
    }
}

/// kombu's `to_rabbitmq_queue_arguments`: `x-message-ttl` and `x-expires` in whole
/// milliseconds, absent when unset.
pub fn queue_arguments(message_ttl: Option<f64>, expires: Option<f64>) -> Dict {
    let mut args = Dict::new();
    let ms = |s: f64| Value::Int((s * 1000.0) as i64);
    if let Some(ttl) = message_ttl.filter(|t| t.is_finite() && *t >= 0.0) {
        args.insert("x-message-ttl", ms(ttl));
    }
    if let Some(exp) = expires.filter(|t| t.is_finite() && *t > 0.0) {
        args.insert("x-expires", ms(exp));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kombu() {
        let m = MailboxSettings::default();
        assert_eq!(m.exchange_name(), "celery.pidbox");
        assert_eq!(m.reply_exchange_name(), "reply.celery.pidbox");
        let q = m.node_queue("w1@host");
        assert_eq!(q.name, "w1@host.celery.pidbox");
        assert_eq!(q.exchange, "celery.pidbox");
        assert_eq!(q.exchange_type, "fanout");
        assert_eq!(q.routing_key, "");
        assert!(q.exclusive && q.auto_delete && !q.durable && !q.exchange_durable);
        assert_eq!(q.arguments.get("x-message-ttl"), Some(&Value::Int(300_000)));
        assert_eq!(q.arguments.get("x-expires"), Some(&Value::Int(10_000)));
        let r = m.reply_queue("abc");
        assert_eq!(r.name, "abc.reply.celery.pidbox");
        assert_eq!(r.exchange, "reply.celery.pidbox");
        assert_eq!(r.exchange_type, "direct");
        assert_eq!(r.routing_key, "abc");
    }

    #[test]
    fn durable_queues_are_not_auto_deleted() {
        let m = MailboxSettings {
            namespace: "ctl".into(),
            queue_durable: true,
            queue_exclusive: false,
            queue_ttl: None,
            queue_expires: None,
        };
        let q = m.node_queue("n");
        assert_eq!(q.name, "n.ctl.pidbox");
        assert!(q.durable && !q.auto_delete && !q.exclusive);
        assert!(q.arguments.is_empty());
    }
}
