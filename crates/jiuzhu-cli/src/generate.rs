//! A deterministic synthetic rural population: surnames drawn with roughly their real
//! frequencies, common given names that repeat (so that name matches mean little, as in life),
//! households of one to six, valid resident ids that agree with birth date and sex, villages
//! under real county codes of Guizhou, Yunnan and Gansu. The same seed gives the same file.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{Days, NaiveDate};
use jiuzhu_identity::{ResidentId, all_regions};

use crate::records::COLUMNS;

/// Surnames with weights per ten thousand people (rounded from published frequencies).
const SURNAMES: [(&str, u32); 40] = [
    ("王", 710),
    ("李", 700),
    ("张", 670),
    ("刘", 540),
    ("陈", 450),
    ("杨", 310),
    ("黄", 230),
    ("赵", 220),
    ("吴", 200),
    ("周", 190),
    ("徐", 130),
    ("孙", 130),
    ("马", 120),
    ("朱", 110),
    ("胡", 100),
    ("郭", 97),
    ("何", 95),
    ("林", 90),
    ("高", 90),
    ("罗", 86),
    ("郑", 80),
    ("梁", 70),
    ("谢", 60),
    ("宋", 55),
    ("唐", 50),
    ("许", 50),
    ("韩", 45),
    ("冯", 43),
    ("邓", 43),
    ("曹", 40),
    ("彭", 39),
    ("曾", 38),
    ("肖", 37),
    ("田", 36),
    ("董", 35),
    ("袁", 34),
    ("潘", 33),
    ("蒋", 32),
    ("龙", 20),
    ("欧阳", 5),
];
const COMMON_GIVEN: [(&str, bool); 24] = [
    ("伟", true),
    ("芳", false),
    ("娜", false),
    ("秀英", false),
    ("敏", false),
    ("静", false),
    ("丽", false),
    ("强", true),
    ("磊", true),
    ("军", true),
    ("洋", true),
    ("勇", true),
    ("艳", false),
    ("杰", true),
    ("娟", false),
    ("涛", true),
    ("明", true),
    ("超", true),
    ("秀兰", false),
    ("霞", false),
    ("平", true),
    ("刚", true),
    ("桂英", false),
    ("建华", true),
];
const MALE_CHARS: &str = "国华建明永德志文海军春林成光荣福贵昌兴发俊宏";
const FEMALE_CHARS: &str = "秀玉兰凤翠花梅英珍芬丽娥琴燕萍红霞美彩桂莲";
const VILLAGE_PARTS: [&str; 12] = [
    "新场", "龙井", "石门", "坝子", "沙坡", "青杠", "水井", "大寨", "小河", "松林", "田坝", "岩脚",
];
const VILLAGE_SUFFIX: [&str; 3] = ["村", "寨", "组"];
const TOWNSHIP_SUFFIX: [&str; 2] = ["镇", "乡"];

/// splitmix64: small, fast, and stable across versions (the output must not change).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub(crate) fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        &items[index]
    }
}

fn surname(rng: &mut Rng) -> &'static str {
    let total: u32 = SURNAMES.iter().map(|(_, w)| w).sum();
    let mut ticket = u32::try_from(rng.below(u64::from(total))).unwrap_or(0);
    for (name, weight) in SURNAMES {
        if ticket < weight {
            return name;
        }
        ticket -= weight;
    }
    "王"
}

fn given_name(rng: &mut Rng, male: bool) -> String {
    if rng.chance(450) {
        let candidates: Vec<&str> = COMMON_GIVEN
            .iter()
            .filter(|(_, m)| *m == male)
            .map(|(n, _)| *n)
            .collect();
        return (*rng.pick(&candidates)).to_owned();
    }
    let pool: Vec<char> = if male { MALE_CHARS } else { FEMALE_CHARS }
        .chars()
        .collect();
    let length = if rng.chance(250) { 1 } else { 2 };
    (0..length).map(|_| *rng.pick(&pool)).collect()
}

struct Place {
    region: &'static str,
    township: String,
    villages: Vec<String>,
}

/// Sixty townships with eight villages each: in `county` when given, else spread over the rural
/// counties of three provinces.
fn places(rng: &mut Rng, county: Option<&'static str>) -> Vec<Place> {
    let counties: Vec<&'static str> = match county {
        Some(code) => vec![code],
        None => all_regions()
            .into_iter()
            .filter(|r| {
                matches!(r.province, "贵州省" | "云南省" | "甘肃省")
                    && !r.code.ends_with("00")
                    && !r.name.ends_with('区')
            })
            .map(|r| r.code)
            .collect(),
    };
    (0..60)
        .map(|_| Place {
            region: rng.pick::<&'static str>(&counties),
            township: format!("{}{}", rng.pick(&VILLAGE_PARTS), rng.pick(&TOWNSHIP_SUFFIX)),
            villages: (0..8)
                .map(|_| format!("{}{}", rng.pick(&VILLAGE_PARTS), rng.pick(&VILLAGE_SUFFIX)))
                .collect(),
        })
        .collect()
}

/// Writes `persons` records as CSV with the import columns plus household columns, living in
/// `county` (a six-digit county code) when given.
pub fn write_population(
    persons: u64,
    seed: u64,
    county: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let county = match county {
        Some(code) => Some(
            jiuzhu_identity::lookup_region(code)
                .filter(|r| !r.code.ends_with("00"))
                .map(|r| r.code)
                .with_context(|| {
                    format!("--county must be a county's six-digit GB/T 2260 code, not `{code}`")
                })?,
        ),
        None => None,
    };
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut csv = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, sink));
    csv.write_record(COLUMNS)?;
    let mut rng = Rng(seed ^ 0x6A69_757A_6875);
    let places = places(&mut rng, county);
    let mut ids: HashSet<String> = HashSet::new();
    let epoch = NaiveDate::from_ymd_opt(1935, 1, 1).context("epoch")?;
    let mut written = 0u64;
    let mut household = 0u64;
    while written < persons {
        household += 1;
        let place = rng.pick(&places);
        let village = rng.pick(&place.villages).clone();
        let family = surname(&mut rng);
        let size = 1 + rng.below(6);
        let head_birth = epoch + Days::new(20 * 365 + rng.below(45 * 365));
        for member in 0..size {
            if written >= persons {
                break;
            }
            let (relationship, birth, surname) = match member {
                0 => ("head", head_birth, family),
                1 => (
                    "spouse",
                    head_birth + Days::new(rng.below(6 * 365)),
                    surname(&mut rng),
                ),
                _ => (
                    "child",
                    head_birth + Days::new((20 + rng.below(20)) * 365),
                    family,
                ),
            };
            let male = if member == 1 { false } else { rng.chance(520) };
            let mut sequence = u16::try_from(rng.below(500)).unwrap_or(0) * 2 + u16::from(male);
            let id = loop {
                let candidate = ResidentId::compose(place.region, birth, sequence)?;
                if ids.insert(candidate.as_str().to_owned()) {
                    break candidate;
                }
                sequence = (sequence + 2) % 1000;
            };
            let resident_id = if rng.chance(20) {
                String::new() // the department does not have it
            } else if rng.chance(10) && birth.format("%Y").to_string().starts_with("19") {
                // An old 15-digit number: drop "19" and the check character.
                let full = id.as_str();
                format!("{}{}", &full[..6], &full[8..17])
            } else {
                id.as_str().to_owned()
            };
            let phone = if rng.chance(700) {
                format!("1{}{:09}", 3 + rng.below(7), rng.below(1_000_000_000))
            } else {
                String::new()
            };
            written += 1;
            csv.write_record([
                format!("P{seed}-{written:08}"),
                format!("{surname}{}", given_name(&mut rng, male)),
                if male { "男" } else { "女" }.to_owned(),
                birth.format("%Y-%m-%d").to_string(),
                resident_id,
                place.region.to_owned(),
                place.township.clone(),
                village.clone(),
                format!("{}{}{}号", place.township, village, 1 + rng.below(300)),
                phone,
                format!("H{seed}-{household:07}"),
                relationship.to_owned(),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(persons: u64, seed: u64) -> anyhow::Result<String> {
        generate_in(persons, seed, None)
    }

    fn generate_in(persons: u64, seed: u64, county: Option<&str>) -> anyhow::Result<String> {
        let path = std::env::temp_dir().join(format!(
            "jiuzhu-gen-{}-{seed}-{persons}-{}.csv",
            std::process::id(),
            county.unwrap_or("all")
        ));
        write_population(persons, seed, county, Some(&path))?;
        let text = std::fs::read_to_string(&path)?;
        std::fs::remove_file(&path)?;
        Ok(text)
    }

    #[test]
    fn the_same_seed_gives_the_same_population() -> anyhow::Result<()> {
        assert_eq!(generate(300, 7)?, generate(300, 7)?);
        assert_ne!(generate(300, 7)?, generate(300, 8)?);
        Ok(())
    }

    #[test]
    fn a_county_population_lives_in_that_county() -> anyhow::Result<()> {
        let text = generate_in(500, 2, Some("520121"))?;
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut rows = 0;
        for row in reader.records() {
            let row = row?;
            rows += 1;
            assert_eq!(&row[5], "520121");
            if row[4].len() == 18 {
                assert!(row[4].starts_with("520121"), "{}", &row[4]);
            }
        }
        assert_eq!(rows, 500);
        for bad in ["520100", "999999", "5201"] {
            let refused = generate_in(10, 2, Some(bad))
                .err()
                .ok_or_else(|| anyhow::anyhow!("county {bad} was accepted"))?;
            assert!(refused.to_string().contains("--county"), "{refused}");
        }
        Ok(())
    }

    #[test]
    fn generated_ids_are_valid_unique_and_agree_with_birth_and_sex() -> anyhow::Result<()> {
        let text = generate(2000, 3)?;
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut seen = HashSet::new();
        let mut surnames = std::collections::HashMap::new();
        let mut rows = 0;
        for row in reader.records() {
            let row = row?;
            rows += 1;
            *surnames
                .entry(row[1].chars().next().unwrap_or(' '))
                .or_insert(0) += 1;
            if row[4].is_empty() {
                continue;
            }
            let id = ResidentId::parse(&row[4])?;
            assert!(seen.insert(id.as_str().to_owned()), "duplicate id");
            assert_eq!(id.birth_date().format("%Y-%m-%d").to_string(), &row[3]);
            let male = id.sex() == jiuzhu_identity::Sex::Male;
            assert_eq!(male, &row[2] == "男");
            assert!(jiuzhu_identity::lookup_region(&row[5]).is_some());
        }
        assert_eq!(rows, 2000);
        // Common surnames dominate, as in the real population.
        let wang_li_zhang: i32 = ['王', '李', '张']
            .iter()
            .map(|s| surnames.get(s).copied().unwrap_or(0))
            .sum();
        assert!(wang_li_zhang > 300, "{wang_li_zhang}");
        Ok(())
    }
}
