//! `conf`: the settings that differ from the defaults (all with `with_defaults`), secrets masked as Celery's `filter_hidden_settings` masks them.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::args;
use super::{Answer, Shared};
use crate::value::{Dict, Value};

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let c = &shared.settings.control;
        let table = if args::flag(args, "with_defaults") {
            &c.conf_with_defaults
        } else {
            &c.conf
        };
        Ok(Some(Value::Dict(table.clone())))
    })
}
