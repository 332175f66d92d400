//! The relief policy and the wage table the decisions service decides with (shared with the
//! `jiuzhu policy` commands in `jiuzhu-policy`).

pub use jiuzhu_policy::relief::*;
pub use jiuzhu_policy::wages::*;
