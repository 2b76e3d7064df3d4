//! Celery's SQLAlchemy result backend URLs (`db+<dialect>[+<driver>]://...`) read into the URL
//! the SQL driver connects with.
//!
//! - `db+postgresql://`, `db+postgresql+psycopg2://`, `db+postgresql+psycopg://`: PostgreSQL.
//! - `db+mysql://`, `db+mysql+pymysql://`, `db+mysql+mysqldb://`, `db+mariadb[+pymysql]://`:
//!   MySQL or MariaDB.
//! - `db+sqlite:///relative.db`, `db+sqlite:////absolute.db`, `db+sqlite://` (in memory).
//!
//! The Python driver named after `+` only matters to SQLAlchemy; every one of them writes the
//! same rows, so they all map to one driver here.

use crate::redis_client::mask_password;

/// The SQL dialect a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// SQLAlchemy's name of the dialect.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgresql",
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// A database result backend URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// The dialect.
    pub dialect: Dialect,
    /// The URL the driver connects with (holds the password).
    pub connect: String,
    /// The URL as configured, password masked, for logs and the banner.
    pub masked: String,
    /// True for an SQLite database in memory (one connection holds it).
    pub in_memory: bool,
}

/// Why a URL is not a database backend URL rcelery can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Not a `db+` URL at all.
    #[error(
        "{0} is not a database result backend URL (db+postgresql://, db+mysql://, db+sqlite://)"
    )]
    NotDatabase(String),
    /// A dialect or driver SQLAlchemy would load but rcelery does not speak.
    #[error("{url}: unsupported database {scheme:?} (rcelery speaks postgresql, mysql/mariadb and sqlite)")]
    Unsupported {
        /// The URL, masked.
        url: String,
        /// The scheme after `db+`.
        scheme: String,
    },
}

/// True when `url` names the SQLAlchemy database backend (`db+...`).
pub fn is_database_url(url: &str) -> bool {
    url.trim_start()
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("db+"))
}

/// Reads a `db+` URL.
pub fn parse(url: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
    let masked = mask_password(url);
    let trimmed = url.trim();
    if !is_database_url(trimmed) {
        return Err(DatabaseUrlError::NotDatabase(masked));
    }
    let sqlalchemy = &trimmed[3..];
    let Some((scheme, rest)) = sqlalchemy.split_once("://") else {
        return Err(DatabaseUrlError::NotDatabase(masked));
    };
    let scheme_lower = scheme.to_ascii_lowercase();
    let (dialect_name, driver) = scheme_lower
        .split_once('+')
        .unwrap_or((scheme_lower.as_str(), ""));
    let unsupported = || DatabaseUrlError::Unsupported {
        url: masked.clone(),
        scheme: scheme.to_owned(),
    };
    let dialect = match (dialect_name, driver) {
        ("postgresql", "" | "psycopg2" | "psycopg" | "psycopg2cffi" | "pg8000" | "asyncpg") => {
            Dialect::Postgres
        }
        ("mysql" | "mariadb", "" | "pymysql" | "mysqldb" | "mysqlconnector" | "asyncmy") => {
            Dialect::MySql
        }
        ("sqlite", "" | "pysqlite") => Dialect::Sqlite,
        _ => return Err(unsupported()),
    };
    let (connect, in_memory) = match dialect {
        Dialect::Postgres => (format!("postgres://{rest}"), false),
        Dialect::MySql => (
            format!("mysql://{}", without_query_key(rest, "charset")),
            false,
        ),
        Dialect::Sqlite => sqlite_url(rest),
    };
    Ok(DatabaseUrl {
        dialect,
        connect,
        masked,
        in_memory,
    })
}

/// Reads a plain database URL, as the `database_url` setting of the `django-db` backend
/// gives it: `postgresql://` (or `postgres://`), `mysql://` (or `mariadb://`), `sqlite:///path`
/// (a `db+` prefix and a `+driver` are accepted too). The masked text names the URL as given.
pub fn parse_plain(url: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
    let trimmed = url.trim();
    let spelled = if is_database_url(trimmed) {
        trimmed.to_owned()
    } else if let Some(rest) = trimmed.strip_prefix("postgres://") {
        format!("db+postgresql://{rest}")
    } else {
        format!("db+{trimmed}")
    };
    parse(&spelled).map(|mut parsed| {
        parsed.masked = mask_password(trimmed);
        parsed
    })
}

/// SQLAlchemy's SQLite paths: `sqlite://` is in memory, `sqlite:///x.db` the relative path
/// `x.db`, `sqlite:////x.db` the absolute `/x.db`. The file is created if missing, as
/// Python's `sqlite3` does.
fn sqlite_url(rest: &str) -> (String, bool) {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return ("sqlite::memory:".to_owned(), true);
    }
    let mut url = format!("sqlite://{path}?mode=rwc");
    if !query.is_empty() {
        url.push('&');
        url.push_str(query);
    }
    (url, false)
}

/// `rest` without the query parameter `key` (MySQL's `charset`: the driver always speaks
/// utf8mb4, which is what SQLAlchemy projects ask for).
fn without_query_key(rest: &str, key: &str) -> String {
    let Some((base, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.split('=').next() != Some(key) && !kv.is_empty())
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_spelling_celery_documents() {
        for (url, dialect, connect) in [
            (
                "db+postgresql://postgres:5252@localhost:5432/celery_test_2",
                Dialect::Postgres,
                "postgres://postgres:5252@localhost:5432/celery_test_2",
            ),
            (
                "db+postgresql+psycopg2://u:p@h/d",
                Dialect::Postgres,
                "postgres://u:p@h/d",
            ),
            (
                "db+postgresql+psycopg://u@h/d?sslmode=disable",
                Dialect::Postgres,
                "postgres://u@h/d?sslmode=disable",
            ),
            (
                "db+mysql://root@127.0.0.1/test",
                Dialect::MySql,
                "mysql://root@127.0.0.1/test",
            ),
            (
                "db+mysql+pymysql://root:pw@127.0.0.1:3306/test?charset=utf8mb4",
                Dialect::MySql,
                "mysql://root:pw@127.0.0.1:3306/test",
            ),
            (
                "db+sqlite:///results.db",
                Dialect::Sqlite,
                "sqlite://results.db?mode=rwc",
            ),
            (
                "db+sqlite:////tmp/results.db",
                Dialect::Sqlite,
                "sqlite:///tmp/results.db?mode=rwc",
            ),
            ("db+sqlite://", Dialect::Sqlite, "sqlite::memory:"),
        ] {
            let parsed = parse(url).expect(url);
            assert_eq!(parsed.dialect, dialect, "{url}");
            assert_eq!(parsed.connect, connect, "{url}");
        }
    }

    #[test]
    fn reads_plain_urls() {
        let pg = parse_plain("postgres://u:pw@h:5432/app").expect("pg");
        assert_eq!(
            (pg.dialect, pg.connect.as_str()),
            (Dialect::Postgres, "postgres://u:pw@h:5432/app")
        );
        assert!(!pg.masked.contains("pw") && pg.masked.starts_with("postgres://"));
        let my = parse_plain("mysql://root@127.0.0.1:3306/app").expect("mysql");
        assert_eq!(my.dialect, Dialect::MySql);
        let lite = parse_plain("sqlite:////tmp/db.sqlite3").expect("sqlite");
        assert_eq!(lite.connect, "sqlite:///tmp/db.sqlite3?mode=rwc");
    }

    #[test]
    fn refuses_other_urls_with_the_password_masked() {
        let err = parse("db+oracle://scott:tiger@h/x").expect_err("oracle");
        assert!(!err.to_string().contains("tiger"), "{err}");
        assert!(matches!(err, DatabaseUrlError::Unsupported { .. }));
        assert!(matches!(
            parse("redis://:pw@h/0"),
            Err(DatabaseUrlError::NotDatabase(_))
        ));
        let masked = parse("db+postgresql://u:S3cret@h/d").expect("pg").masked;
        assert!(!masked.contains("S3cret"), "{masked}");
    }
}
