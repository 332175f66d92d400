//! Departments' answers to referrals: `ReferralUpdate` messages on their inbound topics
//! (`jiuzhu.inbound.<department>.v1`, header `jiuzhu-message-type:
//! jiuzhu.decisions.v1.ReferralUpdate`), applied to the case as `ReferralUpdated`. Other
//! messages on those topics (registry records) are for other services and left alone. An
//! update that cannot apply — unknown referral, another department's, a settled one — goes to
//! the dead-letter topic with the reason; an outage is retried.

use jiuzhu_messaging::{
    InboundHandler, InboundRecord, ProjectionError, inbound_source, inbound_topic,
};
use jiuzhu_proto::decisions::{ReferralStatus, ReferralUpdate};
use prost::{Message, Name};

use crate::app::{DecisionsApi, internal_call, on_case};

#[derive(Debug)]
pub struct ReferralUpdates {
    api: DecisionsApi,
    departments: Vec<String>,
}

impl ReferralUpdates {
    pub fn new(api: DecisionsApi, departments: Vec<String>) -> Self {
        Self { api, departments }
    }
}

impl InboundHandler for ReferralUpdates {
    fn name(&self) -> &str {
        "decisions.referral_updates"
    }

    fn topics(&self) -> Vec<String> {
        self.departments.iter().map(|d| inbound_topic(d)).collect()
    }

    fn handles(&self, record: &InboundRecord) -> bool {
        record.message_type() == Some(ReferralUpdate::full_name().as_str())
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        let Some(DepartmentUpdate {
            department,
            reference,
            status,
            update,
        }) = referral_update(record)?
        else {
            return Ok(());
        };
        let known =
            crate::projections::case_known_as(self.api.store.pool(), &department, &reference)
                .await?;
        // Referrals issued before departments had references of their own quote the case id
        // (a time-ordered UUID; references are derived ones).
        let legacy = uuid::Uuid::parse_str(&reference)
            .ok()
            .filter(|id| id.get_version_num() == 7);
        let Some(case_id) = known.or(legacy) else {
            return Err(ProjectionError::Rejected(format!(
                "referral_id `{}` is not one Jiuzhu issued to {department}",
                update.referral_id
            )));
        };
        let request_id = format!(
            "referral-update-{}-{}",
            update.referral_id,
            status.as_str_name()
        );
        on_case(
            &self.api,
            jiuzhu_access::Actor::Platform,
            internal_call("ReferralUpdate", request_id),
            case_id,
            move |case, _| {
                let events = case.update_referral(
                    &department,
                    &update.referral_id,
                    status,
                    update.outcome.trim(),
                    update.handled_by.trim(),
                )?;
                Ok((events, ()))
            },
        )
        .await
        .map(|_| ())
        .map_err(jiuzhu_messaging::ProjectionError::from)
    }
}

/// A department's answer to a referral, as its inbound record says it.
#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentUpdate {
    /// The sending department (named by the topic).
    pub department: String,
    /// The department's reference of the case (the referral id's prefix).
    pub reference: String,
    pub status: ReferralStatus,
    pub update: ReferralUpdate,
}

/// A department's `ReferralUpdate` read from its inbound record; `None` for other messages.
pub fn referral_update(
    record: &InboundRecord,
) -> Result<Option<DepartmentUpdate>, ProjectionError> {
    if record.message_type() != Some(ReferralUpdate::full_name().as_str()) {
        return Ok(None);
    }
    let department = inbound_source(&record.topic)
        .ok_or_else(|| {
            ProjectionError::Rejected(format!("`{}` is not an inbound topic", record.topic))
        })?
        .to_owned();
    let update = ReferralUpdate::decode(record.payload.as_slice())?;
    let status = ReferralStatus::try_from(update.status).unwrap_or_default();
    if matches!(status, ReferralStatus::Unspecified | ReferralStatus::Issued) {
        return Err(ProjectionError::Rejected(format!(
            "status {} is not an update a department sends",
            update.status
        )));
    }
    let reference = update
        .referral_id
        .split_once(':')
        .map(|(reference, _)| reference.to_owned())
        .filter(|reference| !reference.is_empty())
        .ok_or_else(|| {
            ProjectionError::Rejected(format!(
                "referral_id `{}` is not one Jiuzhu issued",
                update.referral_id
            ))
        })?;
    Ok(Some(DepartmentUpdate {
        department,
        reference,
        status,
        update,
    }))
}
