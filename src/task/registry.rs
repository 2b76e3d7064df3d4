//! The tasks a worker knows, by Celery name.

use std::collections::HashMap;
use std::sync::Arc;

use super::TaskDef;

/// Registered tasks, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    tasks: HashMap<String, Arc<TaskDef>>,
}

impl Registry {
    /// Adds (or replaces) a task.
    pub fn insert(&mut self, def: TaskDef) {
        self.tasks.insert(def.name.clone(), Arc::new(def));
    }

    /// The task registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<TaskDef>> {
        self.tasks.get(name)
    }

    /// True if `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// All names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tasks.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
