//! The payments service: budgets, a double-entry ledger and exactly-once disbursement of relief
//! funds.
//!
//! Floor plan, the same in every service: `domain` (pure: aggregates decide, events record),
//! `app` (the service object and the one command path every adapter uses), the adapters —
//! `grpc` (the API), reactions to other services' events, `projections` (read models built only
//! from events), jobs (timers) — and `migrations/` (its own tables).
//! Here: reactions `orders` (approved decisions become disbursements, funds reserved or
//! waiting) and `payees` (accounts, sealed, checked against the registry's name); job
//! `submission` (exactly-once payment through the provider, and its notices); support
//! `ledger`/`books` (double entry in PostgreSQL), `provider` (the bank-gateway adapter),
//! `reconciliation` (bank statements); sections `[payments]` and `[provider]`.

pub mod app;
pub mod books;
pub mod domain;
pub mod grpc;
pub mod ledger;
pub mod orders;
pub mod payees;
pub mod provider;
pub mod reconciliation;
pub mod settings;
pub mod submission;

use std::sync::Arc;
use std::time::Duration;

use jiuzhu_config::Section as _;
use jiuzhu_proto::gateway::gateway_notice_service_server::GatewayNoticeServiceServer;
use jiuzhu_proto::payments::payments_service_server::PaymentsServiceServer;
use jiuzhu_runtime::{
    Components, Service, ServiceContext, StartError, register, register_reaction,
};
use jiuzhu_vault::RemoteKeys;

/// The payments service as the runtime sees it.
#[derive(Debug)]
pub struct Payments;

impl Service for Payments {
    const NAME: &'static str = "payments";
    const DEFAULT_PORT: u16 = 50054;
    const SECTIONS: &'static [&'static str] = &[settings::ProviderSettings::NAME];

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn shared_migrators() -> Vec<sqlx::migrate::Migrator> {
        vec![jiuzhu_persons::migrator()]
    }

    fn components(context: &ServiceContext) -> Result<Components, StartError> {
        let limit = context.settings.limits.max_message_bytes;
        let settings: settings::ProviderSettings = context.settings.own.get()?;
        let keys =
            RemoteKeys::new(context.endpoint("peers.registry", &context.settings.peers.registry)?);
        let provider = provider::GatewayProvider::new(
            &settings.name,
            context.endpoint("provider.endpoint", &settings.endpoint)?,
            Duration::from_millis(settings.request_timeout_ms),
        );
        let wake = Arc::new(tokio::sync::Notify::new());
        let api = app::PaymentsApi::new(
            context.store.clone(),
            keys.clone(),
            settings.clone(),
            wake.clone(),
        );
        let submitter = Arc::new(submission::Submitter::new(
            context.store.clone(),
            Arc::new(provider),
            keys,
            settings.clone(),
            wake,
        ));
        Ok(Components::new()
            .grpc(PaymentsServiceServer::new(api.clone()).max_decoding_message_size(limit))
            .grpc(
                GatewayNoticeServiceServer::new(submission::Notices::new(
                    context.store.clone(),
                    settings,
                ))
                .max_decoding_message_size(limit),
            )
            .inbound(register_reaction(orders::DecisionOrders::new(api)))
            .projection(register(payees::PersonIdentities))
            .projection(register(jiuzhu_persons::RegistryPersons::new(Self::NAME)))
            .metrics(submission::metrics)
            .task("payments.submitter", move |shutdown| {
                std::sync::Arc::clone(&submitter).run(shutdown)
            }))
    }
}
