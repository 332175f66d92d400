//! Comparison levels per field: how far two normalised records agree, as a small number a
//! model can weigh (0 is always "missing": no evidence either way).

use chrono::{Datelike, NaiveDate};

use crate::normalise::{Normalised, look_alike};

/// The fields compared, in the order of a comparison vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    ResidentId,
    BirthDate,
    Gender,
    Region,
    Village,
    Phone,
}

pub const FIELDS: [Field; 7] = [
    Field::Name,
    Field::ResidentId,
    Field::BirthDate,
    Field::Gender,
    Field::Region,
    Field::Village,
    Field::Phone,
];

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::ResidentId => "resident_id",
            Self::BirthDate => "birth_date",
            Self::Gender => "gender",
            Self::Region => "region",
            Self::Village => "village",
            Self::Phone => "phone",
        }
    }

    /// Names of the levels, index = level; level 0 is "missing" for every field.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Self::Name => &[
                "missing",
                "exact",
                "pinyin equal",
                "look-alike characters",
                "one character off",
                "nickname",
                "different",
            ],
            Self::ResidentId | Self::Gender | Self::Phone => &["missing", "same", "different"],
            Self::Village => &["missing", "same", "sounds alike", "different"],
            Self::BirthDate => &[
                "missing",
                "exact",
                "day and month swapped",
                "one digit off",
                "same year, a default or estimated date",
                "same year, another day",
                "within a year",
                "different",
            ],
            Self::Region => &[
                "missing",
                "same county",
                "same prefecture",
                "same province",
                "different",
            ],
        }
    }
}

/// One level per field, in [`FIELDS`] order.
pub type Comparison = [u8; 7];

pub mod name_level {
    pub const EXACT: u8 = 1;
    pub const PINYIN: u8 = 2;
    pub const LOOK_ALIKE: u8 = 3;
    pub const ONE_OFF: u8 = 4;
    pub const NICKNAME: u8 = 5;
    pub const DIFFERENT: u8 = 6;
}

fn name_level(a: &Normalised, b: &Normalised) -> u8 {
    use name_level::*;
    if a.name.is_empty() || b.name.is_empty() {
        return 0;
    }
    if a.name == b.name {
        return EXACT;
    }
    let (x, y): (Vec<char>, Vec<char>) = (a.name.chars().collect(), b.name.chars().collect());
    if x.len() == y.len() {
        // A character's main reading must be one of the other's: two characters that share
        // only a rare reading (家 and 祖 both have an obscure "jie") are not heard alike.
        let homophones = a.readings.iter().zip(&b.readings).all(|(p, q)| {
            p.first().is_some_and(|r| q.contains(r)) || q.first().is_some_and(|r| p.contains(r))
        });
        if homophones {
            return PINYIN;
        }
        if x.iter().zip(&y).all(|(c, d)| c == d || look_alike(*c, *d)) {
            return LOOK_ALIKE;
        }
    }
    if nickname(&x, &y) || nickname(&y, &x) {
        NICKNAME
    } else if within_one_edit(&x, &y) {
        ONE_OFF
    } else {
        DIFFERENT
    }
}

/// A case file often knows a person only by what the village calls them: 阿 or 小 and a
/// character of the given name (阿涵 for 张梦涵, 小刚 for 孙刚).
fn nickname(short: &[char], full: &[char]) -> bool {
    match (short, full) {
        ([prefix, given], [first, rest @ ..]) => {
            matches!(prefix, '阿' | '小')
                && !matches!(first, '阿' | '小')
                && !rest.is_empty()
                && rest.contains(given)
        }
        _ => false,
    }
}

/// One substitution, insertion or deletion at most.
fn within_one_edit(x: &[char], y: &[char]) -> bool {
    let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    match long.len() - short.len() {
        0 => short.iter().zip(long).filter(|(a, b)| a != b).count() <= 1,
        1 => {
            let prefix = short.iter().zip(long).take_while(|(a, b)| a == b).count();
            short[prefix..] == long[prefix + 1..]
        }
        _ => false,
    }
}

fn same_or_different<T: PartialEq>(a: Option<T>, b: Option<T>) -> u8 {
    match (a, b) {
        (Some(a), Some(b)) if a == b => 1,
        (Some(_), Some(_)) => 2,
        _ => 0,
    }
}

fn text(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

pub mod birth_level {
    pub const EXACT: u8 = 1;
    pub const SWAPPED: u8 = 2;
    pub const ONE_DIGIT: u8 = 3;
    pub const DEFAULT_DATE: u8 = 4;
    pub const SAME_YEAR: u8 = 5;
    pub const WITHIN_A_YEAR: u8 = 6;
    pub const DIFFERENT: u8 = 7;
}

/// Household registers record unknown birthdays as 1 January (some offices 1 July): such a
/// date says the year and nothing more.
pub(crate) fn default_date(date: NaiveDate) -> bool {
    date.day() == 1 && (date.month() == 1 || date.month() == 7)
}

/// The digits of a date as YYYYMMDD.
fn digits(date: NaiveDate) -> [u8; 8] {
    let mut out = [0u8; 8];
    let mut value =
        u32::try_from(date.year()).unwrap_or(0) % 10_000 * 10_000 + date.month() * 100 + date.day();
    for slot in out.iter_mut().rev() {
        *slot = u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
    }
    out
}

/// YYYYMMDD texts differing in one digit, or in two neighbouring digits swapped (computed, not
/// formatted: this runs for every candidate whose date differs).
fn one_digit_off(x: NaiveDate, y: NaiveDate) -> bool {
    let (a, b) = (digits(x), digits(y));
    let mut differ = (0..8).filter(|&i| a[i] != b[i]);
    match (differ.next(), differ.next(), differ.next()) {
        (Some(_), None, _) => true,
        (Some(i), Some(j), None) => j == i + 1 && a[i] == b[j] && a[j] == b[i],
        _ => false,
    }
}

/// A same-year date that is one of the register's defaults, or an estimate, says only the
/// year; another day of the same year is evidence against (people know their birthday), and
/// so on outwards. A typo (one digit) is its own level: true matches show it, others rarely.
fn birth_level(a: &Normalised, b: &Normalised) -> u8 {
    use birth_level::*;
    let (Some(x), Some(y)) = (a.birth_date, b.birth_date) else {
        return 0;
    };
    let same_year = x.year() == y.year();
    if same_year && (a.birth_estimated || b.birth_estimated) {
        DEFAULT_DATE
    } else if x == y {
        EXACT
    } else if same_year && x.month() == y.day() && x.day() == y.month() {
        SWAPPED
    } else if one_digit_off(x, y) {
        ONE_DIGIT
    } else if same_year && (default_date(x) || default_date(y)) {
        DEFAULT_DATE
    } else if same_year {
        SAME_YEAR
    } else if (x - y).num_days().abs() <= 366 {
        WITHIN_A_YEAR
    } else {
        DIFFERENT
    }
}

fn village_level(a: &Normalised, b: &Normalised) -> u8 {
    if a.village.is_empty() || b.village.is_empty() {
        0
    } else if a.village == b.village {
        1
    } else if a.village_sound == b.village_sound {
        2
    } else {
        3
    }
}

fn region_level(a: &str, b: &str) -> u8 {
    if a.len() != 6 || b.len() != 6 {
        0
    } else if a == b {
        1
    } else if a[..4] == b[..4] {
        2
    } else if a[..2] == b[..2] {
        3
    } else {
        4
    }
}

/// Compares two normalised records field by field.
pub fn compare(a: &Normalised, b: &Normalised) -> Comparison {
    [
        name_level(a, b),
        same_or_different(
            a.resident_id.as_ref().map(|i| i.as_str()),
            b.resident_id.as_ref().map(|i| i.as_str()),
        ),
        birth_level(a, b),
        same_or_different(a.male, b.male),
        region_level(&a.region, &b.region),
        village_level(a, b),
        same_or_different(text(&a.phone), text(&b.phone)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::Written;

    fn person(name: &str, birth: &str) -> Normalised {
        Normalised::from_written(&Written {
            name,
            birth_date: birth,
            region_code: "522701",
            ..Written::default()
        })
    }

    #[test]
    fn name_levels_from_exact_to_different() {
        let base = person("张伟", "");
        let level = |other: &str| compare(&base, &person(other, ""))[0];
        assert_eq!(
            level("張偉"),
            name_level::EXACT,
            "traditional forms are the same name"
        );
        assert_eq!(level("章伟"), name_level::PINYIN);
        assert_eq!(
            compare(&person("王家飞", ""), &person("王祖飞", ""))[0],
            name_level::ONE_OFF,
            "家 and 祖 share only a rare reading"
        );
        assert_eq!(
            compare(&person("单丽", ""), &person("善丽", ""))[0],
            name_level::PINYIN,
            "单 read as the surname Shan"
        );
        assert_eq!(level("张"), name_level::ONE_OFF);
        assert_eq!(level("张伟明"), name_level::ONE_OFF);
        assert_eq!(level("李娜"), name_level::DIFFERENT);
        let nick = |a: &str, b: &str| compare(&person(a, ""), &person(b, ""))[0];
        assert_eq!(nick("阿涵", "张梦涵"), name_level::NICKNAME);
        assert_eq!(nick("孙刚", "小刚"), name_level::NICKNAME);
        assert_eq!(nick("阿牛", "马海阿牛"), name_level::NICKNAME);
        assert_eq!(nick("阿涵", "张梦琪"), name_level::DIFFERENT);
        assert_eq!(
            compare(&person("王己", ""), &person("王已", ""))[0],
            name_level::LOOK_ALIKE
        );
        assert_eq!(compare(&base, &person("", ""))[0], 0);
    }

    #[test]
    fn dates_regions_and_missing_values() {
        let a = person("张伟", "1980-03-05");
        assert_eq!(compare(&a, &person("张伟", "1980-05-03"))[2], 2);
        assert_eq!(compare(&a, &person("张伟", "1980-03-15"))[2], 3);
        assert_eq!(
            compare(&a, &person("张伟", "1980-30-05"))[2],
            0,
            "not a date"
        );
        assert_eq!(compare(&a, &person("张伟", "1980-01-01"))[2], 4);
        assert_eq!(compare(&a, &person("张伟", "1980-11-05"))[2], 5);
        assert_eq!(compare(&a, &person("张伟", "1979-11-25"))[2], 6);
        assert_eq!(compare(&a, &person("张伟", "1990-03-15"))[2], 7);
        assert_eq!(
            compare(&a, &person("张伟", "1908-03-05"))[2],
            3,
            "digits swapped"
        );
        let mut estimated = person("张伟", "1980-07-01");
        estimated.birth_estimated = true;
        assert_eq!(compare(&a, &estimated)[2], 4);
        assert_eq!(compare(&a, &person("张伟", ""))[2], 0);
        let village = |name: &str| {
            Normalised::from_written(&Written {
                name: "张伟",
                village: name,
                ..Written::default()
            })
        };
        let level = |x: &str, y: &str| compare(&village(x), &village(y))[5];
        assert_eq!(level("太平村", "太平"), 1);
        assert_eq!(level("太平村", "太苹村"), 2, "written with a homophone");
        assert_eq!(
            level("新村", "星村"),
            2,
            "-in and -ing sound alike in the south-west"
        );
        assert_eq!(level("新村", "兴华村"), 3);
        assert_eq!(level("太平村", "大寨村"), 3);
        assert_eq!(level("太平村", ""), 0);
        assert_eq!(region_level("522701", "522702"), 2);
        assert_eq!(region_level("522701", "520101"), 3);
        assert_eq!(region_level("522701", "110105"), 4);
        assert_eq!(region_level("522701", ""), 0);
    }
}
