//! The wage table (`policy/decisions/wages.csv`): the average monthly wage of employees per
//! region and year, the base of the relief cap. Every figure names the bulletin it comes from
//! and whether it is official, provisional or illustrative. The cap of a decision uses the
//! previous year's figure; statistics bureaus publish it around May, so until then the latest
//! published year stands in, and the decision records which year, region level and source it
//! used. A proposal is never refused because next year's bulletin is not out.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

/// The national figure's region code in the table.
pub const NATIONAL: &str = "00";

/// How far back a missing year may fall to an earlier published one.
const YEARS_BACK: i32 = 5;

/// How much a figure can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WageStatus {
    /// Read in the statistics bureau's published bulletin.
    Official,
    /// Published as preliminary, or derived from an official figure of a related series.
    Provisional,
    /// No source found: an estimate of the right order, to be replaced.
    Illustrative,
}

impl WageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WageStatus::Official => "official",
            WageStatus::Provisional => "provisional",
            WageStatus::Illustrative => "illustrative",
        }
    }
}

/// Which level of region a figure is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegionLevel {
    National,
    Province,
    Prefecture,
    County,
}

impl RegionLevel {
    fn of(code: &str) -> Option<Self> {
        match code.len() {
            _ if code == NATIONAL => Some(RegionLevel::National),
            2 => Some(RegionLevel::Province),
            4 => Some(RegionLevel::Prefecture),
            6 => Some(RegionLevel::County),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::National => "national",
            RegionLevel::Province => "province",
            RegionLevel::Prefecture => "prefecture",
            RegionLevel::County => "county",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WageFigure {
    pub region: String,
    pub level: RegionLevel,
    pub year: i32,
    pub monthly_fen: i64,
    pub source: String,
    pub status: WageStatus,
    /// Line of the file it was read from.
    pub line: u64,
}

/// The wage base a decision uses, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WageBase {
    pub figure: WageFigure,
    /// The year the rule asks for (the previous year); `figure.year` is earlier when that
    /// year's bulletin is not out yet.
    pub wanted_year: i32,
}

/// Average monthly wages per region prefix and year, in fen.
#[derive(Debug, Clone, Default)]
pub struct Wages {
    by_region_year: BTreeMap<(String, i32), WageFigure>,
}

#[derive(Debug, Deserialize)]
struct WageRow {
    region: String,
    year: i32,
    average_monthly_wage_fen: i64,
    source: String,
    status: WageStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WageError {
    #[error("wages.csv line {line}: {reason}")]
    Invalid { line: u64, reason: String },
    #[error(
        "no average wage for region {region} in {year} or the {YEARS_BACK} years before it, \
         neither for its province nor nationally (policy/decisions/wages.csv)"
    )]
    Missing { region: String, year: i32 },
}

impl Wages {
    pub fn parse(text: &str) -> Result<Self, WageError> {
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut wages = Wages::default();
        let headers = reader
            .headers()
            .cloned()
            .map_err(|error| WageError::Invalid {
                line: 1,
                reason: error.to_string(),
            })?;
        let mut record = csv::StringRecord::new();
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|error| WageError::Invalid {
                    line: error.position().map_or(0, |p| p.line()),
                    reason: error.to_string(),
                })?;
            if !more {
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            let invalid = |reason: String| WageError::Invalid { line, reason };
            let row: WageRow = record
                .deserialize(Some(&headers))
                .map_err(|error| invalid(error.to_string()))?;
            let level = RegionLevel::of(&row.region)
                .filter(|_| row.region.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    invalid(format!(
                        "region `{}` is not {NATIONAL} (national) or a 2, 4 or 6 digit code",
                        row.region
                    ))
                })?;
            if !(1990..=2100).contains(&row.year) {
                return Err(invalid(format!("year {} is not plausible", row.year)));
            }
            if row.average_monthly_wage_fen <= 0 {
                return Err(invalid(
                    "average_monthly_wage_fen must be positive".to_owned(),
                ));
            }
            if row.source.trim().is_empty() {
                return Err(invalid(
                    "source is required (the bulletin the figure comes from, or how it was \
                     estimated)"
                        .to_owned(),
                ));
            }
            let key = (row.region.clone(), row.year);
            if let Some(earlier) = wages.by_region_year.get(&key) {
                return Err(invalid(format!(
                    "region {} year {} is given already on line {}",
                    row.region, row.year, earlier.line
                )));
            }
            wages.by_region_year.insert(
                key,
                WageFigure {
                    region: row.region,
                    level,
                    year: row.year,
                    monthly_fen: row.average_monthly_wage_fen,
                    source: row.source,
                    status: row.status,
                    line,
                },
            );
        }
        Ok(wages)
    }

    /// The figure of exactly this region and year.
    pub fn figure(&self, region: &str, year: i32) -> Option<&WageFigure> {
        self.by_region_year.get(&(region.to_owned(), year))
    }

    /// Every figure, by region then year.
    pub fn figures(&self) -> impl Iterator<Item = &WageFigure> {
        self.by_region_year.values()
    }

    /// The base for `year`: that year's figure of the most specific region prefix of
    /// `region_code` (county, prefecture, province, then national); when no level has that
    /// year yet, the latest earlier year (up to five back) in the same order.
    pub fn for_year(&self, region_code: &str, year: i32) -> Result<WageBase, WageError> {
        let prefixes: Vec<&str> = [6, 4, 2]
            .into_iter()
            .filter_map(|len| region_code.get(..len))
            .chain(std::iter::once(NATIONAL))
            .collect();
        (0..=YEARS_BACK)
            .map(|back| year - back)
            .find_map(|candidate| {
                prefixes
                    .iter()
                    .find_map(|prefix| self.figure(prefix, candidate))
            })
            .map(|figure| WageBase {
                figure: figure.clone(),
                wanted_year: year,
            })
            .ok_or_else(|| WageError::Missing {
                region: region_code.to_owned(),
                year,
            })
    }

    /// The base of a decision taken on `day`: the previous year's wage of the jurisdiction.
    pub fn base_on(&self, region_code: &str, day: NaiveDate) -> Result<WageBase, WageError> {
        self.for_year(region_code, day.year() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "region,year,average_monthly_wage_fen,source,status\n";

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    fn table(rows: &str) -> Wages {
        Wages::parse(&format!("{HEAD}{rows}")).unwrap_or_default()
    }

    #[test]
    fn the_most_specific_region_of_the_wanted_year_wins() {
        let wages = table(
            "00,2025,1000000,national,official\n52,2025,893000,gz,official\n\
             5201,2025,950000,gy,provisional\n",
        );
        let base = wages.base_on("520102", day("2026-03-01"));
        assert_eq!(
            base.as_ref()
                .map(|b| (b.figure.region.as_str(), b.figure.monthly_fen)),
            Ok(("5201", 950_000))
        );
        assert_eq!(
            base.map(|b| (b.figure.level, b.figure.status)),
            Ok((RegionLevel::Prefecture, WageStatus::Provisional))
        );
        let province = wages.base_on("522325", day("2026-03-01"));
        assert_eq!(province.map(|b| b.figure.region), Ok("52".to_owned()));
        // A province with no figure of its own falls to the national one.
        let national = wages.base_on("370102", day("2026-03-01"));
        assert_eq!(
            national.map(|b| (b.figure.level, b.figure.monthly_fen)),
            Ok((RegionLevel::National, 1_000_000))
        );
    }

    #[test]
    fn an_unpublished_year_falls_to_the_latest_published_and_says_so() {
        let wages = table("52,2024,866600,gz 2024,official\n52,2025,893000,gz 2025,official\n");
        // 2027: the 2026 bulletin is not out; 2025 stands in.
        let base = wages.base_on("520102", day("2027-01-05"));
        assert_eq!(
            base.map(|b| (b.wanted_year, b.figure.year, b.figure.source)),
            Ok((2026, 2025, "gz 2025".to_owned()))
        );
        // 2031: still 2025, five years back at most.
        assert_eq!(
            wages
                .base_on("520102", day("2031-06-30"))
                .map(|b| b.figure.year),
            Ok(2025)
        );
        assert!(matches!(
            wages.base_on("520102", day("2032-01-01")),
            Err(WageError::Missing { year: 2031, .. })
        ));
    }

    #[test]
    fn bad_rows_name_their_line() {
        for (rows, needle) in [
            ("5x,2025,1,s,official\n", "not 00"),
            ("52,2025,0,s,official\n", "positive"),
            ("52,2025,10,,official\n", "source is required"),
            ("52,2025,10,s,guessed\n", "unknown variant"),
            ("52,2025,10,s,official\n52,2025,11,s,official\n", "line 2"),
        ] {
            let error = Wages::parse(&format!("{HEAD}{rows}"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(needle), "{rows}: {error}");
            assert!(error.starts_with("wages.csv line "), "{error}");
        }
    }
}
