//! The startup banner, laid out like Celery's.

use crate::worker::WorkerSettings;

/// What the banner shows.
pub struct Info<'a> {
    /// Node name.
    pub hostname: &'a str,
    /// App name.
    pub app: &'a str,
    /// Where the settings came from.
    pub config: &'a str,
    /// Tasks the Celery app registers that this binary does not have.
    pub python_only_tasks: Vec<&'a str>,
    /// Broker URL, password masked.
    pub transport: String,
    /// Backend URL, password masked.
    pub results: String,
    /// Concurrency.
    pub concurrency: usize,
    /// The `-P` pool name given.
    pub pool: &'a str,
    /// Worker settings.
    pub settings: &'a WorkerSettings,
    /// Registered task names.
    pub tasks: Vec<&'a str>,
}

/// Renders the banner.
pub fn render(i: &Info<'_>) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let system = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let mut s = format!(
        " -------------- {host} v{version} (rcelery)\n\
--- ***** ----- \n\
-- ******* ---- {system}\n\
- *** --- * --- \n\
- ** ---------- [config]\n\
- ** ---------- .> app:         {app}\n\
- ** ---------- .> config:      {config}\n\
- ** ---------- .> transport:   {transport}\n\
- ** ---------- .> results:     {results}\n\
- *** --- * --- .> concurrency: {conc} (tokio; -P {pool} accepted)\n\
-- ******* ---- .> task events: {events}\n\
--- ***** ----- \n\
 -------------- [queues]\n",
        host = i.hostname,
        app = i.app,
        config = i.config,
        transport = i.transport,
        results = i.results,
        conc = i.concurrency,
        pool = i.pool,
        events = if i.settings.events.task_events {
            "ON"
        } else {
            "OFF (enable -E to monitor tasks in this worker)"
        },
    );
    for q in &i.settings.queues {
        let prio = q
            .max_priority
            .map(|p| format!(" max_priority={p}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "                .> {:<16} exchange={}({}) key={}{}\n",
            q.name, q.exchange, q.exchange_type, q.routing_key, prio
        ));
    }
    s.push_str("\n[tasks]\n");
    for t in &i.tasks {
        s.push_str(&format!("  . {t}\n"));
    }
    if !i.python_only_tasks.is_empty() {
        s.push_str("\n[tasks only in the Celery app: not run here]\n");
        for t in &i.python_only_tasks {
            s.push_str(&format!("  . {t}\n"));
        }
    }
    s
}
