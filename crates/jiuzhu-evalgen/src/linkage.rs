//! A second, independent generator of poverty-registry persons and case parties for judging record
//! linkage, written from the domain alone (not from the project's first generator or the linker).
//!
//! **Population.** 67 real rural counties of Guizhou (黔东南, 毕节, 黔南), Yunnan (昭通, 红河),
//! Sichuan (凉山 513428–513437), Gansu (定西, 临夏, 陇南), Guangxi (河池, 百色) and Hunan (湘西,
//! 怀化), each with 8–14 townships (Guizhou market towns 龙场/马场/羊场, 城关镇 in most counties)
//! of 7–15 villages whose names repeat across counties (新村, 大寨, 团结村, 红旗村, or the clan's
//! 王家湾村). Every village has a clan surname held by 35–85% of its households (30–70% for Yi
//! villages), a second family by a third of the rest, and an
//! eight-character generation poem (字辈); the surname mix is the national heavy head (王 李 张
//! 刘 陈 …) tilted per region (吴/杨/龙 in 黔东南 and 湘西, 韦/覃/蓝 in 河池, 马 in 临夏). In the
//! 凉山 counties 80% of villages are Yi: two-syllable family names (吉克, 阿苏, 沙马 …) with Yi given
//! names (拉且, 阿呷, 伍各 …), 12% of them registered with the separator dot (阿苏·拉且), a quarter
//! of sons taking the father's last syllable. Households hold 1–7 persons (户主, 配偶, 子, 女,
//! 儿媳, 孙子, 孙女, 父, 母); a head born before 1969 lives with grown children and
//! grandchildren, a younger one with children and parents. Clan males use the generation
//! character (80% if born before 1980, 60% before 2000, 35% after), females 15–25%; other names
//! come 45% from era lists that repeat a lot (秀英, 桂兰, 建华, 伟, 丽, 浩然, 梓涵 …). 2% of
//! births are twins (same date, paired names such as 德龙/德虎). 25% of people born before 1960
//! (6% of 1960s births) carry a hukou default date (YYYY-01-01, or 5%/2% YYYY-07-01) in the
//! registry and in their resident id, while case files may hold the true date. Married-in wives
//! carry the neighbouring county's code in their id 30% of the time. Ids are valid GB 11643 and
//! unique. Phones: 75% of households have one, adults 16–70 have their own 40% of the time; the
//! registry row shows the own phone, else the household's, else nothing (about 40% empty).
//!
//! **Parties.** Cases of a 被害人 with up to two 近亲属 (法定代理人 for a minor) from the same
//! household (40% chance each time a relative-kind party comes next). Party kinds, drawn per
//! party: 75% a registry person; 5% a person of the same name in the same village born on another
//! date; 6% an unregistered relative of a registered household (same surname and generation
//! character, same village, the household's phone shown in the registry); 2.5% the unregistered
//! twin of a registry person (same date, similar name, id differing only in the sequence; a
//! twin born into the family lives in the village with its phone half of the time, a married-in
//! wife's twin lives in her home county); 4% the same common name (a top-10 surname with an
//! era-list given name) in another county of the same kind (Han or Yi); 7.5% a local not in the
//! registry, drawn like a registry villager (the village clan and poem). A case is never dated
//! before its victim's birth, nor joined by a relative born later.
//!
//! **Noise** applies to every party alike. Name: 78% as registered, 4% traditional characters, 6% one homophone (同音字, surname 15% of those), 2.5% a look-alike
//! character, 2.5% a dropped character, 3% a nickname (小明, 阿华, 王老二, 明明), 4% a two-character
//! name padded with a space; Yi names keep the registered dot 45%, drop it 40%, write it another
//! way 15% (and add one to 17% of dotless names), then 10% a homophone syllable, 3% a dropped
//! one, 3% the given name alone, 1% traditional characters. Id: 50% missing; of the present, 68% correct, 8% one digit
//! wrong, 5% two adjacent digits transposed, 6% the old 15-digit id, 5% a household member's id,
//! 4% full-width digits, 2% the last character lost, 2% a lowercase x. Gender: 3% missing, 1%
//! wrong. Birth date: 10% missing; where the registry holds a default date the case file gives
//! the true one 60% of the time; 3% day and month swapped, 3% one digit off, 4% only the year
//! (12% born before 1950), 3% a lunar birthday written as solar (born before 1970); written
//! ISO 40%, 1980年3月5日 25%, 1980/03/05 10%, 19800305 10%, 1980.3.5 10%, 1980-3-5 5%, with
//! full-width digits 4%. Phone: 40% missing, 35% the registry's, 10% another household member's,
//! 15% a new number, 5% of the written ones formatted with dashes or +86. Region: 80% the county,
//! 8% a neighbouring county, 12% missing. Address: county/township/village text in several
//! lengths, 7% empty, 7% a workplace far away with the home village, 8% a homophone in the
//! village name.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::rc::Rc;

use chrono::{Datelike, NaiveDate};

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub persons: u64,
    pub parties: u64,
    pub registered_parties: u64,
}

/// Writes `persons` registry rows to `registry` and `parties` case parties to `parties_out`,
/// deterministically in `seed`.
pub fn write(
    persons: u64,
    parties: u64,
    seed: u64,
    registry: &Path,
    parties_out: &Path,
) -> io::Result<Summary> {
    let reg = BufWriter::with_capacity(1 << 20, File::create(registry)?);
    let par = BufWriter::with_capacity(1 << 16, File::create(parties_out)?);
    let (summary, _) = generate(persons, parties, seed, reg, par)?;
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// PRNG: splitmix64, one independent stream per purpose so that the registry does not depend on
// the number of parties asked for.

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as usize) as i32
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Only called on the static, non-empty tables below.
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// Index drawn by weights (need not sum to 1).
    fn index(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

/// A table drawn by integer weights.
#[derive(Debug)]
struct Weighted<T> {
    items: Vec<T>,
    cum: Vec<u64>,
}

impl<T: Copy> Weighted<T> {
    fn new(pairs: impl IntoIterator<Item = (T, u64)>) -> Self {
        let mut items = Vec::new();
        let mut cum = Vec::new();
        let mut total = 0;
        for (t, w) in pairs {
            if w == 0 {
                continue;
            }
            total += w;
            items.push(t);
            cum.push(total);
        }
        Weighted { items, cum }
    }

    fn draw(&self, rng: &mut Rng) -> T {
        let total = self.cum.last().copied().unwrap_or(1);
        let x = ((u128::from(rng.next_u64()) * u128::from(total)) >> 64) as u64;
        let i = self.cum.partition_point(|&c| c <= x);
        self.items[i.min(self.items.len() - 1)]
    }
}

/// Zipf-like weights (flattened: the top name of a cohort is a few per cent of it) for a list
/// ordered from the most common.
fn zipf(list: &'static [&'static str]) -> Weighted<&'static str> {
    Weighted::new(
        list.iter()
            .enumerate()
            .map(|(i, s)| (*s, 1000 / (i as u64 + 10))),
    )
}

// ---------------------------------------------------------------------------------------------
// Geography.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Han,
    Bijie,
    MiaoDong,
    Zhuang,
    Hani,
    Yi,
    Hui,
    Gansu,
}

const FLAVORS: [Flavor; 8] = [
    Flavor::Han,
    Flavor::Bijie,
    Flavor::MiaoDong,
    Flavor::Zhuang,
    Flavor::Hani,
    Flavor::Yi,
    Flavor::Hui,
    Flavor::Gansu,
];

#[derive(Debug)]
struct County {
    code: u32,
    name: &'static str,
    pref: &'static str,
    prov: &'static str,
    abbr: &'static str,
    flavor: Flavor,
    /// Relative size of its registered poor population.
    weight: u64,
}

const fn c(
    code: u32,
    name: &'static str,
    pref: &'static str,
    prov: &'static str,
    abbr: &'static str,
    flavor: Flavor,
    weight: u64,
) -> County {
    County {
        code,
        name,
        pref,
        prov,
        abbr,
        flavor,
        weight,
    }
}

const GZ: &str = "贵州省";
const YN: &str = "云南省";
const SC: &str = "四川省";
const GS: &str = "甘肃省";
const GX: &str = "广西壮族自治区";
const HN: &str = "湖南省";
const QDN: &str = "黔东南苗族侗族自治州";
const BJ: &str = "毕节市";
const QN: &str = "黔南布依族苗族自治州";
const ZT: &str = "昭通市";
const HH: &str = "红河哈尼族彝族自治州";
const LS: &str = "凉山彝族自治州";
const DX: &str = "定西市";
const LX: &str = "临夏回族自治州";
const LN: &str = "陇南市";
const HC: &str = "河池市";
const BS: &str = "百色市";
const XX: &str = "湘西土家族苗族自治州";
const HHUA: &str = "怀化市";

/// Listed in geographic order within each prefecture: list neighbours stand in for neighbouring
/// counties.
#[rustfmt::skip]
const COUNTIES: &[County] = &[
    c(522622, "黄平县", QDN, GZ, "黔", Flavor::MiaoDong, 14),
    c(522623, "施秉县", QDN, GZ, "黔", Flavor::MiaoDong, 8),
    c(522625, "镇远县", QDN, GZ, "黔", Flavor::MiaoDong, 10),
    c(522624, "三穗县", QDN, GZ, "黔", Flavor::MiaoDong, 8),
    c(522627, "天柱县", QDN, GZ, "黔", Flavor::MiaoDong, 12),
    c(522628, "锦屏县", QDN, GZ, "黔", Flavor::MiaoDong, 8),
    c(522631, "黎平县", QDN, GZ, "黔", Flavor::MiaoDong, 18),
    c(522633, "从江县", QDN, GZ, "黔", Flavor::MiaoDong, 16),
    c(522632, "榕江县", QDN, GZ, "黔", Flavor::MiaoDong, 14),
    c(522629, "剑河县", QDN, GZ, "黔", Flavor::MiaoDong, 10),
    c(522630, "台江县", QDN, GZ, "黔", Flavor::MiaoDong, 8),
    c(522634, "雷山县", QDN, GZ, "黔", Flavor::MiaoDong, 8),
    c(522636, "丹寨县", QDN, GZ, "黔", Flavor::MiaoDong, 7),
    c(520524, "织金县", BJ, GZ, "黔", Flavor::Bijie, 24),
    c(520525, "纳雍县", BJ, GZ, "黔", Flavor::Bijie, 22),
    c(520527, "赫章县", BJ, GZ, "黔", Flavor::Bijie, 22),
    c(520526, "威宁彝族回族苗族自治县", BJ, GZ, "黔", Flavor::Bijie, 30),
    c(522729, "长顺县", QN, GZ, "黔", Flavor::Han, 8),
    c(522727, "平塘县", QN, GZ, "黔", Flavor::Han, 9),
    c(522728, "罗甸县", QN, GZ, "黔", Flavor::Han, 10),
    c(530621, "鲁甸县", ZT, YN, "滇", Flavor::Han, 14),
    c(530622, "巧家县", ZT, YN, "滇", Flavor::Han, 16),
    c(530624, "大关县", ZT, YN, "滇", Flavor::Han, 10),
    c(530628, "彝良县", ZT, YN, "滇", Flavor::Han, 18),
    c(530627, "镇雄县", ZT, YN, "滇", Flavor::Han, 34),
    c(530625, "永善县", ZT, YN, "滇", Flavor::Han, 14),
    c(532528, "元阳县", HH, YN, "滇", Flavor::Hani, 14),
    c(532529, "红河县", HH, YN, "滇", Flavor::Hani, 12),
    c(532531, "绿春县", HH, YN, "滇", Flavor::Hani, 10),
    c(532530, "金平苗族瑶族傣族自治县", HH, YN, "滇", Flavor::Hani, 12),
    c(513427, "宁南县", LS, SC, "川", Flavor::Han, 6),
    c(513428, "普格县", LS, SC, "川", Flavor::Yi, 10),
    c(513429, "布拖县", LS, SC, "川", Flavor::Yi, 12),
    c(513430, "金阳县", LS, SC, "川", Flavor::Yi, 12),
    c(513431, "昭觉县", LS, SC, "川", Flavor::Yi, 20),
    c(513436, "美姑县", LS, SC, "川", Flavor::Yi, 18),
    c(513437, "雷波县", LS, SC, "川", Flavor::Yi, 14),
    c(513432, "喜德县", LS, SC, "川", Flavor::Yi, 12),
    c(513434, "越西县", LS, SC, "川", Flavor::Yi, 16),
    c(513435, "甘洛县", LS, SC, "川", Flavor::Yi, 12),
    c(621121, "通渭县", DX, GS, "甘", Flavor::Gansu, 16),
    c(621123, "渭源县", DX, GS, "甘", Flavor::Gansu, 12),
    c(621125, "漳县", DX, GS, "甘", Flavor::Gansu, 8),
    c(621126, "岷县", DX, GS, "甘", Flavor::Gansu, 14),
    c(622925, "和政县", LX, GS, "甘", Flavor::Hui, 8),
    c(622926, "东乡族自治县", LX, GS, "甘", Flavor::Hui, 14),
    c(622921, "临夏县", LX, GS, "甘", Flavor::Hui, 12),
    c(622927, "积石山保安族东乡族撒拉族自治县", LX, GS, "甘", Flavor::Hui, 10),
    c(621223, "宕昌县", LN, GS, "甘", Flavor::Gansu, 12),
    c(621226, "礼县", LN, GS, "甘", Flavor::Gansu, 18),
    c(621225, "西和县", LN, GS, "甘", Flavor::Gansu, 14),
    c(451223, "凤山县", HC, GX, "桂", Flavor::Zhuang, 8),
    c(451224, "东兰县", HC, GX, "桂", Flavor::Zhuang, 10),
    c(451227, "巴马瑶族自治县", HC, GX, "桂", Flavor::Zhuang, 10),
    c(451228, "都安瑶族自治县", HC, GX, "桂", Flavor::Zhuang, 20),
    c(451229, "大化瑶族自治县", HC, GX, "桂", Flavor::Zhuang, 14),
    c(451027, "凌云县", BS, GX, "桂", Flavor::Zhuang, 8),
    c(451028, "乐业县", BS, GX, "桂", Flavor::Zhuang, 7),
    c(451031, "隆林各族自治县", BS, GX, "桂", Flavor::Zhuang, 12),
    c(433123, "凤凰县", XX, HN, "湘", Flavor::MiaoDong, 10),
    c(433124, "花垣县", XX, HN, "湘", Flavor::MiaoDong, 9),
    c(433125, "保靖县", XX, HN, "湘", Flavor::MiaoDong, 8),
    c(433126, "古丈县", XX, HN, "湘", Flavor::MiaoDong, 5),
    c(433127, "永顺县", XX, HN, "湘", Flavor::MiaoDong, 12),
    c(433130, "龙山县", XX, HN, "湘", Flavor::MiaoDong, 12),
    c(431226, "麻阳苗族自治县", HHUA, HN, "湘", Flavor::MiaoDong, 8),
    c(431224, "溆浦县", HHUA, HN, "湘", Flavor::Han, 14),
];

/// Approximate national surname frequencies (per 10,000), heavy head first.
#[rustfmt::skip]
const SURNAMES: &[(&str, u64)] = &[
    ("王", 710), ("李", 700), ("张", 670), ("刘", 540), ("陈", 460), ("杨", 310), ("黄", 250),
    ("赵", 230), ("吴", 200), ("周", 190), ("徐", 150), ("孙", 140), ("马", 130), ("朱", 120),
    ("胡", 110), ("郭", 110), ("何", 110), ("林", 100), ("罗", 90), ("高", 90), ("郑", 80),
    ("梁", 80), ("谢", 70), ("宋", 60), ("唐", 60), ("许", 60), ("韩", 60), ("冯", 50), ("邓", 50),
    ("曹", 50), ("彭", 50), ("曾", 50), ("肖", 50), ("田", 50), ("董", 40), ("潘", 40), ("袁", 40),
    ("蔡", 40), ("蒋", 40), ("余", 40), ("于", 40), ("杜", 40), ("叶", 40), ("程", 40), ("魏", 40),
    ("苏", 30), ("吕", 30), ("丁", 30), ("任", 30), ("卢", 30), ("姚", 30), ("沈", 30), ("钟", 30),
    ("姜", 30), ("崔", 30), ("谭", 30), ("陆", 30), ("范", 20), ("汪", 20), ("廖", 20), ("石", 20),
    ("金", 20), ("韦", 20), ("贾", 20), ("夏", 20), ("付", 20), ("方", 20), ("邹", 20), ("熊", 20),
    ("白", 20), ("孟", 20), ("秦", 20), ("邱", 20), ("侯", 20), ("江", 20), ("尹", 20), ("薛", 20),
    ("闫", 20), ("段", 20), ("雷", 20), ("龙", 20), ("黎", 20), ("史", 20), ("陶", 20), ("贺", 20),
    ("毛", 20), ("郝", 20), ("顾", 10), ("龚", 10), ("邵", 10), ("万", 10), ("覃", 10), ("武", 10),
    ("钱", 10), ("戴", 10), ("严", 10), ("欧", 10), ("莫", 10), ("孔", 10), ("向", 10), ("常", 10),
    ("汤", 10), ("康", 10), ("易", 10), ("乔", 10), ("赖", 10), ("文", 10), ("施", 10), ("洪", 10),
    ("牛", 10), ("包", 10), ("安", 5), ("禄", 3), ("麻", 3), ("滕", 3), ("蓝", 3), ("蒙", 3),
    ("班", 2), ("农", 2), ("邰", 2), ("妥", 2), ("普", 2), ("舒", 5), ("岳", 5), ("葛", 5),
];

/// The top ten surnames: with an era-list given name, the name is "common".
const TOP_SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];

/// Regional tilt added to the national weights.
#[rustfmt::skip]
fn flavor_boost(f: Flavor) -> &'static [(&'static str, u64)] {
    match f {
        Flavor::Han => &[
            ("罗", 60), ("王", 100), ("陈", 80),
        ],
        Flavor::Bijie => &[
            ("陈", 200), ("王", 100), ("李", 100), ("龙", 60), ("安", 60), ("禄", 40), ("朱", 60),
            ("罗", 80),
        ],
        Flavor::MiaoDong => &[
            ("吴", 600), ("杨", 500), ("龙", 300), ("石", 250), ("潘", 200), ("田", 200),
            ("彭", 150), ("向", 150), ("麻", 120), ("欧", 80), ("邰", 60), ("滕", 60), ("姚", 60),
            ("张", 60),
        ],
        Flavor::Zhuang => &[
            ("韦", 600), ("覃", 400), ("黄", 400), ("蓝", 200), ("莫", 200), ("罗", 150),
            ("蒙", 120), ("班", 80), ("农", 80), ("陆", 80), ("梁", 100), ("潘", 60),
        ],
        Flavor::Hani => &[
            ("李", 900), ("白", 300), ("卢", 200), ("马", 150), ("普", 120), ("杨", 200),
            ("陈", 80),
        ],
        Flavor::Yi => &[],
        Flavor::Hui => &[
            ("马", 1500), ("韩", 300), ("妥", 120), ("何", 150), ("王", 100), ("冶", 80),
            ("陕", 40),
        ],
        Flavor::Gansu => &[
            ("王", 300), ("李", 200), ("张", 150), ("赵", 120), ("杨", 120), ("包", 60), ("汪", 60),
            ("何", 60), ("魏", 60), ("董", 60), ("牛", 40), ("姚", 40),
        ],
    }
}

/// Yi family names (家支), transliterated.
#[rustfmt::skip]
const YI_SURNAMES: &[(&str, u64)] = &[
    ("吉克", 10), ("沙马", 9), ("阿苏", 8), ("曲比", 8), ("海来", 7), ("吉伍", 6), ("马海", 6),
    ("勒格", 6), ("阿约", 5), ("吉木", 5), ("阿侯", 5), ("俄木", 4), ("阿的", 4), ("阿克", 4),
    ("莫色", 4), ("木乃", 3), ("瓦扎", 3), ("日色", 3), ("吉吉", 3), ("苏呷", 3), ("的日", 3),
    ("俄底", 3), ("克其", 3), ("金古", 3), ("拉马", 3), ("吉日", 3), ("阿尔", 3), ("井曲", 2),
    ("比曲", 2), ("吉史", 2), ("巫其", 2), ("阿说", 2), ("俄的", 2),
];
const YI_MALE: &[&str] = &[
    "拉且", "伍各", "尔布", "日哈", "石者", "阿牛", "尔古", "拉哈", "约哈", "史古", "阿支", "布都",
    "此尔", "阿木", "惹古", "子哈", "日体", "尔哈", "拉火", "伍沙", "曲者", "格哈", "阿且", "么且",
    "尔日", "石布", "拉格", "木呷", "伍加", "阿洛",
];
const YI_FEMALE: &[&str] = &[
    "阿呷", "阿依", "依作", "阿芝", "么作", "阿果", "日布", "尔妞", "石妞", "阿衣", "沙呷", "日嫫",
    "阿嫫", "史嫫", "子莫", "伍呷", "阿各", "阿西", "阿妞", "依呷", "衣布", "尔作", "阿兹", "日作",
];
const YI_SYLLABLES: &[&str] = &[
    "呷", "且", "各", "哈", "布", "者", "作", "依", "古", "日", "尔", "木", "嫫", "妞",
];

/// Generation-poem characters (字辈).
const POEM_CHARS: &[char] = &[
    '德', '明', '永', '世', '国', '正', '光', '宗', '家', '文', '学', '志', '仁', '义', '礼', '智',
    '信', '承', '先', '启', '天', '开', '朝', '应', '兴', '绍', '祖', '宏', '远', '守', '忠', '厚',
    '传', '继', '荣', '富', '昌', '盛', '泽', '长', '良', '玉', '金', '祥', '登', '显', '庆', '洪',
    '元', '成', '维', '泰', '道', '顺', '万', '有', '定', '廷', '尚', '大', '本', '发', '思', '绪',
];
/// Given-name characters by sex and era (names before 1985 sound different from later ones).
const MALE_CHARS_OLD: &[char] = &[
    '明', '华', '军', '强', '平', '林', '勇', '文', '武', '成', '兵', '国', '忠', '荣', '福', '贵',
    '海', '山', '生', '祥', '才', '富', '全', '发', '春', '元', '权', '亮', '东', '良', '清', '江',
    '洪', '金', '银', '书', '先', '建', '志', '高', '德', '友', '正', '光', '刚', '云',
];
const MALE_CHARS_NEW: &[char] = &[
    '伟', '杰', '涛', '斌', '波', '鹏', '辉', '超', '刚', '龙', '虎', '云', '宇', '浩', '航', '豪',
    '俊', '轩', '博', '飞', '磊', '鑫', '凯', '睿', '泽', '晨', '阳', '明', '文', '林', '强', '军',
];
const FEMALE_CHARS_OLD: &[char] = &[
    '芳', '英', '兰', '梅', '花', '秀', '珍', '凤', '琴', '霞', '燕', '丽', '娟', '艳', '红', '玲',
    '萍', '菊', '桂', '香', '群', '翠', '莲', '玉', '春', '美', '娥', '妹', '仙', '平',
];
const FEMALE_CHARS_NEW: &[char] = &[
    '敏', '静', '慧', '婷', '雪', '莉', '琳', '欣', '怡', '佳', '悦', '雨', '涵', '萱', '倩', '丹',
    '颖', '璐', '思', '诗', '梦', '瑶', '琪', '娜', '晶', '丽', '燕', '玲',
];

fn char_pool(male: bool, year: i32) -> &'static [char] {
    match (male, year < 1985) {
        (true, true) => MALE_CHARS_OLD,
        (true, false) => MALE_CHARS_NEW,
        (false, true) => FEMALE_CHARS_OLD,
        (false, false) => FEMALE_CHARS_NEW,
    }
}
const MALE_OLD: &[&str] = &[
    "建国", "国华", "德明", "树林", "长生", "金山", "福才", "永贵", "学文", "有才", "志华", "天明",
    "文华", "富贵", "正清", "光明", "玉明", "成才", "继祖", "发贵", "明", "华", "文", "林",
];
const MALE_MID: &[&str] = &[
    "建华", "建军", "卫东", "红兵", "志强", "国强", "勇", "军", "伟", "平", "斌", "刚", "强", "涛",
    "明", "华", "林", "文", "建平", "小平", "建新", "永红", "海军", "立新",
];
const MALE_YOUNG: &[&str] = &[
    "伟", "磊", "勇", "军", "涛", "强", "杰", "鹏", "超", "浩", "斌", "波", "辉", "刚", "亮", "洋",
    "帅", "龙", "飞", "建", "俊", "志伟", "健", "凯", "鑫",
];
const MALE_NEW: &[&str] = &[
    "浩然", "宇轩", "子豪", "俊杰", "浩", "宇", "杰", "博文", "梓豪", "一鸣", "天宇", "家豪",
    "浩宇", "子轩", "晨", "睿", "宇航", "俊熙", "文博", "鑫", "诗豪",
];
const FEMALE_OLD: &[&str] = &[
    "秀英", "桂英", "秀兰", "玉兰", "桂兰", "秀珍", "凤英", "玉珍", "玉英", "兰英", "桂芳", "淑珍",
    "秀云", "素珍", "桂珍", "玉梅", "翠花", "春花", "秀芳", "凤兰",
];
const FEMALE_MID: &[&str] = &[
    "丽", "红", "艳", "霞", "燕", "芳", "梅", "玲", "英", "萍", "红梅", "丽萍", "春梅", "海燕",
    "小红", "秀梅", "丽华", "桂香", "小琴", "金凤",
];
const FEMALE_YOUNG: &[&str] = &[
    "静", "丽", "娟", "艳", "芳", "敏", "婷", "丹", "玲", "燕", "霞", "倩", "莉", "雪", "琴", "慧",
    "丽娟", "小燕", "晓丽", "春燕",
];
const FEMALE_NEW: &[&str] = &[
    "欣怡", "梓涵", "子涵", "诗涵", "雨涵", "佳怡", "欣", "悦", "雨欣", "思雨", "紫涵", "梦瑶",
    "可馨", "雨桐", "佳琪", "梓萱", "一诺", "语嫣",
];
/// Twin name pairs.
const TWIN_PAIRS: &[(char, char)] = &[
    ('龙', '虎'),
    ('文', '武'),
    ('福', '禄'),
    ('金', '银'),
    ('思', '念'),
    ('晨', '曦'),
    ('欣', '悦'),
    ('梅', '兰'),
    ('春', '秋'),
    ('大', '小'),
    ('双', '全'),
    ('平', '安'),
    ('佳', '美'),
];

const TOWNS: &[&str] = &[
    "龙场", "马场", "羊场", "牛场", "兔场", "猫场", "鸡场", "新场", "大坝", "河口", "石桥", "平寨",
    "高坡", "青山", "茶园", "白岩", "黄泥", "三合", "五里", "七星", "九龙", "凉水", "沙坝", "新街",
    "老街", "大河", "小河", "石门", "高山", "长坡", "坪坝", "岩头", "田坝", "桥头", "白果", "木城",
    "金竹", "红岩", "双河", "两河", "太平", "和平", "安乐", "永和", "新华", "东风", "柳林", "杨家",
    "李家", "中和", "宝山", "龙潭", "麻坪", "大湾", "马龙", "官庄", "新营", "草坪", "滩头", "古城",
];
const YI_TOWNS: &[&str] = &[
    "竹核",
    "四开",
    "地莫",
    "特口",
    "碗厂",
    "尔古",
    "拉木",
    "阿呷",
    "补约",
    "则普",
    "俄尔",
    "日哈",
    "瓦岗",
    "洛莫",
    "拖觉",
    "解放",
    "庆恒",
    "比尔",
    "支尔莫",
    "洒拉地坡",
    "佐戈依达",
    "尼波",
];
#[rustfmt::skip]
const VILLAGES: &[(&str, u64)] = &[
    ("新村", 30), ("大寨", 20), ("团结", 15), ("新寨", 12), ("红旗", 10), ("光明", 10), ("民族", 8),
    ("和平", 8), ("胜利", 8), ("联合", 8), ("红星", 8), ("前进", 6), ("中心", 6), ("新华", 6),
    ("大坪", 5), ("田坝", 5), ("五一", 4), ("岩脚", 4), ("松林", 4), ("龙井", 4), ("石门", 4),
    ("河坝", 4), ("大湾", 4), ("新民", 4), ("太平", 4), ("平安", 4), ("双河", 4), ("三合", 4),
    ("老寨", 4), ("大田", 4), ("长坡", 3), ("坪上", 3), ("杨柳", 3), ("花园", 3), ("桃园", 3),
    ("金竹", 3), ("竹林", 3), ("小河", 3), ("沙坝", 3), ("白果", 3), ("青杠", 3), ("高峰", 3),
    ("新农", 3), ("永安", 3), ("大屯", 3), ("上寨", 3), ("下寨", 3), ("中寨", 3), ("营盘", 3),
    ("马鞍", 3), ("龙潭", 3), ("草坪", 3), ("凉水井", 2), ("坝子", 2), ("关口", 2), ("水井", 2),
    ("庄子", 2), ("阳坡", 2), ("阴坡", 2), ("红岩", 2), ("沙沟", 2), ("柳树湾", 2), ("石板", 2),
];
const YI_VILLAGES: &[&str] = &[
    "阿吼",
    "拉觉",
    "尔吉",
    "洛觉",
    "斯足",
    "日哈",
    "吉尔",
    "则洛",
    "呷洛",
    "火普",
    "谷莫",
    "阿并",
    "瓦曲",
    "说注",
    "尼地",
    "甲谷",
    "比尔",
    "马洛",
    "洛呷",
    "尔打",
    "牛牛坝",
    "三河",
    "新村",
    "民主",
];
const CLAN_PLACE: &[&str] = &["湾", "沟", "坪", "寨", "庄", "坝", "岭"];
const WORK_CITIES: &[&str] = &[
    "广东省东莞市",
    "广东省深圳市",
    "广州市白云区",
    "浙江省宁波市",
    "福建省泉州市",
    "昆明市",
    "贵阳市",
    "兰州市",
    "长沙市",
    "成都市",
    "江苏省苏州市",
    "新疆昌吉州",
];
const RELATION_LABELS: [&str; 11] = [
    "户主", "配偶", "子", "女", "儿媳", "女婿", "孙子", "孙女", "父", "母", "兄弟",
];
const CN_NUM: &[&str] = &[
    "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二",
];
const PHONE_PREFIXES: &[&str] = &[
    "134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182",
    "183", "187", "188", "130", "131", "132", "155", "156", "185", "186", "133", "153", "180",
    "181", "189", "177", "173", "199", "198", "166", "178", "147",
];

// Character noise tables. Each string is a group of interchangeable characters.
#[rustfmt::skip]
const TRADITIONAL: &[(char, char)] = &[
    ('华', '華'), ('国', '國'), ('军', '軍'), ('伟', '偉'), ('丽', '麗'), ('红', '紅'),
    ('兰', '蘭'), ('凤', '鳳'), ('刘', '劉'), ('陈', '陳'), ('张', '張'), ('杨', '楊'),
    ('黄', '黃'), ('赵', '趙'), ('吴', '吳'), ('孙', '孫'), ('马', '馬'), ('罗', '羅'),
    ('郑', '鄭'), ('谢', '謝'), ('韩', '韓'), ('冯', '馮'), ('邓', '鄧'), ('龙', '龍'),
    ('叶', '葉'), ('苏', '蘇'), ('卢', '盧'), ('蒋', '蔣'), ('贵', '貴'), ('荣', '榮'),
    ('强', '強'), ('东', '東'), ('学', '學'), ('义', '義'), ('礼', '禮'), ('兴', '興'),
    ('宝', '寶'), ('书', '書'), ('云', '雲'), ('发', '發'), ('连', '連'), ('宁', '寧'),
    ('庆', '慶'), ('刚', '剛'), ('开', '開'), ('启', '啟'), ('绍', '紹'), ('远', '遠'),
    ('财', '財'), ('艳', '艷'), ('静', '靜'), ('洁', '潔'), ('涛', '濤'), ('辉', '輝'),
    ('进', '進'), ('万', '萬'), ('长', '長'), ('乐', '樂'), ('双', '雙'), ('飞', '飛'),
    ('鹏', '鵬'), ('杰', '傑'), ('阳', '陽'), ('韦', '韋'), ('农', '農'), ('蓝', '藍'),
    ('传', '傳'), ('继', '繼'), ('显', '顯'), ('顺', '順'), ('维', '維'), ('银', '銀'),
    ('莲', '蓮'), ('娇', '嬌'), ('贞', '貞'), ('泽', '澤'), ('权', '權'), ('钟', '鍾'),
    ('许', '許'), ('邹', '鄒'), ('严', '嚴'), ('龚', '龔'), ('汤', '湯'), ('梦', '夢'),
    ('轩', '軒'), ('诗', '詩'), ('语', '語'), ('瑶', '瑤'), ('约', '約'), ('尔', '爾'),
    ('来', '來'), ('么', '麼'), ('亲', '親'), ('凯', '凱'), ('丰', '豐'), ('贤', '賢'),
    ('宾', '賓'),
];
#[rustfmt::skip]
const HOMOPHONES: &[&str] = &[
    "伟玮炜维", "丽莉俐", "军君均", "华桦骅", "明鸣铭", "红虹", "宏洪鸿", "英瑛莹", "芳方", "兰岚",
    "梅玫媚", "平萍苹", "勇永涌", "杰洁婕", "静晶婧", "霞侠", "燕艳雁", "玲琳林", "建健剑", "德得",
    "志智治", "文雯闻", "斌彬滨", "涛韬滔", "刚钢岗", "峰锋丰", "东冬", "秀绣", "珍贞真", "凤奉",
    "云芸", "成诚程", "光广", "荣蓉容", "福富", "贵桂", "生升", "祥翔详", "兴星新", "学雪",
    "义艺毅", "忠中钟", "发法", "财才材", "宝保", "玉宇雨语", "立力利", "龙隆", "小晓筱", "娟鹃",
    "敏民", "亮谅", "超朝", "鹏朋", "辉晖", "洋阳扬", "波博", "正政", "仁人", "先仙", "启起",
    "远元园", "安岸", "家佳嘉", "世仕士", "金进", "海亥", "春纯", "清青", "江疆", "权全泉", "强蔷",
    "芝枝", "琴勤", "莲连", "娇姣", "梓子紫", "涵寒", "轩萱宣", "浩昊皓", "欣心馨", "怡宜仪",
    "悦月越", "婷亭庭", "倩茜", "丹单", "思丝", "瑶遥", "王汪", "李黎", "吴伍", "刘柳", "徐许",
    "张章", "周舟", "韦魏卫", "罗骆", "石史", "覃秦", "何贺", "呷嘎尕", "且切", "各格", "乌五",
    "日惹", "莫么", "克科", "沙莎", "吉基", "曲屈", "比毕", "尔而", "布补", "依衣伊", "木牧",
    "约尤", "来莱", "拉啦", "哈合", "者则", "古谷", "作佐", "妞牛", "嫫摸", "寨砦", "坝霸", "坪平",
    "湾弯", "沟勾", "井景", "村邨",
];
#[rustfmt::skip]
const LOOKALIKES: &[&str] = &[
    "己已巳", "末未", "戌戍戊", "土士", "天夭", "日曰", "干千于", "王玉主", "大太犬", "人入八",
    "贝见", "候侯", "折析", "准淮", "洒酒", "秀季", "竞竟", "荼茶", "今令", "田由甲申", "冶治",
    "睛晴", "住佳", "端瑞", "扬杨汤", "挥辉", "祝视", "林材", "明朋", "兵乒", "玲铃", "娟绢",
    "桂挂", "凤风", "平乎", "元无", "文丈", "军车", "英荚", "芳芬", "华毕", "春舂", "刁习",
];

/// Separators written for the dot of minority names.
const DOTS: &[&str] = &["•", "・", ".", "．", " ", "-"];

/// Registry extraction date: nobody is born after it.
const LAST_BIRTH: (i32, u32) = (2024, 180);

// ---------------------------------------------------------------------------------------------
// World: townships, villages, clans.

#[derive(Debug)]
struct Village {
    county: usize,
    township: usize,
    name: String,
    yi: bool,
    clan: &'static str,
    second: &'static str,
    clan_share: f64,
    poem: [char; 8],
    gen_shift: i32,
}

#[derive(Debug)]
struct World {
    townships: Vec<Vec<String>>,
    villages: Vec<Village>,
    county_villages: Vec<Vec<usize>>,
    surnames: Vec<Weighted<&'static str>>,
    county_pick: Weighted<usize>,
    neighbours: Vec<Vec<usize>>,
    eras: [Weighted<&'static str>; 8],
}

fn flavor_index(f: Flavor) -> usize {
    FLAVORS.iter().position(|x| *x == f).unwrap_or(0)
}

fn poem(rng: &mut Rng) -> [char; 8] {
    let mut out = ['德'; 8];
    let mut n = 0;
    while n < 8 {
        let ch = *rng.pick(POEM_CHARS);
        if !out[..n].contains(&ch) {
            out[n] = ch;
            n += 1;
        }
    }
    out
}

impl World {
    fn build(seed: u64) -> World {
        let mut rng = Rng::new(seed, 1);
        let surnames: Vec<Weighted<&'static str>> = FLAVORS
            .iter()
            .map(|f| {
                if *f == Flavor::Yi {
                    return Weighted::new(YI_SURNAMES.iter().copied());
                }
                let boost = flavor_boost(*f);
                Weighted::new(
                    SURNAMES
                        .iter()
                        .map(|(s, w)| {
                            let extra: u64 =
                                boost.iter().filter(|(b, _)| b == s).map(|(_, x)| *x).sum();
                            (*s, w + extra)
                        })
                        .chain(
                            boost
                                .iter()
                                .filter(|(b, _)| !SURNAMES.iter().any(|(s, _)| s == b))
                                .copied(),
                        ),
                )
            })
            .collect();
        let mut townships = Vec::new();
        let mut villages = Vec::new();
        let mut county_villages = Vec::new();
        let general_villages = Weighted::new(VILLAGES.iter().copied());
        for (ci, county) in COUNTIES.iter().enumerate() {
            let yi_county = county.flavor == Flavor::Yi;
            let n_town = 8 + rng.below(7);
            let mut towns: Vec<String> = Vec::new();
            if rng.chance(0.6) {
                towns.push("城关镇".to_string());
            }
            while towns.len() < n_town {
                let stem = if yi_county && rng.chance(0.7) {
                    *rng.pick(YI_TOWNS)
                } else {
                    *rng.pick(TOWNS)
                };
                let suffix = if rng.chance(if yi_county { 0.3 } else { 0.6 }) {
                    "镇"
                } else {
                    "乡"
                };
                let name = format!("{stem}{suffix}");
                if !towns.iter().any(|t| t.starts_with(stem)) {
                    towns.push(name);
                }
            }
            let mut in_county = Vec::new();
            let surname_table = &surnames[flavor_index(county.flavor)];
            let han_table = &surnames[flavor_index(Flavor::Han)];
            for t in 0..towns.len() {
                let n_vill = 7 + rng.below(9);
                let mut names: Vec<String> = Vec::new();
                let mut tries = 0;
                while names.len() < n_vill && tries < 200 {
                    tries += 1;
                    let yi = yi_county && rng.chance(0.8);
                    let table = if yi_county && !yi {
                        han_table
                    } else {
                        surname_table
                    };
                    let clan = table.draw(&mut rng);
                    let mut second = table.draw(&mut rng);
                    if second == clan {
                        second = table.draw(&mut rng);
                    }
                    let stem = if yi && rng.chance(0.75) {
                        (*rng.pick(YI_VILLAGES)).to_string()
                    } else if !yi && rng.chance(0.12) {
                        format!("{clan}家{}", rng.pick(CLAN_PLACE))
                    } else {
                        general_villages.draw(&mut rng).to_string()
                    };
                    let name = if stem.ends_with('村') {
                        stem
                    } else {
                        format!("{stem}村")
                    };
                    if names.contains(&name) {
                        continue;
                    }
                    names.push(name.clone());
                    in_county.push(villages.len());
                    villages.push(Village {
                        county: ci,
                        township: t,
                        name,
                        yi,
                        clan,
                        second,
                        clan_share: if yi {
                            0.3 + 0.4 * rng.unit()
                        } else {
                            0.35 + 0.5 * rng.unit()
                        },
                        poem: poem(&mut rng),
                        gen_shift: rng.range(0, 24),
                    });
                }
            }
            townships.push(towns);
            county_villages.push(in_county);
        }
        let neighbours = (0..COUNTIES.len())
            .map(|i| {
                let pref = COUNTIES[i].code / 100;
                let mut n = Vec::new();
                if i > 0 && COUNTIES[i - 1].code / 100 == pref {
                    n.push(i - 1);
                }
                if i + 1 < COUNTIES.len() && COUNTIES[i + 1].code / 100 == pref {
                    n.push(i + 1);
                }
                n
            })
            .collect();
        World {
            townships,
            villages,
            county_villages,
            surnames,
            county_pick: Weighted::new(COUNTIES.iter().enumerate().map(|(i, c)| (i, c.weight))),
            neighbours,
            eras: [
                zipf(MALE_OLD),
                zipf(MALE_MID),
                zipf(MALE_YOUNG),
                zipf(MALE_NEW),
                zipf(FEMALE_OLD),
                zipf(FEMALE_MID),
                zipf(FEMALE_YOUNG),
                zipf(FEMALE_NEW),
            ],
        }
    }

    fn surname_table(&self, county: usize) -> &Weighted<&'static str> {
        &self.surnames[flavor_index(COUNTIES[county].flavor)]
    }

    fn random_village(&self, rng: &mut Rng) -> usize {
        let county = self.county_pick.draw(rng);
        self.village_in(rng, county)
    }

    fn village_in(&self, rng: &mut Rng, county: usize) -> usize {
        *rng.pick(&self.county_villages[county])
    }

    /// A neighbouring county, or the county itself when it has none listed.
    fn neighbour(&self, rng: &mut Rng, county: usize) -> usize {
        let n = &self.neighbours[county];
        if n.is_empty() { county } else { *rng.pick(n) }
    }

    /// Generation character of a clan (the village clan's poem, or one derived from the surname
    /// for other families) at generation `g`.
    fn gen_char(&self, village: usize, surname: &str, g: i32) -> char {
        let v = &self.villages[village];
        let poem = if surname == v.clan {
            v.poem
        } else {
            let mut h: u64 = village as u64;
            for b in surname.bytes() {
                h = h.wrapping_mul(0x100_0000_01B3).wrapping_add(u64::from(b));
            }
            poem(&mut Rng::new(h, 7))
        };
        poem[g.clamp(0, 7) as usize]
    }

    fn generation(&self, village: usize, year: i32) -> i32 {
        (year - 1900 + self.villages[village].gen_shift) / 25
    }
}

// ---------------------------------------------------------------------------------------------
// Persons and households.

#[derive(Debug, Clone)]
struct Person {
    /// Registry row (0-based), or None for people not in the registry.
    row: Option<u32>,
    surname: String,
    given: String,
    /// Registered with the dot between family and given name.
    dot: bool,
    yi: bool,
    male: bool,
    true_birth: NaiveDate,
    reg_birth: NaiveDate,
    id: String,
    own_phone: Option<String>,
    reg_phone: String,
    rel: &'static str,
    gen_char: Option<char>,
    /// A top-ten surname with an era-list given name.
    common: bool,
    /// Generation within the household's clan (for relatives).
    generation: i32,
}

impl Person {
    fn name(&self) -> String {
        if self.dot {
            format!("{}·{}", self.surname, self.given)
        } else {
            format!("{}{}", self.surname, self.given)
        }
    }
}

#[derive(Debug)]
struct Household {
    no: u32,
    village: usize,
    group: u8,
    members: Vec<Person>,
}

impl Household {
    fn names(&self) -> Vec<String> {
        self.members.iter().map(Person::name).collect()
    }

    /// The first phone a household member shows in the registry, head first.
    fn visible_phone(&self) -> String {
        self.members
            .iter()
            .map(|m| m.reg_phone.clone())
            .find(|p| !p.is_empty())
            .unwrap_or_default()
    }
}

fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

fn date_yo(year: i32, ordinal: u32) -> NaiveDate {
    let len = if is_leap(year) { 366 } else { 365 };
    NaiveDate::from_yo_opt(year, ordinal.clamp(1, len)).unwrap_or_default()
}

fn random_date(rng: &mut Rng, year: i32) -> NaiveDate {
    let year = year.min(LAST_BIRTH.0);
    let len = if year == LAST_BIRTH.0 {
        LAST_BIRTH.1
    } else if is_leap(year) {
        366
    } else {
        365
    };
    date_yo(year, 1 + rng.below(len as usize) as u32)
}

fn add_days(d: NaiveDate, days: i64) -> NaiveDate {
    let n = i64::from(d.num_days_from_ce()) + days;
    NaiveDate::from_num_days_from_ce_opt(n as i32).unwrap_or(d)
}

/// The hukou date: elderly people were often registered on a default day.
fn hukou_date(rng: &mut Rng, true_birth: NaiveDate) -> NaiveDate {
    let y = true_birth.year();
    let (jan, jul) = if y < 1960 {
        (0.25, 0.05)
    } else if y < 1970 {
        (0.06, 0.02)
    } else {
        (0.0, 0.0)
    };
    let x = rng.unit();
    if x < jan {
        date_yo(y, 1)
    } else if x < jan + jul {
        NaiveDate::from_ymd_opt(y, 7, 1).unwrap_or(true_birth)
    } else {
        true_birth
    }
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

fn check_char(body: &[u8]) -> Option<char> {
    if body.len() != 17 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s: u32 = body
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(char::from(ID_CHECK[(s % 11) as usize]))
}

fn make_id(prefix: u32, date: NaiveDate, seq: u32) -> String {
    let mut s = format!(
        "{prefix:06}{:04}{:02}{:02}{seq:03}",
        date.year(),
        date.month(),
        date.day()
    );
    if let Some(c) = check_char(s.as_bytes()) {
        s.push(c);
    }
    s
}

/// Resident ids handed out so far, so that no two people share one.
#[derive(Debug, Default)]
struct IdBook(HashSet<u64>);

impl IdBook {
    fn key(prefix: u32, date: NaiveDate, seq: u32) -> u64 {
        (u64::from(prefix) << 32)
            | ((date.num_days_from_ce() as u64 & 0xF_FFFF) << 10)
            | u64::from(seq)
    }

    /// A fresh id; `near` asks for a sequence close to another's (twins registered together).
    fn issue(
        &mut self,
        rng: &mut Rng,
        prefix: u32,
        date: NaiveDate,
        male: bool,
        near: Option<u32>,
    ) -> (String, u32) {
        let parity = u32::from(male);
        let mut try_seq = |seq: u32| seq < 1000 && self.0.insert(Self::key(prefix, date, seq));
        if let Some(n) = near {
            let base = n - n % 2 + parity;
            for k in 1..6u32 {
                if try_seq(base + 2 * k) {
                    return (make_id(prefix, date, base + 2 * k), base + 2 * k);
                }
                if base >= 2 * k && try_seq(base - 2 * k) {
                    return (make_id(prefix, date, base - 2 * k), base - 2 * k);
                }
            }
        }
        for _ in 0..60 {
            // Rural police stations hand out small sequence numbers more often.
            let span = if rng.chance(0.7) { 100 } else { 500 };
            let seq = rng.below(span) as u32 * 2 + parity;
            if try_seq(seq) {
                return (make_id(prefix, date, seq), seq);
            }
        }
        for seq in (0..500).map(|k| k * 2 + parity) {
            if try_seq(seq) {
                return (make_id(prefix, date, seq), seq);
            }
        }
        (make_id(prefix, date, 998 + parity), 998 + parity)
    }
}

fn new_phone(rng: &mut Rng) -> String {
    format!("{}{:08}", rng.pick(PHONE_PREFIXES), rng.below(100_000_000))
}

/// Everything needed to name and register one person.
struct Birth<'a> {
    village: usize,
    surname: &'a str,
    male: bool,
    true_birth: NaiveDate,
    generation: i32,
    rel: &'static str,
    /// Father's Yi given name, for patronymic naming.
    father_given: Option<&'a str>,
    /// Generation character forced (relatives, twins).
    force_gen: Option<Option<char>>,
    id_county: u32,
}

struct Gen<'a> {
    world: &'a World,
    ids: &'a mut IdBook,
}

impl Gen<'_> {
    /// A Han given name: generation character + one, an era-list name, or a composed one.
    fn han_given(
        &self,
        rng: &mut Rng,
        b: &Birth<'_>,
        taken: &[String],
    ) -> (String, Option<char>, bool) {
        let year = b.true_birth.year();
        let p_gen = match (b.male, year) {
            (true, y) if y < 1980 => 0.8,
            (true, y) if y < 2000 => 0.6,
            (true, _) => 0.35,
            (false, y) if y < 1980 => 0.2,
            (false, y) if y < 2000 => 0.25,
            (false, _) => 0.15,
        };
        let mut last = (String::new(), None, false);
        for _ in 0..8 {
            let gc = match b.force_gen {
                Some(g) => g,
                None if rng.chance(p_gen) => {
                    Some(self.world.gen_char(b.village, b.surname, b.generation))
                }
                None => None,
            };
            let cand = if let Some(g) = gc {
                let pool = char_pool(b.male, year);
                let mut second = *rng.pick(pool);
                if second == g {
                    second = *rng.pick(pool);
                }
                (format!("{g}{second}"), Some(g), false)
            } else if rng.chance(0.45) {
                let era = match year {
                    y if y < 1960 => 0,
                    y if y < 1980 => 1,
                    y if y < 2000 => 2,
                    _ => 3,
                } + if b.male { 0 } else { 4 };
                let given = self.world.eras[era].draw(rng);
                (given.to_string(), None, TOP_SURNAMES.contains(&b.surname))
            } else {
                let pool = char_pool(b.male, year);
                let first = *rng.pick(pool);
                if rng.chance(0.2) {
                    (first.to_string(), None, false)
                } else {
                    (format!("{first}{}", rng.pick(pool)), None, false)
                }
            };
            let full = format!("{}{}", b.surname, cand.0);
            last = cand;
            if !taken.contains(&full) {
                break;
            }
        }
        last
    }

    fn yi_given(&self, rng: &mut Rng, b: &Birth<'_>, taken: &[String]) -> String {
        let mut last = String::new();
        for _ in 0..8 {
            let mut g = if let (true, Some(father)) = (b.male, b.father_given) {
                if rng.chance(0.25) {
                    let tail = father.chars().last().unwrap_or('布');
                    format!("{tail}{}", rng.pick(YI_SYLLABLES))
                } else {
                    (*rng.pick(YI_MALE)).to_string()
                }
            } else if b.male {
                (*rng.pick(YI_MALE)).to_string()
            } else {
                (*rng.pick(YI_FEMALE)).to_string()
            };
            if rng.chance(0.08) {
                let syl: &&str = rng.pick(YI_SYLLABLES);
                g.push_str(syl);
            }
            let full = format!("{}{g}", b.surname);
            last = g;
            if !taken.contains(&full) {
                break;
            }
        }
        last
    }

    /// A person with a fresh resident id; `row` is filled in by the caller.
    fn person(&mut self, b: &Birth<'_>, rng: &mut Rng, taken: &[String]) -> Person {
        let yi = self.world.villages[b.village].yi && b.surname.chars().count() >= 2;
        let (given, gen_char, common) = if yi {
            (self.yi_given(rng, b, taken), None, false)
        } else {
            self.han_given(rng, b, taken)
        };
        let reg_birth = hukou_date(rng, b.true_birth);
        let (id, _) = self.ids.issue(rng, b.id_county, reg_birth, b.male, None);
        Person {
            row: None,
            surname: b.surname.to_string(),
            given,
            dot: yi && rng.chance(0.12),
            yi,
            male: b.male,
            true_birth: b.true_birth,
            reg_birth,
            id,
            own_phone: None,
            reg_phone: String::new(),
            rel: b.rel,
            gen_char,
            common,
            generation: b.generation,
        }
    }

    /// A surname for a family head in this village: the clan, the second family, or any.
    fn family_surname(&self, rng: &mut Rng, village: usize) -> &'static str {
        let v = &self.world.villages[village];
        if rng.chance(v.clan_share) {
            v.clan
        } else if rng.chance(0.35) {
            v.second
        } else if v.yi {
            self.world.surnames[flavor_index(Flavor::Yi)].draw(rng)
        } else if COUNTIES[v.county].flavor == Flavor::Yi {
            self.world.surnames[flavor_index(Flavor::Han)].draw(rng)
        } else {
            self.world.surname_table(v.county).draw(rng)
        }
    }

    /// A surname from outside the family (a married-in spouse).
    fn outside_surname(&self, rng: &mut Rng, village: usize, family: &str) -> &'static str {
        let v = &self.world.villages[village];
        let table = if v.yi {
            &self.world.surnames[flavor_index(Flavor::Yi)]
        } else if COUNTIES[v.county].flavor == Flavor::Yi {
            &self.world.surnames[flavor_index(Flavor::Han)]
        } else {
            self.world.surname_table(v.county)
        };
        let mut s = table.draw(rng);
        // Yi and many southern clans do not marry within the surname.
        for _ in 0..4 {
            if s != family {
                break;
            }
            s = table.draw(rng);
        }
        s
    }

    fn household(&mut self, rng: &mut Rng, no: u32) -> Household {
        let world = self.world;
        let village = world.random_village(rng);
        let county = world.villages[village].county;
        let code = COUNTIES[county].code;
        let size = 1 + rng.index(&[12.0, 22.0, 20.0, 20.0, 13.0, 8.0, 5.0]);
        let head_male = rng.chance(0.85);
        let decade = rng.index(&[8.0, 16.0, 22.0, 22.0, 17.0, 11.0, 4.0]) as i32;
        let head_year = 1935 + decade * 10 + rng.range(0, if decade == 6 { 5 } else { 9 });
        let family = self.family_surname(rng, village);
        let g = world.generation(village, head_year);
        let mut members: Vec<Person> = Vec::new();
        let mut names: Vec<String> = Vec::new();

        let head_surname = if head_male {
            family
        } else {
            self.outside_surname(rng, village, family)
        };
        let head = self.person(
            &Birth {
                village,
                surname: head_surname,
                male: head_male,
                true_birth: random_date(rng, head_year),
                generation: g,
                rel: RELATION_LABELS[0],
                father_given: None,
                force_gen: if head_male { None } else { Some(None) },
                id_county: if head_male {
                    code
                } else {
                    COUNTIES[world.neighbour(rng, county)].code
                },
            },
            rng,
            &names,
        );
        names.push(head.name());
        let head_given = head.given.clone();
        members.push(head);

        // Spouse: a widowed head (female heads mostly) lives alone with the children.
        if size >= 2 && ((head_male && rng.chance(0.9)) || (!head_male && rng.chance(0.15))) {
            let male = !head_male;
            let year = if male {
                head_year - rng.range(0, 5)
            } else {
                head_year + rng.range(-2, 6)
            };
            let married_in_from = if rng.chance(0.3) {
                world.neighbour(rng, county)
            } else {
                county
            };
            let surname = if male {
                family
            } else {
                self.outside_surname(rng, village, family)
            };
            let sp = self.person(
                &Birth {
                    village,
                    surname,
                    male,
                    true_birth: random_date(rng, year),
                    generation: g,
                    rel: RELATION_LABELS[1],
                    father_given: None,
                    force_gen: if male { None } else { Some(None) },
                    id_county: COUNTIES[married_in_from].code,
                },
                rng,
                &names,
            );
            names.push(sp.name());
            members.push(sp);
        }
        let father_given = if head_male {
            Some(head_given.as_str())
        } else {
            None
        };
        let old_head = head_year <= 1968;
        let mut sons: Vec<(i32, String)> = Vec::new();
        let n_children = (size - members.len()).min(1 + rng.below(3));
        let mut added = 0;
        while added < n_children {
            let year = (head_year + rng.range(20, 38)).min(LAST_BIRTH.0);
            let male = rng.chance(if old_head { 0.62 } else { 0.52 });
            let date = random_date(rng, year);
            let twin = n_children - added >= 2 && rng.chance(0.02);
            let birth = Birth {
                village,
                surname: family,
                male,
                true_birth: date,
                generation: g + 1,
                rel: if male {
                    RELATION_LABELS[2]
                } else {
                    RELATION_LABELS[3]
                },
                father_given,
                force_gen: None,
                id_county: code,
            };
            let child = self.person(&birth, rng, &names);
            names.push(child.name());
            if male {
                sons.push((year, child.given.clone()));
            }
            if twin {
                // Same-sex twins are the more common pair.
                let twin_male = if rng.chance(0.6) { male } else { !male };
                let tw = self.twin_of(rng, &child, &birth, &names, code, twin_male);
                names.push(tw.name());
                members.push(child);
                members.push(tw);
                added += 2;
            } else {
                members.push(child);
                added += 1;
            }
        }
        if old_head {
            // Grown son's family: daughter-in-law and grandchildren.
            if let Some((son_year, son_given)) = sons.first().cloned() {
                if members.len() < size && son_year <= 2000 {
                    let dil = self.person(
                        &Birth {
                            village,
                            surname: self.outside_surname(rng, village, family),
                            male: false,
                            true_birth: {
                                let y = son_year + rng.range(-1, 5);
                                random_date(rng, y)
                            },
                            generation: g + 1,
                            rel: RELATION_LABELS[4],
                            father_given: None,
                            force_gen: Some(None),
                            id_county: if rng.chance(0.4) {
                                COUNTIES[world.neighbour(rng, county)].code
                            } else {
                                code
                            },
                        },
                        rng,
                        &names,
                    );
                    names.push(dil.name());
                    members.push(dil);
                }
                while members.len() < size && son_year + 20 <= LAST_BIRTH.0 {
                    let male = rng.chance(0.55);
                    let year = (son_year + rng.range(20, 32)).min(LAST_BIRTH.0);
                    let gc = self.person(
                        &Birth {
                            village,
                            surname: family,
                            male,
                            true_birth: random_date(rng, year),
                            generation: g + 2,
                            rel: if male {
                                RELATION_LABELS[6]
                            } else {
                                RELATION_LABELS[7]
                            },
                            father_given: Some(son_given.as_str()),
                            force_gen: None,
                            id_county: code,
                        },
                        rng,
                        &names,
                    );
                    names.push(gc.name());
                    members.push(gc);
                }
            }
        } else {
            // The head's parents.
            for (male, rel) in [(true, RELATION_LABELS[8]), (false, RELATION_LABELS[9])] {
                if members.len() >= size {
                    break;
                }
                let year = head_year - rng.range(20, 34);
                let p = self.person(
                    &Birth {
                        village,
                        surname: if male {
                            family
                        } else {
                            self.outside_surname(rng, village, family)
                        },
                        male,
                        true_birth: random_date(rng, year),
                        generation: g - 1,
                        rel,
                        father_given: None,
                        force_gen: if male { None } else { Some(None) },
                        id_county: code,
                    },
                    rng,
                    &names,
                );
                names.push(p.name());
                members.push(p);
            }
        }
        // Any place left: an unmarried brother of the head, or a late child.
        while members.len() < size {
            let brother = rng.chance(0.3);
            let year = if brother {
                head_year + rng.range(-8, 8)
            } else {
                (head_year + rng.range(22, 42)).min(LAST_BIRTH.0)
            };
            let male = brother || rng.chance(0.5);
            let p = self.person(
                &Birth {
                    village,
                    surname: family,
                    male,
                    true_birth: random_date(rng, year),
                    generation: if brother { g } else { g + 1 },
                    rel: if brother {
                        RELATION_LABELS[10]
                    } else if male {
                        RELATION_LABELS[2]
                    } else {
                        RELATION_LABELS[3]
                    },
                    father_given: if brother { None } else { father_given },
                    force_gen: None,
                    id_county: code,
                },
                rng,
                &names,
            );
            names.push(p.name());
            members.push(p);
        }
        // Phones.
        let phone = if rng.chance(0.75) {
            Some(new_phone(rng))
        } else {
            None
        };
        for m in &mut members {
            let age = LAST_BIRTH.0 - m.true_birth.year();
            if (16..=70).contains(&age) && rng.chance(0.4) {
                m.own_phone = Some(new_phone(rng));
            }
            m.reg_phone = match (&m.own_phone, &phone) {
                (Some(own), _) if rng.chance(0.8) => own.clone(),
                (_, Some(hp)) if rng.chance(if age < 16 { 0.35 } else { 0.6 }) => hp.clone(),
                _ => String::new(),
            };
        }
        Household {
            no,
            village,
            group: 1 + rng.below(12) as u8,
            members,
        }
    }

    /// A twin of `sib`: same date, similar name, id sequence next to the sibling's.
    fn twin_of(
        &mut self,
        rng: &mut Rng,
        sib: &Person,
        birth: &Birth<'_>,
        taken: &[String],
        prefix: u32,
        male: bool,
    ) -> Person {
        let mut given = String::new();
        let sib_chars: Vec<char> = sib.given.chars().collect();
        for attempt in 0..10 {
            given = if sib.yi {
                let pool = if male { YI_MALE } else { YI_FEMALE };
                (*rng.pick(pool)).to_string()
            } else if let Some(pair) = sib_chars.last().and_then(|l| {
                TWIN_PAIRS.iter().find_map(|(a, b)| {
                    if a == l {
                        Some(*b)
                    } else if b == l {
                        Some(*a)
                    } else {
                        None
                    }
                })
            }) && attempt == 0
            {
                let mut cs = sib_chars.clone();
                let n = cs.len();
                cs[n - 1] = pair;
                cs.into_iter().collect()
            } else if sib_chars.len() >= 2 {
                let pool = char_pool(male, sib.true_birth.year());
                format!("{}{}", sib_chars[0], rng.pick(pool))
            } else {
                rng.pick(char_pool(male, sib.true_birth.year())).to_string()
            };
            if !taken.contains(&format!("{}{given}", sib.surname)) && given != sib.given {
                break;
            }
        }
        let sib_seq = sib.id.get(14..17).and_then(|s| s.parse::<u32>().ok());
        let (id, _) = self.ids.issue(rng, prefix, sib.reg_birth, male, sib_seq);
        Person {
            row: None,
            surname: sib.surname.clone(),
            given: given.clone(),
            dot: sib.dot,
            yi: sib.yi,
            male,
            true_birth: sib.true_birth,
            reg_birth: sib.reg_birth,
            id,
            own_phone: None,
            reg_phone: String::new(),
            rel: if male {
                RELATION_LABELS[2]
            } else {
                RELATION_LABELS[3]
            },
            gen_char: sib.gen_char.filter(|g| given.starts_with(*g)),
            common: false,
            generation: birth.generation,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parties.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Registered,
    SameNameVillage,
    UnregRelative,
    UnregTwin,
    CommonNameElsewhere,
    Local,
}

const KINDS: [(Kind, f64); 6] = [
    (Kind::Registered, 0.75),
    (Kind::SameNameVillage, 0.05),
    (Kind::UnregRelative, 0.06),
    (Kind::UnregTwin, 0.025),
    (Kind::CommonNameElsewhere, 0.04),
    (Kind::Local, 0.075),
];

/// The clean identity behind one party, kept for the tests.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Trace {
    kind: Kind,
    /// The registry row the party is (Registered) or was built from (hard negatives).
    anchor: Option<u32>,
    anchor_household: Option<u32>,
    name: String,
    surname: String,
    gen_char: Option<char>,
    reg_birth: NaiveDate,
    county: u32,
    township: String,
    village: String,
    phone: String,
}

/// A person as a case file knows them, before noise.
struct Ident<'a> {
    p: &'a Person,
    village: usize,
    group: u8,
    relative_ids: Vec<String>,
    relative_phones: Vec<String>,
}

fn household_ident<'a>(hh: &'a Household, m: usize) -> Ident<'a> {
    let others = hh
        .members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != m)
        .map(|(_, p)| p);
    Ident {
        p: &hh.members[m],
        village: hh.village,
        group: hh.group,
        relative_ids: others.clone().map(|p| p.id.clone()).collect(),
        relative_phones: others
            .map(|p| p.reg_phone.clone())
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

fn char_group(groups: &[&str], ch: char) -> Option<Vec<char>> {
    groups
        .iter()
        .find(|g| g.contains(ch))
        .map(|g| g.chars().filter(|c| *c != ch).collect())
}

fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c),
            'X' => 'Ｘ',
            _ => c,
        })
        .collect()
}

/// Replace one character found in `groups`, given name first (surname with `p_surname`).
fn swap_char(
    rng: &mut Rng,
    surname: &str,
    given: &str,
    groups: &[&str],
    p_surname: f64,
) -> Option<(String, String)> {
    let try_part = |rng: &mut Rng, part: &str| -> Option<String> {
        let chars: Vec<char> = part.chars().collect();
        let slots: Vec<usize> = (0..chars.len())
            .filter(|i| char_group(groups, chars[*i]).is_some())
            .collect();
        if slots.is_empty() {
            return None;
        }
        let i = *rng.pick(&slots);
        let alts = char_group(groups, chars[i])?;
        let mut out = chars.clone();
        out[i] = *rng.pick(&alts);
        Some(out.into_iter().collect())
    };
    if rng.chance(p_surname)
        && let Some(s) = try_part(rng, surname)
    {
        return Some((s, given.to_string()));
    }
    if let Some(g) = try_part(rng, given) {
        return Some((surname.to_string(), g));
    }
    try_part(rng, surname).map(|s| (s, given.to_string()))
}

fn noisy_name(rng: &mut Rng, p: &Person, age: i32) -> String {
    let plain = |s: &str, g: &str| format!("{s}{g}");
    if p.yi {
        let sep: String = match (p.dot, rng.unit()) {
            (true, x) if x < 0.45 => "·".into(),
            (true, x) if x < 0.85 => String::new(),
            (true, _) => (*rng.pick(DOTS)).into(),
            (false, x) if x < 0.12 => "·".into(),
            (false, x) if x < 0.17 => (*rng.pick(DOTS)).into(),
            (false, _) => String::new(),
        };
        let x = rng.unit();
        let (s, g) = if x < 0.10 {
            swap_char(rng, &p.surname, &p.given, HOMOPHONES, 0.3)
                .unwrap_or((p.surname.clone(), p.given.clone()))
        } else if x < 0.13 && p.given.chars().count() >= 2 {
            let g: String = p.given.chars().skip(1).collect();
            (p.surname.clone(), g)
        } else if x < 0.16 {
            return p.given.clone();
        } else if x < 0.17 {
            (to_traditional(&p.surname), to_traditional(&p.given))
        } else {
            (p.surname.clone(), p.given.clone())
        };
        return format!("{s}{sep}{g}");
    }
    let x = rng.unit();
    let exact = plain(&p.surname, &p.given);
    let given: Vec<char> = p.given.chars().collect();
    if x < 0.78 {
        exact
    } else if x < 0.82 {
        to_traditional(&exact)
    } else if x < 0.88 {
        swap_char(rng, &p.surname, &p.given, HOMOPHONES, 0.15).map_or(exact, |(s, g)| plain(&s, &g))
    } else if x < 0.905 {
        swap_char(rng, &p.surname, &p.given, LOOKALIKES, 0.1).map_or(exact, |(s, g)| plain(&s, &g))
    } else if x < 0.93 {
        if given.len() >= 2 {
            let drop = rng.below(given.len());
            let g: String = given
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, c)| *c)
                .collect();
            plain(&p.surname, &g)
        } else {
            exact
        }
    } else if x < 0.96 {
        // 乳名 and how neighbours call someone.
        let last = given.last().copied().unwrap_or('娃');
        match rng.below(4) {
            0 if age < 30 => format!("小{last}"),
            2 if age >= 30 => format!(
                "{}老{}",
                p.surname,
                rng.pick(&["大", "二", "三", "四", "幺"])
            ),
            3 if age < 20 => format!("{last}{last}"),
            _ => format!("阿{last}"),
        }
    } else if given.len() == 1 {
        // Two-character names padded to three in forms.
        let pad = *rng.pick(&["　", " ", "  "]);
        format!("{}{pad}{}", p.surname, p.given)
    } else {
        exact
    }
}

fn to_traditional(s: &str) -> String {
    s.chars()
        .map(|c| {
            TRADITIONAL
                .iter()
                .find(|(a, _)| *a == c)
                .map_or(c, |(_, t)| *t)
        })
        .collect()
}

fn noisy_id(rng: &mut Rng, id: &str, born: NaiveDate, relative_ids: &[String]) -> String {
    if id.is_empty() || rng.chance(0.5) {
        return String::new();
    }
    let bytes: Vec<u8> = id.bytes().collect();
    let x = rng.unit();
    if x < 0.68 {
        id.to_string()
    } else if x < 0.76 {
        let mut b = bytes;
        let i = rng.below(17);
        let old = b[i];
        let mut new = b'0' + rng.below(10) as u8;
        if new == old {
            new = b'0' + (old - b'0' + 1) % 10;
        }
        b[i] = new;
        String::from_utf8(b).unwrap_or_default()
    } else if x < 0.81 {
        let mut b = bytes;
        for _ in 0..10 {
            let i = rng.below(16);
            if b[i] != b[i + 1] {
                b.swap(i, i + 1);
                break;
            }
        }
        String::from_utf8(b).unwrap_or_default()
    } else if x < 0.87 {
        if born.year() < 2000 && id.len() == 18 {
            format!("{}{}{}", &id[..6], &id[8..14], &id[14..17])
        } else {
            id.to_string()
        }
    } else if x < 0.92 {
        if relative_ids.is_empty() {
            id.to_string()
        } else {
            rng.pick(relative_ids).clone()
        }
    } else if x < 0.96 {
        fullwidth(id)
    } else if x < 0.98 {
        id[..17.min(id.len())].to_string()
    } else {
        id.replace('X', "x")
    }
}

fn fmt_date(rng: &mut Rng, y: i32, m: u32, d: u32) -> String {
    let s = match rng.index(&[0.40, 0.25, 0.10, 0.10, 0.10, 0.05]) {
        0 => format!("{y:04}-{m:02}-{d:02}"),
        1 => format!("{y}年{m}月{d}日"),
        2 => format!("{y:04}/{m:02}/{d:02}"),
        3 => format!("{y:04}{m:02}{d:02}"),
        4 => format!("{y}.{m}.{d}"),
        _ => format!("{y}-{m}-{d}"),
    };
    if rng.chance(0.04) { fullwidth(&s) } else { s }
}

fn noisy_date(rng: &mut Rng, p: &Person) -> String {
    if rng.chance(0.10) {
        return String::new();
    }
    let base = if p.reg_birth != p.true_birth && rng.chance(0.6) {
        p.true_birth
    } else {
        p.reg_birth
    };
    let (y, m, d) = (base.year(), base.month(), base.day());
    let p_year_only = if y < 1950 { 0.12 } else { 0.04 };
    let x = rng.unit();
    if x < 0.03 && d <= 12 && d != m {
        return fmt_date(rng, y, d, m);
    }
    if x < 0.06 {
        let digits = format!("{y:04}{m:02}{d:02}");
        for _ in 0..10 {
            let mut b: Vec<u8> = digits.bytes().collect();
            let i = 2 + rng.below(6);
            b[i] = b'0' + rng.below(10) as u8;
            let s = String::from_utf8(b).unwrap_or_default();
            let parsed = NaiveDate::parse_from_str(&s, "%Y%m%d").ok();
            if let Some(nd) = parsed.filter(|nd| *nd != base && nd.year() <= LAST_BIRTH.0) {
                return fmt_date(rng, nd.year(), nd.month(), nd.day());
            }
        }
        return fmt_date(rng, y, m, d);
    }
    if x < 0.06 + p_year_only {
        return if rng.chance(0.6) {
            format!("{y}年")
        } else {
            format!("{y}")
        };
    }
    if x < 0.09 + p_year_only && p.true_birth.year() < 1970 {
        // The lunar birthday written as if solar: month and day come out 20–50 days early.
        let nd = add_days(base, -i64::from(rng.range(20, 50)));
        return fmt_date(rng, nd.year(), nd.month(), nd.day());
    }
    fmt_date(rng, y, m, d)
}

fn noisy_phone(rng: &mut Rng, p: &Person, relative_phones: &[String]) -> String {
    let x = rng.unit();
    let raw = if x < 0.40 {
        return String::new();
    } else if x < 0.75 && !p.reg_phone.is_empty() {
        p.reg_phone.clone()
    } else if x < 0.85 && !relative_phones.is_empty() {
        rng.pick(relative_phones).clone()
    } else {
        p.own_phone
            .clone()
            .filter(|o| *o != p.reg_phone)
            .unwrap_or_else(|| new_phone(rng))
    };
    let y = rng.unit();
    if y < 0.03 && raw.len() == 11 {
        format!("{}-{}-{}", &raw[..3], &raw[3..7], &raw[7..])
    } else if y < 0.05 {
        format!("+86{raw}")
    } else {
        raw
    }
}

fn noisy_address(rng: &mut Rng, world: &World, village: usize, group: u8) -> String {
    let v = &world.villages[village];
    let county = &COUNTIES[v.county];
    let town = &world.townships[v.county][v.township];
    let grp = CN_NUM[usize::from(group.clamp(1, 12)) - 1];
    match rng.index(&[0.35, 0.20, 0.15, 0.08, 0.07, 0.07, 0.08]) {
        0 => format!(
            "{}{}{}{}{}组",
            county.prov, county.name, town, v.name, group
        ),
        1 => format!("{}{}{}", county.name, town, v.name),
        2 => format!("{town}{}{grp}组{}号", v.name, 1 + rng.below(80)),
        3 => format!("{town}{}", v.name.trim_end_matches('村')),
        4 => String::new(),
        5 => format!(
            "{}务工，户籍地{}{}",
            rng.pick(WORK_CITIES),
            county.name,
            v.name
        ),
        _ => {
            let stem = v.name.trim_end_matches('村');
            let noisy = swap_char(rng, "", stem, HOMOPHONES, 0.0)
                .map_or_else(|| stem.to_string(), |(_, g)| g);
            format!("{}{}{}村", county.name, town, noisy)
        }
    }
}

/// Writes one party's noisy fields.
fn party_row(rng: &mut Rng, world: &World, ident: &Ident<'_>, case_year: i32) -> [String; 7] {
    let p = ident.p;
    let age = case_year - p.true_birth.year();
    let name = noisy_name(rng, p, age);
    let id = noisy_id(rng, &p.id, p.reg_birth, &ident.relative_ids);
    let gender = match rng.unit() {
        x if x < 0.03 => String::new(),
        x if x < 0.04 => (if p.male { "女" } else { "男" }).to_string(),
        _ => (if p.male { "男" } else { "女" }).to_string(),
    };
    let birth = noisy_date(rng, p);
    let phone = noisy_phone(rng, p, &ident.relative_phones);
    let home = world.villages[ident.village].county;
    let region = match rng.unit() {
        x if x < 0.80 => COUNTIES[home].code.to_string(),
        x if x < 0.88 => COUNTIES[world.neighbour(rng, home)].code.to_string(),
        _ => String::new(),
    };
    let address = noisy_address(rng, world, ident.village, ident.group);
    [name, id, gender, birth, phone, region, address]
}

struct Case {
    no: String,
    year: i32,
    hh: Option<Rc<Household>>,
    used: Vec<usize>,
    size: usize,
    minor: bool,
}

const REGISTRY_HEADER: [&str; 12] = [
    "source_record_id",
    "full_name",
    "gender",
    "birth_date",
    "resident_id",
    "region_code",
    "township",
    "village",
    "address_text",
    "phone",
    "household_ref",
    "relationship",
];
const PARTIES_HEADER: [&str; 11] = [
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
];

fn record_id(row: u32) -> String {
    format!("B-{:07}", u64::from(row) + 1)
}

fn generate<R: Write, P: Write>(
    persons: u64,
    parties: u64,
    seed: u64,
    reg: R,
    par: P,
) -> io::Result<(Summary, Vec<Trace>)> {
    let world = World::build(seed);
    let mut ids = IdBook::default();
    ids.0
        .reserve(persons.min(50_000_000) as usize + parties as usize);
    let mut pop_rng = Rng::new(seed, 2);
    let mut res_rng = Rng::new(seed, 3);
    let capacity = (parties as usize).saturating_mul(3) / 2 + 64;
    let mut reservoir: Vec<(Rc<Household>, usize)> =
        Vec::with_capacity(capacity.min(persons as usize));
    let mut seen: u64 = 0;

    let mut w = csv::Writer::from_writer(reg);
    w.write_record(REGISTRY_HEADER)?;
    let mut written: u64 = 0;
    let mut hh_no: u32 = 0;
    while written < persons {
        hh_no += 1;
        let mut mk = Gen {
            world: &world,
            ids: &mut ids,
        };
        let mut hh = mk.household(&mut pop_rng, hh_no);
        let left = (persons - written) as usize;
        hh.members.truncate(left);
        let v = &world.villages[hh.village];
        let county = &COUNTIES[v.county];
        let town = &world.townships[v.county][v.township];
        let address = if pop_rng.chance(0.7) {
            format!(
                "{}{}{}{}{}{}组",
                county.prov, county.pref, county.name, town, v.name, hh.group
            )
        } else {
            format!("{}{}{}{}组", county.name, town, v.name, hh.group)
        };
        let code = county.code.to_string();
        let hh_ref = format!("HH{:07}", hh.no);
        for m in &mut hh.members {
            let row = written as u32;
            m.row = Some(row);
            let birth = m.reg_birth.format("%Y-%m-%d").to_string();
            w.write_record([
                record_id(row).as_str(),
                m.name().as_str(),
                if m.male { "男" } else { "女" },
                birth.as_str(),
                m.id.as_str(),
                code.as_str(),
                town.as_str(),
                v.name.as_str(),
                address.as_str(),
                m.reg_phone.as_str(),
                hh_ref.as_str(),
                m.rel,
            ])?;
            written += 1;
        }
        // Reservoir sampling over persons (not households), so every person is equally likely.
        let hh = Rc::new(hh);
        for m in 0..hh.members.len() {
            if reservoir.len() < capacity {
                reservoir.push((Rc::clone(&hh), m));
            } else {
                let j = res_rng.below(seen as usize + 1);
                if j < capacity {
                    reservoir[j] = (Rc::clone(&hh), m);
                }
            }
            seen += 1;
        }
    }
    w.flush()?;
    drop(w);

    // Parties.
    let mut rng = Rng::new(seed, 4);
    let mut pool: Vec<usize> = (0..reservoir.len()).collect();
    let mut out = csv::Writer::from_writer(par);
    out.write_record(PARTIES_HEADER)?;
    let mut traces = Vec::with_capacity(parties as usize);
    let mut case: Option<Case> = None;
    let mut case_seq: u32 = 0;
    let mut registered: u64 = 0;
    let weights: Vec<f64> = KINDS.iter().map(|(_, w)| *w).collect();
    for i in 0..parties {
        let mut kind = KINDS[rng.index(&weights)].0;
        if reservoir.is_empty() {
            kind = Kind::Local;
        }
        // A relative of the current case's household, if the draw allows it.
        let attach = match &case {
            Some(c) => {
                c.hh.is_some()
                    && c.size < 3
                    && matches!(kind, Kind::Registered | Kind::UnregRelative)
                    && rng.chance(0.4)
            }
            None => false,
        };
        let mut attached: Option<(Rc<Household>, usize)> = None;
        if attach
            && let Some(c) = &case
            && let Some(hh) = &c.hh
        {
            let free: Vec<usize> = (0..hh.members.len())
                .filter(|m| !c.used.contains(m) && hh.members[*m].true_birth.year() <= c.year)
                .collect();
            if !free.is_empty() {
                attached = Some((Rc::clone(hh), *rng.pick(&free)));
            } else if kind == Kind::UnregRelative {
                // Any member leads to the family line.
                attached = Some((Rc::clone(hh), 0));
            }
        }
        let role;
        let anchor: (Rc<Household>, usize);
        if let Some(a) = attached {
            anchor = a;
            role = if case.as_ref().is_some_and(|c| c.minor) {
                "法定代理人"
            } else {
                "近亲属"
            };
        } else {
            role = "被害人";
            anchor = if kind == Kind::Registered {
                if pool.is_empty() {
                    pool = (0..reservoir.len()).collect();
                }
                let k = rng.below(pool.len());
                let slot = pool.swap_remove(k);
                reservoir[slot].clone()
            } else if kind == Kind::CommonNameElsewhere {
                let mut found = None;
                for _ in 0..64 {
                    let cand = rng.pick(&reservoir);
                    if cand.0.members[cand.1].common {
                        found = Some(cand.clone());
                        break;
                    }
                }
                found.unwrap_or_else(|| rng.pick(&reservoir).clone())
            } else if kind == Kind::Local {
                // Anchor unused for locals; keep a placeholder household out of the reservoir.
                match reservoir.first() {
                    Some(r) => r.clone(),
                    None => {
                        let mut mk = Gen {
                            world: &world,
                            ids: &mut ids,
                        };
                        (Rc::new(mk.household(&mut rng, 0)), 0)
                    }
                }
            } else {
                rng.pick(&reservoir).clone()
            };
        }
        let (hh, m) = (&anchor.0, anchor.1);
        let year = case
            .as_ref()
            .filter(|_| role != "被害人")
            .map_or_else(|| rng.range(2019, 2024), |c| c.year);

        // The person the party is.
        let mut mk = Gen {
            world: &world,
            ids: &mut ids,
        };
        let made: Option<(Person, usize, u8)> = match kind {
            Kind::Registered => None,
            Kind::SameNameVillage => Some((
                same_name_other_birth(&mut mk, &mut rng, hh, m),
                hh.village,
                hh.group,
            )),
            Kind::UnregRelative => Some((
                unregistered_relative(&mut mk, &mut rng, hh, m, year),
                hh.village,
                hh.group,
            )),
            Kind::UnregTwin => {
                let sib = &hh.members[m];
                let prefix = sib
                    .id
                    .get(..6)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(COUNTIES[world.villages[hh.village].county].code);
                let birth = Birth {
                    village: hh.village,
                    surname: &sib.surname,
                    male: sib.male,
                    true_birth: sib.true_birth,
                    generation: sib.generation,
                    rel: sib.rel,
                    father_given: None,
                    force_gen: None,
                    id_county: prefix,
                };
                let male = if rng.chance(0.6) { sib.male } else { !sib.male };
                let mut t = mk.twin_of(&mut rng, sib, &birth, &hh.names(), prefix, male);
                // A twin born into the family whose hukou moved out (married out, army, work)
                // still lives in the village half of the time and gives the family's phone; the
                // twin of a married-in wife lives where she came from.
                let home = blood(sib) && rng.chance(0.5);
                let county = world.villages[hh.village].county;
                let village = if home {
                    t.reg_phone = hh.visible_phone();
                    hh.village
                } else {
                    t.reg_phone = if rng.chance(0.5) {
                        new_phone(&mut rng)
                    } else {
                        String::new()
                    };
                    let from = COUNTIES
                        .iter()
                        .position(|c| c.code == prefix)
                        .unwrap_or(county);
                    world.village_in(&mut rng, from)
                };
                Some((t, village, 1 + rng.below(12) as u8))
            }
            Kind::CommonNameElsewhere => {
                let src = &hh.members[m];
                let home = world.villages[hh.village].county;
                let county = loop {
                    let c = if rng.chance(0.5) {
                        let prov = COUNTIES[home].prov;
                        let same: Vec<usize> = (0..COUNTIES.len())
                            .filter(|i| COUNTIES[*i].prov == prov && *i != home)
                            .collect();
                        if same.is_empty() {
                            world.county_pick.draw(&mut rng)
                        } else {
                            *rng.pick(&same)
                        }
                    } else {
                        world.county_pick.draw(&mut rng)
                    };
                    let fits = src.yi == (COUNTIES[c].flavor == Flavor::Yi) || rng.chance(0.1);
                    if c != home && fits {
                        break c;
                    }
                };
                let village = world.village_in(&mut rng, county);
                let year = (src.true_birth.year() + rng.range(-20, 20)).clamp(1935, 2012);
                let true_birth = random_date(&mut rng, year);
                let reg_birth = hukou_date(&mut rng, true_birth);
                let (id, _) =
                    mk.ids
                        .issue(&mut rng, COUNTIES[county].code, reg_birth, src.male, None);
                let mut p = src.clone();
                p.row = None;
                p.true_birth = true_birth;
                p.reg_birth = reg_birth;
                p.id = id;
                p.own_phone = None;
                p.reg_phone = if rng.chance(0.6) {
                    new_phone(&mut rng)
                } else {
                    String::new()
                };
                Some((p, village, 1 + rng.below(12) as u8))
            }
            Kind::Local => {
                let mut h = mk.household(&mut rng, 0);
                let k = rng.below(h.members.len());
                let p = h.members.swap_remove(k);
                Some((p, h.village, h.group))
            }
        };
        let (trace, fields) = {
            let (ident, anchor_row) = match &made {
                None => (household_ident(hh, m), hh.members[m].row),
                Some((p, village, group)) => {
                    let mut id = Ident {
                        p,
                        village: *village,
                        group: *group,
                        relative_ids: Vec::new(),
                        relative_phones: Vec::new(),
                    };
                    if matches!(kind, Kind::UnregRelative | Kind::UnregTwin) {
                        let h = household_ident(hh, m);
                        id.relative_ids = hh.members.iter().map(|x| x.id.clone()).collect();
                        id.relative_phones = h.relative_phones;
                    }
                    (
                        id,
                        if kind == Kind::Local {
                            None
                        } else {
                            hh.members[m].row
                        },
                    )
                }
            };
            // A case is never older than its victim.
            let year = if role == "被害人" {
                year.max(ident.p.true_birth.year())
            } else {
                year
            };
            if role == "被害人" {
                case_seq += 1;
                let county = world.villages[ident.village].county;
                let c = &COUNTIES[county];
                let short: String = c.name.chars().next().map(String::from).unwrap_or_default();
                let minor = year - ident.p.true_birth.year() < 18;
                case = Some(Case {
                    no: format!("{}{}检刑诉〔{}〕{}号", c.abbr, short, year, case_seq),
                    year,
                    // Relatives join only when the victim really belongs to the anchor's family.
                    hh: if matches!(
                        kind,
                        Kind::Registered | Kind::UnregRelative | Kind::UnregTwin
                    ) {
                        Some(Rc::clone(hh))
                    } else {
                        None
                    },
                    used: if kind == Kind::Registered {
                        vec![m]
                    } else {
                        Vec::new()
                    },
                    size: 1,
                    minor,
                });
            } else if let Some(c) = &mut case {
                c.size += 1;
                if kind == Kind::Registered {
                    c.used.push(m);
                }
            }
            let case_no = case.as_ref().map_or_else(String::new, |c| c.no.clone());
            let v = &world.villages[ident.village];
            let trace = Trace {
                kind,
                anchor: anchor_row,
                anchor_household: if kind == Kind::Local {
                    None
                } else {
                    Some(hh.no)
                },
                name: ident.p.name(),
                surname: ident.p.surname.clone(),
                gen_char: ident.p.gen_char,
                reg_birth: ident.p.reg_birth,
                county: COUNTIES[v.county].code,
                township: world.townships[v.county][v.township].clone(),
                village: v.name.clone(),
                phone: ident.p.reg_phone.clone(),
            };
            let f = party_row(&mut rng, &world, &ident, year);
            let truth = if kind == Kind::Registered {
                ident.p.row.map(record_id).unwrap_or_default()
            } else {
                String::new()
            };
            (trace, (case_no, f, truth))
        };
        let (case_no, f, truth) = fields;
        if !truth.is_empty() {
            registered += 1;
        }
        let pid = format!("P-{:06}", i + 1);
        out.write_record([
            pid.as_str(),
            case_no.as_str(),
            f[0].as_str(),
            f[1].as_str(),
            f[2].as_str(),
            f[3].as_str(),
            f[4].as_str(),
            f[5].as_str(),
            f[6].as_str(),
            role,
            truth.as_str(),
        ])?;
        traces.push(trace);
    }
    out.flush()?;
    Ok((
        Summary {
            persons: written,
            parties,
            registered_parties: registered,
        },
        traces,
    ))
}

/// Born into the household's family line (not married in), so sharing its surname and poem.
fn blood(p: &Person) -> bool {
    matches!(p.rel, "子" | "女" | "孙子" | "孙女" | "父" | "兄弟") || (p.rel == "户主" && p.male)
}

/// Someone of the same name in the same village, born on another date.
fn same_name_other_birth(mk: &mut Gen<'_>, rng: &mut Rng, hh: &Household, m: usize) -> Person {
    let src = &hh.members[m];
    let mut p = src.clone();
    p.row = None;
    let mut true_birth = src.true_birth;
    for _ in 0..20 {
        true_birth = if rng.chance(0.25) {
            // Same year, another day at least a month away.
            add_days(
                src.true_birth,
                i64::from(rng.range(30, 300)) * if rng.chance(0.5) { 1 } else { -1 },
            )
        } else {
            let year = (src.true_birth.year()
                + rng.range(1, 25) * if rng.chance(0.5) { 1 } else { -1 })
            .clamp(1930, 2012);
            random_date(rng, year)
        };
        let clash = hh
            .members
            .iter()
            .any(|x| x.true_birth == true_birth || x.reg_birth == true_birth);
        if !clash && true_birth.year() <= LAST_BIRTH.0 {
            break;
        }
    }
    p.true_birth = true_birth;
    p.reg_birth = hukou_date(rng, true_birth);
    if p.reg_birth == src.reg_birth {
        p.reg_birth = true_birth;
    }
    let county = mk.world.villages[hh.village].county;
    p.id = mk
        .ids
        .issue(rng, COUNTIES[county].code, p.reg_birth, p.male, None)
        .0;
    p.own_phone = None;
    p.reg_phone = if rng.chance(0.5) {
        new_phone(rng)
    } else {
        String::new()
    };
    p.rel = "";
    p
}

/// A sibling or cousin of the household's blood line who is not registered: same surname and
/// generation character, same village, the household's phone.
fn unregistered_relative(
    mk: &mut Gen<'_>,
    rng: &mut Rng,
    hh: &Household,
    m: usize,
    max_year: i32,
) -> Person {
    let base = if blood(&hh.members[m]) {
        &hh.members[m]
    } else {
        hh.members
            .iter()
            .find(|p| blood(p))
            .unwrap_or(&hh.members[m])
    };
    let male = rng.chance(0.6);
    let year =
        (base.true_birth.year() + rng.range(-12, 12)).clamp(1930, max_year.min(LAST_BIRTH.0));
    let force_gen = if base.yi {
        None
    } else if let Some(g) = base.gen_char {
        if male || rng.chance(0.4) {
            Some(Some(g))
        } else {
            Some(None)
        }
    } else if male {
        Some(Some(mk.world.gen_char(
            hh.village,
            &base.surname,
            base.generation,
        )))
    } else {
        None
    };
    let county = mk.world.villages[hh.village].county;
    let birth = Birth {
        village: hh.village,
        surname: &base.surname,
        male,
        true_birth: random_date(rng, year),
        generation: base.generation,
        rel: "",
        father_given: None,
        force_gen,
        id_county: COUNTIES[county].code,
    };
    let mut p = mk.person(&birth, rng, &hh.names());
    p.dot = base.dot && rng.chance(0.5);
    p.reg_phone = hh.visible_phone();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    type Row = HashMap<String, String>;
    type Rows = Vec<Row>;

    fn read_csv(bytes: &[u8]) -> Rows {
        let mut r = csv::Reader::from_reader(bytes);
        let headers: Vec<String> = r
            .headers()
            .map(|h| h.iter().map(String::from).collect())
            .unwrap_or_default();
        r.records()
            .filter_map(Result::ok)
            .map(|rec| {
                headers
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(String::from))
                    .collect()
            })
            .collect()
    }

    fn run(persons: u64, parties: u64, seed: u64) -> (Vec<u8>, Vec<u8>, Summary, Vec<Trace>) {
        let mut reg = Vec::new();
        let mut par = Vec::new();
        let (s, t) = generate(persons, parties, seed, &mut reg, &mut par)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        (reg, par, s, t)
    }

    fn valid_id(id: &str) -> bool {
        let b = id.as_bytes();
        b.len() == 18 && check_char(&b[..17]).is_some_and(|c| c as u8 == b[17])
    }

    #[test]
    fn linkage_same_seed_same_bytes() {
        let a = run(3000, 500, 7);
        let b = run(3000, 500, 7);
        assert!(
            a.0 == b.0 && a.1 == b.1,
            "same seed must give identical files"
        );
        let c = run(3000, 500, 8);
        assert!(
            a.0 != c.0 && a.1 != c.1,
            "another seed must give other files"
        );
        // The registry does not depend on how many parties are drawn from it.
        let d = run(3000, 50, 7);
        assert!(a.0 == d.0);
    }

    #[test]
    fn linkage_write_to_files() {
        let dir = std::env::temp_dir().join(format!("evalgen-linkage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let (r, p) = (dir.join("registry.csv"), dir.join("parties.csv"));
        let s = write(2000, 300, 3, &r, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.persons, s.parties), (2000, 300));
        let reg = std::fs::read(&r).unwrap_or_default();
        let par = std::fs::read(&p).unwrap_or_default();
        assert_eq!(read_csv(&reg).len(), 2000);
        let rows = read_csv(&par);
        assert_eq!(rows.len(), 300);
        assert_eq!(
            rows.iter()
                .filter(|r| !r["true_person_id"].is_empty())
                .count() as u64,
            s.registered_parties
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn linkage_registry_ids_valid_and_consistent() {
        let (reg, _, s, _) = run(20_000, 10, 11);
        let rows = read_csv(&reg);
        assert_eq!(rows.len() as u64, s.persons);
        let codes: HashSet<String> = COUNTIES.iter().map(|c| c.code.to_string()).collect();
        let mut ids = HashSet::new();
        let mut rec = HashSet::new();
        let mut default_dates = 0;
        for r in &rows {
            let id = &r["resident_id"];
            assert!(valid_id(id), "invalid id {id}");
            let birth = r["birth_date"].replace('-', "");
            assert_eq!(&id[6..14], birth, "id {id} vs birth {}", r["birth_date"]);
            assert!(NaiveDate::parse_from_str(&r["birth_date"], "%Y-%m-%d").is_ok());
            let odd = (id.as_bytes()[16] - b'0') % 2 == 1;
            assert_eq!(odd, r["gender"] == "男", "sex digit of {id}");
            assert!(r["gender"] == "男" || r["gender"] == "女");
            assert!(codes.contains(&r["region_code"]));
            assert!(codes.contains(&id[..6]), "id prefix {id}");
            assert!(ids.insert(id.clone()), "duplicate id {id}");
            assert!(rec.insert(r["source_record_id"].clone()));
            let ph = &r["phone"];
            assert!(
                ph.is_empty()
                    || ph.len() == 11
                        && ph.starts_with('1')
                        && ph.bytes().all(|b| b.is_ascii_digit())
            );
            if r["birth_date"].ends_with("-01-01") {
                default_dates += 1;
            }
            assert!(!r["household_ref"].is_empty() && !r["relationship"].is_empty());
        }
        // Hukou default dates show as a spike on 1 January (1/365 would be ~55 of 20,000).
        assert!(default_dates > 300, "default dates: {default_dates}");
        let empty_phone =
            rows.iter().filter(|r| r["phone"].is_empty()).count() as f64 / rows.len() as f64;
        assert!(
            (0.25..0.6).contains(&empty_phone),
            "empty phones {empty_phone}"
        );
    }

    #[test]
    fn linkage_population_realism() {
        let (reg, _, _, _) = run(30_000, 10, 5);
        let rows = read_csv(&reg);
        let n = rows.len() as f64;
        // Heavy surname head: 王 + 李 + 张 + 刘 + 陈 between 12% and 35%.
        let head = rows
            .iter()
            .filter(|r| {
                ["王", "李", "张", "刘", "陈"]
                    .iter()
                    .any(|s| r["full_name"].starts_with(s))
            })
            .count() as f64;
        assert!(
            (0.12..0.35).contains(&(head / n)),
            "top-5 surname share {}",
            head / n
        );
        // Yi names in Liangshan, some with the dot.
        let ls: Vec<_> = rows
            .iter()
            .filter(|r| r["region_code"].starts_with("5134"))
            .collect();
        let yi = ls
            .iter()
            .filter(|r| {
                YI_SURNAMES
                    .iter()
                    .any(|(s, _)| r["full_name"].starts_with(s))
            })
            .count();
        let dot = ls.iter().filter(|r| r["full_name"].contains('·')).count();
        assert!(
            yi * 2 > ls.len() && dot > 0 && dot * 4 < yi,
            "Liangshan {} yi {yi} dot {dot}",
            ls.len()
        );
        // Village names repeat across counties.
        let mut counties_of: HashMap<&str, HashSet<&str>> = HashMap::new();
        for r in &rows {
            counties_of
                .entry(r["village"].as_str())
                .or_default()
                .insert(r["region_code"].as_str());
        }
        assert!(counties_of.get("新村").is_some_and(|c| c.len() >= 10));
        // Households of 1..=7 sharing a household_ref; twins exist.
        let mut hh: HashMap<&str, Vec<&HashMap<String, String>>> = HashMap::new();
        for r in &rows {
            hh.entry(r["household_ref"].as_str()).or_default().push(r);
        }
        assert!(hh.values().all(|m| (1..=7).contains(&m.len())));
        assert!(
            hh.values()
                .all(|m| m.iter().filter(|r| r["relationship"] == "户主").count() <= 1)
        );
        let twins = hh
            .values()
            .filter(|m| {
                let kids: Vec<_> = m
                    .iter()
                    .filter(|r| r["relationship"] == "子" || r["relationship"] == "女")
                    .collect();
                kids.iter().enumerate().any(|(i, a)| {
                    kids[i + 1..]
                        .iter()
                        .any(|b| a["birth_date"] == b["birth_date"])
                })
            })
            .count();
        assert!(twins > 20, "twin households {twins}");
        // Generation characters: brothers share the middle character in many households.
        let shared = hh
            .values()
            .filter(|m| {
                let sons: Vec<Vec<char>> = m
                    .iter()
                    .filter(|r| r["relationship"] == "子")
                    .map(|r| r["full_name"].chars().collect())
                    .collect();
                sons.len() >= 2
                    && sons[0].len() == 3
                    && sons[1].len() == 3
                    && sons[0][1] == sons[1][1]
            })
            .count();
        assert!(
            shared > 100,
            "brothers sharing a generation character: {shared}"
        );
        // Common names repeat a lot.
        let mut names: HashMap<&str, usize> = HashMap::new();
        for r in &rows {
            *names.entry(r["full_name"].as_str()).or_default() += 1;
        }
        assert!(names.values().copied().max().unwrap_or(0) >= 15);
    }

    #[test]
    fn linkage_truth_and_kind_shares() {
        let parties = 6000u64;
        let (reg, par, s, traces) = run(40_000, parties, 21);
        let reg_rows = read_csv(&reg);
        let par_rows = read_csv(&par);
        assert_eq!(par_rows.len() as u64, parties);
        let by_id: HashMap<&str, &HashMap<String, String>> = reg_rows
            .iter()
            .map(|r| (r["source_record_id"].as_str(), r))
            .collect();
        for (r, t) in par_rows.iter().zip(&traces) {
            let truth = r["true_person_id"].as_str();
            assert!(
                truth.is_empty() || by_id.contains_key(truth),
                "unknown truth {truth}"
            );
            assert_eq!(truth.is_empty(), t.kind != Kind::Registered);
            if let (false, Some(a)) = (truth.is_empty(), t.anchor) {
                assert_eq!(truth, record_id(a));
            }
        }
        let share = s.registered_parties as f64 / parties as f64;
        assert!((0.70..=0.80).contains(&share), "registered share {share}");
        for (kind, target) in KINDS {
            let got = traces.iter().filter(|t| t.kind == kind).count() as f64 / parties as f64;
            assert!((got - target).abs() <= 0.02, "{kind:?}: {got} vs {target}");
        }
        // Cases group a victim with relatives.
        let cases: HashSet<&str> = par_rows.iter().map(|r| r["case_no"].as_str()).collect();
        assert!(cases.len() * 10 < par_rows.len() * 9 && cases.len() * 10 > par_rows.len() * 6);
        assert!(par_rows.iter().any(|r| r["role"] == "近亲属"));
    }

    #[test]
    fn linkage_hard_negatives_are_hard() {
        let (reg, _, _, traces) = run(40_000, 6000, 33);
        let rows = read_csv(&reg);
        let row = |a: Option<u32>| a.and_then(|a| rows.get(a as usize));
        let mut hh_phones: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut households: HashMap<&str, Vec<&HashMap<String, String>>> = HashMap::new();
        for r in &rows {
            households
                .entry(r["household_ref"].as_str())
                .or_default()
                .push(r);
            hh_phones
                .entry(r["household_ref"].as_str())
                .or_default()
                .insert(r["phone"].as_str());
        }
        let key = |name: &str, birth: &str, code: &str| format!("{name}|{birth}|{code}");
        let registry_keys: HashSet<String> = rows
            .iter()
            .map(|r| key(&r["full_name"], &r["birth_date"], &r["region_code"]))
            .collect();
        let mut collisions = 0;
        let mut negatives = 0;
        let mut phones = 0;
        let mut relatives = 0;
        for t in &traces {
            let birth = t.reg_birth.format("%Y-%m-%d").to_string();
            if t.kind != Kind::Registered {
                negatives += 1;
                if registry_keys.contains(&key(&t.name, &birth, &t.county.to_string())) {
                    collisions += 1;
                }
            }
            match t.kind {
                Kind::SameNameVillage => {
                    let a = row(t.anchor).unwrap_or_else(|| panic!("anchor"));
                    assert_eq!(a["full_name"], t.name);
                    assert_eq!(
                        (a["village"].as_str(), a["township"].as_str()),
                        (t.village.as_str(), t.township.as_str())
                    );
                    assert_ne!(a["birth_date"], birth);
                }
                Kind::UnregRelative => {
                    relatives += 1;
                    let a = row(t.anchor).unwrap_or_else(|| panic!("anchor"));
                    assert_eq!(a["village"], t.village);
                    assert!(
                        t.anchor_household
                            .is_some_and(|h| format!("HH{h:07}") == a["household_ref"])
                    );
                    let members = &households[a["household_ref"].as_str()];
                    assert!(
                        members
                            .iter()
                            .any(|r| r["full_name"].starts_with(&t.surname)),
                        "{} in {:?}",
                        t.name,
                        a["household_ref"]
                    );
                    assert!(members.iter().all(|r| r["full_name"] != t.name));
                    if let Some(g) = t.gen_char {
                        assert!(t.name.chars().nth(t.surname.chars().count()) == Some(g));
                    }
                    assert!(
                        t.phone.is_empty()
                            || hh_phones[a["household_ref"].as_str()].contains(t.phone.as_str())
                    );
                    if !t.phone.is_empty() {
                        phones += 1;
                    }
                }
                Kind::UnregTwin => {
                    let a = row(t.anchor).unwrap_or_else(|| panic!("anchor"));
                    assert_eq!(a["birth_date"], birth);
                    assert!(a["full_name"].starts_with(&t.surname));
                    assert_ne!(a["full_name"], t.name);
                }
                Kind::CommonNameElsewhere => {
                    let a = row(t.anchor).unwrap_or_else(|| panic!("anchor"));
                    assert_eq!(a["full_name"], t.name);
                    assert_ne!(a["region_code"], t.county.to_string());
                }
                _ => {}
            }
        }
        // Negatives must not coincide with a registry person (the truth would be ambiguous).
        assert!(
            collisions * 200 <= negatives,
            "{collisions} of {negatives} negatives coincide with a registry row"
        );
        assert!(
            phones * 2 >= relatives,
            "relatives with the household phone: {phones}/{relatives}"
        );
    }

    #[test]
    fn linkage_party_noise_rates() {
        let (reg, par, _, _) = run(40_000, 8000, 9);
        let reg_rows = read_csv(&reg);
        let rows = read_csv(&par);
        let by_id: HashMap<&str, &HashMap<String, String>> = reg_rows
            .iter()
            .map(|r| (r["source_record_id"].as_str(), r))
            .collect();
        let pos: Vec<_> = rows
            .iter()
            .filter(|r| !r["true_person_id"].is_empty())
            .collect();
        let n = pos.len() as f64;
        let frac = |f: &dyn Fn(&Row, &Row) -> bool| {
            pos.iter()
                .filter(|r| f(r, by_id[r["true_person_id"].as_str()]))
                .count() as f64
                / n
        };
        let missing_id = frac(&|p, _| p["id_number"].is_empty());
        assert!(
            (0.45..0.55).contains(&missing_id),
            "missing ids {missing_id}"
        );
        let exact_id = frac(&|p, r| p["id_number"] == r["resident_id"]);
        assert!((0.30..0.40).contains(&exact_id), "exact ids {exact_id}");
        let bad_id = frac(&|p, _| !p["id_number"].is_empty() && !valid_id(&p["id_number"]));
        assert!((0.06..0.16).contains(&bad_id), "invalid ids {bad_id}");
        let old15 = frac(&|p, _| p["id_number"].len() == 15);
        assert!((0.01..0.05).contains(&old15), "15-digit ids {old15}");
        let exact_name = frac(&|p, r| p["name"] == r["full_name"]);
        assert!(
            (0.65..0.85).contains(&exact_name),
            "exact names {exact_name}"
        );
        let iso_same = frac(&|p, r| p["birth_date"] == r["birth_date"]);
        assert!(
            (0.2..0.45).contains(&iso_same),
            "dates written like the registry {iso_same}"
        );
        let cn = frac(&|p, _| p["birth_date"].contains('月'));
        assert!((0.15..0.35).contains(&cn), "年月日 dates {cn}");
        let region = frac(&|p, r| p["region_code"] == r["region_code"]);
        assert!((0.75..0.85).contains(&region), "region kept {region}");
        let phone_missing = frac(&|p, _| p["phone"].is_empty());
        assert!(
            (0.35..0.45).contains(&phone_missing),
            "phones missing {phone_missing}"
        );
        assert!(pos.iter().any(|p| {
            p["name"]
                .chars()
                .any(|c| TRADITIONAL.iter().any(|(_, t)| *t == c))
        }));
        assert!(
            rows.iter()
                .any(|p| p["birth_date"].chars().any(|c| ('０'..='９').contains(&c)))
        );
        assert!(
            rows.iter()
                .any(|p| p["name"].contains('•') || p["name"].contains('・'))
        );
    }
}
