//! The Sentinel-managed master as a link's endpoint: the sentinels asked anew for every
//! connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::{Client, ErrorKind, RedisError};

use super::setup::SentinelSetup;
use crate::redis_client::client::{client, Timeouts};
use crate::redis_client::endpoint::{Endpoint, OpenError, Opened};
use crate::redis_client::url::{Address, RedisUrlError, Scheme};

/// The master the sentinels name, found anew for every connection.
pub struct SentinelEndpoint {
    setup: SentinelSetup,
    clients: Vec<Client>,
    /// Indexes into `clients`, the sentinel that answered last first.
    order: Mutex<Vec<usize>>,
    /// The master's address at the last connection.
    master: Mutex<Option<(String, u16)>>,
    stamp: AtomicU64,
}

impl SentinelEndpoint {
    /// An endpoint for `setup` (nothing is connected yet).
    pub fn new(setup: SentinelSetup) -> Result<SentinelEndpoint, RedisUrlError> {
        let clients = setup
            .sentinels
            .iter()
            .map(client)
            .collect::<Result<Vec<_>, _>>()?;
        // The master's TLS files are read once here too, so a bad one fails the start.
        client(&setup.master)?;
        Ok(SentinelEndpoint {
            order: Mutex::new((0..clients.len()).collect()),
            clients,
            setup,
            master: Mutex::new(None),
            stamp: AtomicU64::new(0),
        })
    }

    /// The setup.
    pub fn setup(&self) -> &SentinelSetup {
        &self.setup
    }

    /// Asks the sentinels for the master's address.
    async fn resolve(&self, timeouts: Timeouts) -> Result<(String, u16), RedisError> {
        let order = lock(&self.order).clone();
        let mut errors = Vec::new();
        for i in order {
            let shown = match &self.setup.sentinels[i].address {
                Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
                Address::Tcp { host, port } => format!("{host}:{port}"),
                Address::Unix(path) => path.display().to_string(),
            };
            match self.ask(i, timeouts).await {
                Ok(Ok(addr)) => {
                    let mut o = lock(&self.order);
                    if let Some(pos) = o.iter().position(|&x| x == i) {
                        o.swap(0, pos);
                    }
                    return Ok(addr);
                }
                Ok(Err(why)) => errors.push(format!("{shown}: {why}")),
                Err(e) => errors.push(format!("{shown}: {e}")),
            }
        }
        Err(RedisError::from((
            ErrorKind::MasterNameNotFoundBySentinel,
            "no master found",
            format!(
                "no sentinel names a master for {:?} ({})",
                self.setup.master_name,
                errors.join("; ")
            ),
        )))
    }

    /// One sentinel's answer: the master's address, or why it gave none.
    async fn ask(
        &self,
        i: usize,
        timeouts: Timeouts,
    ) -> Result<Result<(String, u16), String>, RedisError> {
        let url = &self.setup.sentinels[i];
        let mut conn = self.clients[i]
            .get_multiplexed_async_connection_with_config(
                &Timeouts::for_url(url, timeouts).config(),
            )
            .await?;
        let reply: Result<Vec<String>, RedisError> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.setup.master_name)
            .query_async(&mut conn)
            .await;
        let fields = match reply {
            Ok(fields) => fields,
            Err(e) if e.code() == Some("ERR") => return Ok(Err(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(master_state(&fields, self.setup.min_other_sentinels))
    }

    fn display_for(&self, master: Option<&(String, u16)>) -> String {
        match master {
            Some((host, port)) => {
                let mut url = self.setup.master.clone();
                url.address = Address::Tcp {
                    host: host.clone(),
                    port: *port,
                };
                format!("{url} (sentinel master {})", self.setup.master_name)
            }
            None => format!("{} (master {})", self.setup.display, self.setup.master_name),
        }
    }
}

/// Reads a `SENTINEL MASTER` reply (a flat list of names and values) as redis-py's
/// `check_master_state` does: the address, or why this answer does not count.
fn master_state(fields: &[String], min_other_sentinels: u32) -> Result<(String, u16), String> {
    let get = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair.len() == 2 && pair[0] == name)
            .map(|pair| pair[1].as_str())
    };
    let flags = get("flags").unwrap_or("");
    let flags: Vec<&str> = flags.split(',').collect();
    if !flags.contains(&"master") || flags.contains(&"s_down") || flags.contains(&"o_down") {
        return Err(format!("the master is down (flags {})", flags.join(",")));
    }
    let others: u32 = get("num-other-sentinels")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if others < min_other_sentinels {
        return Err(format!(
            "sees {others} other sentinel(s), fewer than min_other_sentinels {min_other_sentinels}"
        ));
    }
    let ip = get("ip").ok_or("no ip in the answer")?;
    let port = get("port")
        .and_then(|p| p.parse().ok())
        .ok_or("no port in the answer")?;
    Ok((ip.to_owned(), port))
}

impl Endpoint for SentinelEndpoint {
    fn open(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<Opened, OpenError>> {
        async move {
            let (host, port) = self.resolve(timeouts).await?;
            let mut url = self.setup.master.clone();
            url.address = Address::Tcp {
                host: host.clone(),
                port,
            };
            url.scheme = if url.tls.is_some() {
                Scheme::Rediss
            } else {
                Scheme::Redis
            };
            let master = client(&url).map_err(RedisError::from)?;
            let mut conn = master
                .get_multiplexed_async_connection_with_config(&timeouts.config())
                .await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            let role = match role.first() {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => String::new(),
            };
            if role != "master" {
                return Err(RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "not the master",
                    format!(
                        "the sentinels name {host}:{port} as master {:?} but it says its role is {role:?}",
                        self.setup.master_name
                    ),
                ))
                .into());
            }
            let stamp = {
                let mut current = lock(&self.master);
                if current.as_ref() != Some(&(host.clone(), port)) {
                    if current.is_some() {
                        self.stamp.fetch_add(1, Ordering::SeqCst);
                    }
                    *current = Some((host, port));
                }
                self.stamp.load(Ordering::SeqCst)
            };
            Ok((conn, stamp))
        }
        .boxed()
    }

    fn display(&self) -> String {
        self.display_for(lock(&self.master).as_ref())
    }

    fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::SeqCst)
    }

    fn open_pubsub(
        &self,
        timeouts: Timeouts,
    ) -> BoxFuture<'_, Result<redis::aio::PubSub, OpenError>> {
        async move {
            // The master the sentinels name now (no role check: a Pub/Sub connection
            // cannot ask; a wrong server only delays broadcasts until the next reconnect).
            let (host, port) = self.resolve(timeouts).await?;
            let mut url = self.setup.master.clone();
            url.address = Address::Tcp { host, port };
            url.scheme = if url.tls.is_some() {
                Scheme::Rediss
            } else {
                Scheme::Redis
            };
            let master = client(&url).map_err(RedisError::from)?;
            Ok(crate::redis_client::endpoint::pubsub_within(&master, timeouts).await?)
        }
        .boxed()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_master_states_as_redis_py_checks_them() {
        let state = |flags: &str, others: &str| -> Vec<String> {
            [
                "name",
                "mymaster",
                "ip",
                "127.0.0.1",
                "port",
                "6451",
                "flags",
                flags,
                "num-other-sentinels",
                others,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        assert_eq!(
            master_state(&state("master", "2"), 2),
            Ok(("127.0.0.1".to_owned(), 6451))
        );
        assert!(master_state(&state("master,s_down", "2"), 0).is_err());
        assert!(master_state(&state("master,s_down,o_down", "2"), 0).is_err());
        assert!(master_state(&state("master", "1"), 2).is_err());
        assert!(master_state(&[], 0).is_err());
    }
}
