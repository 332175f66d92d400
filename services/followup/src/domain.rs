//! Follow-up plans, free of I/O. A plan opens when relief is paid, with visits scheduled from
//! the policy; a visit's evaluation is validated item by item, scored ("effect-v1", see the
//! policy file), compared with the last visit (trend) and with the first (changes), and checked
//! against the return-to-poverty rules; the last visit closes the plan, and death, moving away
//! or refusal close it early. A visit past its due date is reported overdue once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use jiuzhu_eventstore::{Aggregate, event_enum};
use jiuzhu_proto::common::{Money, Sealed};
use jiuzhu_proto::followup::{
    Channel, ClosureReason, Employment, Evaluation, Level, PlanClosed, PlanOpened,
    ReturnToPovertyRiskFlagged, ScheduledVisit, Trend, VisitOutcome, VisitOverdue, VisitRecorded,
};

use crate::policy::{FollowupPolicy, channel_named};

event_enum! {
    /// Every event on `jiuzhu.followup.events.v1`.
    pub enum FollowupEvent {
        PlanOpened(PlanOpened),
        VisitOverdue(VisitOverdue),
        VisitRecorded(VisitRecorded),
        ReturnToPovertyRiskFlagged(ReturnToPovertyRiskFlagged),
        PlanClosed(PlanClosed),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no follow-up plan {0}")]
    NotFound(String),
    #[error("the plan is closed")]
    Closed,
    #[error("the plan has no visit {0}")]
    UnknownVisit(i32),
    #[error("visit {0} was already recorded")]
    AlreadyRecorded(i32),
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
}

/// A paid relief case, as the shell gathered it.
#[derive(Debug, Clone, Default)]
pub struct PaidCase {
    pub plan_id: String,
    pub person_id: String,
    pub case_id: String,
    pub disbursement_id: String,
    pub office: String,
    pub category: String,
    pub region_code: String,
    pub methods: Vec<String>,
    pub paid_on: NaiveDate,
    pub amount_fen: i64,
}

/// Opens the plan of a paid case, its visits scheduled by the policy for its category.
pub fn open(paid: PaidCase, policy: &FollowupPolicy) -> Vec<FollowupEvent> {
    let schedule = policy.schedule(&paid.category);
    let visits = schedule
        .visits_months
        .iter()
        .zip(&schedule.channels)
        .enumerate()
        .map(|(n, (months, channel))| ScheduledVisit {
            number: i32::try_from(n + 1).unwrap_or(i32::MAX),
            months_after_payment: i32::try_from(*months).unwrap_or(i32::MAX),
            due_date: paid
                .paid_on
                .checked_add_months(chrono::Months::new(*months))
                .unwrap_or(paid.paid_on)
                .format("%Y-%m-%d")
                .to_string(),
            channel: channel_named(channel).unwrap_or(Channel::Phone).into(),
        })
        .collect();
    vec![FollowupEvent::PlanOpened(PlanOpened {
        plan_id: paid.plan_id,
        person_id: paid.person_id,
        case_id: paid.case_id,
        disbursement_id: paid.disbursement_id,
        office: paid.office,
        category: paid.category,
        paid_on: paid.paid_on.format("%Y-%m-%d").to_string(),
        visits,
        policy_version: policy.version.clone(),
        amount_paid: Some(Money {
            fen: paid.amount_fen,
        }),
        methods: paid.methods,
        region_code: paid.region_code,
        continues_plan_id: String::new(),
    })]
}

/// Scale totals and income: what changes are measured on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub income_fen: i64,
    pub phq9: Option<i32>,
    pub gad7: Option<i32>,
    pub k10: Option<i32>,
}

impl Figures {
    pub fn of(evaluation: &Evaluation) -> Self {
        let scales = evaluation.scales.clone().unwrap_or_default();
        let total = |items: &[i32]| (!items.is_empty()).then(|| items.iter().sum());
        Self {
            income_fen: evaluation.income_per_head.map_or(0, |m| m.fen),
            phq9: total(&scales.phq9),
            gad7: total(&scales.gad7),
            k10: total(&scales.k10),
        }
    }
}

/// Every problem with a visit's input, by field path (empty when it is valid). A scale may be
/// left out (not administered) but, when given, has every item in range.
pub fn validate_visit(
    evaluation: Option<&Evaluation>,
    visited_on: &str,
    channel: i32,
    paid_on: Option<NaiveDate>,
    today: NaiveDate,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, message: String| problems.push((field.to_owned(), message));
    match NaiveDate::parse_from_str(visited_on.trim(), "%Y-%m-%d") {
        Err(_) => bad("visited_on", "must be a YYYY-MM-DD date".to_owned()),
        Ok(day) if day > today => bad("visited_on", format!("{day} is in the future")),
        Ok(day) if paid_on.is_some_and(|paid| day < paid) => {
            bad("visited_on", format!("{day} is before the payment"))
        }
        Ok(_) => {}
    }
    if !matches!(
        Channel::try_from(channel),
        Ok(Channel::Phone | Channel::Video | Channel::HomeVisit)
    ) {
        bad(
            "channel",
            jiuzhu_errors::must_be_one_of(&[
                Channel::Phone.as_str_name(),
                Channel::Video.as_str_name(),
                Channel::HomeVisit.as_str_name(),
            ]),
        );
    }
    let Some(evaluation) = evaluation else {
        bad("evaluation", "is required".to_owned());
        return problems;
    };
    match evaluation.income_per_head {
        None => bad("evaluation.income_per_head", "is required".to_owned()),
        Some(m) if m.fen < 0 => bad(
            "evaluation.income_per_head",
            "cannot be negative".to_owned(),
        ),
        Some(_) => {}
    }
    if matches!(
        Employment::try_from(evaluation.employment),
        Ok(Employment::Unspecified) | Err(_)
    ) {
        bad("evaluation.employment", "is required".to_owned());
    }
    if matches!(
        Level::try_from(evaluation.medical_burden),
        Ok(Level::Unspecified) | Err(_)
    ) {
        bad(
            "evaluation.medical_burden",
            "is required (NONE, LOW or HIGH)".to_owned(),
        );
    }
    if evaluation.children_out_of_school < 0 {
        bad(
            "evaluation.children_out_of_school",
            "cannot be negative".to_owned(),
        );
    }
    let scales = evaluation.scales.clone().unwrap_or_default();
    for (name, items, count, range) in [
        ("phq9", &scales.phq9, 9, 0..=3),
        ("gad7", &scales.gad7, 7, 0..=3),
        ("k10", &scales.k10, 10, 1..=5),
    ] {
        if items.is_empty() {
            continue;
        }
        if items.len() != count {
            bad(
                &format!("evaluation.scales.{name}"),
                format!("has {count} items, not {}", items.len()),
            );
            continue;
        }
        for (n, item) in items.iter().enumerate() {
            if !range.contains(item) {
                bad(
                    &format!("evaluation.scales.{name}[{n}]"),
                    format!("{item} is outside {}–{}", range.start(), range.end()),
                );
            }
        }
    }
    for (n, measure) in evaluation.measures.iter().enumerate() {
        if measure.measure.trim().is_empty() {
            bad(
                &format!("evaluation.measures[{n}].measure"),
                "is required".to_owned(),
            );
        }
    }
    problems
}

/// The effect score "effect-v1" (0–100; see `policy/followup/followup.toml`).
pub fn effect_score(
    evaluation: &Evaluation,
    poverty_line_fen: i64,
    policy: &FollowupPolicy,
) -> i32 {
    let w = &policy.scoring.weights;
    let figures = Figures::of(evaluation);
    let cap = policy.scoring.income_cap.max(0.01);
    let income = (figures.income_fen as f64 / poverty_line_fen.max(1) as f64).min(cap) / cap;
    let employment = match Employment::try_from(evaluation.employment) {
        Ok(Employment::Employed | Employment::SelfEmployed) => 1.0,
        Ok(Employment::NotInLabourForce) => 0.7,
        _ => 0.0,
    };
    let health = match Level::try_from(evaluation.medical_burden) {
        Ok(Level::None) => 1.0,
        Ok(Level::Low) => 0.6,
        _ => 0.0,
    };
    let housing = if evaluation.housing_safe { 1.0 } else { 0.0 };
    let schooling = if evaluation.children_out_of_school == 0 {
        1.0
    } else {
        0.0
    };
    let burdens: Vec<f64> = [
        figures.phq9.map(|t| f64::from(t) / 27.0),
        figures.gad7.map(|t| f64::from(t) / 21.0),
        figures.k10.map(|t| f64::from(t - 10) / 40.0),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mental =
        (!burdens.is_empty()).then(|| 1.0 - burdens.iter().sum::<f64>() / burdens.len() as f64);
    let mut parts = vec![
        (f64::from(w.income), income),
        (f64::from(w.employment), employment),
        (f64::from(w.health), health),
        (f64::from(w.housing), housing),
        (f64::from(w.schooling), schooling),
    ];
    if let Some(mental) = mental {
        parts.push((f64::from(w.mental), mental));
    }
    // A component without answers counts as its weight's share of the others.
    let weight: f64 = parts.iter().map(|(w, _)| w).sum();
    let score = parts.iter().map(|(w, v)| w * v).sum::<f64>() / weight.max(1.0) * 100.0;
    score.round().clamp(0.0, 100.0) as i32
}

/// The return-to-poverty rules that fire on an evaluation.
pub fn risks(
    evaluation: &Evaluation,
    poverty_line_fen: i64,
    policy: &FollowupPolicy,
) -> Vec<String> {
    let figures = Figures::of(evaluation);
    policy
        .risks
        .iter()
        .filter(|rule| {
            rule.income_below_line_percent
                .is_some_and(|p| figures.income_fen * 100 < poverty_line_fen * p)
                || rule
                    .phq9_at_least
                    .is_some_and(|t| figures.phq9.is_some_and(|v| v >= t))
                || rule
                    .gad7_at_least
                    .is_some_and(|t| figures.gad7.is_some_and(|v| v >= t))
                || rule
                    .k10_at_least
                    .is_some_and(|t| figures.k10.is_some_and(|v| v >= t))
                || (rule.medical_burden_high && evaluation.medical_burden == i32::from(Level::High))
                || (rule.housing_unsafe && !evaluation.housing_safe)
                || (rule.children_out_of_school && evaluation.children_out_of_school > 0)
                || (rule.measure_not_received && evaluation.measures.iter().any(|m| !m.received))
                || (rule.unemployed && evaluation.employment == i32::from(Employment::Unemployed))
        })
        .map(|rule| rule.id.clone())
        .collect()
}

/// A visit as the shell checked and sealed it.
#[derive(Debug, Clone)]
pub struct Visit {
    pub number: i32,
    pub visited_on: String,
    pub visited_by: String,
    pub channel: i32,
    pub evaluation: Evaluation,
    pub sealed_evaluation: Sealed,
}

#[derive(Debug, Clone, Default)]
pub struct FollowupPlan {
    pub opened: Option<PlanOpened>,
    pub done: BTreeMap<i32, VisitRecorded>,
    pub overdue: BTreeSet<i32>,
    pub closed: Option<PlanClosed>,
    pub risk_reasons: Vec<String>,
    pub last_score: Option<i32>,
}

impl Aggregate for FollowupPlan {
    type Event = FollowupEvent;
    const KIND: &'static str = "follow-up plan";

    fn partition_key(&self) -> Option<&str> {
        self.opened.as_ref().map(|o| o.person_id.as_str())
    }

    fn apply(&mut self, event: &FollowupEvent) {
        match event {
            FollowupEvent::PlanOpened(e) => self.opened = Some(e.clone()),
            FollowupEvent::VisitOverdue(e) => {
                self.overdue.insert(e.number);
            }
            FollowupEvent::VisitRecorded(e) => {
                self.last_score = e.outcome.as_ref().map(|o| o.effect_score);
                self.done.insert(e.number, e.clone());
            }
            FollowupEvent::ReturnToPovertyRiskFlagged(e) => {
                self.risk_reasons.clone_from(&e.reasons)
            }
            FollowupEvent::PlanClosed(e) => self.closed = Some(e.clone()),
        }
    }
}

impl FollowupPlan {
    /// The person's county: the office whose jurisdiction holds it runs the plan.
    pub fn region_code(&self) -> &str {
        self.opened.as_ref().map_or("", |o| o.region_code.as_str())
    }
}

impl FollowupPlan {
    fn opened(&self) -> Result<&PlanOpened, PlanError> {
        self.opened
            .as_ref()
            .ok_or_else(|| PlanError::NotFound(String::new()))
    }

    fn open_plan(&self) -> Result<&PlanOpened, PlanError> {
        let opened = self.opened()?;
        if self.closed.is_some() {
            return Err(PlanError::Closed);
        }
        Ok(opened)
    }

    /// The registry recorded status `status` (by its policy name) in effect for the person:
    /// the rules naming it flag a return-to-poverty risk at once, between visits (visit number
    /// 0). Nothing for a closed plan, or a status no rule names.
    pub fn registry_status(&self, status: &str, policy: &FollowupPolicy) -> Vec<FollowupEvent> {
        let Ok(opened) = self.open_plan() else {
            return Vec::new();
        };
        let reasons: Vec<String> = policy
            .risks
            .iter()
            .filter(|rule| rule.registry_statuses.iter().any(|s| s == status))
            .map(|rule| rule.id.clone())
            .collect();
        if reasons.is_empty() {
            return Vec::new();
        }
        vec![FollowupEvent::ReturnToPovertyRiskFlagged(
            ReturnToPovertyRiskFlagged {
                plan_id: opened.plan_id.clone(),
                person_id: opened.person_id.clone(),
                visit_number: 0,
                reasons,
                policy_version: policy.version.clone(),
                region_code: opened.region_code.clone(),
            },
        )]
    }

    pub fn paid_on(&self) -> Option<NaiveDate> {
        self.opened
            .as_ref()
            .and_then(|o| NaiveDate::parse_from_str(&o.paid_on, "%Y-%m-%d").ok())
    }

    /// The first visit made, whose sealed evaluation is the baseline of later changes.
    pub fn first_visit(&self) -> Option<&VisitRecorded> {
        self.done
            .values()
            .min_by(|a, b| a.visited_on.cmp(&b.visited_on))
    }

    /// Records a visit: its outcome (score, trend, changes since the first visit, whose
    /// figures the shell opened as `baseline`), the risk flag when rules fire, and the plan's
    /// completion after its last visit.
    pub fn record_visit(
        &self,
        visit: Visit,
        baseline: Option<Figures>,
        policy: &FollowupPolicy,
        today: NaiveDate,
    ) -> Result<Vec<FollowupEvent>, PlanError> {
        let opened = self.open_plan()?;
        if !opened.visits.iter().any(|v| v.number == visit.number) {
            return Err(PlanError::UnknownVisit(visit.number));
        }
        if self.done.contains_key(&visit.number) {
            return Err(PlanError::AlreadyRecorded(visit.number));
        }
        let problems = validate_visit(
            Some(&visit.evaluation),
            &visit.visited_on,
            visit.channel,
            self.paid_on(),
            today,
        );
        if !problems.is_empty() {
            return Err(PlanError::Invalid(problems));
        }
        let line = policy.poverty_line(&opened.region_code);
        let score = effect_score(&visit.evaluation, line, policy);
        let now = Figures::of(&visit.evaluation);
        let trend = match self.last_score {
            None => Trend::Baseline,
            Some(last) if score - last >= policy.scoring.trend_points => Trend::Better,
            Some(last) if last - score >= policy.scoring.trend_points => Trend::Worse,
            Some(_) => Trend::Same,
        };
        let base = baseline.unwrap_or(now);
        let change = |a: Option<i32>, b: Option<i32>| a.zip(b).map_or(0, |(a, b)| a - b);
        let visited_on =
            NaiveDate::parse_from_str(visit.visited_on.trim(), "%Y-%m-%d").unwrap_or(today);
        let months_since_payment = self
            .paid_on()
            .map_or(0, |paid| months_between(paid, visited_on));
        let outcome = VisitOutcome {
            effect_score: score,
            scoring_method: policy.scoring.method.clone(),
            trend: trend.into(),
            income_change: Some(Money {
                fen: now.income_fen - base.income_fen,
            }),
            phq9_change: change(now.phq9, base.phq9),
            gad7_change: change(now.gad7, base.gad7),
            k10_change: change(now.k10, base.k10),
            income_to_line_percent: i32::try_from(now.income_fen * 100 / line.max(1))
                .unwrap_or(i32::MAX),
        };
        let mut events = vec![FollowupEvent::VisitRecorded(VisitRecorded {
            plan_id: opened.plan_id.clone(),
            person_id: opened.person_id.clone(),
            case_id: opened.case_id.clone(),
            number: visit.number,
            visited_on: visited_on.format("%Y-%m-%d").to_string(),
            visited_by: visit.visited_by,
            channel: visit.channel,
            sealed_evaluation: Some(visit.sealed_evaluation),
            outcome: Some(outcome),
            category: opened.category.clone(),
            region_code: opened.region_code.clone(),
            months_since_payment,
            methods: opened.methods.clone(),
        })];
        let reasons = risks(&visit.evaluation, line, policy);
        if !reasons.is_empty() {
            events.push(FollowupEvent::ReturnToPovertyRiskFlagged(
                ReturnToPovertyRiskFlagged {
                    plan_id: opened.plan_id.clone(),
                    person_id: opened.person_id.clone(),
                    visit_number: visit.number,
                    reasons,
                    policy_version: policy.version.clone(),
                    region_code: opened.region_code.clone(),
                },
            ));
        }
        if self.done.len() + 1 == opened.visits.len() {
            events.push(FollowupEvent::PlanClosed(PlanClosed {
                plan_id: opened.plan_id.clone(),
                person_id: opened.person_id.clone(),
                reason: ClosureReason::Completed.into(),
                note: String::new(),
                handed_to_office: String::new(),
                closed_by: "followup".to_owned(),
            }));
        }
        Ok(events)
    }

    /// Visits past due and not made, each reported once.
    pub fn overdue_visits(&self, today: NaiveDate) -> Vec<FollowupEvent> {
        let Ok(opened) = self.open_plan() else {
            return Vec::new();
        };
        opened
            .visits
            .iter()
            .filter(|v| !self.done.contains_key(&v.number) && !self.overdue.contains(&v.number))
            .filter(|v| {
                NaiveDate::parse_from_str(&v.due_date, "%Y-%m-%d").is_ok_and(|due| due < today)
            })
            .map(|v| {
                FollowupEvent::VisitOverdue(VisitOverdue {
                    plan_id: opened.plan_id.clone(),
                    person_id: opened.person_id.clone(),
                    number: v.number,
                    due_date: v.due_date.clone(),
                    office: opened.office.clone(),
                })
            })
            .collect()
    }

    /// The plan that continues this one after a move: the visits not made yet, due as before,
    /// now the new office's.
    pub fn handed_over(&self, new_plan_id: &str) -> Vec<FollowupEvent> {
        let (Some(opened), Some(closed)) = (&self.opened, &self.closed) else {
            return Vec::new();
        };
        if closed.reason != ClosureReason::MovedAway as i32 {
            return Vec::new();
        }
        vec![FollowupEvent::PlanOpened(PlanOpened {
            plan_id: new_plan_id.to_owned(),
            office: closed.handed_to_office.clone(),
            visits: opened
                .visits
                .iter()
                .filter(|v| !self.done.contains_key(&v.number))
                .cloned()
                .collect(),
            continues_plan_id: opened.plan_id.clone(),
            ..opened.clone()
        })]
    }

    /// Closes the plan early: death, moving away (to another office) or refusal.
    pub fn close(
        &self,
        reason: ClosureReason,
        note: &str,
        handed_to_office: &str,
        closed_by: &str,
    ) -> Result<Vec<FollowupEvent>, PlanError> {
        let opened = self.open_plan()?;
        let mut problems = Vec::new();
        match reason {
            ClosureReason::Died | ClosureReason::Refused => {}
            ClosureReason::MovedAway if handed_to_office.trim().is_empty() => problems.push((
                "handed_to_office".to_owned(),
                "is required when the person moved away".to_owned(),
            )),
            ClosureReason::MovedAway => {}
            _ => problems.push((
                "reason".to_owned(),
                format!(
                    "{} (a plan completes by its last visit)",
                    jiuzhu_errors::must_be_one_of(&[
                        ClosureReason::Died.as_str_name(),
                        ClosureReason::MovedAway.as_str_name(),
                        ClosureReason::Refused.as_str_name(),
                    ])
                ),
            )),
        }
        if !problems.is_empty() {
            return Err(PlanError::Invalid(problems));
        }
        Ok(vec![FollowupEvent::PlanClosed(PlanClosed {
            plan_id: opened.plan_id.clone(),
            person_id: opened.person_id.clone(),
            reason: reason.into(),
            note: note.trim().to_owned(),
            handed_to_office: handed_to_office.trim().to_owned(),
            closed_by: closed_by.trim().to_owned(),
        })])
    }
}

/// Whole months from `from` to `to`.
pub fn months_between(from: NaiveDate, to: NaiveDate) -> i32 {
    use chrono::Datelike;
    let months = (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32;
    if to.day() < from.day() {
        months - 1
    } else {
        months
    }
    .max(0)
}

/// Money in fen, for statistics.
pub(crate) fn fen(fen: i64) -> Option<Money> {
    Some(Money { fen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SHIPPED;
    use jiuzhu_proto::followup::{MeasureReceived, ScaleAnswers};

    fn policy() -> FollowupPolicy {
        FollowupPolicy::parse(SHIPPED).unwrap_or_default()
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    use jiuzhu_eventstore::given_when_then::given;

    fn paid(category: &str) -> FollowupPlan {
        given(&open(
            PaidCase {
                plan_id: "f-1".to_owned(),
                person_id: "p-1".to_owned(),
                case_id: "c-1".to_owned(),
                office: "南明区院".to_owned(),
                category: category.to_owned(),
                region_code: "520102".to_owned(),
                methods: vec!["one_time_payment".to_owned()],
                paid_on: day("2026-01-31"),
                amount_fen: 800_000,
                ..PaidCase::default()
            },
            &policy(),
        ))
    }

    fn evaluation(income_fen: i64, phq9: [i32; 9]) -> Evaluation {
        Evaluation {
            income_per_head: Some(Money { fen: income_fen }),
            employment: Employment::Employed.into(),
            medical_burden: Level::Low.into(),
            housing_safe: true,
            children_out_of_school: 0,
            scales: Some(ScaleAnswers {
                phq9: phq9.to_vec(),
                ..ScaleAnswers::default()
            }),
            measures: vec![MeasureReceived {
                measure: "medical".to_owned(),
                received: true,
            }],
            notes: String::new(),
        }
    }

    fn visit(number: i32, on: &str, evaluation: Evaluation) -> Visit {
        Visit {
            number,
            visited_on: on.to_owned(),
            visited_by: "officer-1".to_owned(),
            channel: Channel::HomeVisit.into(),
            evaluation,
            sealed_evaluation: Sealed::default(),
        }
    }

    #[test]
    fn a_monitoring_status_in_the_registry_flags_an_open_plan_between_visits() {
        let plan = paid("other_in_need");
        let events = plan.registry_status("monitored_sudden_hardship", &policy());
        let [FollowupEvent::ReturnToPovertyRiskFlagged(flag)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(
            (flag.visit_number, flag.reasons.as_slice()),
            (0, ["registry_monitored".to_owned()].as_slice())
        );
        assert!(
            plan.registry_status("minor", &policy()).is_empty(),
            "a status no rule names"
        );
        let mut closed = plan.clone();
        closed.apply(&FollowupEvent::PlanClosed(PlanClosed::default()));
        assert!(
            closed
                .registry_status("monitored_sudden_hardship", &policy())
                .is_empty()
        );
    }

    #[test]
    fn the_schedule_follows_the_policy_and_its_category_overrides() {
        let plan = paid("other_in_need");
        let due: Vec<String> = plan
            .opened
            .iter()
            .flat_map(|o| o.visits.iter().map(|v| v.due_date.clone()))
            .collect();
        assert_eq!(due, ["2026-02-28", "2026-07-31", "2027-01-31"]);
        assert_eq!(
            paid("urgent_medical").opened.map(|o| o.visits.len()),
            Some(4)
        );
    }

    #[test]
    fn out_of_range_items_are_named_and_nothing_is_recorded() {
        let plan = paid("other_in_need");
        let mut bad = evaluation(700_000, [0, 1, 2, 3, 4, 0, 0, 0, 0]);
        if let Some(scales) = bad.scales.as_mut() {
            scales.gad7 = vec![1, 1];
            scales.k10 = vec![0; 10];
        }
        let refused = plan.record_visit(
            visit(1, "2026-03-01", bad),
            None,
            &policy(),
            day("2026-03-02"),
        );
        let Err(PlanError::Invalid(problems)) = refused else {
            panic!("an out-of-range item was taken: {refused:?}");
        };
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields[0], "evaluation.scales.phq9[4]");
        assert_eq!(fields[1], "evaluation.scales.gad7");
        assert_eq!(fields[2], "evaluation.scales.k10[0]");
        assert_eq!(fields.len(), 12, "{fields:?}");
        let future = plan.record_visit(
            visit(1, "2026-04-01", evaluation(700_000, [0; 9])),
            None,
            &policy(),
            day("2026-03-02"),
        );
        assert!(matches!(future, Err(PlanError::Invalid(p)) if p[0].0 == "visited_on"));
    }

    #[test]
    fn visits_are_scored_trended_flagged_and_the_last_closes_the_plan() {
        let policy = policy();
        let mut plan = paid("other_in_need");
        // Below the line and depressed: a baseline, flagged.
        let first = evaluation(500_000, [2, 2, 1, 1, 1, 1, 1, 1, 1]);
        let events = plan
            .record_visit(
                visit(1, "2026-03-01", first.clone()),
                None,
                &policy,
                day("2026-03-02"),
            )
            .unwrap_or_default();
        let [
            FollowupEvent::VisitRecorded(recorded),
            FollowupEvent::ReturnToPovertyRiskFlagged(flag),
        ] = &events[..]
        else {
            panic!("{events:?}");
        };
        let outcome = recorded.outcome.clone().unwrap_or_default();
        assert_eq!(outcome.trend, Trend::Baseline as i32);
        assert_eq!(outcome.income_to_line_percent, 80);
        assert_eq!(flag.reasons, ["income_below_line", "depression_moderate"]);
        // 35×(0.806/1.5) + 15 + 6 + 10 + 10 + 20×(1−11/27) = 71.7 → 72
        assert_eq!(outcome.effect_score, 72);
        for event in &events {
            plan.apply(event);
        }
        // Better: above the line, mood lifted; changes against the first visit.
        let second = evaluation(900_000, [0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let events = plan
            .record_visit(
                visit(2, "2026-08-03", second),
                Some(Figures::of(&first)),
                &policy,
                day("2026-08-03"),
            )
            .unwrap_or_default();
        let [FollowupEvent::VisitRecorded(recorded)] = &events[..] else {
            panic!("{events:?}");
        };
        let outcome = recorded.outcome.clone().unwrap_or_default();
        assert_eq!(outcome.trend, Trend::Better as i32);
        assert_eq!(outcome.income_change, Some(Money { fen: 400_000 }));
        assert_eq!(outcome.phq9_change, -10);
        assert_eq!(recorded.months_since_payment, 6);
        for event in &events {
            plan.apply(event);
        }
        assert!(matches!(
            plan.record_visit(
                visit(2, "2026-08-04", evaluation(1, [0; 9])),
                None,
                &policy,
                day("2026-08-05")
            ),
            Err(PlanError::AlreadyRecorded(2))
        ));
        let last = plan
            .record_visit(
                visit(3, "2027-02-01", evaluation(900_000, [0; 9])),
                None,
                &policy,
                day("2027-02-01"),
            )
            .unwrap_or_default();
        assert!(matches!(
            last.last(),
            Some(FollowupEvent::PlanClosed(c)) if c.reason == ClosureReason::Completed as i32
        ));
    }

    #[test]
    fn a_missed_visit_is_overdue_once_and_an_early_closure_needs_its_facts() {
        let mut plan = paid("other_in_need");
        assert!(
            plan.overdue_visits(day("2026-02-28")).is_empty(),
            "due today is not late"
        );
        let late = plan.overdue_visits(day("2026-03-01"));
        assert_eq!(late.len(), 1);
        for event in &late {
            plan.apply(event);
        }
        assert!(plan.overdue_visits(day("2026-03-02")).is_empty(), "once");
        assert!(matches!(
            plan.close(ClosureReason::MovedAway, "", " ", "officer-1"),
            Err(PlanError::Invalid(p)) if p[0].0 == "handed_to_office"
        ));
        let closed = plan
            .close(
                ClosureReason::MovedAway,
                "moved to Zunyi",
                "遵义市人民检察院",
                "officer-1",
            )
            .unwrap_or_default();
        for event in &closed {
            plan.apply(event);
        }
        assert_eq!(
            plan.close(ClosureReason::Died, "", "", "x"),
            Err(PlanError::Closed)
        );
        let handed = plan.handed_over("f-2");
        assert!(matches!(
            &handed[..],
            [FollowupEvent::PlanOpened(p)] if p.office == "遵义市人民检察院"
                && p.continues_plan_id == "f-1" && p.visits.len() == 3
        ));
        assert!(
            plan.overdue_visits(day("2027-06-01")).is_empty(),
            "closed plans are not watched"
        );
    }
}
