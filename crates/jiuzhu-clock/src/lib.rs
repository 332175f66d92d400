//! The clock every command, job and consumer is given instead of reading the system's own, so
//! that what a date decides (a wage year, a deadline, an instalment day) can be tested and
//! drilled on any date. In production it is the system clock. `[clock] start` sets it to begin
//! at a given instant when the process starts and run on from there (a drill of January in
//! December); tests also pin it with [`Clock::fixed`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use jiuzhu_config::{ConfigError, Validate};
use serde::Deserialize;

pub use jiuzhu_proto::time::beijing_date;

#[derive(Debug)]
enum Source {
    System,
    /// Starts at `start` when created and runs on at the system's pace.
    Started {
        start: DateTime<Utc>,
        origin: Instant,
    },
    /// Stands still (tests) until moved.
    Fixed {
        micros: AtomicI64,
    },
}

/// A clock to pass to whatever needs "now". Cheap to clone; clones share the same time.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Source::System))
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Source::Started {
            start,
            origin: Instant::now(),
        }))
    }

    /// A clock that stands at `at` until [`Clock::set`] moves it.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Source::Fixed {
            micros: AtomicI64::new(at.timestamp_micros()),
        }))
    }

    /// A fixed clock at 09:00 Beijing time on `day`.
    pub fn fixed_on(day: NaiveDate) -> Self {
        Self::fixed(morning(day))
    }

    /// Moves a fixed clock (other clocks ignore it).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Source::Fixed { micros } = &*self.0 {
            micros.store(at.timestamp_micros(), Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Source::System => Utc::now(),
            Source::Started { start, origin } => {
                let elapsed = chrono::Duration::from_std(origin.elapsed()).unwrap_or_default();
                *start + elapsed
            }
            Source::Fixed { micros } => {
                DateTime::from_timestamp_micros(micros.load(Ordering::SeqCst)).unwrap_or_default()
            }
        }
    }

    /// Today in Beijing time.
    pub fn today(&self) -> NaiveDate {
        beijing_date(self.now())
    }

    /// Whether this is the system clock (anything else is a drill or a test, worth a warning).
    pub fn is_system(&self) -> bool {
        matches!(&*self.0, Source::System)
    }
}

/// 09:00 Beijing time on `day`: office hours, well inside the day in UTC too.
pub fn morning(day: NaiveDate) -> DateTime<Utc> {
    // Beijing is UTC+8 all year: 09:00 there is 01:00 UTC.
    day.and_time(NaiveTime::from_hms_opt(1, 0, 0).unwrap_or_default())
        .and_utc()
}

/// `[clock]`: the system clock unless `start` is set. `start` is for drills and tests only
/// (never in production): an RFC 3339 instant, or a date meaning 09:00 Beijing time that day.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockSettings {
    pub start: Option<String>,
}

impl ClockSettings {
    fn parse_start(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .ok()
                    .map(morning)
            })
    }

    /// The clock these settings describe (validated settings always give one).
    pub fn clock(&self) -> Clock {
        match self.start.as_deref().and_then(Self::parse_start) {
            Some(start) => Clock::starting_at(start),
            None => Clock::system(),
        }
    }
}

impl Validate for ClockSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        match &self.start {
            Some(text) if Self::parse_start(text).is_none() => Err(ConfigError::invalid(
                format!("{prefix}.start"),
                format!("`{text}` is neither an RFC 3339 instant nor a YYYY-MM-DD date"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn a_fixed_clock_stands_until_moved_and_its_clones_follow() {
        let clock = Clock::fixed_on(day("2027-01-05"));
        let clone = clock.clone();
        assert_eq!(clock.today(), day("2027-01-05"));
        clock.set(morning(day("2031-06-30")));
        assert_eq!(clone.today(), day("2031-06-30"));
        assert!(!clock.is_system());
    }

    #[test]
    fn beijing_dates_turn_at_sixteen_hundred_utc() {
        let evening = DateTime::parse_from_rfc3339("2027-12-31T16:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(beijing_date(evening), day("2028-01-01"));
    }

    #[test]
    fn a_started_clock_begins_at_its_start_and_runs_on() {
        let settings = ClockSettings {
            start: Some("2027-01-05".to_owned()),
        };
        assert!(settings.validate("clock").is_ok());
        let clock = settings.clock();
        let first = clock.now();
        assert_eq!(clock.today(), day("2027-01-05"));
        assert!(first >= morning(day("2027-01-05")));
        assert!(clock.now() >= first);
        let instant = ClockSettings {
            start: Some("2028-01-01T00:30:00+08:00".to_owned()),
        };
        assert_eq!(instant.clock().today(), day("2028-01-01"));
    }

    #[test]
    fn a_bad_start_names_the_key() {
        let settings = ClockSettings {
            start: Some("next tuesday".to_owned()),
        };
        let error = settings
            .validate("clock")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("`clock.start`"), "{error}");
        assert!(ClockSettings::default().clock().is_system());
    }
}
