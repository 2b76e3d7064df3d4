//! `election`: Celery hands it to its gossip step (which rcelery does not have); the reply is None, as from a Celery worker without gossip.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async { Ok(Some(Value::None)) })
}
