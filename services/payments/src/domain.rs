//! Disbursements, free of I/O: ordered → funds reserved (or short, waiting for funds) →
//! submitted to the provider → succeeded, or failed (retried when the failure allows it, else
//! released) → reversed when the bank sends money back; cancelled before payment. Exactly once
//! rests on two rules: a resend of an attempt reuses its idempotency key, and only a definite
//! failure opens a new attempt. The ledger moves are the shell's, from these events.

use jiuzhu_eventstore::{Aggregate, event_enum};
use jiuzhu_proto::common::Money;
use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::payments::{
    BudgetAllocated, DisbursementCancelled, DisbursementFailed, DisbursementOrdered,
    DisbursementOverpaid, DisbursementRetried, DisbursementReversed, DisbursementSubmitted,
    DisbursementSucceeded, FundsReserved, FundsShort, OutcomeSource, PayeeRegistered,
    ReconciliationMismatch, StatementImported,
};

event_enum! {
    /// Every event on `jiuzhu.payments.events.v1`.
    pub enum PaymentsEvent {
        BudgetAllocated(BudgetAllocated),
        DisbursementOrdered(DisbursementOrdered),
        FundsReserved(FundsReserved),
        FundsShort(FundsShort),
        DisbursementSubmitted(DisbursementSubmitted),
        DisbursementSucceeded(DisbursementSucceeded),
        DisbursementFailed(DisbursementFailed),
        DisbursementCancelled(DisbursementCancelled),
        DisbursementReversed(DisbursementReversed),
        DisbursementRetried(DisbursementRetried),
        DisbursementOverpaid(DisbursementOverpaid),
        PayeeRegistered(PayeeRegistered),
        StatementImported(StatementImported),
        ReconciliationMismatch(ReconciliationMismatch),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Unknown,
    Ordered,
    WaitingForFunds,
    Reserved,
    Submitted,
    /// Failed, another attempt allowed.
    Retryable,
    /// Failed for good; the reservation was released.
    Failed,
    Succeeded,
    Cancelled,
    Reversed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Ordered => "ordered",
            State::WaitingForFunds => "waiting for funds",
            State::Reserved => "funds reserved",
            State::Submitted => "submitted",
            State::Retryable => "failed (retryable)",
            State::Failed => "failed",
            State::Succeeded => "paid",
            State::Cancelled => "cancelled",
            State::Reversed => "reversed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisbursementError {
    #[error("no disbursement {0}")]
    NotFound(String),
    #[error("the disbursement is {state}: it cannot be {action}")]
    WrongState {
        state: &'static str,
        action: &'static str,
    },
    #[error("{0}")]
    Payee(#[from] PayeeError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayeeError {
    #[error("a bank card number has 16 to 19 digits")]
    CardLength,
    #[error("the card number's check digit is wrong (a digit mistyped?)")]
    CheckDigit,
    #[error("the payee's name must be the person's registered name")]
    NameMismatch,
    #[error("an account number is 6 to 32 letters and digits")]
    OtherAccount,
}

/// Another account number (passbook, credit cooperative): 6 to 32 letters and digits.
pub fn check_other_account(number: &str) -> Result<String, PayeeError> {
    let compact: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    if (6..=32).contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(compact)
    } else {
        Err(PayeeError::OtherAccount)
    }
}

/// Whether two spellings of a name are the same name: spaces and the middle dots of minority
/// and transliterated names ("阿卜杜·热合曼") do not count, nor Latin letter case.
pub fn same_name(a: &str, b: &str) -> bool {
    let normal = |name: &str| -> String {
        name.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '.' | '・' | '‧'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (normal(a), normal(b));
    !a.is_empty() && a == b
}

/// A bank card number: 16 to 19 digits (spaces allowed) with a valid Luhn check digit.
pub fn check_bank_card(number: &str) -> Result<String, PayeeError> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    if !(16..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PayeeError::CardLength);
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    if sum.is_multiple_of(10) {
        Ok(digits)
    } else {
        Err(PayeeError::CheckDigit)
    }
}

/// An account number as it may be shown: first four and last four digits.
pub fn mask(account: &str) -> String {
    let chars: Vec<char> = account.chars().filter(|c| !c.is_whitespace()).collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head} **** {tail}")
}

/// One instalment of a decision: its number (from 1), amount and first day it may be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instalment {
    pub number: i32,
    pub fen: i64,
    pub pay_from: chrono::NaiveDate,
}

/// Splits `total_fen` into `count` instalments (at least one), one every `every_months` months
/// from `from`; the remainder of the division is paid with the first, so the sum is exact.
pub fn instalment_plan(
    total_fen: i64,
    count: i32,
    every_months: i32,
    from: chrono::NaiveDate,
) -> Vec<Instalment> {
    let count = count.max(1);
    let share = total_fen / i64::from(count);
    let remainder = total_fen - share * i64::from(count);
    (1..=count)
        .map(|number| {
            let months = u32::try_from((number - 1) * every_months.max(0)).unwrap_or(0);
            Instalment {
                number,
                fen: if number == 1 {
                    share + remainder
                } else {
                    share
                },
                pay_from: from
                    .checked_add_months(chrono::Months::new(months))
                    .unwrap_or(from),
            }
        })
        .collect()
}

/// The idempotency key of a disbursement's attempt: the provider pays each key at most once.
pub fn attempt_key(disbursement_id: &str, attempt: i32) -> String {
    format!("{disbursement_id}:{attempt}")
}

/// The disbursement and attempt a key names.
pub fn parse_attempt_key(key: &str) -> Option<(uuid::Uuid, i32)> {
    let (id, attempt) = key.rsplit_once(':')?;
    Some((uuid::Uuid::parse_str(id).ok()?, attempt.parse().ok()?))
}

/// A disbursement as its decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Disbursement {
    pub ordered: Option<DisbursementOrdered>,
    pub state: State,
    /// The current attempt (0 before the first submission).
    pub attempt: i32,
    pub idempotency_key: String,
    pub reserved: bool,
    /// The payee of the current attempt, sealed, and its masked account.
    pub sealed_payee: Option<Sealed>,
    pub payee_account_masked: String,
    pub failure_reason: String,
    pub provider_reference: String,
    /// The attempt that was paid (0 until one is).
    pub paid_attempt: i32,
}

impl Disbursement {
    /// The region of the case it pays: the office holding the case owns it.
    pub fn region_code(&self) -> &str {
        self.ordered.as_ref().map_or("", |o| o.region_code.as_str())
    }
}

impl Aggregate for Disbursement {
    type Event = PaymentsEvent;
    const KIND: &'static str = "disbursement";

    fn partition_key(&self) -> Option<&str> {
        self.ordered.as_ref().map(|o| o.person_id.as_str())
    }

    fn apply(&mut self, event: &PaymentsEvent) {
        match event {
            PaymentsEvent::DisbursementOrdered(e) => {
                self.ordered = Some(e.clone());
                self.state = State::Ordered;
            }
            PaymentsEvent::FundsShort(_) => self.state = State::WaitingForFunds,
            PaymentsEvent::FundsReserved(_) => {
                self.state = State::Reserved;
                self.reserved = true;
            }
            PaymentsEvent::DisbursementSubmitted(e) => {
                self.state = State::Submitted;
                self.attempt = e.attempt;
                self.idempotency_key.clone_from(&e.idempotency_key);
                self.sealed_payee.clone_from(&e.sealed_payee);
                self.payee_account_masked
                    .clone_from(&e.payee_account_masked);
            }
            PaymentsEvent::DisbursementSucceeded(e) => {
                self.state = State::Succeeded;
                self.provider_reference.clone_from(&e.provider_reference);
                self.paid_attempt = e.attempt;
            }
            PaymentsEvent::DisbursementFailed(e) => {
                self.failure_reason.clone_from(&e.reason);
                if e.retryable {
                    self.state = State::Retryable;
                } else {
                    self.state = State::Failed;
                    self.reserved = false;
                }
            }
            PaymentsEvent::DisbursementCancelled(_) => {
                self.state = State::Cancelled;
                self.reserved = false;
            }
            PaymentsEvent::DisbursementReversed(_) => self.state = State::Reversed,
            PaymentsEvent::DisbursementRetried(_) => {
                // After a retryable failure the money is still held; after a definite one it
                // must be reserved again.
                self.state = if self.state == State::Retryable {
                    State::Reserved
                } else {
                    State::Ordered
                };
            }
            PaymentsEvent::BudgetAllocated(_)
            | PaymentsEvent::DisbursementOverpaid(_)
            | PaymentsEvent::PayeeRegistered(_)
            | PaymentsEvent::StatementImported(_)
            | PaymentsEvent::ReconciliationMismatch(_) => {}
        }
    }
}

impl Disbursement {
    fn ordered(&self) -> Result<&DisbursementOrdered, DisbursementError> {
        self.ordered
            .as_ref()
            .ok_or_else(|| DisbursementError::NotFound(String::new()))
    }

    fn amount(&self) -> Option<Money> {
        self.ordered.as_ref().and_then(|o| o.amount)
    }

    fn wrong(&self, action: &'static str) -> DisbursementError {
        DisbursementError::WrongState {
            state: self.state.name(),
            action,
        }
    }

    /// Holds the money when the budget (`available` fen) covers it, else waits for funds.
    pub fn reserve(&self, available: i64) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        if !matches!(self.state, State::Ordered | State::WaitingForFunds) {
            return Err(self.wrong("reserved"));
        }
        let amount = ordered.amount.map_or(0, |m| m.fen);
        if available < amount {
            if self.state == State::WaitingForFunds {
                return Ok(Vec::new());
            }
            return Ok(vec![PaymentsEvent::FundsShort(FundsShort {
                disbursement_id: ordered.disbursement_id.clone(),
                procuratorate: ordered.procuratorate.clone(),
                amount: ordered.amount,
                available: Some(Money { fen: available }),
                case_id: ordered.case_id.clone(),
            })]);
        }
        Ok(vec![PaymentsEvent::FundsReserved(FundsReserved {
            disbursement_id: ordered.disbursement_id.clone(),
            procuratorate: ordered.procuratorate.clone(),
            amount: ordered.amount,
            case_id: ordered.case_id.clone(),
        })])
    }

    /// A new attempt (first, or after a retryable failure) with its own idempotency key, paying
    /// the payee given (sealed) as it is now.
    pub fn submit(
        &self,
        provider: &str,
        sealed_payee: Sealed,
        payee_account_masked: &str,
    ) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        if !matches!(self.state, State::Reserved | State::Retryable) {
            return Err(self.wrong("submitted"));
        }
        let attempt = self.attempt + 1;
        Ok(vec![PaymentsEvent::DisbursementSubmitted(
            DisbursementSubmitted {
                disbursement_id: ordered.disbursement_id.clone(),
                attempt,
                idempotency_key: attempt_key(&ordered.disbursement_id, attempt),
                provider: provider.to_owned(),
                sealed_payee: Some(sealed_payee),
                payee_account_masked: payee_account_masked.to_owned(),
                amount: ordered.amount,
            },
        )])
    }

    /// An officer's retry of a failed disbursement.
    pub fn retry(
        &self,
        requested_by: &str,
        reason: &str,
    ) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        if !matches!(self.state, State::Retryable | State::Failed) {
            return Err(self.wrong("retried"));
        }
        Ok(vec![PaymentsEvent::DisbursementRetried(
            DisbursementRetried {
                disbursement_id: ordered.disbursement_id.clone(),
                requested_by: requested_by.to_owned(),
                reason: reason.to_owned(),
            },
        )])
    }

    /// The provider's outcome of `attempt`. A repeated or late callback for an outcome already
    /// recorded changes nothing; a success always wins over nothing (a timeout never failed it).
    pub fn succeed(
        &self,
        attempt: i32,
        provider_reference: &str,
        source: OutcomeSource,
    ) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        let overpaid = |reason: String| {
            Ok(vec![PaymentsEvent::DisbursementOverpaid(
                DisbursementOverpaid {
                    disbursement_id: ordered.disbursement_id.clone(),
                    attempt,
                    amount: self.amount(),
                    provider_reference: provider_reference.to_owned(),
                    reason,
                    source: source.into(),
                },
            )])
        };
        if attempt < 1 || attempt > self.attempt {
            return Err(self.wrong("paid"));
        }
        match self.state {
            // The same payment told again.
            State::Succeeded | State::Reversed if attempt == self.paid_attempt => Ok(Vec::new()),
            State::Succeeded | State::Reversed => {
                overpaid(format!("attempt {} was paid already", self.paid_attempt))
            }
            State::Cancelled => overpaid("paid after it was cancelled".to_owned()),
            // Its money was given back to the budget (a definite failure, not held again).
            State::Failed | State::Ordered | State::WaitingForFunds => overpaid(format!(
                "attempt {attempt} was paid after it failed for good"
            )),
            // The attempt out now, or an earlier one answered late (after a retryable failure,
            // while a later attempt is out, or once the money is held again for a new one): the
            // relief is paid, by that attempt, from the money held.
            State::Submitted | State::Retryable | State::Reserved => {
                Ok(vec![PaymentsEvent::DisbursementSucceeded(
                    DisbursementSucceeded {
                        disbursement_id: ordered.disbursement_id.clone(),
                        person_id: ordered.person_id.clone(),
                        case_id: ordered.case_id.clone(),
                        amount: self.amount(),
                        provider_reference: provider_reference.to_owned(),
                        attempt,
                        source: source.into(),
                    },
                )])
            }
            _ => Err(self.wrong("paid")),
        }
    }

    /// A failure of `attempt`; `next_attempt_at` (RFC 3339) when it is retryable.
    pub fn fail(
        &self,
        attempt: i32,
        reason: &str,
        next_attempt_at: Option<String>,
    ) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        match self.state {
            State::Submitted if attempt == self.attempt => {
                Ok(vec![PaymentsEvent::DisbursementFailed(
                    DisbursementFailed {
                        disbursement_id: ordered.disbursement_id.clone(),
                        attempt,
                        reason: reason.to_owned(),
                        retryable: next_attempt_at.is_some(),
                        next_attempt_at: next_attempt_at.unwrap_or_default(),
                    },
                )])
            }
            State::Retryable | State::Failed if attempt == self.attempt => Ok(Vec::new()),
            _ => Err(self.wrong("failed")),
        }
    }

    pub fn cancel(&self, reason: &str, by: &str) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        if !matches!(
            self.state,
            State::Ordered | State::WaitingForFunds | State::Reserved | State::Retryable
        ) {
            return Err(self.wrong("cancelled"));
        }
        Ok(vec![PaymentsEvent::DisbursementCancelled(
            DisbursementCancelled {
                disbursement_id: ordered.disbursement_id.clone(),
                reason: reason.to_owned(),
                cancelled_by: by.to_owned(),
            },
        )])
    }

    pub fn reverse(
        &self,
        reason: &str,
        bank_reference: &str,
    ) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        let ordered = self.ordered()?;
        if self.state != State::Succeeded {
            return Err(self.wrong("reversed"));
        }
        Ok(vec![PaymentsEvent::DisbursementReversed(
            DisbursementReversed {
                disbursement_id: ordered.disbursement_id.clone(),
                reason: reason.to_owned(),
                bank_reference: bank_reference.to_owned(),
            },
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use jiuzhu_eventstore::given_when_then::{given, when};

    fn submit(d: &Disbursement) -> Result<Vec<PaymentsEvent>, DisbursementError> {
        d.submit("sim", Sealed::default(), "6222 **** 1234")
    }

    fn later() -> Option<String> {
        Some("2026-11-29T10:00:00Z".to_owned())
    }

    fn ordered() -> PaymentsEvent {
        PaymentsEvent::DisbursementOrdered(DisbursementOrdered {
            disbursement_id: "d-1".to_owned(),
            case_id: "c-1".to_owned(),
            instalment: 1,
            person_id: "p-1".to_owned(),
            procuratorate: "南明区院".to_owned(),
            amount: Some(Money { fen: 500_000 }),
            sealed_payee: None,
            payee_account_masked: "6222 **** 1234".to_owned(),
            ..DisbursementOrdered::default()
        })
    }

    #[test]
    fn a_short_budget_waits_for_funds_then_reserves() {
        let mut d: Disbursement = given(&[ordered()]);
        let short = when(&mut d, |d| d.reserve(100_000));
        assert!(
            matches!(&short[..], [PaymentsEvent::FundsShort(s)] if s.available == Some(Money { fen: 100_000 }))
        );
        assert_eq!(d.state, State::WaitingForFunds);
        assert!(
            d.reserve(200_000).is_ok_and(|e| e.is_empty()),
            "still short: nothing new"
        );
        when(&mut d, |d| d.reserve(900_000));
        assert_eq!(d.state, State::Reserved);
        assert!(d.reserved);
    }

    #[test]
    fn a_retryable_failure_opens_a_new_attempt_with_a_new_key_and_a_late_callback_changes_nothing()
    {
        let mut d: Disbursement = given(&[ordered()]);
        when(&mut d, |d| d.reserve(900_000));
        when(&mut d, submit);
        assert_eq!(d.idempotency_key, "d-1:1");
        assert!(submit(&d).is_err(), "no second attempt while one is out");
        when(&mut d, |d| d.fail(1, "bank unavailable", later()));
        assert!(
            d.fail(1, "bank unavailable", later())
                .is_ok_and(|e| e.is_empty())
        );
        when(&mut d, submit);
        assert_eq!(d.idempotency_key, "d-1:2");
        assert_eq!(
            parse_attempt_key(&attempt_key("0190d5c2-8a6e-7000-8000-000000000001", 2)).map(|k| k.1),
            Some(2)
        );
        assert!(
            d.succeed(3, "never sent", OutcomeSource::ProviderNotice)
                .is_err(),
            "an attempt that was never made is refused"
        );
        let paid = when(&mut d, |d| {
            d.succeed(2, "ref-9", OutcomeSource::ProviderAnswer)
        });
        assert!(
            matches!(&paid[..], [PaymentsEvent::DisbursementSucceeded(s)] if s.amount == Some(Money { fen: 500_000 }))
        );
        assert!(
            d.succeed(2, "ref-9", OutcomeSource::ProviderNotice)
                .is_ok_and(|e| e.is_empty()),
            "a duplicate callback"
        );
        // The bank paid the first attempt after all: a second payment, never dropped.
        let late = when(&mut d, |d| {
            d.succeed(1, "ref-1", OutcomeSource::ProviderNotice)
        });
        assert!(
            matches!(&late[..], [PaymentsEvent::DisbursementOverpaid(o)]
                if o.attempt == 1 && o.reason.contains("attempt 2 was paid already")),
            "{late:?}"
        );
        assert_eq!((d.state, d.paid_attempt), (State::Succeeded, 2));
        assert!(d.cancel("too late", "x").is_err());
        when(&mut d, |d| d.reverse("account closed", "b-1"));
        assert_eq!(d.state, State::Reversed);
    }

    #[test]
    fn a_late_answer_after_a_retryable_failure_is_the_payment() {
        let mut d: Disbursement = given(&[ordered()]);
        when(&mut d, |d| d.reserve(900_000));
        when(&mut d, submit);
        when(&mut d, |d| d.fail(1, "bank unavailable", later()));
        // Before the retry goes out, the bank says attempt 1 was paid: it is the payment.
        let paid = when(&mut d, |d| {
            d.succeed(1, "ref-late", OutcomeSource::ProviderNotice)
        });
        assert!(
            matches!(&paid[..], [PaymentsEvent::DisbursementSucceeded(s)] if s.attempt == 1),
            "{paid:?}"
        );
        assert_eq!((d.state, d.paid_attempt), (State::Succeeded, 1));
        assert!(submit(&d).is_err(), "no second attempt once paid");
    }

    #[test]
    fn a_payment_after_a_cancel_is_an_overpayment() {
        let mut d: Disbursement = given(&[ordered()]);
        when(&mut d, |d| d.reserve(900_000));
        when(&mut d, submit);
        when(&mut d, |d| d.fail(1, "bank unavailable", later()));
        when(&mut d, |d| d.cancel("the heirs apply anew", "finance-1"));
        let paid = when(&mut d, |d| {
            d.succeed(1, "ref-after", OutcomeSource::Statement)
        });
        assert!(
            matches!(&paid[..], [PaymentsEvent::DisbursementOverpaid(o)]
                if o.reason.contains("cancelled") && o.amount == Some(Money { fen: 500_000 })),
            "{paid:?}"
        );
        assert_eq!(d.state, State::Cancelled);
    }

    #[test]
    fn a_definite_failure_releases_the_money() {
        let mut d: Disbursement = given(&[ordered()]);
        when(&mut d, |d| d.reserve(900_000));
        when(&mut d, submit);
        when(&mut d, |d| d.fail(1, "account does not exist", None));
        assert_eq!(d.state, State::Failed);
        assert!(!d.reserved);
        assert!(submit(&d).is_err());
        // An officer retries: the money must be held again before a new attempt.
        when(&mut d, |d| d.retry("finance-1", "new card registered"));
        assert_eq!(d.state, State::Ordered);
        assert!(
            d.retry("finance-1", "again").is_err(),
            "nothing to retry now"
        );
        when(&mut d, |d| d.reserve(900_000));
        when(&mut d, submit);
        assert_eq!(d.idempotency_key, "d-1:2");
    }

    #[test]
    fn a_retry_after_a_retryable_failure_keeps_the_money_held() {
        let mut d: Disbursement = given(&[ordered()]);
        when(&mut d, |d| d.reserve(900_000));
        when(&mut d, submit);
        when(&mut d, |d| d.fail(1, "bank busy", later()));
        when(&mut d, |d| d.retry("finance-1", "bank is back"));
        assert_eq!(d.state, State::Reserved);
        assert!(d.reserved);
    }

    #[test]
    fn instalments_sum_to_the_decision_and_fall_month_by_month() {
        let from = chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap_or_default();
        let plan = instalment_plan(1_000_001, 3, 1, from);
        let fen: Vec<i64> = plan.iter().map(|i| i.fen).collect();
        assert_eq!(fen, [333_335, 333_333, 333_333]);
        assert_eq!(fen.iter().sum::<i64>(), 1_000_001);
        let days: Vec<String> = plan.iter().map(|i| i.pay_from.to_string()).collect();
        assert_eq!(days, ["2026-01-31", "2026-02-28", "2026-03-31"]);
        assert_eq!(instalment_plan(500, 0, 1, from).len(), 1, "0 means at once");
    }

    #[test]
    fn names_compare_without_spaces_and_dots() {
        assert!(same_name("阿卜杜·热合曼", "阿卜杜 热合曼"));
        assert!(same_name("王秀英", " 王秀英 "));
        assert!(!same_name("王秀英", "王秀"));
        assert!(!same_name("", ""));
        assert_eq!(
            check_other_account("NX 1234 5678"),
            Ok("NX12345678".to_owned())
        );
        assert_eq!(check_other_account("12-34"), Err(PayeeError::OtherAccount));
    }

    #[test]
    fn bank_cards_are_checked_and_masked() {
        assert_eq!(
            check_bank_card("6222 0212 3456 7890 128"),
            Ok("6222021234567890128".to_owned())
        );
        assert_eq!(
            check_bank_card("6222 0212 3456 7890 127"),
            Err(PayeeError::CheckDigit),
            "one digit off"
        );
        assert_eq!(
            check_bank_card("4111 1111 1111 1111"),
            Ok("4111111111111111".to_owned())
        );
        assert_eq!(check_bank_card("1234"), Err(PayeeError::CardLength));
        assert_eq!(mask("4111111111111111"), "4111 **** 1111");
    }
}
