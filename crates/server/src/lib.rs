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
//! - [`serve`](mod@serve): `serve`, `serve_with_grace`, `serve_with_limits`, `serve_listener`,
//!   `cancel_on_signals`, and `HttpLimits` (timeouts, connection limit, sizes);
//! - [`config`]: `ServerConfig`, the `[server]` section;
//! - [`web`]: the web application (accounts, sessions, search, "parcours des échanges",
//!   envois, the operators' dashboard), `WebApp` from the `WebDeps` the cli gives it,
//!   mounted by `app_with_web`.
//!
//! No personal data in metrics labels, status, page or logs: labels and status hold flow
//! ids, organisation codes, statuses and counts only; request metrics use the route
//! pattern, never the raw path.
//!
//! How `passerelle serve` puts it together (the engine's part is the closure):
//!
//! ```no_run
//! use std::sync::Arc;
//! use passerelle_server::*;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn wire(config: ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
//! config.validate()?; // at config load: precise errors, no I/O
//! let metrics = Metrics::new();
//! let status = Status::new(env!("CARGO_PKG_VERSION"), config.nights_kept()).shared();
//! let flow_metrics = FlowMetrics::new(&metrics)?;
//! let shutdown = CancellationToken::new();
//!
//! let readiness = Readiness::new(config.readiness_timeout())
//!     .check("rabbitmq", || async { Ok::<(), String>(()) /* ping the broker */ });
//! let state = AppState::new(status.clone(), metrics.clone())
//!     .with_readiness(readiness)
//!     .draining_on(shutdown.clone());
//! let webhooks: Vec<Arc<dyn Webhook>> = Vec::new(); // the FAJ platform's, from the runtime
//! let routes = app(state, webhooks);
//!
//! if let Some(schedule) = config.schedule()? {
//!     let scheduler = Scheduler::new("nightly", schedule)
//!         .with_metrics(&metrics)
//!         .with_status(status.clone());
//!     let (status, stop) = (status.clone(), shutdown.clone());
//!     tokio::spawn(scheduler.run(shutdown.clone(), move || {
//!         let (status, flow_metrics, _stop) = (status.clone(), flow_metrics.clone(), stop.clone());
//!         async move {
//!             status.write().unwrap().begin_night(chrono::Utc::now());
//!             // … run the night; for each flow, when it ends:
//!             let flow = FlowStatus { flow: "brsa-orientation".into(), ..FlowStatus::default() };
//!             flow_metrics.observe(&flow);
//!             status.write().unwrap().record_flow(flow);
//!             status.write().unwrap().end_night(chrono::Utc::now());
//!         }
//!     }));
//! }
//! serve_with_grace(config.listen_addr()?, routes, shutdown, config.shutdown_grace()).await?;
//! # Ok(()) }
//! ```

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
pub mod web;

pub use config::ServerConfig;
pub use error::{ConfigError, ErrorKind, ScheduleError, ServerError};
pub use metrics::{Counter, CounterVec, Gauge, GaugeVec, Metrics, MetricsError};
pub use readiness::{CheckResult, Readiness, ReadinessReport};
pub use router::{AppState, Webhook, app, app_with_web, router, with_hooks};
pub use schedule::Schedule;
pub use scheduler::{
    Clock, ManualClock, Scheduler, SchedulerReport, SchedulerStats, SystemClock, run_on_schedule,
};
pub use serve::{
    DEFAULT_GRACE, HttpLimits, bind, cancel_on_signals, serve, serve_listener, serve_listener_with,
    serve_with_grace, serve_with_limits, shutdown_signal,
};
pub use status::{FlowMetrics, FlowOutcome, FlowStatus, Night, SharedStatus, Status};
pub use tz::Timezone;
pub use web::{DeclaredHours, DpoSetup, Stamper, WebApp, WebConfig, WebDeps};
