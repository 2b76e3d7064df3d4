//! Keeps the worker's holds on its messages alive: every message it has taken and not yet
//! settled (waiting for its ETA, for a rate-limit token, for a slot, or running) is renewed
//! with the broker at the broker's interval, and at once after a reconnect. So a message
//! held longer than the visibility timeout is not given to another consumer (or back to
//! this one) while this worker lives; a killed worker's messages still come back.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Shared;

/// Runs until `stop` is cancelled; does nothing for brokers that need no renewal.
pub(super) async fn keep(shared: Arc<Shared>, stop: CancellationToken) {
    let (broker, inflight) = (&shared.broker, &shared.inflight);
    let Some(interval) = broker.renew_interval() else {
        return;
    };
    let mut epochs = broker.epochs();
    loop {
        let reconnected = async {
            match epochs.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            ok = reconnected => {
                if !ok {
                    epochs = None;
                }
            }
            _ = stop.cancelled() => return,
        }
        let tags = inflight.tags();
        if tags.is_empty() {
            continue;
        }
        tokio::select! {
            renewed = broker.renew(&tags) => {
                if let Err(e) = renewed {
                    tracing::warn!(error = %e, count = tags.len(), "could not renew the hold on {} message(s): {e}", tags.len());
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}
