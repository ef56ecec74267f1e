//! What `passerelle serve` assembles: the HTTP routes, the metrics registry, the status
//! of the last nights, the cron schedule that starts them, and graceful shutdown.
//!
//! - [`metrics`]: `Metrics`, labelled counters and gauges in the Prometheus text format;
//! - [`schedule`] and [`tz`]: `Schedule`, five-field cron read in a named zone
//!   (default Europe/Paris), `next_after`;
//! - [`scheduler`]: `Scheduler` / `run_on_schedule`, one run at a time, skipped ticks
//!   counted, stop on shutdown;
//! - [`status`]: `Status` of the last nights per flow, shared as `SharedStatus`;
//! - [`readiness`]: named async checks for `/ready`;
//! - [`router`](mod@router): `AppState`, `router`, `with_hooks`, `app` (routes `/`, `/health`,
//!   `/ready`, `/metrics`, `/api/status`, webhooks under `/hooks/…`);
//! - [`serve`](mod@serve): `serve`, `serve_with_grace`, `serve_listener`, `cancel_on_signals`;
//! - [`config`]: `ServerConfig`, the `[server]` section.
//!
//! No personal data in metrics labels, status, page or logs: labels and status hold flow
//! ids, organisation codes, statuses and counts only; request metrics use the route
//! pattern, never the raw path.

pub mod config;
pub mod error;
pub mod metrics;
pub mod page;
pub mod readiness;
pub mod router;
pub mod schedule;
pub mod scheduler;
pub mod serve;
pub mod status;
pub mod tz;

pub use config::ServerConfig;
pub use error::{ConfigError, ErrorKind, ScheduleError, ServerError};
pub use metrics::{Counter, CounterVec, Gauge, GaugeVec, Metrics, MetricsError};
pub use readiness::{CheckResult, Readiness, ReadinessReport};
pub use router::{AppState, FAJ_HOOK_PATH, app, router, with_hooks};
pub use schedule::Schedule;
pub use scheduler::{
    Clock, ManualClock, Scheduler, SchedulerReport, SchedulerStats, SystemClock, run_on_schedule,
};
pub use serve::{
    DEFAULT_GRACE, bind, cancel_on_signals, serve, serve_listener, serve_with_grace,
    shutdown_signal,
};
pub use status::{FlowMetrics, FlowOutcome, FlowStatus, Night, SharedStatus, Status};
pub use tz::Timezone;
