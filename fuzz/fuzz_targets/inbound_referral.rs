//! Departments' answers to referrals arriving on Kafka (services/decisions
//! `departments::referral_update`): a record of `jiuzhu.inbound.<department>.v1` typed
//! `jiuzhu.decisions.v1.ReferralUpdate`, decoded into the department, case, status and update
//! the case command is run with. Contract: never panics; a record of another type is left
//! alone; an accepted update names the topic's department, a status a department may send
//! (acknowledged, completed, declined), and the case its referral id begins with; a
//! well-formed update for a referral Jiuzhu issued is accepted as sent.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use jiuzhu_decisions::departments::referral_update;
use jiuzhu_messaging::{InboundRecord, MESSAGE_TYPE_HEADER, ProjectionError, inbound_source};
use jiuzhu_proto::decisions::{ReferralStatus, ReferralUpdate};
use libfuzzer_sys::fuzz_target;
use prost::{Message, Name};

#[derive(Debug, Arbitrary)]
enum Topic<'a> {
    Department { prefix: &'a str, name: &'a str },
    Other(&'a str),
}

#[derive(Debug, Arbitrary)]
enum ReferralId<'a> {
    /// As Jiuzhu issues them: the case id, a colon, the rest.
    Issued {
        case: u128,
        rest: &'a str,
    },
    Written(&'a str),
}

#[derive(Debug, Arbitrary)]
enum Payload<'a> {
    Raw(&'a [u8]),
    Update {
        referral_id: ReferralId<'a>,
        status: i32,
        outcome: &'a str,
        handled_by: &'a str,
    },
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    topic: Topic<'a>,
    typed: Option<Option<&'a str>>,
    offset: i64,
    payload: Payload<'a>,
}

fuzz_target!(|input: Input<'_>| {
    let topic = match input.topic {
        Topic::Department { prefix, name } => format!("{prefix}jiuzhu.inbound.{name}.v1"),
        Topic::Other(name) => name.to_owned(),
    };
    let mut headers = HashMap::new();
    match input.typed {
        None => {}
        Some(None) => {
            headers.insert(MESSAGE_TYPE_HEADER.to_owned(), ReferralUpdate::full_name());
        }
        Some(Some(other)) => {
            headers.insert(MESSAGE_TYPE_HEADER.to_owned(), other.to_owned());
        }
    }
    let (payload, sent) = match input.payload {
        Payload::Raw(bytes) => (bytes.to_vec(), None),
        Payload::Update {
            referral_id,
            status,
            outcome,
            handled_by,
        } => {
            let (referral_id, issued) = match referral_id {
                ReferralId::Issued { case, rest } => (
                    format!("{}:{rest}", uuid::Uuid::from_u128(case)),
                    Some(uuid::Uuid::from_u128(case)),
                ),
                ReferralId::Written(text) => (text.to_owned(), None),
            };
            let update = ReferralUpdate {
                referral_id,
                status,
                outcome: outcome.to_owned(),
                handled_by: handled_by.to_owned(),
            };
            (update.encode_to_vec(), Some((update, issued)))
        }
    };
    let record = InboundRecord {
        topic,
        partition: 0,
        offset: input.offset,
        key: None,
        payload,
        headers,
    };
    let typed = record.message_type() == Some(ReferralUpdate::full_name().as_str());
    let answer = referral_update(&record);
    let update = match answer {
        Ok(None) => {
            assert!(!typed);
            return;
        }
        Ok(Some(update)) => update,
        Err(ProjectionError::Rejected(reason)) => {
            assert!(typed);
            assert!(!reason.is_empty());
            if let Some((sent, Some(_))) = &sent
                && inbound_source(&record.topic).is_some()
            {
                let status = ReferralStatus::try_from(sent.status).unwrap_or_default();
                assert!(
                    matches!(status, ReferralStatus::Unspecified | ReferralStatus::Issued),
                    "a well-formed update is refused: {reason}"
                );
            }
            return;
        }
        Err(error) => {
            assert!(typed);
            assert!(sent.is_none(), "a well-formed update is refused: {error}");
            return;
        }
    };
    assert!(typed);
    assert_eq!(
        Some(update.department.as_str()),
        inbound_source(&record.topic)
    );
    assert!(matches!(
        update.status,
        ReferralStatus::Acknowledged | ReferralStatus::Completed | ReferralStatus::Declined
    ));
    assert_eq!(update.status as i32, update.update.status);
    let prefix = update
        .update
        .referral_id
        .split_once(':')
        .map(|(case, _)| case);
    assert_eq!(
        prefix.and_then(|p| uuid::Uuid::parse_str(p).ok()),
        Some(update.case_id)
    );
    if let Some((sent, issued)) = sent {
        assert_eq!(update.update, sent);
        if let Some(case) = issued {
            assert_eq!(update.case_id, case);
        }
    }
});
