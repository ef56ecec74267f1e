//! Five-field cron schedules (`"30 2 * * *"`) read in a named time zone, and the next
//! time they fire.
//!
//! Syntax, as in Vixie cron: `minute hour day-of-month month day-of-week`; each field is
//! `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list of
//! those. Months take `JAN`–`DEC`, days of week `SUN`–`SAT` (0 and 7 are both Sunday).
//! When both day fields are restricted a day matches either (cron's rule); when one is
//! `*` both must match. Aliases: `@hourly`, `@daily` (`@midnight`), `@weekly`,
//! `@monthly`, `@yearly` (`@annually`).
//!
//! Summer-time switches (Europe/Paris): a time the clocks skip (02:00–02:59 on the last
//! Sunday of March) fires once, at the switch (03:00 local); a time that happens twice
//! (02:00–02:59 on the last Sunday of October) fires once, the first time, unless the
//! hour field is `*`, in which case it fires in both passes, as an hourly job should.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use crate::error::ScheduleError;
use crate::tz::{LocalTime, Timezone};

/// A parsed, validated schedule. Build it with [`Schedule::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expression: String,
    timezone: Timezone,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Both day fields restricted: a day matches if either does.
    days_either: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const WEEKDAY: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// How far ahead to look. A valid schedule fires at least every eight years
/// (29 February with no day-of-week, across a non-leap century year).
const HORIZON_DAYS: i64 = 366 * 9;

impl Schedule {
    /// Parses a cron expression read in `timezone`.
    pub fn parse(expression: &str, timezone: Timezone) -> Result<Self, ScheduleError> {
        let trimmed = expression.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            _ => trimmed,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::FieldCount {
                expression: expression.to_owned(),
                found: fields.len(),
            });
        }
        let field = |i: usize, spec: &FieldSpec| parse_field(expression, fields[i], spec);
        let minutes = field(0, &MINUTE)?;
        let hours = field(1, &HOUR)?;
        let days = field(2, &DAY)?;
        let months = field(3, &MONTH)?;
        let mut weekdays = field(4, &WEEKDAY)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let days_either = !fields[2].starts_with('*') && !fields[4].starts_with('*');
        let schedule = Self {
            expression: expression.trim().to_owned(),
            timezone,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_either,
        };
        if !schedule.can_fire() {
            return Err(ScheduleError::NeverFires {
                expression: expression.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// The expression as written in the configuration.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Timezone {
        self.timezone
    }

    /// The first firing time strictly after `after`, to the minute.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let zone = self.timezone;
        let limit = after + Duration::days(HORIZON_DAYS);
        // Walk instants, not wall-clock times, so that a fold is walked twice and a gap
        // not at all; skip whole days and hours that cannot match.
        let mut at = floor_minute(after) + Duration::minutes(1);
        while at <= limit {
            let local = zone.to_local(at);
            if !self.day_matches(local.date()) {
                at = earliest(
                    zone,
                    (local.date() + Duration::days(1)).and_time(NaiveTime::MIN),
                );
                continue;
            }
            // Landing on a spring switch: the skipped times fire now.
            if zone.offset_at(at) > zone.offset_at(at - Duration::minutes(1))
                && self.fires_in_gap(at, local)
            {
                return at;
            }
            if !bit(self.hours, local.hour()) {
                at = next_hour(at, local);
                continue;
            }
            let Some(minute) = next_bit(self.minutes, local.minute(), 59) else {
                at = next_hour(at, local);
                continue;
            };
            if minute != local.minute() {
                // Offsets change on hour boundaries only, so minutes map one to one.
                at += Duration::minutes(i64::from(minute - local.minute()));
                continue;
            }
            if self.is_second_pass(at, local) && self.hours != ALL_HOURS {
                at += Duration::minutes(1);
                continue;
            }
            return at;
        }
        // Unreachable for a schedule that passed `parse`, which proves it can fire.
        DateTime::<Utc>::MAX_UTC
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if !bit(self.months, date.month()) {
            return false;
        }
        let dom = bit(self.days, date.day());
        let dow = bit(self.weekdays, date.weekday().num_days_from_sunday());
        if self.days_either {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// At a spring switch: whether a skipped wall-clock time would have fired.
    fn fires_in_gap(&self, at: DateTime<Utc>, local: NaiveDateTime) -> bool {
        let before = self.timezone.to_local(at - Duration::minutes(1));
        let mut t = before + Duration::minutes(1);
        while t < local {
            if t.date() == before.date()
                && bit(self.hours, t.hour())
                && bit(self.minutes, t.minute())
            {
                return true;
            }
            t += Duration::minutes(1);
        }
        false
    }

    fn is_second_pass(&self, at: DateTime<Utc>, local: NaiveDateTime) -> bool {
        matches!(self.timezone.from_local(local), LocalTime::Twice(_, second) if second == at)
    }

    /// Whether some day of some month matches; the weekday rule always finds one.
    fn can_fire(&self) -> bool {
        if self.days_either || self.days == ALL_DAYS {
            return true;
        }
        // Day-of-week alone restricts too: every weekday occurs in every month.
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|m| {
            bit(self.months, m) && (1..=LONGEST[(m - 1) as usize]).any(|d| bit(self.days, d))
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.timezone)
    }
}

const ALL_HOURS: u64 = (1 << 24) - 1;
const ALL_DAYS: u64 = ((1 << 32) - 1) & !1;

fn bit(set: u64, n: u32) -> bool {
    set & (1u64 << n) != 0
}

fn next_bit(set: u64, from: u32, max: u32) -> Option<u32> {
    (from..=max).find(|n| bit(set, *n))
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// The first instant whose wall-clock time is `local` or later.
fn earliest(zone: Timezone, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local(local) {
        LocalTime::Single(t) | LocalTime::Twice(t, _) | LocalTime::Skipped(t) => t,
    }
}

/// The start of the next wall-clock hour, always after `at`. Every supported zone is a
/// whole number of hours from UTC and switches on the hour, so the next local hour
/// starts at the next UTC hour: after the first pass of a fold comes the second, and
/// before a spring gap comes the switch.
fn next_hour(at: DateTime<Utc>, local: NaiveDateTime) -> DateTime<Utc> {
    floor_minute(at) + Duration::minutes(60 - i64::from(local.minute()))
}

fn parse_field(expression: &str, text: &str, spec: &FieldSpec) -> Result<u64, ScheduleError> {
    let fail = |item: &str, reason: String| ScheduleError::Field {
        expression: expression.to_owned(),
        field: spec.name,
        item: item.to_owned(),
        reason,
    };
    let value = |item: &str, s: &str| -> Result<u32, ScheduleError> {
        let upper = s.to_ascii_uppercase();
        let n = if let Some(i) = spec.names.iter().position(|n| *n == upper) {
            // Months are numbered from 1, weekdays from 0 (Sunday): both from `min`.
            i as u32 + spec.min
        } else {
            s.parse::<u32>()
                .map_err(|_| fail(item, format!("`{s}` is not a number")))?
        };
        if n < spec.min || n > spec.max {
            return Err(fail(
                item,
                format!("{n} is out of range {}-{}", spec.min, spec.max),
            ));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(fail(item, "empty list item".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step = s
                    .parse::<u32>()
                    .map_err(|_| fail(item, format!("step `{s}` is not a number")))?;
                if step == 0 || step > spec.max {
                    return Err(fail(
                        item,
                        format!("step {step} is out of range 1-{}", spec.max),
                    ));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(item, a)?, value(item, b)?);
            if a > b {
                return Err(fail(item, format!("range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(item, range)?;
            // `a/n` means from a to the end, stepping n, as in Vixie cron.
            (a, if item.contains('/') { spec.max } else { a })
        };
        let mut n = lo;
        while n <= hi {
            set |= 1 << n;
            n += step;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: Timezone, after: &str) -> String {
        Schedule::parse(expr, tz)
            .unwrap()
            .next_after(utc(after))
            .to_rfc3339()
    }

    fn fires(expr: &str, tz: Timezone, after: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr, tz).unwrap();
        let mut t = utc(after);
        (0..n)
            .map(|_| {
                t = s.next_after(t);
                t.to_rfc3339()
            })
            .collect()
    }

    const UTC: Timezone = Timezone::Utc;
    const PARIS: Timezone = Timezone::EuropeParis;

    #[test]
    fn daily_in_utc_crosses_day_month_and_year() {
        assert_eq!(
            next("30 2 * * *", UTC, "2026-01-31T02:30:00Z"),
            "2026-02-01T02:30:00+00:00"
        );
        assert_eq!(
            next("30 2 * * *", UTC, "2026-01-31T02:29:59Z"),
            "2026-01-31T02:30:00+00:00"
        );
        assert_eq!(
            next("30 2 * * *", UTC, "2026-12-31T23:59:00Z"),
            "2027-01-01T02:30:00+00:00"
        );
        assert_eq!(
            next("0 0 1 * *", UTC, "2026-02-14T10:00:00Z"),
            "2026-03-01T00:00:00+00:00"
        );
    }

    #[test]
    fn paris_winter_and_summer() {
        // 02:30 in Paris is 01:30 UTC in winter, 00:30 UTC in summer.
        assert_eq!(
            next("30 2 * * *", PARIS, "2026-01-10T12:00:00Z"),
            "2026-01-11T01:30:00+00:00"
        );
        assert_eq!(
            next("30 2 * * *", PARIS, "2026-07-10T12:00:00Z"),
            "2026-07-11T00:30:00+00:00"
        );
    }

    #[test]
    fn paris_spring_gap_fires_once_at_the_switch() {
        // 2026-03-29: 02:00–02:59 does not exist; 01:00 UTC is 03:00 local.
        assert_eq!(
            fires("30 2 * * *", PARIS, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
        // Several skipped times still give one run.
        assert_eq!(
            fires("*/15 2 * * *", PARIS, "2026-03-28T23:00:00Z", 2),
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:00:00+00:00"]
        );
        // A time after the gap is untouched.
        assert_eq!(
            next("30 3 * * *", PARIS, "2026-03-28T12:00:00Z"),
            "2026-03-29T01:30:00+00:00"
        );
    }

    #[test]
    fn paris_autumn_fold_fires_once_unless_hourly() {
        // 2026-10-25: 02:30 happens at 00:30 UTC and again at 01:30 UTC.
        assert_eq!(
            fires("30 2 * * *", PARIS, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
        assert_eq!(
            fires("0 * * * *", PARIS, "2026-10-24T23:30:00Z", 4),
            [
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-25T03:00:00+00:00",
            ]
        );
        assert_eq!(
            fires("30 * * * *", PARIS, "2026-10-24T23:45:00Z", 3),
            [
                "2026-10-25T00:30:00+00:00",
                "2026-10-25T01:30:00+00:00",
                "2026-10-25T02:30:00+00:00",
            ]
        );
    }

    #[test]
    fn steps_lists_ranges_and_names() {
        assert_eq!(
            fires("*/20 * * * *", UTC, "2026-05-01T10:05:00Z", 4),
            [
                "2026-05-01T10:20:00+00:00",
                "2026-05-01T10:40:00+00:00",
                "2026-05-01T11:00:00+00:00",
                "2026-05-01T11:20:00+00:00",
            ]
        );
        assert_eq!(
            fires("0 8-18/5 * * *", UTC, "2026-05-01T09:00:00Z", 3),
            [
                "2026-05-01T13:00:00+00:00",
                "2026-05-01T18:00:00+00:00",
                "2026-05-02T08:00:00+00:00",
            ]
        );
        assert_eq!(
            fires("15 6,22 * * *", UTC, "2026-05-01T07:00:00Z", 2),
            ["2026-05-01T22:15:00+00:00", "2026-05-02T06:15:00+00:00"]
        );
        // 2026-05-01 is a Friday.
        assert_eq!(
            fires("0 3 * * MON-FRI", UTC, "2026-05-01T04:00:00Z", 2),
            ["2026-05-04T03:00:00+00:00", "2026-05-05T03:00:00+00:00"]
        );
        assert_eq!(
            next("0 3 * * 7", UTC, "2026-05-01T04:00:00Z"),
            "2026-05-03T03:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1 jan,jul *", UTC, "2026-05-01T04:00:00Z"),
            "2026-07-01T00:00:00+00:00"
        );
        assert_eq!(
            fires("10/20 * * * *", UTC, "2026-05-01T10:00:00Z", 3),
            [
                "2026-05-01T10:10:00+00:00",
                "2026-05-01T10:30:00+00:00",
                "2026-05-01T10:50:00+00:00",
            ]
        );
    }

    #[test]
    fn day_fields_either_when_both_restricted() {
        // The 13th, or any Friday: from Monday 2026-05-04, Friday the 8th comes first.
        assert_eq!(
            fires("0 0 13 * 5", UTC, "2026-05-04T00:00:00Z", 3),
            [
                "2026-05-08T00:00:00+00:00",
                "2026-05-13T00:00:00+00:00",
                "2026-05-15T00:00:00+00:00",
            ]
        );
        // A day-of-week starting with `*` is not a restriction for the either rule:
        // both must match (a 13th that is a Sunday or a Friday).
        assert_eq!(
            next("0 0 13 * */5", UTC, "2026-05-04T00:00:00Z"),
            "2026-09-13T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 5", UTC, "2026-05-04T00:00:00Z"),
            "2026-05-08T00:00:00+00:00"
        );
    }

    #[test]
    fn leap_day_and_aliases() {
        assert_eq!(
            next("0 0 29 2 *", UTC, "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 29 2 *", UTC, "2096-03-01T00:00:00Z"),
            "2104-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next("@daily", PARIS, "2026-01-10T12:00:00Z"),
            "2026-01-10T23:00:00+00:00"
        );
        assert_eq!(
            next("@hourly", UTC, "2026-01-10T12:00:00Z"),
            "2026-01-10T13:00:00+00:00"
        );
        assert_eq!(
            next("@weekly", UTC, "2026-05-01T12:00:00Z"),
            "2026-05-03T00:00:00+00:00"
        );
    }

    #[test]
    fn invalid_expressions_say_what_is_wrong() {
        let err = |e: &str| Schedule::parse(e, UTC).unwrap_err().to_string();
        assert_eq!(
            err("30 2 * *"),
            "schedule `30 2 * *` has 4 fields; expected 5 (minute hour day-of-month month day-of-week) or an @alias"
        );
        assert_eq!(
            err("0 30 2 * * *"),
            "schedule `0 30 2 * * *` has 6 fields; expected 5 (minute hour day-of-month month day-of-week) or an @alias"
        );
        assert_eq!(
            err("30 24 * * *"),
            "schedule `30 24 * * *`: hour field `24`: 24 is out of range 0-23"
        );
        assert_eq!(
            err("60 2 * * *"),
            "schedule `60 2 * * *`: minute field `60`: 60 is out of range 0-59"
        );
        assert_eq!(
            err("0 0 0 * *"),
            "schedule `0 0 0 * *`: day-of-month field `0`: 0 is out of range 1-31"
        );
        assert_eq!(
            err("0 0 * 13 *"),
            "schedule `0 0 * 13 *`: month field `13`: 13 is out of range 1-12"
        );
        assert_eq!(
            err("0 0 * * 8"),
            "schedule `0 0 * * 8`: day-of-week field `8`: 8 is out of range 0-7"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "schedule `*/0 * * * *`: minute field `*/0`: step 0 is out of range 1-59"
        );
        assert_eq!(
            err("0 5-3 * * *"),
            "schedule `0 5-3 * * *`: hour field `5-3`: range 5-3 runs backwards"
        );
        assert_eq!(
            err("0 x * * *"),
            "schedule `0 x * * *`: hour field `x`: `x` is not a number"
        );
        assert_eq!(
            err("0 1,,2 * * *"),
            "schedule `0 1,,2 * * *`: hour field ``: empty list item"
        );
        assert_eq!(
            err("0 0 * * FUN"),
            "schedule `0 0 * * FUN`: day-of-week field `FUN`: `FUN` is not a number"
        );
        assert_eq!(
            err("0 0 31 2 *"),
            "schedule `0 0 31 2 *` never fires: no month has the days it names"
        );
        assert_eq!(
            err(""),
            "schedule `` has 0 fields; expected 5 (minute hour day-of-month month day-of-week) or an @alias"
        );
        // With a weekday too, cron's "either" rule makes it fire on Mondays.
        assert!(Schedule::parse("0 0 31 2 1", UTC).is_ok());
    }

    #[test]
    fn every_minute_walk_is_consistent_across_a_whole_paris_year() {
        // Every fired time matches its fields, times strictly increase, and there is
        // exactly one 02:30 run per day of 2026 (365), gap and fold included.
        let s = Schedule::parse("30 2 * * *", PARIS).unwrap();
        let mut t = utc("2025-12-31T12:00:00Z");
        let mut runs = 0;
        loop {
            let n = s.next_after(t);
            assert!(n > t);
            if n >= utc("2026-12-31T12:00:00Z") {
                break;
            }
            runs += 1;
            t = n;
        }
        assert_eq!(runs, 365);
    }

    /// The slow, obvious answer: try every minute.
    fn reference_next(s: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let zone = s.timezone;
        let matches = |n: NaiveDateTime| {
            s.day_matches(n.date()) && bit(s.hours, n.hour()) && bit(s.minutes, n.minute())
        };
        let mut u = floor_minute(after) + Duration::minutes(1);
        let limit = after + Duration::days(400);
        while u < limit {
            let local = zone.to_local(u);
            if zone.offset_at(u) > zone.offset_at(u - Duration::minutes(1)) {
                let mut m = zone.to_local(u - Duration::minutes(1)) + Duration::minutes(1);
                while m < local {
                    if matches(m) {
                        return Some(u);
                    }
                    m += Duration::minutes(1);
                }
            }
            let second = matches!(zone.from_local(local), LocalTime::Twice(_, b) if b == u);
            if matches(local) && !(second && s.hours != ALL_HOURS) {
                return Some(u);
            }
            u += Duration::minutes(1);
        }
        None
    }

    fn item(max: u32, min: u32) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("*".to_owned()),
            (min..=max).prop_map(|a| a.to_string()),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1..=max.max(2) / 2).prop_map(|s| format!("*/{s}")),
            (min..=max, 1..=4u32).prop_map(|(a, s)| format!("{a}/{s}")),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn agrees_with_trying_every_minute(
            minute in item(59, 0),
            // Often the hour the switches play with.
            hour in proptest::prop_oneof![
                item(23, 0),
                proptest::strategy::Just("2".to_owned()),
                proptest::strategy::Just("1-3".to_owned()),
                proptest::strategy::Just("2,14".to_owned()),
            ],
            day in proptest::prop_oneof![proptest::strategy::Just("*".to_owned()), item(28, 1)],
            weekday in item(7, 0),
            paris in proptest::bool::ANY,
            // Just before the 2026 switches, around them, and anywhere in 2026–2027.
            after in proptest::prop_oneof![
                1_774_738_800i64..1_774_746_000,
                1_792_875_600i64..1_792_885_200,
                1_774_699_200i64..1_774_764_000,
                1_792_843_200i64..1_792_908_000,
                1_767_225_600i64..1_830_297_600,
            ],
            seconds in 0i64..60,
        ) {
            let expr = format!("{minute} {hour} {day} * {weekday}");
            let zone = if paris { Timezone::EuropeParis } else { Timezone::Utc };
            let s = Schedule::parse(&expr, zone).unwrap();
            let after = DateTime::from_timestamp(after - after % 60 + seconds, 0).unwrap();
            if let Some(expected) = reference_next(&s, after) {
                proptest::prop_assert_eq!(s.next_after(after), expected, "{} after {}", expr, after);
            }
        }
    }
}
