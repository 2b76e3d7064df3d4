//! `revoke_by_stamped_headers`: flags stamps as revoked; see
//! [`crate::worker::revoke::command::revoke_by_stamped_headers`].

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Answer, Shared};
use crate::value::Dict;
use crate::worker::revoke::command;

pub(super) fn run<'a>(shared: &'a Arc<Shared>, args: &'a Dict) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        Ok(Some(command::revoke_by_stamped_headers(
            &shared.revocations,
            args,
        )))
    })
}
