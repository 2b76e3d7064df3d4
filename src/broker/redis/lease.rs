//! Leases on held messages. kombu's ack emulation scores each unacked message in
//! `unacked_index` with the time it was fetched, and any consumer's restore gives back the
//! ones older than the visibility timeout: a message held longer than that (an ETA far off, a
//! long task) goes to another consumer, or back to the same worker, and runs twice. A live
//! worker therefore renews the score of every message it still holds; only a dead worker's
//! messages grow old and come back.

use std::time::Duration;

use super::keys::Keys;
use super::restore::now_secs;
use crate::redis_client::link::{Link, LinkError};

/// Most tags in one `ZADD`.
const CHUNK: usize = 1000;

/// How often holds are renewed: four times per visibility timeout, between 0.25 s and 5 min.
pub(super) fn interval(visibility_timeout: f64) -> Duration {
    let quarter = (visibility_timeout / 4.0).clamp(0.25, 300.0);
    Duration::from_secs_f64(if quarter.is_finite() { quarter } else { 300.0 })
}

/// Sets the `unacked_index` score of each held tag to now. `XX`: a tag no longer in the
/// index (acked meanwhile, or already restored by someone) is left alone.
pub(super) async fn renew(link: &Link, keys: &Keys, tags: &[String]) -> Result<(), LinkError> {
    if tags.is_empty() {
        return Ok(());
    }
    let now = now_secs();
    let mut pipe = redis::pipe();
    for chunk in tags.chunks(CHUNK) {
        let cmd = pipe.cmd("ZADD").arg(&keys.unacked_index).arg("XX");
        for tag in chunk {
            cmd.arg(now).arg(tag);
        }
        cmd.ignore();
    }
    link.run(|mut conn| {
        let pipe = &pipe;
        async move { pipe.query_async::<()>(&mut conn).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_well_within_the_visibility_timeout() {
        assert_eq!(interval(3600.0), Duration::from_secs(300));
        assert_eq!(interval(10.0), Duration::from_secs_f64(2.5));
        assert_eq!(interval(0.1), Duration::from_millis(250));
        assert_eq!(interval(f64::INFINITY), Duration::from_secs(300));
    }
}
