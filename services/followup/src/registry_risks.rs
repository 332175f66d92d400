//! Risks the registry tells of between visits: when a department records a status for a person
//! whose plan is open (a monitoring finding of sudden hardship, say), the risk rules naming that
//! status flag a return-to-poverty risk at once instead of waiting for the next visit. Statuses
//! of another day (a history imported late) flag nothing.

use futures::FutureExt;
use jiuzhu_errors::AppError;
use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::registry::StatusRecorded;
use jiuzhu_runtime::grpc::run_internal;
use uuid::Uuid;

use crate::app::FollowupApi;
use crate::domain::FollowupPlan;

jiuzhu_eventstore::event_enum! {
    /// The registry events that can flag a risk.
    pub enum Registry {
        StatusRecorded(StatusRecorded),
    }
}

#[derive(Debug)]
pub struct RegistryRisks {
    api: FollowupApi,
}

impl RegistryRisks {
    pub fn new(api: FollowupApi) -> Self {
        Self { api }
    }

    async fn recorded(&self, status: StatusRecorded) -> Result<(), AppError> {
        let today = self.api.clock.today();
        let day = |text: &str| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
        let in_effect = day(&status.effective_from).is_some_and(|from| from <= today)
            && (status.effective_to.is_empty()
                || day(&status.effective_to).is_some_and(|to| to >= today));
        if !in_effect {
            return Ok(());
        }
        let person = Uuid::parse_str(&status.person_id).map_err(|_| {
            AppError::invalid("person_id", format!("`{}` is not a UUID", status.person_id))
        })?;
        let name = jiuzhu_sharing::status_name(status.kind);
        let policy = self.api.policy_on(today);
        if !policy
            .risks
            .iter()
            .any(|rule| rule.registry_statuses.contains(&name))
        {
            return Ok(());
        }
        // The person's plans, under any of their records (plans keep the id they were paid to).
        let mut conn = self
            .api
            .store
            .pool()
            .acquire()
            .await
            .map_err(AppError::storage)?;
        let survivor = match jiuzhu_persons::lookup(&mut conn, person)
            .await
            .map_err(AppError::storage)?
        {
            jiuzhu_persons::Standing::Person { survivor, .. } => survivor,
            jiuzhu_persons::Standing::Unknown => person,
        };
        let records = jiuzhu_persons::records_of(&mut conn, survivor)
            .await
            .map_err(AppError::storage)?;
        let plans: Vec<Uuid> = sqlx::query_scalar(
            "SELECT c.plan_id FROM plan_claims c JOIN case_facts f USING (case_id) \
             WHERE f.person_id = ANY($1) ORDER BY c.plan_id",
        )
        .bind(&records)
        .fetch_all(&mut *conn)
        .await
        .map_err(AppError::storage)?;
        drop(conn);
        for plan_id in plans {
            let (name, policy) = (name.clone(), policy.clone());
            run_internal(
                &self.api.store,
                "jiuzhu.followup.v1.RegistryRisks",
                &format!("status-risk-{}-{plan_id}", status.status_id),
                move |work| {
                    async move {
                        work.decide_on(&plan_id.to_string(), |plan: &FollowupPlan| {
                            Ok::<_, AppError>(plan.registry_status(&name, &policy))
                        })
                        .await?;
                        Ok(())
                    }
                    .boxed()
                },
            )
            .await?;
        }
        Ok(())
    }
}

impl Reaction for RegistryRisks {
    type Events = Registry;

    fn name(&self) -> &str {
        "followup.registry_risks"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn react(
        &self,
        _envelope: &EventEnvelope,
        event: Registry,
    ) -> Result<(), ProjectionError> {
        let Registry::StatusRecorded(status) = event;
        self.recorded(status)
            .await
            .map_err(jiuzhu_messaging::ProjectionError::from)
    }
}
