//! The clue acquisition service: case parties are matched against the registry and a match
//! becomes a clue for the relief prosecutor. Its linkage index is a projection of the registry's
//! topic (never of the registry's database).
//!
//! Floor plan, the same in every service: `domain` (pure: aggregates decide, events record),
//! `app` (the service object and the one command path every adapter uses), the adapters —
//! `grpc` (the API), reactions to other services' events, `projections` (read models built only
//! from events), jobs (timers) — and `migrations/` (its own tables).
//! Here: reactions `inbound` (department clues), `relief` (a clue closes when its case opens),
//! `reverse` (reverse correlation), `case_correlation` (a case's unmatched parties weighed again
//! once another party of it is linked); job `learning` (the linkage model in force and the next
//! one estimated); support `intake`, `matching`, `memory`, `policy`; sections `[clues]` and
//! `[linkage]` (`settings`).

pub mod app;
pub mod case_correlation;
pub mod domain;
pub mod grpc;
pub mod inbound;
pub mod intake;
pub mod learning;
pub mod matching;
pub mod memory;
pub mod policy;
pub mod projections;
pub mod relief;
pub mod reverse;
pub mod settings;

use jiuzhu_config::Section as _;
use jiuzhu_proto::clues::clues_service_server::CluesServiceServer;
use jiuzhu_runtime::{
    Components, Service, ServiceContext, StartError, register, register_inbound, register_reaction,
};
use jiuzhu_vault::RemoteKeys;

/// Clue acquisition as the runtime sees it.
#[derive(Debug)]
pub struct Clues;

impl Service for Clues {
    const NAME: &'static str = "clues";
    const DEFAULT_PORT: u16 = 50052;
    const SECTIONS: &'static [&'static str] = &[settings::LinkageSettings::NAME];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn components(context: &ServiceContext) -> Result<Components, StartError> {
        let limit = context.settings.limits.max_message_bytes;
        let keys =
            RemoteKeys::new(context.endpoint("peers.registry", &context.settings.peers.registry)?);
        let set = context.policy.in_force(context.clock.today());
        let policy = policy::ScreeningPolicy::parse(set.text(jiuzhu_policy::SCREENING))
            .map_err(|error| StartError::Setup(format!("clue screening policy: {error}")))?;
        let index = std::sync::Arc::new(memory::MemoryIndex::new(keys.clone()));
        let vault = jiuzhu_vault::Vault::from_settings(&context.settings.vault)
            .map_err(|error| StartError::Setup(error.to_string()))?;
        let linkage: settings::LinkageSettings = context.settings.own.get()?;
        let file = match &linkage.model {
            Some(path) => Some(learning::read_model_file(path).map_err(StartError::Setup)?),
            None => None,
        };
        let models = std::sync::Arc::new(learning::Models::starting());
        let learning = std::sync::Arc::new(learning::Learning::new(
            context.store.clone(),
            models.clone(),
            index.clone(),
            vault.clone(),
            linkage,
            file,
            policy.thresholds.automatic,
        ));
        let intake =
            intake::Intake::new(context.store.clone(), policy, models, index.clone(), vault)
                .map_err(|error| StartError::Setup(format!("vault: {error}")))?;
        let pool = context.store.pool().clone();
        let api = app::CluesApi::new(context.store.clone(), intake.clone());
        Ok(Components::new()
            .grpc(CluesServiceServer::new(api.clone()).max_decoding_message_size(limit))
            .inbound(register_reaction(relief::ReliefCases::new(api)))
            .inbound(register_inbound(inbound::CaseFeed::new(intake.clone())))
            .inbound(register_reaction(case_correlation::CaseCorrelation::new(
                intake.clone(),
            )))
            .inbound(register_reaction(reverse::ReverseCorrelation::new(
                intake,
                keys.clone(),
            )))
            .projection(register(projections::LinkageIndex::new(keys)))
            // Load the index now rather than on the first party, then follow the projection.
            .task("clues.linkage_follower", move |shutdown| {
                std::sync::Arc::clone(&index).follow(pool.clone(), memory::FOLLOW_EVERY, shutdown)
            })
            .task("clues.linkage_learning", move |shutdown| {
                std::sync::Arc::clone(&learning).run(shutdown)
            })
            .projection(register(projections::ClueBoard)))
    }
}
