//! The screening and matching policy the clue service decides with (shared with `jiuzhu policy
//! check` in `jiuzhu-policy`).

pub use jiuzhu_policy::screening::*;
