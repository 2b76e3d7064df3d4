//! What is read at each scrape rather than counted: the links' health, the slots, the
//! prefetched messages, the result and event buffers.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::health::HealthSnapshot;

/// The worker's state at one moment, as the scrape reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    /// The links' health and whether every slot is stuck.
    pub health: HealthSnapshot,
    /// Tasks running.
    pub active: usize,
    /// Messages received and not yet settled (running, waiting for a slot, held for an ETA).
    pub prefetched: usize,
    /// Messages held until their ETA or countdown.
    pub eta_held: usize,
    /// Results waiting to be stored (the result backend is unreachable or slow).
    pub results_pending: usize,
    /// Events handed to the broker.
    pub events_published: u64,
    /// Events dropped (buffer full, broker down).
    pub events_dropped: u64,
}

/// Reads the worker's [`LiveState`].
pub trait Live: Send + Sync + 'static {
    /// The state now.
    fn read(&self) -> LiveState;
}

impl<F: Fn() -> LiveState + Send + Sync + 'static> Live for F {
    fn read(&self) -> LiveState {
        self()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabel {
    link: String,
}

/// Encodes the [`LiveState`] at each scrape (nothing until the worker sets its source).
pub(super) struct LiveCollector {
    live: Arc<OnceLock<Box<dyn Live>>>,
}

impl std::fmt::Debug for LiveCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCollector").finish_non_exhaustive()
    }
}

impl LiveCollector {
    pub(super) fn new(live: Arc<OnceLock<Box<dyn Live>>>) -> Self {
        LiveCollector { live }
    }
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter<N: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// One value per link.
fn per_link<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    values: Vec<(String, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (link, metric) in values {
        let label = LinkLabel { link };
        metric.encode(family.encode_family(&label)?)?;
    }
    Ok(())
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(live) = self.live.get() else {
            return Ok(());
        };
        let s = live.read();
        let e = &mut encoder;
        gauge(e, "active_tasks", "Tasks running now", to_i64(s.active))?;
        gauge(
            e,
            "prefetched_messages",
            "Messages received and not yet settled (running, waiting for a slot, held for an ETA)",
            to_i64(s.prefetched),
        )?;
        gauge(
            e,
            "eta_held_messages",
            "Messages held until their ETA or countdown",
            to_i64(s.eta_held),
        )?;
        gauge(
            e,
            "results_pending",
            "Results waiting to be stored",
            to_i64(s.results_pending),
        )?;
        gauge(
            e,
            "slots_wedged",
            "1 while every slot has been held past its limit",
            i64::from(s.health.slots_wedged),
        )?;
        counter(
            e,
            "events_published",
            "Monitoring events handed to the broker",
            s.events_published,
        )?;
        counter(
            e,
            "events_dropped",
            "Monitoring events dropped (buffer full, broker down)",
            s.events_dropped,
        )?;
        let links: Vec<_> = s
            .health
            .links
            .iter()
            .map(|(k, l)| (k.as_str().to_owned(), l))
            .collect();
        per_link(
            e,
            ("link_up", "1 while the link is up", MetricType::Gauge),
            links
                .iter()
                .map(|(n, l)| {
                    (
                        n.clone(),
                        ConstGauge::new(i64::from(l.down_since.is_none())),
                    )
                })
                .collect(),
        )?;
        per_link(
            e,
            (
                "link_outages",
                "Times the link went down",
                MetricType::Counter,
            ),
            links
                .iter()
                .map(|(n, l)| (n.clone(), ConstCounter::new(l.outages)))
                .collect(),
        )?;
        per_link(
            e,
            (
                "link_reconnects",
                "Times the link came back",
                MetricType::Counter,
            ),
            links
                .iter()
                .map(|(n, l)| (n.clone(), ConstCounter::new(l.reconnects)))
                .collect(),
        )?;
        per_link(
            e,
            (
                "link_outage_seconds",
                "Seconds the link has been down, the current outage included",
                MetricType::Counter,
            ),
            links
                .iter()
                .map(|(n, l)| {
                    let current = l.down_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    (
                        n.clone(),
                        ConstCounter::new(l.outage_total.as_secs_f64() + current),
                    )
                })
                .collect(),
        )?;
        per_link(
            e,
            (
                "link_failed_attempts",
                "Failed attempts to use the link that were retried (for the backend: result-store retries)",
                MetricType::Counter,
            ),
            links
                .iter()
                .map(|(n, l)| (n.clone(), ConstCounter::new(l.failed_attempts)))
                .collect(),
        )?;
        Ok(())
    }
}
