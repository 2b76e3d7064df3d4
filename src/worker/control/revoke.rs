//! `revoke` (and `terminate`, its form with `terminate=True`): flags task ids as revoked; see
//! [`crate::worker::revoke::command::revoke`] for what it does and replies.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};
use crate::worker::revoke::command;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let reply = command::revoke(&shared.revocations, shared.backend.as_ref(), args).await;
        Ok(Some(reply))
    })
}

/// `terminate(signal, task_id)`: `revoke` with `terminate=True`.
pub(super) fn terminate<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let mut with_terminate = args.clone();
        with_terminate.insert("terminate", Value::Bool(true));
        let reply = command::revoke(
            &shared.revocations,
            shared.backend.as_ref(),
            &with_terminate,
        )
        .await;
        Ok(Some(reply))
    })
}
