//! What the last nights did, per flow: the figures the engine fills in and the status
//! page and `/api/status` show.
//!
//! Only counts, times, flow ids and outcome words live here; an error text must be a
//! connector or engine error message, which by the project's rule names no person.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::{CounterVec, GaugeVec, Metrics, MetricsError};

/// How many nights [`Status`] keeps unless told otherwise.
pub const DEFAULT_NIGHTS_KEPT: usize = 7;

/// Shared status: the engine writes, the routes read. A std lock: every critical section
/// is a copy or a small update, never held across an await.
pub type SharedStatus = Arc<RwLock<Status>>;

/// The process and its last nights, most recent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// When this process started.
    pub started_at: DateTime<Utc>,
    pub version: String,
    /// The schedule as written, with its zone, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
    /// Ticks skipped because the previous run was still going.
    #[serde(default)]
    pub skipped_ticks: u64,
    /// Most recent first; at most `keep` of them.
    pub nights: VecDeque<Night>,
    #[serde(skip, default = "default_keep")]
    keep: usize,
}

/// One run of the flows (a night, or a `sync` started by hand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Night {
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// In the order the engine ran them.
    pub flows: Vec<FlowStatus>,
}

/// One flow in one night.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStatus {
    pub flow: String,
    pub outcome: FlowOutcome,
    /// Records read from the source.
    pub read: u64,
    /// Published to a recipient.
    pub sent: u64,
    /// Same content as last time, not sent again.
    pub unchanged: u64,
    /// Written by the recipient's sink.
    pub applied: u64,
    /// Refused by the recipient's sink, or rejected at the source.
    pub rejected: u64,
    /// Refused by policy (the recipient may not have them).
    pub denied: u64,
    pub dead_lettered: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Why the flow failed, when it did. No personal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowOutcome {
    #[default]
    Running,
    Completed,
    /// Completed with some records rejected or dead-lettered.
    Partial,
    Failed,
}

impl FlowOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }
}

fn default_keep() -> usize {
    DEFAULT_NIGHTS_KEPT
}

impl Status {
    /// A fresh status for a process started now, keeping the last `keep` nights.
    pub fn new(version: impl Into<String>, keep: usize) -> Self {
        Self {
            started_at: Utc::now(),
            version: version.into(),
            schedule: None,
            next_run: None,
            skipped_ticks: 0,
            nights: VecDeque::new(),
            keep: keep.max(1),
        }
    }

    /// Wraps it for sharing.
    pub fn shared(self) -> SharedStatus {
        Arc::new(RwLock::new(self))
    }

    /// Starts a night; the oldest one beyond `keep` is dropped.
    pub fn begin_night(&mut self, at: DateTime<Utc>) {
        self.nights.push_front(Night {
            started_at: at,
            ended_at: None,
            flows: Vec::new(),
        });
        self.nights.truncate(self.keep);
    }

    /// Records a flow in the current night (replacing an earlier entry for the same
    /// flow id, so the engine can report progress and then the result). Starts a night
    /// if none is running.
    pub fn record_flow(&mut self, flow: FlowStatus) {
        if self.nights.front().is_none_or(|n| n.ended_at.is_some()) {
            self.begin_night(flow.started_at.unwrap_or_else(Utc::now));
        }
        if let Some(night) = self.nights.front_mut() {
            match night.flows.iter_mut().find(|f| f.flow == flow.flow) {
                Some(existing) => *existing = flow,
                None => night.flows.push(flow),
            }
        }
    }

    /// Ends the current night.
    pub fn end_night(&mut self, at: DateTime<Utc>) {
        if let Some(night) = self.nights.front_mut() {
            night.ended_at.get_or_insert(at);
        }
    }

    /// The most recent night.
    pub fn last_night(&self) -> Option<&Night> {
        self.nights.front()
    }
}

/// The per-flow metrics every night feeds: `passerelle_flow_records_total{flow,stage}`
/// (stage: read, sent, unchanged, applied, rejected, denied, dead_lettered),
/// `passerelle_flow_runs_total{flow,outcome}`,
/// `passerelle_flow_last_end_timestamp_seconds{flow}` and
/// `passerelle_flow_last_duration_seconds{flow}`.
#[derive(Debug, Clone)]
pub struct FlowMetrics {
    records: CounterVec,
    runs: CounterVec,
    last_end: GaugeVec,
    last_duration: GaugeVec,
}

impl FlowMetrics {
    pub fn new(metrics: &Metrics) -> Result<Self, MetricsError> {
        Ok(Self {
            records: metrics.counter(
                "passerelle_flow_records_total",
                "Records per flow and stage, summed over runs.",
                &["flow", "stage"],
            )?,
            runs: metrics.counter(
                "passerelle_flow_runs_total",
                "Flow runs ended, by outcome.",
                &["flow", "outcome"],
            )?,
            last_end: metrics.gauge(
                "passerelle_flow_last_end_timestamp_seconds",
                "When the flow's last run ended, in Unix seconds.",
                &["flow"],
            )?,
            last_duration: metrics.gauge(
                "passerelle_flow_last_duration_seconds",
                "How long the flow's last run took.",
                &["flow"],
            )?,
        })
    }

    /// Adds a finished flow run. Call it once per run, with the final figures (unlike
    /// `Status::record_flow`, which may be called again with progress).
    pub fn observe(&self, f: &FlowStatus) {
        let flow = f.flow.as_str();
        for (stage, n) in [
            ("read", f.read),
            ("sent", f.sent),
            ("unchanged", f.unchanged),
            ("applied", f.applied),
            ("rejected", f.rejected),
            ("denied", f.denied),
            ("dead_lettered", f.dead_lettered),
        ] {
            self.records.with(&[flow, stage]).inc_by(n);
        }
        self.runs.with(&[flow, f.outcome.as_str()]).inc();
        if let Some(end) = f.ended_at {
            let secs = end.timestamp() as f64 + f64::from(end.timestamp_subsec_millis()) / 1e3;
            self.last_end.with(&[flow]).set(secs);
            if let Some(start) = f.started_at {
                let d = (end - start).num_milliseconds().max(0) as f64 / 1e3;
                self.last_duration.with(&[flow]).set(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: &str, sent: u64) -> FlowStatus {
        FlowStatus {
            flow: id.into(),
            outcome: FlowOutcome::Completed,
            sent,
            ..FlowStatus::default()
        }
    }

    #[test]
    fn keeps_the_last_nights_and_replaces_a_flow_entry() {
        let mut s = Status::new("0.1.0", 2);
        for day in 1..=3 {
            let at = DateTime::from_timestamp(day * 86_400, 0).unwrap();
            s.begin_night(at);
            s.record_flow(flow("brsa-orientation", 1));
            s.record_flow(flow("brsa-orientation", day as u64 * 10));
            s.record_flow(flow("faj-demande", 5));
            s.end_night(at);
        }
        assert_eq!(s.nights.len(), 2);
        let last = s.last_night().unwrap();
        assert_eq!(last.flows.len(), 2);
        assert_eq!(last.flows[0].sent, 30);
        assert_eq!(s.nights[1].flows[0].sent, 20);
        // A flow recorded after the night ended opens a new night.
        s.record_flow(flow("of-suivi", 1));
        assert_eq!(s.nights.len(), 2);
        assert_eq!(s.last_night().unwrap().flows[0].flow, "of-suivi");
    }

    #[test]
    fn json_shape() {
        let mut s = Status::new("0.1.0", 3);
        s.begin_night(DateTime::from_timestamp(0, 0).unwrap());
        s.record_flow(FlowStatus {
            dead_lettered: 2,
            outcome: FlowOutcome::Partial,
            ..flow("box-depot", 7)
        });
        let v = serde_json::to_value(&s).unwrap();
        let f = &v["nights"][0]["flows"][0];
        assert_eq!(f["flow"], "box-depot");
        assert_eq!(f["outcome"], "partial");
        assert_eq!(f["sent"], 7);
        assert_eq!(f["dead_lettered"], 2);
        assert!(f.get("error").is_none());
        assert_eq!(v["nights"][0]["started_at"], "1970-01-01T00:00:00Z");
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back.nights, s.nights);
    }

    #[test]
    fn flow_metrics_add_up_runs() {
        let m = Metrics::new();
        let fm = FlowMetrics::new(&m).unwrap();
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for sent in [3, 4] {
            fm.observe(&FlowStatus {
                read: 10,
                started_at: Some(start),
                ended_at: Some(start + chrono::Duration::milliseconds(2_500)),
                ..flow("brsa-orientation", sent)
            });
        }
        let text = m.render();
        for line in [
            "passerelle_flow_records_total{flow=\"brsa-orientation\",stage=\"sent\"} 7\n",
            "passerelle_flow_records_total{flow=\"brsa-orientation\",stage=\"read\"} 20\n",
            "passerelle_flow_runs_total{flow=\"brsa-orientation\",outcome=\"completed\"} 2\n",
            "passerelle_flow_last_end_timestamp_seconds{flow=\"brsa-orientation\"} 1700000002.5\n",
            "passerelle_flow_last_duration_seconds{flow=\"brsa-orientation\"} 2.5\n",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        assert!(
            FlowMetrics::new(&m).is_ok(),
            "registering twice finds the same families"
        );
    }
}
