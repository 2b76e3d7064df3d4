//! The producer side: publishing tasks the way Celery's `send_task` / `apply_async` does, from
//! Rust code, from the `rcelery call` command, and from the worker itself (retries, `link`
//! callbacks, chains, errbacks).

mod options;
mod result;
mod routes;

pub use options::SendOptions;
pub use result::{AsyncResult, WaitError};
pub use routes::{Route, Routes};

use std::sync::Arc;

use crate::backend::ResultBackend;
use crate::broker::{Broker, BrokerError};
use crate::codec::Serializer;
use crate::protocol::{Embed, NewTask, Signature, TimeLimits};
use crate::value::{DateTime, Dict, TzInfo, Value};

/// Publishes task messages on a broker.
#[derive(Clone)]
pub struct Producer {
    broker: Arc<dyn Broker>,
    backend: Option<Arc<dyn ResultBackend>>,
    serializer: Serializer,
    timezone: TzInfo,
    origin: String,
    reply_to: String,
    default_queue: String,
    routes: Arc<Routes>,
    default_priority: Option<u8>,
    /// Sends `task-sent` for each task published (`task_send_sent_event`), when set.
    sent_events: Option<crate::events::EventDispatcher>,
}

impl Producer {
    /// A producer publishing with `serializer` (`task_serializer`), stamping ETAs in
    /// `timezone` (the app timezone), routing unrouted tasks to `default_queue`.
    pub fn new(
        broker: Arc<dyn Broker>,
        serializer: Serializer,
        timezone: &str,
        default_queue: &str,
    ) -> Producer {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        Producer {
            broker,
            backend: None,
            serializer,
            timezone: if timezone == "UTC" {
                TzInfo::Utc
            } else {
                TzInfo::Zone(timezone.to_owned())
            },
            origin: format!("gen{}@{host}", std::process::id()),
            reply_to: uuid::Uuid::new_v4().to_string(),
            default_queue: default_queue.to_owned(),
            routes: Arc::new(Routes::default()),
            default_priority: None,
            sent_events: None,
        }
    }

    /// Routes tasks sent without a destination by `task_routes`, as Celery's router does.
    pub fn with_routes(mut self, routes: Routes) -> Producer {
        self.routes = Arc::new(routes);
        self
    }

    /// The priority of tasks sent without one (`task_default_priority`, which Celery's
    /// `Task.apply_async` applies).
    pub fn with_default_priority(mut self, priority: Option<u8>) -> Producer {
        self.default_priority = priority;
        self
    }

    /// The backend [`AsyncResult`]s read from.
    pub fn with_backend(mut self, backend: Arc<dyn ResultBackend>) -> Producer {
        self.backend = Some(backend);
        self
    }

    /// The `reply_to` of the tasks this producer sends (its reply queue: the rpc backend's
    /// results come back there).
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// This producer's node name (`gen<pid>@<host>`), the `origin` header.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Now, in the app timezone (Celery's `app.now()`).
    pub fn now(&self) -> DateTime {
        DateTime::now_in(&self.timezone)
    }

    /// The queue `task_routes` sends `name` to (`None`: the default queue), as Celery's
    /// `router.route(options, name)['queue']`.
    pub fn routed_queue(&self, name: &str) -> Option<String> {
        self.routes.lookup(name).and_then(|r| r.queue.clone())
    }

    /// Celery's `send_task`: publishes `name(*args, **kwargs)` and returns its result handle.
    pub async fn send_task(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Dict,
        options: SendOptions,
    ) -> Result<AsyncResult, BrokerError> {
        let task = self.build(name, args, kwargs, options);
        self.publish(&task).await?;
        Ok(self.result(&task.id))
    }

    /// Calls a signature with partial arguments and extra options, as
    /// `Signature.apply_async(args, kwargs, **options)` does.
    pub async fn apply_signature(
        &self,
        sig: &Signature,
        args: Vec<Value>,
        kwargs: Dict,
        extra: SendOptions,
    ) -> Result<AsyncResult, BrokerError> {
        let (args, kwargs) = sig.merged_arguments(args, kwargs);
        let options = SendOptions::from_signature_options(&sig.options).overridden_by(extra);
        self.send_task(&sig.task, args, kwargs, options).await
    }

    /// Builds the message `send_task` would publish.
    pub fn build(&self, name: &str, args: Vec<Value>, kwargs: Dict, o: SendOptions) -> NewTask {
        let id = o
            .task_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let now = chrono::Utc::now();
        let at = |secs: f64| {
            let micros = (secs * 1e6).round() as i64;
            DateTime::from_utc_in(
                &(now + chrono::Duration::microseconds(micros)),
                &self.timezone,
            )
        };
        let eta = o
            .eta
            .clone()
            .or_else(|| o.countdown.filter(|c| *c != 0.0).map(at));
        let (expires, expires_in) = match (&o.expires_at, o.expires_in) {
            (Some(at_time), _) => {
                let left = at_time
                    .to_utc_assuming_utc()
                    .map(|t| (t - now).num_microseconds().unwrap_or(0) as f64 / 1e6);
                (Some(at_time.clone()), left)
            }
            (None, Some(secs)) => (Some(at(secs)), Some(secs)),
            (None, None) => (None, None),
        };
        // Celery's router: the route's options are defaults, the caller's win.
        let route = self.routes.lookup(name);
        let from_route = |f: fn(&Route) -> &Option<String>| route.and_then(|r| f(r).clone());
        let queue = o.queue.clone().or_else(|| from_route(|r| &r.queue));
        let exchange = o.exchange.clone().or_else(|| from_route(|r| &r.exchange));
        let routing_key = o
            .routing_key
            .clone()
            .or_else(|| from_route(|r| &r.routing_key));
        let priority = o
            .priority
            .or_else(|| route.and_then(|r| r.priority))
            .or(self.default_priority);
        let (exchange, routing_key) = match (&exchange, &routing_key, &queue) {
            (Some(ex), Some(rk), _) => (ex.clone(), rk.clone()),
            (_, _, Some(q)) => (String::new(), q.clone()),
            (Some(ex), None, None) => (ex.clone(), self.default_queue.clone()),
            (None, Some(rk), None) => (String::new(), rk.clone()),
            (None, None, None) => (String::new(), self.default_queue.clone()),
        };
        let sigs = |list: &[Signature]| {
            (!list.is_empty()).then(|| Value::List(list.iter().map(Signature::to_value).collect()))
        };
        NewTask {
            root_id: o.root_id.clone().or_else(|| Some(id.clone())),
            id,
            name: name.to_owned(),
            args,
            kwargs,
            embed: Embed {
                callbacks: sigs(&o.link),
                errbacks: sigs(&o.link_error),
                chain: o.chain.clone(),
                chord: o.chord.clone(),
            },
            eta,
            expires,
            expires_in,
            retries: o.retries,
            group: o.group_id.clone(),
            group_index: o.group_index,
            parent_id: o.parent_id.clone(),
            timelimit: TimeLimits {
                hard: o.time_limit,
                soft: o.soft_time_limit,
            },
            ignore_result: Some(o.ignore_result),
            shadow: o.shadow.clone(),
            origin: o.origin.clone().unwrap_or_else(|| self.origin.clone()),
            replaced_task_nesting: o.replaced_task_nesting,
            extra_headers: o.headers.clone(),
            reply_to: o.reply_to.clone().unwrap_or_else(|| self.reply_to.clone()),
            priority,
            exchange,
            routing_key,
        }
    }

    /// Serializes and publishes a built message.
    pub async fn publish(&self, task: &NewTask) -> Result<(), BrokerError> {
        let message = task.encode(self.serializer);
        self.broker.publish(&message).await?;
        if let Some(events) = &self.sent_events {
            events.send_always(crate::events::fields::task_sent(task, &message.headers));
        }
        Ok(())
    }

    /// This producer sending a `task-sent` event through `events` for each task it
    /// publishes (Celery's `task_send_sent_event`), whether task events are on or not.
    pub fn with_sent_events(mut self, events: crate::events::EventDispatcher) -> Producer {
        self.sent_events = Some(events);
        self
    }

    /// A handle on the result of task `id`.
    pub fn result(&self, id: &str) -> AsyncResult {
        AsyncResult::new(id, self.backend.clone())
    }
}
