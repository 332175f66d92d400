use std::fmt;

use chrono::NaiveDate;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARACTERS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Sex as encoded by the sequence digit (odd = male).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    #[error("must have 18 characters, or 15 digits for an old number (got {0})")]
    Length(usize),
    #[error("the first 17 characters must be digits")]
    NotDigits,
    #[error("check character is `{found}`, the number's digits give `{expected}`")]
    CheckCharacter { found: char, expected: char },
    #[error("contains `{0}`, which is not a birth date")]
    BirthDate(String),
}

/// A valid 18-digit resident identity number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId(String);

/// The check character of the first 17 digits.
fn check_character(first17: &str) -> Option<char> {
    let mut sum = 0;
    for (c, weight) in first17.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * weight;
    }
    CHECK_CHARACTERS
        .get(usize::try_from(sum % 11).ok()?)
        .copied()
}

impl ResidentId {
    /// Parses an 18-digit number (a lower-case `x` is accepted) or upgrades a 15-digit one by
    /// inserting "19" before the year and computing the check character.
    pub fn parse(raw: &str) -> Result<Self, ResidentIdError> {
        let id: String = raw
            .trim()
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let length = id.chars().count();
        let eighteen = match length {
            15 if id.bytes().all(|b| b.is_ascii_digit()) => {
                let first17 = format!("{}19{}", &id[..6], &id[6..]);
                let check = check_character(&first17).ok_or(ResidentIdError::NotDigits)?;
                format!("{first17}{check}")
            }
            15 => return Err(ResidentIdError::NotDigits),
            18 => id,
            other => return Err(ResidentIdError::Length(other)),
        };
        if !eighteen.is_ascii() || !eighteen[..17].bytes().all(|b| b.is_ascii_digit()) {
            return Err(ResidentIdError::NotDigits);
        }
        let expected = check_character(&eighteen[..17]).ok_or(ResidentIdError::NotDigits)?;
        let found = eighteen[17..].chars().next().unwrap_or(' ');
        if found != expected {
            return Err(ResidentIdError::CheckCharacter { found, expected });
        }
        let birth = &eighteen[6..14];
        if NaiveDate::parse_from_str(birth, "%Y%m%d").is_err() {
            return Err(ResidentIdError::BirthDate(birth.to_owned()));
        }
        Ok(Self(eighteen))
    }

    /// Builds the number for a region, birth date and 3-digit sequence (odd = male), computing
    /// the check character. For generated test and demo data.
    pub fn compose(
        region_code: &str,
        birth: NaiveDate,
        sequence: u16,
    ) -> Result<Self, ResidentIdError> {
        let first17 = format!(
            "{region_code}{}{:03}",
            birth.format("%Y%m%d"),
            sequence % 1000
        );
        let check = check_character(&first17).ok_or(ResidentIdError::NotDigits)?;
        Self::parse(&format!("{first17}{check}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Region code of the issuing office (not necessarily where the person lives).
    pub fn region_code(&self) -> &str {
        &self.0[..6]
    }

    pub fn birth_date(&self) -> NaiveDate {
        // Checked in `parse`.
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").unwrap_or_default()
    }

    pub fn sex(&self) -> Sex {
        let sequence = self.0.as_bytes()[16];
        if (sequence - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }
}

/// Only the region part and a masked remainder: ID numbers are personal data.
impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({}************)", &self.0[..6])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_parse_with_their_facts() -> Result<(), ResidentIdError> {
        let id = ResidentId::parse("11010519491231002x")?;
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.region_code(), "110105");
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap_or_default()
        );
        assert_eq!(id.sex(), Sex::Female);
        assert!(
            !format!("{id:?}").contains("19491231"),
            "Debug must not print the whole number"
        );
        Ok(())
    }

    #[test]
    fn fifteen_digit_numbers_are_upgraded() -> Result<(), ResidentIdError> {
        assert_eq!(
            ResidentId::parse("110105491231002")?.as_str(),
            "11010519491231002X"
        );
        Ok(())
    }

    #[test]
    fn bad_numbers_say_why() {
        assert_eq!(
            ResidentId::parse("110105194912310021"),
            Err(ResidentIdError::CheckCharacter {
                found: '1',
                expected: 'X'
            })
        );
        assert_eq!(ResidentId::parse("12345"), Err(ResidentIdError::Length(5)));
        assert_eq!(
            ResidentId::parse("11010519491231002Ｘ"),
            Err(ResidentIdError::NotDigits)
        );
        assert_eq!(
            ResidentId::parse("11010A19491231002X"),
            Err(ResidentIdError::NotDigits)
        );
        assert!(matches!(
            ResidentId::parse("110105194913310021"),
            Err(ResidentIdError::BirthDate(_))
        ));
    }

    #[test]
    fn composed_numbers_are_valid_and_carry_their_parts() -> Result<(), ResidentIdError> {
        let birth = NaiveDate::from_ymd_opt(1980, 2, 29).unwrap_or_default();
        let id = ResidentId::compose("522701", birth, 37)?;
        assert_eq!(
            (id.region_code(), id.birth_date(), id.sex()),
            ("522701", birth, Sex::Male)
        );
        assert!(ResidentId::compose("52270", birth, 1).is_err());
        Ok(())
    }

    #[test]
    fn every_check_character_round_trips() {
        // The 11 possible remainders all appear among these sequence numbers.
        let mut seen = std::collections::BTreeSet::new();
        for sequence in 0..200 {
            let first17 = format!("52270119800101{sequence:03}");
            let Some(check) = check_character(&first17) else {
                continue;
            };
            seen.insert(check);
            assert!(ResidentId::parse(&format!("{first17}{check}")).is_ok());
        }
        assert_eq!(seen.len(), 11);
    }
}
