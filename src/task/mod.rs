//! (being written)
/// Placeholder.
pub struct Context;
/// Placeholder.
pub struct TaskError;
/// Placeholder.
pub type TaskResult<T> = Result<T, TaskError>;
