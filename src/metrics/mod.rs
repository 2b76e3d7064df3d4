//! Prometheus metrics and a health check, served over HTTP when `--metrics-addr` (or
//! `rcelery_metrics_addr`) is given: `/metrics` in the Prometheus text format, `/healthz`
//! answering 200, or 503 with the reason while the broker link is down or every slot is
//! stuck (see [`crate::health`]).
//!
//! The worker counts into [`Metrics`] as tasks go through their lifecycle; what is read
//! rather than counted (links, slots, buffers) is read at each scrape through [`Live`].

mod collector;
mod healthz;
mod registry;
mod server;

pub use collector::{Live, LiveState};
pub use healthz::{healthz, HealthAnswer};
pub use registry::Metrics;
pub use server::{serve, MetricsError};
