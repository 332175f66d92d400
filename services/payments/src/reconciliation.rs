//! Reconciliation: the bank's statement against the attempts Jiuzhu submitted. A statement is
//! CSV with a header line, `value_date,bank_reference,idempotency_key,amount,direction`; amounts
//! are yuan with at most two decimals (read exactly into fen, never through floating point);
//! direction is DEBIT (paid out) or CREDIT (returned to us). The bank's control totals (line
//! count and sum of amounts) must agree with the lines, or nothing is imported.
//!
//! Each line: a debit of an attempt whose outcome never arrived settles it as paid (a timeout
//! that did pay is paid, not paid again); a debit of a paid attempt matches; a credit of a paid
//! attempt reverses it and refunds the budget. Everything else is a `ReconciliationMismatch`
//! for finance: paid but not recorded, recorded but not paid (when the statement says up to
//! when it is complete), amount differs, a return that matches nothing.

use std::collections::{HashMap, HashSet};

use crate::settings::ProviderSettings;
use chrono::NaiveDate;
use futures::FutureExt;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::UnitOfWork;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::payments::{
    GetReconciliationReportResponse, ImportStatementRequest, ImportStatementResponse, MismatchKind,
    OutcomeSource, ReconciliationMismatch, ReconciliationReport, StatementFormat,
    StatementImported,
};
use jiuzhu_runtime::grpc::run_command;
use prost::Message;
use uuid::Uuid;

use crate::domain::PaymentsEvent;
use crate::submission::{Outcome, Recorded, SubmitError, record_in};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Debit,
    Credit,
}

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    /// 1-based line in the file (the header is line 1).
    pub line: i64,
    pub value_date: NaiveDate,
    pub bank_reference: String,
    pub idempotency_key: String,
    pub fen: i64,
    pub direction: Direction,
}

/// A problem with one field of one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, field `{field}`: {message}")]
pub struct LineError {
    pub line: i64,
    pub field: &'static str,
    pub message: String,
}

const HEADER: [&str; 5] = [
    "value_date",
    "bank_reference",
    "idempotency_key",
    "amount",
    "direction",
];

/// Most line errors reported at once (a wrong file would otherwise report every line).
const MAX_ERRORS: usize = 20;

use jiuzhu_proto::money::parse_yuan;

/// Parses a CSV statement, reporting every bad field (up to a limit) with its line.
pub fn parse_csv(content: &str) -> Result<Vec<StatementLine>, Vec<LineError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(content.as_bytes());
    let mut errors = Vec::new();
    match reader.headers() {
        Ok(header) if header.iter().eq(HEADER.iter().copied()) => {}
        Ok(header) => {
            return Err(vec![LineError {
                line: 1,
                field: "header",
                message: format!(
                    "expected `{}`, found `{}`",
                    HEADER.join(","),
                    header.iter().collect::<Vec<_>>().join(",")
                ),
            }]);
        }
        Err(error) => {
            return Err(vec![LineError {
                line: 1,
                field: "header",
                message: error.to_string(),
            }]);
        }
    }
    let mut lines = Vec::new();
    for record in reader.records() {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line() as i64);
                errors.push(LineError {
                    line,
                    field: "line",
                    message: error.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as i64);
        if record.len() != HEADER.len() {
            errors.push(LineError {
                line,
                field: "line",
                message: format!("has {} fields, not {}", record.len(), HEADER.len()),
            });
            continue;
        }
        let mut bad = |field: &'static str, message: String| {
            errors.push(LineError {
                line,
                field,
                message,
            })
        };
        let value_date = NaiveDate::parse_from_str(&record[0], "%Y-%m-%d")
            .map_err(|_| {
                bad(
                    "value_date",
                    format!("`{}` is not a YYYY-MM-DD date", &record[0]),
                )
            })
            .ok();
        if record[1].is_empty() {
            bad("bank_reference", "is empty".to_owned());
        }
        if record[2].is_empty() {
            bad("idempotency_key", "is empty".to_owned());
        }
        let fen = match parse_yuan(&record[3]) {
            Ok(0) => {
                bad("amount", "is zero".to_owned());
                None
            }
            Ok(fen) => Some(fen),
            Err(message) => {
                bad("amount", message);
                None
            }
        };
        let direction = match &record[4] {
            "DEBIT" => Some(Direction::Debit),
            "CREDIT" => Some(Direction::Credit),
            other => {
                bad(
                    "direction",
                    format!("`{other}` is neither DEBIT nor CREDIT"),
                );
                None
            }
        };
        if let (Some(value_date), Some(fen), Some(direction)) = (value_date, fen, direction)
            && !record[1].is_empty()
            && !record[2].is_empty()
        {
            lines.push(StatementLine {
                line,
                value_date,
                bank_reference: record[1].to_owned(),
                idempotency_key: record[2].to_owned(),
                fen,
                direction,
            });
        }
    }
    check_total(&lines, "amount", &mut errors);
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Refuses a statement whose amounts add up past what fen can count (`i64`): import totals
/// the lines against the bank's control total.
fn check_total(lines: &[StatementLine], field: &'static str, errors: &mut Vec<LineError>) {
    let mut total: i64 = 0;
    for line in lines {
        let Some(sum) = total.checked_add(line.fen) else {
            errors.push(LineError {
                line: line.line,
                field,
                message: "takes the statement's total past the largest amount".to_owned(),
            });
            return;
        };
        total = sum;
    }
}

/// MT940 amounts: digits with a decimal comma ("7000,00", "7000,5", "7000,").
fn parse_mt940_amount(text: &str) -> Result<i64, String> {
    let (whole, fraction) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}` has no decimal comma"))?;
    parse_yuan(&format!(
        "{whole}.{}",
        if fraction.is_empty() { "0" } else { fraction }
    ))
}

/// Parses an MT940 statement: a `:61:` line per entry (`YYMMDD[MMDD]` value and entry dates,
/// `D`/`C` (or `RD`/`RC`, reversals), the amount, a transaction type, and `//` the bank's
/// reference), followed by the `:86:` line that carries the idempotency key. Every bad entry
/// is reported with its line.
pub fn parse_mt940(content: &str) -> Result<Vec<StatementLine>, Vec<LineError>> {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut pending: Option<StatementLine> = None;
    let mut finish = |entry: Option<StatementLine>, errors: &mut Vec<LineError>| {
        if let Some(entry) = entry {
            if entry.idempotency_key.is_empty() {
                errors.push(LineError {
                    line: entry.line,
                    field: "86",
                    message: "the entry has no :86: line with the idempotency key".to_owned(),
                });
            } else {
                lines.push(entry);
            }
        }
    };
    for (n, text) in content.lines().enumerate() {
        let line = i64::try_from(n + 1).unwrap_or(i64::MAX);
        let text = text.trim_end();
        if let Some(body) = text.strip_prefix(":61:") {
            finish(pending.take(), &mut errors);
            match mt940_entry(line, body) {
                Ok(entry) => pending = Some(entry),
                Err(error) => errors.push(error),
            }
        } else if let Some(body) = text.strip_prefix(":86:") {
            if let Some(entry) = pending.as_mut() {
                // One optional `KEY:` label: what follows it is the key, whatever it holds.
                let body = body.trim();
                entry.idempotency_key = body.strip_prefix("KEY:").unwrap_or(body).trim().to_owned();
            }
        } else if text.starts_with(':') {
            finish(pending.take(), &mut errors);
        }
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    finish(pending.take(), &mut errors);
    check_total(&lines, "61.amount", &mut errors);
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

fn mt940_entry(line: i64, body: &str) -> Result<StatementLine, LineError> {
    let bad = |field: &'static str, message: String| LineError {
        line,
        field,
        message,
    };
    let value_date = body
        .get(..6)
        .and_then(|d| NaiveDate::parse_from_str(&format!("20{d}"), "%Y%m%d").ok())
        .ok_or_else(|| {
            bad(
                "61.value_date",
                format!("`{body}` does not start with a YYMMDD date"),
            )
        })?;
    let mut rest = &body[6..];
    // An optional MMDD entry date.
    if rest.len() >= 4 && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        rest = &rest[4..];
    }
    let (direction, after) = if let Some(r) = rest.strip_prefix("RD") {
        (Direction::Credit, r)
    } else if let Some(r) = rest.strip_prefix("RC") {
        (Direction::Debit, r)
    } else if let Some(r) = rest.strip_prefix('D') {
        (Direction::Debit, r)
    } else if let Some(r) = rest.strip_prefix('C') {
        (Direction::Credit, r)
    } else {
        return Err(bad(
            "61.mark",
            format!("`{rest}` is not marked D, C, RD or RC"),
        ));
    };
    // An optional funds code letter, then the amount up to the transaction type (N…/F…/S…).
    let after = after
        .strip_prefix(|c: char| c.is_ascii_alphabetic() && c != 'N')
        .unwrap_or(after);
    let end = after
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(after.len());
    let fen = parse_mt940_amount(&after[..end]).map_err(|message| bad("61.amount", message))?;
    if fen == 0 {
        return Err(bad("61.amount", "is zero".to_owned()));
    }
    let bank_reference = after[end..]
        .split_once("//")
        .map(|(_, reference)| reference.trim().to_owned())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad("61.bank_reference", "no `//` bank reference".to_owned()))?;
    Ok(StatementLine {
        line,
        value_date,
        bank_reference,
        idempotency_key: String::new(),
        fen,
        direction,
    })
}

/// What Jiuzhu knows of an attempt.
#[derive(Debug)]
struct Known {
    disbursement_id: Uuid,
    fen: i64,
    outcome: String,
    /// The region of the case the attempt pays.
    region_code: String,
}

fn money(fen: i64) -> Option<Money> {
    Some(Money { fen })
}

/// Imports a statement (see the module documentation) and answers its report.
pub async fn import(
    store: &jiuzhu_eventstore::EventStore,
    settings: &ProviderSettings,
    caller: &jiuzhu_access::Caller,
    request: ImportStatementRequest,
) -> Result<ImportStatementResponse, AppError> {
    let mut violations = FieldViolations::new();
    violations.check_request_id(&request.request_id);
    violations.require(&[("provider", &request.provider)]);
    let format = StatementFormat::try_from(request.format).unwrap_or_default();
    if format == StatementFormat::Unspecified {
        violations.add(
            "format",
            jiuzhu_errors::must_be_one_of(&[
                StatementFormat::Csv.as_str_name(),
                StatementFormat::Mt940.as_str_name(),
            ]),
        );
    }
    let covers_until = if request.covers_until.trim().is_empty() {
        None
    } else {
        match chrono::DateTime::parse_from_rfc3339(request.covers_until.trim()) {
            Ok(at) => Some(at.with_timezone(&chrono::Utc)),
            Err(_) => {
                violations.add("covers_until", "must be an RFC 3339 instant");
                None
            }
        }
    };
    let parsed = if format == StatementFormat::Mt940 {
        parse_mt940(&request.content)
    } else {
        parse_csv(&request.content)
    };
    let lines = match parsed {
        Ok(lines) => lines,
        Err(errors) => {
            for error in errors {
                violations.add("content", error.to_string());
            }
            Vec::new()
        }
    };
    violations.into_result()?;
    let mut violations = FieldViolations::new();
    let count = i64::try_from(lines.len()).unwrap_or(i64::MAX);
    let total: i64 = lines.iter().map(|l| l.fen).sum();
    let declared_total = request.control_total.map_or(0, |m| m.fen);
    if count != request.control_count {
        violations.add(
            "control_count",
            format!(
                "the file has {count} lines, the control total says {}",
                request.control_count
            ),
        );
    }
    if total != declared_total {
        violations.add(
            "control_total",
            format!("the lines sum to {total} fen, the control total says {declared_total}"),
        );
    }
    violations.into_result()?;
    let settings = settings.clone();
    let provider = request.provider.trim().to_owned();
    // A nationwide role reconciles every office's payments; an office, those of its jurisdiction.
    let office = if caller.nationwide {
        String::new()
    } else {
        caller.identity.office.clone()
    };
    run_command(
        store,
        "jiuzhu.payments.v1.PaymentsService/ImportStatement",
        &request.request_id,
        &request,
        move |work| {
            async move {
                let statement = Statement {
                    provider: &provider,
                    office: &office,
                    lines: &lines,
                    covers_until,
                    total,
                };
                let report = reconcile(work, &settings, statement).await?;
                Ok(ImportStatementResponse {
                    report: Some(report),
                })
            }
            .boxed()
        },
    )
    .await
}

/// A statement to reconcile, and the office reconciling it ('' for every office).
struct Statement<'a> {
    provider: &'a str,
    office: &'a str,
    lines: &'a [StatementLine],
    covers_until: Option<chrono::DateTime<chrono::Utc>>,
    total: i64,
}

impl Statement<'_> {
    /// Whether the importing office may reconcile a payment of a case of `region_code`.
    fn covers(&self, region_code: &str) -> bool {
        self.office.is_empty() || jiuzhu_access::office_covers(self.office, region_code)
    }
}

async fn reconcile(
    work: &mut UnitOfWork<'_>,
    settings: &ProviderSettings,
    statement: Statement<'_>,
) -> Result<ReconciliationReport, AppError> {
    let Statement {
        provider,
        office,
        lines,
        covers_until,
        total,
    } = statement;
    let statement_id = Uuid::now_v7().to_string();
    let keys: Vec<String> = lines.iter().map(|l| l.idempotency_key.clone()).collect();
    let mut known: HashMap<String, Known> =
        sqlx::query_as::<_, (String, Uuid, i64, String, String)>(
            "SELECT idempotency_key, disbursement_id, fen, outcome, region_code FROM attempts \
         WHERE idempotency_key = ANY($1)",
        )
        .bind(&keys)
        .fetch_all(work.connection().await?)
        .await
        .map_err(AppError::storage)?
        .into_iter()
        .map(|(key, disbursement_id, fen, outcome, region_code)| {
            (
                key,
                Known {
                    disbursement_id,
                    fen,
                    outcome,
                    region_code,
                },
            )
        })
        .collect();
    let mut report = ReconciliationReport {
        statement_id: statement_id.clone(),
        line_count: i64::try_from(lines.len()).unwrap_or(i64::MAX),
        total: money(total),
        ..ReconciliationReport::default()
    };
    let mismatch =
        |kind: MismatchKind, line: &StatementLine, known: Option<&Known>| ReconciliationMismatch {
            statement_id: statement_id.clone(),
            kind: kind.into(),
            idempotency_key: line.idempotency_key.clone(),
            disbursement_id: known
                .map(|k| k.disbursement_id.to_string())
                .unwrap_or_default(),
            recorded: known.and_then(|k| money(k.fen)),
            on_statement: money(line.fen),
            bank_reference: line.bank_reference.clone(),
            line: line.line,
        };
    // Each line is decided against what the lines before it did (a debit then a credit of one
    // unanswered payment reverse it; a second debit of one key is a second payment).
    let mut debited: HashSet<&str> = HashSet::new();
    for line in lines {
        let attempt = known.get(&line.idempotency_key);
        if attempt.is_some_and(|a| !statement.covers(&a.region_code)) {
            // Another office's payment: neither applied nor named.
            report
                .mismatches
                .push(mismatch(MismatchKind::OutsideJurisdiction, line, None));
            continue;
        }
        let was_failed = attempt.is_some_and(|a| a.outcome == "failed");
        let outcome = match (line.direction, attempt) {
            (Direction::Debit, None) => {
                report
                    .mismatches
                    .push(mismatch(MismatchKind::PaidNotRecorded, line, None));
                continue;
            }
            (Direction::Debit, Some(a)) if a.fen != line.fen => {
                report
                    .mismatches
                    .push(mismatch(MismatchKind::AmountDiffers, line, Some(a)));
                continue;
            }
            (Direction::Debit, Some(a)) if !debited.insert(line.idempotency_key.as_str()) => {
                report
                    .mismatches
                    .push(mismatch(MismatchKind::PaidTwice, line, Some(a)));
                open_recovery(work, &statement_id, line, a).await?;
                continue;
            }
            (Direction::Debit, Some(a)) => match a.outcome.as_str() {
                "paid" | "reversed" => {
                    report.matched += 1;
                    continue;
                }
                // Unanswered, or recorded as failed yet paid by the bank: the disbursement
                // decides (paid by this attempt if its money is still held, else an
                // overpayment to recover).
                _ => Outcome::Paid {
                    reference: line.bank_reference.clone(),
                },
            },
            (Direction::Credit, Some(a)) if a.outcome == "paid" && a.fen == line.fen => {
                Outcome::Returned {
                    reason: "returned by the bank".to_owned(),
                    bank_reference: line.bank_reference.clone(),
                }
            }
            (Direction::Credit, known) => {
                report
                    .mismatches
                    .push(mismatch(MismatchKind::ReturnNotMatched, line, known));
                continue;
            }
        };
        let recorded = record_in(
            work,
            settings,
            &line.idempotency_key,
            &outcome,
            OutcomeSource::Statement,
        )
        .await
        .map_err(|error| match error {
            SubmitError::Store(error) => AppError::from(error),
            other => AppError::internal(other.to_string()),
        })?;
        if recorded != Recorded::Nothing
            && let Some(known) = known.get_mut(&line.idempotency_key)
        {
            known.outcome = match recorded {
                Recorded::Reversed => "reversed",
                _ => "paid",
            }
            .to_owned();
        }
        match recorded {
            Recorded::Paid => {
                report.settled += 1;
                report.matched += 1;
            }
            Recorded::Reversed => report.reversed += 1,
            // An attempt recorded as failed that the bank paid after all, or an unanswered
            // one whose disbursement another attempt (or a cancel) settled meanwhile: the bank
            // paid what it should not have, and a recovery is open.
            Recorded::Overpaid => {
                let kind = if was_failed {
                    MismatchKind::PaidNotRecorded
                } else {
                    MismatchKind::PaidTwice
                };
                report
                    .mismatches
                    .push(mismatch(kind, line, known.get(&line.idempotency_key)));
            }
            Recorded::Nothing | Recorded::Failed => report.matched += 1,
        }
    }
    if let Some(until) = covers_until {
        let on_statement: HashSet<&str> = lines
            .iter()
            .filter(|l| l.direction == Direction::Debit)
            .map(|l| l.idempotency_key.as_str())
            .collect();
        let paid: Vec<(String, Uuid, i64, String)> = sqlx::query_as(
            "SELECT idempotency_key, disbursement_id, fen, region_code FROM attempts \
             WHERE outcome IN ('paid', 'reversed') AND provider = $1 AND settled_at <= $2 \
             ORDER BY settled_at",
        )
        .bind(provider)
        .bind(until)
        .fetch_all(work.connection().await?)
        .await
        .map_err(AppError::storage)?;
        for (key, disbursement_id, fen, region_code) in paid {
            if !on_statement.contains(key.as_str()) && statement.covers(&region_code) {
                report.mismatches.push(ReconciliationMismatch {
                    statement_id: statement_id.clone(),
                    kind: MismatchKind::RecordedNotPaid.into(),
                    idempotency_key: key,
                    disbursement_id: disbursement_id.to_string(),
                    recorded: money(fen),
                    on_statement: None,
                    bank_reference: String::new(),
                    line: 0,
                });
            }
        }
    }
    let mut events = vec![PaymentsEvent::StatementImported(StatementImported {
        statement_id: statement_id.clone(),
        provider: provider.to_owned(),
        line_count: report.line_count,
        total: report.total,
        matched: report.matched,
        mismatches: i64::try_from(report.mismatches.len()).unwrap_or(i64::MAX),
        settled: report.settled,
        office: office.to_owned(),
    })];
    events.extend(
        report
            .mismatches
            .iter()
            .cloned()
            .map(PaymentsEvent::ReconciliationMismatch),
    );
    let stream = format!("statement-{statement_id}");
    work.append(&stream, 0, &statement_id, &events)
        .await
        .map_err(AppError::from)?;
    sqlx::query(
        "INSERT INTO statements (statement_id, provider, report, office) VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::parse_str(&statement_id).unwrap_or_default())
    .bind(provider)
    .bind(report.encode_to_vec())
    .bind(office)
    .execute(work.connection().await?)
    .await
    .map_err(AppError::storage)?;
    Ok(report)
}

/// A payment the bank made twice: what finance must recover, once per statement line.
async fn open_recovery(
    work: &mut UnitOfWork<'_>,
    statement_id: &str,
    line: &StatementLine,
    paid: &Known,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO recoveries \
         (idempotency_key, bank_reference, statement_id, line, disbursement_id, fen, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, 'the statement debits the payment a second time') \
         ON CONFLICT DO NOTHING",
    )
    .bind(&line.idempotency_key)
    .bind(&line.bank_reference)
    .bind(Uuid::parse_str(statement_id).unwrap_or_default())
    .bind(line.line)
    .bind(paid.disbursement_id)
    .bind(line.fen)
    .execute(work.connection().await?)
    .await
    .map_err(AppError::storage)?;
    Ok(())
}

/// The stored report of an imported statement.
pub async fn report(
    pool: &sqlx::PgPool,
    caller: &jiuzhu_access::Caller,
    statement_id: &str,
) -> Result<GetReconciliationReportResponse, AppError> {
    let id = jiuzhu_errors::uuid_field("statement_id", statement_id)?;
    let stored: Option<(Vec<u8>, String)> =
        sqlx::query_as("SELECT report, office FROM statements WHERE statement_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(AppError::storage)?;
    let (stored, office) =
        stored.ok_or_else(|| AppError::not_found(format!("no statement {id}")))?;
    if !caller.nationwide && !caller.identity.covers(&office) {
        return Err(AppError::permission_denied(format!(
            "statement {id} was imported by office {}, outside the jurisdiction of office {}",
            if office.is_empty() {
                "(nationwide)"
            } else {
                office.as_str()
            },
            caller.identity.office
        )));
    }
    let report = ReconciliationReport::decode(stored.as_slice())
        .map_err(|_| AppError::internal("a stored report cannot be decoded"))?;
    Ok(GetReconciliationReportResponse {
        report: Some(report),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt940_entries_are_read_with_their_keys_and_bad_ones_named() {
        let statement = ":20:STMT1129\n:25:6222020000000001\n:28C:1/1\n:60F:C261129CNY10000,00\n\
                         :61:2611291129D7000,00NTRFNONREF//SIM00000001\n\
                         :86:KEY:0190d5c2-8a6e-7000-8000-000000000001:1\n\
                         :61:261130C3000,5NTRFNONREF//SIMR0001\n\
                         :86:0190d5c2-8a6e-7000-8000-000000000002:1\n\
                         :62F:C261130CNY6000,50\n";
        let lines = parse_mt940(statement).unwrap_or_default();
        let read: Vec<(i64, i64, Direction, &str)> = lines
            .iter()
            .map(|l| (l.line, l.fen, l.direction, l.bank_reference.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                (5, 700_000, Direction::Debit, "SIM00000001"),
                (7, 300_050, Direction::Credit, "SIMR0001")
            ]
        );
        assert_eq!(
            lines[0].idempotency_key,
            "0190d5c2-8a6e-7000-8000-000000000001:1"
        );
        let broken = ":61:2611291129X7000,00NTRF//A\n:86:k\n:61:261129D7000.00NTRF//B\n:86:k\n:61:261129D5,00NTRF//C\n";
        let errors = parse_mt940(broken).err().unwrap_or_default();
        let named: Vec<(i64, &str)> = errors.iter().map(|e| (e.line, e.field)).collect();
        assert_eq!(named, [(1, "61.mark"), (3, "61.amount"), (5, "86")]);
    }

    #[test]
    fn a_statement_whose_total_cannot_be_counted_is_refused() {
        // Found by the `statement_csv` fuzz target: import's sum of the lines overflowed.
        let csv = "value_date,bank_reference,idempotency_key,amount,direction\n\
                   2026-11-29,SIM1,k-1,92233720368547758.07,DEBIT\n\
                   2026-11-29,SIM2,k-2,0.01,CREDIT\n";
        let errors = parse_csv(csv).err().unwrap_or_default();
        let named: Vec<(i64, &str)> = errors.iter().map(|e| (e.line, e.field)).collect();
        assert_eq!(named, [(3, "amount")]);
        let mt940 = ":61:261129D92233720368547758,07NTRF//A\n:86:KEY:k-1\n\
                     :61:261129C0,01NTRF//B\n:86:KEY:k-2\n";
        let errors = parse_mt940(mt940).err().unwrap_or_default();
        let named: Vec<(i64, &str)> = errors.iter().map(|e| (e.line, e.field)).collect();
        assert_eq!(named, [(3, "61.amount")]);
        // Right at the limit the total still counts.
        let at_limit = "value_date,bank_reference,idempotency_key,amount,direction\n\
                        2026-11-29,SIM1,k-1,92233720368547758.06,DEBIT\n\
                        2026-11-29,SIM2,k-2,0.01,CREDIT\n";
        assert_eq!(parse_csv(at_limit).map(|lines| lines.len()), Ok(2));
    }

    #[test]
    fn only_one_key_label_is_taken_off_an_86_line() {
        // Found by the `statement_mt940` fuzz target: `KEY: KEY:` was read as the key `KEY:`,
        // which written back as `:86:KEY:KEY:` read as no key at all.
        for (line, key) in [
            (":86:KEY: KEY:", "KEY:"),
            (":86:KEY:KEY:", "KEY:"),
            (":86:KEY:KEY:k-1", "KEY:k-1"),
            (":86: KEY: k-1 ", "k-1"),
            (":86:k-1", "k-1"),
        ] {
            let statement = format!(":61:261129D5,00NTRF//A\n{line}\n");
            let keys: Vec<String> = parse_mt940(&statement)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.idempotency_key)
                .collect();
            assert_eq!(keys, [key], "{line}");
        }
    }

    #[test]
    fn every_bad_field_is_named_with_its_line() {
        let content = "value_date,bank_reference,idempotency_key,amount,direction\n\
                       2026-11-29,SIM1,k-1,100.00,DEBIT\n\
                       2026-13-01,SIM2,k-2,1.2.3,SIDEWAYS\n\
                       2026-11-29,,k-3,5.00,CREDIT\n";
        let errors = parse_csv(content).err().unwrap_or_default();
        let named: Vec<(i64, &str)> = errors.iter().map(|e| (e.line, e.field)).collect();
        assert_eq!(
            named,
            vec![
                (3, "value_date"),
                (3, "amount"),
                (3, "direction"),
                (4, "bank_reference")
            ]
        );
        let good = "value_date,bank_reference,idempotency_key,amount,direction\n\
                    2026-11-29,SIM1,k-1,100.00,DEBIT\n";
        let lines = parse_csv(good).unwrap_or_default();
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].line, lines[0].fen), (2, 10_000));
        assert!(parse_csv("date,ref\n").is_err(), "a wrong header");
    }
}
