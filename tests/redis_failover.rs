//! The Redis broker on a fail-over list and on Sentinel URLs, against a real redis-server:
//! the first URL of a list down at start, the second one taken; Sentinel without
//! `master_name` refused before any connection. (The fail-over of a running worker, with
//! real sentinels and a Celery producer, is `fault-tests/test_sentinel.py`.)
//!
//! Starts its own redis-server (on a port from env `RCELERY_FAULT_PORTS=LOW-HIGH` when set,
//! else one the kernel picks); needs `redis-server` on PATH and fails, never skips, without it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcelery::broker::redis::{RedisBroker, RedisTransportOptions};
use rcelery::broker::{Broker, BrokerError};

/// A port nothing listens on now.
fn free_port() -> u16 {
    if let Some((low, high)) = std::env::var("RCELERY_FAULT_PORTS")
        .ok()
        .and_then(|r| r.split_once('-').map(|(a, b)| (a.to_owned(), b.to_owned())))
    {
        let (low, high): (u16, u16) = (
            low.parse().expect("RCELERY_FAULT_PORTS low"),
            high.parse().expect("RCELERY_FAULT_PORTS high"),
        );
        // Start at a place that depends on the process, so parallel test binaries differ.
        let span = u32::from(high - low) + 1;
        let offset = (std::process::id() % span) as u16;
        for i in 0..=(high - low) {
            let port = low + (offset + i) % (high - low + 1);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
        panic!("no free port in RCELERY_FAULT_PORTS");
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port");
    listener.local_addr().expect("local address").port()
}

/// A private redis-server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server (is it installed?): {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_first_url_down_at_start_the_second_is_used() {
    let live = Server::start();
    let dead = free_port();
    let url = format!(
        "redis://:S3cret@127.0.0.1:{dead}/0;redis://127.0.0.1:{}/0",
        live.port
    );
    let broker = RedisBroker::connect(&url, RedisTransportOptions::default())
        .await
        .expect("connects to the second URL");
    let shown = broker.display_url();
    assert_eq!(
        shown,
        format!(
            "redis://127.0.0.1:{}/0 (fail-over list of 2, round-robin)",
            live.port
        )
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", live.port)).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("CLIENT LIST");
    assert!(
        clients.lines().count() >= 2,
        "the broker is connected to the live server: {clients}"
    );
}

#[tokio::test]
async fn sentinel_without_master_name_is_refused_before_connecting() {
    let err = RedisBroker::connect(
        "sentinel://:S3cret@127.0.0.1:1;sentinel://127.0.0.1:2",
        RedisTransportOptions::default(),
    )
    .await
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, BrokerError::Url { .. }), "{text}");
    assert!(text.contains("master_name"), "{text}");
    assert!(!text.contains("S3cret"), "{text}");
}

#[tokio::test]
async fn mixed_transports_are_refused() {
    let err = RedisBroker::connect(
        "redis://127.0.0.1:1/0;sentinel://127.0.0.1:2",
        RedisTransportOptions::default(),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("mix transports"), "{err}");
}
