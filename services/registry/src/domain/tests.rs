//! Given events, when a command, then events (or an error).

use super::*;

use jiuzhu_eventstore::given_when_then::given;

fn input() -> IdentityInput<'static> {
    IdentityInput {
        full_name: " 王秀英 ",
        gender: Gender::Female as i32,
        birth_date: "1949-12-31",
        resident_id: "11010519491231002X",
        region_code: "522701",
        township: "沙包堡街道",
        village: "新场村",
        address_text: "",
        phone: "13800000000",
    }
}

fn registered(id: Uuid) -> Vec<RegistryEvent> {
    let command = RegisterPerson::parse(id, &input(), "rural_revitalization", "R-1")
        .unwrap_or_else(|v| panic!("{v:?}"));
    given::<Person>(&[])
        .register(&command, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn status(kind: StatusKind, from: &str, detail: &str) -> Result<RecordStatus, Vec<Violation>> {
    RecordStatus::parse(
        Uuid::now_v7(),
        kind as i32,
        "civil_affairs",
        "DOC-1",
        from,
        "",
        detail,
    )
}

#[test]
fn registering_records_the_normalised_identity() {
    let id = Uuid::now_v7();
    let events = registered(id);
    let [RegistryEvent::PersonRegistered(e)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(e.person_id, id.to_string());
    assert_eq!(e.full_name, "王秀英");
    assert_eq!(e.resident_id, "11010519491231002X");
    assert_eq!(e.region.as_ref().map(|r| r.code.as_str()), Some("522701"));
    assert!(e.flags.is_empty());
}

#[test]
fn registering_an_id_someone_holds_names_them() {
    let owner = Uuid::now_v7();
    let command = RegisterPerson::parse(Uuid::now_v7(), &input(), "civil_affairs", "")
        .unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        given::<Person>(&[]).register(&command, Some(owner)),
        Err(RegistryError::ResidentIdTaken(owner))
    );
}

#[test]
fn inconsistencies_are_kept_and_flagged_not_fixed() {
    let old_id = IdentityInput {
        resident_id: "110105491231002",
        birth_date: "1950-01-01",
        gender: Gender::Male as i32,
        ..input()
    };
    let identity = Identity::parse(&old_id).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        identity.birth_date.map(|d| d.to_string()).as_deref(),
        Some("1950-01-01")
    );
    assert_eq!(
        identity.flags,
        [
            IdentityFlag::BirthDateDiffersFromId,
            IdentityFlag::GenderDiffersFromId,
            IdentityFlag::IdUpgradedFrom15Digits
        ]
    );
    // A region code the table does not know (often a historical issuing office) is flagged.
    let birth = NaiveDate::from_ymd_opt(1949, 12, 31).unwrap_or_default();
    let historical = ResidentId::compose("110199", birth, 2).unwrap_or_else(|e| panic!("{e}"));
    let identity = Identity::parse(&IdentityInput {
        resident_id: historical.as_str(),
        ..input()
    })
    .unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(identity.flags, [IdentityFlag::IdRegionUnknown]);
}

#[test]
fn an_old_15_digit_id_written_with_spaces_is_flagged_as_upgraded() {
    // Found by the `registry_identity` fuzz target: the flag looked at the length as written.
    let identity = Identity::parse(&IdentityInput {
        resident_id: "4403 10000913167",
        birth_date: "",
        gender: Gender::Unspecified as i32,
        ..input()
    })
    .unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        identity.resident_id.as_ref().map(ResidentId::as_str),
        Some("440310190009131674")
    );
    assert_eq!(identity.flags, [IdentityFlag::IdUpgradedFrom15Digits]);
}

#[test]
fn every_bad_field_is_reported() {
    let bad = IdentityInput {
        full_name: "  ",
        gender: 9,
        birth_date: "31/12/1949",
        resident_id: "110105194912310021",
        region_code: "999999",
        phone: "call me",
        ..IdentityInput::default()
    };
    let fields: Vec<&str> = RegisterPerson::parse(Uuid::now_v7(), &bad, "", "")
        .err()
        .unwrap_or_default()
        .iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "full_name",
            "gender",
            "birth_date",
            "resident_id",
            "region.code",
            "phone",
            "source_department"
        ]
    );
}

#[test]
fn updating_records_only_what_changed() {
    let id = Uuid::now_v7();
    let person: Person = given(&registered(id));
    let moved = BTreeMap::from([("village", "王家寨".to_owned())]);
    let events = person
        .update(id, &moved, "civil_affairs", None)
        .unwrap_or_default();
    let [RegistryEvent::PersonUpdated(e)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(e.changed_fields, ["village"]);
    assert_eq!(e.village, "王家寨");
    assert_eq!(e.full_name, "王秀英");

    let same = BTreeMap::from([
        ("full_name", " 王秀英".to_owned()),
        ("resident_id", "11010519491231002x".to_owned()),
    ]);
    assert_eq!(
        person.update(id, &same, "x", None),
        Ok(vec![]),
        "normalised values equal to the current ones change nothing"
    );

    let bad = BTreeMap::from([("region", "999999".to_owned())]);
    assert!(
        matches!(person.update(id, &bad, "x", None), Err(RegistryError::Invalid(v)) if v[0].field == "region.code")
    );

    let other = Uuid::now_v7();
    let new_id = BTreeMap::from([("resident_id", "110105491231002".to_owned())]);
    // Same number in its old 15-digit form: normalises to the current one, so no change.
    assert_eq!(person.update(id, &new_id, "x", Some(other)), Ok(vec![]));
    let taken = BTreeMap::from([
        ("resident_id", "110105198001010032".to_owned()),
        ("birth_date", "1980-01-01".to_owned()),
        ("gender", (Gender::Male as i32).to_string()),
    ]);
    assert_eq!(
        person.update(id, &taken, "x", Some(other)),
        Err(RegistryError::ResidentIdTaken(other))
    );
    assert_eq!(person.update(id, &taken, "x", None).map(|e| e.len()), Ok(1));
}

#[test]
fn statuses_are_recorded_and_ended_once() {
    let id = Uuid::now_v7();
    let person: Person = given(&registered(id));
    let low = status(StatusKind::MinimumLivingAllowance, "2025-01-01", "")
        .unwrap_or_else(|v| panic!("{v:?}"));
    let recorded = person.record_status(id, &low).unwrap_or_default();
    let history: Vec<RegistryEvent> = registered(id).into_iter().chain(recorded).collect();
    let person: Person = given(&history);
    let ended = person
        .end_status(
            id,
            low.status_id,
            NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default(),
            "income above line",
        )
        .unwrap_or_default();
    assert_eq!(ended.len(), 1);
    let early = person.end_status(
        id,
        low.status_id,
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
        "x",
    );
    assert!(matches!(early, Err(RegistryError::EndBeforeStart { .. })));
    let after: Person = given(&history.into_iter().chain(ended).collect::<Vec<_>>());
    assert_eq!(
        after.end_status(
            id,
            low.status_id,
            NaiveDate::from_ymd_opt(2026, 7, 1).unwrap_or_default(),
            "x"
        ),
        Err(RegistryError::StatusAlreadyEnded(low.status_id))
    );
}

#[test]
fn status_validation_names_fields() {
    let fields = |r: Result<RecordStatus, Vec<Violation>>| -> Vec<&'static str> {
        r.err()
            .unwrap_or_default()
            .iter()
            .map(|v| v.field)
            .collect()
    };
    assert_eq!(
        fields(status(StatusKind::Disability, "2025-01-01", "")),
        ["detail"]
    );
    assert_eq!(
        fields(status(StatusKind::Unspecified, "", "")),
        ["kind", "effective_from"]
    );
    assert_eq!(
        fields(RecordStatus::parse(
            Uuid::now_v7(),
            5,
            "x",
            "",
            "2025-02-01",
            "2025-01-01",
            ""
        )),
        ["effective_to"]
    );
    assert!(status(StatusKind::Disability, "2025-01-01", "2").is_ok());
}

#[test]
fn merging_keeps_both_records_and_can_be_undone() {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let absorbed: Person = given(&registered(a));
    let survivor: Person = given(&registered(b));
    assert_eq!(
        absorbed.merge_into(a, a, &absorbed, "dup", "officer-1"),
        Err(RegistryError::SelfMerge)
    );
    let merged = absorbed
        .merge_into(a, b, &survivor, "same ID", "officer-1")
        .unwrap_or_default();
    let history: Vec<RegistryEvent> = registered(a).into_iter().chain(merged).collect();
    let absorbed: Person = given(&history);
    assert_eq!(absorbed.merged_into(), Some(b));
    // A merged record takes no further changes and cannot be merged again.
    let low = status(StatusKind::MinimumLivingAllowance, "2025-01-01", "")
        .unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        absorbed.record_status(a, &low),
        Err(RegistryError::MergedInto {
            person: a,
            survivor: b
        })
    );
    assert_eq!(
        survivor.merge_into(b, a, &absorbed, "x", "y"),
        Err(RegistryError::MergedInto {
            person: a,
            survivor: b
        })
    );
    let unmerged = absorbed
        .unmerge(a, "different people", "officer-2")
        .unwrap_or_default();
    let restored: Person = given(&history.into_iter().chain(unmerged).collect::<Vec<_>>());
    assert_eq!(restored.merged_into(), None);
    assert_eq!(
        restored.unmerge(a, "x", "y"),
        Err(RegistryError::NotMerged(a))
    );
}

#[test]
fn households_have_one_head_and_members_belong_to_one_household() {
    let (household, head, child) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let head_person: Person = given(&registered(head));
    let child_person: Person = given(&registered(child));
    let empty: Household = given(&[]);
    assert_eq!(
        empty.record_income(household, 2025, 500_000, "x"),
        Err(RegistryError::HouseholdNotFound(household))
    );
    let added = empty
        .add_member(household, head, &head_person, Relationship::Head, None)
        .unwrap_or_default();
    let with_head: Household = given(&added);
    assert!(matches!(
        with_head.add_member(household, child, &child_person, Relationship::Head, None),
        Err(RegistryError::SecondHead { .. })
    ));
    let elsewhere = Uuid::now_v7();
    assert_eq!(
        with_head.add_member(
            household,
            child,
            &child_person,
            Relationship::Child,
            Some(elsewhere)
        ),
        Err(RegistryError::AlreadyInHousehold {
            person: child,
            household: elsewhere
        })
    );
    assert_eq!(
        with_head
            .record_income(household, 2025, 480_000, "x")
            .map(|e| e.len()),
        Ok(1)
    );
    assert_eq!(
        with_head.remove_member(household, child, "moved"),
        Err(RegistryError::NotInHousehold {
            person: child,
            household
        })
    );
    assert_eq!(
        with_head
            .remove_member(household, head, "died")
            .map(|e| e.len()),
        Ok(1)
    );
}

#[test]
fn an_erased_record_refuses_every_change_and_a_second_erasure() {
    let id = Uuid::now_v7();
    let person: Person = given(&registered(id));
    let events = person
        .erase(
            id,
            "GDPR-like request 2026-17",
            "the person asked",
            "officer-9",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let [RegistryEvent::PersonErased(e)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(e.person_id, id.to_string());
    assert_eq!(e.legal_basis, "GDPR-like request 2026-17");

    let mut history = registered(id);
    history.extend(events);
    let erased: Person = given(&history);
    assert!(erased.erased());
    assert_eq!(
        erased.resident_id(),
        "",
        "the aggregate forgets the identity too"
    );
    let changes = BTreeMap::from([("full_name", "李四".to_owned())]);
    assert_eq!(
        erased.update(id, &changes, "civil_affairs", None),
        Err(RegistryError::Erased(id))
    );
    let command = status(StatusKind::Minor, "2020-01-01", "").unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        erased.record_status(id, &command),
        Err(RegistryError::Erased(id))
    );
    assert_eq!(
        erased.erase(id, "again", "", "officer-9"),
        Err(RegistryError::Erased(id))
    );
    assert_eq!(
        Person::default().erase(id, "x", "", "officer-9"),
        Err(RegistryError::PersonNotFound(id))
    );
}

#[test]
fn another_departments_record_links_as_a_source_and_names_its_conflicts() {
    let id = Uuid::now_v7();
    let history = registered(id);
    let person = given::<Person>(&history);
    assert!(person.registered_from("rural_revitalization", "R-1"));
    assert!(!person.registered_from("civil_affairs", "C-9"));
    // Civil affairs holds her under the same resident id, another phone, no village.
    let theirs = Identity::parse(&IdentityInput {
        phone: "13900000000",
        village: "",
        ..input()
    })
    .unwrap_or_else(|v| panic!("{v:?}"));
    let events = person
        .link_source(id, "civil_affairs", "C-9", &theirs)
        .unwrap_or_else(|e| panic!("{e}"));
    let [RegistryEvent::SourceRecordLinked(linked)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(
        linked.conflicting_fields,
        ["phone"],
        "a blank village says nothing"
    );
    assert_eq!(
        (
            linked.source_department.as_str(),
            linked.source_record_id.as_str()
        ),
        ("civil_affairs", "C-9")
    );
    // The same record again: nothing new. A changed one: linked again with its conflicts.
    let history: Vec<RegistryEvent> = history.into_iter().chain(events).collect();
    let person = given::<Person>(&history);
    assert!(
        person
            .link_source(id, "civil_affairs", "C-9", &theirs)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    let agreeing = Identity::parse(&input()).unwrap_or_else(|v| panic!("{v:?}"));
    let again = person
        .link_source(id, "civil_affairs", "C-9", &agreeing)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(again.as_slice(), [RegistryEvent::SourceRecordLinked(l)] if l.conflicting_fields.is_empty()),
        "{again:?}"
    );
    // A second record of hers from a department that holds one already is its own duplicate.
    assert!(matches!(
        given::<Person>(&history).link_source(id, "civil_affairs", "C-10", &theirs),
        Err(RegistryError::HeldAsAnotherRecord { record, .. }) if record == "C-9"
    ));
    assert!(matches!(
        given::<Person>(&history).link_source(id, "rural_revitalization", "R-2", &theirs),
        Err(RegistryError::HeldAsAnotherRecord { record, .. }) if record == "R-1"
    ));
    // An erased person takes no source.
    let erased = given::<Person>(&history)
        .erase(id, "court order", "privacy", "officer-1")
        .unwrap_or_else(|e| panic!("{e}"));
    let history: Vec<RegistryEvent> = history.into_iter().chain(erased).collect();
    assert!(matches!(
        given::<Person>(&history).link_source(id, "civil_affairs", "C-9", &theirs),
        Err(RegistryError::Erased(_))
    ));
}
