//! Sealing of the registry contract's `PersonalIdentity`, shared by the registry (which seals)
//! and every reader of its topic (which open).

use std::collections::HashMap;

use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::registry::{PersonRegistered, PersonUpdated, PersonalIdentity};
use uuid::Uuid;

use crate::{DataKey, KeyState, VaultError};

/// A registry event that carries a person's identity.
pub trait CarriesIdentity {
    fn person_id(&self) -> &str;
    /// The county-level region code (not personal data; stays readable).
    fn region_code(&self) -> &str;
    /// The gender as the registry's `Gender` enum value (stays readable).
    fn gender(&self) -> i32;
    fn sealed_identity(&self) -> Option<&Sealed>;
    fn set_sealed_identity(&mut self, sealed: Option<Sealed>);
    /// Moves the plain personal fields out, leaving them empty.
    fn take_personal(&mut self) -> PersonalIdentity;
    fn put_personal(&mut self, personal: PersonalIdentity);
}

macro_rules! carries_identity {
    ($event:ty) => {
        impl CarriesIdentity for $event {
            fn person_id(&self) -> &str {
                &self.person_id
            }

            fn region_code(&self) -> &str {
                self.region.as_ref().map(|r| r.code.as_str()).unwrap_or("")
            }

            fn gender(&self) -> i32 {
                self.gender
            }

            fn sealed_identity(&self) -> Option<&Sealed> {
                self.sealed_identity.as_ref()
            }

            fn set_sealed_identity(&mut self, sealed: Option<Sealed>) {
                self.sealed_identity = sealed;
            }

            fn take_personal(&mut self) -> PersonalIdentity {
                PersonalIdentity {
                    full_name: std::mem::take(&mut self.full_name),
                    birth_date: std::mem::take(&mut self.birth_date),
                    resident_id: std::mem::take(&mut self.resident_id),
                    township: std::mem::take(&mut self.township),
                    village: std::mem::take(&mut self.village),
                    address_text: std::mem::take(&mut self.address_text),
                    phone: std::mem::take(&mut self.phone),
                }
            }

            fn put_personal(&mut self, personal: PersonalIdentity) {
                self.full_name = personal.full_name;
                self.birth_date = personal.birth_date;
                self.resident_id = personal.resident_id;
                self.township = personal.township;
                self.village = personal.village;
                self.address_text = personal.address_text;
                self.phone = personal.phone;
            }
        }
    };
}

carries_identity!(PersonRegistered);
carries_identity!(PersonUpdated);

/// How an identity came out of [`open_identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// It was sealed and is now readable.
    Opened,
    /// The person was erased: the personal fields stay empty for good.
    Erased,
    /// It was never sealed (an event from before sealing).
    Plain,
}

/// Moves the event's personal fields into `sealed_identity`, sealed under `key`.
pub fn seal_identity<E: CarriesIdentity>(event: &mut E, key: &DataKey) -> Result<(), VaultError> {
    let person = Uuid::parse_str(event.person_id()).map_err(|_| VaultError::Seal)?;
    let personal = event.take_personal();
    let sealed = key.seal(person, &personal)?;
    event.set_sealed_identity(Some(sealed));
    Ok(())
}

/// The person whose key opens this event's identity, if it is sealed.
pub fn sealed_person<E: CarriesIdentity>(event: &E) -> Option<Uuid> {
    event
        .sealed_identity()
        .and_then(|s| Uuid::parse_str(&s.person_id).ok())
}

/// Fills the event's personal fields from `sealed_identity` with the person's key from `keys`.
pub fn open_identity<E: CarriesIdentity>(
    event: &mut E,
    keys: &HashMap<Uuid, KeyState>,
) -> Result<Opened, VaultError> {
    let Some(sealed) = event.sealed_identity() else {
        return Ok(Opened::Plain);
    };
    let person = Uuid::parse_str(&sealed.person_id).map_err(|_| VaultError::Unauthentic {
        person: Uuid::nil(),
    })?;
    match keys.get(&person) {
        Some(KeyState::Live(key)) => {
            let personal = key.open::<PersonalIdentity>(person, sealed)?;
            event.put_personal(personal);
            Ok(Opened::Opened)
        }
        Some(KeyState::Erased) => {
            event.take_personal();
            Ok(Opened::Erased)
        }
        None => Err(VaultError::NoKey { person }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_and_is_gone_after_erasure() -> Result<(), VaultError> {
        let person = Uuid::now_v7();
        let key = DataKey::generate();
        let original = PersonRegistered {
            person_id: person.to_string(),
            full_name: "王秀英".to_owned(),
            resident_id: "110105194912310021".to_owned(),
            phone: "13800000000".to_owned(),
            gender: 2,
            ..PersonRegistered::default()
        };
        let mut event = original.clone();
        seal_identity(&mut event, &key)?;
        assert!(
            event.full_name.is_empty() && event.resident_id.is_empty() && event.phone.is_empty()
        );
        assert_eq!(event.gender, 2, "non-personal fields stay readable");
        let bytes = prost::Message::encode_to_vec(&event);
        assert!(!bytes.windows(9).any(|w| w == "王秀英".as_bytes()));

        let mut opened = event.clone();
        let live = HashMap::from([(person, KeyState::Live(key))]);
        assert_eq!(open_identity(&mut opened, &live)?, Opened::Opened);
        assert_eq!(opened.full_name, original.full_name);
        assert_eq!(opened.resident_id, original.resident_id);

        let mut erased = event.clone();
        let gone = HashMap::from([(person, KeyState::Erased)]);
        assert_eq!(open_identity(&mut erased, &gone)?, Opened::Erased);
        assert!(erased.full_name.is_empty());

        assert!(matches!(
            open_identity(&mut event.clone(), &HashMap::new()),
            Err(VaultError::NoKey { .. })
        ));
        let mut plain = original.clone();
        assert_eq!(open_identity(&mut plain, &HashMap::new())?, Opened::Plain);
        Ok(())
    }
}
