//! The demo county: ten victims of criminal cases, picked from the county's imported registry,
//! taken to different stages so every screen and topic has something to show: clues waiting
//! for referral (one reported without an ID number), a case waiting for materials, one
//! accepted, one waiting for approval, one approved whose payee is not registered yet, and
//! four paid (two visited, their applicants told and the cases closed; two registered poor, so
//! rural revitalization's topic receives what its agreement allows, a closed case included). Every request id is derived from the county and the victim, so
//! seeding again changes nothing.

use tokio::task::JoinSet;

use crate::{DemoError, Platform, Victim};

/// How far each demo victim is taken, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Reported and matched: the clue waits on the board.
    Reported,
    /// Reported without an ID number, matched on name, birth date and place.
    ReportedWithoutId,
    /// Referred: the relief case is open, materials missing.
    Referred,
    /// Materials in, assessed eligible, accepted.
    Accepted,
    /// Reviewed and proposed: waiting for the approver.
    Proposed,
    /// Approved; no payee registered yet, so the payment waits.
    Approved,
    /// Paid through the simulator; the follow-up plan is open.
    Paid,
    /// Paid and visited once (the visit flags a risk of returning to poverty); the applicant
    /// was told of the payment and the case is closed.
    Visited,
}

/// The ten demo victims' stages, and whether rural revitalization records them as poor.
pub const PLAN: [(Stage, bool); 10] = [
    (Stage::Reported, false),
    (Stage::ReportedWithoutId, false),
    (Stage::Referred, false),
    (Stage::Accepted, false),
    (Stage::Proposed, true),
    (Stage::Approved, false),
    (Stage::Paid, true),
    (Stage::Paid, false),
    (Stage::Visited, true),
    (Stage::Visited, false),
];

/// A registry record of the county, as the import file has it.
#[derive(Debug, Clone)]
pub struct Resident {
    pub full_name: String,
    /// 男 / 女.
    pub gender: String,
    /// YYYY-MM-DD.
    pub birth_date: String,
    /// 18 characters.
    pub resident_id: String,
    pub region_code: String,
    pub address: String,
    pub phone: String,
}

/// The county being seeded.
#[derive(Debug, Clone)]
pub struct County {
    /// Six-digit code, e.g. 520121.
    pub code: String,
    /// The procuratorate that handles its cases, e.g. 开阳县人民检察院.
    pub procuratorate: String,
    /// Persons imported into the registry: the clue index must hold them before reporting.
    pub imported: i64,
}

/// What seeding did for one victim.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub stage: Stage,
    pub case_no: String,
    pub clue_id: String,
    /// Empty until referred.
    pub case_id: String,
    /// The W3C trace every call for this victim belongs to.
    pub trace_id: String,
}

/// Seeds the demo cases of `county` from `residents` (the first ten with an 18-character id
/// are used), reporting each step through `progress`.
pub async fn seed(
    platform: &Platform,
    county: &County,
    residents: &[Resident],
    progress: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Result<Vec<Seeded>, DemoError> {
    let chosen: Vec<&Resident> = residents
        .iter()
        .filter(|r| r.resident_id.len() == 18 && r.birth_date.as_str() < "2006")
        .take(PLAN.len())
        .collect();
    if chosen.len() < PLAN.len() {
        return Err(DemoError::Unexpected(format!(
            "the county file has {} adults with resident ids; the demo needs {}",
            chosen.len(),
            PLAN.len()
        )));
    }
    progress(&format!(
        "waiting for clue acquisition to index the county's {} persons",
        county.imported
    ));
    platform.wait_for_linkage_index(county.imported).await?;
    platform
        .allocate(
            &format!("demo-{}", county.code),
            &county.procuratorate,
            50_000_000,
        )
        .await?;
    progress(&format!(
        "allocated 500,000.00 yuan to {}'s relief budget",
        county.procuratorate
    ));

    let mut walks = JoinSet::new();
    for (n, ((stage, poor), resident)) in PLAN.iter().zip(chosen).enumerate() {
        let (platform, county, resident) = (platform.clone(), county.clone(), resident.clone());
        let (stage, poor, progress) = (*stage, *poor, progress.clone());
        walks.spawn(async move {
            let seeded = walk(&platform, &county, n, stage, poor, &resident).await?;
            progress(&format!("{}: {:?}", seeded.case_no, seeded.stage));
            Ok::<_, DemoError>((n, seeded))
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = walks.join_next().await {
        let walked = joined.map_err(|e| DemoError::Unexpected(format!("a demo case: {e}")))?;
        done.push(walked?);
    }
    done.sort_by_key(|(n, _)| *n);
    Ok(done.into_iter().map(|(_, seeded)| seeded).collect())
}

/// Takes victim `n` of the county to `stage`.
async fn walk(
    platform: &Platform,
    county: &County,
    n: usize,
    stage: Stage,
    poor: bool,
    resident: &Resident,
) -> Result<Seeded, DemoError> {
    let tag = format!("demo-{}-{n}", county.code);
    let (trace_id, traceparent) = crate::trace_for(&tag);
    let platform = &platform.traced(&traceparent)?;
    let county_part = county.code.get(2..).unwrap_or(&county.code);
    let case_no = format!("(2026)黔{county_part}刑初{}号", 101 + n);
    let person_id = platform.find_person(&resident.resident_id).await?;
    if poor {
        platform.record_registered_poor(&tag, &person_id).await?;
    }
    let victim = victim_of(resident, stage != Stage::ReportedWithoutId);
    let reported = platform
        .report_victim(&tag, &case_no, &county.procuratorate, &victim)
        .await?;
    let clue = reported.clue.ok_or_else(|| {
        DemoError::Unexpected(format!(
            "{case_no}: no clue was raised ({})",
            if reported.screened_out.is_empty() {
                "no match in the registry"
            } else {
                &reported.screened_out
            }
        ))
    })?;
    let mut seeded = Seeded {
        stage,
        case_no,
        clue_id: clue.clue_id.clone(),
        case_id: String::new(),
        trace_id,
    };
    platform.confirm_if_awaiting_review(&tag, &clue).await?;
    if matches!(stage, Stage::Reported | Stage::ReportedWithoutId) {
        return Ok(seeded);
    }
    seeded.case_id = platform.refer(&tag, &clue.clue_id).await?;
    let case_id = seeded.case_id.clone();
    if stage == Stage::Referred {
        return Ok(seeded);
    }
    platform.complete_and_accept(&tag, &case_id).await?;
    if stage == Stage::Accepted {
        return Ok(seeded);
    }
    platform.review(&tag, &case_id).await?;
    let fen = 600_000 + 50_000 * i64::try_from(n).unwrap_or(0);
    let proposed = platform.propose(&tag, &case_id, fen).await?;
    if stage == Stage::Proposed {
        return Ok(seeded);
    }
    platform
        .approve(&tag, &case_id, &proposed.required_approver)
        .await?;
    if stage == Stage::Approved {
        return Ok(seeded);
    }
    platform
        .register_payee(&tag, &person_id, &resident.full_name, 1_000 + n as u64)
        .await?;
    platform.paid(&case_id).await?;
    let plan = platform.plan(&case_id).await?;
    if stage == Stage::Visited {
        // Below the poverty line and moderately depressed: the visit flags the risk.
        platform
            .record_first_visit(&tag, &plan, 350_000, [2, 2, 1, 2, 1, 1, 1, 1, 0])
            .await?;
        platform.notify(&tag, &case_id).await?;
    }
    Ok(seeded)
}

/// The residents of a county file as `jiuzhu gen registry` writes it (the import columns), in
/// file order.
pub fn read_residents(path: &std::path::Path) -> Result<Vec<Resident>, DemoError> {
    let at = |what: String| DemoError::Unexpected(format!("{}: {what}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|e| at(e.to_string()))?;
    let headers = reader.headers().map_err(|e| at(e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| at(format!("no `{name}` column")))
    };
    let (name, gender, birth, id, region, address, phone) = (
        column("full_name")?,
        column("gender")?,
        column("birth_date")?,
        column("resident_id")?,
        column("region_code")?,
        column("address_text")?,
        column("phone")?,
    );
    let mut residents = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| at(format!("line {}: {e}", n + 2)))?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        residents.push(Resident {
            full_name: field(name),
            gender: field(gender),
            birth_date: field(birth),
            resident_id: field(id),
            region_code: field(region),
            address: field(address),
            phone: field(phone),
        });
    }
    Ok(residents)
}

/// The victim as a case file would write the resident: the birth date in Chinese, the ID
/// number only when `with_id`.
pub fn victim_of(resident: &Resident, with_id: bool) -> Victim {
    let birth_date = chrono::NaiveDate::parse_from_str(&resident.birth_date, "%Y-%m-%d")
        .map(|d| d.format("%Y年%-m月%-d日").to_string())
        .unwrap_or_else(|_| resident.birth_date.clone());
    Victim {
        full_name: resident.full_name.clone(),
        id_number: if with_id {
            resident.resident_id.clone()
        } else {
            String::new()
        },
        gender: resident.gender.clone(),
        birth_date,
        phone: resident.phone.clone(),
        region_code: resident.region_code.clone(),
        address: resident.address.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident() -> Resident {
        Resident {
            full_name: "杨秀英".to_owned(),
            gender: "女".to_owned(),
            birth_date: "1958-03-02".to_owned(),
            resident_id: "520121195803024426".to_owned(),
            region_code: "520121".to_owned(),
            address: "城关镇三合村12号".to_owned(),
            phone: String::new(),
        }
    }

    #[test]
    fn a_case_file_writes_the_birth_date_in_chinese_and_may_lack_the_id() {
        let with = victim_of(&resident(), true);
        assert_eq!(with.birth_date, "1958年3月2日");
        assert_eq!(with.id_number, "520121195803024426");
        let without = victim_of(&resident(), false);
        assert!(without.id_number.is_empty());
        assert_eq!(without.full_name, "杨秀英");
    }

    #[test]
    fn the_plan_covers_every_stage_and_sends_something_to_rural_revitalization() {
        for stage in [
            Stage::Reported,
            Stage::ReportedWithoutId,
            Stage::Referred,
            Stage::Accepted,
            Stage::Proposed,
            Stage::Approved,
            Stage::Paid,
            Stage::Visited,
        ] {
            assert!(PLAN.iter().any(|(s, _)| *s == stage), "{stage:?}");
        }
        // A paid registered-poor victim: ReliefDistributed is shared.
        assert!(PLAN.iter().any(|(s, poor)| *poor && *s >= Stage::Paid));
    }
}
