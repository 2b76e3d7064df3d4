//! What the tasks share, built once: the database pool, the SMTP client, the export directory.

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use rcelery::state::{BoxError, Startup, StateMap};

/// Where `export_users` writes `users.csv`: env `EXPORT_DIR`, else the working directory.
#[derive(Debug, Clone)]
pub struct ExportDir(pub PathBuf);

impl ExportDir {
    /// From the environment.
    pub fn from_env() -> ExportDir {
        ExportDir(PathBuf::from(
            std::env::var("EXPORT_DIR")
                .ok()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| ".".to_owned()),
        ))
    }
}

/// The SMTP client and the sender's address.
#[derive(Clone)]
pub struct Mailer {
    /// The transport (a client for the SMTP server; one connection per mail).
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The `From` of every mail.
    pub from: Mailbox,
}

/// The `users` database, as the Django settings name it (or `DATABASE_URL`); one connection
/// is opened at once, so that a database out of reach stops the start with its reason.
pub async fn connect_database(startup: Startup) -> Result<PgPool, BoxError> {
    let (options, target) = match std::env::var("DATABASE_URL") {
        // The URL may hold a password: rcelery masks it in the error it reports.
        Ok(url) => (url.parse::<PgConnectOptions>()?, url),
        Err(_) => {
            let env = |name: &str, default: &str| {
                std::env::var(name).unwrap_or_else(|_| default.to_owned())
            };
            let (host, port, user, name) = (
                env("DJANGO_DB_HOST", "127.0.0.1"),
                env("DJANGO_DB_PORT", "5432"),
                env("DJANGO_DB_USER", "postgres"),
                env("DJANGO_DB_NAME", "celery_test_2"),
            );
            let options = PgConnectOptions::new()
                .host(&host)
                .port(
                    port.parse()
                        .map_err(|_| format!("DJANGO_DB_PORT {port:?} is not a port"))?,
                )
                .username(&user)
                .password(&env("DJANGO_DB_PASSWORD", ""))
                .database(&name);
            (
                options,
                format!("database {name} on {host}:{port} as {user}"),
            )
        }
    };
    let unreachable = |e: sqlx::Error| format!("{e} (connecting to \"{target}\")");
    let mut first = PgConnection::connect_with(&options)
        .await
        .map_err(unreachable)?;
    first.ping().await.map_err(unreachable)?;
    let connections = startup.config.worker_concurrency.unwrap_or(2).max(1) as u32;
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .connect_lazy_with(options);
    Ok(pool)
}

/// The SMTP client for `SMTP_HOST`:`SMTP_PORT` (default localhost:25), plain SMTP.
pub async fn smtp_mailer(_startup: Startup) -> Result<Mailer, BoxError> {
    let host = std::env::var("SMTP_HOST").unwrap_or_else(|_| "localhost".to_owned());
    let port = std::env::var("SMTP_PORT").unwrap_or_else(|_| "25".to_owned());
    let port: u16 = port
        .parse()
        .map_err(|_| format!("SMTP_PORT {port:?} is not a port"))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .build();
    Ok(Mailer {
        transport,
        from: crate::tasks::MAIL_FROM.parse()?,
    })
}

/// Closes the database pool when the worker stops.
pub async fn close(state: Arc<StateMap>) {
    if let Some(pool) = state.get::<PgPool>() {
        pool.close().await;
    }
}
