//! Turning what people wrote into comparable values: full-width to half-width, traditional to
//! simplified, pinyin readings (every reading of a polyphonic character), look-alike groups,
//! resident ids (validated, 15 digits upgraded), the ways dates are written, and regions.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use jiuzhu_identity::{ResidentId, Sex, parse_written_date};
use pinyin::ToPinyinMulti;

static TRADITIONAL: LazyLock<HashMap<char, char>> = LazyLock::new(|| {
    include_str!("../data/t2s.tsv")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut chars = line.split('\t').filter_map(|c| c.chars().next());
            Some((chars.next()?, chars.next()?))
        })
        .collect()
});

/// Each character's look-alike group numbers.
static LOOK_ALIKE: LazyLock<HashMap<char, Vec<u16>>> = LazyLock::new(|| {
    let mut groups: HashMap<char, Vec<u16>> = HashMap::new();
    let lines = include_str!("../data/lookalike.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty());
    for (group, line) in lines.enumerate() {
        for c in line.trim().chars() {
            groups
                .entry(c)
                .or_default()
                .push(u16::try_from(group).unwrap_or(u16::MAX));
        }
    }
    groups
});

/// Full-width forms (ＡＢＣ１２３, the ideographic space) to their ASCII counterparts.
pub fn half_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// A traditional form of a simplified character, where the shipped table has one.
pub fn traditional(c: char) -> Option<char> {
    TRADITIONAL
        .iter()
        .filter(|(_, s)| **s == c)
        .map(|(t, _)| *t)
        .min()
}

/// Other characters of the look-alike groups `c` belongs to.
pub fn look_alikes(c: char) -> Vec<char> {
    let Some(groups) = LOOK_ALIKE.get(&c) else {
        return Vec::new();
    };
    let mut found: Vec<char> = LOOK_ALIKE
        .iter()
        .filter(|(other, g)| **other != c && g.iter().any(|x| groups.contains(x)))
        .map(|(other, _)| *other)
        .collect();
    found.sort_unstable();
    found
}

pub fn simplified(c: char) -> char {
    TRADITIONAL.get(&c).copied().unwrap_or(c)
}

/// A name as compared: half-width, simplified, without spaces and the separator dots of
/// minority and foreign names (·•.), ASCII letters upper-cased.
pub fn name(raw: &str) -> String {
    raw.chars()
        .map(half_width)
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '.' | '・'))
        .map(|c| simplified(c).to_ascii_uppercase())
        .collect()
}

/// Every plain reading of each character (a character without one reads as itself).
pub fn readings(name: &str) -> Vec<Vec<&'static str>> {
    name.chars()
        .zip(name.to_pinyin_multi())
        .map(|(c, multi)| match multi {
            Some(multi) => {
                let mut found: Vec<&'static str> = multi.into_iter().map(|p| p.plain()).collect();
                found.dedup();
                found
            }
            None => vec![ascii_reading(c)],
        })
        .collect()
}

fn ascii_reading(c: char) -> &'static str {
    const LETTERS: [&str; 36] = [
        "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R",
        "S", "T", "U", "V", "W", "X", "Y", "Z", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    ];
    match c {
        'A'..='Z' => LETTERS[(c as u8 - b'A') as usize],
        '0'..='9' => LETTERS[26 + (c as u8 - b'0') as usize],
        _ => "?",
    }
}

/// The first reading of each character, joined: a blocking key that homophones share.
pub fn pinyin_key(readings: &[Vec<&'static str>]) -> String {
    readings
        .iter()
        .map(|r| r.first().copied().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join("")
}

pub fn look_alike(a: char, b: char) -> bool {
    match (LOOK_ALIKE.get(&a), LOOK_ALIKE.get(&b)) {
        (Some(x), Some(y)) => x.iter().any(|g| y.contains(g)),
        _ => false,
    }
}

/// Digits only; a leading +86 or 86 country code dropped.
pub fn phone(raw: &str) -> String {
    let digits: String = raw
        .chars()
        .map(half_width)
        .filter(char::is_ascii_digit)
        .collect();
    match digits.strip_prefix("86") {
        Some(rest) if rest.len() == 11 => rest.to_owned(),
        _ => digits,
    }
}

/// A birth date as people write it, or from an ID-like text; `None` when unreadable.
pub fn date(raw: &str) -> Option<NaiveDate> {
    let text: String = raw.chars().map(half_width).collect();
    parse_written_date(&text)
}

/// A birth year written alone ("1954", "1954年"): case files often know no more.
pub fn year_only(raw: &str) -> Option<i32> {
    let text: String = raw.chars().map(half_width).collect();
    let text = text.trim();
    let digits = text.strip_suffix('年').unwrap_or(text);
    (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|year| (1880..=2200).contains(year))
}

/// A valid resident id (check character right, 15 digits upgraded); `None` otherwise.
pub fn resident_id(raw: &str) -> Option<ResidentId> {
    let text: String = raw
        .chars()
        .map(half_width)
        .filter(|c| !c.is_whitespace())
        .collect();
    ResidentId::parse(&text).ok()
}

/// A six-digit region code; an address's leading code where one is written.
pub fn region(raw: &str) -> String {
    let digits: String = raw
        .chars()
        .map(half_width)
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.len() >= 6 {
        digits[..6].to_owned()
    } else {
        String::new()
    }
}

/// Village or township text as compared: half-width, simplified, without spaces and without
/// the generic suffixes people add or drop (村, 村委会, 寨, 组, 乡, 镇, 街道).
pub fn place(raw: &str) -> String {
    let text: String = raw
        .chars()
        .map(half_width)
        .filter(|c| !c.is_whitespace())
        .map(simplified)
        .collect();
    for suffix in [
        "村民委员会",
        "村委会",
        "街道办事处",
        "街道",
        "村",
        "乡",
        "镇",
    ] {
        if let Some(stem) = text.strip_suffix(suffix)
            && !stem.is_empty()
        {
            return stem.to_owned();
        }
    }
    text
}

/// The village named in a free-text address ("…沙包堡街道新场村12号" → "新场"): the stretch
/// before the last 村 after the last township-level or higher unit; without a 村, the stretch
/// ending in 寨 (a 寨 is often the village's own name, "大寨"). A group (组) inside the village
/// is not the village.
pub fn village_from_address(address: &str) -> String {
    let text: String = address.chars().map(half_width).map(simplified).collect();
    let end = match (text.rfind('村'), text.rfind('寨')) {
        (Some(at), _) => at,
        (None, Some(at)) => at + '寨'.len_utf8(),
        (None, None) => return village_after_township(&text),
    };
    let head = &text[..end];
    let start = ["街道", "镇", "乡", "县", "市", "区", "州", "省"]
        .iter()
        .filter_map(|unit| head.rfind(unit).map(|i| i + unit.len()))
        .max()
        .unwrap_or(0);
    let start = head[start..]
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && !c.is_whitespace())
        .map_or(head.len(), |(i, _)| start + i);
    place(&head[start..])
}

/// A village written without 村 right after its township ("坪坝镇联合", "羊场乡朱家岭3组"):
/// the name up to a group, a number or the end, when it is a short name.
fn village_after_township(text: &str) -> String {
    let Some(start) = ["街道", "镇", "乡"]
        .iter()
        .filter_map(|unit| text.rfind(unit).map(|i| i + unit.len()))
        .max()
    else {
        return String::new();
    };
    let rest = &text[start..];
    let mut name: String = rest
        .chars()
        .take_while(|c| !c.is_ascii_digit() && !c.is_whitespace() && *c != '号')
        .collect();
    // "…朱家岭十一组": the group and its number are not the village.
    if let Some(at) = name.find('组') {
        name.truncate(at);
        while name.ends_with(|c: char| "一二三四五六七八九十".contains(c)) {
            name.pop();
        }
    }
    match name.chars().count() {
        2..=4 => place(&name),
        _ => String::new(),
    }
}

/// A person's or a party's record after normalisation.
#[derive(Debug, Clone, Default)]
pub struct Normalised {
    pub name: String,
    pub readings: Vec<Vec<&'static str>>,
    pub resident_id: Option<ResidentId>,
    pub birth_date: Option<NaiveDate>,
    pub male: Option<bool>,
    pub phone: String,
    pub region: String,
    pub township: String,
    pub village: String,
    /// How the village name sounds (a digest of its first readings; 0 when there is none):
    /// villages are written with homophones as often as names are (太平/太苹, 新寨/兴寨).
    pub village_sound: u64,
    /// The registry household the person belongs to, as a digest of its reference (0: not
    /// known, and always 0 for a party): a case's victim and relatives are often one household.
    pub household: u64,
    /// The birth date is an estimate (from an approximate age): only its year says anything.
    pub birth_estimated: bool,
    /// What the resident id filled in because the record did not say it (see
    /// [`Normalised::without_id`]).
    pub from_id: FromId,
}

/// Fields a record left empty that its resident id supplied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FromId {
    pub birth_date: bool,
    /// The year the record wrote alone, where the id's date stood in for it.
    pub written_year: Option<NaiveDate>,
    pub male: bool,
    pub region: bool,
}

/// A digest of a text's pinyin (first reading of each character); 0 for an empty text. A
/// digest, not the text: the registry holds millions of villages in memory.
fn sound_of(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    digest(
        &readings(text)
            .iter()
            .map(|r| fuzzy(r.first().copied().unwrap_or("?")))
            .collect::<String>(),
    )
}

/// A registry household reference as the index keeps it (0 for none): 8 bytes a person
/// instead of the reference's text.
pub fn household(reference: &str) -> u64 {
    match reference.trim() {
        "" => 0,
        reference => digest(reference),
    }
}

/// A stable 64-bit digest of a text (FNV-1a), never 0 (0 stands for "none").
pub fn digest(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        .max(1)
}

/// A syllable as the south-west hears it: zh/ch/sh as z/c/s, n as l, -ing/-eng as -in/-en
/// (模糊音), so that 星村 and 新村 sound alike.
fn fuzzy(syllable: &str) -> String {
    let mut sound = syllable.to_owned();
    for (retroflex, flat) in [("zh", "z"), ("ch", "c"), ("sh", "s")] {
        if let Some(rest) = sound.strip_prefix(retroflex) {
            sound = format!("{flat}{rest}");
        }
    }
    if let Some(rest) = sound.strip_prefix('n') {
        sound = format!("l{rest}");
    }
    for (back, front) in [("ing", "in"), ("eng", "en")] {
        if let Some(stem) = sound.strip_suffix(back) {
            sound = format!("{stem}{front}");
        }
    }
    sound
}

/// A record as written, before normalisation.
#[derive(Debug, Clone, Default)]
pub struct Written<'a> {
    pub name: &'a str,
    pub resident_id: &'a str,
    /// "male"/"female"/男/女/M/F/1/2, or empty.
    pub gender: &'a str,
    pub birth_date: &'a str,
    pub phone: &'a str,
    pub region_code: &'a str,
    pub township: &'a str,
    pub village: &'a str,
}

pub fn gender(raw: &str) -> Option<bool> {
    // As case systems write it, and as the registry's `Gender` enum names it.
    match raw.trim().to_ascii_lowercase().as_str() {
        "male" | "m" | "男" | "1" | "gender_male" => Some(true),
        "female" | "f" | "女" | "2" | "gender_female" => Some(false),
        _ => None,
    }
}

impl Normalised {
    /// Normalises a record. What the resident id says fills a missing birth date, gender and
    /// region, since an id is more often right than a typed date.
    pub fn from_written(written: &Written<'_>) -> Self {
        let name = name(written.name);
        let resident_id = resident_id(written.resident_id);
        let written_date = date(written.birth_date);
        // A year alone stands as mid-year, marked as an estimate: only its year is compared.
        // The id's full date is preferred to it.
        let written_year = written_date
            .is_none()
            .then(|| year_only(written.birth_date))
            .flatten()
            .and_then(|year| NaiveDate::from_ymd_opt(year, 7, 1));
        // A year alone yields to the id's date of that year; an id of another year is not the
        // party's own (a relative's, a typo) and yields to the written year.
        let id_date = resident_id
            .as_ref()
            .map(ResidentId::birth_date)
            .filter(|date| written_year.is_none_or(|year| year.year() == date.year()));
        let written_gender = gender(written.gender);
        let mut region = region(written.region_code);
        let from_id = FromId {
            birth_date: written_date.is_none() && id_date.is_some(),
            written_year,
            male: written_gender.is_none() && resident_id.is_some(),
            region: region.is_empty() && resident_id.is_some(),
        };
        let birth_date = written_date.or(id_date).or(written_year);
        let male =
            written_gender.or_else(|| resident_id.as_ref().map(|id| matches!(id.sex(), Sex::Male)));
        if region.is_empty()
            && let Some(id) = &resident_id
        {
            region = id.region_code().to_owned();
        }
        Self {
            birth_estimated: written_date.is_none() && id_date.is_none() && written_year.is_some(),
            from_id,
            readings: readings(&name),
            name,
            resident_id,
            birth_date,
            male,
            phone: phone(written.phone),
            region,
            township: place(written.township),
            village_sound: sound_of(&place(written.village)),
            village: place(written.village),
            household: 0,
        }
    }

    /// The record as it would be had it carried no resident id: what the id filled in is
    /// taken out again. Records with an id are the labelled ones (a shared id says "same
    /// person"); scoring them this way shows how the records without one fare.
    pub fn without_id(&self) -> Self {
        let mut record = self.clone();
        record.resident_id = None;
        if self.from_id.birth_date {
            record.birth_date = self.from_id.written_year;
            record.birth_estimated = record.birth_date.is_some();
        }
        if self.from_id.male {
            record.male = None;
        }
        if self.from_id.region {
            record.region.clear();
        }
        record.from_id = FromId::default();
        record
    }

    pub fn birth_year(&self) -> Option<i32> {
        self.birth_date.map(|d| d.year())
    }

    pub fn surname(&self) -> Option<char> {
        self.name.chars().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gender_is_read_as_case_systems_and_the_registry_write_it() {
        for male in ["男", "male", "M", "1", "GENDER_MALE"] {
            assert_eq!(gender(male), Some(true), "{male}");
        }
        for female in ["女", "Female", "f", "2", "GENDER_FEMALE"] {
            assert_eq!(gender(female), Some(false), "{female}");
        }
        assert_eq!(gender("GENDER_UNSPECIFIED"), None);
        assert_eq!(gender("unknown"), None);
    }

    #[test]
    fn names_compare_across_width_script_and_spacing() {
        assert_eq!(name(" 張 偉 "), "张伟");
        assert_eq!(name("ＬＩ　Ｌｅｉ"), "LILEI");
        assert_eq!(name("阿依古丽·买买提"), "阿依古丽买买提");
        assert_eq!(name("陳麗華"), "陈丽华");
    }

    #[test]
    fn polyphonic_characters_keep_every_reading() {
        let r = readings("单");
        assert!(r[0].contains(&"dan") && r[0].contains(&"shan"), "{r:?}");
        assert_eq!(pinyin_key(&readings("张伟")), "zhangwei");
        assert_eq!(pinyin_key(&readings(&name("張偉"))), "zhangwei");
    }

    #[test]
    fn look_alikes_phones_places_and_dates() {
        assert!(look_alike('己', '已'));
        assert!(!look_alike('己', '王'));
        assert_eq!(phone("+86 138-0000-0000"), "13800000000");
        assert_eq!(phone("１３８００００００００"), "13800000000");
        assert_eq!(place("新场村委会"), "新场");
        assert_eq!(place("新場村"), "新场");
        assert_eq!(
            date("１９４９年１２月３１日"),
            NaiveDate::from_ymd_opt(1949, 12, 31)
        );
        assert_eq!(region("522701 都匀市"), "522701");
        assert_eq!(
            village_from_address("贵州省都匀市沙包堡街道新场村12号"),
            "新场"
        );
        assert_eq!(village_from_address("田坝乡岩脚村210号"), "岩脚");
        assert_eq!(village_from_address("县城"), "");
        assert_eq!(
            village_from_address("贵州省罗甸县五里镇永安村4组"),
            "永安",
            "a group is inside the village"
        );
        assert_eq!(village_from_address("城关镇白果村二组65号"), "白果");
        assert_eq!(village_from_address("坪坝乡大寨5组"), "大寨");
        assert_eq!(
            village_from_address("坪坝镇联合"),
            "联合",
            "a village written without 村"
        );
        assert_eq!(village_from_address("羊场乡朱家岭3组"), "朱家岭");
        assert_eq!(village_from_address("贵州省某县城关镇"), "");
        assert_eq!(village_from_address("七星乡五里十一组"), "五里");
    }

    #[test]
    fn the_resident_id_fills_what_was_not_written() {
        let n = Normalised::from_written(&Written {
            name: "王秀英",
            resident_id: "11010519491231002X",
            ..Written::default()
        });
        assert_eq!(n.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31));
        assert!(!n.birth_estimated);
        for written in ["1954", "１９５４年", " 1954年 "] {
            let year = Normalised::from_written(&Written {
                name: "陈荣德",
                birth_date: written,
                ..Written::default()
            });
            assert_eq!(year.birth_year(), Some(1954), "{written}");
            assert!(
                year.birth_estimated,
                "{written}: a year alone is an estimate"
            );
        }
        let with_id = Normalised::from_written(&Written {
            name: "王秀英",
            resident_id: "11010519491231002X",
            birth_date: "1949年",
            ..Written::default()
        });
        assert_eq!(with_id.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31));
        assert!(!with_id.birth_estimated, "the id's date is preferred");
        let blind = with_id.without_id();
        assert_eq!(blind.birth_year(), Some(1949));
        assert!(
            blind.birth_estimated,
            "without the id only the year is left"
        );
        let relative = Normalised::from_written(&Written {
            name: "王秀英",
            resident_id: "11010519491231002X",
            birth_date: "1938年",
            ..Written::default()
        });
        assert_eq!(
            relative.birth_year(),
            Some(1938),
            "an id of another year is not hers"
        );
        assert!(relative.birth_estimated);
        assert_eq!(year_only("195"), None);
        assert_eq!(year_only("0000"), None);
        assert_eq!(n.male, Some(false));
        assert_eq!(n.region, "110105");
        let bad = Normalised::from_written(&Written {
            name: "王秀英",
            resident_id: "110105194912310021",
            ..Written::default()
        });
        assert!(
            bad.resident_id.is_none(),
            "a wrong check character is no id"
        );
    }
}
