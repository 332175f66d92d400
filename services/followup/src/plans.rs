//! Plans open from payments: the first `DisbursementSucceeded` of a relief case (on
//! `jiuzhu.payments.events.v1`) opens its follow-up plan, once per case however often payments
//! are delivered or instalments paid. The schedule counts from the day of payment (Beijing).

use futures::FutureExt;
use jiuzhu_errors::AppError;
use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::payments::DisbursementSucceeded;
use jiuzhu_runtime::grpc::run_internal;
use uuid::Uuid;

use crate::app::FollowupApi;
use crate::domain::{PaidCase, open};

jiuzhu_eventstore::event_enum! {
    /// The payment events that open plans.
    pub enum Payments {
        DisbursementSucceeded(DisbursementSucceeded),
    }
}

#[derive(Debug)]
pub struct PaymentPlans {
    api: FollowupApi,
}

impl PaymentPlans {
    pub fn new(api: FollowupApi) -> Self {
        Self { api }
    }

    async fn open_plan(
        &self,
        paid: DisbursementSucceeded,
        envelope: &EventEnvelope,
    ) -> Result<(), AppError> {
        let case_id = Uuid::parse_str(&paid.case_id)
            .map_err(|_| AppError::internal(format!("case_id `{}` is not a UUID", paid.case_id)))?;
        let facts: Option<(String, String, String, Vec<String>)> = sqlx::query_as(
            "SELECT procuratorate, region_code, category, methods FROM case_facts \
             WHERE case_id = $1 AND approved",
        )
        .bind(case_id)
        .fetch_optional(self.api.store.pool())
        .await
        .map_err(AppError::storage)?;
        // The decision's events may not have arrived yet: try again later.
        let (office, region_code, category, methods) = facts.ok_or_else(|| {
            AppError::unavailable(format!(
                "the decision of case {case_id} has not arrived yet"
            ))
        })?;
        let paid_on = jiuzhu_proto::time::beijing_date(
            envelope
                .occurred_at
                .as_ref()
                .and_then(jiuzhu_proto::time::utc)
                .unwrap_or_else(|| self.api.clock.now()),
        );
        // The schedule of the set in force on the payment day.
        let policy = self.api.policy_on(paid_on);
        run_internal(
            &self.api.store,
            "jiuzhu.followup.v1.PaymentPlans",
            // Per payment: a later instalment of the same case finds the plan claimed.
            &format!("plan-{}", paid.disbursement_id),
            move |work| {
                async move {
                    let plan_id = Uuid::now_v7();
                    let claimed: Option<Uuid> = sqlx::query_scalar(
                        "INSERT INTO plan_claims (case_id, plan_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING RETURNING plan_id",
                    )
                    .bind(case_id)
                    .bind(plan_id)
                    .fetch_optional(work.connection().await?)
                    .await
                    .map_err(AppError::storage)?;
                    if claimed.is_none() {
                        return Ok(paid);
                    }
                    let events = open(
                        PaidCase {
                            plan_id: plan_id.to_string(),
                            person_id: paid.person_id.clone(),
                            case_id: paid.case_id.clone(),
                            disbursement_id: paid.disbursement_id.clone(),
                            office,
                            category,
                            region_code,
                            methods,
                            paid_on,
                            amount_fen: paid.amount.map_or(0, |m| m.fen),
                        },
                        &policy,
                    );
                    work.append(&plan_id.to_string(), 0, &paid.person_id, &events)
                        .await
                        .map_err(AppError::from)?;
                    Ok(paid)
                }
                .boxed()
            },
        )
        .await
        .map(|_| ())
    }
}

impl Reaction for PaymentPlans {
    type Events = Payments;

    fn name(&self) -> &str {
        "followup.payment_plans"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("payments")]
    }

    async fn react(
        &self,
        envelope: &EventEnvelope,
        event: Payments,
    ) -> Result<(), ProjectionError> {
        let Payments::DisbursementSucceeded(paid) = event;
        self.open_plan(paid, envelope)
            .await
            .map_err(jiuzhu_messaging::ProjectionError::from)
    }
}
