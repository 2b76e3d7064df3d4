//! The message folders, file by file (blocking calls; the transport runs them off the
//! runtime's threads): listing, the atomic claim, reading under kombu's lock, writing,
//! settling and putting back.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::naming::{self, CLAIMED_SUFFIX, PARTIAL_SUFFIX};

/// How many times an empty file is looked at again: kombu creates a message file before it
/// locks and fills it, so a file taken in between is empty for a moment.
const EMPTY_RETRIES: u32 = 50;

/// Pause between two looks at an empty file.
const EMPTY_PAUSE: Duration = Duration::from_millis(20);

/// A message file this consumer has claimed (renamed to `<name>.rcelery-claimed` in the
/// folder it was found in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The folder it was found in.
    pub folder: PathBuf,
    /// Its message file name.
    pub name: String,
    /// Its queue.
    pub queue: String,
}

impl Claimed {
    /// Where the claimed file is.
    pub fn path(&self) -> PathBuf {
        self.folder.join(format!("{}{CLAIMED_SUFFIX}", self.name))
    }
}

/// What a claimed file held.
#[derive(Debug)]
pub enum Contents {
    /// The file's bytes.
    Bytes(Vec<u8>),
    /// The file is larger than the limit and was not read.
    TooLarge(u64),
}

/// The message files of `queues` in `folder`, oldest first (by name, as kombu sorts).
pub fn list(folder: &Path, queues: &[String]) -> std::io::Result<VecDeque<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if naming::queue_of(&name).is_some_and(|q| queues.iter().any(|w| w == q)) {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names.into())
}

/// Takes `name` from `folder` for this consumer with one `rename`, which only one process
/// can win (kombu's consumers move the file away with a rename too, so whoever renames
/// first has it). `None` when someone else took it.
pub fn claim(folder: &Path, name: &str) -> std::io::Result<Option<Claimed>> {
    let Some(queue) = naming::queue_of(name) else {
        return Ok(None);
    };
    let claimed = Claimed {
        folder: folder.to_owned(),
        name: name.to_owned(),
        queue: queue.to_owned(),
    };
    match std::fs::rename(folder.join(name), claimed.path()) {
        Ok(()) => Ok(Some(claimed)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a claimed file under a shared lock, so that a kombu producer still writing it
/// (it holds an exclusive lock while it writes) is waited for; never more than `limit`
/// bytes (0: no limit).
pub fn read(path: &Path, limit: usize) -> std::io::Result<Contents> {
    for attempt in 0..=EMPTY_RETRIES {
        let file = File::open(path)?;
        file.lock_shared()?;
        let size = file.metadata()?.len();
        if limit > 0 && size > limit as u64 {
            let _ = file.unlock();
            return Ok(Contents::TooLarge(size));
        }
        let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let cap = if limit > 0 {
            limit as u64 + 1
        } else {
            u64::MAX
        };
        let read = (&file).take(cap).read_to_end(&mut raw);
        let _ = file.unlock();
        read?;
        if limit > 0 && raw.len() > limit {
            return Ok(Contents::TooLarge(raw.len() as u64));
        }
        if !raw.is_empty() || attempt == EMPTY_RETRIES {
            return Ok(Contents::Bytes(raw));
        }
        std::thread::sleep(EMPTY_PAUSE);
    }
    Ok(Contents::Bytes(Vec::new()))
}

/// Writes `payload` as `name` in `folder` all at once: into a dot file first, then renamed,
/// so that no consumer ever sees it half written.
pub fn write_atomically(folder: &Path, name: &str, payload: &[u8]) -> std::io::Result<()> {
    let partial = folder.join(format!(".{name}{PARTIAL_SUFFIX}"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)?;
        f.write_all(payload)?;
        drop(f);
        std::fs::rename(&partial, folder.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Writes a new message for `queue` into `folder`; returns its file name.
pub fn put(folder: &Path, queue: &str, payload: &[u8]) -> std::io::Result<String> {
    let name = naming::message_file_name(queue, naming::monotonic_millis(), &uuid::Uuid::new_v4())
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    write_atomically(folder, &name, payload)?;
    Ok(name)
}

/// Done with a claimed file: removed, or moved to `processed` under its message name when
/// given (kombu's `store_processed`).
pub fn settle(claimed: &Claimed, processed: Option<&Path>) -> std::io::Result<()> {
    let path = claimed.path();
    let result = match processed {
        Some(dir) => std::fs::rename(&path, dir.join(&claimed.name)),
        None => std::fs::remove_file(&path),
    };
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Gives a claimed message back under its own name (its place in the queue), with
/// `payload` as its new contents.
pub fn put_back(claimed: &Claimed, payload: &[u8]) -> std::io::Result<()> {
    write_atomically(&claimed.folder, &claimed.name, payload)?;
    settle(claimed, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rcelery-fs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn put_list_claim_read_settle() {
        let dir = temp();
        let queues = vec!["celery".to_owned()];
        let a = put(&dir, "celery", b"{\"a\": 1}").unwrap();
        let b = put(&dir, "celery", b"{\"b\": 2}").unwrap();
        put(&dir, "other", b"{}").unwrap();
        std::fs::write(dir.join("garbage.txt"), b"x").unwrap();
        let listed = list(&dir, &queues).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&a) && listed.contains(&b));
        let c = claim(&dir, &a).unwrap().unwrap();
        // A second consumer loses the race.
        assert_eq!(claim(&dir, &a).unwrap(), None);
        assert_eq!(list(&dir, &queues).unwrap().len(), 1);
        match read(&c.path(), 0).unwrap() {
            Contents::Bytes(raw) => assert_eq!(raw, b"{\"a\": 1}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(read(&c.path(), 3).unwrap(), Contents::TooLarge(8)));
        put_back(&c, b"{\"a\": 3}").unwrap();
        assert_eq!(list(&dir, &queues).unwrap().len(), 2);
        let c = claim(&dir, &a).unwrap().unwrap();
        settle(&c, None).unwrap();
        assert!(!c.path().exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
