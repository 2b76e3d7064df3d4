//! Celery's file-system result backend (`result_backend = "file:///path"`): one file per
//! key in one folder, named as the key/value backends name their keys
//! (`celery-task-meta-<id>`, `celery-taskset-meta-<id>`) and holding the same serialized
//! meta, so Python's `AsyncResult` and rcelery read each other's results. Chords are joined
//! by `celery.chord_unlock`, as Celery does on this backend.
//!
//! Celery writes a result file in place; rcelery writes it beside and renames it, so a
//! reader never sees half a result. A file being written by Celery that does not decode
//! yet is read as still pending.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use super::meta::decode_stored;
use super::{BackendError, MetaEncoder, ResultBackend, ResultRecord};
use crate::value::Value;

/// Celery's key prefixes (task, group, chord) that `cleanup` looks at.
const PREFIXES: [&str; 3] = ["celery-task-meta-", "celery-taskset-meta-", "chord-unlock-"];

/// True when `url` names this backend (`file://`).
pub fn is_file_url(url: &str) -> bool {
    url.starts_with("file://")
}

/// The folder a `file://` URL names, as Celery reads it: what follows `file://localhost`
/// or `file://` (so `file:///abs` is absolute and `file://rel` relative).
pub fn folder_of(url: &str) -> Result<PathBuf, BackendError> {
    let path = url
        .strip_prefix("file://localhost/")
        .map(|p| format!("/{p}"))
        .or_else(|| url.strip_prefix("file://").map(str::to_owned))
        .ok_or_else(|| {
            BackendError::Url("a file-system result backend URL starts with file://".into())
        })?;
    if path.is_empty() {
        return Err(BackendError::Url(
            "You need to configure a path for the file-system backend".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

/// The file-system result backend.
pub struct FileBackend {
    folder: PathBuf,
    url: String,
    encoder: MetaEncoder,
    expires: Option<Duration>,
    prefix: String,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> BackendError {
    BackendError::Store(format!("{what} {}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Store(format!("file task failed: {e}")))?
}

impl FileBackend {
    /// The backend on the folder `url` names (created when missing; Celery requires it to
    /// exist). `prefix` is `result_backend_transport_options.global_keyprefix`.
    pub fn new(
        url: &str,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        prefix: &str,
    ) -> Result<FileBackend, BackendError> {
        let folder = folder_of(url)?;
        std::fs::create_dir_all(&folder).map_err(|e| io_error("cannot create", &folder, e))?;
        Ok(FileBackend {
            folder,
            url: url.to_owned(),
            encoder,
            expires,
            prefix: prefix.to_owned(),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.folder.join(format!("{}{key}", self.prefix))
    }

    async fn read(&self, key: String) -> Result<Option<Value>, BackendError> {
        let path = self.path(&key);
        let raw = blocking(move || match std::fs::read(&path) {
            Ok(raw) => Ok(Some(raw)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path, e)),
        })
        .await?;
        let Some(raw) = raw else { return Ok(None) };
        match decode_stored(&raw) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) => {
                // Celery writes in place: this may be a result being written.
                tracing::debug!("result file {key} does not decode (yet): {e}");
                Ok(None)
            }
        }
    }
}

/// Writes `payload` to `path` through a dot file in the same folder and a rename.
fn write_atomically(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let partial = folder.join(format!(".rcelery-partial-{}", uuid::Uuid::new_v4()));
    let result = std::fs::write(&partial, payload).and_then(|()| std::fs::rename(&partial, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

impl ResultBackend for FileBackend {
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        let payload = self.encoder.encode(&record);
        let path = self.path(&format!("celery-task-meta-{}", record.task_id));
        Box::pin(blocking(move || {
            write_atomically(&path, &payload).map_err(|e| io_error("cannot write", &path, e))
        }))
    }

    fn get_meta<'a>(
        &'a self,
        task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        Box::pin(self.read(format!("celery-task-meta-{task_id}")))
    }

    fn restore_group<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BackendError>> {
        Box::pin(async move {
            let meta = self.read(format!("celery-taskset-meta-{group_id}")).await?;
            Ok(meta
                .as_ref()
                .and_then(Value::as_dict)
                .and_then(|d| d.get("result"))
                .cloned())
        })
    }

    fn cleanup(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        let Some(expires) = self.expires else {
            return Box::pin(async { Ok(0) });
        };
        let folder = self.folder.clone();
        let prefix = self.prefix.clone();
        Box::pin(blocking(move || {
            let cutoff = SystemTime::now()
                .checked_sub(expires)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let mut removed = 0;
            let entries =
                std::fs::read_dir(&folder).map_err(|e| io_error("cannot list", &folder, e))?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(key) = name.strip_prefix(prefix.as_str()) else {
                    continue;
                };
                if !PREFIXES.iter().any(|p| key.starts_with(p)) {
                    continue;
                }
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        }))
    }

    fn check_at_start(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        // Celery's directory test: write, read back and delete a probe file.
        let probe = self
            .folder
            .join(format!(".fs-backend-{}", uuid::Uuid::new_v4()));
        Box::pin(blocking(move || {
            let check = (|| {
                std::fs::write(&probe, b"test value")?;
                let back = std::fs::read(&probe)?;
                std::fs::remove_file(&probe)?;
                if back != b"test value" {
                    return Err(std::io::Error::other("read back something else"));
                }
                Ok(())
            })();
            check.map_err(|e| {
                BackendError::Store(format!(
                    "the folder {} does not work ({e}): check that it exists and is writable",
                    probe.parent().unwrap_or(Path::new(".")).display()
                ))
            })
        }))
    }

    fn display_url(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::State;
    use crate::codec::Serializer;

    const GOLDEN_SUCCESS: &[u8] =
        include_bytes!("../../python-fixtures/golden/filesystem/result_success");
    const GOLDEN_FAILURE: &[u8] =
        include_bytes!("../../python-fixtures/golden/filesystem/result_failure");

    fn keys(meta: &Value) -> Vec<String> {
        meta.as_dict()
            .unwrap()
            .iter()
            .map(|(k, _)| format!("{k:?}"))
            .collect()
    }

    #[tokio::test]
    async fn reads_what_celery_wrote_and_writes_the_same_layout() {
        let dir = std::env::temp_dir().join(format!("rcelery-fb-{}", uuid::Uuid::new_v4()));
        let url = format!("file://{}", dir.display());
        let encoder = MetaEncoder {
            serializer: Serializer::Json,
            extended: false,
            timezone: chrono_tz::Asia::Shanghai,
        };
        let backend = FileBackend::new(&url, encoder, None, "").unwrap();
        backend.check_at_start().await.unwrap();
        // Celery's files, as a Python worker wrote them.
        std::fs::write(dir.join("celery-task-meta-py-ok"), GOLDEN_SUCCESS).unwrap();
        std::fs::write(dir.join("celery-task-meta-py-failed"), GOLDEN_FAILURE).unwrap();
        let ok = backend.get_meta("py-ok").await.unwrap().unwrap();
        let ok_dict = ok.as_dict().unwrap();
        assert_eq!(ok_dict.get("status"), Some(&Value::Str("SUCCESS".into())));
        assert_eq!(ok_dict.get("result"), Some(&Value::Int(5)));
        let failed = backend.get_meta("py-failed").await.unwrap().unwrap();
        let exc = failed.as_dict().unwrap().get("result").unwrap();
        let (exc_type, _) = crate::backend::meta::exception_parts(exc);
        assert_eq!(exc_type, "ValueError");
        assert_eq!(backend.get_meta("missing").await.unwrap(), None);
        // A file being written (does not decode yet) is still pending.
        std::fs::write(dir.join("celery-task-meta-half"), &GOLDEN_SUCCESS[..20]).unwrap();
        assert_eq!(backend.get_meta("half").await.unwrap(), None);
        // rcelery's file: same name, same keys in the same order.
        let record = ResultRecord {
            task_id: "rs-ok".into(),
            state: State::Success,
            result: Value::Int(5),
            traceback: None,
            children: Vec::new(),
            group_id: None,
            parent_id: None,
            extended: None,
            reply_to: None,
            correlation_id: None,
        };
        backend.store(record).await.unwrap();
        let raw = std::fs::read(dir.join("celery-task-meta-rs-ok")).unwrap();
        let mine = decode_stored(&raw).unwrap();
        assert_eq!(keys(&mine), keys(&ok));
        // Only result files are left: no partial files, no probe.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "celery-task-meta-half",
                "celery-task-meta-py-failed",
                "celery-task-meta-py-ok",
                "celery-task-meta-rs-ok"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn folders_as_celery_reads_them() {
        assert_eq!(folder_of("file:///tmp/r").unwrap(), PathBuf::from("/tmp/r"));
        assert_eq!(
            folder_of("file://localhost/tmp/r").unwrap(),
            PathBuf::from("/tmp/r")
        );
        assert_eq!(
            folder_of("file://.rcelery/results").unwrap(),
            PathBuf::from(".rcelery/results")
        );
        assert!(folder_of("file://").is_err());
        assert!(folder_of("redis://x").is_err());
    }
}
