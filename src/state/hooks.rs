//! Start-up and shutdown hooks: async functions the worker runs once, before its first task
//! (building state from the settings) and after its last (closing what they opened).

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Requirement, StateMap};
use crate::config::Config;
use crate::redis_client::mask::mask_secrets_in_text;

/// Any error a hook may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a start-up hook is given: the worker's settings (Celery's and the app's own keys of
/// the TOML file or Celery app) and its node name.
#[derive(Debug, Clone)]
pub struct Startup {
    /// The worker's settings.
    pub config: Arc<Config>,
    /// The worker's node name (`w1@host`).
    pub hostname: String,
}

impl Startup {
    /// A setting rcelery itself does not read (an app's own key such as `database_url`), as
    /// written in the TOML file or the Celery app.
    pub fn setting(&self, name: &str) -> Option<&toml::Value> {
        self.config.unknown.get(name)
    }

    /// [`Startup::setting`] when it is a string.
    pub fn setting_str(&self, name: &str) -> Option<&str> {
        self.setting(name).and_then(toml::Value::as_str)
    }
}

type StartupFn = dyn Fn(Startup) -> BoxFuture<'static, Result<Arc<dyn Any + Send + Sync>, BoxError>>
    + Send
    + Sync;

/// An async function building one state value at start-up.
#[derive(Clone)]
pub struct StartupHook {
    provides: Requirement,
    run: Arc<StartupFn>,
}

impl std::fmt::Debug for StartupHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StartupHook({})", self.provides.type_name)
    }
}

impl StartupHook {
    /// A hook building a `T` with `f`.
    pub fn new<T, F, Fut, E>(f: F) -> StartupHook
    where
        T: Send + Sync + 'static,
        F: Fn(Startup) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        StartupHook {
            provides: Requirement::of::<T>(),
            run: Arc::new(move |startup| {
                f(startup)
                    .map(|r| {
                        r.map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>)
                            .map_err(Into::into)
                    })
                    .boxed()
            }),
        }
    }

    /// The type the hook builds.
    pub fn provides(&self) -> Requirement {
        self.provides
    }

    /// Runs the hook and adds its value to `state`.
    pub async fn run(&self, startup: Startup, state: &mut StateMap) -> Result<(), StartupError> {
        let value = (self.run)(startup).await.map_err(|e| StartupError::Hook {
            type_name: self.provides.type_name,
            message: mask_secrets_in_text(&error_chain(e.as_ref())),
        })?;
        state.insert_any(self.provides, value);
        Ok(())
    }
}

type ShutdownFn = dyn Fn(Arc<StateMap>) -> BoxFuture<'static, ()> + Send + Sync;

/// An async function run once when the worker has stopped, with the app's state.
#[derive(Clone)]
pub struct ShutdownHook {
    run: Arc<ShutdownFn>,
}

impl std::fmt::Debug for ShutdownHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShutdownHook")
    }
}

impl ShutdownHook {
    /// A hook running `f`.
    pub fn new<F, Fut>(f: F) -> ShutdownHook
    where
        F: Fn(Arc<StateMap>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        ShutdownHook {
            run: Arc::new(move |state| f(state).boxed()),
        }
    }

    /// Runs the hook.
    pub async fn run(&self, state: Arc<StateMap>) {
        (self.run)(state).await
    }
}

/// Why the app's state could not be made ready: the worker does not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A start-up hook failed (its message with every password masked).
    #[error("start-up hook building {type_name} failed: {message}")]
    Hook {
        /// The type the hook builds.
        type_name: &'static str,
        /// The error and its causes, masked.
        message: String,
    },
    /// A task takes a state type that the app neither holds nor builds.
    #[error("task {task} takes State<{type_name}>, but the app provides no {type_name} (give it with App::state or build it with App::on_startup)")]
    Missing {
        /// The task's name.
        task: String,
        /// The missing type.
        type_name: &'static str,
    },
}

/// `error: cause: cause`, as the error and its sources say.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
