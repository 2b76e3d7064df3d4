//! The application: a name and the tasks it registers. Your binary builds one and hands it
//! to [`crate::cli::main`], which runs `rcelery worker ...` with it.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     let app = rcelery::App::new("tasks").register(add::task()).register(mul::task());
//!     rcelery::cli::main(app)
//! }
//! ```

use crate::task::{Registry, TaskDef};

/// An rcelery application.
#[derive(Debug, Clone)]
pub struct App {
    name: String,
    registry: Registry,
}

impl App {
    /// An app with no tasks. `name` is what `-A` selects (like Celery's app module).
    pub fn new(name: &str) -> App {
        App {
            name: name.to_owned(),
            registry: Registry::default(),
        }
    }

    /// Registers a task (see [`crate::task`]).
    pub fn register(mut self, def: TaskDef) -> App {
        self.registry.insert(def);
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
}
