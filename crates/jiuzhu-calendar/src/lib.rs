//! The working-day calendar and deadlines counted on it. Which days are public holidays and
//! which weekend days are working days instead (调休) changes every year by State Council
//! notice, so the calendar is data (`policy/calendar/cn-workdays.toml`), one table per year.
//! A year after the last notice is computed *provisionally* from the statutory holiday rules
//! in force (Gregorian, lunar and solar-term anchors, days made up in lieu), and every answer
//! over such a year says it is provisional; only a year before the rules is not covered at all,
//! and that is an error naming the year, never a guess.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use jiuzhu_config::{ConfigError, Layers};
use serde::Deserialize;

/// The calendar shipped with this build.
pub const SHIPPED: &str = include_str!("../../../policy/calendar/cn-workdays.toml");

/// The last year a provisional calendar is computed for (the solar-term formula's range).
const LAST_RULED_YEAR: i32 = 2099;

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

/// One statutory holiday: where it is anchored and how many days off it gives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayRule {
    name: String,
    /// "MM-DD" of the Gregorian year.
    on: Option<String>,
    /// "MM-DD" of the lunar year that starts in the Gregorian year, or "eve".
    lunar: Option<String>,
    /// The only solar term a holiday falls on: "qingming".
    solar_term: Option<String>,
    days: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Rules {
    decree: String,
    from_year: Option<i32>,
    in_lieu: bool,
    holidays: Vec<HolidayRule>,
}

impl jiuzhu_config::Validate for Rules {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// How the calendar knows a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// From the State Council's notice for the year.
    Official,
    /// Computed from the statutory rules: swapped weekends are not foreseen.
    Provisional,
    /// Neither: counting in it is an error.
    None,
}

/// A due date, and whether a provisional year was counted to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub date: NaiveDate,
    pub provisional: bool,
}

/// Working days and days off: official years from the notices, later years from the rules.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    years: BTreeSet<i32>,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    /// Years computed from the rules, and their days off.
    provisional_years: BTreeSet<i32>,
    provisional_holidays: BTreeSet<NaiveDate>,
    decree: String,
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

/// Month and day of "MM-DD".
fn month_day(key: &str, text: &str) -> Result<(u8, u8), CalendarError> {
    text.split_once('-')
        .and_then(|(m, d)| Some((m.parse::<u8>().ok()?, d.parse::<u8>().ok()?)))
        .filter(|(m, d)| (1..=12).contains(m) && (1..=31).contains(d))
        .ok_or_else(|| CalendarError::Invalid {
            key: key.to_owned(),
            reason: format!("`{text}` is not MM-DD"),
        })
}

/// The Gregorian day of lunar `month`/`day` (regular, not leap, month) of the lunar year that
/// begins in Gregorian `year`.
fn lunar_day(year: i32, month: u8, day: u8) -> Option<NaiveDate> {
    use icu_calendar::{Date, cal::Iso, types::Month};
    let lunar = Date::try_new_chinese_traditional(year, Month::new(month), day).ok()?;
    let iso = lunar.to_calendar(Iso);
    NaiveDate::from_ymd_opt(
        iso.year().extended_year(),
        u32::from(iso.month().ordinal),
        u32::from(iso.day_of_month().0),
    )
}

/// The Qingming solar term (the sun at 15°) in Beijing time, 2001–2099: the classical
/// day-of-month formula ⌊Y·0.2422 + 4.81⌋ − ⌊Y/4⌋, which agrees with an ephemeris over that range.
fn qingming(year: i32) -> Option<NaiveDate> {
    if !(2001..=LAST_RULED_YEAR).contains(&year) {
        return None;
    }
    let y = year % 100;
    // Integer form of ⌊y·0.2422 + 4.81⌋, exact for y < 100.
    let day = (y * 2422 + 48100) / 10000 - y / 4;
    NaiveDate::from_ymd_opt(year, 4, u32::try_from(day).ok()?)
}

impl HolidayRule {
    fn first_day(&self, key: &str, year: i32) -> Result<NaiveDate, CalendarError> {
        let invalid = |reason: String| CalendarError::Invalid {
            key: key.to_owned(),
            reason,
        };
        let anchors = [&self.on, &self.lunar, &self.solar_term]
            .iter()
            .filter(|a| a.is_some())
            .count();
        if anchors != 1 {
            return Err(invalid(format!(
                "{} needs exactly one of `on`, `lunar` and `solar_term`",
                self.name
            )));
        }
        let day = if let Some(on) = &self.on {
            let (m, d) = month_day(key, on)?;
            NaiveDate::from_ymd_opt(year, u32::from(m), u32::from(d))
        } else if let Some(lunar) = &self.lunar {
            if lunar == "eve" {
                lunar_day(year, 1, 1).and_then(|d| d.pred_opt())
            } else {
                let (m, d) = month_day(key, lunar)?;
                lunar_day(year, m, d)
            }
        } else {
            match self.solar_term.as_deref() {
                Some("qingming") => qingming(year),
                other => {
                    return Err(invalid(format!(
                        "solar term `{}` is not known (only qingming)",
                        other.unwrap_or_default()
                    )));
                }
            }
        };
        day.ok_or_else(|| invalid(format!("{} cannot be placed in {year}", self.name)))
    }
}

impl Rules {
    /// The days off of `year` by the rules: every statutory day, and with `in_lieu` one more
    /// working day for each statutory day on a weekend or on another holiday.
    fn days_off(&self, year: i32) -> Result<BTreeSet<NaiveDate>, CalendarError> {
        let mut off = BTreeSet::new();
        let mut owed: Vec<NaiveDate> = Vec::new();
        for (i, rule) in self.holidays.iter().enumerate() {
            let key = format!("rules.holidays[{i}]");
            let first = rule.first_day(&key, year)?;
            for day in first.iter_days().take(rule.days as usize) {
                if !off.insert(day) || is_weekend(day) {
                    owed.push(day);
                }
            }
        }
        if self.in_lieu {
            owed.sort();
            for from in owed {
                let mut day = from;
                while off.contains(&day) || is_weekend(day) {
                    day = day.succ_opt().unwrap_or(day);
                    if day.year() != year {
                        break;
                    }
                }
                off.insert(day);
            }
        }
        Ok(off)
    }
}

impl Calendar {
    /// Parses the calendar data (see `SHIPPED` for the format).
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let layers = Layers::from_toml(text)?;
        let Years(years) = layers.section("years")?;
        let rules: Rules = layers.section("rules")?;
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
        if let Some(from) = rules.from_year {
            if rules.holidays.is_empty() {
                return Err(CalendarError::Invalid {
                    key: "rules.holidays".to_owned(),
                    reason: "rules need at least one holiday".to_owned(),
                });
            }
            for (i, rule) in rules.holidays.iter().enumerate() {
                if !(1..=10).contains(&rule.days) {
                    return Err(CalendarError::Invalid {
                        key: format!("rules.holidays[{i}].days"),
                        reason: format!("{} days off for {} is not 1 to 10", rule.days, rule.name),
                    });
                }
            }
            for year in from.max(2001)..=LAST_RULED_YEAR {
                if calendar.years.contains(&year) {
                    continue;
                }
                calendar.provisional_holidays.extend(rules.days_off(year)?);
                calendar.provisional_years.insert(year);
            }
            calendar.decree = rules.decree;
        }
        Ok(calendar)
    }

    /// The calendar shipped with this build.
    pub fn shipped() -> Result<Self, CalendarError> {
        Self::parse(SHIPPED)
    }

    /// The decree the provisional years follow.
    pub fn decree(&self) -> &str {
        &self.decree
    }

    /// The years the notices cover.
    pub fn official_years(&self) -> Vec<i32> {
        self.years.iter().copied().collect()
    }

    pub fn coverage(&self, year: i32) -> Coverage {
        if self.years.contains(&year) {
            Coverage::Official
        } else if self.provisional_years.contains(&year) {
            Coverage::Provisional
        } else {
            Coverage::None
        }
    }

    fn covered(&self) -> String {
        let all: BTreeSet<i32> = self.years.union(&self.provisional_years).copied().collect();
        match (all.first(), all.last()) {
            (Some(first), Some(last)) if first == last => first.to_string(),
            (Some(first), Some(last)) => format!("{first} to {last}"),
            _ => "no year".to_owned(),
        }
    }

    fn check(&self, day: NaiveDate) -> Result<Coverage, CalendarError> {
        match self.coverage(day.year()) {
            Coverage::None => Err(CalendarError::YearNotCovered {
                year: day.year(),
                covered: self.covered(),
            }),
            known => Ok(known),
        }
    }

    pub fn is_working_day(&self, day: NaiveDate) -> Result<bool, CalendarError> {
        Ok(match self.check(day)? {
            Coverage::Provisional => !is_weekend(day) && !self.provisional_holidays.contains(&day),
            _ if self.workdays.contains(&day) => true,
            _ => !is_weekend(day) && !self.holidays.contains(&day),
        })
    }

    /// Whether any day after `from` up to `to` lies in a provisional year.
    pub fn provisional_between(&self, from: NaiveDate, to: NaiveDate) -> bool {
        (from.year()..=to.year()).any(|y| self.coverage(y) == Coverage::Provisional)
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

    /// [`Calendar::add_working_days`], saying whether a provisional year was counted.
    pub fn due(&self, start: NaiveDate, n: u32) -> Result<Due, CalendarError> {
        let date = self.add_working_days(start, n)?;
        Ok(Due {
            date,
            provisional: self.provisional_between(start, date),
        })
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
    fn a_year_before_the_rules_and_the_notices_is_an_error_naming_it() {
        let calendar = shipped();
        let error = calendar.add_working_days(day("2024-12-20"), 3);
        assert_eq!(
            error,
            Err(CalendarError::YearNotCovered {
                year: 2024,
                covered: "2025 to 2099".to_owned(),
            })
        );
        assert!(
            error
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("does not cover 2024")
        );
        assert_eq!(calendar.coverage(2100), Coverage::None);
    }

    #[test]
    fn a_year_without_its_notice_is_computed_from_the_rules_and_marked_provisional() {
        let calendar = shipped();
        assert_eq!(calendar.coverage(2026), Coverage::Official);
        assert_eq!(calendar.coverage(2027), Coverage::Provisional);
        let off = |text: &str| calendar.is_working_day(day(text)) == Ok(false);
        // 2027: New Year's Day (Friday); Spring Festival from the eve, Friday 5 February, with
        // Saturday and Sunday made up on Tuesday 9 and Wednesday 10; Qingming Monday 5 April;
        // Labour Day on a weekend, made up on 3 and 4 May; Dragon Boat 9 June; Mid-Autumn
        // 15 September; National Day 1-3 October with the weekend made up on 4 and 5.
        for holiday in [
            "2027-01-01",
            "2027-02-05",
            "2027-02-08",
            "2027-02-09",
            "2027-02-10",
            "2027-04-05",
            "2027-05-03",
            "2027-05-04",
            "2027-06-09",
            "2027-09-15",
            "2027-10-01",
            "2027-10-04",
            "2027-10-05",
        ] {
            assert!(off(holiday), "{holiday} should be a day off");
        }
        for working in [
            "2027-01-04",
            "2027-01-05",
            "2027-02-11",
            "2027-05-05",
            "2027-10-06",
        ] {
            assert_eq!(calendar.is_working_day(day(working)), Ok(true), "{working}");
        }
        // 2028: Mid-Autumn falls on 3 October, inside National Day: the day is made up.
        assert!(off("2028-10-04") && off("2028-10-05"));
        assert_eq!(calendar.is_working_day(day("2028-10-06")), Ok(true));
        // A deadline counted into 2027 says so; one inside 2026 does not.
        let across = calendar.due(day("2026-12-24"), 10);
        assert_eq!(
            across,
            Ok(Due {
                date: day("2027-01-08"),
                provisional: true
            })
        );
        assert_eq!(
            calendar.due(day("2026-12-01"), 5).map(|d| d.provisional),
            Ok(false)
        );
        // The turn of 2027 to 2028 (New Year's Day on a Saturday, made up on Monday 3
        // January) and a date far ahead are counted too.
        assert_eq!(
            calendar.add_working_days(day("2027-12-30"), 2),
            Ok(day("2028-01-04"))
        );
        assert!(calendar.add_working_days(day("2031-06-30"), 10).is_ok());
    }

    #[test]
    fn the_rules_give_a_subset_of_each_published_notice_s_days_off() {
        // The notices add swapped weekends to the statutory days; they never take one away.
        let calendar = shipped();
        let rules: Rules = Layers::from_toml(SHIPPED)
            .and_then(|l| l.section("rules"))
            .unwrap_or_default();
        for year in calendar.official_years() {
            let computed = rules.days_off(year).unwrap_or_default();
            assert!(computed.len() >= 13, "{year}: {computed:?}");
            for off in computed {
                assert_eq!(calendar.is_working_day(off), Ok(false), "{off} in {year}");
            }
        }
    }

    #[test]
    fn rules_are_checked_with_their_key() {
        let both = "[years.2025]\nholidays = []\nworkdays = []\n[rules]\nfrom_year = 2025\n\
                    [[rules.holidays]]\nname = \"x\"\non = \"01-01\"\nlunar = \"01-01\"\ndays = 1\n";
        assert!(matches!(
            Calendar::parse(both),
            Err(CalendarError::Invalid { key, .. }) if key == "rules.holidays[0]"
        ));
        let long = both
            .replace("lunar = \"01-01\"\n", "")
            .replace("days = 1", "days = 40");
        assert!(matches!(
            Calendar::parse(&long),
            Err(CalendarError::Invalid { key, .. }) if key == "rules.holidays[0].days"
        ));
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
            let start = day("2025-01-01") + Days::new(offset * 3);
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
