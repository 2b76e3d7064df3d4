//! Chords on the Redis backend with Celery 5.7's keys, against a real Redis: a part counted
//! once however often it runs, the dispatch claimed by one worker, a `done` marker after the
//! body was sent, a failed chord forgetting its size.
//!
//! Needs Redis at `RCELERY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`); fails, never
//! skips, when it is not there. Each test works under its own `global_keyprefix`.

use rcelery::backend::redis::RedisBackend;
use rcelery::backend::{ChordPart, ChordProgress, MetaEncoder, ResultBackend, State};
use rcelery::codec::Serializer;
use rcelery::Value;
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("RCELERY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// Two backends (two workers) under one fresh key prefix, and a plain connection.
async fn setup() -> (
    RedisBackend,
    RedisBackend,
    redis::aio::MultiplexedConnection,
    String,
) {
    let prefix = format!("rcelery-chord-test-{}:", uuid::Uuid::new_v4().simple());
    let encoder = || MetaEncoder {
        serializer: Serializer::Json,
        extended: false,
        timezone: chrono_tz::UTC,
    };
    let expires = Some(std::time::Duration::from_secs(60));
    let a = RedisBackend::connect(&url(), encoder(), expires, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis for tests is not reachable at {}: {e}", url()));
    let b = RedisBackend::connect(&url(), encoder(), expires, &prefix)
        .await
        .expect("second backend");
    let conn = redis::Client::open(url())
        .expect("valid test Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis reachable");
    (a, b, conn, prefix)
}

fn part(group: &str, task: &str, index: i64, result: i64) -> ChordPart {
    ChordPart {
        group_id: group.to_owned(),
        task_id: task.to_owned(),
        group_index: Some(index),
        state: State::Success,
        result: Value::Int(result),
    }
}

fn results(progress: ChordProgress) -> Vec<Value> {
    match progress {
        ChordProgress::Ready(parts) => parts
            .iter()
            .map(|p| p.as_seq().unwrap_or_default()[3].clone())
            .collect(),
        other => panic!("expected the chord to be ready, got {other:?}"),
    }
}

#[tokio::test]
async fn a_part_that_runs_twice_counts_once_and_late_copies_do_nothing() {
    let (a, _, mut conn, prefix) = setup().await;
    let chords = a.native_chords().expect("Redis has native chords");
    chords.set_chord_size("g1", 2).await.expect("size");
    let first = chords
        .chord_part_return(part("g1", "t1", 0, 10), None)
        .await;
    assert_eq!(first.expect("part"), ChordProgress::Pending);
    // The same header task redelivered, returning something else this time.
    let again = chords
        .chord_part_return(part("g1", "t1", 0, 99), None)
        .await;
    assert_eq!(again.expect("part"), ChordProgress::Pending);
    let last = chords
        .chord_part_return(part("g1", "t2", 1, 20), None)
        .await;
    assert_eq!(
        results(last.expect("part")),
        vec![Value::Int(10), Value::Int(20)]
    );
    assert!(chords.keep_dispatch_claim("g1").await.expect("claim"));
    chords.chord_cleanup("g1").await.expect("cleanup");
    let stem = format!("{prefix}celery-taskset-meta-g1");
    for suffix in [".j", ".t", ".s", ".d"] {
        let exists: bool = conn
            .exists(format!("{stem}{suffix}"))
            .await
            .expect("EXISTS");
        assert!(!exists, "{suffix} deleted after the body was sent");
    }
    let marker: Option<String> = conn.get(format!("{stem}.c")).await.expect("GET");
    assert_eq!(marker.as_deref(), Some("done"));
    let late = chords
        .chord_part_return(part("g1", "t2", 1, 20), None)
        .await;
    assert_eq!(late.expect("part"), ChordProgress::Fired);
    let recreated: bool = conn.exists(format!("{stem}.j")).await.expect("EXISTS");
    assert!(!recreated, "a late copy does not recreate the chord");
}

#[tokio::test]
async fn only_one_worker_claims_the_dispatch() {
    let (a, b, _, _) = setup().await;
    let (ca, cb) = (
        a.native_chords().expect("Redis has native chords"),
        b.native_chords().expect("Redis has native chords"),
    );
    ca.set_chord_size("g2", 1).await.expect("size");
    let winner = ca.chord_part_return(part("g2", "t1", 0, 1), None).await;
    assert_eq!(results(winner.expect("part")), vec![Value::Int(1)]);
    // A copy of the same part finishing on another worker sees the chord complete but
    // claimed, so it does not send the body.
    let copy = cb.chord_part_return(part("g2", "t1", 0, 1), None).await;
    assert_eq!(copy.expect("part"), ChordProgress::Pending);
    assert!(!cb.keep_dispatch_claim("g2").await.expect("claim"));
    assert!(ca.keep_dispatch_claim("g2").await.expect("claim"));
}

#[tokio::test]
async fn a_failed_chord_forgets_its_size_and_a_new_run_clears_the_marker() {
    let (a, _, mut conn, prefix) = setup().await;
    let chords = a.native_chords().expect("Redis has native chords");
    let stem = format!("{prefix}celery-taskset-meta-g3");
    chords.set_chord_size("g3", 1).await.expect("size");
    let done = chords.chord_part_return(part("g3", "t1", 0, 1), None).await;
    assert!(matches!(done.expect("part"), ChordProgress::Ready(_)));
    chords.chord_failed("g3").await.expect("failed");
    let size: bool = conn.exists(format!("{stem}.s")).await.expect("EXISTS");
    assert!(!size, "the size is forgotten");
    let copy = chords.chord_part_return(part("g3", "t1", 0, 1), None).await;
    assert_eq!(copy.expect("part"), ChordProgress::NoSize);

    // A frozen chord applied again reuses its group id: setting its size clears the marker.
    let _: () = conn
        .set(format!("{stem}.c"), "done")
        .await
        .expect("SET marker");
    chords.set_chord_size("g3", 3).await.expect("size");
    let marker: bool = conn.exists(format!("{stem}.c")).await.expect("EXISTS");
    assert!(!marker, "a new run starts without the old claim");
    let size: Option<i64> = conn.get(format!("{stem}.s")).await.expect("GET");
    assert_eq!(size, Some(3));
    let ttl: i64 = conn.ttl(format!("{stem}.s")).await.expect("TTL");
    assert!(ttl > 0 && ttl <= 60, "the size expires with result_expires");
}
