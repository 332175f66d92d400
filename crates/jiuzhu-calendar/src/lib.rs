//! The official working-day calendar and deadlines counted on it. Which days are public
//! holidays and which weekend days are working days instead (调休) changes every year by State
//! Council notice, so the calendar is data (`policy/calendar/cn-workdays.toml`), one table per
//! year; a date in a year the data does not cover is an error naming that year, never a guess.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use jiuzhu_config::{ConfigError, Layers};
use serde::Deserialize;

/// The calendar shipped with this build.
pub const SHIPPED: &str = include_str!("../../../policy/calendar/cn-workdays.toml");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "the working-day calendar does not cover {year} (it covers {covered}); add the year's \
         holiday notice to policy/calendar/cn-workdays.toml"
    )]
    YearNotCovered { year: i32, covered: String },
    #[error("calendar {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl From<ConfigError> for CalendarError {
    fn from(error: ConfigError) -> Self {
        CalendarError::Invalid {
            key: "calendar".to_owned(),
            reason: error.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearData {
    holidays: Vec<String>,
    workdays: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
struct Years(BTreeMap<String, YearData>);

// Checked while building the calendar, where the dates are parsed.
impl jiuzhu_config::Validate for Years {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Working days and days off, for the years the data covers.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    years: BTreeSet<i32>,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
}

fn dates(key: &str, year: i32, entry: &str) -> Result<Vec<NaiveDate>, CalendarError> {
    let invalid = |reason: String| CalendarError::Invalid {
        key: key.to_owned(),
        reason,
    };
    let parse = |text: &str| {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| invalid(format!("`{text}` is not a YYYY-MM-DD date")))
    };
    let (first, last) = match entry.split_once("..") {
        Some((first, last)) => (parse(first)?, parse(last)?),
        None => {
            let day = parse(entry)?;
            (day, day)
        }
    };
    if first > last || first.year() != year || last.year() != year {
        return Err(invalid(format!(
            "`{entry}` must be a date or an ordered range within {year}"
        )));
    }
    Ok(first.iter_days().take_while(|d| *d <= last).collect())
}

impl Calendar {
    /// Parses the calendar data (see `SHIPPED` for the format).
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let Years(years) = Layers::from_toml(text)?.section("years")?;
        let mut calendar = Calendar::default();
        for (name, data) in years {
            let year: i32 = name.parse().map_err(|_| CalendarError::Invalid {
                key: format!("years.{name}"),
                reason: "is not a year".to_owned(),
            })?;
            for entry in &data.holidays {
                calendar
                    .holidays
                    .extend(dates(&format!("years.{name}.holidays"), year, entry)?);
            }
            for entry in &data.workdays {
                for day in dates(&format!("years.{name}.workdays"), year, entry)? {
                    if !is_weekend(day) {
                        return Err(CalendarError::Invalid {
                            key: format!("years.{name}.workdays"),
                            reason: format!("{day} is a weekday already"),
                        });
                    }
                    if calendar.holidays.contains(&day) {
                        return Err(CalendarError::Invalid {
                            key: format!("years.{name}.workdays"),
                            reason: format!("{day} is also listed as a holiday"),
                        });
                    }
                    calendar.workdays.insert(day);
                }
            }
            calendar.years.insert(year);
        }
        Ok(calendar)
    }

    /// The calendar shipped with this build.
    pub fn shipped() -> Result<Self, CalendarError> {
        Self::parse(SHIPPED)
    }

    fn covered(&self) -> String {
        match (self.years.first(), self.years.last()) {
            (Some(first), Some(last)) if first == last => first.to_string(),
            (Some(first), Some(last)) => format!("{first} to {last}"),
            _ => "no year".to_owned(),
        }
    }

    fn check(&self, day: NaiveDate) -> Result<(), CalendarError> {
        if self.years.contains(&day.year()) {
            Ok(())
        } else {
            Err(CalendarError::YearNotCovered {
                year: day.year(),
                covered: self.covered(),
            })
        }
    }

    pub fn is_working_day(&self, day: NaiveDate) -> Result<bool, CalendarError> {
        self.check(day)?;
        Ok(if self.workdays.contains(&day) {
            true
        } else {
            !is_weekend(day) && !self.holidays.contains(&day)
        })
    }

    /// The day `n` working days after `start` (the start day itself does not count; `n = 0` is
    /// the first working day from `start` on, for something due "at once").
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        let mut day = start;
        if n == 0 {
            while !self.is_working_day(day)? {
                day = next(day, &self.covered())?;
            }
            return Ok(day);
        }
        let mut left = n;
        while left > 0 {
            day = next(day, &self.covered())?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }

    /// Working days after `from` up to and including `to` (0 when `to` is not after `from`).
    pub fn working_days_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<u32, CalendarError> {
        let mut count = 0;
        let mut day = from;
        while day < to {
            day = next(day, &self.covered())?;
            if self.is_working_day(day)? {
                count += 1;
            }
        }
        Ok(count)
    }
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next(day: NaiveDate, covered: &str) -> Result<NaiveDate, CalendarError> {
    day.checked_add_days(Days::new(1))
        .ok_or_else(|| CalendarError::YearNotCovered {
            year: day.year() + 1,
            covered: covered.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    fn shipped() -> Calendar {
        Calendar::shipped().unwrap_or_default()
    }

    #[test]
    fn the_shipped_calendar_knows_holidays_and_make_up_working_weekends() {
        let calendar = shipped();
        // National Day week off, the Saturday after it a working day.
        assert_eq!(calendar.is_working_day(day("2026-10-05")), Ok(false));
        assert_eq!(calendar.is_working_day(day("2026-10-10")), Ok(true));
        // An ordinary Saturday, an ordinary Monday.
        assert_eq!(calendar.is_working_day(day("2026-11-28")), Ok(false));
        assert_eq!(calendar.is_working_day(day("2026-11-30")), Ok(true));
    }

    #[test]
    fn ten_working_days_across_the_spring_festival() {
        let calendar = shipped();
        // From Thursday 2026-02-12: Fri 13 (1), Sat 14 make-up (2), the festival 15–23, Tue 24
        // to Fri 27 (3–6), Sat 28 make-up (7), Mon 2 March (8), Tue 3 (9), Wed 4 (10).
        let due = calendar.add_working_days(day("2026-02-12"), 10);
        assert_eq!(due, Ok(day("2026-03-04")));
        assert_eq!(
            calendar.working_days_between(day("2026-02-12"), day("2026-03-04")),
            Ok(10)
        );
        // Something due at once on a holiday is due on the next working day.
        assert_eq!(
            calendar.add_working_days(day("2026-02-15"), 0),
            Ok(day("2026-02-24"))
        );
    }

    #[test]
    fn a_year_the_data_does_not_cover_is_an_error_naming_it() {
        let calendar = shipped();
        let error = calendar.add_working_days(day("2026-12-24"), 10);
        assert_eq!(
            error,
            Err(CalendarError::YearNotCovered {
                year: 2027,
                covered: "2025 to 2026".to_owned(),
            })
        );
        assert!(
            error
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("does not cover 2027")
        );
    }

    #[test]
    fn bad_data_is_refused_with_the_key() {
        let weekday_as_workday = "[years.2026]\nholidays = []\nworkdays = [\"2026-11-30\"]\n";
        assert!(matches!(
            Calendar::parse(weekday_as_workday),
            Err(CalendarError::Invalid { key, .. }) if key == "years.2026.workdays"
        ));
        let other_year = "[years.2026]\nholidays = [\"2025-12-31..2026-01-01\"]\nworkdays = []\n";
        assert!(matches!(
            Calendar::parse(other_year),
            Err(CalendarError::Invalid { key, .. }) if key == "years.2026.holidays"
        ));
    }

    proptest! {
        #[test]
        fn a_deadline_is_a_working_day_exactly_n_working_days_on(
            offset in 0u64..600, n in 1u32..40
        ) {
            let calendar = shipped();
            let start = day("2025-01-01") + Days::new(offset);
            if let Ok(due) = calendar.add_working_days(start, n) {
                prop_assert_eq!(calendar.is_working_day(due), Ok(true));
                prop_assert!(due > start);
                prop_assert_eq!(calendar.working_days_between(start, due), Ok(n));
                // Never sooner than n calendar days, never on the day before a working day.
                prop_assert!(due >= start + Days::new(u64::from(n)));
            }
        }
    }
}
