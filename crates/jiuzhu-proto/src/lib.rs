//! Jiuzhu's protobuf contracts as Rust: the messages and gRPC stubs generated from `proto/`,
//! and the encoded `FileDescriptorSet` that gRPC reflection serves and that integrators use to
//! decode our topics. Every other crate takes its wire types from here, never from its own copy.

/// Encoded `google.protobuf.FileDescriptorSet` of every Jiuzhu contract (and its imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jiuzhu_descriptor.binpb"));

#[cfg(feature = "dynamic")]
pub mod dynamic;

#[allow(clippy::all, missing_docs)]
pub mod jiuzhu {
    pub mod common {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.common.v1.rs"));
        }
    }
    pub mod registry {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.registry.v1.rs"));
        }
    }
    pub mod clues {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.clues.v1.rs"));
        }
    }
    pub mod decisions {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.decisions.v1.rs"));
        }
    }
    pub mod payments {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.payments.v1.rs"));
        }
    }
    pub mod followup {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.followup.v1.rs"));
        }
    }
    pub mod gateway {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.gateway.v1.rs"));
        }
    }
    pub mod audit {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.audit.v1.rs"));
        }
    }
}

pub use jiuzhu::{
    audit::v1 as audit, clues::v1 as clues, common::v1 as common, decisions::v1 as decisions,
    followup::v1 as followup, gateway::v1 as gateway, payments::v1 as payments,
    registry::v1 as registry,
};

/// `google.protobuf.Timestamp` to and from UTC time, the one conversion every service needs.
pub mod time {
    use chrono::{DateTime, Utc};
    use prost_types::Timestamp;

    pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
        Timestamp {
            seconds: at.timestamp(),
            nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
        }
    }

    /// `at` in Beijing time (UTC+8, no daylight saving): the clock working days, value dates
    /// and "paid on" days are counted in.
    pub fn beijing(at: DateTime<Utc>) -> DateTime<chrono::FixedOffset> {
        let offset =
            chrono::FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc));
        at.with_timezone(&offset)
    }

    /// The Beijing calendar day of `at`.
    pub fn beijing_date(at: DateTime<Utc>) -> chrono::NaiveDate {
        beijing(at).date_naive()
    }

    /// `None` for a timestamp outside what UTC time can represent (or with invalid nanos).
    pub fn utc(at: &Timestamp) -> Option<DateTime<Utc>> {
        let nanos = u32::try_from(at.nanos).ok()?;
        DateTime::from_timestamp(at.seconds, nanos)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_timestamp_round_trips_and_nonsense_is_refused() {
            let at = DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap_or_default();
            assert_eq!(utc(&timestamp(at)), Some(at));
            let bad = Timestamp {
                seconds: 1,
                nanos: -5,
            };
            assert_eq!(utc(&bad), None);
        }
    }
}
