use std::collections::HashMap;
use std::sync::LazyLock;

const TABLE: &str = include_str!("../data/gb2260.tsv");

/// A GB/T 2260 administrative division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub code: &'static str,
    pub name: &'static str,
    /// Prefecture-level division (empty for a province).
    pub prefecture: &'static str,
    pub province: &'static str,
}

static REGIONS: LazyLock<HashMap<&'static str, Region>> = LazyLock::new(|| {
    TABLE
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let region = Region {
                code: fields.next()?,
                name: fields.next()?,
                prefecture: fields.next()?,
                province: fields.next()?,
            };
            Some((region.code, region))
        })
        .collect()
});

/// Every region in the table, ordered by code.
pub fn all_regions() -> Vec<&'static Region> {
    let mut regions: Vec<&'static Region> = REGIONS.values().collect();
    regions.sort_by_key(|r| r.code);
    regions
}

/// The region with this six-digit code, if the shipped table has it.
pub fn lookup_region(code: &str) -> Option<&'static Region> {
    REGIONS.get(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_counties_prefectures_and_provinces() {
        assert_eq!(lookup_region("522701").map(|r| r.name), Some("都匀市"));
        assert_eq!(lookup_region("522701").map(|r| r.province), Some("贵州省"));
        assert_eq!(
            lookup_region("522700").map(|r| r.name),
            Some("黔南布依族苗族自治州")
        );
        assert_eq!(lookup_region("110000").map(|r| r.name), Some("北京市"));
        assert!(lookup_region("999999").is_none());
        assert!(REGIONS.len() > 3000);
    }
}
