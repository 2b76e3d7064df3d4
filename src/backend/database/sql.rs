//! The statements the database backend runs, written once per dialect and table layout.
//!
//! Storing a result is one statement: an insert that, when the task's row exists, updates it
//! unless it holds a SUCCESS. Celery 5.7 does the same in three (read, lock the row with
//! `SELECT ... FOR UPDATE`, update) and also ignores every write after a SUCCESS; one
//! statement is atomic the same way and takes one round trip.

use super::schema::Tables;
use super::url::Dialect;

/// What the task table holds, read from the database at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The table has Celery 5.7's `children` column (a table Celery 5.6 or older created has
    /// not: rcelery then writes results as those versions read them, pickled).
    pub children: bool,
    /// The task table's `id` is numbered by the database (autoincrement or default); else
    /// rcelery takes it from Celery's sequence.
    pub task_id_numbered: bool,
    /// The same for the group table.
    pub group_id_numbered: bool,
}

/// The columns a stored result writes, after `task_id`, in bind order.
pub const RESULT_COLUMNS: &[&str] = &[
    "status",
    "result",
    "date_done",
    "traceback",
    "children",
    "name",
    "args",
    "kwargs",
    "worker",
    "retries",
    "queue",
];

/// Every statement, ready to bind.
#[derive(Debug, Clone)]
pub struct Statements {
    /// Stores one result (binds: `task_id`, then [`RESULT_COLUMNS`] without `children` when
    /// the layout has none).
    pub store: String,
    /// Reads one task's row (bind: `task_id`); see [`Statements::select_columns`].
    pub select: String,
    /// Reads one saved group's `result` (bind: `taskset_id`).
    pub restore_group: String,
    /// Deletes task rows done before the bound time.
    pub cleanup_tasks: String,
    /// Deletes group rows done before the bound time.
    pub cleanup_groups: String,
    /// The columns `select` returns, in order.
    pub select_columns: Vec<&'static str>,
}

/// The `n`th (1-based) bind placeholder.
pub fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${n}"),
        Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
    }
}

/// A bound time: PostgreSQL converts an instant with its offset into the session's time zone,
/// as psycopg does with an aware datetime; the others take the wall-clock text as written.
fn time_value(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("CAST(${n} AS TIMESTAMPTZ)"),
        Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
    }
}

impl Statements {
    /// The statements for `dialect`, `tables` and `layout`.
    pub fn new(dialect: Dialect, tables: &Tables, layout: Layout) -> Statements {
        let task = &tables.task.qualified;
        let group = &tables.group.qualified;
        let columns: Vec<&str> = RESULT_COLUMNS
            .iter()
            .copied()
            .filter(|c| layout.children || *c != "children")
            .collect();
        let (id_column, id_value) = match (layout.task_id_numbered, dialect) {
            (true, _) | (false, Dialect::Sqlite) => ("", String::new()),
            (false, Dialect::Postgres) => (
                "id, ",
                format!("nextval('{}'), ", tables.task.sequence.replace('\'', "''")),
            ),
            (false, Dialect::MySql) => ("id, ", format!("NEXTVAL({}), ", tables.task.sequence)),
        };
        let values: Vec<String> = (1..=columns.len() + 1)
            .map(|n| {
                // `date_done` is the third bound value (task_id, status, result, date_done).
                if n == 4 {
                    time_value(dialect, n)
                } else {
                    placeholder(dialect, n)
                }
            })
            .collect();
        let insert = format!(
            "INSERT INTO {task} ({id_column}task_id, {}) VALUES ({id_value}{})",
            columns.join(", "),
            values.join(", ")
        );
        let store = match dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                let set: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect();
                let not_success = if dialect == Dialect::Postgres {
                    "IS DISTINCT FROM"
                } else {
                    "IS NOT"
                };
                format!(
                    "{insert} ON CONFLICT (task_id) DO UPDATE SET {} WHERE {task}.status {not_success} 'SUCCESS'",
                    set.join(", ")
                )
            }
            Dialect::MySql => {
                // Assignments run left to right and see the new values: status goes last.
                let mut set: Vec<String> = columns
                    .iter()
                    .filter(|c| **c != "status")
                    .map(|c| format!("{c} = IF(status <=> 'SUCCESS', {c}, VALUES({c}))"))
                    .collect();
                set.push("status = IF(status <=> 'SUCCESS', status, VALUES(status))".to_owned());
                format!("{insert} ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
        };
        let date_text = match dialect {
            Dialect::Postgres => "CAST(date_done AS TEXT)",
            Dialect::MySql => "CAST(date_done AS CHAR)",
            Dialect::Sqlite => "CAST(date_done AS TEXT)",
        };
        let mut select_columns = vec!["status", "result", "date_done", "traceback"];
        if layout.children {
            select_columns.push("children");
        }
        select_columns.extend(["name", "args", "kwargs", "worker", "retries", "queue"]);
        let listed: Vec<&str> = select_columns
            .iter()
            .map(|c| if *c == "date_done" { date_text } else { c })
            .collect();
        let p1 = placeholder(dialect, 1);
        Statements {
            store,
            select: format!(
                "SELECT {} FROM {task} WHERE task_id = {p1}",
                listed.join(", ")
            ),
            restore_group: format!("SELECT result FROM {group} WHERE taskset_id = {p1}"),
            cleanup_tasks: format!(
                "DELETE FROM {task} WHERE date_done < {}",
                time_value(dialect, 1)
            ),
            cleanup_groups: format!(
                "DELETE FROM {group} WHERE date_done < {}",
                time_value(dialect, 1)
            ),
            select_columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::TableNames;
    use super::*;

    const FRESH: Layout = Layout {
        children: true,
        task_id_numbered: false,
        group_id_numbered: false,
    };

    #[test]
    fn postgres_store_is_one_guarded_upsert() {
        let t = Tables::new(Dialect::Postgres, &TableNames::default());
        let s = Statements::new(Dialect::Postgres, &t, FRESH);
        assert!(s.store.starts_with("INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, traceback, children, name, args, kwargs, worker, retries, queue) VALUES (nextval('task_id_sequence'), $1, $2, $3, CAST($4 AS TIMESTAMPTZ), $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (task_id) DO UPDATE SET status = excluded.status"), "{}", s.store);
        assert!(s
            .store
            .ends_with("WHERE celery_taskmeta.status IS DISTINCT FROM 'SUCCESS'"));
    }

    #[test]
    fn mysql_updates_status_last() {
        let t = Tables::new(Dialect::MySql, &TableNames::default());
        let layout = Layout {
            children: false,
            task_id_numbered: true,
            ..FRESH
        };
        let s = Statements::new(Dialect::MySql, &t, layout);
        assert!(s.store.starts_with(
            "INSERT INTO celery_taskmeta (task_id, status, result, date_done, traceback, name,"
        ));
        assert!(s
            .store
            .ends_with("status = IF(status <=> 'SUCCESS', status, VALUES(status))"));
        assert!(!s.select.contains("children"));
    }
}
