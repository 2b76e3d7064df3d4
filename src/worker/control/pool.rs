//! `add_consumer` / `cancel_consumer`: not supported yet, answered with an error
//! (`pool_grow` / `pool_shrink` are in their own files).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::CommandError;
use super::{Answer, Shared};
use crate::value::Dict;

pub(super) fn add_consumer<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async {
        Err(CommandError(
            "NotImplementedError('add_consumer: rcelery consumes the queues given at start; restart the worker with -Q')".into(),
        ))
    })
}

pub(super) fn cancel_consumer<'a>(
    _shared: &'a Arc<Shared>,
    _args: &'a Dict,
) -> BoxFuture<'a, Answer> {
    Box::pin(async {
        Err(CommandError(
            "NotImplementedError('cancel_consumer: rcelery consumes the queues given at start; restart the worker with -Q/-X')".into(),
        ))
    })
}
