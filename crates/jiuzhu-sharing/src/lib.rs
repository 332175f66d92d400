//! Data-sharing agreements and what they let out. An agreement (versioned data,
//! `policy/sharing/agreements.toml`) says which event types a department receives, which fields
//! of each, for which purpose, on which legal basis and for how long. [`Agreements::share`]
//! turns an event into the copy one department may see: only the agreed fields, the person
//! replaced by the department's pseudonym (a keyed hash: stable for that department, unlinkable
//! across departments), and nothing at all for an event type no agreement names (fail closed).
//! The copy keeps the event's protobuf type, so departments decode it with the published
//! contracts.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use jiuzhu_config::{ConfigError, Layers, Validate};
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};
use serde::Deserialize;
use sha2::Sha256;

/// The agreements shipped with this build.
pub const SHIPPED: &str = include_str!("../../../policy/sharing/agreements.toml");

#[derive(Debug, thiserror::Error)]
pub enum SharingError {
    #[error("the contracts' descriptors cannot be read: {0}")]
    Descriptors(String),
    #[error("`{0}` is not an event type of the contracts")]
    UnknownEventType(String),
    #[error("{event_type} has no field `{path}`")]
    UnknownField { event_type: String, path: String },
    #[error("the event cannot be decoded: {0}")]
    Decode(String),
    #[error("agreement condition: {0}")]
    Condition(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Share only events whose `field` holds `equals`, and (when `person_statuses` is given) only
/// about a person who held one of those registry statuses (`registered_poor`, …) on the day of
/// the event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: Option<String>,
    pub equals: Option<String>,
    #[serde(default)]
    pub person_statuses: Vec<String>,
}

impl Condition {
    fn holds(&self, event: &DynamicMessage, statuses: &BTreeSet<String>) -> bool {
        let field_holds = match (&self.field, &self.equals) {
            (Some(field), Some(equals)) => matches!(
                event.get_field_by_name(field).as_deref(),
                Some(Value::String(v)) if v == equals
            ),
            _ => true,
        };
        field_holds
            && (self.person_statuses.is_empty()
                || self.person_statuses.iter().any(|s| statuses.contains(s)))
    }
}

/// A registry status kind by its agreement name (`registered_poor`, …).
pub fn status_named(name: &str) -> Option<jiuzhu_proto::registry::StatusKind> {
    jiuzhu_proto::registry::StatusKind::from_str_name(&format!(
        "STATUS_KIND_{}",
        name.to_ascii_uppercase()
    ))
    .filter(|k| *k != jiuzhu_proto::registry::StatusKind::Unspecified)
}

/// The agreement name of a registry status kind.
pub fn status_name(kind: i32) -> String {
    jiuzhu_proto::registry::StatusKind::try_from(kind)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("STATUS_KIND_")
        .to_ascii_lowercase()
}

/// One event type a department receives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub event_type: String,
    pub fields: Vec<String>,
    pub when: Option<Condition>,
    /// The referral clause: fields of the person's identity (`PersonalIdentity`) the department
    /// receives, sealed for it alone, in the copy's `subject` field. Empty: none.
    #[serde(default)]
    pub subject: Vec<String>,
}

/// The identity type a subject is made of, and the field of a copy that carries it sealed.
pub const SUBJECT_TYPE: &str = "jiuzhu.registry.v1.PersonalIdentity";
const SUBJECT_FIELD: &str = "subject";
const SEALED_TYPE: &str = "jiuzhu.common.v1.Sealed";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub purpose: String,
    pub legal_basis: String,
    pub retention_days: u32,
    pub shares: Vec<Share>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreements {
    pub version: String,
    pub agreed_by: String,
    pub departments: BTreeMap<String, Department>,
    /// SHA-256 of the text the agreements were read from: what an adoption record names.
    #[serde(skip)]
    pub digest: String,
}

impl Validate for Agreements {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        for (name, department) in &self.departments {
            if department.purpose.trim().is_empty() || department.legal_basis.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("{prefix}.departments.{name}"),
                    "needs a purpose and a legal basis",
                ));
            }
            if department.retention_days == 0 {
                return Err(ConfigError::invalid(
                    format!("{prefix}.departments.{name}.retention_days"),
                    "must be at least one day",
                ));
            }
        }
        Ok(())
    }
}

/// SHA-256 of an agreements file, hex: what an adoption record names.
pub fn digest(text: &str) -> String {
    hex::encode(<Sha256 as sha2::Digest>::digest(text.as_bytes()))
}

/// What one department receives of one event.
#[derive(Debug, Clone)]
pub struct Shared {
    pub department: String,
    /// The minimised event, encoded as its own protobuf type.
    pub payload: Vec<u8>,
    /// Identity fields the department receives sealed (see [`Share::subject`]); the registry,
    /// which alone can open identities, fills them in with [`with_subject`].
    pub subject: Vec<String>,
    /// The department's pseudonym of each person the event named.
    pub pseudonyms: Vec<String>,
    pub agreement_version: String,
}

/// The agreed fields of an event, by path, as a tree.
#[derive(Debug, Default)]
struct Paths(BTreeMap<String, Paths>);

impl Paths {
    fn of(fields: &[String]) -> Self {
        let mut root = Paths::default();
        for path in fields {
            let mut node = &mut root;
            for part in path.split('.') {
                node = node.0.entry(part.to_owned()).or_default();
            }
        }
        root
    }
}

impl Agreements {
    /// Reads agreements and checks them against the contracts: every event type and every
    /// field path must exist (an agreement cannot name what is not there).
    pub fn parse(text: &str, pool: &DescriptorPool) -> Result<Self, SharingError> {
        let mut agreements: Agreements = Layers::from_toml(text)?.section("sharing")?;
        for department in agreements.departments.values() {
            for share in &department.shares {
                let descriptor = pool
                    .get_message_by_name(&share.event_type)
                    .ok_or_else(|| SharingError::UnknownEventType(share.event_type.clone()))?;
                if let Some(when) = &share.when {
                    if when.field.is_some() != when.equals.is_some() {
                        return Err(SharingError::Condition(format!(
                            "{}: `field` and `equals` go together",
                            share.event_type
                        )));
                    }
                    if let Some(bad) = when
                        .person_statuses
                        .iter()
                        .find(|s| status_named(s).is_none())
                    {
                        return Err(SharingError::Condition(format!(
                            "`{bad}` is not a registry status"
                        )));
                    }
                }
                if !share.subject.is_empty() {
                    check_subject(pool, &descriptor, share)?;
                }
                let condition = share.when.iter().filter_map(|c| c.field.as_ref());
                for path in share.fields.iter().chain(condition) {
                    let mut message = descriptor.clone();
                    let mut parts = path.split('.').peekable();
                    while let Some(part) = parts.next() {
                        let field = message.get_field_by_name(part).ok_or_else(|| {
                            SharingError::UnknownField {
                                event_type: share.event_type.clone(),
                                path: path.clone(),
                            }
                        })?;
                        if parts.peek().is_some() {
                            let Kind::Message(inner) = field.kind() else {
                                return Err(SharingError::UnknownField {
                                    event_type: share.event_type.clone(),
                                    path: path.clone(),
                                });
                            };
                            message = inner;
                        }
                    }
                }
            }
        }
        agreements.digest = digest(text);
        Ok(agreements)
    }

    /// The shipped agreements, checked against the shipped contracts.
    pub fn shipped() -> Result<Self, SharingError> {
        Self::parse_for_contracts(SHIPPED)
    }

    /// Agreements read from `text`, checked against the contracts of this build.
    pub fn parse_for_contracts(text: &str) -> Result<Self, SharingError> {
        let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| SharingError::Descriptors(e.to_string()))?;
        Self::parse(text, &pool)
    }

    /// Every department's copy of `event` (of type `event_type`, encoded `payload`): none for
    /// a type or a value no agreement names. `statuses` are the registry statuses the event's
    /// persons hold now; `pseudonym_key` is the installation's secret for pseudonyms.
    pub fn share(
        &self,
        pool: &DescriptorPool,
        event_type: &str,
        payload: &[u8],
        statuses: &BTreeSet<String>,
        pseudonym_key: &[u8],
    ) -> Result<Vec<Shared>, SharingError> {
        let mut shared = Vec::new();
        let Some(descriptor) = pool.get_message_by_name(event_type) else {
            return Ok(shared);
        };
        let event = DynamicMessage::decode(descriptor.clone(), payload)
            .map_err(|e| SharingError::Decode(e.to_string()))?;
        for (department, agreement) in &self.departments {
            for share in agreement
                .shares
                .iter()
                .filter(|s| s.event_type == event_type)
            {
                if share
                    .when
                    .as_ref()
                    .is_some_and(|c| !c.holds(&event, statuses))
                {
                    continue;
                }
                let mut pseudonyms = Vec::new();
                let mut copy = DynamicMessage::new(descriptor.clone());
                let key = department_key(pseudonym_key, department);
                let to = Recipient {
                    department,
                    key: &key,
                };
                minimise(
                    &event,
                    &mut copy,
                    &Paths::of(&share.fields),
                    &to,
                    &mut pseudonyms,
                );
                shared.push(Shared {
                    department: department.clone(),
                    payload: prost::Message::encode_to_vec(&copy),
                    subject: share.subject.clone(),
                    pseudonyms,
                    agreement_version: self.version.clone(),
                });
            }
        }
        Ok(shared)
    }
}

/// A referral clause must name identity fields, and the event must have a sealed `subject`.
fn check_subject(
    pool: &DescriptorPool,
    descriptor: &prost_reflect::MessageDescriptor,
    share: &Share,
) -> Result<(), SharingError> {
    let carries = descriptor
        .get_field_by_name(SUBJECT_FIELD)
        .is_some_and(|f| matches!(f.kind(), Kind::Message(m) if m.full_name() == SEALED_TYPE));
    if !carries {
        return Err(SharingError::UnknownField {
            event_type: share.event_type.clone(),
            path: format!("{SUBJECT_FIELD} (a sealed subject)"),
        });
    }
    let identity = pool
        .get_message_by_name(SUBJECT_TYPE)
        .ok_or_else(|| SharingError::UnknownEventType(SUBJECT_TYPE.to_owned()))?;
    match share
        .subject
        .iter()
        .find(|f| identity.get_field_by_name(f).is_none())
    {
        Some(bad) => Err(SharingError::UnknownField {
            event_type: SUBJECT_TYPE.to_owned(),
            path: bad.clone(),
        }),
        None => Ok(()),
    }
}

/// `identity` with only `fields` (a referral clause's).
pub fn minimal_subject(
    pool: &DescriptorPool,
    identity: &jiuzhu_proto::registry::PersonalIdentity,
    fields: &[String],
) -> Result<jiuzhu_proto::registry::PersonalIdentity, SharingError> {
    let descriptor = pool
        .get_message_by_name(SUBJECT_TYPE)
        .ok_or_else(|| SharingError::UnknownEventType(SUBJECT_TYPE.to_owned()))?;
    let full = DynamicMessage::decode(
        descriptor.clone(),
        prost::Message::encode_to_vec(identity).as_slice(),
    )
    .map_err(|e| SharingError::Decode(e.to_string()))?;
    let mut kept = DynamicMessage::new(descriptor);
    for name in fields {
        if let Some(field) = full.descriptor().get_field_by_name(name) {
            kept.set_field(&field, full.get_field(&field).into_owned());
        }
    }
    prost::Message::decode(prost::Message::encode_to_vec(&kept).as_slice())
        .map_err(|e: prost::DecodeError| SharingError::Decode(e.to_string()))
}

/// A copy (`payload`, of `event_type`) with `sealed` as its subject.
pub fn with_subject(
    pool: &DescriptorPool,
    event_type: &str,
    payload: &[u8],
    sealed: &jiuzhu_proto::common::Sealed,
) -> Result<Vec<u8>, SharingError> {
    let descriptor = pool
        .get_message_by_name(event_type)
        .ok_or_else(|| SharingError::UnknownEventType(event_type.to_owned()))?;
    let sealed_descriptor = pool
        .get_message_by_name(SEALED_TYPE)
        .ok_or_else(|| SharingError::UnknownEventType(SEALED_TYPE.to_owned()))?;
    let mut copy = DynamicMessage::decode(descriptor, payload)
        .map_err(|e| SharingError::Decode(e.to_string()))?;
    let sealed = DynamicMessage::decode(
        sealed_descriptor,
        prost::Message::encode_to_vec(sealed).as_slice(),
    )
    .map_err(|e| SharingError::Decode(e.to_string()))?;
    copy.try_set_field_by_name(SUBJECT_FIELD, Value::Message(sealed))
        .map_err(|e| SharingError::Decode(e.to_string()))?;
    Ok(prost::Message::encode_to_vec(&copy))
}

fn department_key(secret: &[u8], department: &str) -> Vec<u8> {
    keyed_hash(secret, format!("jiuzhu-share:{department}").as_bytes())
}

fn keyed_hash(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty result would only mean
    // an unusable key, which `Hmac::new_from_slice` never reports for SHA-256.
    Hmac::<Sha256>::new_from_slice(key)
        .map(|mut mac| {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default()
}

/// The pseudonym `department` knows `person_id` by, under the installation's `secret`.
pub fn pseudonym_for(secret: &[u8], department: &str, person_id: &str) -> String {
    pseudonym(&department_key(secret, department), person_id)
}

/// A department's pseudonym of a person.
fn pseudonym(department_key: &[u8], person_id: &str) -> String {
    format!(
        "ps-{}",
        &hex::encode(keyed_hash(department_key, person_id.as_bytes()))[..32]
    )
}

/// The department a copy is for, and its pseudonym key.
struct Recipient<'a> {
    department: &'a str,
    key: &'a [u8],
}

/// 16 bytes as a UUID of version 8 (derived, not drawn).
fn derived_uuid(digest: &[u8]) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The reference `department` knows a relief case by: derived from the case id (which no
/// department learns), different for every department, so two departments' copies about one
/// case cannot be joined on it. The decisions service, which knows the case, derives it too
/// (referral ids, reports).
pub fn case_ref(department: &str, case_id: &str) -> String {
    use sha2::Digest;
    derived_uuid(&Sha256::digest(
        format!("jiuzhu-case\n{department}\n{case_id}").as_bytes(),
    ))
}

/// The event id of `department`'s copy of the event `event_id`: its own, under the
/// installation's secret, so that copies of one event to two departments share no id.
pub fn copy_event_id(secret: &[u8], department: &str, event_id: &str) -> String {
    derived_uuid(&keyed_hash(
        &department_key(secret, department),
        format!("jiuzhu-event\n{event_id}").as_bytes(),
    ))
}

/// Copies the agreed fields of `from` into `to`; `person_id` fields become the department's
/// pseudonyms, `case_id` fields its case references.
fn minimise(
    from: &DynamicMessage,
    to: &mut DynamicMessage,
    paths: &Paths,
    recipient: &Recipient<'_>,
    pseudonyms: &mut Vec<String>,
) {
    for (name, below) in &paths.0 {
        let Some(field) = from.descriptor().get_field_by_name(name) else {
            continue;
        };
        if !from.has_field(&field) {
            continue;
        }
        let value = from.get_field(&field).into_owned();
        if !below.0.is_empty() {
            if let Value::Message(inner) = &value {
                let mut part = DynamicMessage::new(inner.descriptor());
                minimise(inner, &mut part, below, recipient, pseudonyms);
                to.set_field(&field, Value::Message(part));
            }
            continue;
        }
        to.set_field(&field, pseudonymised(&field, value, recipient, pseudonyms));
    }
}

fn pseudonymised(
    field: &FieldDescriptor,
    value: Value,
    recipient: &Recipient<'_>,
    pseudonyms: &mut Vec<String>,
) -> Value {
    match value {
        Value::String(person) if field.name() == "person_id" => {
            let alias = pseudonym(recipient.key, &person);
            pseudonyms.push(alias.clone());
            Value::String(alias)
        }
        Value::String(case) if field.name() == "case_id" => {
            Value::String(case_ref(recipient.department, &case))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiuzhu_proto::decisions::{ReferralIssued, ReliefMethod};
    use jiuzhu_proto::followup::ReturnToPovertyRiskFlagged;
    use jiuzhu_proto::payments::DisbursementOrdered;
    use prost::Message;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET).unwrap_or_default()
    }

    #[test]
    fn the_shipped_agreements_name_only_what_the_contracts_have() -> Result<(), SharingError> {
        let agreements = Agreements::shipped()?;
        assert_eq!(agreements.version, "sharing-2026.3");
        let wrong = SHIPPED.replace(
            "\"reasons\", \"region_code\"]",
            "\"reasons\", \"bank_card\"]",
        );
        assert!(matches!(
            Agreements::parse(&wrong, &pool()),
            Err(SharingError::UnknownField { path, .. }) if path == "bank_card"
        ));
        Ok(())
    }

    #[test]
    fn a_department_gets_only_its_agreed_fields_under_its_own_pseudonym() -> Result<(), SharingError>
    {
        let agreements = Agreements::shipped()?;
        let flag = ReturnToPovertyRiskFlagged {
            plan_id: "f-1".to_owned(),
            person_id: "0190d5c2-8a6e-7000-8000-000000000001".to_owned(),
            visit_number: 1,
            reasons: vec!["income_below_line".to_owned()],
            policy_version: "followup-2026.1".to_owned(),
            region_code: "520102".to_owned(),
        };
        let shared = agreements.share(
            &pool(),
            "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged",
            &flag.encode_to_vec(),
            &BTreeSet::new(),
            b"installation secret",
        )?;
        let departments: Vec<&str> = shared.iter().map(|s| s.department.as_str()).collect();
        assert_eq!(departments, ["civil_affairs", "rural_revitalization"]);
        let civil = ReturnToPovertyRiskFlagged::decode(shared[0].payload.as_slice())
            .map_err(|e| SharingError::Decode(e.to_string()))?;
        assert_eq!(civil.plan_id, "", "not agreed");
        assert_eq!(civil.visit_number, 0, "not agreed");
        assert_eq!(civil.reasons, flag.reasons);
        assert!(civil.person_id.starts_with("ps-") && civil.person_id != flag.person_id);
        let rural = ReturnToPovertyRiskFlagged::decode(shared[1].payload.as_slice())
            .map_err(|e| SharingError::Decode(e.to_string()))?;
        assert_ne!(
            rural.person_id, civil.person_id,
            "unlinkable across departments"
        );
        let again = agreements.share(
            &pool(),
            "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged",
            &flag.encode_to_vec(),
            &BTreeSet::new(),
            b"installation secret",
        )?;
        assert_eq!(
            again[0].pseudonyms, shared[0].pseudonyms,
            "stable for a department"
        );
        Ok(())
    }

    #[test]
    fn unnamed_types_and_other_departments_referrals_are_not_shared() -> Result<(), SharingError> {
        let agreements = Agreements::shipped()?;
        let ordered = DisbursementOrdered {
            disbursement_id: "d-1".to_owned(),
            person_id: "p-1".to_owned(),
            payee_account_masked: "6222 **** 1234".to_owned(),
            ..DisbursementOrdered::default()
        };
        let none = agreements.share(
            &pool(),
            "jiuzhu.payments.v1.DisbursementOrdered",
            &ordered.encode_to_vec(),
            &BTreeSet::new(),
            b"k",
        )?;
        assert!(none.is_empty(), "fail closed");
        let referral = ReferralIssued {
            case_id: "c-1".to_owned(),
            referral_id: "c-1:education".to_owned(),
            method: ReliefMethod::Education.into(),
            department: "education".to_owned(),
            person_id: "p-1".to_owned(),
            procuratorate: "南明区院".to_owned(),
            subject: None,
            acknowledge_by: String::new(),
        };
        let shared = agreements.share(
            &pool(),
            "jiuzhu.decisions.v1.ReferralIssued",
            &referral.encode_to_vec(),
            &BTreeSet::new(),
            b"k",
        )?;
        let departments: Vec<&str> = shared.iter().map(|s| s.department.as_str()).collect();
        assert_eq!(
            departments,
            ["education"],
            "only the department it is addressed to"
        );
        let copy = ReferralIssued::decode(shared[0].payload.as_slice())
            .map_err(|e| SharingError::Decode(e.to_string()))?;
        assert_eq!(copy.case_id, "", "not agreed");
        assert_eq!(
            copy.department, "",
            "the condition's field is not shared by itself"
        );
        Ok(())
    }

    #[test]
    fn payments_reach_rural_revitalization_only_for_poor_or_monitored_persons()
    -> Result<(), SharingError> {
        let agreements = Agreements::shipped()?;
        let paid = jiuzhu_proto::decisions::ReliefDistributed {
            case_id: "c-1".to_owned(),
            person_id: "p-1".to_owned(),
            ..Default::default()
        };
        let share = |statuses: &[&str]| {
            agreements.share(
                &pool(),
                "jiuzhu.decisions.v1.ReliefDistributed",
                &paid.encode_to_vec(),
                &statuses.iter().map(|s| (*s).to_owned()).collect(),
                b"k",
            )
        };
        assert!(share(&[])?.is_empty(), "no such status: not shared");
        assert!(share(&["minimum_living"])?.is_empty());
        assert_eq!(share(&["registered_poor"])?.len(), 1);
        let wrong = SHIPPED.replace("[\"registered_poor\",", "[\"rich\",");
        assert!(matches!(
            Agreements::parse(&wrong, &pool()),
            Err(SharingError::Condition(_))
        ));
        Ok(())
    }

    #[test]
    fn a_referral_clause_names_identity_fields_of_an_event_that_carries_a_subject() {
        let clause = |event_type: &str, subject: &str| {
            format!(
                "[sharing]\nversion = \"t\"\nagreed_by = \"t\"\n\
                 [sharing.departments.health]\npurpose = \"p\"\nlegal_basis = \"l\"\n\
                 retention_days = 1\n[[sharing.departments.health.shares]]\n\
                 event_type = \"{event_type}\"\nfields = [\"person_id\"]\nsubject = [{subject}]\n"
            )
        };
        let referral = "jiuzhu.decisions.v1.ReferralIssued";
        let parsed = Agreements::parse(&clause(referral, "\"full_name\", \"phone\""), &pool());
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(matches!(
            Agreements::parse(&clause(referral, "\"bank_account\""), &pool()),
            Err(SharingError::UnknownField { .. })
        ));
        assert!(matches!(
            Agreements::parse(
                &clause("jiuzhu.decisions.v1.CaseClosed", "\"full_name\""),
                &pool()
            ),
            Err(SharingError::UnknownField { .. })
        ));
        let identity = jiuzhu_proto::registry::PersonalIdentity {
            full_name: "吴桂芬".to_owned(),
            resident_id: "520103195001011234".to_owned(),
            phone: "13800001234".to_owned(),
            ..Default::default()
        };
        let kept = minimal_subject(
            &pool(),
            &identity,
            &["full_name".to_owned(), "phone".to_owned()],
        );
        assert!(kept.is_ok_and(|k| k.full_name == "吴桂芬"
            && k.phone == "13800001234"
            && k.resident_id.is_empty()));
    }
}
