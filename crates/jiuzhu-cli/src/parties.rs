//! `jiuzhu gen parties`: case parties drawn from a generated registry file, written the way case
//! files really hold them — ids often missing or mistyped, names in traditional forms, with
//! homophones or look-alike characters, dates swapped or approximate — plus parties who are not
//! in the registry at all (some of them relatives of registry persons, with similar names in the
//! same village). The `true_person_id` column is the ground truth for evaluating linkage.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{Datelike, Days, NaiveDate};
use jiuzhu_linkage::normalise::{look_alikes, traditional};

use crate::generate::Rng;

/// Groups of characters read alike (同音字) that given names mix up.
const HOMOPHONES: [&str; 30] = [
    "伟玮炜维",
    "丽莉立力",
    "军君钧均",
    "华化桦",
    "静婧敬晶",
    "芳方放",
    "英瑛鹰",
    "红宏洪虹",
    "强墙蔷",
    "明铭鸣",
    "平萍苹",
    "秀绣",
    "霞侠",
    "燕艳雁",
    "兰岚蓝",
    "玲琳林灵",
    "娟涓鹃",
    "勇永涌",
    "杰洁捷",
    "涛滔韬",
    "斌彬宾",
    "刚钢纲",
    "辉晖徽",
    "峰锋丰",
    "梅玫媒",
    "琴勤芹",
    "云芸昀",
    "文雯闻",
    "建健剑",
    "敏闽",
];

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Noise {
    /// 20% without id, few name and date errors.
    Low,
    /// 45% without id, homophones, look-alikes, traditional forms, wrong dates.
    Realistic,
    /// 70% without id and twice the errors.
    High,
}

/// Per-thousand rates of each kind of error.
struct Rates {
    no_id: u64,
    bad_id: u64,
    traditional: u64,
    homophone: u64,
    look_alike: u64,
    dropped_char: u64,
    date_swapped: u64,
    date_off: u64,
    no_date: u64,
    outsiders: u64,
}

impl Noise {
    fn rates(self) -> Rates {
        let (no_id, scale) = match self {
            Self::Low => (200, 1),
            Self::Realistic => (450, 2),
            Self::High => (700, 4),
        };
        Rates {
            no_id,
            bad_id: 15 * scale,
            traditional: 30 * scale,
            homophone: 30 * scale,
            look_alike: 10 * scale,
            dropped_char: 10 * scale,
            date_swapped: 15 * scale,
            date_off: 20 * scale,
            no_date: 40 * scale,
            outsiders: 150,
        }
    }
}

struct Person {
    id: String,
    name: String,
    gender: String,
    birth_date: String,
    resident_id: String,
    region: String,
    township: String,
    village: String,
    phone: String,
}

fn read_registry(path: &Path) -> anyhow::Result<Vec<Person>> {
    let mut csv =
        csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let headers = csv.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let columns = [
        column("source_record_id")?,
        column("full_name")?,
        column("gender")?,
        column("birth_date")?,
        column("resident_id")?,
        column("region_code")?,
        column("township")?,
        column("village")?,
        column("phone")?,
    ];
    let mut persons = Vec::new();
    for row in csv.records() {
        let row = row?;
        let get = |i: usize| row.get(columns[i]).unwrap_or("").to_owned();
        persons.push(Person {
            id: get(0),
            name: get(1),
            gender: get(2),
            birth_date: get(3),
            resident_id: get(4),
            region: get(5),
            township: get(6),
            village: get(7),
            phone: get(8),
        });
    }
    Ok(persons)
}

fn homophone(rng: &mut Rng, c: char) -> Option<char> {
    let group: Vec<char> = HOMOPHONES.iter().find(|g| g.contains(c))?.chars().collect();
    let others: Vec<char> = group.into_iter().filter(|o| *o != c).collect();
    (!others.is_empty()).then(|| *rng.pick(&others))
}

/// The name as a case file might hold it.
fn noisy_name(rng: &mut Rng, rates: &Rates, name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    if chars.len() < 2 {
        return name.to_owned();
    }
    let given = 1 + usize::try_from(rng.below(chars.len() as u64 - 1)).unwrap_or(0);
    if rng.chance(rates.homophone)
        && let Some(c) = homophone(rng, chars[given])
    {
        chars[given] = c;
    }
    if rng.chance(rates.look_alike) {
        let alikes = look_alikes(chars[given]);
        if !alikes.is_empty() {
            chars[given] = *rng.pick(&alikes);
        }
    }
    if rng.chance(rates.traditional) {
        for c in &mut chars {
            if let Some(t) = traditional(*c) {
                *c = t;
            }
        }
    }
    if chars.len() > 2 && rng.chance(rates.dropped_char) {
        chars.remove(given);
    }
    chars.into_iter().collect()
}

fn noisy_date(rng: &mut Rng, rates: &Rates, text: &str) -> String {
    let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
        return String::new();
    };
    if rng.chance(rates.no_date) {
        return String::new();
    }
    let date = if rng.chance(rates.date_swapped) {
        NaiveDate::from_ymd_opt(date.year(), date.day(), date.month()).unwrap_or(date)
    } else if rng.chance(rates.date_off) {
        date.checked_add_days(Days::new(1 + rng.below(200)))
            .unwrap_or(date)
    } else {
        date
    };
    // Case files write dates several ways.
    match rng.below(3) {
        0 => date.format("%Y-%m-%d").to_string(),
        1 => date.format("%Y年%m月%d日").to_string(),
        _ => date.format("%Y%m%d").to_string(),
    }
}

fn mistyped(rng: &mut Rng, id: &str) -> String {
    let mut digits: Vec<char> = id.chars().collect();
    let at = usize::try_from(rng.below(17)).unwrap_or(0);
    if let Some(d) = digits.get_mut(at).and_then(|c| c.to_digit(10)) {
        digits[at] = char::from_digit((d + 1) % 10, 10).unwrap_or('0');
    }
    digits.into_iter().collect()
}

pub fn write_parties(
    registry: &Path,
    parties: u64,
    noise: Noise,
    seed: u64,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let persons = read_registry(registry)?;
    anyhow::ensure!(!persons.is_empty(), "{}: no persons", registry.display());
    let rates = noise.rates();
    let mut rng = Rng(seed ^ 0x005e_ed0f_9a27);
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut csv = csv::Writer::from_writer(&mut sink);
    csv.write_record([
        "party_id",
        "case_no",
        "name",
        "id_number",
        "gender",
        "birth_date",
        "phone",
        "region_code",
        "address",
        "role",
        "true_person_id",
    ])?;
    for n in 0..parties {
        let person = rng.pick(&persons);
        let outsider = rng.chance(rates.outsiders);
        let (name, truth, birth, id) = if outsider {
            // A relative or neighbour who is not in the registry: same surname and village,
            // a similar given name, another birth date, no id of theirs in the file.
            let mut name: Vec<char> = person.name.chars().collect();
            if let Some(last) = name.last_mut() {
                *last = homophone(&mut rng, *last).unwrap_or('华');
            }
            let birth = NaiveDate::parse_from_str(&person.birth_date, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.checked_sub_days(Days::new(400 + rng.below(9000))))
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            (
                name.into_iter().collect(),
                String::new(),
                birth,
                String::new(),
            )
        } else {
            let id = if rng.chance(rates.no_id) {
                String::new()
            } else if rng.chance(rates.bad_id) {
                mistyped(&mut rng, &person.resident_id)
            } else {
                person.resident_id.clone()
            };
            (
                noisy_name(&mut rng, &rates, &person.name),
                person.id.clone(),
                noisy_date(&mut rng, &rates, &person.birth_date),
                id,
            )
        };
        let address = if rng.chance(700) {
            format!(
                "{}{}{}号",
                person.township,
                person.village,
                1 + rng.below(300)
            )
        } else {
            String::new()
        };
        let phone = if rng.chance(300) && !outsider {
            person.phone.clone()
        } else {
            String::new()
        };
        let gender = if rng.chance(900) {
            person.gender.clone()
        } else {
            String::new()
        };
        let region = if rng.chance(900) {
            person.region.clone()
        } else {
            String::new()
        };
        csv.write_record([
            format!("Q{seed}-{n:07}"),
            format!(
                "({}){}刑初{}号",
                2020 + rng.below(6),
                person.region,
                1 + rng.below(900)
            ),
            name,
            id,
            gender,
            birth,
            phone,
            region,
            address,
            (*rng.pick(&["victim", "victim", "victim", "dependant", "witness"])).to_owned(),
            truth,
        ])?;
    }
    csv.flush()?;
    Ok(())
}
