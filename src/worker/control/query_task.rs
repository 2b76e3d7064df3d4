//! `query_task`: `{id: [state, info]}` for the requested ids this worker holds.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let ids = args::str_list(args, "ids")?;
        Ok(Some(Value::Dict(
            shared.requests.query(&ids, &shared.settings.hostname),
        )))
    })
}
