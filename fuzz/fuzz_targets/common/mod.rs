//! Inputs shared by the targets: a field is either arbitrary text or text built from valid
//! parts (a real date in one of the written forms, a resident id with a right check character,
//! a GB/T 2260 code), so that the accepting paths and their invariants are reached often.
#![allow(dead_code)]

use arbitrary::Arbitrary;
use chrono::{Datelike, Days, NaiveDate};
use jiuzhu_identity::{ResidentId, WRITTEN_DATE_FORMATS, all_regions};

/// A date from any day number chrono can represent (years -262143 to 262142).
pub fn any_date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days).unwrap_or(NaiveDate::MIN)
}

/// A date between 1900 and 2079.
pub fn recent_date(days: u16) -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1)
        .and_then(|d| d.checked_add_days(Days::new(u64::from(days))))
        .unwrap_or_default()
}

#[derive(Debug, Arbitrary)]
pub enum DateText<'a> {
    Written(&'a str),
    /// A recent date in one of the written forms.
    Recent {
        days: u16,
        form: u8,
    },
    /// Any date as YYYY-MM-DD (years beyond four digits get a sign).
    Iso(i32),
}

impl DateText<'_> {
    pub fn render(&self) -> String {
        match self {
            Self::Written(text) => (*text).to_owned(),
            Self::Recent { days, form } => {
                let format = WRITTEN_DATE_FORMATS[usize::from(*form) % WRITTEN_DATE_FORMATS.len()];
                recent_date(*days).format(format).to_string()
            }
            Self::Iso(days) => any_date(*days).format("%Y-%m-%d").to_string(),
        }
    }
}

/// The code of a region of the shipped table.
pub fn known_region(index: u16) -> &'static str {
    let regions = all_regions();
    regions
        .get(usize::from(index) % regions.len().max(1))
        .map_or("110105", |r| r.code)
}

#[derive(Debug, Arbitrary)]
pub enum RegionText<'a> {
    Written(&'a str),
    Known(u16),
}

impl RegionText<'_> {
    pub fn render(&self) -> String {
        match self {
            Self::Written(text) => (*text).to_owned(),
            Self::Known(index) => known_region(*index).to_owned(),
        }
    }
}

#[derive(Debug, Arbitrary)]
pub enum IdText<'a> {
    Written(&'a str),
    /// A valid number; the old 15-digit form for a birth in the 1900s when `old_form`; a space
    /// written at position `space` (none when 0); `x` in lower case when `lower`.
    Composed {
        region: u16,
        /// Any region-like code instead of a known one.
        region_code: Option<u32>,
        birth: u16,
        sequence: u16,
        old_form: bool,
        space: u8,
        lower: bool,
    },
}

impl IdText<'_> {
    pub fn render(&self) -> String {
        match self {
            Self::Written(text) => (*text).to_owned(),
            Self::Composed {
                region,
                region_code,
                birth,
                sequence,
                old_form,
                space,
                lower,
            } => {
                let code = region_code.map_or_else(
                    || known_region(*region).to_owned(),
                    |c| format!("{:06}", c % 1_000_000),
                );
                let birth = recent_date(*birth);
                let Ok(id) = ResidentId::compose(&code, birth, *sequence) else {
                    return String::new();
                };
                let mut text = if *old_form && (1900..2000).contains(&birth.year()) {
                    format!("{}{}", &id.as_str()[..6], &id.as_str()[8..17])
                } else {
                    id.as_str().to_owned()
                };
                if *lower {
                    text = text.to_ascii_lowercase();
                }
                let at = usize::from(*space) % (text.len() + 1);
                if *space != 0 {
                    text.insert(at, ' ');
                }
                text
            }
        }
    }
}

/// Statement lines without their line numbers (what a written-back statement must read as).
pub fn without_lines(
    lines: &[jiuzhu_payments::reconciliation::StatementLine],
) -> Vec<jiuzhu_payments::reconciliation::StatementLine> {
    lines
        .iter()
        .map(|l| jiuzhu_payments::reconciliation::StatementLine {
            line: 0,
            ..l.clone()
        })
        .collect()
}

/// What every accepted statement satisfies, CSV or MT940: positive amounts, lines after
/// `first_line` in order, trimmed non-empty reference and key, and a total that fits in `i64`.
pub fn check_accepted_lines(
    lines: &[jiuzhu_payments::reconciliation::StatementLine],
    first_line: i64,
) {
    let mut last = first_line;
    for line in lines {
        assert!(line.fen > 0, "{line:?}");
        assert!(line.line > last, "{line:?} after line {last}");
        last = line.line;
        for text in [&line.bank_reference, &line.idempotency_key] {
            assert!(!text.is_empty());
            assert_eq!(text.as_str(), text.trim());
        }
    }
    assert!(
        lines
            .iter()
            .try_fold(0i64, |total, l| total.checked_add(l.fen))
            .is_some(),
        "the accepted lines cannot be totalled"
    );
}
