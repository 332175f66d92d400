//! Address and identity normalisation of record linkage (crates/jiuzhu-linkage `normalise`):
//! what departments and case files write as names, phones, region codes, villages and free-text
//! addresses. Contract: never panics; every normal form is what its documentation says and is
//! stable (normalising it again changes nothing): names without spaces, separator dots,
//! full-width forms or lower-case ASCII, with one reading per character; phones of digits only;
//! a region code of six digits or none; places and the village read from an address without
//! spaces; `Normalised::from_written` fills the region from a valid resident id.
#![no_main]

use arbitrary::Arbitrary;
use jiuzhu_linkage::normalise::{
    self, Normalised, Written, name, phone, place, readings, region, village_from_address,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Record<'a> {
    name: &'a str,
    resident_id: &'a str,
    gender: &'a str,
    birth_date: &'a str,
    phone: &'a str,
    region_code: &'a str,
    township: &'a str,
    village: &'a str,
    address: &'a str,
}

fn full_width_or_space(c: char) -> bool {
    matches!(c, '\u{3000}' | '\u{FF01}'..='\u{FF5E}')
}

fn check_text(text: &str) {
    let n = name(text);
    assert!(
        !n.chars().any(|c| c.is_whitespace()
            || matches!(c, '·' | '•' | '.' | '・')
            || full_width_or_space(c)
            || c.is_ascii_lowercase()),
        "name {text:?} -> {n:?}"
    );
    assert_eq!(name(&n), n, "name of {text:?} is not stable");
    assert_eq!(readings(&n).len(), n.chars().count());

    let p = phone(text);
    assert!(p.bytes().all(|b| b.is_ascii_digit()), "{p:?}");
    assert_eq!(phone(&p), p, "phone of {text:?} is not stable");

    let r = region(text);
    assert!(r.is_empty() || (r.len() == 6 && r.bytes().all(|b| b.is_ascii_digit())));
    assert_eq!(region(&r), r);

    let place = place(text);
    assert!(!place.chars().any(char::is_whitespace), "{place:?}");

    let village = village_from_address(text);
    assert!(!village.chars().any(char::is_whitespace), "{village:?}");
}

fuzz_target!(|record: Record<'_>| {
    for text in [
        record.name,
        record.resident_id,
        record.phone,
        record.region_code,
        record.township,
        record.village,
        record.address,
    ] {
        check_text(text);
    }
    let village = village_from_address(record.address);
    let written = Written {
        name: record.name,
        resident_id: record.resident_id,
        gender: record.gender,
        birth_date: record.birth_date,
        phone: record.phone,
        region_code: record.region_code,
        township: record.township,
        village: if village.is_empty() {
            record.village
        } else {
            &village
        },
    };
    let normalised = Normalised::from_written(&written);
    assert_eq!(normalised.readings.len(), normalised.name.chars().count());
    assert_eq!(
        normalised
            .resident_id
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        normalise::resident_id(record.resident_id).map(|id| id.as_str().to_owned())
    );
    match (
        &normalised.resident_id,
        region(record.region_code).is_empty(),
    ) {
        (Some(id), true) => assert_eq!(normalised.region, id.region_code()),
        _ => assert_eq!(normalised.region, region(record.region_code)),
    }
    if let Some(date) = normalise::date(record.birth_date) {
        assert_eq!(normalised.birth_date, Some(date));
    }
});
