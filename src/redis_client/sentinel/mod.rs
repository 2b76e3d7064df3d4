//! Redis Sentinel, as kombu's `SentinelChannel` (broker) and Celery's `SentinelBackend`
//! (result backend) use it: `sentinel://h1:26379;sentinel://h2:26379` with the transport
//! option `master_name`.
//!
//! What is read, and from where (kombu 5.7 / Celery 5.7 / redis-py):
//! - the sentinels' addresses: every `sentinel://` URL of the list (port 26379 when none);
//! - the master's user, password and database: the first URL's (Celery's backend takes them
//!   from the first URL explicitly; kombu from the URL in use, the first one at start). The
//!   sentinels themselves get no password from the URL: give it in the transport option
//!   `sentinel_kwargs = {password = "..."}` (`username`, `socket_timeout`,
//!   `socket_connect_timeout` are read too);
//! - `master_name` (required: kombu refuses to start without it) and `min_other_sentinels`
//!   (0).
//!
//! For every connection the sentinels are asked in turn (the one that answered last first,
//! as redis-py does) for `SENTINEL MASTER <master_name>`; an answer counts when its flags say
//! `master` and neither `s_down` nor `o_down`, and it sees at least `min_other_sentinels`
//! other sentinels (redis-py's check). The master found must answer `ROLE` with `master`. A
//! lost connection or a `READONLY` reply (the old master, demoted) makes the link connect
//! again, which asks the sentinels again.

mod endpoint;
mod setup;

pub use endpoint::SentinelEndpoint;
pub use setup::{
    parse_sentinel_url, SentinelError, SentinelOptions, SentinelSetup, DEFAULT_SENTINEL_PORT,
};
