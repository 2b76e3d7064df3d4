//! `clock`: `{"clock": N}`, the Lamport clock now.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let mut d = Dict::with_capacity(1);
        let clock = i64::try_from(shared.control.clock.value()).unwrap_or(i64::MAX);
        d.insert("clock", clock);
        Ok(Some(Value::Dict(d)))
    })
}
