//! The registry side of linkage: persons normalised once, blocking keys to candidates (so the
//! cost of a party grows with its candidates, not with the registry), and name frequencies for
//! term-frequency adjustment.

use std::collections::HashMap;

use jiuzhu_identity::ResidentId;

use crate::compare::{Comparison, compare};
use crate::model::{CaseHousehold, Model, Score};
use crate::normalise::{Normalised, pinyin_key};

/// A block bigger than this says little (a common surname in a large county): it is not used
/// to find candidates; the other keys still are.
pub const MAX_BLOCK: usize = 1000;

/// The keys a record is filed under: resident id; pinyin of the name with the birth year;
/// region with surname; region and village with surname; region and birth date; phone.
pub fn blocking_keys(record: &Normalised) -> Vec<String> {
    let mut keys = Vec::with_capacity(4);
    if let Some(id) = &record.resident_id {
        keys.push(format!("i{}", id.as_str()));
    }
    if !record.name.is_empty() {
        let pinyin = pinyin_key(&record.readings);
        if let Some(year) = record.birth_year() {
            keys.push(format!("p{pinyin}{year}"));
        }
        if let Some(surname) = record.surname()
            && !record.region.is_empty()
        {
            keys.push(format!("r{}{surname}", record.region));
        }
    }
    // Village names repeat across counties (新场, 大寨…): the key carries the county too.
    if let Some(surname) = record.surname()
        && !record.village.is_empty()
        && !record.region.is_empty()
    {
        keys.push(format!("v{}{}{surname}", record.region, record.village));
    }
    // A nickname or a mistyped surname shares no name key: the exact birth date in the
    // county finds them (not a register's default date, which thousands share).
    if let Some(date) = record.birth_date
        && !record.birth_estimated
        && !crate::compare::default_date(date)
        && !record.region.is_empty()
    {
        keys.push(format!("d{}{}", record.region, date.format("%Y%m%d")));
    }
    if record.phone.len() >= 7 {
        keys.push(format!("t{}", record.phone));
    }
    keys
}

/// A registry person found for a party.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub person_id: &'a str,
    pub comparison: Comparison,
    /// What the party's case says of this candidate (see [`CaseContext`]).
    pub case: CaseHousehold,
    pub score: Score,
}

impl<'a> Candidate<'a> {
    /// A candidate of `weight` before the other candidates take their share.
    fn unranked(
        person_id: &'a str,
        comparison: Comparison,
        case: CaseHousehold,
        weight: f64,
        model: &Model,
    ) -> Self {
        Self {
            person_id,
            comparison,
            case,
            score: Score {
                probability: model.probability(weight),
                weight,
                competition: 0.0,
                fields: Vec::new(),
            },
        }
    }
}

/// The registry persons that a party's co-parties in the same case (the victim, the relatives)
/// are linked to, and their households: a candidate of one of those households is more likely
/// the party, one of another household less (weights in [`Model::case_household`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseContext {
    households: Vec<u64>,
    persons: Vec<String>,
}

impl CaseContext {
    /// The context given by the persons `linked` (those the index does not hold, or whose
    /// household it does not know, say nothing).
    pub fn of<'p>(index: &Index, linked: impl IntoIterator<Item = &'p str>) -> Self {
        let mut context = Self::default();
        for person_id in linked {
            let Some(person) = index.person(person_id) else {
                continue;
            };
            if person.household != 0 && !context.households.contains(&person.household) {
                context.households.push(person.household);
            }
            context.persons.push(person_id.to_owned());
        }
        if context.households.is_empty() {
            context.persons.clear();
        }
        context
    }

    pub fn is_empty(&self) -> bool {
        self.households.is_empty()
    }

    /// What the context says of `person`: nothing without a context or a known household, or
    /// for a person a co-party is linked to themselves (two parties of a case are seldom one
    /// person, but the case says nothing of which).
    fn evidence(&self, person_id: &str, person: &Normalised) -> CaseHousehold {
        if self.households.is_empty()
            || person.household == 0
            || self.persons.iter().any(|p| p == person_id)
        {
            return None;
        }
        Some(self.households.contains(&person.household))
    }
}

/// Persons by blocking key. Records can be replaced and removed (a registry change, an
/// erasure); a removed record's slot is reused by the next one.
#[derive(Debug, Default)]
pub struct Index {
    ids: Vec<String>,
    persons: Vec<Normalised>,
    slots: HashMap<String, u32>,
    free: Vec<u32>,
    blocks: HashMap<String, Vec<u32>>,
    names: HashMap<String, u32>,
    /// Names per county ("region\u{1f}name") and county sizes: a name common in one county
    /// (a clan village) says less there than its national share suggests.
    local_names: HashMap<String, u32>,
    regions: HashMap<String, u32>,
    /// Persons per village ("region\u{1f}village"): siblings and clan cousins live in one
    /// village, so a name one character off means less there (see [`Index::random_in_village`]).
    villages: HashMap<String, Vec<u32>>,
}

/// Random draws spent per party looking for persons of its county.
const COUNTY_DRAWS: usize = 5_000;

/// A county needs this many persons before its own name shares are trusted.
pub const MIN_LOCAL_POPULATION: u32 = 200;

fn local_key(region: &str, name: &str) -> String {
    format!("{region}\u{1f}{name}")
}

fn decrement(map: &mut HashMap<String, u32>, key: &str) {
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
    }
}

impl Index {
    /// Persons in the index.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds a person, or replaces what the index holds for them.
    pub fn insert(&mut self, person_id: impl Into<String>, person: Normalised) {
        let person_id = person_id.into();
        self.remove(&person_id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => match u32::try_from(self.persons.len()) {
                Ok(slot) => {
                    self.ids.push(String::new());
                    self.persons.push(Normalised::default());
                    slot
                }
                Err(_) => return,
            },
        };
        for key in blocking_keys(&person) {
            self.blocks.entry(key).or_default().push(slot);
        }
        *self.names.entry(person.name.clone()).or_default() += 1;
        if !person.region.is_empty() {
            *self
                .local_names
                .entry(local_key(&person.region, &person.name))
                .or_default() += 1;
            *self.regions.entry(person.region.clone()).or_default() += 1;
            if !person.village.is_empty() {
                self.villages
                    .entry(local_key(&person.region, &person.village))
                    .or_default()
                    .push(slot);
            }
        }
        let at = slot as usize;
        self.ids[at].clone_from(&person_id);
        self.persons[at] = person;
        self.slots.insert(person_id, slot);
    }

    /// Takes a person out of the index (nothing happens for one it does not hold).
    pub fn remove(&mut self, person_id: &str) {
        let Some(slot) = self.slots.remove(person_id) else {
            return;
        };
        let at = slot as usize;
        let old = std::mem::take(&mut self.persons[at]);
        self.ids[at].clear();
        for key in blocking_keys(&old) {
            if let Some(block) = self.blocks.get_mut(&key) {
                block.retain(|s| *s != slot);
                if block.is_empty() {
                    self.blocks.remove(&key);
                }
            }
        }
        decrement(&mut self.names, &old.name);
        if !old.region.is_empty() {
            decrement(&mut self.local_names, &local_key(&old.region, &old.name));
            decrement(&mut self.regions, &old.region);
            let village = local_key(&old.region, &old.village);
            if let Some(residents) = self.villages.get_mut(&village) {
                residents.retain(|s| *s != slot);
                if residents.is_empty() {
                    self.villages.remove(&village);
                }
            }
        }
        self.free.push(slot);
    }

    /// Share of registry persons carrying this name.
    pub fn name_frequency(&self, name: &str) -> Option<f64> {
        let count = self.names.get(name)?;
        Some(f64::from(*count) / self.len().max(1) as f64)
    }

    /// Share of a county's registry persons carrying this name, once the county is big enough
    /// for the share to mean something.
    pub fn local_name_frequency(&self, region: &str, name: &str) -> Option<f64> {
        let size = *self.regions.get(region)?;
        if size < MIN_LOCAL_POPULATION {
            return None;
        }
        let count = self.local_names.get(&local_key(region, name))?;
        Some(f64::from(*count) / f64::from(size))
    }

    /// The registry person carrying this resident id, if one does.
    pub fn holder_of(&self, id: &ResidentId) -> Option<(&str, &Normalised)> {
        let block = self.blocks.get(&format!("i{}", id.as_str()))?;
        block.iter().find_map(|slot| {
            let person = self.persons.get(*slot as usize)?;
            (person.resident_id.as_ref() == Some(id))
                .then(|| Some((self.ids.get(*slot as usize)?.as_str(), person)))?
        })
    }

    /// What the index holds for a person.
    pub fn person(&self, person_id: &str) -> Option<&Normalised> {
        let slot = *self.slots.get(person_id)?;
        self.persons.get(slot as usize)
    }

    /// Registry persons sharing at least one usable block with the party.
    pub fn candidates(&self, party: &Normalised) -> Vec<u32> {
        let mut found: Vec<u32> = blocking_keys(party)
            .iter()
            .filter_map(|key| self.blocks.get(key))
            .filter(|block| block.len() <= MAX_BLOCK)
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Every candidate's comparison with the party (for estimating the model).
    pub fn comparisons(&self, party: &Normalised) -> Vec<Comparison> {
        self.candidates(party)
            .into_iter()
            .filter_map(|slot| self.persons.get(slot as usize))
            .map(|person| compare(party, person))
            .collect()
    }

    /// The party against `count` registry persons drawn at random (deterministic in `salt`):
    /// the comparisons non-matches give, for estimating u-probabilities.
    pub fn random_comparisons(
        &self,
        party: &Normalised,
        count: usize,
        salt: u64,
    ) -> Vec<Comparison> {
        let len = self.persons.len() as u64;
        if len == 0 {
            return Vec::new();
        }
        random_slots(len, salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .take(count)
            .filter_map(|at| {
                self.ids.get(at).filter(|id| !id.is_empty())?;
                self.persons.get(at)
            })
            .map(|person| compare(party, person))
            .collect()
    }

    /// The party against up to `count` registry persons of its own county drawn at random
    /// (deterministic in `salt`; none when the party says no county). Within a county a shared
    /// village is far likelier by chance than across the country: a village's u-probability is
    /// estimated from these, since the county's agreement is already counted.
    pub fn random_in_county(&self, party: &Normalised, count: usize, salt: u64) -> Vec<Comparison> {
        let len = self.persons.len() as u64;
        if len == 0 || party.region.is_empty() || !self.regions.contains_key(&party.region) {
            return Vec::new();
        }
        // Drawn from the whole registry and kept when in the county: bounded, so a small
        // county gives fewer pairs rather than a long search.
        let mut found = Vec::with_capacity(count);
        for at in random_slots(len, salt.wrapping_mul(0xD6E8_FEB8_6659_FD93)).take(COUNTY_DRAWS) {
            if found.len() == count {
                break;
            }
            if self.ids.get(at).is_none_or(String::is_empty) {
                continue;
            }
            if let Some(person) = self.persons.get(at)
                && person.region == party.region
            {
                found.push(compare(party, person));
            }
        }
        found
    }

    /// Up to `count` pairs of two different registry persons of one village, drawn at random
    /// (deterministic in `salt`; a village is drawn as often as it has persons). Siblings'
    /// names differ by one character (a generation name shared), so "one character off" is
    /// far commoner by chance within a village than across the country: the name's
    /// u-probabilities given the same village are estimated from these. Two registry records
    /// are two persons, so unlike a party's pairs, none of these is the person themself.
    pub fn pairs_within_villages(&self, count: usize, salt: u64) -> Vec<Comparison> {
        let len = self.persons.len() as u64;
        if len == 0 {
            return Vec::new();
        }
        let mut draws = random_slots(len, salt.wrapping_mul(0xA076_1D64_78BD_642F));
        let mut found = Vec::with_capacity(count);
        for _ in 0..count.saturating_mul(4) {
            if found.len() == count {
                break;
            }
            let Some(at) = draws.next() else { break };
            let Some(person) = self
                .persons
                .get(at)
                .filter(|_| self.ids.get(at).is_some_and(|id| !id.is_empty()))
            else {
                continue;
            };
            let Some(residents) = self
                .villages
                .get(&local_key(&person.region, &person.village))
                .filter(|residents| residents.len() > 1)
            else {
                continue;
            };
            let Some(other) = draws
                .next()
                .and_then(|n| residents.get(n % residents.len()))
                .filter(|slot| **slot as usize != at)
                .and_then(|slot| self.persons.get(*slot as usize))
            else {
                continue;
            };
            found.push(compare(person, other));
        }
        found
    }

    /// The candidates scored, best first; the best one's score is explained field by field
    /// (the others' `fields` are empty).
    pub fn scored(&self, party: &Normalised, model: &Model) -> Vec<Candidate<'_>> {
        self.scored_with_frequency(party, model, self.name_frequency(&party.name))
    }

    /// As [`Index::scored`], with the party's name frequency given (`None`: no term-frequency
    /// adjustment, as for a registry too small for its shares to mean anything). Where the
    /// candidate lives in the party's county, the name's share in that county is used instead.
    pub fn scored_with_frequency(
        &self,
        party: &Normalised,
        model: &Model,
        frequency: Option<f64>,
    ) -> Vec<Candidate<'_>> {
        self.scored_in_case(party, model, frequency, &CaseContext::default())
    }

    /// As [`Index::scored_with_frequency`], with what the party's `case` says of each
    /// candidate weighed in.
    pub fn scored_in_case(
        &self,
        party: &Normalised,
        model: &Model,
        frequency: Option<f64>,
        case: &CaseContext,
    ) -> Vec<Candidate<'_>> {
        let frequency_for = self.frequency_for(party, frequency);
        let scored: Vec<Candidate<'_>> = self
            .candidates(party)
            .into_iter()
            .filter_map(|slot| {
                let person = self.persons.get(slot as usize)?;
                let person_id = self.ids.get(slot as usize)?.as_str();
                let comparison = compare(party, person);
                let evidence = case.evidence(person_id, person);
                let weight = model.weight(&comparison, frequency_for(&comparison))
                    + model.case_weight(evidence);
                Some(Candidate::unranked(
                    person_id, comparison, evidence, weight, model,
                ))
            })
            .collect();
        ranked(scored, model, frequency_for)
    }

    /// A party's candidates kept by [`within_reach`] weighed again in another case context
    /// (as a batch does once the co-parties are linked): the comparisons stand, only what the
    /// case says changes.
    pub fn rescored_in_case<'a>(
        &'a self,
        party: &Normalised,
        kept: &[Kept<'a>],
        model: &Model,
        frequency: Option<f64>,
        case: &CaseContext,
    ) -> Vec<Candidate<'a>> {
        let frequency_for = self.frequency_for(party, frequency);
        let rescored = kept
            .iter()
            .filter_map(|kept| {
                let person = self.person(kept.person_id)?;
                let evidence = case.evidence(kept.person_id, person);
                let weight = kept.own_weight + model.case_weight(evidence);
                Some(Candidate::unranked(
                    kept.person_id,
                    compare(party, person),
                    evidence,
                    weight,
                    model,
                ))
            })
            .collect();
        ranked(rescored, model, frequency_for)
    }

    /// The name frequency a comparison is weighed with: where the candidate lives in the
    /// party's county, the county's own share.
    fn frequency_for(
        &self,
        party: &Normalised,
        frequency: Option<f64>,
    ) -> impl Fn(&Comparison) -> Option<f64> + use<> {
        let local = frequency.and_then(|global| {
            self.local_name_frequency(&party.region, &party.name)
                .map(|local| local.max(global))
        });
        move |comparison: &Comparison| if comparison[4] == 1 { local } else { frequency }
    }
}

/// A candidate kept for weighing again (see [`Index::rescored_in_case`]): its weight before
/// the case's evidence and the other candidates' share.
#[derive(Debug, Clone, Copy)]
pub struct Kept<'a> {
    pub person_id: &'a str,
    pub own_weight: f64,
}

/// The candidates that another case context could still make matter: within the case
/// evidence's span (how far it can move one candidate against another) and 10 bits more of the
/// best (odds 2^-10 of the best crowd it by a thousandth of a bit).
pub fn within_reach<'a>(scored: &[Candidate<'a>], model: &Model) -> Vec<Kept<'a>> {
    let span = model.case_weight(Some(true)) - model.case_weight(Some(false));
    let Some(best) = scored.first().map(|c| c.score.weight) else {
        return Vec::new();
    };
    scored
        .iter()
        .filter(|c| c.score.weight >= best - span.max(0.0) - 10.0)
        .map(|c| Kept {
            person_id: c.person_id,
            own_weight: c.score.weight - c.score.competition - model.case_weight(c.case),
        })
        .collect()
}

/// Candidates with their competition taken, best first; only the best is explained (the
/// others are ranked, not read by people).
fn ranked<'a>(
    mut scored: Vec<Candidate<'a>>,
    model: &Model,
    frequency_for: impl Fn(&Comparison) -> Option<f64>,
) -> Vec<Candidate<'a>> {
    compete(&mut scored, model);
    scored.sort_by(|a, b| b.score.weight.total_cmp(&a.score.weight));
    if let Some(best) = scored.first_mut() {
        best.score.fields = model.explain(&best.comparison, frequency_for(&best.comparison));
        best.score.fields.extend(model.explain_case(best.case));
    }
    scored
}

/// Slots below `len` drawn by xorshift from `seed` (deterministic: training is repeatable).
fn random_slots(len: u64, seed: u64) -> impl Iterator<Item = usize> {
    let mut state = seed | 1;
    std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(usize::try_from(state % len).unwrap_or(0))
    })
}

/// The candidates as they would score had `absent` not been in the registry (the others
/// compete only among themselves).
pub fn without<'a>(
    mut scored: Vec<Candidate<'a>>,
    absent: &str,
    model: &Model,
) -> Vec<Candidate<'a>> {
    scored.retain(|c| c.person_id != absent);
    for candidate in &mut scored {
        candidate.score.weight -= candidate.score.competition;
        candidate.score.competition = 0.0;
        candidate.score.probability = model.probability(candidate.score.weight);
    }
    compete(&mut scored, model);
    scored.sort_by(|a, b| b.score.weight.total_cmp(&a.score.weight));
    scored
}

/// Takes each candidate's share of the party's one identity: with odds O_i per candidate and at
/// most one true match, P(i) = O_i / (1 + Σ O_j), so each weight loses log2(1 + Σ_{j≠i} O_j).
/// Each candidate's odds as a competitor are the model's calibrated odds for its own weight.
fn compete(scored: &mut [Candidate<'_>], model: &Model) {
    if scored.len() < 2 {
        return;
    }
    let odds: Vec<f64> = scored
        .iter()
        .map(|c| model.competitor_log_odds(c.score.weight))
        .collect();
    let top = odds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = odds.iter().map(|o| (o - top).exp2()).sum();
    for (candidate, own) in scored.iter_mut().zip(&odds) {
        let others = total - (own - top).exp2();
        if others <= 0.0 {
            continue;
        }
        let x = others.log2() + top;
        let penalty = if x > 40.0 {
            x
        } else {
            x.exp2().ln_1p() / std::f64::consts::LN_2
        };
        candidate.score.competition = -penalty;
        candidate.score.weight -= penalty;
        candidate.score.probability = model.probability(candidate.score.weight);
    }
}

/// What to do with a party's best candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// At or above the upper threshold: a clue is raised.
    Match,
    /// Between the thresholds: a reviewer decides.
    Review,
    /// Below the lower threshold.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub review: f64,
    pub automatic: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            review: 0.5,
            automatic: 0.95,
        }
    }
}

impl Thresholds {
    pub fn decide(&self, probability: f64) -> Decision {
        if probability >= self.automatic {
            Decision::Match
        } else if probability >= self.review {
            Decision::Review
        } else {
            Decision::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::{self, Written};

    fn record(name: &str, id: &str, birth: &str, village: &str) -> Normalised {
        Normalised::from_written(&Written {
            name,
            resident_id: id,
            birth_date: birth,
            region_code: "110105",
            village,
            ..Written::default()
        })
    }

    #[test]
    fn the_right_person_wins_over_a_relative_with_a_similar_name() {
        let mut index = Index::default();
        index.insert("p-1", record("王秀英", "11010519491231002X", "", "新场村"));
        index.insert("p-2", record("王秀云", "", "1951-02-03", "新场村"));
        index.insert("p-3", record("李强", "", "1980-01-01", "新场村"));
        // The party has no id, writes the name in traditional form and the date another way.
        let party = record("王秀英", "", "1949年12月31日", "新場");
        let scored = index.scored(&party, &Model::default());
        assert_eq!(scored.first().map(|c| c.person_id), Some("p-1"));
        assert!(
            scored.iter().all(|c| c.person_id != "p-3"),
            "李 shares no block with 王"
        );
        let best = &scored[0].score;
        assert_eq!(
            Thresholds::default().decide(best.probability),
            Decision::Match
        );
        assert!(
            best.explanation().contains("birth_date: exact"),
            "{}",
            best.explanation()
        );
    }

    #[test]
    fn a_case_whose_other_party_is_linked_favours_that_household() {
        let mut index = Index::default();
        let in_household = |name: &str, household: &str| {
            let mut person = record(name, "", "", "新场村");
            person.household = normalise::household(household);
            person
        };
        // Two namesakes in one village; the victim's mother is linked, in h-1.
        index.insert("son-1", in_household("王德明", "h-1"));
        index.insert("son-2", in_household("王德明", "h-2"));
        index.insert("mother", in_household("李秀英", "h-1"));
        let model = Model {
            case_household: vec![3.0, -6.0],
            ..Model::default()
        };
        let party = record("王德明", "", "", "新场村");
        let alone = index.scored(&party, &model);
        assert_eq!(alone.len(), 2);
        assert!(alone.iter().all(|c| c.case.is_none()));
        assert!((alone[0].score.weight - alone[1].score.weight).abs() < 1e-9);

        let case = CaseContext::of(&index, ["mother", "not-in-the-index"]);
        let frequency = index.name_frequency(&party.name);
        let in_case = index.scored_in_case(&party, &model, frequency, &case);
        assert_eq!(in_case[0].person_id, "son-1");
        assert_eq!(in_case[0].case, Some(true));
        assert_eq!(in_case[1].case, Some(false));
        assert!(in_case[0].score.probability > alone[0].score.probability);
        let explained = in_case[0].score.explanation();
        assert!(
            explained
                .contains("case: of a household the case's other parties are linked to (+3.0)"),
            "{explained}"
        );

        // Weighed again from what the first pass kept, the answer is the same as afresh.
        let kept = within_reach(&alone, &model);
        let again = index.rescored_in_case(&party, &kept, &model, frequency, &case);
        let summary = |scored: &[Candidate<'_>]| -> Vec<(String, String)> {
            scored
                .iter()
                .map(|c| (c.person_id.to_owned(), format!("{:.9}", c.score.weight)))
                .collect()
        };
        assert_eq!(summary(&again), summary(&in_case));
        assert_eq!(again[0].score.explanation(), explained);

        // The linked person themselves, and persons of unknown household, learn nothing.
        let mother = record("李秀英", "", "", "新场村");
        let scored = index.scored_in_case(&mother, &model, None, &case);
        assert_eq!(scored[0].case, None);
        assert!(CaseContext::of(&index, ["not-in-the-index"]).is_empty());
    }

    #[test]
    fn candidates_come_from_blocks_not_from_the_whole_registry() {
        let mut index = Index::default();
        for n in 0..1000 {
            index.insert(format!("x-{n}"), record("赵六", "", "1970-01-01", ""));
        }
        index.insert("t", record("张三", "", "1960-06-06", ""));
        let party = record("张三", "", "1960-06-06", "");
        assert_eq!(index.candidates(&party).len(), 1);
        assert!(index.name_frequency("赵六") > index.name_frequency("张三"));
    }

    #[test]
    fn a_replaced_or_removed_person_is_found_only_as_they_are_now() {
        let mut index = Index::default();
        index.insert("p-1", record("王秀英", "", "1949-12-31", "新场村"));
        index.insert("p-2", record("李强", "", "1980-01-01", "新场村"));
        let wang = record("王秀英", "", "1949-12-31", "新场村");
        let li = record("李强", "", "1980-01-01", "新场村");
        // p-1 renamed: no longer a 王 candidate, now a 李 one.
        index.insert("p-1", record("李强", "", "1980-01-01", "大寨村"));
        assert_eq!(index.len(), 2);
        assert!(index.scored(&wang, &Model::default()).is_empty());
        assert_eq!(index.scored(&li, &Model::default()).len(), 2);
        assert_eq!(index.name_frequency("王秀英"), None);
        index.remove("p-2");
        index.remove("p-2");
        let left: Vec<&str> = index
            .scored(&li, &Model::default())
            .iter()
            .map(|c| c.person_id)
            .collect();
        assert_eq!(left, ["p-1"]);
        assert_eq!(index.len(), 1);
        // The freed slot is reused, and the newcomer is found.
        index.insert("p-3", record("王秀英", "", "1949-12-31", "新场村"));
        assert_eq!(index.persons.len(), 2);
        assert_eq!(index.scored(&wang, &Model::default())[0].person_id, "p-3");
    }
}
