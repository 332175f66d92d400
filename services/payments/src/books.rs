//! The ledger in PostgreSQL: a transaction's entries and the balances they change are written
//! in the caller's unit of work, so money moves exactly when the events that explain it commit.
//! The domain (`ledger`) has already checked that the entries sum to zero; the balance table's
//! constraint refuses an overdraft even if a check was missed.

use std::collections::BTreeMap;

use jiuzhu_errors::AppError;
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
    // Rows first, then the update: an insert's values are checked against `no_overdraft`
    // before any conflict is resolved, so a withdrawal cannot be an upsert.
    sqlx::query(
        "INSERT INTO account_balances (account, fen) SELECT a, 0 FROM unnest($1::text[]) AS a \
         ON CONFLICT (account) DO NOTHING",
    )
    .bind(&accounts)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE account_balances b SET fen = b.fen + x.f \
         FROM unnest($1::text[], $2::bigint[]) AS x(a, f) WHERE b.account = x.a",
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

/// The office a procuratorate's budget belongs to, if it was funded since budgets had offices.
pub async fn budget_office<'c, E>(
    executor: E,
    procuratorate: &str,
) -> Result<Option<String>, sqlx::Error>
where
    E: sqlx::PgExecutor<'c>,
{
    sqlx::query_scalar("SELECT office FROM budget_offices WHERE procuratorate = $1")
        .bind(procuratorate)
        .fetch_optional(executor)
        .await
}

/// The office an allocation funds: the one the budget belongs to, which must be within the
/// caller's jurisdiction; a budget that belongs to none yet becomes the caller's office's.
pub async fn bind_budget(
    conn: &mut PgConnection,
    procuratorate: &str,
    caller: &jiuzhu_access::Caller,
) -> Result<String, AppError> {
    sqlx::query(
        "INSERT INTO budget_offices (procuratorate, office) VALUES ($1, $2) \
         ON CONFLICT (procuratorate) DO NOTHING",
    )
    .bind(procuratorate)
    .bind(&caller.identity.office)
    .execute(&mut *conn)
    .await
    .map_err(AppError::storage)?;
    let office: String =
        sqlx::query_scalar("SELECT office FROM budget_offices WHERE procuratorate = $1")
            .bind(procuratorate)
            .fetch_one(&mut *conn)
            .await
            .map_err(AppError::storage)?;
    caller.office_check(&office)?;
    Ok(office)
}

/// Whether a disbursement of a case of `region_code` may draw on a budget of `office` (a budget
/// funded before budgets had offices serves every case, as it did).
pub fn draws_on(office: Option<&str>, region_code: &str) -> bool {
    office.is_none_or(|office| jiuzhu_access::office_covers(office, region_code))
}
