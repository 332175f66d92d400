//! The decisions service: relief cases from application to closing. A case opens from a clue
//! referral, an application or a prosecutor (once per person per criminal case), gathers the
//! materials its category needs, is assessed against the policy's categories and exclusions,
//! accepted, decided within the cap by the approver its amount needs, paid, notified and
//! closed; every stage carries its deadline in working days on the calendar.
//!
//! Floor plan, the same in every service: `domain` (pure: aggregates decide, events record),
//! `app` (the service object and the one command path every adapter uses), the adapters —
//! `grpc` (the API), reactions to other services' events, `projections` (read models built only
//! from events), jobs (timers) — and `migrations/` (its own tables).
//! Here: reactions `referrals` (clues referred), `payments` (payment progress), `departments`
//! (referral answers), `reports` (closed cases received by rural revitalization), `merges`
//! (double relief found by a merge); projection `jiuzhu_persons` (the registry's persons); job
//! `monitor` (deadlines); `policy`; section `[decisions]`.

pub mod app;
pub mod departments;
pub mod domain;
pub mod grpc;
pub mod merges;
pub mod monitor;
pub mod payments;
pub mod policy;
pub mod projections;
pub mod referrals;
pub mod reports;
pub mod settings;

use jiuzhu_config::Section as _;
use jiuzhu_proto::decisions::decisions_service_server::DecisionsServiceServer;
use jiuzhu_runtime::{
    Components, Service, ServiceContext, StartError, register, register_inbound, register_reaction,
};

/// The decisions service as the runtime sees it.
#[derive(Debug)]
pub struct Decisions;

impl Service for Decisions {
    const NAME: &'static str = "decisions";
    const DEFAULT_PORT: u16 = 50053;
    const SECTIONS: &'static [&'static str] = &[settings::RecommenderSettings::NAME];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn shared_migrators() -> Vec<sqlx::migrate::Migrator> {
        vec![jiuzhu_persons::migrator()]
    }

    fn components(context: &ServiceContext) -> Result<Components, StartError> {
        let limit = context.settings.limits.max_message_bytes;
        let rules = app::Rules::from_book(&context.policy, context.clock.clone())
            .map_err(|error| StartError::Setup(format!("relief policy: {error}")))?;
        let own: settings::RecommenderSettings = context.settings.own.get()?;
        let recommender = match &own.model {
            Some(path) => Some(load_model(path)?),
            None => None,
        };
        let api = app::DecisionsApi::new(context.store.clone(), rules, recommender);
        let monitor = std::sync::Arc::new(monitor::Monitor::new(api.clone()));
        let departments: Vec<String> = api
            .referral_departments()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let every = std::time::Duration::from_secs(context.settings.deadlines.scan_seconds);
        let clock = context.clock.clone();
        Ok(Components::new()
            .grpc(DecisionsServiceServer::new(api.clone()).max_decoding_message_size(limit))
            .inbound(register_inbound(departments::ReferralUpdates::new(
                api.clone(),
                departments,
            )))
            .inbound(register_reaction(payments::PaymentProgress::new(
                api.clone(),
            )))
            .inbound(register_inbound(reports::CaseReports::new(api.clone())))
            .inbound(register_reaction(merges::MergedClaims::new(api.clone())))
            .inbound(register_reaction(referrals::Referrals::new(api)))
            .projection(register(projections::CaseBoard))
            .projection(register(projections::PersonFacts))
            .projection(register(jiuzhu_persons::RegistryPersons::new(Self::NAME)))
            .projection(register(projections::CaseOutcomes))
            .metrics(move |pool| projections::metrics(pool, clock.today()))
            .task("decisions.deadline_monitor", move |shutdown| {
                std::sync::Arc::clone(&monitor).run(every, shutdown)
            }))
    }
}

/// A configured model must load: a broken one is a start error, never silently ignored.
fn load_model(path: &std::path::Path) -> Result<jiuzhu_recommend::Recommender, StartError> {
    let file = std::fs::File::open(path).map_err(|error| {
        StartError::Setup(format!("recommender.model {}: {error}", path.display()))
    })?;
    let model: jiuzhu_recommend::Recommender =
        serde_json::from_reader(std::io::BufReader::new(file)).map_err(|error| {
            StartError::Setup(format!(
                "recommender.model {} is not a model written by `jiuzhu recommend train`: {error}",
                path.display()
            ))
        })?;
    tracing::info!(version = %model.version, cases = model.trained_on, "recommendation model loaded");
    Ok(model)
}
