//! Typed application state shared by tasks, as axum's `State`: values built once (a database
//! pool, an HTTP or SMTP client), given to the app ready ([`crate::App::state`]) or built by an
//! async start-up hook from the worker's settings ([`crate::App::on_startup`]), and taken by
//! tasks as a typed parameter:
//!
//! ```ignore
//! #[rcelery::task(name = "tasks.count_users")]
//! async fn count_users(State(pool): State<PgPool>) -> TaskResult<i64> { ... }
//!
//! let app = rcelery::App::new("tasks")
//!     .on_startup(|startup: Startup| async move { PgPool::connect(&url(&startup)).await })
//!     .register(count_users::task());
//! ```
//!
//! Every type a task takes must be provided by the app: a missing one fails the worker's
//! start (never a task at run time).

mod hooks;

pub use hooks::{BoxError, ShutdownHook, Startup, StartupError, StartupHook};

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::task::{Context, TaskError};

/// A task parameter holding a value of the app's state (cloned from it: wrap what is costly
/// to clone in an `Arc`; pools and clients usually are handles already).
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<T> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for State<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// A state type a task needs: checked against what the app provides before the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The type.
    pub type_id: TypeId,
    /// Its name, for messages.
    pub type_name: &'static str,
}

impl Requirement {
    /// The requirement for a value of type `T`.
    pub fn of<T: 'static>() -> Requirement {
        Requirement {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        }
    }
}

/// What a task parameter can be taken from, besides the message's arguments: implemented by
/// [`State`]. The `#[task]` macro extracts such parameters from the [`Context`].
pub trait FromContext: Sized {
    /// The state type this parameter needs, checked when the worker starts.
    fn requirement() -> Requirement;
    /// Takes the parameter from the task's context.
    fn from_context(ctx: &Context) -> Result<Self, TaskError>;
}

impl<T: Clone + Send + Sync + 'static> FromContext for State<T> {
    fn requirement() -> Requirement {
        Requirement::of::<T>()
    }

    fn from_context(ctx: &Context) -> Result<Self, TaskError> {
        // The worker checked every requirement at start; a context built by hand (a unit
        // test) without the value gets a task error, never a panic.
        ctx.state::<T>().map(State).ok_or_else(|| {
            TaskError::runtime_error(format!(
                "no application state of type {} (provide it with App::state or App::on_startup)",
                std::any::type_name::<T>()
            ))
        })
    }
}

struct Entry {
    type_name: &'static str,
    value: Arc<dyn Any + Send + Sync>,
}

/// The app's state values, one per type.
#[derive(Clone, Default)]
pub struct StateMap {
    values: HashMap<TypeId, Arc<Entry>>,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.type_names()).finish()
    }
}

impl StateMap {
    /// An empty map.
    pub fn new() -> StateMap {
        StateMap::default()
    }

    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_any(
            Requirement::of::<T>(),
            Arc::new(value) as Arc<dyn Any + Send + Sync>,
        );
    }

    /// Adds a value already boxed as `Any`, of the type `of` names.
    pub(crate) fn insert_any(&mut self, of: Requirement, value: Arc<dyn Any + Send + Sync>) {
        self.values.insert(
            of.type_id,
            Arc::new(Entry {
                type_name: of.type_name,
                value,
            }),
        );
    }

    /// The value of type `T`, if the app has one.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|e| e.value.downcast_ref::<T>())
    }

    /// True if there is a value of type `type_id`.
    pub fn contains(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }

    /// The names of the types held, sorted.
    pub fn type_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.values.values().map(|e| e.type_name).collect();
        names.sort_unstable();
        names
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Pool(u32);
    #[derive(Clone, Debug, PartialEq)]
    struct Mailer(&'static str);

    #[test]
    fn holds_one_value_per_type() {
        let mut map = StateMap::new();
        map.insert(Pool(1));
        map.insert(Mailer("smtp"));
        map.insert(Pool(2));
        assert_eq!(map.get::<Pool>(), Some(&Pool(2)));
        assert_eq!(map.get::<Mailer>(), Some(&Mailer("smtp")));
        assert_eq!(map.get::<String>(), None);
        assert!(map.contains(TypeId::of::<Mailer>()));
        assert_eq!(map.type_names().len(), 2);
    }

    #[test]
    fn requirement_names_the_inner_type() {
        let r = <State<Pool> as FromContext>::requirement();
        assert_eq!(r.type_id, TypeId::of::<Pool>());
        assert!(r.type_name.ends_with("Pool"));
    }
}
