//! kombu's exchange tables: `<control_folder>/<exchange>.exchange`, a JSON list of
//! `[routing_key, pattern, queue]` bindings, newest first, read under a shared lock and
//! rewritten under an exclusive one (`flock`, as kombu locks it).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::codec::json;
use crate::value::Value;

/// The largest exchange table read (a table is a few bindings; anything larger is not one).
const MAX_TABLE_BYTES: u64 = 1024 * 1024;

/// One binding: messages with `routing_key` (or matching `pattern`) go to `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The routing key bound.
    pub routing_key: String,
    /// The pattern (kombu leaves it empty for direct and fanout exchanges).
    pub pattern: String,
    /// The queue.
    pub queue: String,
}

/// Why an exchange table could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The exchange name could name another file (kombu allows `[A-Za-z0-9._-]`).
    #[error("invalid exchange name {0:?}")]
    Name(String),
    /// The table could not be read or written.
    #[error("exchange table {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The table file of `exchange`, refusing names kombu refuses.
pub fn table_path(control: &Path, exchange: &str) -> Result<PathBuf, ExchangeError> {
    let valid = exchange
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && (exchange.is_empty() || !exchange.chars().all(|c| c == '.'));
    if !valid {
        return Err(ExchangeError::Name(exchange.to_owned()));
    }
    Ok(control.join(format!("{exchange}.exchange")))
}

/// Parses a table as kombu writes it; entries that are not three strings are skipped.
pub fn parse_table(raw: &[u8]) -> Vec<Binding> {
    let Ok(Value::List(items)) = json::decode(raw) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let (Value::List(b) | Value::Tuple(b)) = item else {
                return None;
            };
            let text = |i: usize| match b.get(i) {
                Some(Value::Str(s)) => Some(s.clone()),
                Some(Value::None) => Some(String::new()),
                _ => None,
            };
            Some(Binding {
                routing_key: text(0)?,
                pattern: text(1)?,
                queue: text(2)?,
            })
        })
        .collect()
}

/// Serializes a table as kombu's `dumps` does (Python's `json.dumps`).
pub fn render_table(bindings: &[Binding]) -> Vec<u8> {
    let list = bindings
        .iter()
        .map(|b| {
            Value::List(vec![
                Value::Str(b.routing_key.clone()),
                Value::Str(b.pattern.clone()),
                Value::Str(b.queue.clone()),
            ])
        })
        .collect();
    json::encode(&Value::List(list))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExchangeError + '_ {
    move |source| ExchangeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the bindings of `exchange` (none when it has no table).
pub fn read_table(control: &Path, exchange: &str) -> Result<Vec<Binding>, ExchangeError> {
    let path = table_path(control, exchange)?;
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    file.lock_shared().map_err(io(&path))?;
    let mut raw = Vec::new();
    let read = (&file).take(MAX_TABLE_BYTES).read_to_end(&mut raw);
    let _ = file.unlock();
    read.map_err(io(&path))?;
    Ok(parse_table(&raw))
}

/// Adds a binding to `exchange`'s table (first, as kombu inserts it) unless it is there.
pub fn bind(control: &Path, exchange: &str, binding: &Binding) -> Result<(), ExchangeError> {
    rewrite(control, exchange, true, |table| {
        if table.contains(binding) {
            return false;
        }
        table.insert(0, binding.clone());
        true
    })
}

/// Removes a binding from `exchange`'s table (kombu does so when an auto-delete queue goes,
/// e.g. a client's reply queue); nothing when it has no table.
pub fn unbind(control: &Path, exchange: &str, binding: &Binding) -> Result<(), ExchangeError> {
    rewrite(control, exchange, false, |table| {
        let before = table.len();
        table.retain(|b| b != binding);
        table.len() != before
    })
}

/// Rewrites `exchange`'s table under an exclusive lock when `change` says it changed it;
/// `create`: make the table when there is none.
fn rewrite(
    control: &Path,
    exchange: &str,
    create: bool,
    change: impl FnOnce(&mut Vec<Binding>) -> bool,
) -> Result<(), ExchangeError> {
    let path = table_path(control, exchange)?;
    if create {
        std::fs::create_dir_all(control).map_err(io(control))?;
    }
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(&path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&path)(e)),
    };
    file.lock().map_err(io(&path))?;
    let result = (|| {
        let mut raw = Vec::new();
        (&file).take(MAX_TABLE_BYTES).read_to_end(&mut raw)?;
        let mut table = parse_table(&raw);
        if !change(&mut table) {
            return Ok(());
        }
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&render_table(&table))?;
        let len = file.stream_position()?;
        file.set_len(len)
    })();
    let _ = file.unlock();
    result.map_err(io(&path))
}

/// The queues a message published to an exchange of `exchange_type` with `routing_key`
/// goes to, as kombu's exchange types look them up.
pub fn lookup(bindings: &[Binding], exchange_type: &str, routing_key: &str) -> Vec<String> {
    let mut queues: Vec<String> = Vec::new();
    for b in bindings {
        let hit = match exchange_type {
            "fanout" => true,
            "topic" => topic_matches(&b.routing_key, routing_key),
            _ => b.routing_key == routing_key,
        };
        if hit && !queues.contains(&b.queue) {
            queues.push(b.queue.clone());
        }
    }
    queues
}

/// A piece of a topic binding key.
enum Piece<'a> {
    /// Matched as written.
    Text(&'a str),
    /// `*`: one or more characters other than a dot.
    Word,
    /// `#`: any characters, dots too, or none.
    Any,
}

/// Topic matching as kombu's `TopicExchange` does it (the binding key made into the regex
/// `key_to_pattern` writes: `*` is `[^.]+`, `#` is `.*?`, the rest literal).
fn topic_matches(binding_key: &str, key: &str) -> bool {
    fn go(pieces: &[Piece<'_>], s: &str) -> bool {
        let Some((first, rest)) = pieces.split_first() else {
            return s.is_empty();
        };
        match first {
            Piece::Text(t) => s.strip_prefix(t).is_some_and(|s| go(rest, s)),
            Piece::Word => {
                let run = s.find('.').unwrap_or(s.len());
                s[..run]
                    .char_indices()
                    .map(|(i, c)| i + c.len_utf8())
                    .any(|end| go(rest, &s[end..]))
            }
            Piece::Any => std::iter::once(0)
                .chain(s.char_indices().map(|(i, c)| i + c.len_utf8()))
                .any(|end| go(rest, &s[end..])),
        }
    }
    let mut pieces = Vec::new();
    for (i, word) in binding_key.split('.').enumerate() {
        if i > 0 {
            pieces.push(Piece::Text("."));
        }
        pieces.push(match word {
            "*" => Piece::Word,
            "#" => Piece::Any,
            w => Piece::Text(w),
        });
    }
    go(&pieces, key)
}

/// The regex kombu stores as a topic binding's pattern (`TopicExchange.key_to_pattern`), so
/// that a kombu producer reading a binding rcelery wrote routes as with its own.
pub fn topic_pattern(binding_key: &str) -> String {
    let escaped: String = binding_key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '#' | '*') {
                c.to_string()
            } else if c == '\0' {
                "\\000".to_owned()
            } else {
                format!("\\{c}")
            }
        })
        .collect();
    let words: Vec<&str> = escaped
        .split('.')
        .map(|w| match w {
            "*" => r"[^\.]+",
            "#" => r".*?",
            w => w,
        })
        .collect();
    format!("^{}$", words.join(r"\."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trip_in_kombus_format() {
        let b = Binding {
            routing_key: "celery".into(),
            pattern: String::new(),
            queue: "celery".into(),
        };
        let raw = render_table(std::slice::from_ref(&b));
        assert_eq!(raw, br#"[["celery", "", "celery"]]"#);
        assert_eq!(parse_table(&raw), vec![b]);
        assert!(parse_table(b"not json").is_empty());
    }

    #[test]
    fn exchange_names_kombu_refuses() {
        let c = Path::new("control");
        assert!(table_path(c, "../x").is_err());
        assert!(table_path(c, "..").is_err());
        assert!(table_path(c, "a/b").is_err());
        assert_eq!(table_path(c, "celery").unwrap(), c.join("celery.exchange"));
        assert_eq!(table_path(c, "").unwrap(), c.join(".exchange"));
    }

    #[test]
    fn lookups_by_exchange_type() {
        let b = |rk: &str, q: &str| Binding {
            routing_key: rk.into(),
            pattern: String::new(),
            queue: q.into(),
        };
        let t = vec![b("a", "qa"), b("b", "qb"), b("x.*", "qx"), b("#", "qall")];
        assert_eq!(lookup(&t, "direct", "a"), vec!["qa"]);
        assert_eq!(lookup(&t, "fanout", "zzz").len(), 4);
        assert_eq!(lookup(&t, "topic", "x.y"), vec!["qx", "qall"]);
        assert!(lookup(&t, "topic", "x").contains(&"qall".to_owned()));
        assert!(!lookup(&t, "topic", "x").contains(&"qx".to_owned()));
        // kombu's `#` is `.*?` in a regex: `a.#` needs the dot.
        assert!(topic_matches("a.#", "a.b.c"));
        assert!(!topic_matches("a.#", "a"));
        assert!(topic_matches("*.b", "aa.b"));
        assert!(!topic_matches("*.b", ".b"));
    }

    #[test]
    fn topic_patterns_as_kombu_writes_them() {
        // TopicExchange(None).key_to_pattern(...) in kombu 5.7.
        assert_eq!(topic_pattern("a.*.b"), r"^a\.[^\.]+\.b$");
        assert_eq!(topic_pattern("#"), r"^.*?$");
        assert_eq!(topic_pattern("x.y-z"), r"^x\.y\-z$");
        assert_eq!(topic_pattern("q_1.#"), r"^q\_1\..*?$");
    }

    #[test]
    fn bind_adds_once() {
        let dir = std::env::temp_dir().join(format!("rcelery-ex-{}", uuid::Uuid::new_v4()));
        let b = Binding {
            routing_key: "q".into(),
            pattern: String::new(),
            queue: "q".into(),
        };
        bind(&dir, "q", &b).unwrap();
        bind(&dir, "q", &b).unwrap();
        assert_eq!(read_table(&dir, "q").unwrap(), vec![b.clone()]);
        unbind(&dir, "q", &b).unwrap();
        assert_eq!(read_table(&dir, "q").unwrap(), vec![]);
        unbind(&dir, "nothing", &b).unwrap();
        assert!(!dir.join("nothing.exchange").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
