//! Broker fail-over lists, read as kombu reads them: `broker_url = "redis://h1;redis://h2"`
//! (or `amqp://h1;amqp://h2`), ordered by Celery's `broker_failover_strategy`. Shared by the
//! transports: a transport takes a [`FailoverUrls`], connects to [`FailoverUrls::current`],
//! and calls [`FailoverUrls::next_on_failure`] when a connection attempt fails.
//!
//! kombu's semantics (`kombu.connection.Connection`), which these follow:
//! - the text is split on `;`; the first connection goes to the first URL as written, whatever
//!   the strategy;
//! - a failed connection *attempt* moves on to the next URL at once; only when a whole round
//!   of URLs has failed does the caller wait before trying again (its backoff);
//! - a connection that was up and is *lost* is made anew to the same URL first (it moves on
//!   only if that attempt fails);
//! - the worker stays on the URL that works: it never goes back to the first one by itself.
//!
//! Strategies: `round-robin` (Celery's default) takes the next URL in the written order;
//! `shuffle` takes a random one (kombu may draw the one that just failed; rcelery draws
//! among the others). An unknown name fails the start when there is a list, as kombu's
//! `Connection` does; with a single URL kombu never reads it, and rcelery only warns.
//!
//! All URLs of a list must belong to one transport (kombu would switch transports in the
//! middle of a run): a mix is refused at start.

use std::sync::Mutex;

use rand::Rng;

use crate::redis_client::mask_password;

/// How the next URL is chosen after a failure (`broker_failover_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverStrategy {
    /// `round-robin` (default): the next URL in the written order, wrapping around.
    RoundRobin,
    /// `shuffle`: a random URL other than the one that failed.
    Shuffle,
}

impl FailoverStrategy {
    /// Reads `broker_failover_strategy`: unset or empty is `round-robin`.
    pub fn from_setting(name: Option<&str>) -> Result<FailoverStrategy, FailoverError> {
        match name.map(str::trim).unwrap_or("") {
            "" | "round-robin" => Ok(FailoverStrategy::RoundRobin),
            "shuffle" => Ok(FailoverStrategy::Shuffle),
            other => Err(FailoverError::UnknownStrategy(other.to_owned())),
        }
    }

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverStrategy::RoundRobin => "round-robin",
            FailoverStrategy::Shuffle => "shuffle",
        }
    }
}

/// Why a broker URL list cannot be used. URLs in it are masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailoverError {
    /// Nothing but `;` and blanks.
    #[error("the broker URL is empty")]
    Empty,
    /// `broker_failover_strategy` names no strategy.
    #[error(
        "unknown broker_failover_strategy {0:?}: expected \"round-robin\" or \"shuffle\" \
         (a custom iterator, as kombu accepts from Python, is not supported)"
    )]
    UnknownStrategy(String),
    /// The URLs of the list belong to different transports.
    #[error(
        "the broker URLs {urls} mix transports ({first} and {other}): all URLs of a \
         fail-over list must use the same transport"
    )]
    MixedTransports {
        /// The list, each URL masked.
        urls: String,
        /// The first URL's transport.
        first: String,
        /// The first other transport.
        other: String,
    },
}

/// Splits `broker_url` on `;` as kombu does; blanks around each URL and empty pieces are
/// dropped.
pub fn split_urls(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

pub use crate::redis_client::mask_url_list as mask_list;

/// The transport family of a URL's scheme: the URLs of one list must share it.
pub fn family(url: &str) -> String {
    let scheme = url
        .trim_start()
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    match scheme.as_str() {
        "redis" | "rediss" | "redis+socket" | "socket" | "unix" => "redis".to_owned(),
        "amqp" | "amqps" | "pyamqp" | "librabbitmq" => "amqp".to_owned(),
        _ => scheme,
    }
}

/// One connection attempt's URL, as handed out by [`FailoverUrls::current`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The URL's index in [`FailoverUrls::urls`].
    pub index: usize,
    /// How many moves the list had made when it was handed out: a failure reported with an
    /// older stamp does not move the list again (two connections that failed on the same
    /// URL move it once).
    pub stamp: u64,
}

/// What [`FailoverUrls::next_on_failure`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// Where to try now.
    pub attempt: Attempt,
    /// True when every URL has failed since the last success: wait (back off) before
    /// trying again. False: try the next URL at once.
    pub round_failed: bool,
}

#[derive(Debug)]
struct Cursor {
    index: usize,
    stamp: u64,
    /// Failed attempts since the last success.
    failures: usize,
}

/// A broker URL list and the cursor of the URL in use, shared by every connection of one
/// broker (so that they all move together).
#[derive(Debug)]
pub struct FailoverUrls {
    urls: Vec<String>,
    strategy: FailoverStrategy,
    cursor: Mutex<Cursor>,
}

impl FailoverUrls {
    /// Reads `broker_url` (split on `;`) and `broker_failover_strategy`. Refuses an empty
    /// text, a mix of transports, and an unknown strategy when there is a list.
    pub fn parse(text: &str, strategy: Option<&str>) -> Result<FailoverUrls, FailoverError> {
        let urls = split_urls(text);
        let first = urls.first().ok_or(FailoverError::Empty)?;
        let first_family = family(first);
        if let Some(other) = urls.iter().map(|u| family(u)).find(|f| *f != first_family) {
            return Err(FailoverError::MixedTransports {
                urls: mask_list(text),
                first: first_family,
                other,
            });
        }
        let strategy = match FailoverStrategy::from_setting(strategy) {
            Ok(s) => s,
            Err(e) if urls.len() == 1 => {
                tracing::warn!("{e}; with a single broker URL it has no effect");
                FailoverStrategy::RoundRobin
            }
            Err(e) => return Err(e),
        };
        Ok(FailoverUrls::new(urls, strategy))
    }

    /// A list of URLs; the first is used first. An empty `urls` becomes a list of one empty
    /// URL, which the transport then refuses.
    pub fn new(mut urls: Vec<String>, strategy: FailoverStrategy) -> FailoverUrls {
        if urls.is_empty() {
            urls.push(String::new());
        }
        FailoverUrls {
            urls,
            strategy,
            cursor: Mutex::new(Cursor {
                index: 0,
                stamp: 0,
                failures: 0,
            }),
        }
    }

    /// One URL, no fail-over.
    pub fn single(url: &str) -> FailoverUrls {
        FailoverUrls::new(vec![url.to_owned()], FailoverStrategy::RoundRobin)
    }

    /// The URLs, in the order written (passwords included; never log them).
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// How many URLs there are (at least one).
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Always false: a list has at least one URL.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The strategy.
    pub fn strategy(&self) -> FailoverStrategy {
        self.strategy
    }

    /// The URL to connect to now.
    pub fn current(&self) -> Attempt {
        let c = self.lock();
        Attempt {
            index: c.index,
            stamp: c.stamp,
        }
    }

    /// The URL of `attempt` (password included; never log it).
    pub fn url(&self, attempt: Attempt) -> &str {
        &self.urls[attempt.index.min(self.urls.len() - 1)]
    }

    /// The URL in use now, password masked, for logs and the banner.
    pub fn display_current(&self) -> String {
        mask_password(self.url(self.current()))
    }

    /// Changes every time the list moves to another URL: a connection opened before a
    /// change is to a server the others have left.
    pub fn stamp(&self) -> u64 {
        self.lock().stamp
    }

    /// The connection attempt `failed` did not succeed: moves to the next URL (once, however
    /// many connections report the same failure) and says whether a whole round has failed.
    pub fn next_on_failure(&self, failed: Attempt) -> Next {
        let mut c = self.lock();
        if c.stamp == failed.stamp {
            c.failures += 1;
            if self.urls.len() > 1 {
                c.index = self.pick_next(c.index);
                c.stamp += 1;
            }
        }
        Next {
            attempt: Attempt {
                index: c.index,
                stamp: c.stamp,
            },
            round_failed: c.failures.is_multiple_of(self.urls.len()),
        }
    }

    /// A connection was made: the next failure starts a new round.
    pub fn succeeded(&self) {
        self.lock().failures = 0;
    }

    fn pick_next(&self, from: usize) -> usize {
        let n = self.urls.len();
        match self.strategy {
            FailoverStrategy::RoundRobin => (from + 1) % n,
            FailoverStrategy::Shuffle => {
                let step = rand::thread_rng().gen_range(1..n);
                (from + step) % n
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_as_kombu() {
        assert_eq!(
            split_urls(" redis://a:1/0 ; redis://b:2/0;;"),
            vec!["redis://a:1/0", "redis://b:2/0"]
        );
        assert_eq!(split_urls("redis://a"), vec!["redis://a"]);
        assert!(split_urls(" ; ").is_empty());
        assert_eq!(
            FailoverUrls::parse(" ;", None).unwrap_err(),
            FailoverError::Empty
        );
    }

    #[test]
    fn reads_the_strategies() {
        assert_eq!(
            FailoverStrategy::from_setting(None),
            Ok(FailoverStrategy::RoundRobin)
        );
        assert_eq!(
            FailoverStrategy::from_setting(Some("round-robin")),
            Ok(FailoverStrategy::RoundRobin)
        );
        assert_eq!(
            FailoverStrategy::from_setting(Some("shuffle")),
            Ok(FailoverStrategy::Shuffle)
        );
        let e = FailoverUrls::parse("redis://a;redis://b", Some("random")).unwrap_err();
        assert_eq!(e, FailoverError::UnknownStrategy("random".into()));
        assert!(e.to_string().contains("round-robin"), "{e}");
        let one = FailoverUrls::parse("redis://a", Some("random")).expect("kombu ignores it");
        assert_eq!(one.strategy(), FailoverStrategy::RoundRobin);
    }

    #[test]
    fn a_mix_of_transports_is_refused_with_passwords_masked() {
        let e = FailoverUrls::parse("redis://:S3cret@a/0;amqp://u:S3cret@b//", None).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, FailoverError::MixedTransports { .. }), "{text}");
        assert!(text.contains("redis and amqp"), "{text}");
        assert!(!text.contains("S3cret"), "{text}");
        assert!(FailoverUrls::parse("sentinel://a;redis://b", None).is_err());
        assert!(FailoverUrls::parse("redis://a;rediss://b;unix:///s", None).is_ok());
        assert!(FailoverUrls::parse("amqp://a;pyamqp://b", None).is_ok());
    }

    #[test]
    fn round_robin_moves_on_once_per_failure_and_stays_where_it_works() {
        let list = FailoverUrls::parse("redis://a;redis://b;redis://c", None).expect("list");
        let first = list.current();
        assert_eq!(list.url(first), "redis://a");
        let n = list.next_on_failure(first);
        assert_eq!((list.url(n.attempt), n.round_failed), ("redis://b", false));
        // A second connection that failed on `a` too does not skip `b`.
        let again = list.next_on_failure(first);
        assert_eq!(again.attempt, n.attempt);
        let n = list.next_on_failure(n.attempt);
        assert_eq!((list.url(n.attempt), n.round_failed), ("redis://c", false));
        let n = list.next_on_failure(n.attempt);
        assert_eq!(
            (list.url(n.attempt), n.round_failed),
            ("redis://a", true),
            "a whole round failed: back off"
        );
        let n = list.next_on_failure(n.attempt);
        assert_eq!(list.url(n.attempt), "redis://b");
        list.succeeded();
        assert_eq!(
            list.url(list.current()),
            "redis://b",
            "stays on the URL that works"
        );
        let n = list.next_on_failure(list.current());
        assert!(!n.round_failed, "a new round after a success");
        assert_eq!(list.url(n.attempt), "redis://c");
    }

    #[test]
    fn shuffle_starts_with_the_first_and_never_redraws_the_failed_one() {
        let list =
            FailoverUrls::parse("redis://a;redis://b;redis://c", Some("shuffle")).expect("list");
        assert_eq!(list.url(list.current()), "redis://a");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let at = list.current();
            let next = list.next_on_failure(at);
            assert_ne!(next.attempt.index, at.index);
            seen.insert(next.attempt.index);
        }
        assert_eq!(seen.len(), 3, "every URL is drawn");
    }

    #[test]
    fn a_single_url_never_moves_and_every_failure_is_a_round() {
        let list = FailoverUrls::single("redis://a");
        let n = list.next_on_failure(list.current());
        assert_eq!((n.attempt.index, n.round_failed), (0, true));
        assert_eq!(list.stamp(), 0);
    }

    #[test]
    fn masks_each_url_of_a_list() {
        assert_eq!(
            mask_list("sentinel://:pw@h1:26379;sentinel://:pw@h2:26379/0"),
            "sentinel://:**@h1:26379;sentinel://:**@h2:26379/0"
        );
        let list = FailoverUrls::parse("redis://:pw@a/0;redis://b/0", None).expect("list");
        assert_eq!(list.display_current(), "redis://:**@a/0");
    }
}
