//! The alerts the CNIL's recommendation on access logs asks for, computed from the
//! journal's entries alone (so they hold for SQLite and PostgreSQL alike): a spike of
//! refusals or of dead letters, an account consulting far more than it usually does,
//! consultations outside the hours its organisation declares. A failed verification
//! is the caller's to add (it comes from [`Journal::verify`](crate::Journal::verify)).
//!
//! Each alert has a stable `key` (kind, day, account or entry): the caller journals an
//! alert once by looking for an `alerted` entry whose reason starts with that key.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::Entry;

/// What kind of alert, for metrics labels and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    VerificationFailed,
    DenialSpike,
    DeadLetterSpike,
    ConsultationSpike,
    OutsideHours,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::VerificationFailed,
        AlertKind::DenialSpike,
        AlertKind::DeadLetterSpike,
        AlertKind::ConsultationSpike,
        AlertKind::OutsideHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::VerificationFailed => "verification_failed",
            AlertKind::DenialSpike => "denial_spike",
            AlertKind::DeadLetterSpike => "dead_letter_spike",
            AlertKind::ConsultationSpike => "consultation_spike",
            AlertKind::OutsideHours => "outside_hours",
        }
    }

    /// The French title the console shows.
    pub fn label_fr(self) -> &'static str {
        match self {
            AlertKind::VerificationFailed => "Échec de la vérification du journal",
            AlertKind::DenialSpike => "Pic de refus",
            AlertKind::DeadLetterSpike => "Pic d'envois non remis",
            AlertKind::ConsultationSpike => "Consultations inhabituelles d'un compte",
            AlertKind::OutsideHours => "Consultation hors des horaires déclarés",
        }
    }
}

/// One alert: its kind, its stable key, and what it says (French, no personal data:
/// account logins, organisation codes, counts and times only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub key: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The window looked at (the last `window` before now), and the days before it that
    /// make the usual level.
    pub window: Duration,
    pub baseline_days: i64,
    /// A spike: at least `min_spike` in the window and more than `factor` times the
    /// usual level for a window of that length.
    pub min_spike: usize,
    pub factor: f64,
    /// Consultations by one account: at least this many in the window, and `factor`
    /// times its own usual level.
    pub min_consultations: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            window: Duration::hours(24),
            baseline_days: 14,
            min_spike: 10,
            factor: 3.0,
            min_consultations: 30,
        }
    }
}

/// Whether an organisation's account may consult at this instant; `None` when the
/// organisation declares no hours.
pub type WithinHours<'a> = &'a dyn Fn(&str, DateTime<Utc>) -> Option<bool>;

fn at(e: &Entry) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&e.at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The alerts `entries` (those of the window and of the baseline days before it, in
/// any order) raise at `now`.
pub fn compute(
    entries: &[Entry],
    now: DateTime<Utc>,
    rules: &Rules,
    hours: WithinHours<'_>,
) -> Vec<Alert> {
    let start = now - rules.window;
    let base_start = start - Duration::days(rules.baseline_days);
    // How many windows the baseline holds (at least one, to divide by).
    let windows = ((start - base_start).num_seconds() as f64
        / rules.window.num_seconds().max(1) as f64)
        .max(1.0);
    let day = now.format("%Y-%m-%d").to_string();
    let mut out = Vec::new();

    let spike = |event: &str| -> (usize, f64) {
        let (mut now_n, mut before) = (0usize, 0usize);
        for e in entries.iter().filter(|e| e.event == event) {
            match at(e) {
                Some(t) if t >= start && t <= now => now_n += 1,
                Some(t) if t >= base_start && t < start => before += 1,
                _ => {}
            }
        }
        (now_n, before as f64 / windows)
    };
    for (event, kind, what) in [
        ("denied", AlertKind::DenialSpike, "refus"),
        (
            "dead_lettered",
            AlertKind::DeadLetterSpike,
            "envois non remis",
        ),
    ] {
        let (n, usual) = spike(event);
        if n >= rules.min_spike && n as f64 > rules.factor * usual {
            out.push(Alert {
                kind,
                key: format!("{}:{day}", kind.as_str()),
                message: format!(
                    "{n} {what} sur les dernières {} heures, pour {usual:.1} habituellement sur une même durée.",
                    rules.window.num_hours()
                ),
                at: now,
            });
        }
    }

    // Consultations per account, against its own usual level.
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.event == "consulted") {
        match at(e) {
            Some(t) if t >= start && t <= now => per.entry(&e.actor).or_default().0 += 1,
            Some(t) if t >= base_start && t < start => per.entry(&e.actor).or_default().1 += 1,
            _ => {}
        }
    }
    for (actor, (n, before)) in per {
        let usual = before as f64 / windows;
        if n >= rules.min_consultations && n as f64 > rules.factor * usual.max(1.0) {
            out.push(Alert {
                kind: AlertKind::ConsultationSpike,
                key: format!("{}:{day}:{actor}", AlertKind::ConsultationSpike.as_str()),
                message: format!(
                    "Le compte {actor} a consulté {n} fois des données de personnes sur les dernières {} heures, pour {usual:.1} habituellement.",
                    rules.window.num_hours()
                ),
                at: now,
            });
        }
    }

    // Consultations outside the declared hours of the account's organisation.
    for e in entries.iter().filter(|e| e.event == "consulted") {
        let (Some(t), Some(org)) = (at(e), e.sender.as_deref()) else {
            continue;
        };
        if t < start || t > now {
            continue;
        }
        if hours(org, t) == Some(false) {
            out.push(Alert {
                kind: AlertKind::OutsideHours,
                key: format!("{}:{}", AlertKind::OutsideHours.as_str(), e.seq),
                message: format!(
                    "Le compte {} ({org}) a consulté des données hors des horaires déclarés par son organisation (entrée {} du journal).",
                    e.actor, e.seq
                ),
                at: t,
            });
        }
    }
    out
}

/// The alert a failed verification raises (`what` says what is wrong, without data).
pub fn verification_failed(what: &str, now: DateTime<Utc>) -> Alert {
    Alert {
        kind: AlertKind::VerificationFailed,
        key: format!(
            "{}:{}",
            AlertKind::VerificationFailed.as_str(),
            now.format("%Y-%m-%d")
        ),
        message: format!("La vérification du journal a échoué : {what}"),
        at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, event: &str, actor: &str, org: Option<&str>, t: DateTime<Utc>) -> Entry {
        Entry {
            seq,
            at: crate::format_time(t),
            event: event.into(),
            actor: actor.into(),
            flow: None,
            sender: org.map(Into::into),
            recipient: None,
            subject: None,
            fields: Vec::new(),
            legal_basis: None,
            ciphertext_digest: None,
            outcome: "ok".into(),
            reason: None,
            hash: Vec::new(),
        }
    }

    #[test]
    fn spikes_of_refusals_and_consultations_are_found_and_usual_levels_are_not() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let no_hours = |_: &str, _: DateTime<Utc>| None;
        let mut es = Vec::new();
        let mut seq = 0;
        // Usual: 2 refusals and 10 consultations by alice a day for 14 days.
        for d in 1..=14 {
            for _ in 0..2 {
                seq += 1;
                es.push(entry(
                    seq,
                    "denied",
                    "system",
                    None,
                    now - Duration::days(d) - Duration::minutes(1),
                ));
            }
            for _ in 0..10 {
                seq += 1;
                es.push(entry(
                    seq,
                    "consulted",
                    "alice",
                    Some("59350S00"),
                    now - Duration::days(d) - Duration::minutes(1),
                ));
            }
        }
        assert!(compute(&es, now, &Rules::default(), &no_hours).is_empty());
        // Today: 12 refusals, 3 dead letters, alice 40 consultations, bob (new) 31.
        for i in 0..12 {
            seq += 1;
            es.push(entry(
                seq,
                "denied",
                "system",
                None,
                now - Duration::minutes(i),
            ));
        }
        for i in 0..3 {
            seq += 1;
            es.push(entry(
                seq,
                "dead_lettered",
                "system",
                None,
                now - Duration::minutes(i),
            ));
        }
        for i in 0..40 {
            seq += 1;
            es.push(entry(
                seq,
                "consulted",
                "alice",
                Some("59350S00"),
                now - Duration::minutes(i),
            ));
        }
        for i in 0..31 {
            seq += 1;
            es.push(entry(
                seq,
                "consulted",
                "bob",
                Some("59350S00"),
                now - Duration::minutes(i),
            ));
        }
        let a = compute(&es, now, &Rules::default(), &no_hours);
        let kinds: Vec<_> = a.iter().map(|a| (a.kind, a.key.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (AlertKind::DenialSpike, "denial_spike:2026-12-04".to_owned()),
                (
                    AlertKind::ConsultationSpike,
                    "consultation_spike:2026-12-04:alice".to_owned()
                ),
                (
                    AlertKind::ConsultationSpike,
                    "consultation_spike:2026-12-04:bob".to_owned()
                ),
            ]
        );
        assert!(a[0].message.starts_with("12 refus"), "{}", a[0].message);
    }

    #[test]
    fn consultations_outside_declared_hours_raise_one_alert_each() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let es = vec![
            entry(
                1,
                "consulted",
                "alice",
                Some("59350S00"),
                now - Duration::hours(12),
            ),
            entry(
                2,
                "consulted",
                "alice",
                Some("59350S00"),
                now - Duration::minutes(5),
            ),
            entry(
                3,
                "consulted",
                "carole",
                Some("CD059"),
                now - Duration::minutes(5),
            ),
            entry(4, "consulted", "dpo", None, now - Duration::minutes(5)),
        ];
        // The ML declares 8 h–19 h UTC for the test; the CD declares nothing.
        let hours = |org: &str, t: DateTime<Utc>| {
            (org == "59350S00").then(|| (8..19).contains(&chrono::Timelike::hour(&t)))
        };
        let a = compute(&es, now, &Rules::default(), &hours);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlertKind::OutsideHours);
        assert_eq!(a[0].key, "outside_hours:2");
        assert!(a[0].message.contains("alice (59350S00)"));
    }
}
