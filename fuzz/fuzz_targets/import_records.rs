//! The department file reader of `jiuzhu registry import` (crates/jiuzhu-cli `records.rs`,
//! compiled in here from its source, since the CLI is a binary crate): CSV or JSON Lines,
//! decoded from UTF-8 or GB18030 as `records::open` does. Contract: never panics; every record
//! has a known gender and relationship, a birth date that is empty or a YYYY-MM-DD the
//! registry reads back unchanged, trimmed fields and a line number within the file; every
//! rejection says why. A well-formed file (written by a CSV or JSON writer with the format's
//! columns) is read without error, one item per row, each record holding what was written.
#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/jiuzhu-cli/src/records.rs"]
mod records;

use std::io::{BufRead, BufReader, Cursor};

use arbitrary::Arbitrary;
use chrono::NaiveDate;
use encoding_rs::{GB18030, UTF_8};
use encoding_rs_io::DecodeReaderBytesBuilder;
use jiuzhu_proto::registry::{Gender, PersonRecord, Relationship};
use libfuzzer_sys::fuzz_target;
use records::{COLUMNS, Item};

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// Any bytes, read as CSV or JSON Lines in UTF-8 or GB18030.
    Raw {
        jsonl: bool,
        gb18030: bool,
        bytes: &'a [u8],
    },
    /// Rows under a header of the format's columns (indexes into `COLUMNS`).
    Rows {
        jsonl: bool,
        columns: Vec<u8>,
        rows: Vec<Vec<&'a str>>,
    },
}

fn reader(bytes: Vec<u8>, gb18030: bool) -> Box<dyn BufRead + Send> {
    let decoded = DecodeReaderBytesBuilder::new()
        .encoding(Some(if gb18030 { GB18030 } else { UTF_8 }))
        .bom_override(true)
        .build(Cursor::new(bytes));
    Box::new(BufReader::new(decoded))
}

fn check_record(r: &PersonRecord) {
    assert!(
        [Gender::Unspecified, Gender::Male, Gender::Female]
            .iter()
            .any(|g| *g as i32 == r.gender)
    );
    assert!(Relationship::try_from(r.relationship).is_ok());
    if !r.birth_date.is_empty() {
        let date = NaiveDate::parse_from_str(&r.birth_date, "%Y-%m-%d");
        assert_eq!(
            date.map(|d| d.format("%Y-%m-%d").to_string()).as_deref(),
            Ok(r.birth_date.as_str()),
            "birth date {:?}",
            r.birth_date
        );
    }
    let region = r.region.as_ref().map_or("", |r| r.code.as_str());
    for text in [
        r.source_record_id.as_str(),
        &r.full_name,
        &r.resident_id,
        region,
        &r.township,
        &r.village,
        &r.address_text,
        &r.phone,
        &r.household_ref,
    ] {
        assert_eq!(text, text.trim());
    }
}

/// Reads a file, checking each item; the items and the reader's answer.
fn read(reader: Box<dyn BufRead + Send>, jsonl: bool) -> (Vec<Item>, bool) {
    let mut items = Vec::new();
    let ok = if jsonl {
        records::read_jsonl(reader, |item| {
            items.push(item);
            Ok(())
        })
        .is_ok()
    } else {
        records::read_csv(reader, |item| {
            items.push(item);
            Ok(())
        })
        .is_ok()
    };
    let mut last = 0;
    for item in &items {
        let line = match item {
            Item::Record(r) => {
                check_record(r);
                r.line
            }
            Item::Rejected(r) => {
                assert!(!r.reason.is_empty());
                r.line
            }
        };
        // CSV line 1 is the header; a CSV error may not know its line (0).
        assert!(line >= last || line == 0, "line {line} after {last}");
        if !jsonl && matches!(item, Item::Record(_)) {
            assert!(line >= 2, "record on line {line}");
        }
        last = last.max(line);
    }
    (items, ok)
}

fn write_rows(jsonl: bool, columns: &[&str], rows: &[Vec<&str>]) -> Vec<u8> {
    if jsonl {
        let mut out = String::new();
        for row in rows {
            let object: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(row)
                .map(|(c, v)| ((*c).to_owned(), serde_json::Value::from(*v)))
                .collect();
            out.push_str(&serde_json::Value::Object(object).to_string());
            out.push('\n');
        }
        out.into_bytes()
    } else {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let written = writer
            .write_record(columns)
            .and_then(|()| rows.iter().try_for_each(|row| writer.write_record(row)));
        assert!(written.is_ok());
        writer.into_inner().unwrap_or_default()
    }
}

fuzz_target!(|input: Input<'_>| {
    match input {
        Input::Raw {
            jsonl,
            gb18030,
            bytes,
        } => {
            read(reader(bytes.to_vec(), gb18030), jsonl);
        }
        Input::Rows {
            jsonl,
            columns,
            rows,
        } => {
            let mut names: Vec<&str> = vec!["source_record_id", "full_name", "region_code"];
            for c in columns {
                let name = COLUMNS[usize::from(c) % COLUMNS.len()];
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            // Rows of the header's width, none empty (an empty line is no row).
            let rows: Vec<Vec<&str>> = rows
                .into_iter()
                .map(|mut row| {
                    row.resize(names.len(), "");
                    row
                })
                .collect();
            let bytes = write_rows(jsonl, &names, &rows);
            let (items, ok) = read(reader(bytes, false), jsonl);
            assert!(ok, "a well-formed file is refused");
            assert_eq!(items.len(), rows.len());
            for (item, row) in items.iter().zip(&rows) {
                let Item::Record(r) = item else {
                    continue;
                };
                let written = |name: &str| {
                    names
                        .iter()
                        .position(|n| *n == name)
                        .map_or("", |i| row[i].trim())
                };
                assert_eq!(r.source_record_id, written("source_record_id"));
                assert_eq!(r.full_name, written("full_name"));
                assert_eq!(
                    r.region.as_ref().map(|r| r.code.as_str()),
                    Some(written("region_code"))
                );
                assert_eq!(r.resident_id, written("resident_id"));
                assert_eq!(r.address_text, written("address_text"));
                assert_eq!(r.phone, written("phone"));
            }
        }
    }
});
