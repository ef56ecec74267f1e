//! The time zones a schedule can be read in: UTC, Europe/Paris (with EU summer time) and
//! the fixed-offset zones of the overseas départements, without a tz database.
//!
//! A cron schedule is written in the users' wall-clock time ("30 2 * * *" means 02:30 in
//! the département), so the zone matters twice a year. The EU rule has been fixed since
//! 1996 (summer time from the last Sunday of March to the last Sunday of October, both
//! switches at 01:00 UTC); encoding it here avoids pulling a whole tz database for one
//! zone. The overseas départements keep no summer time.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ScheduleError;

/// A zone a schedule is read in. Names are the IANA ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timezone {
    #[serde(rename = "UTC")]
    Utc,
    /// Metropolitan France: UTC+1, UTC+2 in summer.
    #[serde(rename = "Europe/Paris")]
    EuropeParis,
    /// Guadeloupe, UTC-4.
    #[serde(rename = "America/Guadeloupe")]
    AmericaGuadeloupe,
    /// Martinique, UTC-4.
    #[serde(rename = "America/Martinique")]
    AmericaMartinique,
    /// Guyane, UTC-3.
    #[serde(rename = "America/Cayenne")]
    AmericaCayenne,
    /// La Réunion, UTC+4.
    #[serde(rename = "Indian/Reunion")]
    IndianReunion,
    /// Mayotte, UTC+3.
    #[serde(rename = "Indian/Mayotte")]
    IndianMayotte,
}

/// Where a local wall-clock time falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTime {
    /// One instant has this local time.
    Single(DateTime<Utc>),
    /// The clocks went back: two instants have this local time, earlier first.
    Twice(DateTime<Utc>, DateTime<Utc>),
    /// The clocks went forward over it: no instant has it; the instant given is the
    /// switch, the first instant whose local time is later.
    Skipped(DateTime<Utc>),
}

const ALL: [Timezone; 7] = [
    Timezone::Utc,
    Timezone::EuropeParis,
    Timezone::AmericaGuadeloupe,
    Timezone::AmericaMartinique,
    Timezone::AmericaCayenne,
    Timezone::IndianReunion,
    Timezone::IndianMayotte,
];

impl Timezone {
    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utc => "UTC",
            Self::EuropeParis => "Europe/Paris",
            Self::AmericaGuadeloupe => "America/Guadeloupe",
            Self::AmericaMartinique => "America/Martinique",
            Self::AmericaCayenne => "America/Cayenne",
            Self::IndianReunion => "Indian/Reunion",
            Self::IndianMayotte => "Indian/Mayotte",
        }
    }

    /// Parses an IANA name among the supported ones.
    pub fn parse(name: &str) -> Result<Self, ScheduleError> {
        ALL.into_iter()
            .find(|z| z.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ScheduleError::UnknownTimezone {
                name: name.to_owned(),
                known: ALL.iter().map(|z| z.name()).collect::<Vec<_>>().join(", "),
            })
    }

    /// The offset from UTC in force at `at`.
    pub fn offset_at(self, at: DateTime<Utc>) -> Duration {
        match self {
            Self::Utc => Duration::zero(),
            Self::EuropeParis => {
                let (start, end) = eu_summer(at.year());
                if at >= start && at < end {
                    Duration::hours(2)
                } else {
                    Duration::hours(1)
                }
            }
            Self::AmericaGuadeloupe | Self::AmericaMartinique => Duration::hours(-4),
            Self::AmericaCayenne => Duration::hours(-3),
            Self::IndianReunion => Duration::hours(4),
            Self::IndianMayotte => Duration::hours(3),
        }
    }

    /// The wall-clock time at `at`.
    pub fn to_local(self, at: DateTime<Utc>) -> NaiveDateTime {
        at.naive_utc() + self.offset_at(at)
    }

    /// The instants whose wall-clock time is `local`.
    pub fn from_local(self, local: NaiveDateTime) -> LocalTime {
        let offsets: &[Duration] = match self {
            Self::EuropeParis => &[Duration::hours(2), Duration::hours(1)],
            _ => &[],
        };
        if offsets.is_empty() {
            // A fixed offset: any instant gives it.
            return LocalTime::Single(
                Utc.from_utc_datetime(&(local - self.offset_at(DateTime::UNIX_EPOCH))),
            );
        }
        // Larger offsets give earlier instants, so this keeps them in time order.
        let found: Vec<DateTime<Utc>> = offsets
            .iter()
            .map(|o| Utc.from_utc_datetime(&(local - *o)))
            .filter(|u| self.to_local(*u) == local)
            .collect();
        match found.as_slice() {
            [one] => LocalTime::Single(*one),
            [a, b] => LocalTime::Twice(*a, *b),
            // Only the spring switch skips wall-clock times.
            _ => LocalTime::Skipped(eu_summer(local.year()).0),
        }
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The EU summer-time switches of `year`: last Sunday of March and of October, 01:00 UTC.
fn eu_summer(year: i32) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |month| {
        let day = last_sunday(year, month);
        Utc.from_utc_datetime(&day.and_hms_opt(1, 0, 0).unwrap_or_default())
    };
    (at(3), at(10))
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    // March and October have 31 days; walk back from the 31st.
    let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or_default();
    let back = last.weekday().num_days_from_sunday();
    last - Duration::days(i64::from(back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn eu_switch_dates() {
        // Known switch days: 2026-03-29 / 2026-10-25, 2027-03-28 / 2027-10-31.
        assert_eq!(eu_summer(2026).0, utc("2026-03-29T01:00:00Z"));
        assert_eq!(eu_summer(2026).1, utc("2026-10-25T01:00:00Z"));
        assert_eq!(eu_summer(2027).0, utc("2027-03-28T01:00:00Z"));
        assert_eq!(eu_summer(2027).1, utc("2027-10-31T01:00:00Z"));
        assert_eq!(last_sunday(2027, 10).weekday(), Weekday::Sun);
    }

    #[test]
    fn paris_offsets_and_local_times() {
        let z = Timezone::EuropeParis;
        assert_eq!(
            z.to_local(utc("2026-01-15T01:30:00Z")),
            naive("2026-01-15 02:30")
        );
        assert_eq!(
            z.to_local(utc("2026-07-15T00:30:00Z")),
            naive("2026-07-15 02:30")
        );
        assert_eq!(
            z.from_local(naive("2026-07-15 02:30")),
            LocalTime::Single(utc("2026-07-15T00:30:00Z"))
        );
        assert_eq!(
            z.from_local(naive("2026-03-29 02:30")),
            LocalTime::Skipped(utc("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            z.from_local(naive("2026-10-25 02:30")),
            LocalTime::Twice(utc("2026-10-25T00:30:00Z"), utc("2026-10-25T01:30:00Z"))
        );
        assert_eq!(
            Timezone::IndianReunion.from_local(naive("2026-10-25 02:30")),
            LocalTime::Single(utc("2026-10-24T22:30:00Z"))
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            Timezone::parse("europe/paris").unwrap(),
            Timezone::EuropeParis
        );
        assert_eq!(Timezone::parse("UTC").unwrap(), Timezone::Utc);
        let err = Timezone::parse("Mars/Olympus").unwrap_err().to_string();
        assert!(
            err.contains("Mars/Olympus") && err.contains("Europe/Paris"),
            "{err}"
        );
    }
}
