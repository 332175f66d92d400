//! Payees: the account a person's relief is paid to. The account is personal data: it is sealed
//! under the person's data key in the event and at rest, shown only masked, and opened only to
//! pay. The holder's name must be the person's as the registry knows it; the registry's
//! identities arrive sealed on its topic (`PersonIdentities`) and are opened, with the key from
//! the registry's key service, only for that check.

use futures::FutureExt;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::Aggregate;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::payments::RegisterPayeeResponse;
use jiuzhu_proto::payments::{AccountKind, Payee, PayeeRegistered, RegisterPayeeRequest};
use jiuzhu_proto::registry::{PersonErased, PersonRegistered, PersonUpdated, PersonalIdentity};
use jiuzhu_runtime::grpc::run_command;
use jiuzhu_vault::KeyState;
use jiuzhu_vault::identity::CarriesIdentity;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::PaymentsApi;
use crate::domain::{PaymentsEvent, check_bank_card, check_other_account, mask, same_name};

jiuzhu_eventstore::event_enum! {
    /// The registry events that carry identities.
    pub enum RegistryFeed {
        PersonRegistered(PersonRegistered),
        PersonUpdated(PersonUpdated),
        PersonErased(PersonErased),
    }
}

/// The registry's sealed identities, newest version per person; erased persons blanked.
#[derive(Debug)]
pub struct PersonIdentities;

impl Projection for PersonIdentities {
    fn name(&self) -> &str {
        "payments.person_identities"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let envelope = &event.envelope;
        let Some(feed) = event.event::<RegistryFeed>()? else {
            return Ok(());
        };
        let (person, sealed, region) = match &feed {
            RegistryFeed::PersonRegistered(e) => (e.person_id(), e.sealed_identity(), &e.region),
            RegistryFeed::PersonUpdated(e) => (e.person_id(), e.sealed_identity(), &e.region),
            RegistryFeed::PersonErased(e) => {
                let person = person_uuid(&e.person_id)?;
                sqlx::query(
                    "INSERT INTO person_identities (person_id, sealed, version, erased) \
                     VALUES ($1, NULL, $2, TRUE) ON CONFLICT (person_id) DO UPDATE \
                     SET sealed = NULL, erased = TRUE, version = EXCLUDED.version",
                )
                .bind(person)
                .bind(envelope.stream_version)
                .execute(conn)
                .await?;
                return Ok(());
            }
        };
        let person = person_uuid(person)?;
        let Some(sealed) = sealed else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO person_identities (person_id, sealed, version, region_code) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (person_id) DO UPDATE \
             SET sealed = EXCLUDED.sealed, version = EXCLUDED.version, region_code = EXCLUDED.region_code \
             WHERE person_identities.version < EXCLUDED.version AND NOT person_identities.erased",
        )
        .bind(person)
        .bind(sealed.encode_to_vec())
        .bind(envelope.stream_version)
        .bind(region.as_ref().map_or("", |r| r.code.as_str()))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE person_identities")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

fn person_uuid(id: &str) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(id)
        .map_err(|_| ProjectionError::Rejected(format!("person id `{id}` is not a UUID")))
}

/// A person's payee stream: only its version matters to commands.
#[derive(Debug, Default)]
struct PayeeStream;

impl Aggregate for PayeeStream {
    type Event = PaymentsEvent;

    fn apply(&mut self, _event: &PaymentsEvent) {}
}

fn payee_stream(person: Uuid) -> String {
    format!("payee-{person}")
}

/// Checks, seals and records a person's payee, for an office whose jurisdiction holds the
/// person; waiting disbursements become due at once.
pub async fn register(
    api: &PaymentsApi,
    actor: &jiuzhu_access::Actor,
    audited: &jiuzhu_runtime::grpc::ChangeRecord,
    request: RegisterPayeeRequest,
) -> Result<RegisterPayeeResponse, AppError> {
    let mut violations = FieldViolations::new();
    violations.check_request_id(&request.request_id);
    let person = jiuzhu_errors::uuid_field("person_id", &request.person_id)?;
    violations.require(&[
        ("name", &request.name),
        ("institution", &request.institution),
    ]);
    let kind = AccountKind::try_from(request.account_kind).unwrap_or(AccountKind::Unspecified);
    let account = match kind {
        AccountKind::BankCard => check_bank_card(&request.account).map_err(|e| e.to_string()),
        AccountKind::Other => check_other_account(&request.account).map_err(|e| e.to_string()),
        AccountKind::Unspecified => {
            violations.add(
                "account_kind",
                jiuzhu_errors::must_be_one_of(&[
                    AccountKind::BankCard.as_str_name(),
                    AccountKind::Other.as_str_name(),
                ]),
            );
            Ok(String::new())
        }
    };
    let account = account.unwrap_or_else(|message| {
        violations.add("account", message);
        String::new()
    });
    violations.into_result()?;

    let row: Option<(Option<Vec<u8>>, bool, String)> = sqlx::query_as(
        "SELECT sealed, erased, region_code FROM person_identities WHERE person_id = $1",
    )
    .bind(person)
    .fetch_optional(api.store().pool())
    .await
    .map_err(AppError::storage)?;
    if let Some((_, _, region)) = &row {
        actor.office_check(region)?;
    }
    let sealed_identity = match row.map(|(sealed, erased, _)| (sealed, erased)) {
        None => {
            return Err(AppError::failed_precondition(format!(
                "person {person} is not known to payments (the registry's record has not arrived)"
            )));
        }
        Some((_, true)) | Some((None, _)) => {
            return Err(AppError::failed_precondition(format!(
                "person {person}'s personal data was erased: no payee can be registered"
            )));
        }
        Some((Some(sealed), false)) => Sealed::decode(sealed.as_slice())
            .map_err(|_| AppError::internal("a stored identity cannot be decoded"))?,
    };
    let keys = api
        .keys()
        .keys(&[person])
        .await
        .map_err(|error| AppError::unavailable(format!("data keys: {error}")))?;
    let Some(KeyState::Live(data_key)) = keys.get(&person) else {
        return Err(AppError::failed_precondition(format!(
            "person {person}'s personal data was erased: no payee can be registered"
        )));
    };
    let identity: PersonalIdentity = data_key
        .open(person, &sealed_identity)
        .map_err(|error| AppError::internal(format!("identity cannot be opened: {error}")))?;
    if !same_name(&request.name, &identity.full_name) {
        return Err(FieldViolations::single(
            "name",
            crate::domain::PayeeError::NameMismatch.to_string(),
        ));
    }
    let payee = Payee {
        name: request.name.trim().to_owned(),
        account: account.clone(),
        institution: request.institution.trim().to_owned(),
    };
    let sealed_payee = data_key
        .seal(person, &payee)
        .map_err(|error| AppError::internal(format!("payee cannot be sealed: {error}")))?;
    let masked = mask(&account);
    // The fingerprint must not depend on the seal's fresh nonce: the request itself is it.
    let event = PayeeRegistered {
        person_id: person.to_string(),
        sealed_payee: Some(sealed_payee),
        payee_account_masked: masked.clone(),
        account_kind: kind.into(),
        registered_by: actor.recorded_as(request.registered_by.trim()),
    };
    let audited = audited.clone();
    run_command(
        api.store(),
        "jiuzhu.payments.v1.PaymentsService/RegisterPayee",
        &request.request_id,
        &request,
        move |work| {
            async move {
                audited.write(work.connection().await?).await?;
                let stream = payee_stream(person);
                let (_, version) = work.load::<PayeeStream>(&stream).await.map_err(AppError::from)?;
                let sealed = event
                    .sealed_payee
                    .as_ref()
                    .map(Message::encode_to_vec)
                    .unwrap_or_default();
                work.append(
                    &stream,
                    version,
                    &person.to_string(),
                    &[PaymentsEvent::PayeeRegistered(event.clone())],
                )
                .await
                .map_err(AppError::from)?;
                sqlx::query(
                    "INSERT INTO payees (person_id, sealed, masked, version) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (person_id) DO UPDATE SET sealed = EXCLUDED.sealed, \
                     masked = EXCLUDED.masked, version = EXCLUDED.version",
                )
                .bind(person)
                .bind(sealed)
                .bind(&event.payee_account_masked)
                .bind(version + 1)
                .execute(work.connection().await?)
                .await
                .map_err(AppError::storage)?;
                sqlx::query(
                    "UPDATE submissions SET due_at = $2, waiting_payee = FALSE \
                     WHERE person_id = $1 AND waiting_payee",
                )
                    .bind(person)
                    .bind(work.clock().now())
                    .execute(work.connection().await?)
                    .await
                    .map_err(AppError::storage)?;
                Ok(RegisterPayeeResponse {
                    payee_account_masked: event.payee_account_masked.clone(),
                })
            }
            .boxed()
        },
    )
    .await
}
