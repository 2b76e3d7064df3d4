//! Celery's result tables (`celery/backends/database/models.py`), created if missing with the
//! DDL SQLAlchemy emits for each dialect, under the names and schemas of
//! `database_table_names` / `database_table_schemas`.
//!
//! `celery_taskmeta`: `id` (from the sequence `task_id_sequence` on PostgreSQL and MariaDB,
//! autoincrement elsewhere), `task_id` (unique), `status`, `result`, `date_done` (indexed),
//! `traceback`, `children`, and the `result_extended` columns `name`, `args`, `kwargs`,
//! `worker`, `retries`, `queue`, `stamps` (SQLAlchemy creates them whatever
//! `result_extended` says). `celery_tasksetmeta`: `id`, `taskset_id` (unique), `result`,
//! `date_done` (indexed).

use super::url::Dialect;

/// Where the two tables live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableNames {
    /// `database_table_names["task"]` (default `celery_taskmeta`).
    pub task: Option<String>,
    /// `database_table_names["group"]` (default `celery_tasksetmeta`).
    pub group: Option<String>,
    /// `database_table_schemas["task"]`.
    pub task_schema: Option<String>,
    /// `database_table_schemas["group"]`.
    pub group_schema: Option<String>,
}

/// One table's identifiers, quoted for the dialect where SQLAlchemy would quote them.
#[derive(Debug, Clone)]
pub struct Table {
    /// The bare table name (for catalog queries).
    pub name: String,
    /// The schema, if one is configured.
    pub schema: Option<String>,
    /// `schema.table`, quoted as needed.
    pub qualified: String,
    /// `schema.<sequence>`, quoted as needed (PostgreSQL, MariaDB).
    pub sequence: String,
    /// The date_done index's name (`ix_<table>_date_done`).
    pub index: String,
}

impl Table {
    fn new(dialect: Dialect, name: &str, schema: Option<&str>, sequence: &str) -> Table {
        let q = |ident: &str| quote(dialect, ident);
        let in_schema = |ident: &str| match schema {
            Some(s) => format!("{}.{}", q(s), q(ident)),
            None => q(ident),
        };
        Table {
            name: name.to_owned(),
            schema: schema.map(str::to_owned),
            qualified: in_schema(name),
            sequence: in_schema(sequence),
            index: q(&format!("ix_{name}_date_done")),
        }
    }
}

/// Both tables.
#[derive(Debug, Clone)]
pub struct Tables {
    /// The task results table.
    pub task: Table,
    /// The saved groups table.
    pub group: Table,
}

impl Tables {
    /// The tables `names` configures, for `dialect`.
    pub fn new(dialect: Dialect, names: &TableNames) -> Tables {
        Tables {
            task: Table::new(
                dialect,
                names.task.as_deref().unwrap_or("celery_taskmeta"),
                names.task_schema.as_deref(),
                "task_id_sequence",
            ),
            group: Table::new(
                dialect,
                names.group.as_deref().unwrap_or("celery_tasksetmeta"),
                names.group_schema.as_deref(),
                "taskset_id_sequence",
            ),
        }
    }
}

/// Quotes an identifier as SQLAlchemy does: only when it is not a plain lower-case name.
fn quote(dialect: Dialect, ident: &str) -> String {
    let plain = ident
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        return ident.to_owned();
    }
    match dialect {
        Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
        Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
    }
}

/// The statements that create both tables where missing, in order. `sequences`: ids come from
/// a sequence (PostgreSQL; MariaDB 10.3 and later, as SQLAlchemy's MariaDB dialect does).
pub fn create_statements(dialect: Dialect, tables: &Tables, sequences: bool) -> Vec<String> {
    let (binary, datetime, id) = match dialect {
        Dialect::Postgres => ("BYTEA", "TIMESTAMP WITHOUT TIME ZONE", "INTEGER NOT NULL"),
        Dialect::MySql if sequences => ("BLOB", "DATETIME", "INTEGER NOT NULL"),
        Dialect::MySql => ("BLOB", "DATETIME", "INTEGER NOT NULL AUTO_INCREMENT"),
        Dialect::Sqlite => (
            "BLOB",
            "DATETIME",
            "INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT",
        ),
    };
    // SQLite declares the key on the column; the others as a table constraint.
    let key = if dialect == Dialect::Sqlite {
        ""
    } else {
        "PRIMARY KEY (id), \n\t"
    };
    let task = &tables.task;
    let group = &tables.group;
    let mut out = Vec::new();
    if sequences {
        out.push(format!("CREATE SEQUENCE IF NOT EXISTS {}", task.sequence));
        out.push(format!("CREATE SEQUENCE IF NOT EXISTS {}", group.sequence));
    }
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {} (\n\tid {id}, \n\ttask_id VARCHAR(155), \n\tstatus VARCHAR(50), \n\tresult {binary}, \n\tdate_done {datetime}, \n\ttraceback TEXT, \n\tchildren {binary}, \n\tname VARCHAR(155), \n\targs {binary}, \n\tkwargs {binary}, \n\tworker VARCHAR(155), \n\tretries INTEGER, \n\tqueue VARCHAR(155), \n\tstamps {binary}, \n\t{key}UNIQUE (task_id)\n)",
        task.qualified
    ));
    out.push(index_statement(dialect, task));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {} (\n\tid {id}, \n\ttaskset_id VARCHAR(155), \n\tresult {binary}, \n\tdate_done {datetime}, \n\t{key}UNIQUE (taskset_id)\n)",
        group.qualified
    ));
    out.push(index_statement(dialect, group));
    out
}

fn index_statement(dialect: Dialect, table: &Table) -> String {
    // An index lives in its table's schema on PostgreSQL and SQLite (`schema.index`).
    let name = match (&table.schema, dialect) {
        (Some(schema), Dialect::Postgres | Dialect::Sqlite) => {
            format!("{}.{}", quote(dialect, schema), table.index)
        }
        _ => table.index.clone(),
    };
    let on = match (&table.schema, dialect) {
        // SQLite names the table without its schema in `ON`.
        (Some(_), Dialect::Sqlite) => quote(dialect, &table.name),
        _ => table.qualified.clone(),
    };
    format!("CREATE INDEX IF NOT EXISTS {name} ON {on} (date_done)")
}

/// The query listing a table's columns: its name (text) and whether the database fills it
/// in itself (1: a default or autoincrement, 0: none), for `dialect`. Its parameters: the
/// table name, then (PostgreSQL, MySQL) the schema or NULL.
pub fn columns_query(dialect: Dialect, table: &Table) -> String {
    match dialect {
        Dialect::Postgres => "SELECT CAST(column_name AS TEXT), \
             CAST(CASE WHEN column_default IS NULL THEN 0 ELSE 1 END AS INTEGER) \
             FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema())"
            .to_owned(),
        Dialect::MySql => "SELECT CAST(column_name AS CHAR), \
             CAST(CASE WHEN column_default IS NULL AND extra NOT LIKE '%auto_increment%' \
             THEN 0 ELSE 1 END AS SIGNED) \
             FROM information_schema.columns \
             WHERE table_name = ? AND table_schema = COALESCE(?, DATABASE())"
            .to_owned(),
        Dialect::Sqlite => {
            let schema = table
                .schema
                .as_deref()
                .map(|s| format!("{}.", quote(dialect, s)))
                .unwrap_or_default();
            // An INTEGER PRIMARY KEY is the rowid: SQLite numbers it.
            format!(
                "SELECT name, CASE WHEN pk = 1 THEN 1 ELSE 0 END FROM {schema}pragma_table_info({})",
                sql_string(&table.name)
            )
        }
    }
}

/// A string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_ddl_is_sqlalchemys() {
        let tables = Tables::new(Dialect::Postgres, &TableNames::default());
        let ddl = create_statements(Dialect::Postgres, &tables, true);
        assert_eq!(ddl[0], "CREATE SEQUENCE IF NOT EXISTS task_id_sequence");
        assert!(ddl[2].starts_with("CREATE TABLE IF NOT EXISTS celery_taskmeta (\n\tid INTEGER NOT NULL, \n\ttask_id VARCHAR(155)"));
        assert!(ddl[2].ends_with("stamps BYTEA, \n\tPRIMARY KEY (id), \n\tUNIQUE (task_id)\n)"));
        assert_eq!(
            ddl[3],
            "CREATE INDEX IF NOT EXISTS ix_celery_taskmeta_date_done ON celery_taskmeta (date_done)"
        );
    }

    #[test]
    fn names_and_schemas_are_quoted_only_when_needed() {
        let names = TableNames {
            task: Some("MyTasks".into()),
            group: Some("groups".into()),
            task_schema: Some("celery".into()),
            group_schema: None,
        };
        let t = Tables::new(Dialect::Postgres, &names);
        assert_eq!(t.task.qualified, "celery.\"MyTasks\"");
        assert_eq!(t.task.sequence, "celery.task_id_sequence");
        assert_eq!(t.group.qualified, "groups");
        let m = Tables::new(Dialect::MySql, &names);
        assert_eq!(m.task.qualified, "celery.`MyTasks`");
    }
}
