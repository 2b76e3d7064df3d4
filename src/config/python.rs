//! The settings of a Python Celery app, asked of Python once at start-up.
//!
//! `rcelery -A tasks.task worker` in a project that has a Celery app reads that app's
//! configuration exactly as the Python worker sees it: a small helper
//! ([`HELPER_SOURCE`], shipped inside the binary) runs with the project's interpreter, imports
//! the `-A` argument with Celery's own `find_app` (the working directory first on
//! `sys.path`, as `celery -A` puts it), reads `app.conf` after `config_from_object` and the
//! `CELERY_BROKER_URL` / `CELERY_RESULT_BACKEND` environment overrides, and prints it as JSON.
//! Nothing of Python runs after that.
//!
//! Which interpreter: `RCELERY_PYTHON`, else the active virtualenv's (`VIRTUAL_ENV`), else
//! `python3` on `PATH` ([`find_python`]). When Python is asked at all is [`wants_python`]'s
//! rule.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::Config;
use crate::redis_client::mask::mask_secrets_in_text;

/// The helper's source (run as `python - REQUEST`, the program on standard input).
pub const HELPER_SOURCE: &str = include_str!("celery_app_config.py");

/// What starts the helper's answer line on its standard output.
const MARKER: &str = "@@RCELERY-CONFIG@@ ";

/// Lines of the helper's standard error kept for an error message.
const STDERR_TAIL_LINES: usize = 12;

/// The `-A` rule: whether `app` names a Python Celery app to ask (rather than the app
/// compiled into this binary). Python is asked when `app` has a `.` or a `:`
/// (`tasks.task`, `proj.celery:app`), or when its module is importable from `dir` (the
/// working directory after `--workdir`): `dir/<app>.py` or a package directory `dir/<app>/`.
/// A bare name with neither (`-A tasks` on a machine with no Python project there) is the
/// compiled-in app.
pub fn wants_python(app: &str, dir: &Path) -> bool {
    if app.is_empty() || app.contains(['/', '\\']) {
        return false;
    }
    if app.contains(['.', ':']) {
        return true;
    }
    dir.join(format!("{app}.py")).is_file() || dir.join(app).is_dir()
}

/// The interpreter to run, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    /// The executable.
    pub path: PathBuf,
    /// Where it was found: `RCELERY_PYTHON`, `VIRTUAL_ENV` or `PATH`.
    pub origin: &'static str,
}

impl fmt::Display for Python {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.path.display(), self.origin)
    }
}

/// Errors asking Python for a Celery app's settings. Every message has its passwords masked.
#[derive(Debug, thiserror::Error)]
pub enum PythonConfigError {
    /// No interpreter was found.
    #[error("{0}")]
    NoPython(String),
    /// The interpreter could not be started or did not answer.
    #[error("cannot run {python}: {message}")]
    Run {
        /// The interpreter.
        python: String,
        /// Why.
        message: String,
    },
    /// Python answered with an error: the app could not be imported, is not a Celery app,
    /// Celery is not installed there, ...
    #[error("cannot load the Celery app {app:?} with {python}: {message}{}", details(.traceback))]
    App {
        /// The `-A` argument.
        app: String,
        /// The interpreter.
        python: String,
        /// What kind of failure (`import`, `not_an_app`, `no_celery`, `config`, `helper`).
        kind: String,
        /// Python's message.
        message: String,
        /// The last lines of Python's traceback (or of its standard error).
        traceback: Option<String>,
    },
    /// A setting's value does not fit rcelery's type for it.
    #[error(
        "the Celery app {app:?} (read with {python}) has settings rcelery cannot use: {message}"
    )]
    Setting {
        /// The `-A` argument.
        app: String,
        /// The interpreter.
        python: String,
        /// Which settings, and why.
        message: String,
    },
}

fn details(traceback: &Option<String>) -> String {
    match traceback.as_deref().map(str::trim_end) {
        Some(t) if !t.is_empty() => format!("\n{t}"),
        _ => String::new(),
    }
}

/// Finds the interpreter: `RCELERY_PYTHON` (a path, or a name looked up on `PATH`), else
/// `$VIRTUAL_ENV/bin/python`, else `python3` on `PATH`.
pub fn find_python() -> Result<Python, PythonConfigError> {
    let path_var = std::env::var_os("PATH");
    let lookup = |name: &str| -> Option<PathBuf> {
        if name.contains(std::path::MAIN_SEPARATOR) || name.contains('/') {
            let p = PathBuf::from(name);
            return p.is_file().then_some(p);
        }
        std::env::split_paths(path_var.as_deref()?)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    if let Some(explicit) = std::env::var("RCELERY_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return lookup(&explicit)
            .map(|path| Python {
                path,
                origin: "RCELERY_PYTHON",
            })
            .ok_or_else(|| {
                PythonConfigError::NoPython(format!(
                    "RCELERY_PYTHON={explicit:?} is not an executable file (nor a name on PATH)"
                ))
            });
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let venv = PathBuf::from(venv);
        let bin = if cfg!(windows) {
            venv.join("Scripts").join("python.exe")
        } else {
            venv.join("bin").join("python")
        };
        if bin.is_file() {
            return Ok(Python {
                path: bin,
                origin: "VIRTUAL_ENV",
            });
        }
        tracing::warn!(
            "VIRTUAL_ENV={} has no {}; looking for python3 on PATH",
            venv.display(),
            bin.display()
        );
    }
    lookup("python3")
        .map(|path| Python {
            path,
            origin: "PATH",
        })
        .ok_or_else(|| {
            PythonConfigError::NoPython(
                "no Python to read the Celery app's settings with: python3 is not on PATH; set \
                 RCELERY_PYTHON to the project's interpreter, activate its virtualenv, or give \
                 the settings in a TOML file (--config)"
                    .to_owned(),
            )
        })
}

/// What the helper is asked.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The `-A` argument.
    pub app: &'a str,
    /// `--config` when it is a Python module name (Celery's `CELERY_CONFIG_MODULE`).
    pub config_module: Option<&'a str>,
    /// `--loader` (Celery's `CELERY_LOADER`).
    pub loader: Option<&'a str>,
    /// `-b` (set as `CELERY_BROKER_URL` for the app, as `celery` does).
    pub broker: Option<&'a str>,
    /// `--result-backend` (set as `CELERY_RESULT_BACKEND`, as `celery` does).
    pub result_backend: Option<&'a str>,
    /// `--skip-checks` (Celery's `CELERY_SKIP_CHECKS`).
    pub skip_checks: bool,
}

/// A setting the helper could not turn into data (a callable, a crontab, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Skipped {
    /// The setting.
    pub setting: String,
    /// What it holds, and why it was left out.
    pub reason: String,
}

/// Django's `DATABASES['default']` (the `django-db` result backend's database). `Debug` masks
/// the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct DjangoDatabase {
    /// `ENGINE`.
    pub engine: Option<String>,
    /// `NAME`.
    pub name: Option<String>,
    /// `USER`.
    pub user: Option<String>,
    /// `PASSWORD`.
    pub password: Option<String>,
    /// `HOST`.
    pub host: Option<String>,
    /// `PORT`.
    pub port: Option<String>,
}

impl fmt::Debug for DjangoDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DjangoDatabase")
            .field("engine", &self.engine)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "**"))
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

/// What Django was configured with, when the app configures Django. `Debug` masks the
/// password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct DjangoInfo {
    /// `DJANGO_SETTINGS_MODULE`.
    pub settings_module: Option<String>,
    /// `DATABASES['default']`.
    pub database: Option<DjangoDatabase>,
    /// `DATABASES['default']` as a URL (`postgresql://`, `mysql://`, `sqlite:///`), for the
    /// `django-db` result backend; `None` for an engine rcelery does not speak.
    #[serde(default)]
    pub database_url: Option<String>,
}

impl fmt::Debug for DjangoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DjangoInfo")
            .field("settings_module", &self.settings_module)
            .field("database", &self.database)
            .field(
                "database_url",
                &self.database_url.as_deref().map(mask_secrets_in_text),
            )
            .finish()
    }
}

/// The helper's answer: the app's settings under Celery's names, and what else it knows.
#[derive(Debug, Clone, Deserialize)]
pub struct CeleryApp {
    /// The `-A` argument.
    pub app: String,
    /// The app's `main` name (`Celery('celery')`).
    pub main: Option<String>,
    /// `sys.executable`.
    pub python: String,
    /// Python's version.
    pub python_version: String,
    /// Celery's version.
    pub celery_version: String,
    /// The settings rcelery knows, and every other one that differs from Celery's default,
    /// as JSON.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Settings left out because they are not data.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Other things the helper noticed (routers given as code, task modules that failed).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The task names the app registers (after importing `imports` / `include`).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Django's settings module and default database, when Django is configured.
    #[serde(default)]
    pub django: Option<DjangoInfo>,
}

#[derive(Deserialize)]
struct Failure {
    error: String,
    message: String,
    traceback: Option<String>,
}

impl CeleryApp {
    /// The settings as rcelery's [`Config`] (see [`Config::from_json_settings`]).
    pub fn config(&self) -> Result<Config, PythonConfigError> {
        Config::from_json_settings(&self.settings).map_err(|message| PythonConfigError::Setting {
            app: self.app.clone(),
            python: self.python.clone(),
            message: mask_secrets_in_text(&message),
        })
    }

    /// Where the settings came from, for the banner: `Celery app tasks.task (python3.11
    /// /path/bin/python, Celery 5.5.3)`.
    pub fn describe(&self) -> String {
        format!(
            "Celery app {} (Python {} {}, Celery {})",
            self.app, self.python_version, self.python, self.celery_version
        )
    }
}

/// Runs the helper with `python` in the current directory and reads its answer.
pub fn ask(python: &Python, request: &Request<'_>) -> Result<CeleryApp, PythonConfigError> {
    let shown = python.to_string();
    let run_error = |message: String| PythonConfigError::Run {
        python: shown.clone(),
        message: mask_secrets_in_text(&message),
    };
    let argument = serde_json::json!({
        "app": request.app,
        "known": super::SETTING_NAMES
            .iter()
            .chain(super::KNOWN_WITHOUT_EFFECT)
            .collect::<Vec<_>>(),
        "config_module": request.config_module,
        "loader": request.loader,
    })
    .to_string();
    let mut command = Command::new(&python.path);
    command
        .arg("-")
        .arg(argument)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONIOENCODING", "utf-8");
    if let Some(url) = request.broker {
        command.env("CELERY_BROKER_URL", url);
    }
    if let Some(url) = request.result_backend {
        command.env("CELERY_RESULT_BACKEND", url);
    }
    if request.skip_checks {
        command.env("CELERY_SKIP_CHECKS", "true");
    }
    tracing::debug!(
        "asking {shown} for the settings of the Celery app {:?}",
        request.app
    );
    let mut child = command.spawn().map_err(|e| run_error(e.to_string()))?;
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(HELPER_SOURCE.as_bytes());
        }
    });
    let mut stderr_pipe = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = stderr_pipe.as_mut() {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    });
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout)
            .map_err(|e| run_error(e.to_string()))?;
    }
    let status = child.wait().map_err(|e| run_error(e.to_string()))?;
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&stderr_reader.join().unwrap_or_default()).into_owned();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        tracing::debug!(target: "rcelery::config::python", "{}", mask_secrets_in_text(line));
    }
    let stdout = String::from_utf8_lossy(&stdout);
    let answer = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(MARKER));
    let Some(answer) = answer else {
        return Err(run_error(format!(
            "it exited ({status}) without an answer{}",
            details(&Some(tail(&stderr)))
        )));
    };
    parse_answer(answer, request.app, &shown)
}

/// Reads the helper's answer line (the JSON after the marker).
pub fn parse_answer(answer: &str, app: &str, python: &str) -> Result<CeleryApp, PythonConfigError> {
    let value: serde_json::Value =
        serde_json::from_str(answer).map_err(|e| PythonConfigError::Run {
            python: python.to_owned(),
            message: format!("unreadable answer: {e}"),
        })?;
    if value.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
        return serde_json::from_value(value).map_err(|e| PythonConfigError::Run {
            python: python.to_owned(),
            message: format!("unreadable answer: {e}"),
        });
    }
    let failure: Failure = serde_json::from_value(value).map_err(|e| PythonConfigError::Run {
        python: python.to_owned(),
        message: format!("unreadable answer: {e}"),
    })?;
    Err(PythonConfigError::App {
        app: app.to_owned(),
        python: python.to_owned(),
        kind: failure.error,
        message: mask_secrets_in_text(&failure.message),
        traceback: failure.traceback.map(|t| mask_secrets_in_text(&t)),
    })
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    mask_secrets_in_text(&lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_a_rule_asks_python_for_dotted_names_and_local_modules() {
        let dir = std::env::temp_dir().join(format!("rcelery-a-rule-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proj")).unwrap();
        std::fs::write(dir.join("single.py"), "").unwrap();
        assert!(wants_python("tasks.task", &dir));
        assert!(wants_python("proj.celery:app", &dir));
        assert!(wants_python("tasks:app", &dir));
        assert!(wants_python("proj", &dir));
        assert!(wants_python("single", &dir));
        assert!(!wants_python("tasks", &dir));
        assert!(!wants_python("", &dir));
        assert!(!wants_python("../x", &dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_error_answer_is_masked() {
        let answer = r#"{"ok": false, "error": "import", "message": "error while importing 'x': ConnectionError: redis://:s3cret@db:6379/0 refused", "traceback": "  File \"x.py\", line 3\n    broker_url = \"redis://:s3cret@db:6379/0\"\nConnectionError: redis://:s3cret@db:6379/0"}"#;
        let err = parse_answer(answer, "x", "python3").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("ConnectionError"), "{text}");
        assert!(matches!(err, PythonConfigError::App { ref kind, .. } if kind == "import"));
    }

    #[test]
    fn a_good_answer_reads_and_maps_onto_the_config() {
        let answer = r#"{"ok": true, "app": "tasks.task", "main": "celery", "python": "/venv/bin/python",
            "python_version": "3.11.7", "celery_version": "5.5.3",
            "settings": {"broker_url": "redis://:123456@localhost:6379/3", "task_acks_late": true,
                "task_queues": [{"name": "default", "exchange": "default", "exchange_type": "direct",
                                 "routing_key": "default", "max_priority": 10}],
                "worker_max_tasks_per_child": 100, "result_expires": 60},
            "skipped": [{"setting": "beat_schedule", "reason": "a crontab"}], "notes": [],
            "tasks": ["tasks.add"],
            "django": {"settings_module": "djproject.settings",
                       "database": {"engine": "django.db.backends.postgresql", "name": "app",
                                    "user": "postgres", "password": "pw", "host": "localhost", "port": "5432"}}}"#;
        let app = parse_answer(answer, "tasks.task", "python3").unwrap();
        let config = app.config().unwrap();
        assert!(config.task_acks_late);
        assert_eq!(config.result_expires, 60.0);
        assert_eq!(config.task_queues[0].max_priority, Some(10));
        assert_eq!(app.skipped[0].setting, "beat_schedule");
        assert!(app.describe().contains("Celery app tasks.task"));
        let db = app.django.unwrap().database.unwrap();
        assert_eq!(db.port.as_deref(), Some("5432"));
        assert!(!format!("{db:?}").contains("pw\""));
    }
}
