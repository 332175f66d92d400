//! Case parties from case-handling systems on `jiuzhu.inbound.cases.v1`, and clues the rural
//! revitalization department sends on its inbound topic (header `jiuzhu-message-type:
//! jiuzhu.clues.v1.ReportPartyRequest`; its registry records there are the registry's): one
//! `jiuzhu.clues.v1.ReportPartyRequest` per record, applied exactly like the gRPC call. The
//! request id is derived from case number and party reference when the sender leaves it empty,
//! so redelivery changes nothing. A record that cannot apply goes to the dead-letter topic with
//! the reasons; an outage is retried.

use jiuzhu_messaging::{
    InboundHandler, InboundRecord, ProjectionError, inbound_source, inbound_topic,
};
use jiuzhu_proto::clues::ReportPartyRequest;
use prost::{Message, Name};

/// The department that sends clues of its own (poor households hurt by crime).
pub const CLUE_SENDING_DEPARTMENT: &str = "rural_revitalization";

use crate::intake::Intake;

#[derive(Debug)]
pub struct CaseFeed {
    intake: Intake,
}

impl CaseFeed {
    pub fn new(intake: Intake) -> Self {
        Self { intake }
    }
}

impl InboundHandler for CaseFeed {
    fn name(&self) -> &str {
        "clues.case_feed"
    }

    fn topics(&self) -> Vec<String> {
        vec![
            inbound_topic("cases"),
            inbound_topic(CLUE_SENDING_DEPARTMENT),
        ]
    }

    fn handles(&self, record: &InboundRecord) -> bool {
        is_party(record)
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        let Some(request) = party_request(record)? else {
            return Ok(());
        };
        match self.intake.report(request).await {
            Ok(_) => Ok(()),
            Err(status) => Err(jiuzhu_messaging::ProjectionError::from(status)),
        }
    }
}

/// Whether the record is a case party: anything on the case systems' topic, and on a
/// department's only the messages typed as clues.
fn is_party(record: &InboundRecord) -> bool {
    inbound_source(&record.topic) != Some(CLUE_SENDING_DEPARTMENT)
        || record.message_type() == Some(ReportPartyRequest::full_name().as_str())
}

/// The `ReportPartyRequest` an inbound record carries, its request id derived when the sender
/// left it empty; `None` for a message on a department's topic that is not a clue.
pub fn party_request(
    record: &InboundRecord,
) -> Result<Option<ReportPartyRequest>, ProjectionError> {
    if !is_party(record) {
        return Ok(None);
    }
    let mut request = ReportPartyRequest::decode(record.payload.as_slice())?;
    if request.request_id.is_empty() {
        request.request_id = format!("inbound-{}", record.offset);
        // Stable across redelivery of the same party (a new offset would make a new id).
        if !request.case_no.is_empty() && !request.party_ref.is_empty() {
            request.request_id = format!(
                "case:{:x}",
                stable_hash(&format!(
                    "{}\u{0}{}",
                    jiuzhu_identity::canonical_case_number(&request.case_no),
                    request.party_ref
                ))
            );
        }
    }
    Ok(Some(request))
}

/// FNV-1a: stable across builds and platforms (the id must not change between releases).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}
