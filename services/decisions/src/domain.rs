//! Relief cases, free of I/O: a case opens, gathers materials, is assessed and accepted, gets a
//! decision proposed within the cap and approved by the tier the amount needs. Every stage
//! entered carries its deadline in working days on the official calendar. The shell passes in
//! the policy, the calendar, the wage table and today's date.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use jiuzhu_calendar::Calendar;
use jiuzhu_eventstore::{Aggregate, event_enum};
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::{
    ApplicantNotified, CaseClosed, CaseReported, FundsAwaited, FundsSecured, StageDeadlineRecounted,
};
use jiuzhu_proto::decisions::{
    CaseOpened, CaseOrigin, DecisionAmended, DecisionApproved, DecisionProposed, DecisionRejected,
    DuplicateReliefFlagged, EligibilityAssessed, MaterialReceived, MaterialsObligationBreached,
    MaterialsObligationMet, MaterialsObligationOpened, ObjectionFiled, ObjectionOutcome,
    ObjectionReviewOverdue, ObjectionReviewed, RecommendationIssued, ReferralIssued,
    ReferralOverdue, ReferralStatus, ReferralUpdated, ReliefDistributed, ReliefMethod, ReviewKind,
    ReviewRecorded, Stage, StageDeadlineApproaching, StageDeadlineBreached, StageEntered,
};

use crate::policy::{ReliefPolicy, WageBase, WageError, Wages, stage_name};

pub use objection::ObjectionDecision;

/// The department a poor party's closed case is reported to.
pub const REPORTED_TO: &str = "rural_revitalization";

event_enum! {
    /// Every event on `jiuzhu.decisions.events.v1`.
    pub enum DecisionsEvent {
        CaseOpened(CaseOpened),
        StageEntered(StageEntered),
        MaterialReceived(MaterialReceived),
        EligibilityAssessed(EligibilityAssessed),
        DecisionProposed(DecisionProposed),
        DecisionApproved(DecisionApproved),
        DecisionRejected(DecisionRejected),
        StageDeadlineApproaching(StageDeadlineApproaching),
        StageDeadlineBreached(StageDeadlineBreached),
        RecommendationIssued(RecommendationIssued),
        ReferralIssued(ReferralIssued),
        ReferralUpdated(ReferralUpdated),
        MaterialsObligationOpened(MaterialsObligationOpened),
        MaterialsObligationMet(MaterialsObligationMet),
        MaterialsObligationBreached(MaterialsObligationBreached),
        ReviewRecorded(ReviewRecorded),
        FundsAwaited(FundsAwaited),
        FundsSecured(FundsSecured),
        ReliefDistributed(ReliefDistributed),
        StageDeadlineRecounted(StageDeadlineRecounted),
        ApplicantNotified(ApplicantNotified),
        CaseClosed(CaseClosed),
        CaseReported(CaseReported),
        ObjectionFiled(ObjectionFiled),
        ObjectionReviewed(ObjectionReviewed),
        ReferralOverdue(ReferralOverdue),
        DuplicateReliefFlagged(DuplicateReliefFlagged),
        DecisionAmended(DecisionAmended),
        ObjectionReviewOverdue(ObjectionReviewOverdue),
    }
}

/// What monitoring found about the current stage's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    Approaching { working_days_left: i32 },
    Breached,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("no relief case {0}")]
    NotFound(String),
    #[error("`{0}` is not a category of the relief policy")]
    UnknownCategory(String),
    #[error("`{0}` is not a material of the relief policy")]
    UnknownMaterial(String),
    #[error("`{0}` is not a fact the relief policy knows")]
    UnknownFact(String),
    #[error("the case is {stage}: it cannot be {action} now")]
    WrongStage {
        stage: &'static str,
        action: &'static str,
    },
    #[error("eligibility has not been established ({0})")]
    NotEligible(String),
    #[error("materials are missing: {}", .0.join(", "))]
    MaterialsMissing(Vec<String>),
    #[error(
        "{amount} fen is above the cap of {cap} fen ({months} months of the average wage); only \
         the exceptional path with its reason and approver may exceed it"
    )]
    AboveCap { amount: i64, cap: i64, months: i64 },
    #[error("{amount} fen is above the court's award of {award} fen")]
    AboveCourtAward { amount: i64, award: i64 },
    #[error(
        "the decision departs from the recommendation ({recommended}): say why in departure_reason"
    )]
    DepartureUnexplained { recommended: String },
    #[error("at most {max} instalments (relief policy), not {given}")]
    TooManyInstalments { max: u32, given: u32 },
    #[error(
        "{amount} fen cannot be paid in {instalments} instalments: each must be at least 1 fen"
    )]
    InstalmentsBelowOneFen { amount: i64, instalments: u32 },
    #[error("no referral {0} on this case")]
    UnknownReferral(String),
    #[error("referral {referral} went to {department}, not {sender}")]
    NotTheirReferral {
        referral: String,
        department: String,
        sender: String,
    },
    #[error("referral {referral} is {status}: it cannot become {next}")]
    ReferralSettled {
        referral: String,
        status: &'static str,
        next: &'static str,
    },
    #[error("the amount needs approval by {required}, not {given}")]
    WrongApprover { required: String, given: String },
    #[error(transparent)]
    Wage(#[from] WageError),
    #[error("notified on {notified_on}: {reason}")]
    NotifiedOn { notified_on: String, reason: String },
    #[error("an objection to this case was filed on {0}: a case is reviewed on objection once")]
    ObjectedBefore(String),
    #[error("an objection cannot be received in the future ({0})")]
    ObjectionInFuture(String),
    #[error("the {decision} of {decided_on} could be objected to until {last_day}")]
    ObjectionLate {
        decision: &'static str,
        decided_on: String,
        last_day: String,
    },
    #[error("the approver who decided the case cannot review the objection to it")]
    SameApprover,
    #[error("the objection to the amount was reviewed on {0}: it is reviewed once")]
    ReviewedBefore(String),
    #[error(
        "an objection to an amount is upheld or amended: a case approved and being paid is not \
         reopened"
    )]
    AmountObjectionReopened,
    #[error("amended to {amount} fen: it must be above the {approved} fen approved (else uphold)")]
    AmendmentNotAbove { amount: i64, approved: i64 },
    #[error("an amended amount keeps the methods approved: leave methods empty")]
    MethodsKept,
}

/// Everything a command needs besides its own input.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub policy: &'a ReliefPolicy,
    pub calendar: &'a Calendar,
    pub wages: &'a Wages,
    /// Today in Beijing time.
    pub today: NaiveDate,
}

/// A due date as events carry it: the date, or why there is none, and whether a provisional
/// calendar year was counted.
fn due_after(calendar: &Calendar, from: NaiveDate, days: u32) -> (String, String, bool) {
    match calendar.due(from, days) {
        Ok(due) => (day_text(due.date), String::new(), due.provisional),
        Err(error) => (String::new(), error.to_string(), false),
    }
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

impl Context<'_> {
    /// The stage entered today, with its deadline (or why it has none yet).
    fn enter(&self, case_id: &str, stage: Stage) -> StageEntered {
        self.enter_with(case_id, stage, self.policy.deadline_days(stage))
    }

    /// The stage entered today, due `days` working days on (no deadline for `None`).
    fn enter_with(&self, case_id: &str, stage: Stage, days: Option<u32>) -> StageEntered {
        let (due_date, due_unknown, due_provisional) = match days {
            None => (String::new(), String::new(), false),
            Some(days) => due_after(self.calendar, self.today, days),
        };
        StageEntered {
            case_id: case_id.to_owned(),
            stage: stage.into(),
            entered_on: day_text(self.today),
            due_date,
            due_unknown,
            policy_version: self.policy.version.clone(),
            due_provisional,
        }
    }
}

/// How the applicant was told the funds arrived.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    pub channel: String,
    pub notified_on: NaiveDate,
    pub notified_by: String,
    pub note: String,
    /// The party holds a poverty status (registered poor, monitored) on the closing day.
    pub registered_poor: bool,
}

/// A new case as the shell validated it.
#[derive(Debug, Clone, Default)]
pub struct Open {
    pub case_id: String,
    pub origin: CaseOrigin,
    pub person_id: String,
    pub case_no: String,
    pub procuratorate: String,
    pub region_code: String,
    pub category: String,
    pub applicant_relation: String,
    pub opened_by: String,
    pub clue_id: String,
    pub party_id: String,
}

/// Opens a case: informed (referral, prosecutor) or applied (an application).
pub fn open(command: Open, context: Context<'_>) -> Result<Vec<DecisionsEvent>, CaseError> {
    // A referral may leave the category to the assessment; anything else claims one.
    let unclaimed = command.category.is_empty() && command.origin == CaseOrigin::Referral;
    if !unclaimed && context.policy.category(&command.category).is_none() {
        return Err(CaseError::UnknownCategory(command.category));
    }
    let stage = if command.origin == CaseOrigin::Application {
        Stage::Applied
    } else {
        Stage::Informed
    };
    let entered = context.enter(&command.case_id, stage);
    Ok(vec![
        DecisionsEvent::CaseOpened(CaseOpened {
            case_id: command.case_id,
            origin: command.origin.into(),
            person_id: command.person_id,
            case_no: command.case_no,
            procuratorate: command.procuratorate,
            region_code: command.region_code,
            clue_id: command.clue_id,
            party_id: command.party_id,
            applicant_relation: command.applicant_relation,
            opened_by: command.opened_by,
            category: command.category,
            policy_version: context.policy.version.clone(),
        }),
        DecisionsEvent::StageEntered(entered),
    ])
}

/// A proposed decision as the shell validated it.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    pub amount_fen: i64,
    pub methods: Vec<ReliefMethod>,
    pub exceptional: bool,
    pub exceptional_reason: String,
    pub court_award_fen: Option<i64>,
    pub departure_reason: String,
    pub proposed_by: String,
    /// 0 or 1: paid at once.
    pub instalments: u32,
}

/// A relief case as its decisions need it.
#[derive(Debug, Default, Clone)]
pub struct ReliefCase {
    pub opened: Option<CaseOpened>,
    pub stage: Stage,
    pub stages: Vec<StageEntered>,
    pub received: BTreeSet<String>,
    pub eligibility: Option<EligibilityAssessed>,
    pub proposal: Option<DecisionProposed>,
    pub approval: Option<DecisionApproved>,
    pub rejection: Option<DecisionRejected>,
    pub recommendation: Option<RecommendationIssued>,
    /// Reviews recorded (interview, home visit).
    pub reviews: BTreeSet<i32>,
    /// Materials owed after emergency relief, while owed; and whether the breach was raised.
    pub obligation: Option<MaterialsObligationOpened>,
    pub obligation_breached: bool,
    /// Referrals by id, as they stand.
    pub referrals: std::collections::BTreeMap<String, ReferralUpdated>,
    /// Alarms raised, by (stage, entered on, breached?).
    pub alarms: BTreeSet<(i32, String, bool)>,
    /// The disbursement waiting for budget, while it waits.
    pub waiting_for_funds: Option<String>,
    /// Payments made, by disbursement id, in fen.
    pub distributed: std::collections::BTreeMap<String, i64>,
    pub notified: Option<ApplicantNotified>,
    pub closed: Option<CaseClosed>,
    /// Rural revitalization received the closed case.
    pub reported: bool,
    /// The objection to the rejection or amount, once filed; its review, the amount amended on
    /// it, and whether an overdue review of an amount was raised.
    pub objection: Option<ObjectionFiled>,
    pub objection_review: Option<ObjectionReviewed>,
    pub amendment: Option<DecisionAmended>,
    pub objection_overdue: bool,
    /// Referrals found overdue, by id.
    pub referrals_overdue: BTreeSet<String>,
    /// Acknowledgement days of referrals, by id.
    pub referrals_due: std::collections::BTreeMap<String, String>,
    /// Earlier cases of the same person and crime found after a merge.
    pub duplicates: BTreeSet<String>,
}

impl Aggregate for ReliefCase {
    type Event = DecisionsEvent;
    const KIND: &'static str = "relief case";

    fn partition_key(&self) -> Option<&str> {
        self.opened.as_ref().map(|o| o.person_id.as_str())
    }

    fn apply(&mut self, event: &DecisionsEvent) {
        match event {
            DecisionsEvent::CaseOpened(e) => self.opened = Some(e.clone()),
            DecisionsEvent::StageEntered(e) => {
                self.stage = Stage::try_from(e.stage).unwrap_or_default();
                self.stages.push(e.clone());
            }
            DecisionsEvent::MaterialReceived(e) => {
                self.received.insert(e.material.clone());
            }
            DecisionsEvent::EligibilityAssessed(e) => self.eligibility = Some(e.clone()),
            DecisionsEvent::DecisionProposed(e) => self.proposal = Some(e.clone()),
            DecisionsEvent::DecisionApproved(e) => self.approval = Some(e.clone()),
            DecisionsEvent::DecisionRejected(e) => self.rejection = Some(e.clone()),
            DecisionsEvent::StageDeadlineApproaching(e) => {
                self.alarms.insert((e.stage, e.entered_on.clone(), false));
            }
            DecisionsEvent::StageDeadlineBreached(e) => {
                self.alarms.insert((e.stage, e.entered_on.clone(), true));
            }
            DecisionsEvent::RecommendationIssued(e) => self.recommendation = Some(e.clone()),
            DecisionsEvent::ReferralIssued(e) => {
                self.referrals_due
                    .insert(e.referral_id.clone(), e.acknowledge_by.clone());
                self.referrals.insert(
                    e.referral_id.clone(),
                    ReferralUpdated {
                        case_id: e.case_id.clone(),
                        referral_id: e.referral_id.clone(),
                        department: e.department.clone(),
                        status: ReferralStatus::Issued.into(),
                        ..ReferralUpdated::default()
                    },
                );
            }
            DecisionsEvent::ReferralUpdated(e) => {
                self.referrals.insert(e.referral_id.clone(), e.clone());
            }
            DecisionsEvent::MaterialsObligationOpened(e) => self.obligation = Some(e.clone()),
            DecisionsEvent::MaterialsObligationMet(_) => self.obligation = None,
            DecisionsEvent::MaterialsObligationBreached(_) => self.obligation_breached = true,
            DecisionsEvent::ReviewRecorded(e) => {
                self.reviews.insert(e.kind);
            }
            DecisionsEvent::FundsAwaited(e) => {
                self.waiting_for_funds = Some(e.disbursement_id.clone());
            }
            DecisionsEvent::FundsSecured(_) => self.waiting_for_funds = None,
            DecisionsEvent::ReliefDistributed(e) => {
                self.distributed
                    .insert(e.disbursement_id.clone(), e.amount.map_or(0, |m| m.fen));
                if self.waiting_for_funds.as_deref() == Some(e.disbursement_id.as_str()) {
                    self.waiting_for_funds = None;
                }
            }
            DecisionsEvent::StageDeadlineRecounted(e) => {
                if let Some(current) = self
                    .stages
                    .last_mut()
                    .filter(|c| c.stage == e.stage && c.entered_on == e.entered_on)
                {
                    current.due_date.clone_from(&e.due_date);
                    current.due_provisional = e.due_provisional;
                }
            }
            DecisionsEvent::ApplicantNotified(e) => self.notified = Some(e.clone()),
            DecisionsEvent::CaseClosed(e) => self.closed = Some(e.clone()),
            DecisionsEvent::CaseReported(_) => self.reported = true,
            DecisionsEvent::ObjectionFiled(e) => self.objection = Some(e.clone()),
            DecisionsEvent::ObjectionReviewed(e) => self.objection_review = Some(e.clone()),
            DecisionsEvent::ReferralOverdue(e) => {
                self.referrals_overdue.insert(e.referral_id.clone());
            }
            DecisionsEvent::DuplicateReliefFlagged(e) => {
                self.duplicates.insert(e.other_case_id.clone());
            }
            DecisionsEvent::DecisionAmended(e) => self.amendment = Some(e.clone()),
            DecisionsEvent::ObjectionReviewOverdue(_) => self.objection_overdue = true,
        }
    }
}

impl ReliefCase {
    fn opened(&self) -> Result<&CaseOpened, CaseError> {
        self.opened
            .as_ref()
            .ok_or_else(|| CaseError::NotFound(String::new()))
    }

    /// The region of the case, whose office holds it.
    pub fn region_code(&self) -> &str {
        self.opened.as_ref().map_or("", |o| o.region_code.as_str())
    }

    pub fn person_id(&self) -> &str {
        self.opened.as_ref().map_or("", |o| o.person_id.as_str())
    }

    fn settled(&self) -> bool {
        matches!(self.stage, Stage::Rejected | Stage::Closed)
    }

    fn in_stage(&self, allowed: &[Stage], action: &'static str) -> Result<&CaseOpened, CaseError> {
        let opened = self.opened()?;
        if allowed.contains(&self.stage) {
            Ok(opened)
        } else {
            Err(CaseError::WrongStage {
                stage: stage_name(self.stage),
                action,
            })
        }
    }

    /// The category the case is handled under: the last one assessed, else the one claimed.
    pub fn category(&self) -> &str {
        match (&self.eligibility, &self.opened) {
            (Some(e), _) => &e.category,
            (None, Some(o)) => &o.category,
            (None, None) => "",
        }
    }
}

mod closing;
mod deadlines;
mod decision;
mod distribution;
mod intake;
mod objection;
#[cfg(test)]
mod tests;
