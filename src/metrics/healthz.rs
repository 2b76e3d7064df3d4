//! The `/healthz` answer, from the worker's [`HealthSnapshot`].

use crate::health::{HealthSnapshot, LinkKind};

/// What `/healthz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAnswer {
    /// 200 when healthy, 503 when not.
    pub status: u16,
    /// `ok`, or why not.
    pub body: String,
}

/// Unhealthy (503) while the broker link is down or every slot has been held past its
/// limit; the result backend being down is said but is not a failure (tasks wait for it,
/// and restarting the worker would not bring it back).
pub fn healthz(snapshot: &HealthSnapshot) -> HealthAnswer {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    for (kind, link) in &snapshot.links {
        let Some(since) = link.down_since else {
            continue;
        };
        let line = format!(
            "{} link down for {:.1}s: {}",
            kind.as_str(),
            since.elapsed().as_secs_f64(),
            link.last_error.as_deref().unwrap_or("unknown error")
        );
        if *kind == LinkKind::Broker {
            reasons.push(line);
        } else {
            notes.push(line);
        }
    }
    if snapshot.slots_wedged {
        reasons.push("every slot has been held past its limit".to_owned());
    }
    if reasons.is_empty() {
        let mut body = "ok\n".to_owned();
        for n in notes {
            body.push_str(&n);
            body.push('\n');
        }
        return HealthAnswer { status: 200, body };
    }
    let mut body = String::new();
    for r in reasons.into_iter().chain(notes) {
        body.push_str(&r);
        body.push('\n');
    }
    HealthAnswer { status: 503, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;

    #[test]
    fn a_broker_outage_or_wedged_slots_fail_the_check() {
        let h = Health::new();
        assert_eq!(healthz(&h.snapshot()).status, 200);
        h.link_down(LinkKind::Backend, "connection refused");
        let a = healthz(&h.snapshot());
        assert_eq!(a.status, 200, "a backend outage alone is not fatal");
        assert!(a.body.contains("backend link down"));
        h.link_down(LinkKind::Broker, "broken pipe");
        let a = healthz(&h.snapshot());
        assert_eq!(a.status, 503);
        assert!(a.body.starts_with("broker link down for"), "{}", a.body);
        assert!(a.body.contains("broken pipe"));
        h.link_up(LinkKind::Broker);
        h.set_slots_wedged(true);
        let a = healthz(&h.snapshot());
        assert_eq!(a.status, 503);
        assert!(a.body.contains("every slot"));
    }
}
