//! `active`: `Request.info(safe)` of each running request.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::value::{Dict, Value};
use crate::worker::requests::Phase;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let safe = args::flag(args, "safe");
        let infos = shared
            .requests
            .infos(Phase::Active, safe, &shared.settings.hostname);
        Ok(Some(Value::List(infos)))
    })
}
