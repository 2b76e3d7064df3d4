//! Switches that remote control commands flip and other parts of the worker read.

use std::sync::atomic::{AtomicBool, Ordering};

/// The switches.
#[derive(Debug, Default)]
pub struct ControlFlags {
    /// Task events are sent (`-E` / `worker_send_task_events`; `enable_events` and
    /// `disable_events` flip it). Read by the event dispatcher.
    pub task_events: AtomicBool,
}

impl ControlFlags {
    /// True when task events are to be sent.
    pub fn task_events(&self) -> bool {
        self.task_events.load(Ordering::Relaxed)
    }

    /// Sets the task events switch; returns its previous value.
    pub fn set_task_events(&self, on: bool) -> bool {
        self.task_events.swap(on, Ordering::Relaxed)
    }
}
