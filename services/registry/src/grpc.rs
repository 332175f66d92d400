//! The registry's gRPC shell: validates, runs the domain inside an idempotent unit of work,
//! and maps errors to status codes once.

use jiuzhu_eventstore::{Begun, CommandRequest, EventStore};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::registry_service_server::RegistryService;
use jiuzhu_proto::registry::{
    GetPersonRequest, GetPersonResponse, Person as PersonView, RegisterPersonRequest,
    RegisterPersonResponse,
};
use jiuzhu_runtime::grpc::{FieldViolations, database_status, decode_answer, store_status};
use prost::Message;
use sqlx::Row;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{Person, RegisterPerson, RegisterPersonInput, RegistryError};

#[derive(Debug, Clone)]
pub struct RegistryApi {
    store: EventStore,
}

impl RegistryApi {
    pub fn new(store: EventStore) -> Self {
        Self { store }
    }
}

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::AlreadyRegistered(_) => Status::already_exists(error.to_string()),
        }
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn register_person(
        &self,
        request: Request<RegisterPersonRequest>,
    ) -> Result<Response<RegisterPersonResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let input = RegisterPersonInput {
            full_name: &request.full_name,
            gender: request.gender,
            birth_date: &request.birth_date,
            resident_id: &request.resident_id,
            region_code: request
                .region
                .as_ref()
                .map(|r| r.code.as_str())
                .unwrap_or(""),
            source_department: &request.source_department,
        };
        let command = match RegisterPerson::parse(Uuid::now_v7(), &input) {
            Ok(command) => {
                violations.into_result()?;
                command
            }
            Err(found) => {
                for v in found {
                    violations.add(v.field, v.reason);
                }
                return Err(violations.into_status());
            }
        };

        let call = CommandRequest::new(
            &request.request_id,
            "jiuzhu.registry.v1.RegistryService/RegisterPerson",
            &request.encode_to_vec(),
        );
        let mut work = match self.store.begin_command(call).await.map_err(store_status)? {
            Begun::Replay(answer) => return Ok(Response::new(decode_answer(&answer)?)),
            Begun::Fresh(work) => work,
        };
        let stream = command.person_id.to_string();
        let (person, version) = work.load::<Person>(&stream).await.map_err(store_status)?;
        let events = person.register(&command)?;
        work.append(&stream, version, &stream, &events)
            .await
            .map_err(store_status)?;
        let answer = RegisterPersonResponse {
            person_id: stream.clone(),
        };
        let stored = work
            .commit(answer.encode_to_vec())
            .await
            .map_err(store_status)?;
        tracing::info!(person_id = %stream, "person registered");
        Ok(Response::new(decode_answer(&stored)?))
    }

    async fn get_person(
        &self,
        request: Request<GetPersonRequest>,
    ) -> Result<Response<GetPersonResponse>, Status> {
        let request = request.into_inner();
        let person_id = Uuid::parse_str(&request.person_id)
            .map_err(|_| FieldViolations::single("person_id", "must be a UUID"))?;
        let row = sqlx::query(
            "SELECT full_name, gender, birth_date, resident_id, region_code, source_department, version \
             FROM persons WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(self.store.pool())
        .await
        .map_err(database_status)?
        .ok_or_else(|| Status::not_found(format!("no person {person_id} in the registry")))?;
        let read = |e: sqlx::Error| database_status(e);
        let person = PersonView {
            person_id: person_id.to_string(),
            full_name: row.try_get("full_name").map_err(read)?,
            gender: row.try_get("gender").map_err(read)?,
            birth_date: row.try_get("birth_date").map_err(read)?,
            resident_id: row.try_get("resident_id").map_err(read)?,
            region: Some(RegionCode {
                code: row.try_get("region_code").map_err(read)?,
            }),
            source_department: row.try_get("source_department").map_err(read)?,
            version: row.try_get("version").map_err(read)?,
        };
        Ok(Response::new(GetPersonResponse {
            person: Some(person),
        }))
    }
}
