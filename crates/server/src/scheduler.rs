//! Running a job on a [`Schedule`]: wait for the next time, run, never two at once, stop
//! on shutdown.
//!
//! A tick that comes while the previous run is still going is skipped and counted, not
//! queued: a night that overruns must not be followed by a second night at once. Ticks
//! missed while the process was down or the machine asleep are not caught up; the next
//! run after the wake-up happens at the next scheduled time.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::{Counter, Gauge, Metrics};
use crate::schedule::Schedule;
use crate::status::SharedStatus;

/// Where the scheduler gets the time from; tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `at` or soon after.
    fn sleep_until(&self, at: DateTime<Utc>) -> impl Future<Output = ()> + Send;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The longest single sleep: the wall clock is read again after it, so a clock stepped
/// by NTP or a machine resumed from sleep is noticed within this delay.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        loop {
            let Ok(left) = (at - Utc::now()).to_std() else {
                return;
            };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(MAX_SLEEP)).await;
        }
    }
}

/// A clock that moves only when told to; for tests of anything that waits on a schedule.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(watch::channel(start).0),
        }
    }

    /// Moves the clock forward, waking sleepers whose time has come.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|t| *t += by);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut rx = self.now.subscribe();
        // The sender lives as long as self, so wait_for only ends when the time comes.
        let _ = rx.wait_for(|now| *now >= at).await;
    }
}

/// What a scheduler did, when it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerReport {
    /// Runs started.
    pub runs: u64,
    /// Ticks skipped because a run was still going.
    pub skipped: u64,
}

/// Live counts, readable while the scheduler runs.
#[derive(Debug, Clone, Default)]
pub struct SchedulerStats {
    runs: Arc<AtomicU64>,
    skipped: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    next: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl SchedulerStats {
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Whether a run is going now.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The next time the job is due, once the scheduler has computed it.
    pub fn next_run(&self) -> Option<DateTime<Utc>> {
        *self.next.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A job on a schedule, with optional metrics, status and clock.
#[derive(Debug)]
pub struct Scheduler<C = SystemClock> {
    name: String,
    schedule: Schedule,
    clock: C,
    stats: SchedulerStats,
    metrics: Option<SchedulerMetrics>,
    status: Option<SharedStatus>,
}

#[derive(Debug)]
struct SchedulerMetrics {
    runs: Counter,
    skipped: Counter,
    next: Gauge,
    running: Gauge,
}

impl Scheduler<SystemClock> {
    /// A scheduler named `name` (a metrics label: `nightly`, not a person).
    pub fn new(name: impl Into<String>, schedule: Schedule) -> Self {
        Self {
            name: name.into(),
            schedule,
            clock: SystemClock,
            stats: SchedulerStats::default(),
            metrics: None,
            status: None,
        }
    }
}

impl<C: Clock> Scheduler<C> {
    /// Uses another clock (tests).
    pub fn with_clock<D: Clock>(self, clock: D) -> Scheduler<D> {
        Scheduler {
            name: self.name,
            schedule: self.schedule,
            clock,
            stats: self.stats,
            metrics: self.metrics,
            status: self.status,
        }
    }

    /// Counts runs and skipped ticks in `passerelle_schedule_runs_total`,
    /// `passerelle_schedule_skipped_total`, and exposes
    /// `passerelle_schedule_next_run_timestamp_seconds` and `passerelle_schedule_running`,
    /// all labelled `schedule=<name>`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        let labels = [self.name.as_str()];
        let make = || -> Result<SchedulerMetrics, crate::metrics::MetricsError> {
            Ok(SchedulerMetrics {
                runs: metrics
                    .counter(
                        "passerelle_schedule_runs_total",
                        "Scheduled runs started.",
                        &["schedule"],
                    )?
                    .with(&labels),
                skipped: metrics
                    .counter(
                        "passerelle_schedule_skipped_total",
                        "Scheduled ticks skipped because the previous run was still going.",
                        &["schedule"],
                    )?
                    .with(&labels),
                next: metrics
                    .gauge(
                        "passerelle_schedule_next_run_timestamp_seconds",
                        "When the next scheduled run is due, in Unix seconds.",
                        &["schedule"],
                    )?
                    .with(&labels),
                running: metrics
                    .gauge(
                        "passerelle_schedule_running",
                        "1 while a scheduled run is going, else 0.",
                        &["schedule"],
                    )?
                    .with(&labels),
            })
        };
        match make() {
            Ok(m) => self.metrics = Some(m),
            // Only a conflicting registration by someone else can fail; serve without.
            Err(e) => warn!(error = %e, "schedule metrics not registered"),
        }
        self
    }

    /// Writes the schedule, next run time and skipped ticks into the shared status.
    pub fn with_status(mut self, status: SharedStatus) -> Self {
        if let Ok(mut s) = status.write() {
            s.schedule = Some(self.schedule.to_string());
        }
        self.status = Some(status);
        self
    }

    /// Counts readable while running.
    pub fn stats(&self) -> SchedulerStats {
        self.stats.clone()
    }

    /// Runs `job` at every tick until `shutdown` is cancelled, then waits for a run in
    /// progress to finish (give the job a clone of the token so it can stop early).
    /// A job that panics is logged and counts as finished.
    pub async fn run<F, Fut>(self, shutdown: CancellationToken, mut job: F) -> SchedulerReport
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut running: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let next = self.schedule.next_after(self.clock.now());
            self.note_next(next);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.clock.sleep_until(next) => {}
            }
            if self.stats.is_running() {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &self.metrics {
                    m.skipped.inc();
                }
                if let Some(s) = &self.status
                    && let Ok(mut s) = s.write()
                {
                    s.skipped_ticks += 1;
                }
                warn!(schedule = %self.name, due = %next, "previous run still going; tick skipped");
                continue;
            }
            if let Some(h) = running.take() {
                report_join(&self.name, h.await);
            }
            self.stats.runs.fetch_add(1, Ordering::Relaxed);
            info!(schedule = %self.name, due = %next, "scheduled run starting");
            let fut = job();
            let runs = self.metrics.as_ref().map(|m| m.runs.clone());
            let idle = Idle {
                busy: self.stats.running.clone(),
                gauge: self.metrics.as_ref().map(|m| m.running.clone()),
            };
            idle.busy.store(true, Ordering::SeqCst);
            if let Some(g) = &idle.gauge {
                g.set(1.0);
            }
            running = Some(tokio::spawn(async move {
                // Marks the run over when dropped, even if the job panics.
                let _idle = idle;
                if let Some(runs) = runs {
                    runs.inc();
                }
                fut.await;
            }));
        }
        if let Some(h) = running.take() {
            info!(schedule = %self.name, "waiting for the run in progress before stopping");
            report_join(&self.name, h.await);
        }
        SchedulerReport {
            runs: self.stats.runs(),
            skipped: self.stats.skipped(),
        }
    }

    fn note_next(&self, next: DateTime<Utc>) {
        *self.stats.next.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
        if let Some(m) = &self.metrics {
            m.next.set(next.timestamp() as f64);
        }
        if let Some(s) = &self.status
            && let Ok(mut s) = s.write()
        {
            s.next_run = Some(next);
        }
    }
}

/// Marks a run over when dropped.
struct Idle {
    busy: Arc<AtomicBool>,
    gauge: Option<Gauge>,
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::SeqCst);
        if let Some(g) = &self.gauge {
            g.set(0.0);
        }
    }
}

fn report_join(name: &str, r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        warn!(schedule = %name, panicked = e.is_panic(), "scheduled run ended abnormally");
    }
}

/// Runs `job` on `schedule` with the system clock until `shutdown`; see [`Scheduler::run`].
pub async fn run_on_schedule<F, Fut>(
    schedule: Schedule,
    shutdown: CancellationToken,
    job: F,
) -> SchedulerReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    Scheduler::new("nightly", schedule).run(shutdown, job).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use crate::tz::Timezone;
    use tokio::sync::{Semaphore, mpsc};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..2_000 {
            if cond() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn skips_a_tick_while_busy_and_counts_it() {
        let clock = ManualClock::new(utc("2026-05-01T10:00:30Z"));
        let metrics = Metrics::new();
        let status = Status::new("t", 3).shared();
        let every_minute = Schedule::parse("* * * * *", Timezone::Utc).unwrap();
        let scheduler = Scheduler::new("nightly", every_minute)
            .with_clock(clock.clone())
            .with_metrics(&metrics)
            .with_status(status.clone());
        let stats = scheduler.stats();
        let shutdown = CancellationToken::new();
        // Each run waits for one permit: the test decides when a run ends.
        let release = Arc::new(Semaphore::new(0));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let task = {
            let release = release.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                scheduler
                    .run(shutdown, move || {
                        let release = release.clone();
                        let started_tx = started_tx.clone();
                        async move {
                            let _ = started_tx.send(());
                            release.acquire().await.unwrap().forget();
                        }
                    })
                    .await
            })
        };

        until("the first next time", || {
            stats.next_run() == Some(utc("2026-05-01T10:01:00Z"))
        })
        .await;
        assert!(started.try_recv().is_err(), "nothing runs before its time");
        clock.set(utc("2026-05-01T10:01:00Z"));
        started.recv().await.unwrap();
        assert_eq!(stats.runs(), 1);

        // Run 1 is still going at 10:02: skipped.
        until("the second next time", || {
            stats.next_run() == Some(utc("2026-05-01T10:02:00Z"))
        })
        .await;
        clock.set(utc("2026-05-01T10:02:00Z"));
        until("the skip", || stats.skipped() == 1).await;
        assert!(started.try_recv().is_err(), "no second run while busy");

        // Run 1 ends; the 10:03 tick runs again.
        release.add_permits(1);
        until("run 1 to end", || !stats.is_running()).await;
        until("the third next time", || {
            stats.next_run() == Some(utc("2026-05-01T10:03:00Z"))
        })
        .await;
        clock.set(utc("2026-05-01T10:03:00Z"));
        started.recv().await.unwrap();
        assert_eq!(stats.runs(), 2);

        // Shutdown waits for run 2 to end.
        shutdown.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !task.is_finished(),
            "shutdown waits for the run in progress"
        );
        release.add_permits(1);
        let report = task.await.unwrap();
        assert_eq!(
            report,
            SchedulerReport {
                runs: 2,
                skipped: 1
            }
        );

        let text = metrics.render();
        assert!(
            text.contains("passerelle_schedule_runs_total{schedule=\"nightly\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("passerelle_schedule_skipped_total{schedule=\"nightly\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("passerelle_schedule_running{schedule=\"nightly\"} 0\n"),
            "{text}"
        );
        let s = status.read().unwrap();
        assert_eq!(s.skipped_ticks, 1);
        assert_eq!(s.schedule.as_deref(), Some("* * * * * (UTC)"));
        assert_eq!(s.next_run, Some(utc("2026-05-01T10:04:00Z")));
    }

    #[tokio::test]
    async fn stops_promptly_when_idle() {
        let clock = ManualClock::new(utc("2026-05-01T10:00:00Z"));
        let nightly = Schedule::parse("30 2 * * *", Timezone::EuropeParis).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Scheduler::new("nightly", nightly)
                .with_clock(clock)
                .run(shutdown.clone(), || async {}),
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        shutdown.cancel();
        let report = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("stops without waiting for 02:30")
            .unwrap();
        assert_eq!(report, SchedulerReport::default());
    }

    #[tokio::test]
    async fn a_panicking_run_does_not_stop_the_schedule() {
        let clock = ManualClock::new(utc("2026-05-01T10:00:30Z"));
        let every_minute = Schedule::parse("* * * * *", Timezone::Utc).unwrap();
        let scheduler = Scheduler::new("nightly", every_minute).with_clock(clock.clone());
        let stats = scheduler.stats();
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        let mut n = 0;
        let task = tokio::spawn(scheduler.run(shutdown.clone(), move || {
            n += 1;
            let tx = tx.clone();
            let this = n;
            async move {
                let _ = tx.send(this);
                assert!(this != 1, "first run fails");
            }
        }));
        for minute in 1..=2 {
            until("next", || stats.next_run().is_some_and(|t| t > clock.now())).await;
            until("idle", || !stats.is_running()).await;
            clock.set(utc("2026-05-01T10:00:00Z") + Duration::minutes(minute));
            assert_eq!(rx.recv().await, Some(minute as u64));
        }
        shutdown.cancel();
        assert_eq!(task.await.unwrap().runs, 2);
    }

    #[tokio::test]
    async fn system_clock_sleeps_until_the_time() {
        let t0 = std::time::Instant::now();
        SystemClock
            .sleep_until(Utc::now() + Duration::milliseconds(50))
            .await;
        assert!(t0.elapsed() >= std::time::Duration::from_millis(45));
        // A time in the past returns at once.
        SystemClock
            .sleep_until(Utc::now() - Duration::hours(1))
            .await;
    }
}
