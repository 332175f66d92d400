use chrono::NaiveDate;

/// The ways people write a date on Chinese forms and in department files.
pub const WRITTEN_DATE_FORMATS: [&str; 5] =
    ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日"];

/// A date as people write it (see [`WRITTEN_DATE_FORMATS`]); `None` when it is none of them.
pub fn parse_written_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    WRITTEN_DATE_FORMATS
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_ways_people_write_them() {
        let expected = NaiveDate::from_ymd_opt(1949, 12, 31);
        for text in [
            "1949-12-31",
            "1949/12/31",
            "19491231",
            "1949.12.31",
            "1949年12月31日",
            " 1949-12-31 ",
        ] {
            assert_eq!(parse_written_date(text), expected, "{text}");
        }
        assert_eq!(
            parse_written_date("1950年1月5日"),
            NaiveDate::from_ymd_opt(1950, 1, 5)
        );
        assert_eq!(parse_written_date("31/12/1949"), None);
        assert_eq!(parse_written_date(""), None);
    }
}
