//! The filesystem transport's `broker_transport_options`, under kombu's names and with its
//! defaults (folders relative to the working directory).

use std::path::PathBuf;
use std::time::Duration;

/// kombu's default `polling_interval` for its virtual transports, in seconds.
const DEFAULT_POLLING_INTERVAL: f64 = 1.0;

/// Where messages are read and written, and how often the folder is looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesystemOptions {
    /// `data_folder_in` (`data_in`): where consumers take messages from.
    pub data_folder_in: PathBuf,
    /// `data_folder_out` (`data_out`): where producers write messages.
    pub data_folder_out: PathBuf,
    /// `processed_folder` (`processed`): where taken messages are kept when
    /// `store_processed` is on.
    pub processed_folder: PathBuf,
    /// `store_processed` (false): keep settled messages in `processed_folder`.
    pub store_processed: bool,
    /// `control_folder` (`control`): one `<exchange>.exchange` file per exchange, listing its
    /// bindings.
    pub control_folder: PathBuf,
    /// `polling_interval` (1 s): how long an idle consumer waits before listing the folder
    /// again.
    pub polling_interval: Duration,
    /// `rcelery_max_message_bytes` (shared with the Redis transport): a larger message file
    /// is never read into memory; 0 for no limit.
    pub max_message_bytes: usize,
}

impl Default for FilesystemOptions {
    fn default() -> Self {
        FilesystemOptions {
            data_folder_in: PathBuf::from("data_in"),
            data_folder_out: PathBuf::from("data_out"),
            processed_folder: PathBuf::from("processed"),
            store_processed: false,
            control_folder: PathBuf::from("control"),
            polling_interval: Duration::from_secs_f64(DEFAULT_POLLING_INTERVAL),
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A transport option that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("broker_transport_options.{name}: {reason}")]
pub struct OptionError {
    /// The option.
    pub name: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FilesystemOptions {
    /// Reads the options from `broker_transport_options` (the keys other transports leave);
    /// unknown keys are ignored, as kombu ignores them.
    pub fn from_table(table: &toml::Table, max_message_bytes: usize) -> Result<Self, OptionError> {
        let mut o = FilesystemOptions {
            max_message_bytes,
            ..FilesystemOptions::default()
        };
        let folder = |name: &'static str, into: &mut PathBuf| -> Result<(), OptionError> {
            match table.get(name) {
                None => Ok(()),
                Some(toml::Value::String(s)) if !s.is_empty() => {
                    *into = PathBuf::from(s);
                    Ok(())
                }
                Some(_) => Err(OptionError {
                    name,
                    reason: "must be a folder name",
                }),
            }
        };
        folder("data_folder_in", &mut o.data_folder_in)?;
        folder("data_folder_out", &mut o.data_folder_out)?;
        folder("processed_folder", &mut o.processed_folder)?;
        folder("control_folder", &mut o.control_folder)?;
        match table.get("store_processed") {
            None => {}
            Some(toml::Value::Boolean(b)) => o.store_processed = *b,
            Some(_) => {
                return Err(OptionError {
                    name: "store_processed",
                    reason: "must be true or false",
                })
            }
        }
        let interval = match table.get("polling_interval") {
            None => None,
            Some(toml::Value::Float(f)) => Some(*f),
            Some(toml::Value::Integer(i)) => Some(*i as f64),
            Some(_) => Some(f64::NAN),
        };
        if let Some(secs) = interval {
            if !(secs.is_finite() && secs > 0.0) {
                return Err(OptionError {
                    name: "polling_interval",
                    reason: "must be a positive number of seconds",
                });
            }
            // Never a busy loop: at least a millisecond between two listings.
            o.polling_interval = Duration::from_secs_f64(secs.max(0.001));
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kombu_defaults_and_names() {
        let o = FilesystemOptions::from_table(&toml::Table::new(), 10).unwrap();
        assert_eq!(o.data_folder_in, PathBuf::from("data_in"));
        assert_eq!(o.data_folder_out, PathBuf::from("data_out"));
        assert_eq!(o.processed_folder, PathBuf::from("processed"));
        assert_eq!(o.control_folder, PathBuf::from("control"));
        assert!(!o.store_processed);
        assert_eq!(o.polling_interval, Duration::from_secs(1));
        let t: toml::Table = toml::from_str(
            "data_folder_in = 'q'\ndata_folder_out = 'q'\nprocessed_folder = 'p'\n\
             store_processed = true\npolling_interval = 0.1\nvisibility_timeout = 5",
        )
        .unwrap();
        let o = FilesystemOptions::from_table(&t, 10).unwrap();
        assert_eq!(o.data_folder_in, PathBuf::from("q"));
        assert_eq!(o.data_folder_out, PathBuf::from("q"));
        assert!(o.store_processed);
        assert_eq!(o.polling_interval, Duration::from_millis(100));
    }

    #[test]
    fn refuses_a_zero_polling_interval() {
        let t: toml::Table = toml::from_str("polling_interval = 0").unwrap();
        assert!(FilesystemOptions::from_table(&t, 10).is_err());
    }
}
