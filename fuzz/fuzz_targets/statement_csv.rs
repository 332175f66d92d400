//! The bank statement CSV reader of reconciliation (services/payments `parse_csv`,
//! `parse_yuan`): the `content` of `ImportStatement`. Contract: never panics; a refused
//! statement names at least one line and field; every accepted line has a positive amount, a
//! non-empty trimmed bank reference and idempotency key, and a line number after the header in
//! file order; the accepted lines can be totalled (import checks the total against the bank's
//! control total); the lines written back as a statement read back the same. An amount that
//! `parse_yuan` accepts, written back as yuan, reads back the same number of fen. A statement
//! written from valid lines is accepted with exactly those lines.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use jiuzhu_payments::reconciliation::{Direction, StatementLine, parse_csv, parse_yuan};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Line<'a> {
    days: u16,
    reference: &'a str,
    key: &'a str,
    fen: u64,
    debit: bool,
}

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Raw(&'a str),
    Lines(Vec<Line<'a>>),
    Amount(&'a str),
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn write(lines: impl IntoIterator<Item = [String; 5]>) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut ok = writer
        .write_record([
            "value_date",
            "bank_reference",
            "idempotency_key",
            "amount",
            "direction",
        ])
        .is_ok();
    for line in lines {
        ok &= writer.write_record(&line).is_ok();
    }
    assert!(ok);
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn fields(line: &StatementLine) -> [String; 5] {
    [
        line.value_date.format("%Y-%m-%d").to_string(),
        line.bank_reference.clone(),
        line.idempotency_key.clone(),
        yuan(line.fen),
        match line.direction {
            Direction::Debit => "DEBIT",
            Direction::Credit => "CREDIT",
        }
        .to_owned(),
    ]
}

fn check(content: &str) {
    let lines = match parse_csv(content) {
        Ok(lines) => lines,
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in errors {
                assert!(!error.message.is_empty());
                assert!(error.line >= 0);
            }
            return;
        }
    };
    common::check_accepted_lines(&lines, 1);
    let again = parse_csv(&write(lines.iter().map(fields)));
    assert_eq!(
        again.as_deref().map(common::without_lines),
        Ok(common::without_lines(&lines)),
        "{content:?}"
    );
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Raw(content) => check(content),
    Input::Amount(text) => {
        if let Ok(fen) = parse_yuan(text) {
            assert!(fen >= 0);
            assert_eq!(parse_yuan(&yuan(fen)), Ok(fen), "{text:?}");
        }
    }
    Input::Lines(lines) => {
        let lines: Vec<StatementLine> = lines
            .iter()
            .map(|l| StatementLine {
                line: 0,
                value_date: common::recent_date(l.days),
                bank_reference: l.reference.trim().to_owned(),
                idempotency_key: l.key.trim().to_owned(),
                fen: i64::try_from(l.fen >> 1).unwrap_or(i64::MAX),
                direction: if l.debit {
                    Direction::Debit
                } else {
                    Direction::Credit
                },
            })
            .collect();
        let content = write(lines.iter().map(fields));
        let valid = lines
            .iter()
            .all(|l| l.fen > 0 && !l.bank_reference.is_empty() && !l.idempotency_key.is_empty());
        if valid {
            // Valid lines make an accepted statement unless their total cannot be counted.
            let total = lines
                .iter()
                .try_fold(0i64, |total, l| total.checked_add(l.fen));
            let parsed = parse_csv(&content);
            if total.is_some() {
                assert_eq!(
                    parsed.as_deref().map(common::without_lines),
                    Ok(lines),
                    "{content:?}"
                );
            } else {
                assert!(parsed.is_err(), "a total past i64 is accepted");
            }
        }
        check(&content);
    }
});
