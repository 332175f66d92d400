//! Case parties arriving on Kafka (services/clues `inbound::party_request`): a record of
//! `jiuzhu.inbound.cases.v1` or of the rural revitalization department's topic decoded into a
//! `ReportPartyRequest`, then normalised for matching as intake does (`matching::party`).
//! Contract: never panics; only a department message not typed as a clue is left alone; a
//! request always leaves with a request id, the sender's when given, otherwise one
//! `ReportParty` accepts, derived from case number and party reference (the same on
//! redelivery at another offset) when both are given; a well-formed message always decodes to
//! what was sent; the party's written birth date, when readable, is the one matched on.
#![no_main]

mod common;

use std::collections::HashMap;

use arbitrary::Arbitrary;
use common::{DateText, IdText, RegionText};
use jiuzhu_clues::inbound::{CLUE_SENDING_DEPARTMENT, party_request};
use jiuzhu_clues::matching;
use jiuzhu_linkage::{Written, normalise};
use jiuzhu_messaging::{InboundRecord, MESSAGE_TYPE_HEADER, inbound_source, inbound_topic};
use jiuzhu_proto::clues::{Harm, ReportPartyRequest};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_runtime::grpc::FieldViolations;
use libfuzzer_sys::fuzz_target;
use prost::{Message, Name};

#[derive(Debug, Arbitrary)]
enum Topic<'a> {
    Cases,
    Department,
    Other(&'a str),
}

#[derive(Debug, Arbitrary)]
enum MessageType<'a> {
    Untyped,
    Clue,
    Other(&'a str),
}

#[derive(Debug, Arbitrary)]
struct Party<'a> {
    request_id: &'a str,
    case_no: &'a str,
    party_ref: &'a str,
    procuratorate: &'a str,
    incident_date: DateText<'a>,
    role: i32,
    disability_grade: i32,
    full_name: &'a str,
    id_number: IdText<'a>,
    gender: &'a str,
    birth_date: DateText<'a>,
    approximate_age: i32,
    phone: &'a str,
    region: RegionText<'a>,
    address: &'a str,
}

#[derive(Debug, Arbitrary)]
enum Payload<'a> {
    Raw(&'a [u8]),
    Party(Party<'a>),
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    prefix: &'a str,
    topic: Topic<'a>,
    message_type: MessageType<'a>,
    offset: i64,
    payload: Payload<'a>,
}

fn request(party: &Party<'_>) -> ReportPartyRequest {
    ReportPartyRequest {
        request_id: party.request_id.to_owned(),
        case_no: party.case_no.to_owned(),
        party_ref: party.party_ref.to_owned(),
        procuratorate: party.procuratorate.to_owned(),
        incident_date: party.incident_date.render(),
        role: party.role,
        harm: Some(Harm {
            disability_grade: party.disability_grade,
            ..Harm::default()
        }),
        full_name: party.full_name.to_owned(),
        id_number: party.id_number.render(),
        gender: party.gender.to_owned(),
        birth_date: party.birth_date.render(),
        approximate_age: party.approximate_age,
        phone: party.phone.to_owned(),
        region: Some(RegionCode {
            code: party.region.render(),
        }),
        address: party.address.to_owned(),
        ..ReportPartyRequest::default()
    }
}

fn accepted_id(request_id: &str) -> bool {
    let mut violations = FieldViolations::new();
    violations.check_request_id(request_id);
    violations.is_empty()
}

fuzz_target!(|input: Input<'_>| {
    let topic = match input.topic {
        Topic::Cases => inbound_topic("cases"),
        Topic::Department => inbound_topic(CLUE_SENDING_DEPARTMENT),
        Topic::Other(name) => name.to_owned(),
    };
    let mut headers = HashMap::new();
    match input.message_type {
        MessageType::Untyped => {}
        MessageType::Clue => {
            headers.insert(
                MESSAGE_TYPE_HEADER.to_owned(),
                ReportPartyRequest::full_name(),
            );
        }
        MessageType::Other(name) => {
            headers.insert(MESSAGE_TYPE_HEADER.to_owned(), name.to_owned());
        }
    }
    let sent = match &input.payload {
        Payload::Raw(_) => None,
        Payload::Party(party) => Some(request(party)),
    };
    let mut record = InboundRecord {
        topic: format!("{}{topic}", input.prefix),
        partition: 0,
        offset: input.offset,
        key: None,
        payload: match (&input.payload, &sent) {
            (Payload::Raw(bytes), _) => bytes.to_vec(),
            (_, Some(request)) => request.encode_to_vec(),
            _ => Vec::new(),
        },
        headers,
    };

    let ignored = inbound_source(&record.topic) == Some(CLUE_SENDING_DEPARTMENT)
        && record.message_type() != Some(ReportPartyRequest::full_name().as_str());
    let request = match party_request(&record) {
        Ok(None) => {
            assert!(ignored, "a clue on {:?} was left alone", record.topic);
            return;
        }
        Ok(Some(request)) => request,
        Err(error) => {
            assert!(sent.is_none(), "a well-formed message is refused: {error}");
            return;
        }
    };
    assert!(!ignored);
    let decoded = ReportPartyRequest::decode(record.payload.as_slice()).unwrap_or_default();
    if let Some(sent) = &sent {
        assert_eq!(&decoded, sent);
    }
    assert_eq!(
        ReportPartyRequest {
            request_id: decoded.request_id.clone(),
            ..request.clone()
        },
        decoded
    );
    if decoded.request_id.is_empty() {
        assert!(
            accepted_id(&request.request_id),
            "derived request id {:?} is refused",
            request.request_id
        );
        if !decoded.case_no.is_empty() && !decoded.party_ref.is_empty() {
            record.offset = record.offset.wrapping_add(1);
            let again = party_request(&record).ok().flatten().map(|r| r.request_id);
            assert_eq!(again.as_ref(), Some(&request.request_id));
        }
    } else {
        assert_eq!(request.request_id, decoded.request_id);
    }

    // Intake's normalisation of the party for matching.
    let region = request
        .region
        .as_ref()
        .map(|r| r.code.trim().to_owned())
        .unwrap_or_default();
    let party = matching::party(
        &Written {
            name: &request.full_name,
            resident_id: &request.id_number,
            gender: &request.gender,
            birth_date: &request.birth_date,
            phone: &request.phone,
            region_code: &region,
            township: "",
            village: "",
        },
        &request.address,
        request.approximate_age,
        &request.incident_date,
    );
    if let Some(date) = normalise::date(&request.birth_date) {
        assert_eq!(party.birth_date, Some(date));
    }
});
