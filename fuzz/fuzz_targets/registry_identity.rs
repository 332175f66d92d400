//! The registry's validation of identity fields (services/registry `Identity::parse`), reached
//! the way a department's record reaches it: a `PersonRecord` decoded from the bytes of an
//! inbound message (`jiuzhu.inbound.<department>.v1`) or sent in `BulkUpsertPersons`, read by
//! `bulk::input`. Contract: never panics; a rejection names each bad field; an accepted
//! identity holds what was written (trimmed), has a known region, a date when one was written
//! and an id when one was written, raises exactly the flags its documentation lists, and its
//! own fields parse again to the same identity (same fields, same fingerprint).
#![no_main]

mod common;

use arbitrary::Arbitrary;
use common::{DateText, IdText, RegionText};
use jiuzhu_identity::{ResidentId, Sex, lookup_region};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::{Gender, IdentityFlag, PersonRecord};
use jiuzhu_registry::bulk;
use jiuzhu_registry::domain::{Identity, IdentityInput, UPDATABLE_FIELDS};
use libfuzzer_sys::fuzz_target;
use prost::Message;

#[derive(Debug, Arbitrary)]
enum GenderValue {
    Known(u8),
    Raw(i32),
}

#[derive(Debug, Arbitrary)]
struct Fields<'a> {
    full_name: &'a str,
    gender: GenderValue,
    birth_date: DateText<'a>,
    resident_id: IdText<'a>,
    region: RegionText<'a>,
    township: &'a str,
    village: &'a str,
    address_text: &'a str,
    phone: &'a str,
}

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// The bytes of an inbound message.
    Message(&'a [u8]),
    /// A record built field by field, encoded and decoded as it travels.
    Fields(Fields<'a>),
}

fn record(fields: &Fields<'_>) -> PersonRecord {
    PersonRecord {
        source_record_id: "R1".to_owned(),
        full_name: fields.full_name.to_owned(),
        gender: match fields.gender {
            GenderValue::Known(g) => i32::from(g % 3),
            GenderValue::Raw(g) => g,
        },
        birth_date: fields.birth_date.render(),
        resident_id: fields.resident_id.render(),
        region: Some(RegionCode {
            code: fields.region.render(),
        }),
        township: fields.township.to_owned(),
        village: fields.village.to_owned(),
        address_text: fields.address_text.to_owned(),
        phone: fields.phone.to_owned(),
        ..PersonRecord::default()
    }
}

fn check(record: &PersonRecord) {
    let input = bulk::input(record);
    let identity = match Identity::parse(&input) {
        Ok(identity) => identity,
        Err(violations) => {
            assert!(!violations.is_empty());
            for v in violations {
                assert!(!v.reason.is_empty());
                assert!(
                    UPDATABLE_FIELDS.contains(&v.field) || v.field == "region.code",
                    "{}",
                    v.field
                );
            }
            return;
        }
    };
    assert_eq!(identity.full_name, input.full_name.trim());
    assert!((1..=64).contains(&identity.full_name.chars().count()));
    assert_eq!(identity.gender as i32, input.gender);
    assert_eq!(identity.region_code, input.region_code.trim());
    assert!(lookup_region(&identity.region_code).is_some());
    assert_eq!(
        identity.birth_date.is_some(),
        !input.birth_date.trim().is_empty()
    );
    assert_eq!(
        identity.resident_id.is_some(),
        !input.resident_id.trim().is_empty()
    );
    assert!(identity.phone.chars().count() <= 20);
    assert!(
        identity
            .phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' '))
    );

    // The flags, exactly as `IdentityFlag` documents them.
    let mut flags = Vec::new();
    if let Some(id) = &identity.resident_id {
        if identity.birth_date.is_some_and(|d| d != id.birth_date()) {
            flags.push(IdentityFlag::BirthDateDiffersFromId);
        }
        let id_gender = match id.sex() {
            Sex::Male => Gender::Male,
            Sex::Female => Gender::Female,
        };
        if identity.gender != Gender::Unspecified && identity.gender != id_gender {
            flags.push(IdentityFlag::GenderDiffersFromId);
        }
        if lookup_region(id.region_code()).is_none() {
            flags.push(IdentityFlag::IdRegionUnknown);
        }
        let written = input
            .resident_id
            .chars()
            .filter(|c| !c.is_whitespace())
            .count();
        if written == 15 {
            flags.push(IdentityFlag::IdUpgradedFrom15Digits);
        }
        assert_eq!(ResidentId::parse(id.as_str()).as_ref(), Ok(id));
    }
    assert_eq!(
        identity.flags, flags,
        "resident id written as {:?}",
        input.resident_id
    );

    // What the registry keeps is valid input again, and says the same thing.
    let fields = identity.fields();
    let field = |name: &str| fields.get(name).map_or("", String::as_str);
    let again = Identity::parse(&IdentityInput {
        full_name: field("full_name"),
        gender: field("gender").parse().unwrap_or(-1),
        birth_date: field("birth_date"),
        resident_id: field("resident_id"),
        region_code: field("region"),
        township: field("township"),
        village: field("village"),
        address_text: field("address_text"),
        phone: field("phone"),
    });
    let again = match again {
        Ok(again) => again,
        Err(violations) => {
            panic!("the registry's own fields {fields:?} are refused: {violations:?}")
        }
    };
    assert_eq!(again.fields(), fields);
    assert_eq!(again.fingerprint(), identity.fingerprint());
}

fuzz_target!(|input: Input<'_>| {
    match input {
        Input::Message(bytes) => {
            if let Ok(record) = PersonRecord::decode(bytes) {
                check(&record);
            }
        }
        Input::Fields(fields) => {
            let record = record(&fields);
            let decoded = PersonRecord::decode(record.encode_to_vec().as_slice());
            assert_eq!(decoded.as_ref(), Ok(&record));
            check(&record);
        }
    }
});
