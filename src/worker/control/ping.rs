//! `ping`: `{"ok": "pong"}`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::control::ok_result;
use crate::value::Dict;

pub(super) fn run<'a>(_shared: &'a Arc<Shared>, _args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async { Ok(Some(ok_result("pong"))) })
}
