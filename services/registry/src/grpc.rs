//! The registry's gRPC shell: validates, runs the domain inside an idempotent unit of work
//! (claiming resident ids and household places in the same transaction), and maps errors to
//! status codes once.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::FutureExt;
use jiuzhu_access::{Actor, Caller};
use jiuzhu_errors::{AppError, FieldViolations, uuid_field};
use jiuzhu_eventstore::EventStore;
use jiuzhu_identity::ResidentId;
use jiuzhu_paging::{key_after, token_after};
use jiuzhu_proto::registry::registry_service_server::RegistryService;
use jiuzhu_proto::registry::search_persons_request::Query;
use jiuzhu_proto::registry::*;
use jiuzhu_runtime::grpc::{PersonalAccess, run_command};
use jiuzhu_vault::Vault;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::app::{RegistryApi, SERVICE, department_of, violations_error};
use crate::claims::{
    claim_household_place, claim_resident_id, mark_active, mark_inactive, release_household_place,
    release_resident_id,
};
use crate::domain::{
    Household as HouseholdAggregate, IdentityInput, RecordStatus, RegisterPerson, UPDATABLE_FIELDS,
};
use crate::queries::{self, Search};
use crate::sealing::{append_person, load_person};

fn date_field(violations: &mut FieldViolations, field: &str, text: &str) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok();
    if parsed.is_none() {
        violations.add(field, format!("`{}` is not a YYYY-MM-DD date", text.trim()));
    }
    parsed
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    type BulkUpsertPersonsStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<BulkUpsertPersonsResponse, Status>> + Send>,
    >;

    async fn bulk_upsert_persons(
        &self,
        request: Request<tonic::Streaming<BulkUpsertPersonsRequest>>,
    ) -> Result<Response<Self::BulkUpsertPersonsStream>, Status> {
        let caller = Caller::of(&request)?;
        let inbound = request.into_inner();
        // The answers are made after this returns, outside the call's span: each batch gets a
        // span of its own under the call, so that the import's events stay in its trace.
        let call = tracing::Span::current();
        let shell = (self.store.clone(), self.vault.clone(), caller, call);
        // One answer per batch, in order; the stream ends after the first error.
        let answers = futures::stream::unfold(Some((inbound, shell)), |state| async move {
            let (mut inbound, shell) = state?;
            match inbound.message().await {
                Ok(Some(mut batch)) => match department_of(&shell.2, &batch.source_department)
                    .map(|department| batch.source_department = department)
                {
                    Err(error) => Some((Err(error.into()), None)),
                    Ok(()) => match crate::bulk::apply(
                        &shell.0,
                        &shell.1,
                        &Actor::Caller(shell.2.clone()),
                        batch,
                    )
                    .instrument(tracing::info_span!(parent: &shell.3, "import batch"))
                    .await
                    {
                        Ok(answer) => Some((Ok(answer), Some((inbound, shell)))),
                        Err(error) => Some((Err(error.into()), None)),
                    },
                },
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn register_person(
        &self,
        request: Request<RegisterPersonRequest>,
    ) -> Result<Response<RegisterPersonResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let department = department_of(&caller, &request.source_department)?;
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let input = IdentityInput {
            full_name: &request.full_name,
            gender: request.gender,
            birth_date: &request.birth_date,
            resident_id: &request.resident_id,
            region_code: request
                .region
                .as_ref()
                .map(|r| r.code.as_str())
                .unwrap_or(""),
            township: &request.township,
            village: &request.village,
            address_text: &request.address_text,
            phone: &request.phone,
        };
        let command = match RegisterPerson::parse(
            Uuid::now_v7(),
            &input,
            &department,
            &request.source_record_id,
        ) {
            Ok(command) => {
                violations.into_result()?;
                command
            }
            Err(found) => return Err(violations_error(violations, found).into()),
        };
        caller.office_check(input.region_code)?;
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RegisterPerson"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let person_id = command.person_id;
                    let (person, version) = load_person(work, &vault, person_id).await?;
                    let resident_id = command
                        .identity
                        .resident_id
                        .as_ref()
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_default();
                    let owner = claim_resident_id(
                        work.connection().await?,
                        &vault,
                        &resident_id,
                        person_id,
                    )
                    .await?;
                    let events = person.register(&command, owner)?;
                    append_person(work, &vault, person_id, version, events).await?;
                    Ok(RegisterPersonResponse {
                        person_id: person_id.to_string(),
                        flags: command.identity.flags.iter().map(|f| *f as i32).collect(),
                    })
                }
                .boxed()
            },
        )
        .await?;
        tracing::info!(person_id = %answer.person_id, "person registered");
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn update_person(
        &self,
        request: Request<UpdatePersonRequest>,
    ) -> Result<Response<UpdatePersonResponse>, Status> {
        let access = PersonalAccess::change(&request, &request.get_ref().person_id)?;
        let audited = access.change_record(&request.get_ref().person_id);
        let answer: Result<Response<UpdatePersonResponse>, Status> = async {
            let caller = access.caller().clone();
            let request = request.into_inner();
            let mut violations = FieldViolations::new();
            violations.check_request_id(&request.request_id);
            let person_id = uuid_field("person_id", &request.person_id)?;
            let given: BTreeMap<&'static str, String> = BTreeMap::from([
                ("full_name", request.full_name.clone()),
                (
                    "gender",
                    if request.gender == 0 {
                        String::new()
                    } else {
                        request.gender.to_string()
                    },
                ),
                ("birth_date", request.birth_date.clone()),
                ("resident_id", request.resident_id.clone()),
                (
                    "region",
                    request
                        .region
                        .as_ref()
                        .map(|r| r.code.clone())
                        .unwrap_or_default(),
                ),
                ("township", request.township.clone()),
                ("village", request.village.clone()),
                ("address_text", request.address_text.clone()),
                ("phone", request.phone.clone()),
            ]);
            let mut changes = BTreeMap::new();
            if request.fields.is_empty() {
                changes.extend(given.into_iter().filter(|(_, v)| !v.is_empty()));
            } else {
                for field in &request.fields {
                    match UPDATABLE_FIELDS.iter().find(|f| **f == field.as_str()) {
                        Some(known) => {
                            changes.insert(*known, given.get(known).cloned().unwrap_or_default());
                        }
                        None => violations.add(
                            "fields",
                            format!("`{field}` is not one of {}", UPDATABLE_FIELDS.join(", ")),
                        ),
                    }
                }
            }
            if changes.is_empty() {
                violations.add("fields", "names nothing to change");
            }
            violations.into_result()?;
            let department = department_of(&caller, &request.source_department)?;
            let vault = self.vault.clone();
            let answer = run_command(
                &self.store,
                &format!("{SERVICE}/UpdatePerson"),
                &request.request_id,
                &request,
                move |work| {
                    async move {
                        let (person, version) = load_person(work, &vault, person_id).await?;
                        caller.office_check(person.region_code())?;
                        let new_id = changes
                            .get("resident_id")
                            .and_then(|raw| ResidentId::parse(raw).ok())
                            .map(|id| id.as_str().to_owned())
                            .unwrap_or_default();
                        let old_id = person.resident_id().to_owned();
                        let owner = if new_id.is_empty() || new_id == old_id {
                            None
                        } else {
                            claim_resident_id(work.connection().await?, &vault, &new_id, person_id)
                                .await?
                        };
                        let events = person.update(person_id, &changes, &department, owner)?;
                        let mut answer = UpdatePersonResponse::default();
                        if let Some(crate::domain::RegistryEvent::PersonUpdated(updated)) =
                            events.first()
                        {
                            if updated.changed_fields.iter().any(|f| f == "resident_id")
                                && !old_id.is_empty()
                            {
                                release_resident_id(
                                    work.connection().await?,
                                    &vault,
                                    &old_id,
                                    person_id,
                                )
                                .await?;
                            }
                            answer.changed_fields = updated.changed_fields.clone();
                            answer.flags = updated.flags.clone();
                        }
                        append_person(work, &vault, person_id, version, events).await?;
                        audited.write(work.connection().await?).await?;
                        Ok(answer)
                    }
                    .boxed()
                },
            )
            .await?;
            Ok(Response::new(answer))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn record_status(
        &self,
        request: Request<RecordStatusRequest>,
    ) -> Result<Response<RecordStatusResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let person_id = uuid_field("person_id", &request.person_id)?;
        let department = department_of(&caller, &request.source_department)?;
        let command = match RecordStatus::parse(
            Uuid::now_v7(),
            request.kind,
            &department,
            &request.reference,
            &request.effective_from,
            &request.effective_to,
            &request.detail,
        ) {
            Ok(command) => {
                violations.into_result()?;
                command
            }
            Err(found) => return Err(violations_error(violations, found).into()),
        };
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RecordStatus"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let (person, version) = load_person(work, &vault, person_id).await?;
                    caller.office_check(person.region_code())?;
                    let events = person.record_status(person_id, &command)?;
                    append_person(work, &vault, person_id, version, events).await?;
                    Ok(RecordStatusResponse {
                        status_id: command.status_id.to_string(),
                    })
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn end_status(
        &self,
        request: Request<EndStatusRequest>,
    ) -> Result<Response<EndStatusResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let person_id = uuid_field("person_id", &request.person_id)?;
        let status_id = uuid_field("status_id", &request.status_id)?;
        let effective_to = date_field(&mut violations, "effective_to", &request.effective_to);
        violations.into_result()?;
        let effective_to = effective_to.unwrap_or_default();
        let reason = request.reason.clone();
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/EndStatus"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let (person, version) = load_person(work, &vault, person_id).await?;
                    caller.office_check(person.region_code())?;
                    let events = person.end_status(person_id, status_id, effective_to, &reason)?;
                    append_person(work, &vault, person_id, version, events).await?;
                    Ok(EndStatusResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn add_household_member(
        &self,
        request: Request<AddHouseholdMemberRequest>,
    ) -> Result<Response<AddHouseholdMemberResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let person_id = uuid_field("person_id", &request.person_id)?;
        let household_id = if request.household_id.trim().is_empty() {
            Uuid::now_v7()
        } else {
            uuid_field("household_id", &request.household_id)?
        };
        let relationship = match Relationship::try_from(request.relationship) {
            Ok(Relationship::Unspecified) | Err(_) => {
                violations.add("relationship", "is required");
                Relationship::Unspecified
            }
            Ok(relationship) => relationship,
        };
        violations.into_result()?;
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/AddHouseholdMember"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let (person, _) = load_person(work, &vault, person_id).await?;
                    caller.office_check(person.region_code())?;
                    let current =
                        claim_household_place(work.connection().await?, person_id, household_id)
                            .await?;
                    // The first member founds the household: a new stream, or an existing one.
                    let stream = household_id.to_string();
                    let (household, version) = work
                        .load::<HouseholdAggregate>(&stream)
                        .await
                        .map_err(AppError::from)?;
                    let events = household.add_member(
                        household_id,
                        person_id,
                        &person,
                        relationship,
                        current,
                    )?;
                    work.append(&stream, version, &stream, &events)
                        .await
                        .map_err(AppError::from)?;
                    Ok(AddHouseholdMemberResponse {
                        household_id: household_id.to_string(),
                    })
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn remove_household_member(
        &self,
        request: Request<RemoveHouseholdMemberRequest>,
    ) -> Result<Response<RemoveHouseholdMemberResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let person_id = uuid_field("person_id", &request.person_id)?;
        let household_id = uuid_field("household_id", &request.household_id)?;
        violations.into_result()?;
        let reason = request.reason.clone();
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RemoveHouseholdMember"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    household_office_check(work, &vault, &caller, household_id).await?;
                    work.decide_on(
                        &household_id.to_string(),
                        |household: &HouseholdAggregate| {
                            household.remove_member(household_id, person_id, &reason)
                        },
                    )
                    .await?;
                    release_household_place(work.connection().await?, person_id, household_id)
                        .await?;
                    Ok(RemoveHouseholdMemberResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn record_household_income(
        &self,
        request: Request<RecordHouseholdIncomeRequest>,
    ) -> Result<Response<RecordHouseholdIncomeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let household_id = uuid_field("household_id", &request.household_id)?;
        if !(1949..=2200).contains(&request.year) {
            violations.add("year", "must be a calendar year from 1949");
        }
        let fen = request.income_per_head.as_ref().map(|m| m.fen);
        match fen {
            None => violations.add("income_per_head", "is required"),
            Some(fen) if fen < 0 => violations.add("income_per_head.fen", "must not be negative"),
            Some(_) => {}
        }
        let department = department_of(&caller, &request.source_department)?;
        violations.require(&[("source_department", &department)]);
        violations.into_result()?;
        let (year, fen) = (request.year, fen.unwrap_or_default());
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RecordHouseholdIncome"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    household_office_check(work, &vault, &caller, household_id).await?;
                    work.decide_on(
                        &household_id.to_string(),
                        |household: &HouseholdAggregate| {
                            household.record_income(household_id, year, fen, &department)
                        },
                    )
                    .await?;
                    Ok(RecordHouseholdIncomeResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn merge_persons(
        &self,
        request: Request<MergePersonsRequest>,
    ) -> Result<Response<MergePersonsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let survivor_id = uuid_field("survivor_id", &request.survivor_id)?;
        let absorbed_id = uuid_field("absorbed_id", &request.absorbed_id)?;
        violations.require(&[("reason", &request.reason)]);
        violations.into_result()?;
        let (reason, decided_by) = (request.reason.clone(), caller.recorded_as());
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/MergePersons"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let (survivor, _) = load_person(work, &vault, survivor_id).await?;
                    caller.office_check(survivor.region_code())?;
                    let (absorbed, version) = load_person(work, &vault, absorbed_id).await?;
                    caller.office_check(absorbed.region_code())?;
                    let events = absorbed.merge_into(
                        absorbed_id,
                        survivor_id,
                        &survivor,
                        &reason,
                        &decided_by,
                    )?;
                    append_person(work, &vault, absorbed_id, version, events).await?;
                    mark_inactive(
                        work.connection().await?,
                        absorbed_id,
                        &format!("merged into {survivor_id}"),
                    )
                    .await?;
                    Ok(MergePersonsResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn unmerge_person(
        &self,
        request: Request<UnmergePersonRequest>,
    ) -> Result<Response<UnmergePersonResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let absorbed_id = uuid_field("absorbed_id", &request.absorbed_id)?;
        violations.require(&[("reason", &request.reason)]);
        violations.into_result()?;
        let (reason, decided_by) = (request.reason.clone(), caller.recorded_as());
        let vault = self.vault.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/UnmergePerson"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let (absorbed, version) = load_person(work, &vault, absorbed_id).await?;
                    caller.office_check(absorbed.region_code())?;
                    let events = absorbed.unmerge(absorbed_id, &reason, &decided_by)?;
                    append_person(work, &vault, absorbed_id, version, events).await?;
                    mark_active(work.connection().await?, absorbed_id).await?;
                    Ok(UnmergePersonResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn erase_person(
        &self,
        request: Request<ErasePersonRequest>,
    ) -> Result<Response<ErasePersonResponse>, Status> {
        let access = PersonalAccess::change(&request, &request.get_ref().person_id)?;
        let audited = access.change_record(&request.get_ref().person_id);
        let answer: Result<Response<ErasePersonResponse>, Status> = async {
            let caller = access.caller().clone();
            let request = request.into_inner();
            let mut violations = FieldViolations::new();
            violations.check_request_id(&request.request_id);
            let person_id = uuid_field("person_id", &request.person_id)?;
            violations.require(&[("legal_basis", &request.legal_basis)]);
            violations.into_result()?;
            let (legal_basis, reason, decided_by) = (
                request.legal_basis.clone(),
                request.reason.clone(),
                caller.recorded_as(),
            );
            let vault = self.vault.clone();
            let answer = run_command(
                &self.store,
                &format!("{SERVICE}/ErasePerson"),
                &request.request_id,
                &request,
                move |work| {
                    async move {
                        let (person, version) = load_person(work, &vault, person_id).await?;
                        caller.office_check(person.region_code())?;
                        // Not while the bank may still pay the person: its answer must find them.
                        if let Some(attempt) =
                            crate::payments_out::attempt_out(work.connection().await?, person_id)
                                .await
                                .map_err(AppError::storage)?
                        {
                            return Err(AppError::failed_precondition(format!(
                                "payment attempt {attempt} of this person is out at the bank: \
                                 erase once it is answered (by the bank's notice or statement)"
                            )));
                        }
                        let events = person.erase(person_id, &legal_basis, &reason, &decided_by)?;
                        append_person(work, &vault, person_id, version, events).await?;
                        crate::sealing::erase(work.connection().await?, &vault, person_id).await?;
                        mark_inactive(work.connection().await?, person_id, "erased").await?;
                        audited.write(work.connection().await?).await?;
                        Ok(ErasePersonResponse {})
                    }
                    .boxed()
                },
            )
            .await?;
            tracing::info!(%person_id, "person erased");
            Ok(Response::new(answer))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    async fn get_person(
        &self,
        request: Request<GetPersonRequest>,
    ) -> Result<Response<GetPersonResponse>, Status> {
        let access = PersonalAccess::read(
            &request,
            &request.get_ref().purpose,
            &request.get_ref().person_id,
        )?;
        let answer: Result<Response<GetPersonResponse>, Status> = async {
            access.check_purpose()?;
            let person_id = uuid_field("person_id", &request.get_ref().person_id)?;
            let as_of = as_of_day(&request.get_ref().as_of)?;
            let mut person = queries::person(self.store.pool(), &self.vault, person_id, as_of)
                .await?
                .ok_or_else(|| {
                    Status::not_found(format!("no person {person_id} in the registry"))
                })?;
            if let Some(day) = as_of {
                // Identity and household as the registry held them at the end of that day.
                let until = jiuzhu_proto::time::end_of_beijing_day(day);
                person.household_id = queries::household_on(self.store.pool(), person_id, until)
                    .await?
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                if let Some((identity, gender, region, flags)) =
                    crate::sealing::identity_at(&self.store, &self.vault, person_id, until).await?
                {
                    queries::put_identity(&mut person, identity);
                    person.gender = gender;
                    person.region = Some(jiuzhu_proto::common::RegionCode { code: region });
                    person.flags = flags;
                }
            }
            let region = person
                .region
                .as_ref()
                .map(|r| r.code.as_str())
                .unwrap_or_default();
            crate::links::check_may_read(self.store.pool(), access.caller(), person_id, region)
                .await?;
            Ok(Response::new(GetPersonResponse {
                person: Some(person),
            }))
        }
        .await;
        access
            .finish(answer, |answer| {
                answer
                    .get_ref()
                    .person
                    .as_ref()
                    .map(|p| p.person_id.clone())
                    .unwrap_or_default()
            })
            .await
    }

    async fn get_household(
        &self,
        request: Request<GetHouseholdRequest>,
    ) -> Result<Response<GetHouseholdResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<GetHouseholdResponse>, Status> = async {
            access.check_purpose()?;
            let household_id = uuid_field("household_id", &request.get_ref().household_id)?;
            let as_of =
                as_of_day(&request.get_ref().as_of)?.map(jiuzhu_proto::time::end_of_beijing_day);
            let household = queries::household(self.store.pool(), &self.vault, household_id, as_of)
                .await?
                .ok_or_else(|| Status::not_found(format!("no household {household_id}")))?;
            // A household is seen by the offices holding a member's county.
            let caller = access.caller();
            let mut seen = caller.nationwide;
            let members: Vec<Uuid> = household
                .members
                .iter()
                .filter_map(|m| Uuid::parse_str(&m.person_id).ok())
                .collect();
            for id in &members {
                if seen {
                    break;
                }
                if let Some(person) =
                    crate::sealing::read_person(&self.store, &self.vault, *id).await?
                {
                    seen = caller.may_see(person.region_code());
                }
            }
            // Or one of the office's clues or cases names a member.
            if !seen {
                seen = !crate::links::linked_for(self.store.pool(), caller, &members)
                    .await
                    .map_err(AppError::storage)?
                    .is_empty();
            }
            if !seen {
                return Err(outside_household(household_id, caller).into());
            }
            Ok(Response::new(GetHouseholdResponse {
                household: Some(household),
            }))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    async fn list_sharing(
        &self,
        request: Request<ListSharingRequest>,
    ) -> Result<Response<ListSharingResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        let page_size = violations.page_size(request.page_size, 100);
        let person = if request.person_id.trim().is_empty() {
            None
        } else {
            Some(uuid_field("person_id", &request.person_id)?)
        };
        let department = request.department.trim().to_owned();
        if person.is_none() && department.is_empty() {
            violations.add("person_id", "give a person or a department");
        }
        let before: Option<i64> =
            key_after(&mut violations, &request.page_token, |key| match key {
                [id] => id.parse().ok(),
                _ => None,
            });
        violations.into_result()?;
        let rows: Vec<(
            i64,
            Uuid,
            String,
            String,
            String,
            Option<Uuid>,
            String,
            chrono::DateTime<chrono::Utc>,
        )> = sqlx::query_as(
            "SELECT id, event_id, event_type, department, agreement_version, person_id, pseudonym, \
                 shared_at FROM sharing_log WHERE ($1::uuid IS NULL OR person_id = $1) \
                 AND ($2 = '' OR department = $2) AND ($3::bigint IS NULL OR id < $3) \
                 ORDER BY id DESC LIMIT $4",
        )
        .bind(person)
        .bind(&department)
        .bind(before)
        .bind(page_size + 1)
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        let limit = usize::try_from(page_size).unwrap_or(100);
        let next_page_token = if rows.len() > limit {
            rows.get(limit - 1)
                .map(|r| token_after(&[&r.0]))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let entries = rows
            .into_iter()
            .take(limit)
            .map(
                |(_, event_id, event_type, department, version, person, pseudonym, at)| {
                    SharingEntry {
                        event_id: event_id.to_string(),
                        event_type,
                        department,
                        agreement_version: version,
                        person_id: person.map(|p| p.to_string()).unwrap_or_default(),
                        pseudonym,
                        shared_at: Some(jiuzhu_proto::time::timestamp(at)),
                    }
                },
            )
            .collect();
        Ok(Response::new(ListSharingResponse {
            entries,
            next_page_token,
        }))
    }

    async fn get_person_file(
        &self,
        request: Request<GetPersonFileRequest>,
    ) -> Result<Response<GetPersonFileResponse>, Status> {
        let access = PersonalAccess::read(
            &request,
            &request.get_ref().purpose,
            &request.get_ref().person_id,
        )?;
        let answer: Result<Response<GetPersonFileResponse>, Status> = async {
            access.check_purpose()?;
            let request = request.into_inner();
            let person_id = uuid_field("person_id", &request.person_id)?;
            // The file is the person's: only an office whose jurisdiction holds them, or one of
            // whose clues or cases names them, reads it.
            let person = crate::sealing::read_person(&self.store, &self.vault, person_id)
                .await?
                .ok_or_else(|| {
                    AppError::not_found(format!("no person {person_id} in the registry"))
                })?;
            crate::links::check_may_read(
                self.store.pool(),
                access.caller(),
                person_id,
                person.region_code(),
            )
            .await?;
            let mut violations = FieldViolations::new();
            let page_size = violations.page_size(request.page_size, 100);
            let newest_first = match FileOrder::try_from(request.order) {
                Ok(FileOrder::OldestFirst) => false,
                Ok(_) => true,
                Err(_) => {
                    violations.add("order", format!("{} is not a file order", request.order));
                    true
                }
            };
            let after = key_after(&mut violations, &request.page_token, |key| match key {
                [micros, id] => Some((micros.parse::<i64>().ok()?, Uuid::parse_str(id).ok()?)),
                _ => None,
            });
            violations.into_result()?;
            let mut entries = queries::person_file(
                self.store.pool(),
                &self.vault,
                person_id,
                newest_first,
                after,
                page_size + 1,
            )
            .await?;
            let next_page_token = if entries.len() as i64 > page_size {
                entries.truncate(usize::try_from(page_size).unwrap_or(100));
                entries
                    .last()
                    .and_then(|e| {
                        let t = e.occurred_at.as_ref()?;
                        let micros = t.seconds * 1_000_000 + i64::from(t.nanos) / 1000;
                        Some(token_after(&[&micros, &e.event_id]))
                    })
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Ok(Response::new(GetPersonFileResponse {
                entries,
                next_page_token,
            }))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    async fn search_persons(
        &self,
        request: Request<SearchPersonsRequest>,
    ) -> Result<Response<SearchPersonsResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<SearchPersonsResponse>, Status> = async {
            access.check_purpose()?;
            let request = request.into_inner();
            let mut violations = FieldViolations::new();
            let search = match &request.query {
                None => {
                    violations.add(
                        "query",
                        "give resident_id, phone, name_and_birth_date or name_and_region",
                    );
                    None
                }
                Some(Query::ResidentId(raw)) => match ResidentId::parse(raw) {
                    Ok(id) => Some(Search::ResidentId(id.as_str().to_owned())),
                    Err(error) => {
                        violations.add("resident_id", error.to_string());
                        None
                    }
                },
                Some(Query::Phone(raw)) => {
                    let digits = raw.chars().filter(char::is_ascii_digit).count();
                    if !(5..=20).contains(&digits) {
                        violations.add("phone", "must hold 5 to 20 digits");
                        None
                    } else {
                        Some(Search::Phone(raw.clone()))
                    }
                }
                Some(Query::NameAndBirthDate(q)) => {
                    if q.full_name.trim().is_empty() {
                        violations.add("name_and_birth_date.full_name", "is required");
                    }
                    date_field(
                        &mut violations,
                        "name_and_birth_date.birth_date",
                        &q.birth_date,
                    )
                    .map(|d| {
                        Search::NameAndBirthDate(
                            q.full_name.trim().to_owned(),
                            d.format("%Y-%m-%d").to_string(),
                        )
                    })
                }
                Some(Query::NameAndRegion(q)) => {
                    if q.full_name.trim().is_empty() {
                        violations.add("name_and_region.full_name", "is required");
                    }
                    let code = q
                        .region
                        .as_ref()
                        .map(|r| r.code.trim().to_owned())
                        .unwrap_or_default();
                    if jiuzhu_identity::lookup_region(&code).is_none() {
                        violations.add(
                            "name_and_region.region.code",
                            format!("`{code}` is not a GB/T 2260 region code"),
                        );
                    }
                    Some(Search::NameAndRegion(q.full_name.trim().to_owned(), code))
                }
            };
            let page_size = violations.page_size(request.page_size, 50);
            let after = key_after(&mut violations, &request.page_token, |key| match key {
                [person] => Uuid::parse_str(person).ok(),
                _ => None,
            });
            violations.into_result()?;
            let Some(search) = search else {
                return Err(FieldViolations::single("query", "is required").into());
            };
            let index = crate::claims::resident_id_index(&self.vault)?;
            let mut persons = queries::search(
                self.store.pool(),
                &self.vault,
                &index,
                &search,
                after,
                page_size + 1,
            )
            .await?;
            let next_page_token = if persons.len() as i64 > page_size {
                persons.truncate(usize::try_from(page_size).unwrap_or(50));
                persons
                    .last()
                    .map(|p| token_after(&[&p.person_id]))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            // Nobody outside the caller's jurisdiction unless one of its clues or cases names
            // them (a page may come out shorter; the token still continues after the last row
            // looked at).
            let caller = access.caller();
            let elsewhere: Vec<Uuid> = persons
                .iter()
                .filter(|p| !caller.may_see(p.region.as_ref().map_or("", |r| r.code.as_str())))
                .filter_map(|p| Uuid::parse_str(&p.person_id).ok())
                .collect();
            let linked = crate::links::linked_for(self.store.pool(), caller, &elsewhere)
                .await
                .map_err(AppError::storage)?;
            persons.retain(|p| {
                caller.may_see(p.region.as_ref().map_or("", |r| r.code.as_str()))
                    || Uuid::parse_str(&p.person_id).is_ok_and(|id| linked.contains(&id))
            });
            Ok(Response::new(SearchPersonsResponse {
                persons,
                next_page_token,
            }))
        }
        .await;
        // One audit record for every person the search returned.
        access
            .finish_all(answer, |answer| {
                answer
                    .get_ref()
                    .persons
                    .iter()
                    .map(|p| p.person_id.clone())
                    .collect()
            })
            .await
    }
}

/// Hands data keys to services that read the registry's sealed identities.
#[derive(Debug, Clone)]
pub struct PersonKeyApi {
    store: EventStore,
    vault: Vault,
}

impl PersonKeyApi {
    pub fn new(store: EventStore, vault: Vault) -> Self {
        Self { store, vault }
    }
}

/// Most persons one `GetPersonKeys` call may ask for.
const MAX_KEYS_PER_CALL: usize = 1000;

#[tonic::async_trait]
impl person_key_service_server::PersonKeyService for PersonKeyApi {
    async fn get_department_key(
        &self,
        request: Request<GetDepartmentKeyRequest>,
    ) -> Result<Response<GetDepartmentKeyResponse>, Status> {
        let caller = jiuzhu_access::Caller::of(&request)?;
        let department = caller.department().map(str::to_owned).ok_or_else(|| {
            AppError::permission_denied(
                "a department key takes an integrator's certificate naming its department",
            )
        })?;
        let key = crate::sharing::subject_key(&self.vault, &department).map_err(AppError::from)?;
        tracing::info!(%department, caller = %caller.recorded_as(), "department subject key handed out");
        Ok(Response::new(GetDepartmentKeyResponse {
            department,
            subject_key: key.as_bytes().to_vec(),
        }))
    }

    async fn get_person_keys(
        &self,
        request: Request<GetPersonKeysRequest>,
    ) -> Result<Response<GetPersonKeysResponse>, Status> {
        // Every key handed out is audited for its person: a key opens all of them.
        let access = PersonalAccess::change(&request, "")?;
        let answer = self.person_keys(request.into_inner()).await;
        access
            .finish_all(answer, |answer| {
                answer
                    .get_ref()
                    .keys
                    .iter()
                    .map(|key| key.person_id.clone())
                    .collect()
            })
            .await
    }
}

impl PersonKeyApi {
    async fn person_keys(
        &self,
        request: GetPersonKeysRequest,
    ) -> Result<Response<GetPersonKeysResponse>, Status> {
        if request.person_ids.len() > MAX_KEYS_PER_CALL {
            return Err(FieldViolations::single(
                "person_ids",
                format!("at most {MAX_KEYS_PER_CALL} persons per call"),
            )
            .into());
        }
        let mut violations = FieldViolations::new();
        let mut persons = Vec::with_capacity(request.person_ids.len());
        for (index, raw) in request.person_ids.iter().enumerate() {
            match Uuid::parse_str(raw) {
                Ok(id) => persons.push(id),
                Err(_) => violations.add(format!("person_ids[{index}]"), "is not a UUID"),
            }
        }
        violations.into_result()?;
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(AppError::storage)?;
        let keys = self
            .vault
            .keys(&mut conn, &persons)
            .await
            .map_err(AppError::from)?;
        // Each handout is in the audit log; a line per call would drown an import's log.
        tracing::debug!(persons = persons.len(), "person keys handed out");
        Ok(Response::new(GetPersonKeysResponse {
            keys: keys
                .into_iter()
                .map(|(person, state)| PersonKey {
                    person_id: person.to_string(),
                    erased: state.live().is_none(),
                    data_key: state
                        .live()
                        .map(|k| k.as_bytes().to_vec())
                        .unwrap_or_default(),
                })
                .collect(),
        }))
    }
}

/// A household is the business of the offices holding a member's county.
async fn household_office_check(
    work: &mut jiuzhu_eventstore::UnitOfWork<'_>,
    vault: &jiuzhu_vault::Vault,
    caller: &Caller,
    household_id: Uuid,
) -> Result<(), AppError> {
    if caller.nationwide {
        return Ok(());
    }
    let (household, _) = work
        .load::<HouseholdAggregate>(&household_id.to_string())
        .await
        .map_err(AppError::from)?;
    let members: Vec<Uuid> = household
        .member_ids()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    for member in members {
        let (person, _) = load_person(work, vault, member).await?;
        if caller.may_see(person.region_code()) {
            return Ok(());
        }
    }
    Err(outside_household(household_id, caller))
}

fn outside_household(household_id: Uuid, caller: &Caller) -> AppError {
    AppError::permission_denied(format!(
        "no member of household {household_id} lives within the jurisdiction of office {}",
        caller.identity.office
    ))
}

/// An `as_of` field: empty for now, else a YYYY-MM-DD day (refused naming the field).
fn as_of_day(text: &str) -> Result<Option<chrono::NaiveDate>, Status> {
    match text.trim() {
        "" => Ok(None),
        day => chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                FieldViolations::single("as_of", format!("`{day}` is not a YYYY-MM-DD date")).into()
            }),
    }
}
