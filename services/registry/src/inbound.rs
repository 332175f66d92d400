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

/// Departments whose feeds the registry reads unless `[feeds] departments` says otherwise.
pub const FEEDING_DEPARTMENTS: [&str; 7] = [
    "rural_revitalization",
    "civil_affairs",
    "human_resources",
    "education",
    "health",
    "finance",
    "industry_commerce",
];

/// `[feeds]`, the settings section the registry owns: which departments feed it live, one
/// inbound topic each (`jiuzhu.inbound.<department>.v1`). A department joins or leaves by
/// configuration.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    pub departments: Vec<String>,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            departments: FEEDING_DEPARTMENTS.map(str::to_owned).to_vec(),
        }
    }
}

impl jiuzhu_config::Section for FeedSettings {
    const NAME: &'static str = "feeds";
}

impl jiuzhu_config::Validate for FeedSettings {
    fn validate(&self, prefix: &str) -> Result<(), jiuzhu_config::ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for department in &self.departments {
            if department.is_empty()
                || !department
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(jiuzhu_config::ConfigError::invalid(
                    format!("{prefix}.departments"),
                    format!("`{department}` is not a department name (lower case, underscores)"),
                ));
            }
            if !seen.insert(department) {
                return Err(jiuzhu_config::ConfigError::invalid(
                    format!("{prefix}.departments"),
                    format!("`{department}` is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct DepartmentFeeds {
    store: EventStore,
    vault: Vault,
    departments: Vec<String>,
}

impl DepartmentFeeds {
    pub fn new(store: EventStore, vault: Vault, departments: Vec<String>) -> Self {
        Self {
            store,
            vault,
            departments,
        }
    }
}

impl InboundHandler for DepartmentFeeds {
    fn name(&self) -> &str {
        "registry.department_feeds"
    }

    fn topics(&self) -> Vec<String> {
        self.departments.iter().map(|d| inbound_topic(d)).collect()
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
