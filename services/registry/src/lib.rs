//! The registry service: one event-sourced record per person and household with its poverty
//! status history, fed by departments (bulk files and live feeds), the per-person file, the
//! personal-data key service and the data shared with departments under their agreements.
//!
//! Floor plan, the same in every service: `domain` (pure: aggregates decide, events record),
//! `app` (the service object and the one command path every adapter uses), the adapters —
//! `grpc` (the API), reactions to other services' events, `projections` (read models built only
//! from events), jobs (timers) — and `migrations/` (its own tables).
//! Here: reactions `inbound` (department feeds), `person_file` and `sharing` (what departments
//! receive); support `bulk`, `claims`, `queries`, `sealing`; section `[registry]`.

pub mod app;
pub mod bulk;
pub mod claims;
pub mod domain;
pub mod grpc;
pub mod inbound;
pub mod links;
pub mod payments_out;
pub mod person_file;
pub mod projections;
pub mod queries;
pub mod sealing;
pub mod sharing;

use jiuzhu_proto::registry::person_key_service_server::PersonKeyServiceServer;
use jiuzhu_proto::registry::registry_service_server::RegistryServiceServer;
use jiuzhu_runtime::{Components, Service, ServiceContext, StartError, register, register_inbound};
use jiuzhu_vault::Vault;

/// The registry as the runtime sees it.
#[derive(Debug)]
pub struct Registry;

impl Service for Registry {
    const NAME: &'static str = "registry";
    const DEFAULT_PORT: u16 = 50051;
    const SECTIONS: &'static [&'static str] =
        &[<inbound::FeedSettings as jiuzhu_config::Section>::NAME];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn components(context: &ServiceContext) -> Result<Components, StartError> {
        let limit = context.settings.limits.max_message_bytes;
        let feeds: inbound::FeedSettings = context.settings.own.get()?;
        let vault = Vault::from_settings(&context.settings.vault)
            .map_err(|error| StartError::Setup(error.to_string()))?;
        let set = context.policy.in_force(context.clock.today());
        let agreements =
            jiuzhu_sharing::Agreements::parse_for_contracts(set.text(jiuzhu_policy::SHARING))
                .map_err(|error| StartError::Setup(format!("data-sharing agreements: {error}")))?;
        let secret = vault
            .derive_key("sharing-pseudonyms")
            .map_err(|error| StartError::Setup(format!("sharing key: {error}")))?;
        let agreements = std::sync::Arc::new(agreements);
        let (pool, kafka, relay, shared) = (
            context.store.pool().clone(),
            context.settings.kafka.clone(),
            context.settings.outbox.clone(),
            agreements.clone(),
        );
        Ok(Components::new()
            .projection(register(sharing::Sharing::new(
                agreements,
                secret,
                vault.clone(),
            )))
            .task("registry.share_relay", move |shutdown| {
                sharing::relay(
                    pool.clone(),
                    shared.clone(),
                    kafka.clone(),
                    relay.clone(),
                    shutdown,
                )
            })
            .grpc(
                RegistryServiceServer::new(app::RegistryApi::new(
                    context.store.clone(),
                    vault.clone(),
                ))
                .max_decoding_message_size(limit),
            )
            .grpc(
                PersonKeyServiceServer::new(grpc::PersonKeyApi::new(
                    context.store.clone(),
                    vault.clone(),
                ))
                .max_decoding_message_size(limit),
            )
            .projection(register(
                projections::Persons::new(vault.clone())
                    .map_err(|error| StartError::Setup(format!("vault: {error}")))?,
            ))
            .projection(register(person_file::PersonFile))
            .projection(register(links::PersonLinks))
            .projection(register(payments_out::PaymentsOut))
            .inbound(register_inbound(inbound::DepartmentFeeds::new(
                context.store.clone(),
                vault,
                feeds.departments,
            ))))
    }
}
