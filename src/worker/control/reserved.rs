//! `reserved`: `Request.info()` of each received request not yet running (ETA requests are `scheduled`).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};
use crate::worker::requests::Phase;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let infos = shared
            .requests
            .infos(Phase::Reserved, false, &shared.settings.hostname);
        Ok(Some(Value::List(infos)))
    })
}
