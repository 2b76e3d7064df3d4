//! The application: a name, the tasks it registers, and the state they share. Your binary
//! builds one and hands it to [`crate::cli::main`], which runs `rcelery worker ...` with it.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     let app = rcelery::App::new("tasks")
//!         .state(HttpClient::new())
//!         .on_startup(|startup| async move { PgPool::connect(&db_url(&startup)).await })
//!         .register(add::task())
//!         .register(export_users::task());
//!     rcelery::cli::main(app)
//! }
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use crate::state::{BoxError, ShutdownHook, Startup, StartupError, StartupHook, StateMap};
use crate::task::{Registry, TaskDef};

/// An rcelery application.
#[derive(Debug, Clone)]
pub struct App {
    name: String,
    registry: Registry,
    state: StateMap,
    startup: Vec<StartupHook>,
    shutdown: Vec<ShutdownHook>,
}

impl App {
    /// An app with no tasks. `name` is what `-A` selects (like Celery's app module).
    pub fn new(name: &str) -> App {
        App {
            name: name.to_owned(),
            registry: Registry::default(),
            state: StateMap::new(),
            startup: Vec::new(),
            shutdown: Vec::new(),
        }
    }

    /// Registers a task (see [`crate::task`]).
    pub fn register(mut self, def: TaskDef) -> App {
        self.registry.insert(def);
        self
    }

    /// Adds a ready state value, which tasks take as a `State<T>` parameter (one value per
    /// type; a later one replaces an earlier one).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> App {
        self.state.insert(value);
        self
    }

    /// Adds an async start-up hook building a state value of type `T` from the worker's
    /// settings, run once before any task (hooks run in the order they were added). If it
    /// fails, the worker does not start; its error is reported with passwords masked.
    pub fn on_startup<T, F, Fut, E>(mut self, hook: F) -> App
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(Startup) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.startup.push(StartupHook::new(hook));
        self
    }

    /// Adds an async shutdown hook, run once with the app's state after the worker stopped
    /// (e.g. to close a pool).
    pub fn on_shutdown<F, Fut>(mut self, hook: F) -> App
    where
        F: Fn(Arc<StateMap>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.shutdown.push(ShutdownHook::new(hook));
        self
    }

    /// The app name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registered tasks.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Checks that every state type a task takes is given or built by a hook: the first
    /// missing one is the error. The worker checks this before it connects to anything.
    pub fn check_state(&self) -> Result<(), StartupError> {
        let built: HashSet<_> = self.startup.iter().map(|h| h.provides().type_id).collect();
        for name in self.registry.names() {
            let Some(def) = self.registry.get(name) else {
                continue;
            };
            for r in &def.requires {
                if !self.state.contains(r.type_id) && !built.contains(&r.type_id) {
                    return Err(StartupError::Missing {
                        task: name.to_owned(),
                        type_name: r.type_name,
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes the app's state ready: checks it ([`App::check_state`]), then runs the start-up
    /// hooks in order. The returned state is what tasks see.
    pub async fn start(&self, startup: Startup) -> Result<Arc<StateMap>, StartupError> {
        self.check_state()?;
        let mut state = self.state.clone();
        for hook in &self.startup {
            tracing::debug!(
                "start-up hook building {} running",
                hook.provides().type_name
            );
            hook.run(startup.clone(), &mut state).await?;
        }
        Ok(Arc::new(state))
    }

    /// Runs the shutdown hooks in the order they were added.
    pub async fn stop(&self, state: Arc<StateMap>) {
        for hook in &self.shutdown {
            hook.run(Arc::clone(&state)).await;
        }
    }
}
