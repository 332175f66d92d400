//! Which persons have a payment out at the bank (`payments_out`, from the payments topic): an
//! erasure waits until the person's attempts are answered, so that the bank's answer can still
//! be matched to the person's disbursement and no money is released that the bank may have paid.

use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::payments::{
    DisbursementCancelled, DisbursementFailed, DisbursementOrdered, DisbursementOverpaid,
    DisbursementSubmitted, DisbursementSucceeded,
};
use sqlx::PgConnection;
use uuid::Uuid;

jiuzhu_eventstore::event_enum! {
    /// The payment events that send an attempt out or settle it.
    pub enum PaymentEvents {
        DisbursementOrdered(DisbursementOrdered),
        DisbursementSubmitted(DisbursementSubmitted),
        DisbursementSucceeded(DisbursementSucceeded),
        DisbursementFailed(DisbursementFailed),
        DisbursementCancelled(DisbursementCancelled),
        DisbursementOverpaid(DisbursementOverpaid),
    }
}

#[derive(Debug)]
pub struct PaymentsOut;

impl Projection for PaymentsOut {
    fn name(&self) -> &str {
        "registry.payments_out"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("payments")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let (disbursement, out) = match event.event::<PaymentEvents>()? {
            Some(PaymentEvents::DisbursementOrdered(e)) => {
                let id = ProjectionError::uuid("disbursement_id", &e.disbursement_id)?;
                let person = ProjectionError::uuid("person_id", &e.person_id)?;
                sqlx::query(
                    "INSERT INTO payments_out (disbursement_id, person_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(person)
                .execute(conn)
                .await?;
                return Ok(());
            }
            Some(PaymentEvents::DisbursementSubmitted(e)) => {
                (e.disbursement_id, Some(e.idempotency_key))
            }
            // Answered (paid, failed, or paid when no longer expected), or never to be sent.
            Some(PaymentEvents::DisbursementSucceeded(e)) => (e.disbursement_id, None),
            Some(PaymentEvents::DisbursementFailed(e)) => (e.disbursement_id, None),
            Some(PaymentEvents::DisbursementCancelled(e)) => (e.disbursement_id, None),
            Some(PaymentEvents::DisbursementOverpaid(_)) | None => return Ok(()),
        };
        let id = ProjectionError::uuid("disbursement_id", &disbursement)?;
        sqlx::query("UPDATE payments_out SET attempt_key = $2 WHERE disbursement_id = $1")
            .bind(id)
            .bind(out)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE payments_out")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

/// The attempt of `person` out at the bank, if one is.
pub async fn attempt_out(
    conn: &mut PgConnection,
    person: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT attempt_key FROM payments_out WHERE person_id = $1 AND attempt_key IS NOT NULL \
         ORDER BY attempt_key LIMIT 1",
    )
    .bind(person)
    .fetch_optional(conn)
    .await
}
