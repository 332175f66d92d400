//! `ResidentId::parse` (crates/jiuzhu-identity): what departments, forms and callers write as a
//! resident identity number. Contract: never panics; an accepted number is the canonical
//! 18-character form (17 digits and a check character), parses to itself again (also written
//! in lower case), carries the region, birth date and sex of its digits, is what `compose`
//! builds from those parts, and is what linkage's normaliser reads from the same text.
#![no_main]

use jiuzhu_identity::{ResidentId, Sex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(id) = ResidentId::parse(text) else {
        // A rejection explains itself without panicking.
        if let Err(error) = ResidentId::parse(text) {
            assert!(!error.to_string().is_empty());
        }
        return;
    };
    let canonical = id.as_str();
    assert_eq!(canonical.len(), 18, "{canonical}");
    assert!(canonical.is_ascii());
    assert!(canonical[..17].bytes().all(|b| b.is_ascii_digit()));
    assert!(matches!(canonical.as_bytes()[17], b'0'..=b'9' | b'X'));

    // What was written, without spaces: the same 18 characters, or the old 15 digits.
    let written: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if written.len() == 15 {
        assert_eq!(&canonical[..6], &written[..6]);
        assert_eq!(&canonical[6..8], "19");
        assert_eq!(&canonical[8..17], &written[6..]);
    } else {
        assert_eq!(canonical, written);
    }

    assert_eq!(ResidentId::parse(canonical).as_ref(), Ok(&id));
    assert_eq!(
        ResidentId::parse(&canonical.to_ascii_lowercase()).as_ref(),
        Ok(&id)
    );

    assert_eq!(id.region_code(), &canonical[..6]);
    assert_eq!(
        id.birth_date().format("%Y%m%d").to_string(),
        &canonical[6..14]
    );
    let sequence: u16 = canonical[14..17].parse().unwrap_or(u16::MAX);
    let sex = if sequence % 2 == 1 {
        Sex::Male
    } else {
        Sex::Female
    };
    assert_eq!(id.sex(), sex);
    assert_eq!(
        ResidentId::compose(id.region_code(), id.birth_date(), sequence).as_ref(),
        Ok(&id)
    );
    // Debug output is masked: never the birth date and sequence.
    assert!(!format!("{id:?}").contains(&canonical[6..]));
    // Record linkage reads the same number from the same text.
    assert_eq!(
        jiuzhu_linkage::normalise::resident_id(text).as_ref(),
        Some(&id)
    );
});
