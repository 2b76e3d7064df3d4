//! `pool_grow` / `pool_shrink`: rcelery's slots are fixed at start (`-c`), so the answer is the error a Celery pool without `grow`/`shrink` (solo) gives; `add_consumer` / `cancel_consumer`: not supported yet, answered with an error.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::CommandError;
use super::{Answer, Shared};
use crate::value::Dict;

pub(super) fn grow<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async { Err(no_attribute("grow")) })
}

pub(super) fn shrink<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async { Err(no_attribute("shrink")) })
}

fn no_attribute(name: &str) -> CommandError {
    CommandError(format!(
        "AttributeError(\"'TaskPool' object has no attribute '{name}'\")"
    ))
}
