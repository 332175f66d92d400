//! The relief policy as the pages need it: the categories with their facts and materials, the
//! exclusions, the approval tiers. Read at start from the same versioned policy directory the
//! services read, and chosen by the day (the services decide; the console only lists choices).

use chrono::NaiveDate;
use jiuzhu_policy::relief::ReliefPolicy;
use jiuzhu_policy::{PolicyBook, PolicyError};

#[derive(Debug)]
pub struct Policy {
    relief: Vec<(NaiveDate, ReliefPolicy)>,
}

impl Policy {
    pub fn load(dir: &std::path::Path) -> Result<Self, PolicyError> {
        let book = PolicyBook::load(dir)?;
        Self::of(&book)
    }

    pub fn of(book: &PolicyBook) -> Result<Self, PolicyError> {
        Ok(Self {
            relief: book.parse_each(jiuzhu_policy::RELIEF, |text| {
                ReliefPolicy::parse(text)
                    .map_err(|error| PolicyError::from_config(jiuzhu_policy::RELIEF, text, &error))
            })?,
        })
    }

    /// The relief policy in force on `day`.
    pub fn relief(&self, day: NaiveDate) -> Option<&ReliefPolicy> {
        jiuzhu_policy::in_force_on(&self.relief, day)
    }
}
