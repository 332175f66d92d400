//! `parse_written_date` (crates/jiuzhu-identity): dates as people write them in department
//! files and requests (`WRITTEN_DATE_FORMATS`). Contract: never panics; an accepted date,
//! written back as YYYY-MM-DD (what the CLI sends and the registry stores), reads back as the
//! same date with the registry's strict `%Y-%m-%d` parse; written in each accepted form it reads
//! back the same; linkage's `normalise::date` reads the same date from the same text.
#![no_main]

use chrono::{Datelike, NaiveDate};
use jiuzhu_identity::{WRITTEN_DATE_FORMATS, parse_written_date};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Some(date) = parse_written_date(text) else {
        return;
    };
    let iso = date.format("%Y-%m-%d").to_string();
    assert_eq!(
        NaiveDate::parse_from_str(&iso, "%Y-%m-%d").ok(),
        Some(date),
        "{text:?} read as {iso}"
    );
    assert_eq!(
        parse_written_date(&iso),
        Some(date),
        "{text:?} read as {iso}"
    );
    for format in WRITTEN_DATE_FORMATS {
        // Without separators the year needs its four digits to be told from the month.
        if format == "%Y%m%d" && !(0..=9999).contains(&date.year()) {
            continue;
        }
        let written = date.format(format).to_string();
        assert_eq!(
            parse_written_date(&written),
            Some(date),
            "{format}: {written}"
        );
    }
    assert_eq!(
        jiuzhu_linkage::normalise::date(text),
        Some(date),
        "{text:?}"
    );
});
