//! The statements the django-db backend runs on django-celery-results' tables (created by
//! Django's migrations, never by rcelery).
//!
//! Storing a result is one statement: django-celery-results' `store_result` does
//! `get_or_create` then saves every field; here an insert that, when the row exists, updates
//! every column but `date_created` (and `date_started` unless the new state is STARTED),
//! unless it holds a SUCCESS (the guard Celery's key-value backends have, so a redelivered
//! task does not turn a SUCCESS back into STARTED).

use crate::backend::database::sql::placeholder;
use crate::backend::database::url::Dialect;

/// The task results table.
pub const TASK_TABLE: &str = "django_celery_results_taskresult";
/// The saved groups table.
pub const GROUP_TABLE: &str = "django_celery_results_groupresult";
/// The chord counters table.
pub const CHORD_TABLE: &str = "django_celery_results_chordcounter";

/// The columns a stored result writes, in bind order (see [`super::row::DjangoRow`]).
pub const STORE_COLUMNS: &[&str] = &[
    "task_id",
    "status",
    "result",
    "traceback",
    "meta",
    "content_encoding",
    "content_type",
    "periodic_task_name",
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
    "date_created",
    "date_done",
    "date_started",
];

/// The columns [`Statements::select`] returns, in order.
pub const SELECT_COLUMNS: &[&str] = &[
    "status",
    "result",
    "traceback",
    "meta",
    "content_encoding",
    "date_done",
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
];

/// Every statement, ready to bind.
#[derive(Debug, Clone)]
pub struct Statements {
    /// Stores one result (binds: [`STORE_COLUMNS`]).
    pub store: String,
    /// Reads one task's row (bind: `task_id`; columns [`SELECT_COLUMNS`]).
    pub select: String,
    /// Reads one saved group's `result` and `content_encoding` (bind: `group_id`).
    pub restore_group: String,
    /// Locks a chord's counter and reads `count` and `sub_tasks` (bind: `group_id`).
    pub lock_counter: String,
    /// Sets a chord's `count` (binds: count, `group_id`).
    pub update_counter: String,
    /// Deletes a chord's counter (bind: `group_id`).
    pub delete_counter: String,
    /// Deletes task rows done before the bound time.
    pub cleanup_tasks: String,
    /// Deletes group rows done before the bound time.
    pub cleanup_groups: String,
    /// Probes the three tables and the columns used (fails when a migration is missing).
    pub probes: Vec<String>,
}

/// A bound instant: PostgreSQL reads the RFC 3339 text as a `timestamptz`.
fn time_value(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("CAST(${n} AS TIMESTAMPTZ)"),
        Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
    }
}

impl Statements {
    /// The statements for `dialect`.
    pub fn new(dialect: Dialect) -> Statements {
        let t = TASK_TABLE;
        let values: Vec<String> = STORE_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c.starts_with("date_") {
                    time_value(dialect, i + 1)
                } else {
                    placeholder(dialect, i + 1)
                }
            })
            .collect();
        let insert = format!(
            "INSERT INTO {t} ({}) VALUES ({})",
            STORE_COLUMNS.join(", "),
            values.join(", ")
        );
        let updated = STORE_COLUMNS
            .iter()
            .filter(|c| !matches!(**c, "task_id" | "date_created" | "date_started"));
        let store = match dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                let mut set: Vec<String> = updated.map(|c| format!("{c} = excluded.{c}")).collect();
                set.push(format!(
                    "date_started = COALESCE(excluded.date_started, {t}.date_started)"
                ));
                let not_success = if dialect == Dialect::Postgres {
                    "IS DISTINCT FROM"
                } else {
                    "IS NOT"
                };
                format!(
                    "{insert} ON CONFLICT (task_id) DO UPDATE SET {} WHERE {t}.status {not_success} 'SUCCESS'",
                    set.join(", ")
                )
            }
            Dialect::MySql => {
                // Assignments run left to right and see the new values: status goes last.
                let keep =
                    |c: &str, new: String| format!("{c} = IF(status <=> 'SUCCESS', {c}, {new})");
                let mut set: Vec<String> = updated
                    .filter(|c| **c != "status")
                    .map(|c| keep(c, format!("VALUES({c})")))
                    .collect();
                set.push(keep(
                    "date_started",
                    "COALESCE(VALUES(date_started), date_started)".to_owned(),
                ));
                set.push(keep("status", "VALUES(status)".to_owned()));
                format!("{insert} ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
        };
        let date_text = match dialect {
            Dialect::MySql => "CAST(date_done AS CHAR)",
            Dialect::Postgres | Dialect::Sqlite => "CAST(date_done AS TEXT)",
        };
        let listed: Vec<&str> = SELECT_COLUMNS
            .iter()
            .map(|c| if *c == "date_done" { date_text } else { c })
            .collect();
        let p1 = placeholder(dialect, 1);
        // SQLite has no row locks (Django's select_for_update is a no-op there); its
        // database lock, taken by the counter's update, serializes the writers.
        let for_update = if dialect == Dialect::Sqlite {
            ""
        } else {
            " FOR UPDATE"
        };
        let c = CHORD_TABLE;
        let g = GROUP_TABLE;
        Statements {
            store,
            select: format!("SELECT {} FROM {t} WHERE task_id = {p1}", listed.join(", ")),
            restore_group: format!(
                "SELECT result, content_encoding FROM {g} WHERE group_id = {p1}"
            ),
            lock_counter: format!(
                "SELECT CAST(count AS {}), sub_tasks FROM {c} WHERE group_id = {p1}{for_update}",
                if dialect == Dialect::MySql {
                    "SIGNED"
                } else {
                    "BIGINT"
                }
            ),
            update_counter: format!(
                "UPDATE {c} SET count = {p1} WHERE group_id = {}",
                placeholder(dialect, 2)
            ),
            delete_counter: format!("DELETE FROM {c} WHERE group_id = {p1}"),
            cleanup_tasks: format!("DELETE FROM {t} WHERE date_done < {}", time_value(dialect, 1)),
            cleanup_groups: format!("DELETE FROM {g} WHERE date_done < {}", time_value(dialect, 1)),
            probes: vec![
                format!("SELECT {}, date_created, date_started FROM {t} WHERE 1 = 0", listed.join(", ")),
                format!("SELECT group_id, result, content_encoding, content_type, date_created, date_done FROM {g} WHERE 1 = 0"),
                format!("SELECT group_id, sub_tasks, count FROM {c} WHERE 1 = 0"),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_store_is_one_guarded_upsert_keeping_date_created() {
        let s = Statements::new(Dialect::Postgres);
        assert!(s.store.starts_with("INSERT INTO django_celery_results_taskresult (task_id, status, result, traceback, meta, content_encoding, content_type, periodic_task_name, task_name, task_args, task_kwargs, worker, date_created, date_done, date_started) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CAST($13 AS TIMESTAMPTZ), CAST($14 AS TIMESTAMPTZ), CAST($15 AS TIMESTAMPTZ)) ON CONFLICT (task_id) DO UPDATE SET status = excluded.status"), "{}", s.store);
        assert!(!s.store.contains("date_created = "));
        assert!(s.store.ends_with(
            "date_started = COALESCE(excluded.date_started, django_celery_results_taskresult.date_started) WHERE django_celery_results_taskresult.status IS DISTINCT FROM 'SUCCESS'"
        ));
        assert!(s.lock_counter.ends_with("FOR UPDATE"));
    }

    #[test]
    fn mysql_updates_status_last() {
        let s = Statements::new(Dialect::MySql);
        assert!(s
            .store
            .ends_with("status = IF(status <=> 'SUCCESS', status, VALUES(status))"));
        assert!(!Statements::new(Dialect::Sqlite)
            .lock_counter
            .contains("FOR UPDATE"));
    }
}
