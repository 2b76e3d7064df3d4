//! One delivery, end to end, in three steps:
//!
//! - [`admit`]: decode, route (run here, forward, refuse), hold until its ETA, wait for its
//!   rate limit, drop it if expired;
//! - [`run`]: wait for backend room and a slot, run the task under its limits;
//! - [`finish`]: store the outcome, send what it sets in motion, settle the message.
//!
//! How the message is settled (ack early, ack late, reject, requeue) is decided only in
//! [`ack_policy`]; observers hook in through [`super::lifecycle`].

mod ack_policy;
mod admit;
mod finish;
mod refuse;
mod run;

use std::sync::Arc;

use super::Shared;
use crate::broker::Delivery;

pub(super) use ack_policy::{dispose, requeue, Unsettled};

/// Handles one delivery. Returns without settling only at shutdown, leaving the tag in the
/// in-flight set so the worker gives the message back.
pub(super) async fn handle(shared: Arc<Shared>, delivery: Delivery) {
    let Some(received) = admit::receive(&shared, delivery).await else {
        return;
    };
    // The rest is a future of several kilobytes: allocated only now, so that a message held
    // for its ETA costs no more than its decoded form and a timer.
    Box::pin(proceed(shared, received)).await
}

/// A received message whose ETA has come: admitted, run, finished.
async fn proceed(shared: Arc<Shared>, received: admit::Received) {
    let Some(admitted) = admit::ready(&shared, received).await else {
        return;
    };
    let Some(ran) = run::run(&shared, admitted).await else {
        return;
    };
    finish::finish(&shared, ran).await
}
