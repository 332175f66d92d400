//! The bank statement MT940 reader of reconciliation (services/payments `parse_mt940`): the
//! `content` of `ImportStatement` in MT940 form. Contract: never panics; a refused statement
//! names at least one line; every accepted entry has a positive amount, a value date in
//! 2000-2099, a non-empty trimmed bank reference and idempotency key, and its `:61:` line in
//! file order; the accepted entries can be totalled (import checks the total against the
//! bank's control total); the entries written back as MT940 read back the same. A statement
//! written from valid entries is accepted with exactly those entries.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use chrono::Datelike;
use jiuzhu_payments::reconciliation::{Direction, StatementLine, parse_mt940};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Mark {
    D,
    C,
    Rd,
    Rc,
}

#[derive(Debug, Arbitrary)]
struct Entry<'a> {
    days: u16,
    entry_date: bool,
    mark: Mark,
    funds_code: Option<u8>,
    fen: u64,
    reference: &'a str,
    key: &'a str,
    /// Another field (`:20:`, `:62F:`, …) after the entry.
    other: Option<&'a str>,
}

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Raw(&'a str),
    Entries(Vec<Entry<'a>>),
}

fn amount(fen: i64) -> String {
    format!("{},{:02}", fen / 100, fen % 100)
}

/// Entries as MT940, in the plainest form.
fn write(lines: &[StatementLine]) -> String {
    let mut out = String::from(":20:FUZZ\n:25:6222020000000001\n:28C:1/1\n");
    for line in lines {
        out.push_str(&format!(
            ":61:{}{}{}NTRFNONREF//{}\n:86:KEY:{}\n",
            line.value_date.format("%y%m%d"),
            match line.direction {
                Direction::Debit => "D",
                Direction::Credit => "C",
            },
            amount(line.fen),
            line.bank_reference,
            line.idempotency_key
        ));
    }
    out.push_str(":62F:C261130CNY0,00\n");
    out
}

fn check(content: &str) {
    let lines = match parse_mt940(content) {
        Ok(lines) => lines,
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in errors {
                assert!(!error.message.is_empty());
                assert!(error.line >= 1);
            }
            return;
        }
    };
    common::check_accepted_lines(&lines, 0);
    for line in &lines {
        assert!((2000..=2099).contains(&line.value_date.year()));
    }
    let written = write(&lines);
    assert_eq!(
        parse_mt940(&written).as_deref().map(common::without_lines),
        Ok(common::without_lines(&lines)),
        "{content:?} written back as {written:?}"
    );
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Raw(content) => check(content),
    Input::Entries(entries) => {
        let mut content = String::from(":20:FUZZ\n");
        let mut expected = Vec::new();
        let mut valid = true;
        for entry in &entries {
            let date = common::recent_date(entry.days);
            let year = date.year();
            let date = if (2000..=2099).contains(&year) {
                date
            } else {
                date.with_year(2000 + year.rem_euclid(100)).unwrap_or(date)
            };
            let fen = i64::try_from(entry.fen >> 1).unwrap_or(i64::MAX);
            let (mark, direction) = match entry.mark {
                Mark::D => ("D", Direction::Debit),
                Mark::C => ("C", Direction::Credit),
                Mark::Rd => ("RD", Direction::Credit),
                Mark::Rc => ("RC", Direction::Debit),
            };
            let funds = entry
                .funds_code
                .map(|c| char::from(b'A' + c % 26))
                .filter(|c| *c != 'N')
                .map(String::from)
                .unwrap_or_default();
            let reference: String = entry.reference.replace(['\n', '\r'], " ");
            let key: String = entry.key.replace(['\n', '\r'], " ");
            content.push_str(&format!(
                ":61:{}{}{mark}{funds}{}NTRF//{reference}\n:86:KEY:{key}\n",
                date.format("%y%m%d"),
                if entry.entry_date {
                    date.format("%m%d").to_string()
                } else {
                    String::new()
                },
                amount(fen),
            ));
            if let Some(other) = entry.other {
                let other = other.replace(['\n', '\r'], " ");
                content.push_str(&format!(":62F:{other}\n"));
            }
            let key = key.trim();
            valid &= fen > 0 && !reference.trim().is_empty() && !key.is_empty();
            expected.push(StatementLine {
                line: 0,
                value_date: date,
                bank_reference: reference.trim().to_owned(),
                idempotency_key: key.to_owned(),
                fen,
                direction,
            });
        }
        let total = expected
            .iter()
            .try_fold(0i64, |total, l| total.checked_add(l.fen));
        if valid {
            let parsed = parse_mt940(&content);
            if total.is_some() {
                assert_eq!(
                    parsed.as_deref().map(common::without_lines),
                    Ok(expected),
                    "{content:?}"
                );
            } else {
                assert!(parsed.is_err(), "a total past i64 is accepted");
            }
        }
        check(&content);
    }
});
