//! Jiuzhu's protobuf contracts as Rust: the messages and gRPC stubs generated from `proto/`,
//! and the encoded `FileDescriptorSet` that gRPC reflection serves and that integrators use to
//! decode our topics. Every other crate takes its wire types from here, never from its own copy.

/// Encoded `google.protobuf.FileDescriptorSet` of every Jiuzhu contract (and its imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jiuzhu_descriptor.binpb"));

#[cfg(feature = "dynamic")]
pub mod dynamic;
#[cfg(feature = "reflection")]
pub mod reflection;
#[cfg(feature = "dynamic")]
pub mod schema;

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

/// Amounts as people write them, to and from integer fen (never floating point).
pub mod money {
    /// Yuan text ("1234.56", "0.5", "12") to fen, exactly; negative amounts, thousands
    /// separators and more than two decimals are refused with a reason.
    pub fn parse_yuan(text: &str) -> Result<i64, String> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !(fraction.is_empty() || digits(fraction)) || fraction.len() > 2 {
            return Err(format!(
                "`{text}` is not an amount in yuan with at most two decimals"
            ));
        }
        let yuan: i64 = whole
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let cents: i64 = format!("{fraction:0<2}")
            .parse()
            .map_err(|_| format!("`{text}` is not an amount"))?;
        yuan.checked_mul(100)
            .and_then(|f| f.checked_add(cents))
            .ok_or_else(|| format!("`{text}` is too large"))
    }

    /// Fen as yuan with two decimals ("-12.05").
    pub fn yuan(fen: i64) -> String {
        let sign = if fen < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{:02}",
            fen.unsigned_abs() / 100,
            fen.unsigned_abs() % 100
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn yuan_text_is_read_exactly_and_written_back() {
            assert_eq!(parse_yuan("1234.56"), Ok(123_456));
            assert_eq!(parse_yuan("0.5"), Ok(50));
            assert_eq!(parse_yuan("12"), Ok(1_200));
            assert_eq!(parse_yuan("0.07"), Ok(7));
            assert!(parse_yuan("1.234").is_err());
            assert!(parse_yuan("-5").is_err());
            assert!(parse_yuan("1,000.00").is_err());
            assert!(parse_yuan("99999999999999999999").is_err());
            assert_eq!(yuan(123_456), "1234.56");
            assert_eq!(yuan(-1_205), "-12.05");
        }
    }
}

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

    /// The last instant of Beijing calendar day `day`, in UTC: what was recorded by then is
    /// what was known "as of" that day.
    pub fn end_of_beijing_day(day: chrono::NaiveDate) -> DateTime<Utc> {
        day.succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|midnight| {
                midnight.and_utc() - chrono::Duration::hours(8) - chrono::Duration::nanoseconds(1)
            })
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
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
        fn a_beijing_day_ends_at_four_in_the_afternoon_utc() {
            let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 15).unwrap_or_default();
            let end = end_of_beijing_day(day);
            assert_eq!(beijing_date(end), day);
            assert_eq!(
                beijing_date(end + chrono::Duration::nanoseconds(1)),
                day.succ_opt().unwrap_or_default()
            );
            assert_eq!(end.format("%H:%M:%S").to_string(), "15:59:59");
        }

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
