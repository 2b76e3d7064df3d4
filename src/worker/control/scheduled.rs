//! `scheduled`: the requests waiting for their ETA, as `{"eta", "priority", "request"}`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        Ok(Some(Value::List(
            shared.requests.scheduled(&shared.settings.hostname),
        )))
    })
}
