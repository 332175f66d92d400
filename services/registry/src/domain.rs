//! The registry's decisions, free of I/O: raw input is validated into typed commands, the
//! `Person` and `Household` aggregates decide, and events record what was decided. Facts that
//! need the whole registry (is this resident id taken? is this person in another household?)
//! are checked by the shell against its claim tables and passed in.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jiuzhu_eventstore::{Aggregate, event_enum};
use jiuzhu_identity::{ResidentId, Sex, lookup_region};
use jiuzhu_proto::common::{Money, RegionCode};
use jiuzhu_proto::registry::{
    Gender, HouseholdIncomeRecorded, HouseholdMemberAdded, HouseholdMemberRemoved, IdentityFlag,
    PersonErased, PersonMerged, PersonRegistered, PersonUnmerged, PersonUpdated, Relationship,
    SourceRecordLinked, StatusEnded, StatusKind, StatusRecorded,
};
use uuid::Uuid;

event_enum! {
    /// Every event on `jiuzhu.registry.events.v1`.
    pub enum RegistryEvent {
        PersonRegistered(PersonRegistered),
        PersonUpdated(PersonUpdated),
        StatusRecorded(StatusRecorded),
        StatusEnded(StatusEnded),
        PersonMerged(PersonMerged),
        PersonUnmerged(PersonUnmerged),
        PersonErased(PersonErased),
        HouseholdMemberAdded(HouseholdMemberAdded),
        HouseholdMemberRemoved(HouseholdMemberRemoved),
        HouseholdIncomeRecorded(HouseholdIncomeRecorded),
        SourceRecordLinked(SourceRecordLinked),
    }
}

/// A field that failed validation, with a reason a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: &'static str,
    pub reason: String,
}

#[derive(Debug, Default)]
struct Violations(Vec<Violation>);

impl Violations {
    fn add(&mut self, field: &'static str, reason: impl Into<String>) {
        self.0.push(Violation {
            field,
            reason: reason.into(),
        });
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<Violation>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

fn parse_date(violations: &mut Violations, field: &'static str, text: &str) -> Option<NaiveDate> {
    match text.trim() {
        "" => None,
        text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| violations.add(field, format!("`{text}` is not a YYYY-MM-DD date")))
            .ok(),
    }
}

fn required<'a>(
    violations: &mut Violations,
    field: &'static str,
    text: &'a str,
    max: usize,
) -> &'a str {
    let text = text.trim();
    if text.is_empty() {
        violations.add(field, "is required");
    } else if text.chars().count() > max {
        violations.add(field, format!("must be at most {max} characters"));
    }
    text
}

fn optional<'a>(
    violations: &mut Violations,
    field: &'static str,
    text: &'a str,
    max: usize,
) -> &'a str {
    let text = text.trim();
    if text.chars().count() > max {
        violations.add(field, format!("must be at most {max} characters"));
    }
    text
}

fn format_date(date: Option<NaiveDate>) -> String {
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Who a person is, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub full_name: String,
    pub gender: Gender,
    pub birth_date: Option<NaiveDate>,
    pub resident_id: Option<ResidentId>,
    pub region_code: String,
    pub township: String,
    pub village: String,
    pub address_text: String,
    pub phone: String,
    /// Inconsistencies kept, not silently fixed.
    pub flags: Vec<IdentityFlag>,
}

/// Identity fields as a caller sent them.
#[derive(Debug, Clone, Default)]
pub struct IdentityInput<'a> {
    pub full_name: &'a str,
    pub gender: i32,
    pub birth_date: &'a str,
    pub resident_id: &'a str,
    pub region_code: &'a str,
    pub township: &'a str,
    pub village: &'a str,
    pub address_text: &'a str,
    pub phone: &'a str,
}

impl Identity {
    /// Validates every field and reports all violations at once.
    pub fn parse(input: &IdentityInput<'_>) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::default();
        let full_name = required(&mut v, "full_name", input.full_name, 64).to_owned();
        let gender = Gender::try_from(input.gender).unwrap_or_else(|_| {
            v.add("gender", format!("{} is not a known gender", input.gender));
            Gender::Unspecified
        });
        let birth_date = parse_date(&mut v, "birth_date", input.birth_date);
        let raw_id = input.resident_id.trim();
        let resident_id = if raw_id.is_empty() {
            None
        } else {
            ResidentId::parse(raw_id)
                .map_err(|error| v.add("resident_id", error.to_string()))
                .ok()
        };
        let region_code = input.region_code.trim().to_owned();
        if lookup_region(&region_code).is_none() {
            v.add(
                "region.code",
                format!("`{region_code}` is not a GB/T 2260 region code"),
            );
        }
        let phone = optional(&mut v, "phone", input.phone, 20).to_owned();
        if !phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' '))
        {
            v.add("phone", "may hold only digits, '+', '-' and spaces");
        }
        let township = optional(&mut v, "township", input.township, 64).to_owned();
        let village = optional(&mut v, "village", input.village, 64).to_owned();
        let address_text = optional(&mut v, "address_text", input.address_text, 256).to_owned();
        let mut identity = Self {
            full_name,
            gender,
            birth_date,
            resident_id,
            region_code,
            township,
            village,
            address_text,
            phone,
            flags: Vec::new(),
        };
        // Written in the old form: 15 digits, wherever the writer put spaces.
        let old_form = raw_id.chars().filter(|c| !c.is_whitespace()).count() == 15;
        identity.flags = identity.inconsistencies(old_form);
        v.finish(identity)
    }

    fn inconsistencies(&self, upgraded: bool) -> Vec<IdentityFlag> {
        let mut flags = Vec::new();
        let Some(id) = &self.resident_id else {
            return flags;
        };
        if self.birth_date.is_some_and(|d| d != id.birth_date()) {
            flags.push(IdentityFlag::BirthDateDiffersFromId);
        }
        let id_gender = match id.sex() {
            Sex::Male => Gender::Male,
            Sex::Female => Gender::Female,
        };
        if self.gender != Gender::Unspecified && self.gender != id_gender {
            flags.push(IdentityFlag::GenderDiffersFromId);
        }
        if lookup_region(id.region_code()).is_none() {
            flags.push(IdentityFlag::IdRegionUnknown);
        }
        if upgraded {
            flags.push(IdentityFlag::IdUpgradedFrom15Digits);
        }
        flags
    }

    /// A digest of the normalised identity: equal for records that say the same thing.
    pub fn fingerprint(&self) -> Vec<u8> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for (field, value) in self.fields() {
            hasher.update(field.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        hasher.finalize().to_vec()
    }

    /// Values by field name, for comparing and updating.
    pub fn fields(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("full_name", self.full_name.clone()),
            ("gender", (self.gender as i32).to_string()),
            ("birth_date", format_date(self.birth_date)),
            (
                "resident_id",
                self.resident_id
                    .as_ref()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("region", self.region_code.clone()),
            ("township", self.township.clone()),
            ("village", self.village.clone()),
            ("address_text", self.address_text.clone()),
            ("phone", self.phone.clone()),
        ])
    }
}

/// Field names `UpdatePerson` accepts.
pub const UPDATABLE_FIELDS: [&str; 9] = [
    "full_name",
    "gender",
    "birth_date",
    "resident_id",
    "region",
    "township",
    "village",
    "address_text",
    "phone",
];

/// A validated registration.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterPerson {
    pub person_id: Uuid,
    pub identity: Identity,
    pub source_department: String,
    pub source_record_id: String,
}

impl RegisterPerson {
    pub fn parse(
        person_id: Uuid,
        input: &IdentityInput<'_>,
        source_department: &str,
        source_record_id: &str,
    ) -> Result<Self, Vec<Violation>> {
        let identity = Identity::parse(input);
        let mut v = Violations::default();
        let source_department =
            required(&mut v, "source_department", source_department, 64).to_owned();
        let source_record_id =
            optional(&mut v, "source_record_id", source_record_id, 128).to_owned();
        match identity {
            Ok(identity) => v.finish(Self {
                person_id,
                identity,
                source_department,
                source_record_id,
            }),
            Err(mut found) => {
                found.extend(v.0);
                Err(found)
            }
        }
    }
}

/// A status to record, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordStatus {
    pub status_id: Uuid,
    pub kind: StatusKind,
    pub source_department: String,
    pub reference: String,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub detail: String,
}

impl RecordStatus {
    pub fn parse(
        status_id: Uuid,
        kind: i32,
        source_department: &str,
        reference: &str,
        effective_from: &str,
        effective_to: &str,
        detail: &str,
    ) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::default();
        let kind = match StatusKind::try_from(kind) {
            Ok(StatusKind::Unspecified) | Err(_) => {
                v.add("kind", format!("{kind} is not a status kind"));
                StatusKind::Unspecified
            }
            Ok(kind) => kind,
        };
        let source_department =
            required(&mut v, "source_department", source_department, 64).to_owned();
        let reference = optional(&mut v, "reference", reference, 128).to_owned();
        let from = parse_date(&mut v, "effective_from", effective_from);
        if effective_from.trim().is_empty() {
            v.add("effective_from", "is required");
        }
        let to = parse_date(&mut v, "effective_to", effective_to);
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            v.add("effective_to", "is before effective_from");
        }
        let detail = optional(&mut v, "detail", detail, 64).to_owned();
        if kind == StatusKind::Disability && !matches!(detail.as_str(), "1" | "2" | "3" | "4") {
            v.add(
                "detail",
                "a disability status needs its grade, \"1\" to \"4\"",
            );
        }
        let effective_from = from.unwrap_or_default();
        v.finish(Self {
            status_id,
            kind,
            source_department,
            reference,
            effective_from,
            effective_to: to,
            detail,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid identity: {}", .0.iter().map(|v| format!("{}: {}", v.field, v.reason)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Violation>),
    #[error("person {0} is already registered")]
    AlreadyRegistered(Uuid),
    #[error("no person {0} in the registry")]
    PersonNotFound(Uuid),
    #[error("person {person} was merged into {survivor}; act on {survivor} instead")]
    MergedInto { person: Uuid, survivor: Uuid },
    #[error("resident id is already registered to person {0}")]
    ResidentIdTaken(Uuid),
    #[error(
        "resident id is already registered to person {person}, whom {department} holds as its record {record}"
    )]
    HeldAsAnotherRecord {
        person: Uuid,
        department: String,
        record: String,
    },
    #[error("person {person} has no status {status}")]
    UnknownStatus { person: Uuid, status: Uuid },
    #[error("status {0} has already ended")]
    StatusAlreadyEnded(Uuid),
    #[error("status {status} cannot end on {to}, before it began on {from}")]
    EndBeforeStart {
        status: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    },
    #[error("a person cannot be merged into itself")]
    SelfMerge,
    #[error("person {0} is not merged into another record")]
    NotMerged(Uuid),
    #[error("person {person} is already a member of household {household}")]
    AlreadyInHousehold { person: Uuid, household: Uuid },
    #[error("person {person} is not a member of household {household}")]
    NotInHousehold { person: Uuid, household: Uuid },
    #[error("household {household} already has a head, person {head}")]
    SecondHead { household: Uuid, head: Uuid },
    #[error("no household {0}")]
    HouseholdNotFound(Uuid),
    #[error("person {0} was erased on a legal request; the record accepts no changes")]
    Erased(Uuid),
}

#[derive(Debug, Default, Clone)]
struct StatusState {
    from: String,
    ended: bool,
}

/// A person's record as far as the registry's decisions need it.
#[derive(Debug, Default, Clone)]
pub struct Person {
    id: Option<Uuid>,
    identity: BTreeMap<&'static str, String>,
    flags: Vec<i32>,
    statuses: BTreeMap<String, StatusState>,
    merged_into: Option<Uuid>,
    erased: bool,
    /// The department and record that registered the person.
    source: (String, String),
    /// Other departments' records linked to the person, with the fields each gives otherwise.
    other_sources: BTreeMap<(String, String), Vec<String>>,
}

impl Person {
    /// Whether the status `status_id` was recorded, and if so whether it has ended.
    pub fn status_ended(&self, status_id: &str) -> Option<bool> {
        self.statuses.get(status_id).map(|s| s.ended)
    }

    /// The person's county: offices whose jurisdiction holds it may read and change the record.
    pub fn region_code(&self) -> &str {
        self.identity.get("region").map_or("", String::as_str)
    }
}

impl Aggregate for Person {
    type Event = RegistryEvent;

    fn apply(&mut self, event: &RegistryEvent) {
        match event {
            RegistryEvent::PersonRegistered(e) => {
                self.id = Uuid::parse_str(&e.person_id).ok();
                self.identity = identity_fields(
                    &e.full_name,
                    e.gender,
                    &e.birth_date,
                    &e.resident_id,
                    e.region.as_ref(),
                    &e.township,
                    &e.village,
                    &e.address_text,
                    &e.phone,
                );
                self.flags = e.flags.clone();
                self.source = (e.source_department.clone(), e.source_record_id.clone());
            }
            RegistryEvent::PersonUpdated(e) => {
                self.identity = identity_fields(
                    &e.full_name,
                    e.gender,
                    &e.birth_date,
                    &e.resident_id,
                    e.region.as_ref(),
                    &e.township,
                    &e.village,
                    &e.address_text,
                    &e.phone,
                );
                self.flags = e.flags.clone();
            }
            RegistryEvent::StatusRecorded(e) => {
                self.statuses.insert(
                    e.status_id.clone(),
                    StatusState {
                        from: e.effective_from.clone(),
                        ended: false,
                    },
                );
            }
            RegistryEvent::StatusEnded(e) => {
                if let Some(status) = self.statuses.get_mut(&e.status_id) {
                    status.ended = true;
                }
            }
            RegistryEvent::PersonMerged(e) => {
                self.merged_into = Uuid::parse_str(&e.survivor_id).ok()
            }
            RegistryEvent::PersonUnmerged(_) => self.merged_into = None,
            RegistryEvent::PersonErased(_) => {
                self.erased = true;
                self.identity.clear();
            }
            RegistryEvent::SourceRecordLinked(e) => {
                self.other_sources.insert(
                    (e.source_department.clone(), e.source_record_id.clone()),
                    e.conflicting_fields.clone(),
                );
            }
            RegistryEvent::HouseholdMemberAdded(_)
            | RegistryEvent::HouseholdMemberRemoved(_)
            | RegistryEvent::HouseholdIncomeRecorded(_) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn identity_fields(
    full_name: &str,
    gender: i32,
    birth_date: &str,
    resident_id: &str,
    region: Option<&RegionCode>,
    township: &str,
    village: &str,
    address_text: &str,
    phone: &str,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("full_name", full_name.to_owned()),
        ("gender", gender.to_string()),
        ("birth_date", birth_date.to_owned()),
        ("resident_id", resident_id.to_owned()),
        ("region", region.map(|r| r.code.clone()).unwrap_or_default()),
        ("township", township.to_owned()),
        ("village", village.to_owned()),
        ("address_text", address_text.to_owned()),
        ("phone", phone.to_owned()),
    ])
}

fn region(code: &str) -> Option<RegionCode> {
    Some(RegionCode {
        code: code.to_owned(),
    })
}

impl Person {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    pub fn merged_into(&self) -> Option<Uuid> {
        self.merged_into
    }

    /// The person's current resident id ("" when none).
    pub fn resident_id(&self) -> &str {
        self.identity
            .get("resident_id")
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn erased(&self) -> bool {
        self.erased
    }

    /// The record exists and was not erased.
    fn recorded(&self, person: Uuid) -> Result<(), RegistryError> {
        if !self.exists() {
            return Err(RegistryError::PersonNotFound(person));
        }
        if self.erased {
            return Err(RegistryError::Erased(person));
        }
        Ok(())
    }

    /// The record exists, was not erased, and was not merged into another.
    fn active(&self, person: Uuid) -> Result<(), RegistryError> {
        self.recorded(person)?;
        match self.merged_into {
            Some(survivor) => Err(RegistryError::MergedInto { person, survivor }),
            None => Ok(()),
        }
    }

    /// `id_owner`: the person the command's resident id is already registered to, if any.
    pub fn register(
        &self,
        command: &RegisterPerson,
        id_owner: Option<Uuid>,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        if let Some(existing) = self.id {
            return Err(RegistryError::AlreadyRegistered(existing));
        }
        if let Some(owner) = id_owner {
            return Err(RegistryError::ResidentIdTaken(owner));
        }
        let i = &command.identity;
        Ok(vec![RegistryEvent::PersonRegistered(PersonRegistered {
            person_id: command.person_id.to_string(),
            full_name: i.full_name.clone(),
            gender: i.gender.into(),
            birth_date: format_date(i.birth_date),
            resident_id: i
                .resident_id
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            region: region(&i.region_code),
            source_department: command.source_department.clone(),
            township: i.township.clone(),
            village: i.village.clone(),
            address_text: i.address_text.clone(),
            phone: i.phone.clone(),
            flags: i.flags.iter().map(|f| *f as i32).collect(),
            source_record_id: command.source_record_id.clone(),
            // Sealed by the shell before the event is stored.
            sealed_identity: None,
        })])
    }

    /// Applies `changes` (field name to new raw value) over the current identity, validates the
    /// result and records what actually changed; no event when nothing did. `id_owner`: the
    /// person already holding the new resident id, if any.
    pub fn update(
        &self,
        person: Uuid,
        changes: &BTreeMap<&'static str, String>,
        source_department: &str,
        id_owner: Option<Uuid>,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        self.active(person)?;
        let mut next = self.identity.clone();
        for (field, value) in changes {
            next.insert(field, value.clone());
        }
        let get = |f: &str| next.get(f).cloned().unwrap_or_default();
        let identity = Identity::parse(&IdentityInput {
            full_name: &get("full_name"),
            gender: get("gender").parse().unwrap_or(-1),
            birth_date: &get("birth_date"),
            resident_id: &get("resident_id"),
            region_code: &get("region"),
            township: &get("township"),
            village: &get("village"),
            address_text: &get("address_text"),
            phone: &get("phone"),
        })
        .map_err(RegistryError::Invalid)?;
        let normalised = identity.fields();
        let changed: Vec<String> = normalised
            .iter()
            .filter(|(field, value)| self.identity.get(*field) != Some(*value))
            .map(|(field, _)| (*field).to_owned())
            .collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        if changed.iter().any(|f| f == "resident_id")
            && let Some(owner) = id_owner.filter(|owner| *owner != person)
        {
            return Err(RegistryError::ResidentIdTaken(owner));
        }
        let value = |f: &str| normalised.get(f).cloned().unwrap_or_default();
        Ok(vec![RegistryEvent::PersonUpdated(PersonUpdated {
            person_id: person.to_string(),
            full_name: value("full_name"),
            gender: identity.gender.into(),
            birth_date: value("birth_date"),
            resident_id: value("resident_id"),
            region: region(&identity.region_code),
            township: value("township"),
            village: value("village"),
            address_text: value("address_text"),
            phone: value("phone"),
            flags: identity.flags.iter().map(|f| *f as i32).collect(),
            source_department: source_department.to_owned(),
            changed_fields: changed,
            sealed_identity: None,
        })])
    }

    /// Whether `department`'s record `source_record_id` is the one that registered the person
    /// (its changes update the identity) rather than another source linked to them.
    pub fn registered_from(&self, department: &str, source_record_id: &str) -> bool {
        self.source.0 == department && self.source.1 == source_record_id
    }

    /// Links another department's record of the person as a source, naming the fields where it
    /// says otherwise for review instead of applying them; no event when the record was linked
    /// before with the same conflicts.
    pub fn link_source(
        &self,
        person: Uuid,
        department: &str,
        source_record_id: &str,
        identity: &Identity,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        self.active(person)?;
        // One department, one record per person: two are the department's own duplicate.
        let held = std::iter::once(&self.source)
            .chain(self.other_sources.keys())
            .find(|(d, r)| d == department && r != source_record_id);
        if let Some((department, record)) = held {
            return Err(RegistryError::HeldAsAnotherRecord {
                person,
                department: department.clone(),
                record: record.clone(),
            });
        }
        // A field either side leaves blank (gender 0 is "not given") says nothing.
        let known =
            |field: &str, value: &str| !(value.is_empty() || (field == "gender" && value == "0"));
        let conflicting: Vec<String> = identity
            .fields()
            .into_iter()
            .filter(|(field, value)| {
                known(field, value)
                    && self
                        .identity
                        .get(field)
                        .is_some_and(|held| known(field, held) && held != value)
            })
            .map(|(field, _)| field.to_owned())
            .collect();
        let key = (department.to_owned(), source_record_id.to_owned());
        if self.other_sources.get(&key) == Some(&conflicting) {
            return Ok(Vec::new());
        }
        Ok(vec![RegistryEvent::SourceRecordLinked(
            SourceRecordLinked {
                person_id: person.to_string(),
                source_department: key.0,
                source_record_id: key.1,
                conflicting_fields: conflicting,
            },
        )])
    }

    pub fn record_status(
        &self,
        person: Uuid,
        command: &RecordStatus,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        self.active(person)?;
        Ok(vec![RegistryEvent::StatusRecorded(StatusRecorded {
            person_id: person.to_string(),
            status_id: command.status_id.to_string(),
            kind: command.kind.into(),
            source_department: command.source_department.clone(),
            reference: command.reference.clone(),
            effective_from: format_date(Some(command.effective_from)),
            effective_to: format_date(command.effective_to),
            detail: command.detail.clone(),
        })])
    }

    pub fn end_status(
        &self,
        person: Uuid,
        status: Uuid,
        effective_to: NaiveDate,
        reason: &str,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        self.active(person)?;
        let state = self
            .statuses
            .get(&status.to_string())
            .ok_or(RegistryError::UnknownStatus { person, status })?;
        if state.ended {
            return Err(RegistryError::StatusAlreadyEnded(status));
        }
        let from = NaiveDate::parse_from_str(&state.from, "%Y-%m-%d").unwrap_or_default();
        if effective_to < from {
            return Err(RegistryError::EndBeforeStart {
                status,
                from,
                to: effective_to,
            });
        }
        Ok(vec![RegistryEvent::StatusEnded(StatusEnded {
            person_id: person.to_string(),
            status_id: status.to_string(),
            effective_to: format_date(Some(effective_to)),
            reason: reason.to_owned(),
        })])
    }

    /// Merges this record (`person`) into `survivor`, whose aggregate is given too.
    pub fn merge_into(
        &self,
        person: Uuid,
        survivor_id: Uuid,
        survivor: &Person,
        reason: &str,
        decided_by: &str,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        if person == survivor_id {
            return Err(RegistryError::SelfMerge);
        }
        self.active(person)?;
        survivor.active(survivor_id)?;
        Ok(vec![RegistryEvent::PersonMerged(PersonMerged {
            person_id: person.to_string(),
            survivor_id: survivor_id.to_string(),
            reason: reason.to_owned(),
            decided_by: decided_by.to_owned(),
        })])
    }

    pub fn unmerge(
        &self,
        person: Uuid,
        reason: &str,
        decided_by: &str,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        self.recorded(person)?;
        let survivor = self.merged_into.ok_or(RegistryError::NotMerged(person))?;
        Ok(vec![RegistryEvent::PersonUnmerged(PersonUnmerged {
            person_id: person.to_string(),
            survivor_id: survivor.to_string(),
            reason: reason.to_owned(),
            decided_by: decided_by.to_owned(),
        })])
    }
}

impl Person {
    /// Erasure on a legal request; a merged record can be erased too (it is the same person's
    /// data). Erasing twice is refused, so the caller learns it already happened.
    pub fn erase(
        &self,
        person: Uuid,
        legal_basis: &str,
        reason: &str,
        decided_by: &str,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        self.recorded(person)?;
        Ok(vec![RegistryEvent::PersonErased(PersonErased {
            person_id: person.to_string(),
            legal_basis: legal_basis.to_owned(),
            reason: reason.to_owned(),
            decided_by: decided_by.to_owned(),
        })])
    }
}

/// A household: members and yearly income per head.
#[derive(Debug, Default, Clone)]
pub struct Household {
    members: BTreeMap<String, i32>,
    ever_had_members: bool,
    /// Income per head (fen) by year, and the department that said so.
    incomes: BTreeMap<i32, (i64, String)>,
}

impl Household {
    /// The person ids of the current members.
    pub fn member_ids(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }
}

impl Aggregate for Household {
    type Event = RegistryEvent;
    const KIND: &'static str = "household";

    fn apply(&mut self, event: &RegistryEvent) {
        match event {
            RegistryEvent::HouseholdMemberAdded(e) => {
                self.members.insert(e.person_id.clone(), e.relationship);
                self.ever_had_members = true;
            }
            RegistryEvent::HouseholdMemberRemoved(e) => {
                self.members.remove(&e.person_id);
            }
            RegistryEvent::HouseholdIncomeRecorded(e) => {
                self.incomes.insert(
                    e.year,
                    (
                        e.income_per_head.map(|m| m.fen).unwrap_or_default(),
                        e.source_department.clone(),
                    ),
                );
            }
            _ => {}
        }
    }
}

impl Household {
    /// `current_household`: the household the person belongs to now, if any.
    pub fn add_member(
        &self,
        household: Uuid,
        person: Uuid,
        person_state: &Person,
        relationship: Relationship,
        current_household: Option<Uuid>,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        person_state.active(person)?;
        self.admit(household, person, relationship, current_household)
    }

    /// The household's own checks for a new member (one household per person, one head).
    pub fn admit(
        &self,
        household: Uuid,
        person: Uuid,
        relationship: Relationship,
        current_household: Option<Uuid>,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        if let Some(current) = current_household {
            return Err(RegistryError::AlreadyInHousehold {
                person,
                household: current,
            });
        }
        if relationship == Relationship::Head
            && let Some((head, _)) = self
                .members
                .iter()
                .find(|(_, r)| **r == Relationship::Head as i32)
        {
            return Err(RegistryError::SecondHead {
                household,
                head: Uuid::parse_str(head).unwrap_or_default(),
            });
        }
        Ok(vec![RegistryEvent::HouseholdMemberAdded(
            HouseholdMemberAdded {
                household_id: household.to_string(),
                person_id: person.to_string(),
                relationship: relationship.into(),
            },
        )])
    }

    pub fn remove_member(
        &self,
        household: Uuid,
        person: Uuid,
        reason: &str,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        if !self.members.contains_key(&person.to_string()) {
            return Err(RegistryError::NotInHousehold { person, household });
        }
        Ok(vec![RegistryEvent::HouseholdMemberRemoved(
            HouseholdMemberRemoved {
                household_id: household.to_string(),
                person_id: person.to_string(),
                reason: reason.to_owned(),
            },
        )])
    }

    pub fn record_income(
        &self,
        household: Uuid,
        year: i32,
        income_per_head_fen: i64,
        source_department: &str,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        if !self.ever_had_members {
            return Err(RegistryError::HouseholdNotFound(household));
        }
        // A department's feed sends the same figure with every member's record.
        if self.incomes.get(&year) == Some(&(income_per_head_fen, source_department.to_owned())) {
            return Ok(Vec::new());
        }
        Ok(vec![RegistryEvent::HouseholdIncomeRecorded(
            HouseholdIncomeRecorded {
                household_id: household.to_string(),
                year,
                income_per_head: Some(Money {
                    fen: income_per_head_fen,
                }),
                source_department: source_department.to_owned(),
            },
        )])
    }
}

#[cfg(test)]
mod tests;
