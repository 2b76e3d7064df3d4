//! `--statedb PATH`: the revoked ids kept across restarts.
//!
//! Celery's state db is a Python `shelve`; rcelery writes its own format, a JSON document
//! `{"format": "rcelery-statedb", "version": 1, "revoked": ["<id>", ...]}` (oldest first),
//! replaced atomically (written to `PATH.tmp`, then renamed). As Celery 5.7 does, the ids read
//! back are stamped with the time they are read, not the time they were revoked.

use std::path::{Path, PathBuf};

/// The statedb format name.
const FORMAT: &str = "rcelery-statedb";

/// Errors reading or writing the state db.
#[derive(Debug, thiserror::Error)]
pub enum StateDbError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an rcelery state db.
    #[error("{path}: not an rcelery state db: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Document {
    format: String,
    version: u32,
    revoked: Vec<String>,
}

/// Reads the revoked ids saved at `path`; none when the file does not exist yet.
pub fn load(path: &Path) -> Result<Vec<String>, StateDbError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateDbError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let doc: Document = serde_json::from_slice(&text).map_err(|e| StateDbError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if doc.format != FORMAT || doc.version != 1 {
        return Err(StateDbError::Format {
            path: path.to_owned(),
            reason: format!("format {:?} version {}", doc.format, doc.version),
        });
    }
    Ok(doc.revoked)
}

/// Saves `ids` at `path`, replacing what was there at once.
pub fn save(path: &Path, ids: Vec<String>) -> Result<(), StateDbError> {
    let doc = Document {
        format: FORMAT.to_owned(),
        version: 1,
        revoked: ids,
    };
    let io = |source| StateDbError::Io {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec(&doc).map_err(|e| io(std::io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_save_and_load() {
        let dir = std::env::temp_dir().join(format!("rcelery-statedb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("worker.state");
        assert!(load(&path).expect("missing is empty").is_empty());
        save(&path, vec!["a".into(), "b".into()]).expect("saved");
        assert_eq!(load(&path).expect("loaded"), vec!["a", "b"]);
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(load(&path), Err(StateDbError::Format { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
