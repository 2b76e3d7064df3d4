use super::*;
use crate::value::Dict;

fn stamped(id: &str, header: &str, value: Value) -> TaskMessage {
    let mut m = TaskMessage::new(id, "tasks.add");
    let mut headers = Dict::new();
    headers.insert("stamped_headers", Value::List(vec![Value::str(header)]));
    let mut stamps = Dict::new();
    stamps.insert(header, value);
    headers.insert("stamps", Value::Dict(stamps));
    m.headers = headers;
    m
}

#[test]
fn a_revoked_id_is_found() {
    let store = Revocations::default();
    let m = TaskMessage::new("t1", "tasks.add");
    assert_eq!(store.check(&m), None);
    assert!(store.revoke(&["t1".into()], None).is_empty());
    assert_eq!(store.check(&m), Some(RevokedBy::Id));
    assert_eq!(store.ids(), vec!["t1"]);
}

#[test]
fn stamps_revoke_by_value_or_in_a_list() {
    let store = Revocations::default();
    store.revoke_stamps(&[("mtask_id".into(), vec![Value::str("s1")])], None);
    let one = stamped("a", "mtask_id", Value::str("s1"));
    let listed = stamped(
        "b",
        "mtask_id",
        Value::List(vec![Value::str("x"), Value::str("s1")]),
    );
    let other = stamped("c", "mtask_id", Value::str("s2"));
    assert!(matches!(store.check(&one), Some(RevokedBy::Stamp { .. })));
    assert!(matches!(
        store.check(&listed),
        Some(RevokedBy::Stamp { .. })
    ));
    assert_eq!(store.check(&other), None);
}

#[tokio::test]
async fn held_requests_are_told_and_terminate_names_them() {
    let store = Arc::new(Revocations::default());
    let m = TaskMessage::new("t2", "tasks.add");
    let mut watch = store.watch(&m);
    assert_eq!(watch.verdict(), Verdict::Live);
    let found = store.revoke(&["t2".into(), "t3".into()], Some(libc::SIGKILL));
    assert_eq!(found, vec!["t2"]);
    assert_eq!(watch.revoked().await, Verdict::Terminated(libc::SIGKILL));
    assert_eq!(watch.terminated().await, libc::SIGKILL);
    drop(watch);
    assert!(store.revoke(&["t2".into()], Some(libc::SIGTERM)).is_empty());
}

#[test]
fn stamped_terminate_reports_the_matching_stamps() {
    let store = Arc::new(Revocations::default());
    let m = stamped("a", "mtask_id", Value::str("s1"));
    let watch = store.watch(&m);
    let matched = store.revoke_stamps(
        &[("mtask_id".into(), vec![Value::str("s1"), Value::str("s9")])],
        Some(libc::SIGTERM),
    );
    assert_eq!(matched.get("mtask_id"), Some(&vec![Value::str("s1")]));
    assert_eq!(watch.verdict(), Verdict::Terminated(libc::SIGTERM));
}

#[test]
fn the_statedb_keeps_ids_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("rcelery-revoke-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("state");
    let store = Revocations::open(Some(path.clone())).expect("opened");
    store.revoke(&["kept".into()], None);
    drop(store);
    let again = Revocations::open(Some(path)).expect("reopened");
    assert_eq!(again.ids(), vec!["kept"]);
    let _ = std::fs::remove_dir_all(&dir);
}
