//! The ledger in PostgreSQL: a transaction's entries and the balances they change are written
//! in the caller's unit of work, so money moves exactly when the events that explain it commit.
//! The domain (`ledger`) has already checked that the entries sum to zero; the balance table's
//! constraint refuses an overdraft even if a check was missed.

use std::collections::BTreeMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::ledger::{Transaction, budget, paid, reserved};

/// Writes `transaction` (entries and balances).
pub async fn post(
    conn: &mut PgConnection,
    transaction: &Transaction,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let (accounts, amounts): (Vec<String>, Vec<i64>) = transaction
        .entries()
        .iter()
        .map(|e| (e.account.clone(), e.fen))
        .unzip();
    sqlx::query(
        "INSERT INTO ledger_entries (transaction_id, account, fen, reason) \
         SELECT $1, a, f, $4 FROM unnest($2::text[], $3::bigint[]) AS x(a, f)",
    )
    .bind(Uuid::now_v7())
    .bind(&accounts)
    .bind(&amounts)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO account_balances (account, fen) SELECT * FROM unnest($1::text[], $2::bigint[]) \
         ON CONFLICT (account) DO UPDATE SET fen = account_balances.fen + EXCLUDED.fen",
    )
    .bind(&accounts)
    .bind(&amounts)
    .execute(conn)
    .await?;
    Ok(())
}

/// An account's balance, locked for the rest of the transaction (so two reservations cannot
/// both see the same free money).
pub async fn balance_for_update(
    conn: &mut PgConnection,
    account: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_balances (account, fen) VALUES ($1, 0) ON CONFLICT (account) DO NOTHING",
    )
    .bind(account)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT fen FROM account_balances WHERE account = $1 FOR UPDATE")
        .bind(account)
        .fetch_one(conn)
        .await
}

/// Budget, reserved and paid of a procuratorate.
pub async fn balances(
    pool: &sqlx::PgPool,
    procuratorate: &str,
) -> Result<(i64, i64, i64), sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT account, fen FROM account_balances WHERE account = ANY($1)")
            .bind(vec![
                budget(procuratorate),
                reserved(procuratorate),
                paid(procuratorate),
            ])
            .fetch_all(pool)
            .await?;
    let found: BTreeMap<String, i64> = rows.into_iter().collect();
    let get = |account: &str| found.get(account).copied().unwrap_or(0);
    Ok((
        get(&budget(procuratorate)),
        get(&reserved(procuratorate)),
        get(&paid(procuratorate)),
    ))
}
