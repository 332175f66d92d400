//! The followup service: return visits, effect evaluation and return-to-poverty alerts after
//! relief is paid.
//!
//! Floor plan, the same in every service: `domain` (pure: aggregates decide, events record),
//! `app` (the service object and the one command path every adapter uses), the adapters —
//! `grpc` (the API), reactions to other services' events, `projections` (read models built only
//! from events), jobs (timers) — and `migrations/` (its own tables).
//! Here: reactions `plans` (payments open plans), `cases` (relief cases, from the decisions
//! topic) and `registry_risks` (statuses the registry records between visits); job `monitor` (missed visits); `policy` (schedules, poverty lines, the effect score,
//! the risk rules); sections `[followup]`, `[deadlines]` and `[peers]`.

pub mod app;
pub mod cases;
pub mod domain;
pub mod grpc;
pub mod monitor;
pub mod plans;
pub mod policy;
pub mod projections;
pub mod registry_risks;

use jiuzhu_proto::followup::followup_service_server::FollowupServiceServer;
use jiuzhu_runtime::{
    Components, Service, ServiceContext, StartError, register, register_reaction,
};
use jiuzhu_vault::RemoteKeys;

/// The followup service as the runtime sees it.
#[derive(Debug)]
pub struct Followup;

impl Service for Followup {
    const NAME: &'static str = "followup";
    const DEFAULT_PORT: u16 = 50055;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn shared_migrators() -> Vec<sqlx::migrate::Migrator> {
        vec![jiuzhu_persons::migrator()]
    }

    fn components(context: &ServiceContext) -> Result<Components, StartError> {
        let limit = context.settings.limits.max_message_bytes;
        let clock = context.clock.clone();
        let policy = context
            .policy
            .parse_each(jiuzhu_policy::FOLLOWUP, |text| {
                policy::FollowupPolicy::parse(text).map_err(|error| {
                    jiuzhu_policy::PolicyError::from_config(jiuzhu_policy::FOLLOWUP, text, &error)
                })
            })
            .map_err(|error| StartError::Setup(format!("follow-up policy: {error}")))?;
        let keys =
            RemoteKeys::new(context.endpoint("peers.registry", &context.settings.peers.registry)?);
        let every = std::time::Duration::from_secs(context.settings.deadlines.scan_seconds);
        let api = app::FollowupApi::new(context.store.clone(), policy, keys, clock);
        let monitor = std::sync::Arc::new(monitor::Monitor::new(api.clone()));
        Ok(Components::new()
            .grpc(FollowupServiceServer::new(api.clone()).max_decoding_message_size(limit))
            .inbound(register_reaction(plans::PaymentPlans::new(api.clone())))
            .inbound(register_reaction(registry_risks::RegistryRisks::new(api)))
            .projection(register(cases::CaseFacts))
            .projection(register(projections::VisitBoard))
            .projection(register(jiuzhu_persons::RegistryPersons::new(Self::NAME)))
            .metrics(projections::metrics)
            .task("followup.visit_monitor", move |shutdown| {
                std::sync::Arc::clone(&monitor).run(every, shutdown)
            }))
    }
}
