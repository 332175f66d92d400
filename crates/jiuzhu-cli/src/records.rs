//! Reading department files: CSV or JSON Lines, UTF-8 or GB18030 (detected or named), into
//! person records with the line each came from. Problems a file alone shows (a bad gender or
//! date spelling) become rejections here; the registry judges the rest.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use encoding_rs::{Encoding, GB18030, UTF_8};
use encoding_rs_io::DecodeReaderBytesBuilder;
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::{
    Gender, PersonRecord, RecordRejection, RecordedStatus, Relationship, StatusKind,
};

/// Columns of the import format, in the order `jiuzhu gen registry` writes them.
pub const COLUMNS: [&str; 12] = [
    "source_record_id",
    "full_name",
    "gender",
    "birth_date",
    "resident_id",
    "region_code",
    "township",
    "village",
    "address_text",
    "phone",
    "household_ref",
    "relationship",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Auto,
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Charset {
    Auto,
    Utf8,
    Gb18030,
}

/// Counts raw bytes read, for progress.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// UTF-8 when the start of the file is valid UTF-8, else GB18030.
fn detect(path: &Path) -> anyhow::Result<&'static Encoding> {
    let mut head = Vec::with_capacity(64 * 1024);
    File::open(path)?.take(64 * 1024).read_to_end(&mut head)?;
    Ok(match std::str::from_utf8(&head) {
        Ok(_) => UTF_8,
        // Cut in the middle of a character at the end of the sample: still UTF-8.
        Err(error) if error.error_len().is_none() => UTF_8,
        Err(_) => GB18030,
    })
}

/// One item read from a file.
pub enum Item {
    Record(Box<PersonRecord>),
    Rejected(RecordRejection),
}

/// Opens `path`, returning the decoded reader and a counter of raw bytes read.
pub fn open(
    path: &Path,
    charset: Charset,
) -> anyhow::Result<(Box<dyn BufRead + Send>, Arc<AtomicU64>, &'static str)> {
    let encoding = match charset {
        Charset::Auto => detect(path)?,
        Charset::Utf8 => UTF_8,
        Charset::Gb18030 => GB18030,
    };
    let read = Arc::new(AtomicU64::new(0));
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let decoded = DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(Counting {
            inner: file,
            read: Arc::clone(&read),
        });
    Ok((
        Box::new(BufReader::with_capacity(256 * 1024, decoded)),
        read,
        encoding.name(),
    ))
}

pub fn format_of(path: &Path, format: Format) -> Format {
    match format {
        Format::Auto => match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            _ => Format::Csv,
        },
        other => other,
    }
}

fn gender(text: &str) -> Result<i32, String> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "" => Gender::Unspecified,
        "male" | "m" | "男" | "1" => Gender::Male,
        "female" | "f" | "女" | "2" => Gender::Female,
        other => return Err(format!("`{other}` is not a gender (male/female/男/女)")),
    } as i32)
}

fn relationship(text: &str) -> Result<i32, String> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "" => Relationship::Unspecified,
        "head" | "户主" => Relationship::Head,
        "spouse" | "配偶" | "妻子" | "丈夫" => Relationship::Spouse,
        "child" | "子女" | "儿子" | "女儿" => Relationship::Child,
        "parent" | "父母" | "父亲" | "母亲" => Relationship::Parent,
        "grandchild" | "孙子女" | "孙子" | "孙女" => Relationship::Grandchild,
        "grandparent" | "祖父母" => Relationship::Grandparent,
        "sibling" | "兄弟姐妹" => Relationship::Sibling,
        "other" | "其他" => Relationship::Other,
        other => {
            return Err(format!(
                "`{other}` is not a relationship (head, spouse, child, parent, grandchild, grandparent, sibling, other, or 户主, 配偶, 子女, …)"
            ));
        }
    } as i32)
}

/// Accepts the ways people write dates and returns YYYY-MM-DD.
pub fn birth_date(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    if let Some(date) = jiuzhu_identity::parse_written_date(text) {
        return Ok(date.format("%Y-%m-%d").to_string());
    }
    Err(format!(
        "`{text}` is not a date (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or YYYY年MM月DD日)"
    ))
}

fn record_from(line: i64, get: impl Fn(&str) -> String) -> Item {
    let written_date = birth_date;
    let source_record_id = get("source_record_id");
    let reject = |field: &str, reason: String| {
        Item::Rejected(RecordRejection {
            line,
            source_record_id: source_record_id.clone(),
            field: field.to_owned(),
            reason,
        })
    };
    let gender = match gender(&get("gender")) {
        Ok(g) => g,
        Err(reason) => return reject("gender", reason),
    };
    let birth_date = match birth_date(&get("birth_date")) {
        Ok(d) => d,
        Err(reason) => return reject("birth_date", reason),
    };
    let relationship = match relationship(&get("relationship")) {
        Ok(r) => r,
        Err(reason) => return reject("relationship", reason),
    };
    // Optional columns: one status the department holds (`status` by its name, such as
    // registered_poor or minimum_living_allowance; `status_from`, `status_to`).
    let statuses = match get("status").trim() {
        "" => Vec::new(),
        name => {
            let Some(kind) =
                StatusKind::from_str_name(&format!("STATUS_KIND_{}", name.to_ascii_uppercase()))
                    .filter(|k| *k != StatusKind::Unspecified)
            else {
                return reject(
                    "status",
                    format!(
                        "`{name}` is not a status (registered_poor, monitored_unstable, monitored_marginal, monitored_sudden_hardship, minimum_living_allowance, extreme_hardship, …)"
                    ),
                );
            };
            let (from, to) = match (
                written_date(&get("status_from")),
                written_date(&get("status_to")),
            ) {
                (Ok(from), Ok(to)) => (from, to),
                (Err(reason), _) => return reject("status_from", reason),
                (_, Err(reason)) => return reject("status_to", reason),
            };
            vec![RecordedStatus {
                kind: kind as i32,
                effective_from: from,
                effective_to: to,
                reference: get("status_reference"),
                detail: String::new(),
            }]
        }
    };
    // Optional: the household's income per head in yuan for a year, where the department has it.
    let household_income_per_head = match get("household_income_yuan").trim() {
        "" => None,
        text => match jiuzhu_proto::money::parse_yuan(text) {
            Ok(fen) => Some(jiuzhu_proto::common::Money { fen }),
            Err(reason) => return reject("household_income_yuan", reason),
        },
    };
    let household_income_year = match get("household_income_year").trim() {
        "" => 0,
        text => match text.parse::<i32>() {
            Ok(year) => year,
            Err(_) => {
                return reject(
                    "household_income_year",
                    format!("`{text}` is not a year (such as 2025)"),
                );
            }
        },
    };
    Item::Record(Box::new(PersonRecord {
        line,
        source_record_id: source_record_id.clone(),
        full_name: get("full_name"),
        gender,
        birth_date,
        resident_id: get("resident_id"),
        region: Some(RegionCode {
            code: get("region_code"),
        }),
        township: get("township"),
        village: get("village"),
        address_text: get("address_text"),
        phone: get("phone"),
        household_ref: get("household_ref"),
        relationship,
        statuses,
        household_income_per_head,
        household_income_year,
    }))
}

/// Reads every item of a CSV file, calling `emit` for each, in file order.
pub fn read_csv(
    reader: Box<dyn BufRead + Send>,
    mut emit: impl FnMut(Item) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<String>> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers: Vec<String> = csv
        .headers()
        .context("cannot read the header line")?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for required in ["source_record_id", "full_name", "region_code"] {
        if !headers.iter().any(|h| h == required) {
            bail!(
                "line 1: the header has no `{required}` column (columns: {})",
                COLUMNS.join(",")
            );
        }
    }
    let unknown: Vec<String> = headers
        .iter()
        .filter(|h| !COLUMNS.contains(&h.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        bail!(
            "line 1: unknown column(s) {}; the format's columns are {}",
            unknown.join(", "),
            COLUMNS.join(",")
        );
    }
    let index = |name: &str| headers.iter().position(|h| h == name);
    let positions: Vec<(&str, Option<usize>)> = COLUMNS.iter().map(|c| (*c, index(c))).collect();
    let mut row = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {
                let line =
                    i64::try_from(row.position().map(|p| p.line()).unwrap_or(0)).unwrap_or(0);
                let get = |name: &str| {
                    positions
                        .iter()
                        .find(|(c, _)| *c == name)
                        .and_then(|(_, i)| i.and_then(|i| row.get(i)))
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                };
                emit(record_from(line, get))?;
            }
            Err(error) => {
                let line = error.position().map(|p| p.line()).unwrap_or(0);
                emit(Item::Rejected(RecordRejection {
                    line: i64::try_from(line).unwrap_or(0),
                    source_record_id: String::new(),
                    field: String::new(),
                    reason: format!("unreadable CSV row: {error}"),
                }))?;
                if !matches!(
                    error.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    return Err(error.into());
                }
            }
        }
    }
    Ok(headers)
}

/// Reads every item of a JSON Lines file (one object per line with the CSV's column names).
pub fn read_jsonl(
    reader: Box<dyn BufRead + Send>,
    mut emit: impl FnMut(Item) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for (index, line) in reader.lines().enumerate() {
        let number = i64::try_from(index + 1).unwrap_or(0);
        let line = line.with_context(|| format!("line {number}: cannot be read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(&line) {
            Ok(object) => object,
            Err(error) => {
                emit(Item::Rejected(RecordRejection {
                    line: number,
                    source_record_id: String::new(),
                    field: String::new(),
                    reason: format!("not a JSON object: {error}"),
                }))?;
                continue;
            }
        };
        let get = |name: &str| match object.get(name) {
            Some(serde_json::Value::String(s)) => s.trim().to_owned(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        emit(record_from(number, get))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_may_carry_one_status_by_its_name() {
        let row = |status: &'static str, from: &'static str| {
            move |column: &str| {
                match column {
                    "source_record_id" => "R-1",
                    "status" => status,
                    "status_from" => from,
                    "status_to" => "2026年10月31日",
                    _ => "",
                }
                .to_owned()
            }
        };
        let Item::Record(record) = record_from(2, row("minimum_living_allowance", "2026/03/01"))
        else {
            panic!("a record with a status was refused");
        };
        assert_eq!(
            record.statuses,
            [RecordedStatus {
                kind: StatusKind::MinimumLivingAllowance as i32,
                effective_from: "2026-03-01".to_owned(),
                effective_to: "2026-10-31".to_owned(),
                ..RecordedStatus::default()
            }]
        );
        assert!(matches!(
            record_from(3, row("rich", "2026-03-01")),
            Item::Rejected(r) if r.field == "status" && r.line == 3
        ));
        assert!(matches!(
            record_from(4, row("registered_poor", "March")),
            Item::Rejected(r) if r.field == "status_from"
        ));
    }

    #[test]
    fn a_record_may_carry_its_households_income_in_yuan() {
        let row = |income: &'static str, year: &'static str| {
            move |column: &str| {
                match column {
                    "source_record_id" => "R-1",
                    "household_income_yuan" => income,
                    "household_income_year" => year,
                    _ => "",
                }
                .to_owned()
            }
        };
        let Item::Record(record) = record_from(2, row("8432.5", "2025")) else {
            panic!("a record with an income was refused");
        };
        assert_eq!(
            (
                record.household_income_per_head.map(|m| m.fen),
                record.household_income_year
            ),
            (Some(843_250), 2025)
        );
        assert!(matches!(
            record_from(3, row("8,432", "2025")),
            Item::Rejected(r) if r.field == "household_income_yuan" && r.line == 3
        ));
        assert!(matches!(
            record_from(4, row("8432", "last year")),
            Item::Rejected(r) if r.field == "household_income_year"
        ));
    }

    #[test]
    fn relationships_in_english_or_chinese() {
        assert_eq!(relationship("户主"), Ok(Relationship::Head as i32));
        assert_eq!(relationship(" Spouse "), Ok(Relationship::Spouse as i32));
        assert_eq!(relationship("女儿"), Ok(Relationship::Child as i32));
        assert_eq!(relationship(""), Ok(Relationship::Unspecified as i32));
        assert!(relationship("cousin").is_err());
    }

    #[test]
    fn written_dates_become_iso_and_bad_ones_say_which_forms_work() {
        assert_eq!(birth_date("1949年12月31日").as_deref(), Ok("1949-12-31"));
        assert_eq!(birth_date(" ").as_deref(), Ok(""));
        let error = birth_date("31/12/1949").err().unwrap_or_default();
        assert!(error.contains("YYYY-MM-DD"), "{error}");
    }

    #[test]
    fn gb18030_files_are_detected_and_decoded() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("jiuzhu-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("gbk.csv");
        let text = "source_record_id,full_name,gender,region_code\nR1,王秀英,女,522701\nR2,李强,男,522701\n";
        let (encoded, _, _) = GB18030.encode(text);
        std::fs::write(&path, &encoded)?;
        let (reader, read, name) = open(&path, Charset::Auto)?;
        assert_eq!(name, "gb18030");
        let mut names = Vec::new();
        read_csv(reader, |item| {
            if let Item::Record(r) = item {
                names.push((r.line, r.full_name, r.gender));
            }
            Ok(())
        })?;
        assert_eq!(
            names,
            [
                (2, "王秀英".to_owned(), Gender::Female as i32),
                (3, "李强".to_owned(), Gender::Male as i32)
            ]
        );
        assert_eq!(read.load(Ordering::Relaxed), encoded.len() as u64);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn bad_values_and_unknown_columns_name_line_and_field() -> anyhow::Result<()> {
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(
            "source_record_id,full_name,gender,region_code\nR1,王,unknown,522701\n",
        ));
        let mut rejected = Vec::new();
        read_csv(reader, |item| {
            if let Item::Rejected(r) = item {
                rejected.push((r.line, r.field));
            }
            Ok(())
        })?;
        assert_eq!(rejected, [(2, "gender".to_owned())]);
        let unknown: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(
            "source_record_id,full_name,region_code,colour\n",
        ));
        let error = read_csv(unknown, |_| Ok(()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("line 1") && error.contains("colour"),
            "{error}"
        );
        Ok(())
    }
}
