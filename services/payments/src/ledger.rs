//! The double-entry ledger, free of I/O: every movement of relief money is one transaction of
//! entries that sum to zero, balances are only ever the sum of entries, and a procuratorate's
//! budget cannot be overdrawn. Money is integer fen.
//!
//! Accounts: `finance` (where allocations come from), `budget:<procuratorate>` (allocated,
//! free), `reserved:<procuratorate>` (held for ordered disbursements), `paid:<procuratorate>`
//! (left the procuratorate through the provider). Reserve moves budget → reserved; a payment that succeeds
//! moves reserved → paid; a failure or cancellation releases reserved → budget; a bank refund
//! moves paid → budget.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a transaction needs at least two non-zero entries")]
    TooFewEntries,
    #[error("entries sum to {0} fen, not zero")]
    Unbalanced(i64),
    #[error("amount must be positive, not {0} fen")]
    NotPositive(i64),
    #[error("{account} holds {available} fen; {wanted} fen cannot be taken from it")]
    Insufficient {
        account: String,
        available: i64,
        wanted: i64,
    },
    #[error("the amount overflows")]
    Overflow,
    #[error("account {0} appears twice in one transaction")]
    RepeatedAccount(String),
}

/// One side of a movement: `fen` is added to `account` (negative takes away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account: String,
    pub fen: i64,
}

/// Entries that sum to zero, checked on construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    entries: Vec<Entry>,
}

impl Transaction {
    pub fn new(entries: Vec<Entry>) -> Result<Self, LedgerError> {
        if entries.len() < 2 || entries.iter().any(|e| e.fen == 0) {
            return Err(LedgerError::TooFewEntries);
        }
        for (n, entry) in entries.iter().enumerate() {
            if entries[..n].iter().any(|e| e.account == entry.account) {
                return Err(LedgerError::RepeatedAccount(entry.account.clone()));
            }
        }
        let sum = entries
            .iter()
            .try_fold(0i64, |sum, e| sum.checked_add(e.fen))
            .ok_or(LedgerError::Overflow)?;
        if sum != 0 {
            return Err(LedgerError::Unbalanced(sum));
        }
        Ok(Self { entries })
    }

    /// `fen` from one account to another.
    pub fn transfer(from: &str, to: &str, fen: i64) -> Result<Self, LedgerError> {
        if fen <= 0 {
            return Err(LedgerError::NotPositive(fen));
        }
        Self::new(vec![
            Entry {
                account: from.to_owned(),
                fen: -fen,
            },
            Entry {
                account: to.to_owned(),
                fen,
            },
        ])
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Finance allocates budget to a procuratorate.
    pub fn allocation(procuratorate: &str, fen: i64) -> Result<Self, LedgerError> {
        Self::transfer(FINANCE, &budget(procuratorate), fen)
    }

    /// Budget held for an ordered disbursement.
    pub fn reservation(procuratorate: &str, fen: i64) -> Result<Self, LedgerError> {
        Self::transfer(&budget(procuratorate), &reserved(procuratorate), fen)
    }

    /// A reservation given back (failure, cancellation).
    pub fn release(procuratorate: &str, fen: i64) -> Result<Self, LedgerError> {
        Self::transfer(&reserved(procuratorate), &budget(procuratorate), fen)
    }

    /// A reservation paid out by the provider.
    pub fn settlement(procuratorate: &str, fen: i64) -> Result<Self, LedgerError> {
        Self::transfer(&reserved(procuratorate), &paid(procuratorate), fen)
    }

    /// A payment the bank sent back.
    pub fn refund(procuratorate: &str, fen: i64) -> Result<Self, LedgerError> {
        Self::transfer(&paid(procuratorate), &budget(procuratorate), fen)
    }
}

pub const FINANCE: &str = "finance";

pub fn budget(procuratorate: &str) -> String {
    format!("budget:{procuratorate}")
}

pub fn reserved(procuratorate: &str) -> String {
    format!("reserved:{procuratorate}")
}

pub fn paid(procuratorate: &str) -> String {
    format!("paid:{procuratorate}")
}

/// Balances derived from posted transactions.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    balances: BTreeMap<String, i64>,
    posted: Vec<Transaction>,
}

impl Ledger {
    pub fn balance(&self, account: &str) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    pub fn posted(&self) -> &[Transaction] {
        &self.posted
    }

    /// Posts a transaction. Accounts other than `finance` may never go below zero.
    pub fn post(&mut self, transaction: Transaction) -> Result<(), LedgerError> {
        let mut after = Vec::with_capacity(transaction.entries.len());
        for entry in &transaction.entries {
            let available = self.balance(&entry.account);
            let balance = available
                .checked_add(entry.fen)
                .ok_or(LedgerError::Overflow)?;
            if balance < 0 && entry.account != FINANCE {
                return Err(LedgerError::Insufficient {
                    account: entry.account.clone(),
                    available,
                    wanted: -entry.fen,
                });
            }
            after.push((entry.account.clone(), balance));
        }
        self.balances.extend(after);
        self.posted.push(transaction);
        Ok(())
    }

    pub fn allocate(&mut self, procuratorate: &str, fen: i64) -> Result<(), LedgerError> {
        self.post(Transaction::allocation(procuratorate, fen)?)
    }

    pub fn reserve(&mut self, procuratorate: &str, fen: i64) -> Result<(), LedgerError> {
        self.post(Transaction::reservation(procuratorate, fen)?)
    }

    pub fn release(&mut self, procuratorate: &str, fen: i64) -> Result<(), LedgerError> {
        self.post(Transaction::release(procuratorate, fen)?)
    }

    pub fn settle(&mut self, procuratorate: &str, fen: i64) -> Result<(), LedgerError> {
        self.post(Transaction::settlement(procuratorate, fen)?)
    }

    pub fn refund(&mut self, procuratorate: &str, fen: i64) -> Result<(), LedgerError> {
        self.post(Transaction::refund(procuratorate, fen)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_budget_cannot_be_overdrawn_and_a_refusal_changes_nothing() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.allocate("南明区院", 1_000_000), Ok(()));
        assert_eq!(ledger.reserve("南明区院", 600_000), Ok(()));
        assert_eq!(
            ledger.reserve("南明区院", 600_000),
            Err(LedgerError::Insufficient {
                account: budget("南明区院"),
                available: 400_000,
                wanted: 600_000,
            })
        );
        assert_eq!(ledger.balance(&budget("南明区院")), 400_000);
        assert_eq!(ledger.posted().len(), 2);
        assert_eq!(ledger.settle("南明区院", 600_000), Ok(()));
        assert_eq!(ledger.balance(&paid("南明区院")), 600_000);
        assert_eq!(ledger.refund("南明区院", 600_000), Ok(()));
        assert_eq!(ledger.balance(&budget("南明区院")), 1_000_000);
    }

    #[test]
    fn unbalanced_or_empty_transactions_are_refused() {
        let lopsided = vec![
            Entry {
                account: "a".to_owned(),
                fen: -5,
            },
            Entry {
                account: "b".to_owned(),
                fen: 4,
            },
        ];
        assert_eq!(Transaction::new(lopsided), Err(LedgerError::Unbalanced(-1)));
        assert_eq!(
            Transaction::new(Vec::new()),
            Err(LedgerError::TooFewEntries)
        );
        assert_eq!(
            Transaction::transfer("a", "b", 0),
            Err(LedgerError::NotPositive(0))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate(usize, i64),
        Reserve(usize, i64),
        Release(usize, i64),
        Settle(usize, i64),
        Refund(usize, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let who = 0usize..3;
        let fen = 1i64..2_000_000;
        prop_oneof![
            (who.clone(), fen.clone()).prop_map(|(w, f)| Op::Allocate(w, f)),
            (who.clone(), fen.clone()).prop_map(|(w, f)| Op::Reserve(w, f)),
            (who.clone(), fen.clone()).prop_map(|(w, f)| Op::Release(w, f)),
            (who.clone(), fen.clone()).prop_map(|(w, f)| Op::Settle(w, f)),
            (who, fen).prop_map(|(w, f)| Op::Refund(w, f)),
        ]
    }

    proptest! {
        /// Whatever happens: every posted transaction sums to zero, the balances are the sums
        /// of the entries, everything sums to zero, and no budget, reservation or payment
        /// account goes negative (a refused operation posts nothing).
        #[test]
        fn the_ledger_invariant_holds_for_any_sequence(ops in proptest::collection::vec(op(), 1..200)) {
            let names = ["南明区院", "云岩区院", "朝阳区院"];
            let mut ledger = Ledger::default();
            for op in ops {
                let before = ledger.posted().len();
                let result = match op {
                    Op::Allocate(w, f) => ledger.allocate(names[w], f),
                    Op::Reserve(w, f) => ledger.reserve(names[w], f),
                    Op::Release(w, f) => ledger.release(names[w], f),
                    Op::Settle(w, f) => ledger.settle(names[w], f),
                    Op::Refund(w, f) => ledger.refund(names[w], f),
                };
                prop_assert_eq!(ledger.posted().len(), before + usize::from(result.is_ok()));
            }
            let mut sums: BTreeMap<String, i64> = BTreeMap::new();
            for transaction in ledger.posted() {
                prop_assert_eq!(transaction.entries().iter().map(|e| e.fen).sum::<i64>(), 0);
                for entry in transaction.entries() {
                    *sums.entry(entry.account.clone()).or_default() += entry.fen;
                }
            }
            for (account, sum) in &sums {
                prop_assert_eq!(ledger.balance(account), *sum);
                if account != FINANCE {
                    prop_assert!(*sum >= 0, "{} is {}", account, sum);
                }
            }
            prop_assert_eq!(sums.values().sum::<i64>(), 0);
        }
    }
}
