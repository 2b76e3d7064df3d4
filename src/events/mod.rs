//! Monitoring events, as Celery's event dispatcher sends them (`celery.events`): task
//! lifecycle events (`task-received`, `task-started`, ...) when task events are on (`-E`,
//! `worker_send_task_events`, the `enable_events` remote command), and the worker's own
//! `worker-online` / `worker-heartbeat` / `worker-offline` always (Celery's gossip and
//! heartbeat), so that Flower and `celery events` see an rcelery worker as a Celery one.
//!
//! Sending never waits: [`EventDispatcher::send`] stamps the event and puts it on a bounded
//! channel; one publisher task ([`publisher`]) takes what is there in batches and publishes it
//! to the `celeryev` exchange. When the channel is full (the broker is down or slow), events
//! are dropped and counted, with a warning, instead of slowing the tasks.

mod dispatcher;
mod event;
pub mod fields;
mod heartbeat;
mod publisher;

pub use dispatcher::{
    EventDispatcher, EventSettings, EventsStats, DEFAULT_BUFFER, DEFAULT_HEARTBEAT_INTERVAL,
};
pub use event::{event_exchange, group_of, message, routing_key, Event, Stamped, EVENT_EXCHANGE};
pub use heartbeat::{beat, load_average, worker_event, WorkerCounts, SW_IDENT};
pub use publisher::Publisher;
