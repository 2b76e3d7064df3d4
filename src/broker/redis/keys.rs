//! kombu's Redis key layout: priority sub-queues, binding sets, ack-emulation keys.

/// kombu's separator inside queue keys and binding members.
pub const SEP: &str = "\x06\x16";

/// kombu's default priority steps.
pub const DEFAULT_PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// Key names, all carrying the `global_keyprefix` transport option.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `global_keyprefix` (empty by default).
    pub prefix: String,
    /// Priority steps; step 0 is the plain queue key and is polled first.
    pub steps: Vec<u8>,
    /// The `unacked` hash.
    pub unacked: String,
    /// The `unacked_index` sorted set.
    pub unacked_index: String,
    /// The `unacked_mutex` lock.
    pub unacked_mutex: String,
}

impl Keys {
    /// Builds key names from transport options.
    pub fn new(prefix: &str, steps: Vec<u8>, unacked: &str, index: &str, mutex: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            steps,
            unacked: format!("{prefix}{unacked}"),
            unacked_index: format!("{prefix}{index}"),
            unacked_mutex: format!("{prefix}{mutex}"),
        }
    }

    /// The step a message priority falls into (kombu clamps to 0..=9 and bisects).
    pub fn step_for(&self, priority: u8) -> u8 {
        let p = priority.min(9);
        let idx = self.steps.partition_point(|s| *s <= p);
        self.steps.get(idx.saturating_sub(1)).copied().unwrap_or(0)
    }

    /// The list key holding `queue`'s messages of the given priority.
    pub fn queue_key(&self, queue: &str, priority: u8) -> String {
        let step = self.step_for(priority);
        if step == 0 {
            format!("{}{queue}", self.prefix)
        } else {
            format!("{}{queue}{SEP}{step}", self.prefix)
        }
    }

    /// Every list key of `queues` in kombu's polling order: for each step, each queue.
    pub fn poll_keys(&self, queues: &[String]) -> Vec<String> {
        let mut keys = Vec::with_capacity(queues.len() * self.steps.len());
        for &step in &self.steps {
            for q in queues {
                keys.push(if step == 0 {
                    format!("{}{q}", self.prefix)
                } else {
                    format!("{}{q}{SEP}{step}", self.prefix)
                });
            }
        }
        keys
    }

    /// The set of bindings of `exchange`.
    pub fn binding_set(&self, exchange: &str) -> String {
        format!("{}_kombu.binding.{exchange}", self.prefix)
    }
}

/// A binding-set member: `routing_key SEP pattern SEP queue` (never prefixed).
pub fn binding_member(routing_key: &str, pattern: &str, queue: &str) -> String {
    format!("{routing_key}{SEP}{pattern}{SEP}{queue}")
}

/// Splits a binding-set member into `(routing_key, pattern, queue)`.
pub fn parse_binding_member(member: &str) -> Option<(&str, &str, &str)> {
    let mut parts = member.splitn(3, SEP);
    Some((parts.next()?, parts.next()?, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(
            "",
            DEFAULT_PRIORITY_STEPS.to_vec(),
            "unacked",
            "unacked_index",
            "unacked_mutex",
        )
    }

    #[test]
    fn priorities_map_to_kombu_sub_queues() {
        let k = keys();
        assert_eq!(k.queue_key("celery", 0), "celery");
        assert_eq!(k.queue_key("celery", 2), "celery");
        assert_eq!(k.queue_key("celery", 5), "celery\x06\x163");
        assert_eq!(k.queue_key("celery", 7), "celery\x06\x166");
        assert_eq!(k.queue_key("celery", 9), "celery\x06\x169");
        assert_eq!(k.queue_key("celery", 200), "celery\x06\x169");
    }

    #[test]
    fn poll_order_is_step_major() {
        let k = keys();
        let qs = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(&k.poll_keys(&qs)[..3], &["a", "b", "a\x06\x163"]);
    }

    #[test]
    fn binding_members_round_trip() {
        let m = binding_member("default", "", "default");
        assert_eq!(m, "default\x06\x16\x06\x16default");
        assert_eq!(parse_binding_member(&m), Some(("default", "", "default")));
    }
}
