//! kombu's message file names: `<ms>_<uuid4>.<queue>.msg`, `<ms>` being the producer's
//! monotonic clock in milliseconds, so that a sorted listing is oldest first. A consumer
//! takes a file when the part after its first dot is `<queue>.msg`.

use std::sync::OnceLock;
use std::time::Instant;

/// Suffix a consumer gives a file it has taken (renamed in place, so the claim is atomic and
/// kombu's consumers, which look for names ending in `.<queue>.msg`, pass it by).
pub const CLAIMED_SUFFIX: &str = ".rcelery-claimed";

/// Suffix of a file being written (a dot file, which no consumer takes) before it is
/// renamed to its message name.
pub const PARTIAL_SUFFIX: &str = ".rcelery-partial";

/// Why a queue name cannot be a file name.
#[derive(Debug, thiserror::Error)]
#[error("queue name {0:?} cannot be used in a file name (empty, a path separator or a NUL)")]
pub struct BadQueueName(pub String);

/// The file name kombu gives a message for `queue`.
pub fn message_file_name(
    queue: &str,
    millis: u64,
    id: &uuid::Uuid,
) -> Result<String, BadQueueName> {
    check_queue_name(queue)?;
    Ok(format!("{millis}_{id}.{queue}.msg"))
}

/// Refuses queue names that would name another folder.
pub fn check_queue_name(queue: &str) -> Result<(), BadQueueName> {
    if queue.is_empty() || queue.contains(['/', '\\', '\0']) || queue == "." || queue == ".." {
        return Err(BadQueueName(queue.to_owned()));
    }
    Ok(())
}

/// The queue a message file belongs to, as kombu decides it (`name.partition('.')[2]` is
/// `<queue>.msg`); `None` for any other file.
pub fn queue_of(file_name: &str) -> Option<&str> {
    let (_, rest) = file_name.split_once('.')?;
    let queue = rest.strip_suffix(".msg")?;
    (!queue.is_empty()).then_some(queue)
}

/// Milliseconds of the system's monotonic clock, as Python's `time.monotonic()` gives them
/// on Linux, so that rcelery's and kombu's files sort together by age. Read from
/// `/proc/uptime` once (10 ms resolution), then advanced with [`Instant`]; where that file
/// does not exist, the clock starts at this process's start.
pub fn monotonic_millis() -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let (start, base) = BASE.get_or_init(|| {
        let uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(0.0);
        (Instant::now(), (uptime * 1000.0).round() as u64)
    });
    base + start.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_kombu_writes_and_reads_them() {
        let id = uuid::Uuid::parse_str("0b4ee4ea-1bd5-4c04-a8f8-2b1d1c44c1c5").unwrap();
        let name = message_file_name("celery", 3800394, &id).unwrap();
        assert_eq!(
            name,
            "3800394_0b4ee4ea-1bd5-4c04-a8f8-2b1d1c44c1c5.celery.msg"
        );
        assert_eq!(queue_of(&name), Some("celery"));
        // Queue names with dots: everything after the first dot, less `.msg`.
        assert_eq!(queue_of("1_x.a.b.msg"), Some("a.b"));
        assert_eq!(queue_of(&format!("{name}{CLAIMED_SUFFIX}")), None);
        assert_eq!(queue_of(&format!(".{name}{PARTIAL_SUFFIX}")), None);
        assert_eq!(queue_of("garbage"), None);
        assert_eq!(queue_of("x.msg"), None);
        assert!(message_file_name("../etc", 1, &id).is_err());
        assert!(message_file_name("", 1, &id).is_err());
    }

    #[test]
    fn the_clock_does_not_go_back() {
        let a = monotonic_millis();
        let b = monotonic_millis();
        assert!(b >= a);
    }
}
