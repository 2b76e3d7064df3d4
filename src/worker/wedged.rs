//! Recovering from a pool full of abandoned threads. A blocking task ended at its time limit
//! keeps its slot until its thread returns (threads cannot be killed); if every slot stays
//! held that way, no task can run again until one returns, which may be never. Celery's
//! prefork pool kills and replaces the child process at a hard limit; the equivalent here is
//! a restart in place (as on SIGHUP), which ends the abandoned threads with the process.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// Resolves once every slot has been held by an abandoned thread for `after` without a
/// break; never if the worker is told not to restart (`rcelery_restart_when_wedged`).
pub(super) async fn every_slot_abandoned_for(shared: Arc<Shared>, after: Duration) {
    if !shared.settings.restart_when_wedged {
        return std::future::pending().await;
    }
    let mut abandoned = shared.every_slot_abandoned.subscribe();
    loop {
        if abandoned.wait_for(|all| *all).await.is_err() {
            return std::future::pending().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(after) => return,
            freed = abandoned.wait_for(|all| !*all) => {
                if freed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}
