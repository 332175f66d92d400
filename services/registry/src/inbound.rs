//! Live department feeds: `jiuzhu.inbound.<department>.v1` carries one `PersonRecord` per
//! message, applied exactly like a record of an imported file (idempotent on department and
//! source record id). A record that cannot apply goes to the dead-letter topic with the reasons.
//! Messages of other types on the same topic (header `jiuzhu-message-type`) are for other
//! services and are left alone.

use jiuzhu_eventstore::EventStore;
use jiuzhu_messaging::{
    InboundHandler, InboundRecord, ProjectionError, inbound_source, inbound_topic,
};
use jiuzhu_proto::registry::{BulkUpsertPersonsRequest, PersonRecord};
use jiuzhu_vault::Vault;
use prost::Message;

/// Departments whose feeds the registry reads.
pub const FEEDING_DEPARTMENTS: [&str; 7] = [
    "rural_revitalization",
    "civil_affairs",
    "human_resources",
    "education",
    "health",
    "finance",
    "industry_commerce",
];

#[derive(Debug)]
pub struct DepartmentFeeds {
    store: EventStore,
    vault: Vault,
}

impl DepartmentFeeds {
    pub fn new(store: EventStore, vault: Vault) -> Self {
        Self { store, vault }
    }
}

impl InboundHandler for DepartmentFeeds {
    fn name(&self) -> &str {
        "registry.department_feeds"
    }

    fn topics(&self) -> Vec<String> {
        FEEDING_DEPARTMENTS
            .iter()
            .map(|d| inbound_topic(d))
            .collect()
    }

    fn handles(&self, record: &InboundRecord) -> bool {
        // A department's topic also carries messages for other services (referral updates);
        // records without a type are person records, as before types were named.
        record
            .message_type()
            .is_none_or(|t| t == <PersonRecord as prost::Name>::full_name())
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        if !self.handles(record) {
            return Ok(());
        }
        let department = inbound_source(&record.topic).ok_or_else(|| {
            ProjectionError::Rejected(format!("`{}` is not an inbound topic", record.topic))
        })?;
        let mut person = PersonRecord::decode(record.payload.as_slice())?;
        person.line = record.offset;
        let answer = crate::bulk::apply(
            &self.store,
            &self.vault,
            &jiuzhu_access::Actor::Platform,
            BulkUpsertPersonsRequest {
                source_department: department.to_owned(),
                records: vec![person],
            },
        )
        .await
        .map_err(jiuzhu_messaging::ProjectionError::from)?;
        if answer.rejections.is_empty() {
            return Ok(());
        }
        let reasons: Vec<String> = answer
            .rejections
            .iter()
            .map(|r| {
                if r.field.is_empty() {
                    r.reason.clone()
                } else {
                    format!("{}: {}", r.field, r.reason)
                }
            })
            .collect();
        Err(ProjectionError::Rejected(reasons.join("; ")))
    }
}
