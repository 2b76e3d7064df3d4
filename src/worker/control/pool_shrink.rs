//! `pool_shrink`: takes `n` (1) slots away and narrows the prefetch window by
//! `n` × `worker_prefetch_multiplier` (Celery's `pool.shrink(n)` then
//! `consumer._update_prefetch_count(-n)`), answering `{"ok": "pool will shrink"}`. A running
//! task is never interrupted: a busy slot leaves when its task ends. The pool keeps at least
//! one slot: asked for more, it shrinks to one and answers an error, as billiard's pool
//! shrinks what it can and then raises.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::pool_grow::{count, resize_prefetch, Direction};
use super::{Answer, CommandError, Shared};
use crate::control::ok_result;
use crate::value::Dict;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let n = count(args)?;
        let removed = shared.slots.shrink(n);
        if removed > 0 {
            resize_prefetch(shared, removed, Direction::Narrow);
            let now = shared.slots.capacity();
            tracing::info!(
                "pool_shrink: pool shrunk by {removed} to {now} slot(s) (busy slots leave as their tasks end); prefetch count {}",
                super::super::prefetch_count_for(&shared.settings, now)
            );
        }
        if removed < n {
            return Err(CommandError(
                "ValueError(\"Can't shrink the pool below one slot\")".into(),
            ));
        }
        Ok(Some(ok_result("pool will shrink")))
    })
}
