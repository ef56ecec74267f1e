//! A small registry of labelled counters and gauges, rendered in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! Label values are identifiers only: flow ids, organisation codes, statuses, peer names.
//! Never a name, NIR, CAF number, e-mail or phone number. As a guard, a label value that
//! looks personal (an `@`, a run of six digits or more, more than 64 characters) is
//! rendered as `_redacted` instead, and a warning names the metric, never the value.
//!
//! Handles ([`Counter`], [`Gauge`]) are `Arc`s around atomics: look one up once with
//! `with`, keep it, and increment it from any task without a lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tracing::warn;

/// What a label value becomes when it looks personal.
pub const REDACTED: &str = "_redacted";

/// The registry. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Arc<RwLock<BTreeMap<String, Arc<Family>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    labels: Vec<String>,
    series: RwLock<BTreeMap<Vec<String>, Arc<AtomicU64>>>,
}

/// A registration that conflicts with an earlier one, or a bad name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("metric name `{0}` is not [a-zA-Z_:][a-zA-Z0-9_:]*")]
    BadName(String),
    #[error("label name `{label}` of metric `{metric}` is not [a-zA-Z_][a-zA-Z0-9_]*")]
    BadLabel { metric: String, label: String },
    #[error("metric `{0}` is already registered with another type or other labels")]
    Conflict(String),
}

/// A family of counters sharing a name and label names.
#[derive(Debug, Clone)]
pub struct CounterVec(Arc<Family>);

/// A family of gauges sharing a name and label names.
#[derive(Debug, Clone)]
pub struct GaugeVec(Arc<Family>);

/// One counter: only goes up.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

/// One gauge: set to any value (stored as f64 bits).
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or finds again) a counter family. Prometheus convention: the name
    /// ends in `_total`.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<CounterVec, MetricsError> {
        self.register(name, help, Kind::Counter, labels)
            .map(CounterVec)
    }

    /// Registers (or finds again) a gauge family.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        self.register(name, help, Kind::Gauge, labels).map(GaugeVec)
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
    ) -> Result<Arc<Family>, MetricsError> {
        if !valid_name(name, true) {
            return Err(MetricsError::BadName(name.to_owned()));
        }
        if let Some(bad) = labels
            .iter()
            .find(|l| !valid_name(l, false) || l.starts_with("__"))
        {
            return Err(MetricsError::BadLabel {
                metric: name.to_owned(),
                label: (*bad).to_owned(),
            });
        }
        let mut families = self.families.write().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = families.get(name) {
            if f.kind == kind && f.labels.iter().eq(labels.iter()) {
                return Ok(f.clone());
            }
            return Err(MetricsError::Conflict(name.to_owned()));
        }
        let family = Arc::new(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            series: RwLock::default(),
        });
        families.insert(name.to_owned(), family.clone());
        Ok(family)
    }

    /// The whole registry in the Prometheus text format, families and series sorted.
    pub fn render(&self) -> String {
        let families = self.families.read().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for f in families.values() {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            let series = f.series.read().unwrap_or_else(|p| p.into_inner());
            for (values, cell) in series.iter() {
                out.push_str(&f.name);
                if !f.labels.is_empty() {
                    out.push('{');
                    for (i, (label, value)) in f.labels.iter().zip(values).enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{label}=\"{}\"", escape_label_value(value));
                    }
                    out.push('}');
                }
                let raw = cell.load(Ordering::Relaxed);
                let _ = match f.kind {
                    Kind::Counter => writeln!(out, " {raw}"),
                    Kind::Gauge => writeln!(out, " {}", format_float(f64::from_bits(raw))),
                };
            }
        }
        out
    }
}

impl Family {
    /// The cell for these label values, created at zero on first use.
    fn cell(&self, values: &[&str]) -> Arc<AtomicU64> {
        let mut key: Vec<String> = values
            .iter()
            .map(|v| {
                if looks_personal(v) {
                    warn!(metric = %self.name, "label value looks personal; recorded as _redacted");
                    REDACTED.to_owned()
                } else {
                    (*v).to_owned()
                }
            })
            .collect();
        // A wrong count is a programming error; keep serving with a visible marker.
        if key.len() != self.labels.len() {
            warn!(metric = %self.name, expected = self.labels.len(), got = key.len(), "wrong number of label values");
            key.resize(self.labels.len(), "_missing".to_owned());
        }
        if let Some(c) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return c.clone();
        }
        let zero = match self.kind {
            Kind::Counter => 0,
            Kind::Gauge => 0f64.to_bits(),
        };
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(AtomicU64::new(zero)))
            .clone()
    }
}

impl CounterVec {
    /// The counter for these label values, in the order the labels were registered.
    pub fn with(&self, values: &[&str]) -> Counter {
        Counter(self.0.cell(values))
    }
}

impl GaugeVec {
    pub fn with(&self, values: &[&str]) -> Gauge {
        Gauge(self.0.cell(values))
    }
}

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, d: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + d).to_bits())
            });
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'));
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Whether a label value could be personal data rather than an identifier.
pub fn looks_personal(v: &str) -> bool {
    if v.chars().count() > 64 || v.contains('@') {
        return true;
    }
    let mut run = 0;
    for c in v.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 6 {
            return true;
        }
    }
    false
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::new();
        let sent = m
            .counter(
                "passerelle_records_sent_total",
                "Records published to a recipient.",
                &["flow", "recipient"],
            )
            .unwrap();
        sent.with(&["brsa-orientation", "ML080"]).inc_by(41);
        sent.with(&["brsa-orientation", "ML080"]).inc();
        sent.with(&["faj-demande", "FAJ080"]).inc_by(3);
        let last = m
            .gauge(
                "passerelle_last_run_timestamp_seconds",
                "When the last run ended.\nUnix seconds \\ UTC.",
                &[],
            )
            .unwrap();
        last.with(&[]).set(1_700_000_000.5);
        let empty = m.counter("passerelle_unused_total", "Never used.", &["flow"]);
        assert!(empty.is_ok());
        assert_eq!(
            m.render(),
            "# HELP passerelle_last_run_timestamp_seconds When the last run ended.\\nUnix seconds \\\\ UTC.\n\
             # TYPE passerelle_last_run_timestamp_seconds gauge\n\
             passerelle_last_run_timestamp_seconds 1700000000.5\n\
             # HELP passerelle_records_sent_total Records published to a recipient.\n\
             # TYPE passerelle_records_sent_total counter\n\
             passerelle_records_sent_total{flow=\"brsa-orientation\",recipient=\"ML080\"} 42\n\
             passerelle_records_sent_total{flow=\"faj-demande\",recipient=\"FAJ080\"} 3\n\
             # HELP passerelle_unused_total Never used.\n\
             # TYPE passerelle_unused_total counter\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        let m = Metrics::new();
        m.gauge("g", "h", &["status"])
            .unwrap()
            .with(&["said \"no\"\\\n"])
            .set(-2.0);
        assert!(
            m.render()
                .contains("g{status=\"said \\\"no\\\"\\\\\\n\"} -2\n"),
            "{}",
            m.render()
        );
    }

    #[test]
    fn personal_looking_label_values_are_redacted() {
        let m = Metrics::new();
        let c = m.counter("c_total", "h", &["flow"]).unwrap();
        for v in [
            "1850578006048", // a NIR
            "0612345678",    // a phone number
            "jeune@example.org",
            &"x".repeat(65),
        ] {
            c.with(&[v]).inc();
        }
        c.with(&["CD080"]).inc();
        c.with(&["2026-11-22"]).inc();
        let text = m.render();
        assert!(text.contains("c_total{flow=\"_redacted\"} 4\n"), "{text}");
        assert!(text.contains("c_total{flow=\"CD080\"} 1\n"), "{text}");
        assert!(text.contains("c_total{flow=\"2026-11-22\"} 1\n"), "{text}");
        for v in ["1850578006048", "0612345678", "jeune@"] {
            assert!(!text.contains(v), "{v} leaked");
        }
    }

    #[test]
    fn registration_rules() {
        let m = Metrics::new();
        let a = m.counter("x_total", "h", &["flow"]).unwrap();
        let b = m.counter("x_total", "h", &["flow"]).unwrap();
        a.with(&["f"]).inc();
        assert_eq!(b.with(&["f"]).get(), 1, "the same family is found again");
        assert_eq!(
            m.gauge("x_total", "h", &["flow"]).unwrap_err(),
            MetricsError::Conflict("x_total".into())
        );
        assert_eq!(
            m.counter("x_total", "h", &["org"]).unwrap_err(),
            MetricsError::Conflict("x_total".into())
        );
        assert!(matches!(
            m.counter("9lives", "h", &[]),
            Err(MetricsError::BadName(_))
        ));
        assert!(matches!(
            m.counter("ok_total", "h", &["bad-label"]),
            Err(MetricsError::BadLabel { .. })
        ));
        assert!(matches!(
            m.counter("ok_total", "h", &["__reserved"]),
            Err(MetricsError::BadLabel { .. })
        ));
    }

    #[test]
    fn counters_add_up_across_threads() {
        let m = Metrics::new();
        let c = m.counter("n_total", "h", &["flow"]).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let c = c.clone();
                s.spawn(move || {
                    let h = c.with(&["f"]);
                    for _ in 0..10_000 {
                        h.inc();
                    }
                });
            }
        });
        assert_eq!(c.with(&["f"]).get(), 40_000);
        let g = m.gauge("busy", "h", &[]).unwrap().with(&[]);
        g.add(2.5);
        g.add(-1.0);
        assert_eq!(g.get(), 1.5);
    }
}
