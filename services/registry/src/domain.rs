//! The registry's decisions, free of I/O: commands are validated into typed values, the
//! `Person` aggregate decides, and events record what was decided.

use chrono::NaiveDate;
use jiuzhu_eventstore::{Aggregate, event_enum};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::{Gender, PersonRegistered};
use uuid::Uuid;

event_enum! {
    /// Every event on `jiuzhu.registry.events.v1`.
    pub enum RegistryEvent {
        PersonRegistered(PersonRegistered),
    }
}

/// A field that failed validation, with a reason a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: &'static str,
    pub reason: String,
}

fn violation(field: &'static str, reason: impl Into<String>) -> Violation {
    Violation {
        field,
        reason: reason.into(),
    }
}

const CHECK_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// ISO 7064 MOD 11-2 check character of the first 17 digits.
fn check_character(first17: &str) -> Option<char> {
    let mut sum = 0;
    for (c, weight) in first17.chars().zip(CHECK_WEIGHTS) {
        sum += c.to_digit(10)? * weight;
    }
    CHECK_CHARS.get(usize::try_from(sum % 11).ok()?).copied()
}

/// Validates an 18-digit resident id, or upgrades a 15-digit one ("19" inserted before the
/// year, check character computed). Returns the 18-digit form.
pub fn normalise_resident_id(raw: &str) -> Result<String, String> {
    let id = raw.trim().to_ascii_uppercase();
    let eighteen = match id.len() {
        15 if id.chars().all(|c| c.is_ascii_digit()) => {
            let first17 = format!("{}19{}", &id[..6], &id[6..]);
            let check = check_character(&first17).ok_or("must be digits")?;
            format!("{first17}{check}")
        }
        18 => id,
        _ => return Err("must have 18 characters (or 15 digits for an old number)".to_owned()),
    };
    let (first17, last) = eighteen.split_at(17);
    let expected = check_character(first17).ok_or("the first 17 characters must be digits")?;
    if !last.starts_with(expected) {
        return Err(format!(
            "check character is `{last}`, the number's digits give `{expected}`"
        ));
    }
    let birth = &eighteen[6..14];
    if NaiveDate::parse_from_str(birth, "%Y%m%d").is_err() {
        return Err(format!("contains `{birth}`, which is not a birth date"));
    }
    Ok(eighteen)
}

/// A validated request to register a person.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterPerson {
    pub person_id: Uuid,
    pub full_name: String,
    pub gender: Gender,
    pub birth_date: Option<NaiveDate>,
    pub resident_id: Option<String>,
    pub region_code: String,
    pub source_department: String,
}

/// Raw fields as a caller sent them.
#[derive(Debug, Clone, Default)]
pub struct RegisterPersonInput<'a> {
    pub full_name: &'a str,
    pub gender: i32,
    pub birth_date: &'a str,
    pub resident_id: &'a str,
    pub region_code: &'a str,
    pub source_department: &'a str,
}

impl RegisterPerson {
    /// Validates every field and reports all violations at once.
    pub fn parse(person_id: Uuid, input: &RegisterPersonInput<'_>) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let full_name = input.full_name.trim();
        if full_name.is_empty() {
            violations.push(violation("full_name", "is required"));
        } else if full_name.chars().count() > 64 {
            violations.push(violation("full_name", "must be at most 64 characters"));
        }
        let gender = Gender::try_from(input.gender).unwrap_or_else(|_| {
            violations.push(violation(
                "gender",
                format!("{} is not a known gender", input.gender),
            ));
            Gender::Unspecified
        });
        let birth_date = match input.birth_date.trim() {
            "" => None,
            text => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => Some(date),
                Err(_) => {
                    violations.push(violation(
                        "birth_date",
                        format!("`{text}` is not a YYYY-MM-DD date"),
                    ));
                    None
                }
            },
        };
        let resident_id = match input.resident_id.trim() {
            "" => None,
            text => match normalise_resident_id(text) {
                Ok(id) => Some(id),
                Err(reason) => {
                    violations.push(violation("resident_id", reason));
                    None
                }
            },
        };
        let region_code = input.region_code.trim();
        if region_code.len() != 6 || !region_code.bytes().all(|b| b.is_ascii_digit()) {
            violations.push(violation(
                "region.code",
                "must be a six-digit GB/T 2260 code",
            ));
        }
        let source_department = input.source_department.trim();
        if source_department.is_empty() {
            violations.push(violation("source_department", "is required"));
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Self {
            person_id,
            full_name: full_name.to_owned(),
            gender,
            birth_date,
            resident_id,
            region_code: region_code.to_owned(),
            source_department: source_department.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("person {0} is already registered")]
    AlreadyRegistered(Uuid),
}

/// A person's record as far as the registry's decisions need it.
#[derive(Debug, Default, Clone)]
pub struct Person {
    registered: Option<Uuid>,
}

impl Aggregate for Person {
    type Event = RegistryEvent;

    fn apply(&mut self, event: &RegistryEvent) {
        match event {
            RegistryEvent::PersonRegistered(e) => {
                self.registered = Uuid::parse_str(&e.person_id).ok();
            }
        }
    }
}

impl Person {
    pub fn register(&self, command: &RegisterPerson) -> Result<Vec<RegistryEvent>, RegistryError> {
        if let Some(existing) = self.registered {
            return Err(RegistryError::AlreadyRegistered(existing));
        }
        Ok(vec![RegistryEvent::PersonRegistered(PersonRegistered {
            person_id: command.person_id.to_string(),
            full_name: command.full_name.clone(),
            gender: command.gender.into(),
            birth_date: command
                .birth_date
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            resident_id: command.resident_id.clone().unwrap_or_default(),
            region: Some(RegionCode {
                code: command.region_code.clone(),
            }),
            source_department: command.source_department.clone(),
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(events: &[RegistryEvent]) -> Person {
        let mut person = Person::default();
        for event in events {
            person.apply(event);
        }
        person
    }

    fn input() -> RegisterPersonInput<'static> {
        RegisterPersonInput {
            full_name: " 王秀英 ",
            gender: Gender::Female as i32,
            birth_date: "1949-12-31",
            resident_id: "11010519491231002X",
            region_code: "110105",
            source_department: "rural_revitalization",
        }
    }

    #[test]
    fn registering_a_new_person_records_the_normalised_fields() -> Result<(), Vec<Violation>> {
        let id = Uuid::now_v7();
        let command = RegisterPerson::parse(id, &input())?;
        let events = given(&[]).register(&command);
        let Ok([RegistryEvent::PersonRegistered(registered)]) = events.as_deref() else {
            panic!("expected one PersonRegistered, got {events:?}");
        };
        assert_eq!(registered.person_id, id.to_string());
        assert_eq!(registered.full_name, "王秀英");
        assert_eq!(registered.resident_id, "11010519491231002X");
        assert_eq!(
            registered.region.as_ref().map(|r| r.code.as_str()),
            Some("110105")
        );
        Ok(())
    }

    #[test]
    fn registering_twice_is_refused_with_the_existing_id() -> Result<(), Vec<Violation>> {
        let id = Uuid::now_v7();
        let command = RegisterPerson::parse(id, &input())?;
        let history = given(&[]).register(&command).unwrap_or_default();
        assert_eq!(
            given(&history).register(&command),
            Err(RegistryError::AlreadyRegistered(id))
        );
        Ok(())
    }

    #[test]
    fn every_bad_field_is_reported() {
        let bad = RegisterPersonInput {
            full_name: "  ",
            gender: 9,
            birth_date: "31/12/1949",
            resident_id: "110105194912310021",
            region_code: "11010",
            source_department: "",
        };
        let fields: Vec<&str> = RegisterPerson::parse(Uuid::now_v7(), &bad)
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
                "source_department"
            ]
        );
    }

    #[test]
    fn resident_ids_are_checked_and_upgraded() {
        assert_eq!(
            normalise_resident_id("11010519491231002x").as_deref(),
            Ok("11010519491231002X")
        );
        assert!(normalise_resident_id("110105194912310021").is_err());
        assert!(normalise_resident_id("110105194913310028").is_err());
        // 15-digit number of someone born 1949-12-31: "19" inserted, check character computed.
        assert_eq!(
            normalise_resident_id("110105491231002").as_deref(),
            Ok("11010519491231002X")
        );
        assert!(normalise_resident_id("12345").is_err());
    }
}
