//! Who a person is, as Chinese records write it: the 18-digit resident identity number (check
//! character by ISO 7064 MOD 11-2, old 15-digit numbers upgraded, birth date and sex read from
//! it) and the GB/T 2260 table of region codes shipped in `data/gb2260.tsv`. Pure functions and
//! embedded data, no I/O: the registry validates with it and clue linkage normalises with it.
//! Also criminal case numbers in one canonical form, for the once-only rules.

mod case_number;
mod dates;
mod regions;
mod resident_id;

pub use case_number::canonical_case_number;
pub use dates::{WRITTEN_DATE_FORMATS, parse_written_date};
pub use regions::{Region, all_regions, lookup_region};
pub use resident_id::{ResidentId, ResidentIdError, Sex};
