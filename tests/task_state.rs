//! Typed application state and subtasks sent from a task, through a real worker on a real
//! Redis: `State<T>` parameters (ready values and values built by start-up hooks) in async
//! and blocking tasks, a missing state type refused before the worker starts, a failing
//! start-up hook reported with its password masked, and `Context::send_task` publishing with
//! Celery's parent and root ids and listing the subtask in the parent's `children`.
//!
//! Needs Redis at `RCELERY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`; results go
//! to database 14 of the same server); fails, never skips, when it is not there. Every key is
//! under the test's own prefix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcelery::backend::redis::RedisBackend;
use rcelery::backend::{MetaEncoder, ResultBackend};
use rcelery::broker::redis::{RedisBroker, RedisTransportOptions};
use rcelery::broker::{Broker, QueueSpec};
use rcelery::codec::{AcceptContent, Serializer};
use rcelery::config::Config;
use rcelery::health::Health;
use rcelery::producer::{Producer, SendOptions};
use rcelery::state::{Startup, StartupError};
use rcelery::task::TaskResult;
use rcelery::worker::{ChordSettings, TimeLimits, Worker, WorkerParts, WorkerSettings};
use rcelery::{App, Context, Dict, State, Value};
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("RCELERY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// The test URL with database 14 (13 if the broker's is 14): results live apart.
fn results_url() -> String {
    let u = url();
    match u.rsplit_once('/') {
        Some((head, db)) if db.parse::<u32>().is_ok() => {
            format!("{head}/{}", if db == "14" { "13" } else { "14" })
        }
        _ => format!("{}/14", u.trim_end_matches('/')),
    }
}

/// A ready state value.
#[derive(Clone)]
struct Greeting(&'static str);

/// A value a start-up hook builds: counts the tasks that used it.
#[derive(Clone)]
struct Counter(Arc<AtomicUsize>);

#[rcelery::task(name = "t.parent")]
async fn parent(
    ctx: Context,
    n: i64,
    State(greeting): State<Greeting>,
    State(counter): State<Counter>,
) -> TaskResult<String> {
    counter.0.fetch_add(1, Ordering::SeqCst);
    let options = SendOptions {
        queue: Some("children".into()),
        ..SendOptions::default()
    };
    let child = ctx
        .send_task("t.child", vec![Value::Int(n + 1)], Dict::new(), options)
        .await?;
    let mut sig = rcelery::protocol::Signature::new("t.applied");
    sig.args = vec![Value::Int(n)];
    sig.options.insert("queue", "children");
    let applied = ctx.apply(&sig).await?;
    Ok(format!("{} {} {}", greeting.0, child.id(), applied.id()))
}

#[rcelery::task(name = "t.blocking_parent")]
fn blocking_parent(ctx: &Context, counter: State<Counter>) -> TaskResult<String> {
    let Counter(used) = &*counter;
    used.fetch_add(1, Ordering::SeqCst);
    let options = SendOptions {
        queue: Some("children".into()),
        ..SendOptions::default()
    };
    let child = ctx.send_task_blocking("t.child", Vec::new(), Dict::new(), options)?;
    Ok(child.id().to_owned())
}

#[rcelery::task(name = "t.greet")]
fn greet(name: String, State(greeting): State<Greeting>) -> TaskResult<String> {
    Ok(format!("{} {name}", greeting.0))
}

fn startup() -> Startup {
    Startup {
        config: Arc::new(Config::default()),
        hostname: "test@localhost".into(),
    }
}

#[test]
fn the_macro_records_the_state_types_a_task_takes() {
    let requires = parent::task().requires;
    let names: Vec<&str> = requires.iter().map(|r| r.type_name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("Greeting") && names[1].ends_with("Counter"));
    assert!(greet::task().requires[0].type_name.ends_with("Greeting"));
}

#[test]
fn a_task_called_directly_takes_state_from_its_context() {
    let mut state = rcelery::state::StateMap::new();
    state.insert(Greeting("hello"));
    let request = rcelery::task::Request::new(message_for_test(), "w".into());
    let ctx = Context::new(Arc::new(request)).with_state(state);
    assert_eq!(
        greet(
            "Ann".into(),
            ctx.state::<Greeting>().map(State).expect("state")
        )
        .unwrap(),
        "hello Ann"
    );
    let rcelery::task::Handler::Blocking(run) = greet::task().handler else {
        panic!("greet is a blocking task");
    };
    let out = run(ctx.clone(), vec![Value::str("Bob")], Dict::new()).expect("runs");
    assert_eq!(out, Value::str("hello Bob"));
    // A context without the value fails the task (never panics).
    let bare = Context::new(Arc::new(rcelery::task::Request::new(
        message_for_test(),
        "w".into(),
    )));
    let err = run(bare, vec![Value::str("Bob")], Dict::new()).expect_err("no state");
    assert!(err.message().contains("Greeting"), "{}", err.message());
}

#[tokio::test]
async fn a_missing_state_type_stops_the_start() {
    let app = App::new("t").register(greet::task());
    let err = app.start(startup()).await.expect_err("Greeting is missing");
    assert!(
        matches!(&err, StartupError::Missing { task, type_name } if task == "t.greet" && type_name.ends_with("Greeting")),
        "{err}"
    );
    assert!(app.state(Greeting("hi")).start(startup()).await.is_ok());
}

#[tokio::test]
async fn a_failing_start_up_hook_stops_the_start_with_its_password_masked() {
    let app = App::new("t")
        .state(Greeting("hi"))
        .on_startup(|_s: Startup| async {
            Err::<Counter, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "cannot connect to postgres://app:S3cretPw@db.internal:5432/users",
            ))
        })
        .register(parent::task());
    let err = app.start(startup()).await.expect_err("the hook fails");
    let text = err.to_string();
    assert!(
        text.contains("Counter") && text.contains("db.internal"),
        "{text}"
    );
    assert!(!text.contains("S3cretPw"), "password shown: {text}");
}

#[tokio::test]
async fn tasks_take_state_and_send_subtasks_with_parent_and_root() {
    let prefix = format!("rcelery-test-{}:", uuid::Uuid::new_v4());
    let options = RedisTransportOptions {
        global_keyprefix: prefix.clone(),
        ..RedisTransportOptions::default()
    };
    let broker: Arc<dyn Broker> = Arc::new(
        RedisBroker::connect(&url(), options)
            .await
            .unwrap_or_else(|e| panic!("Redis for tests is not reachable at {}: {e}", url())),
    );
    let encoder = MetaEncoder {
        serializer: Serializer::Json,
        extended: false,
        timezone: chrono_tz::UTC,
    };
    let backend: Arc<dyn ResultBackend> = Arc::new(
        RedisBackend::connect(
            &results_url(),
            encoder,
            Some(Duration::from_secs(300)),
            &prefix,
        )
        .await
        .expect("backend connects"),
    );
    let producer = Producer::new(Arc::clone(&broker), Serializer::Json, "UTC", "q")
        .with_backend(Arc::clone(&backend));

    let used = Arc::new(AtomicUsize::new(0));
    let hook_counter = Arc::clone(&used);
    let app = App::new("t")
        .state(Greeting("hi"))
        .on_startup(move |_s: Startup| {
            let c = Arc::clone(&hook_counter);
            async move { Ok::<_, std::io::Error>(Counter(c)) }
        })
        .register(parent::task())
        .register(blocking_parent::task());
    let state = app.start(startup()).await.expect("state ready");
    let parts = WorkerParts {
        registry: app.registry().clone(),
        broker: Arc::clone(&broker),
        backend: Arc::clone(&backend),
        producer: producer.clone(),
    };
    let worker = Worker::with_state(parts, settings(), Arc::new(Health::new()), state)
        .expect("worker assembles");
    // The worker runs beside the checks (its future stays on this thread, as in the binary).
    tokio::select! {
        exit = worker.run() => panic!("the worker stopped: {exit:?}"),
        _ = check(&producer, &used, &prefix) => {}
    }
}

async fn check(producer: &Producer, used: &AtomicUsize, prefix: &str) {
    let sent = producer
        .send_task(
            "t.parent",
            vec![Value::Int(41)],
            Dict::new(),
            SendOptions::default(),
        )
        .await
        .expect("published");
    let value = sent
        .get(Some(Duration::from_secs(20)))
        .await
        .expect("t.parent succeeds");
    let text = value.as_str().expect("a str").to_owned();
    let ids = text.strip_prefix("hi ").expect("greeting from state");
    let (child_id, applied_id) = ids.split_once(' ').expect("two subtask ids");

    let blocking = producer
        .send_task(
            "t.blocking_parent",
            Vec::new(),
            Dict::new(),
            SendOptions::default(),
        )
        .await
        .expect("published");
    let blocking_child = blocking
        .get(Some(Duration::from_secs(20)))
        .await
        .expect("t.blocking_parent succeeds");
    assert_eq!(used.load(Ordering::SeqCst), 2);

    // The subtasks wait in their queue with Celery's parent and root ids.
    let client = redis::Client::open(url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let queued: Vec<String> = conn
        .lrange(format!("{prefix}children"), 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(queued.len(), 3, "{queued:?}");
    let header = |raw: &str, key: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(raw).expect("an envelope");
        v["headers"][key].as_str().map(str::to_owned)
    };
    let first = queued
        .iter()
        .find(|m| header(m, "id").as_deref() == Some(child_id))
        .expect("the async parent's child is queued");
    assert_eq!(header(first, "task").as_deref(), Some("t.child"));
    assert_eq!(header(first, "parent_id").as_deref(), Some(sent.id()));
    assert_eq!(header(first, "root_id").as_deref(), Some(sent.id()));
    let applied = queued
        .iter()
        .find(|m| header(m, "id").as_deref() == Some(applied_id))
        .expect("the applied signature is queued");
    assert_eq!(header(applied, "task").as_deref(), Some("t.applied"));
    assert_eq!(header(applied, "parent_id").as_deref(), Some(sent.id()));
    assert_eq!(header(applied, "root_id").as_deref(), Some(sent.id()));
    let second = queued
        .iter()
        .find(|m| header(m, "id").as_deref() == blocking_child.as_str())
        .expect("the blocking parent's child is queued");
    assert_eq!(header(second, "parent_id").as_deref(), Some(blocking.id()));

    // The parent's stored result lists the subtask as Celery's `children`.
    let results = redis::Client::open(results_url()).expect("url");
    let mut results = results
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let meta_key = format!("{prefix}celery-task-meta-{}", sent.id());
    let meta: String = results.get(&meta_key).await.expect("GET meta");
    let meta: serde_json::Value = serde_json::from_str(&meta).expect("json meta");
    assert_eq!(
        meta["children"],
        serde_json::json!([[[child_id, null], null], [[applied_id, null], null]]),
        "{meta}"
    );

    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap_or_default();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap_or(());
    }
    let keys: Vec<String> = results.keys(format!("{prefix}*")).await.unwrap_or_default();
    if !keys.is_empty() {
        let _: () = results.del(keys).await.unwrap_or(());
    }
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        hostname: "w1@test".into(),
        queues: vec![QueueSpec::direct("q")],
        queue_catalog: Default::default(),
        concurrency: 2,
        prefetch_multiplier: 4,
        acks_late: false,
        track_started: false,
        ignore_result: false,
        result_extended: false,
        accept: AcceptContent::from_names(&["json"]).expect("json"),
        shutdown_timeout: Duration::from_secs(5),
        time_limits: TimeLimits::default(),
        default_rate_limit: None,
        disable_rate_limits: false,
        forward_unknown: None,
        chord: ChordSettings::default(),
        wedge_warn_after: Duration::from_secs(60),
        restart_when_wedged: false,
        events: Default::default(),
        metrics: None,
        control: Default::default(),
    }
}

/// A decoded message for a task called directly.
fn message_for_test() -> rcelery::protocol::TaskMessage {
    rcelery::protocol::TaskMessage::new("id", "t.greet")
}
