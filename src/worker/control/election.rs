//! `election`: Celery hands it to its gossip step, which starts a `worker-elect` round;
//! rcelery's gossip follows clocks and nodes but holds no elections, so the reply is None
//! and nothing is elected (see docs/compatibility.md).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async { Ok(Some(Value::None)) })
}
