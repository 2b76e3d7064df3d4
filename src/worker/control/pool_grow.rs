//! `pool_grow`: adds `n` (1) slots at once and widens the prefetch window by
//! `n` × `worker_prefetch_multiplier` (Celery's `pool.grow(n)` then
//! `consumer._update_prefetch_count(n)`), answering `{"ok": "pool will grow"}`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, CommandError, Shared};
use crate::control::ok_result;
use crate::value::Dict;

/// The most slots a pool may grow to: a bound on what one message can make the worker
/// allocate.
pub(super) const MAX_SLOTS: usize = 10_000;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let n = count(args)?;
        let before = shared.slots.capacity();
        if n > MAX_SLOTS.saturating_sub(before) {
            return Err(CommandError(format!(
                "ValueError('cannot grow the pool of {before} slots by {n}: at most {MAX_SLOTS} slots')"
            )));
        }
        if n > 0 {
            let now = shared.slots.grow(n);
            resize_prefetch(shared, n, Direction::Widen);
            tracing::info!(
                "pool_grow: pool grown by {n} to {now} slot(s); prefetch count {}",
                super::super::prefetch_count_for(&shared.settings, now)
            );
        }
        Ok(Some(ok_result("pool will grow")))
    })
}

/// The `n` argument: how many slots (1 when absent; 0 or less changes nothing).
pub(super) fn count(args: &Dict) -> Result<usize, CommandError> {
    let n = args::int_or(args, "n", 1)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Which way the prefetch window moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// More messages may be unacknowledged.
    Widen,
    /// Fewer (a slot in use keeps its message; the window narrows as they settle).
    Narrow,
}

/// Moves the prefetch window (and AMQP's `basic_qos`) by `slots` × the multiplier, as
/// Celery's `_update_qos_eventually`. An unlimited window (multiplier 0) stays unlimited.
pub(super) fn resize_prefetch(shared: &Shared, slots: usize, direction: Direction) {
    let steps = slots.saturating_mul(shared.settings.prefetch_multiplier);
    for _ in 0..steps {
        match direction {
            Direction::Widen => shared.qos.increment_eventually(),
            Direction::Narrow => shared.qos.decrement_eventually(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn n(value: Option<Value>) -> Result<usize, CommandError> {
        let mut args = Dict::new();
        if let Some(v) = value {
            args.insert("n", v);
        }
        count(&args)
    }

    #[test]
    fn n_is_read_as_python_int_takes_it() {
        assert_eq!(n(None), Ok(1));
        assert_eq!(n(Some(Value::None)), Ok(1));
        assert_eq!(n(Some(Value::Int(3))), Ok(3));
        assert_eq!(n(Some(Value::Str(" 2 ".into()))), Ok(2));
        assert_eq!(n(Some(Value::Float(2.0))), Ok(2));
        assert_eq!(n(Some(Value::Int(-4))), Ok(0), "changes nothing");
        assert!(n(Some(Value::List(vec![]))).is_err());
        assert!(n(Some(Value::Str("many".into()))).is_err());
    }
}
