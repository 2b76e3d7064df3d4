//! The URL → result backend factory: `disabled` or no URL gives the [`DisabledBackend`], a
//! `db+` URL the [`DatabaseBackend`], `django-db` the [`DjangoDbBackend`], a `file://` URL the [`file::FileBackend`], `rpc://` the [`rpc::RpcBackend`] (publishing through the connected broker), a Redis URL the [`RedisBackend`]. The command line calls this; it never builds a backend
//! itself.

use std::sync::Arc;
use std::time::Duration;

use super::database::{self, DatabaseOptions};
use super::django_db;
use super::file;
use super::redis::{BackendLinkSettings, ChordSettings, RedisBackend};
use super::rpc;
use super::{BackendError, DisabledBackend, MetaEncoder, ResultBackend};
use crate::broker::factory::ConnectedBroker;
use crate::redis_client::lane::SharedLane;
use crate::redis_client::sentinel::{SentinelOptions, SentinelSetup};
use crate::redis_client::{self, UrlRefusal};

/// What a result backend is opened with.
pub struct BackendSetup<'a> {
    /// How metas are written.
    pub encoder: MetaEncoder,
    /// `result_expires` (`None`: results never expire).
    pub expires: Option<Duration>,
    /// `result_backend_transport_options.global_keyprefix`.
    pub global_keyprefix: &'a str,
    /// `result_backend_transport_options.result_chord_ordered`.
    pub chord_ordered: bool,
    /// `result_chord_join_timeout`, which also bounds a Redis chord's dispatch claim.
    pub chord_join_timeout: Duration,
    /// Retries, timeouts, the result buffer and `redis_backend_use_ssl`; a `socket_timeout`
    /// in the URL replaces the response timeout.
    pub link: BackendLinkSettings,
    /// Celery's `database_*` settings, for a `db+` URL.
    pub database: DatabaseOptions,
    /// `result_backend_transport_options` `master_name`, `min_other_sentinels` and
    /// `sentinel_kwargs`, for a `sentinel://` URL list.
    pub sentinel: SentinelOptions,
    /// The connected broker: the `rpc://` backend publishes its results through it, and a
    /// Redis backend on the server of a Redis broker takes up the [`SharedLane`] it offers
    /// and sends its results with the broker's acks (one round trip per batch).
    pub broker: Option<&'a ConnectedBroker>,
    /// `result_persistent` (unset: the backend's default).
    pub persistent: Option<bool>,
}

/// Why no result backend could be had.
#[derive(Debug, thiserror::Error)]
pub enum BackendSetupError {
    /// The URL was refused.
    #[error(transparent)]
    Url(#[from] UrlRefusal),
    /// The backend could not be set up.
    #[error("cannot use result backend {url}: {source}")]
    Open {
        /// The URL, masked.
        url: String,
        /// Why.
        source: BackendError,
    },
}

/// Opens the result backend `url` names. A Redis backend connects on first use, as Celery's
/// does: one that is down at start is retried like one that goes down later.
pub fn open(
    url: Option<&str>,
    setup: BackendSetup<'_>,
) -> Result<Arc<dyn ResultBackend>, BackendSetupError> {
    let Some(url) = url.filter(|u| !u.is_empty() && *u != "disabled") else {
        return Ok(Arc::new(DisabledBackend));
    };
    if database::url::is_database_url(url) {
        return open_database(url, setup);
    }
    if django_db::is_django_db(url) {
        return open_django_db(setup);
    }
    if rpc::is_rpc_url(url) {
        let Some(broker) = setup.broker else {
            return Err(BackendSetupError::Open {
                url: "rpc://".into(),
                source: BackendError::Unsupported(
                    "rpc:// sends results through the broker connection, and there is none here"
                        .into(),
                ),
            });
        };
        let backend =
            rpc::RpcBackend::new(Arc::clone(&broker.broker), setup.encoder, setup.persistent);
        return Ok(Arc::new(backend));
    }
    if file::is_file_url(url) {
        let backend =
            file::FileBackend::new(url, setup.encoder, setup.expires, setup.global_keyprefix)
                .map_err(|source| BackendSetupError::Open {
                    url: url.to_owned(),
                    source,
                })?;
        return Ok(Arc::new(backend));
    }
    if url
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("sentinel://")
    {
        return open_sentinel(url, setup);
    }
    let role = "result backend";
    let refused = |source| UrlRefusal::Invalid {
        role,
        url: redis_client::mask_password(url),
        source,
    };
    let parsed = redis_client::read_url(role, url)?;
    let use_ssl = setup.link.use_ssl.clone();
    parsed
        .check_backend_rules(use_ssl.as_ref())
        .map_err(refused)?;
    let parsed = parsed.with_use_ssl(use_ssl.as_ref()).map_err(refused)?;
    let mut link = setup.link;
    if let Some(timeout) = parsed.socket_timeout {
        link.response_timeout = timeout;
    }
    let mut backend = RedisBackend::new(
        url,
        setup.encoder,
        setup.expires,
        setup.global_keyprefix,
        link,
    )
    .map_err(|source| BackendSetupError::Open {
        url: parsed.to_string(),
        source,
    })?;
    backend.set_chord_settings(ChordSettings {
        ordered: setup.chord_ordered,
        join_timeout: setup.chord_join_timeout,
    });
    if let Some(shared) = setup
        .broker
        .and_then(|b| b.capabilities.get::<SharedLane>())
    {
        if redis_client::same_server(&shared.server_url, url)
            && backend.share_lane(Arc::clone(&shared.lane))
        {
            tracing::debug!("results travel with the broker's acks (same Redis server)");
        }
    }
    Ok(Arc::new(backend))
}

/// Celery's `SentinelBackend`: `sentinel://h1:26379;sentinel://h2:26379` (split on `;`, as
/// Celery does; a list of plain `redis://` URLs is not read by Celery's Redis backend, and
/// is not here) with `result_backend_transport_options.master_name`. The master's server
/// may change, so results never share the broker's settle lane.
fn open_sentinel(
    url: &str,
    setup: BackendSetup<'_>,
) -> Result<Arc<dyn ResultBackend>, BackendSetupError> {
    let shown = redis_client::mask_url_list(url);
    let open_error = |reason: String| BackendSetupError::Open {
        url: shown.clone(),
        source: BackendError::Url(reason),
    };
    let urls: Vec<String> = url
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let sentinel_setup = SentinelSetup::parse(
        &urls,
        &setup.sentinel,
        "result_backend_transport_options",
        setup.link.use_ssl.as_ref(),
    )
    .map_err(|e| open_error(e.to_string()))?;
    let mut link = setup.link;
    if let Some(timeout) = sentinel_setup.master.socket_timeout {
        link.response_timeout = timeout;
    }
    let mut backend = RedisBackend::sentinel(
        url,
        sentinel_setup,
        setup.encoder,
        setup.expires,
        setup.global_keyprefix,
        link,
    )
    .map_err(|source| BackendSetupError::Open {
        url: shown.clone(),
        source,
    })?;
    backend.set_chord_settings(ChordSettings {
        ordered: setup.chord_ordered,
        join_timeout: setup.chord_join_timeout,
    });
    Ok(Arc::new(backend))
}

/// The SQLAlchemy-layout backend for a `db+` URL.
#[cfg(feature = "sql")]
fn open_database(
    url: &str,
    setup: BackendSetup<'_>,
) -> Result<Arc<dyn ResultBackend>, BackendSetupError> {
    let masked = redis_client::mask_password(url);
    let parsed = database::url::parse(url).map_err(|e| BackendSetupError::Open {
        url: masked.clone(),
        source: BackendError::Url(e.to_string()),
    })?;
    let settings = database_settings(setup.link, setup.database);
    let backend = database::DatabaseBackend::new(parsed, setup.encoder, setup.expires, settings)
        .map_err(|source| BackendSetupError::Open {
            url: masked,
            source,
        })?;
    Ok(Arc::new(backend))
}

/// The retry, timeout and buffer settings of an SQL backend.
#[cfg(feature = "sql")]
fn database_settings(
    link: BackendLinkSettings,
    options: DatabaseOptions,
) -> database::DatabaseSettings {
    database::DatabaseSettings {
        options,
        connect_timeout: link.connect_timeout,
        statement_timeout: link.response_timeout,
        retry: link.retry,
        buffer: link.buffer,
        health: link.health,
    }
}

/// The `django-db` backend, on the database `database_url` (or Django's settings) names.
#[cfg(feature = "sql")]
fn open_django_db(setup: BackendSetup<'_>) -> Result<Arc<dyn ResultBackend>, BackendSetupError> {
    let refused = |url: String, text: String| BackendSetupError::Open {
        url,
        source: BackendError::Url(text),
    };
    let Some(url) = setup.database.django_url.clone() else {
        return Err(refused(
            "django-db".into(),
            "no database: set database_url (e.g. postgresql://user:password@host/db), or start with -A naming the Celery app of a Django project so that DATABASES['default'] is read".into(),
        ));
    };
    let masked = redis_client::mask_password(&url);
    let parsed = database::url::parse_plain(&url)
        .map_err(|e| refused(format!("django-db ({masked})"), e.to_string()))?;
    let settings = database_settings(setup.link, setup.database);
    let backend = django_db::DjangoDbBackend::new(parsed, setup.encoder, setup.expires, settings)
        .map_err(|source| BackendSetupError::Open {
        url: format!("django-db ({masked})"),
        source,
    })?;
    Ok(Arc::new(backend))
}

/// Without the `sql` feature `django-db` is refused.
#[cfg(not(feature = "sql"))]
fn open_django_db(_setup: BackendSetup<'_>) -> Result<Arc<dyn ResultBackend>, BackendSetupError> {
    Err(BackendSetupError::Open {
        url: "django-db".into(),
        source: BackendError::Unsupported("rcelery was built without the sql feature".into()),
    })
}

/// Without the `sql` feature a `db+` URL is refused.
#[cfg(not(feature = "sql"))]
fn open_database(
    url: &str,
    _setup: BackendSetup<'_>,
) -> Result<Arc<dyn ResultBackend>, BackendSetupError> {
    Err(BackendSetupError::Open {
        url: redis_client::mask_password(url),
        source: BackendError::Unsupported("rcelery was built without the sql feature".into()),
    })
}
