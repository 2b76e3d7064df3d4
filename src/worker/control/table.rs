//! The commands by name (Celery's `Panel.data`, aliases included). One line per command.

use super::{
    active, active_queues, add_consumer, cancel_consumer, clock, conf, election, events, heartbeat,
    hello, ping, pool_grow, pool_shrink, query_task, rate_limit, registered, reserved, revoke,
    revoke_by_stamped_headers, scheduled, shutdown, stats, time_limit, Handler,
};

const COMMANDS: &[(&str, Handler)] = &[
    ("ping", ping::run),
    ("stats", stats::run),
    ("active", active::run),
    ("dump_active", active::run),
    ("reserved", reserved::run),
    ("dump_reserved", reserved::run),
    ("scheduled", scheduled::run),
    ("dump_schedule", scheduled::run),
    ("registered", registered::run),
    ("dump_tasks", registered::run),
    ("active_queues", active_queues::run),
    ("conf", conf::run),
    ("dump_conf", conf::run),
    ("query_task", query_task::run),
    ("clock", clock::run),
    ("hello", hello::run),
    ("heartbeat", heartbeat::run),
    ("election", election::run),
    ("shutdown", shutdown::run),
    ("revoke", revoke::run),
    ("terminate", revoke::terminate),
    ("revoke_by_stamped_headers", revoke_by_stamped_headers::run),
    ("enable_events", events::enable),
    ("disable_events", events::disable),
    ("rate_limit", rate_limit::run),
    ("time_limit", time_limit::run),
    ("pool_grow", pool_grow::run),
    ("pool_shrink", pool_shrink::run),
    ("add_consumer", add_consumer::run),
    ("cancel_consumer", cancel_consumer::run),
];

/// The handler of command `name`.
pub(super) fn find(name: &str) -> Option<Handler> {
    COMMANDS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}
