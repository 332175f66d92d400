//! The follow-up policy the service schedules and scores with (shared with `jiuzhu policy check`
//! in `jiuzhu-policy`).

pub use jiuzhu_policy::followup::*;
