//! The policy set as runtime data. Services read their policy from a directory (`[policy]
//! dir`, the repository's `policy/` by default) when they start, so a published wage bulletin
//! or holiday notice needs no rebuild; the copy compiled into the build is only the fallback
//! for a missing file. A set has a version and an effective date, several sets can be in force
//! by date, and [`check`] tests a set as a whole before it is deployed (`jiuzhu policy check`).
//! The typed policies live here too: relief (eligibility, cap, tiers, deadlines, referral
//! routes), the wage table, follow-up and clue screening.

pub mod adoption;
pub mod check;
pub mod followup;
pub mod relief;
pub mod screening;
mod set;
pub mod wages;

pub use set::{
    ACCESS, CALENDAR, FILES, FOLLOWUP, MANIFEST, Manifest, Origin, PolicyBook, PolicyError,
    PolicyFile, PolicySet, PolicySettings, RELIEF, SCREENING, SHARING, WAGES, in_force_on, line_of,
};
