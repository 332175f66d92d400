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
    CaseOpened, CaseOrigin, DecisionApproved, DecisionProposed, DecisionRejected,
    EligibilityAssessed, MaterialReceived, MaterialsObligationBreached, MaterialsObligationMet,
    MaterialsObligationOpened, RecommendationIssued, ReferralIssued, ReferralStatus,
    ReferralUpdated, ReliefDistributed, ReliefMethod, ReviewKind, ReviewRecorded, Stage,
    StageDeadlineApproaching, StageDeadlineBreached, StageEntered,
};

use crate::policy::{ReliefPolicy, WageBase, WageError, Wages, stage_name};

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
        }
    }
}

impl ReliefCase {
    fn opened(&self) -> Result<&CaseOpened, CaseError> {
        self.opened
            .as_ref()
            .ok_or_else(|| CaseError::NotFound(String::new()))
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

    /// Payments reported the approved amount waiting for budget. Once per disbursement.
    pub fn await_funds(
        &self,
        disbursement_id: &str,
        amount: Option<Money>,
        available: Option<Money>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.waiting_for_funds.as_deref() == Some(disbursement_id)
            || self.distributed.contains_key(disbursement_id)
        {
            return Ok(Vec::new());
        }
        Ok(vec![DecisionsEvent::FundsAwaited(FundsAwaited {
            case_id: opened.case_id.clone(),
            disbursement_id: disbursement_id.to_owned(),
            amount,
            available,
        })])
    }

    /// Payments holds the money now; only news when the case was waiting for it.
    pub fn secure_funds(&self, disbursement_id: &str) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.waiting_for_funds.as_deref() != Some(disbursement_id) {
            return Ok(Vec::new());
        }
        Ok(vec![DecisionsEvent::FundsSecured(FundsSecured {
            case_id: opened.case_id.clone(),
            disbursement_id: disbursement_id.to_owned(),
        })])
    }

    /// The person was paid. The first payment of an approved case enters the distributed
    /// stage (its deadline is the notice to the person); a payment recorded before changes
    /// nothing.
    pub fn distribute(
        &self,
        disbursement_id: &str,
        amount: Option<Money>,
        provider_reference: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.distributed.contains_key(disbursement_id) {
            return Ok(Vec::new());
        }
        if self.approval.is_none() {
            return Err(CaseError::WrongStage {
                stage: stage_name(self.stage),
                action: "paid",
            });
        }
        let mut events = vec![DecisionsEvent::ReliefDistributed(ReliefDistributed {
            case_id: opened.case_id.clone(),
            disbursement_id: disbursement_id.to_owned(),
            amount,
            provider_reference: provider_reference.to_owned(),
            person_id: opened.person_id.clone(),
        })];
        if self.stage == Stage::Approved {
            events.push(DecisionsEvent::StageEntered(
                context.enter(&opened.case_id, Stage::Distributed),
            ));
        }
        Ok(events)
    }

    /// A department's update of a referral it was sent: acknowledged, then completed or
    /// declined. The same update again changes nothing.
    pub fn update_referral(
        &self,
        department: &str,
        referral_id: &str,
        status: ReferralStatus,
        outcome: &str,
        handled_by: &str,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let current = self
            .referrals
            .get(referral_id)
            .ok_or_else(|| CaseError::UnknownReferral(referral_id.to_owned()))?;
        if current.department != department {
            return Err(CaseError::NotTheirReferral {
                referral: referral_id.to_owned(),
                department: current.department.clone(),
                sender: department.to_owned(),
            });
        }
        let now = ReferralStatus::try_from(current.status).unwrap_or_default();
        if now == status {
            return Ok(Vec::new());
        }
        let allowed = matches!(
            (now, status),
            (ReferralStatus::Issued, ReferralStatus::Acknowledged)
                | (
                    ReferralStatus::Issued | ReferralStatus::Acknowledged,
                    ReferralStatus::Completed | ReferralStatus::Declined
                )
        );
        if !allowed {
            return Err(CaseError::ReferralSettled {
                referral: referral_id.to_owned(),
                status: now.as_str_name(),
                next: status.as_str_name(),
            });
        }
        Ok(vec![DecisionsEvent::ReferralUpdated(ReferralUpdated {
            case_id: current.case_id.clone(),
            referral_id: referral_id.to_owned(),
            department: department.to_owned(),
            status: status.into(),
            outcome: outcome.to_owned(),
            handled_by: handled_by.to_owned(),
        })])
    }

    /// The breach of an emergency relief's materials obligation, once, and only while owed.
    pub fn obligation_breached(&self) -> Vec<DecisionsEvent> {
        match &self.obligation {
            Some(owed) if !self.obligation_breached => {
                let still: Vec<String> = owed
                    .materials
                    .iter()
                    .filter(|m| !self.received.contains(*m))
                    .cloned()
                    .collect();
                vec![DecisionsEvent::MaterialsObligationBreached(
                    MaterialsObligationBreached {
                        case_id: owed.case_id.clone(),
                        materials: still,
                        due_date: owed.due_date.clone(),
                        procuratorate: owed.procuratorate.clone(),
                    },
                )]
            }
            _ => Vec::new(),
        }
    }

    /// Records a recommendation for a case still to be decided.
    pub fn recommend(
        &self,
        issued: RecommendationIssued,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        self.opened()?;
        if self.settled() || self.approval.is_some() || self.proposal.is_some() {
            return Err(CaseError::WrongStage {
                stage: stage_name(self.stage),
                action: "given a recommendation",
            });
        }
        Ok(vec![DecisionsEvent::RecommendationIssued(issued)])
    }

    /// The applicant was told the funds arrived: the case is notified, then closed. A poor
    /// party's closed case owes its report to rural revitalization (the closed stage's
    /// deadline); anyone else's closed case owes nothing. The same notice again changes nothing.
    pub fn notify(
        &self,
        notice: Notice,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.notified.is_some() {
            return Ok(Vec::new());
        }
        let paid_on = self
            .stages
            .iter()
            .rev()
            .find(|s| s.stage == Stage::Distributed as i32)
            .map(|s| s.entered_on.clone());
        let Some(paid_on) = paid_on.filter(|_| self.stage == Stage::Distributed) else {
            return Err(CaseError::WrongStage {
                stage: stage_name(self.stage),
                action: "notified of funds",
            });
        };
        let notified_on = day_text(notice.notified_on);
        if notice.notified_on > context.today {
            return Err(CaseError::NotifiedOn {
                notified_on,
                reason: format!("after today ({})", day_text(context.today)),
            });
        }
        if notified_on < paid_on {
            return Err(CaseError::NotifiedOn {
                notified_on,
                reason: format!("before the funds arrived ({paid_on})"),
            });
        }
        let report_days = notice
            .registered_poor
            .then(|| context.policy.deadline_days(Stage::Closed))
            .flatten();
        let closing = context.enter_with(&opened.case_id, Stage::Closed, report_days);
        Ok(vec![
            DecisionsEvent::ApplicantNotified(ApplicantNotified {
                case_id: opened.case_id.clone(),
                channel: notice.channel,
                notified_on,
                notified_by: notice.notified_by,
                note: notice.note,
            }),
            DecisionsEvent::StageEntered(context.enter_with(
                &opened.case_id,
                Stage::Notified,
                None,
            )),
            DecisionsEvent::CaseClosed(CaseClosed {
                case_id: opened.case_id.clone(),
                person_id: opened.person_id.clone(),
                procuratorate: opened.procuratorate.clone(),
                region_code: opened.region_code.clone(),
                closed_on: day_text(context.today),
                relief_paid: Some(Money {
                    fen: self.distributed.values().sum(),
                }),
                methods: self
                    .proposal
                    .as_ref()
                    .map(|p| p.methods.clone())
                    .unwrap_or_default(),
                registered_poor: notice.registered_poor,
                report_due_date: closing.due_date.clone(),
                policy_version: context.policy.version.clone(),
            }),
            DecisionsEvent::StageEntered(closing),
        ])
    }

    /// Rural revitalization received the closed case: once, and only for a case that owes it.
    pub fn report(
        &self,
        department: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        match &self.closed {
            Some(closed) if closed.registered_poor && !self.reported => {
                Ok(vec![DecisionsEvent::CaseReported(CaseReported {
                    case_id: opened.case_id.clone(),
                    department: department.to_owned(),
                    reported_on: day_text(context.today),
                })])
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The current stage's provisional due date counted again on the calendar of `context`:
    /// news only when the date or its provisionality changed.
    pub fn recount(&self, context: Context<'_>) -> Vec<DecisionsEvent> {
        let (Some(opened), Some(current)) = (&self.opened, self.stages.last()) else {
            return Vec::new();
        };
        let stage = Stage::try_from(current.stage).unwrap_or_default();
        let entered = NaiveDate::parse_from_str(&current.entered_on, "%Y-%m-%d").ok();
        // Reviewed keeps acceptance's clock; a closed case owes its report only when poor.
        let days = match stage {
            Stage::Reviewed => context.policy.deadline_days(Stage::Accepted),
            Stage::Closed if !self.closed.as_ref().is_some_and(|c| c.registered_poor) => None,
            _ => context.policy.deadline_days(stage),
        };
        let from = match stage {
            Stage::Reviewed => self
                .stages
                .iter()
                .rev()
                .find(|s| s.stage == Stage::Accepted as i32)
                .and_then(|s| NaiveDate::parse_from_str(&s.entered_on, "%Y-%m-%d").ok()),
            _ => entered,
        };
        let (Some(days), Some(from), true) = (days, from, current.due_provisional) else {
            return Vec::new();
        };
        let (due_date, _, due_provisional) = due_after(context.calendar, from, days);
        if due_date.is_empty()
            || (due_date == current.due_date && due_provisional == current.due_provisional)
        {
            return Vec::new();
        }
        vec![DecisionsEvent::StageDeadlineRecounted(
            StageDeadlineRecounted {
                case_id: opened.case_id.clone(),
                stage: current.stage,
                entered_on: current.entered_on.clone(),
                previous_due_date: current.due_date.clone(),
                due_date,
                due_provisional,
                procuratorate: opened.procuratorate.clone(),
            },
        )]
    }

    /// Why a proposal departs from the recommendation, if it does: an amount outside the
    /// recommended range, or other methods.
    fn departure(&self, proposal: &Proposal) -> Option<String> {
        let recommended = self.recommendation.as_ref()?;
        let (low, high) = (
            recommended.low.map_or(0, |m| m.fen),
            recommended.high.map_or(0, |m| m.fen),
        );
        let wanted: BTreeSet<i32> = recommended.methods.iter().copied().collect();
        let proposed: BTreeSet<i32> = proposal.methods.iter().map(|m| *m as i32).collect();
        if !(low..=high).contains(&proposal.amount_fen) {
            return Some(format!("amount {low} to {high} fen"));
        }
        if wanted != proposed {
            let names: Vec<&str> = recommended
                .methods
                .iter()
                .map(|m| ReliefMethod::try_from(*m).map_or("unknown", |m| m.as_str_name()))
                .collect();
            return Some(format!("methods {}", names.join(", ")));
        }
        None
    }

    /// The alarm for the stage entered on `entered_on`, unless the case has left that stage or
    /// the alarm was raised before: monitoring may look as often as it likes.
    pub fn deadline(&self, stage: Stage, entered_on: &str, alarm: Alarm) -> Vec<DecisionsEvent> {
        let (Some(opened), Some(current)) = (&self.opened, self.stages.last()) else {
            return Vec::new();
        };
        let breached = alarm == Alarm::Breached;
        if current.stage != stage as i32
            || current.entered_on != entered_on
            || current.due_date.is_empty()
            || (stage == Stage::Closed && self.reported)
            || self
                .alarms
                .contains(&(stage as i32, entered_on.to_owned(), breached))
        {
            return Vec::new();
        }
        let event = match alarm {
            Alarm::Approaching { working_days_left } => {
                DecisionsEvent::StageDeadlineApproaching(StageDeadlineApproaching {
                    case_id: opened.case_id.clone(),
                    stage: stage.into(),
                    entered_on: entered_on.to_owned(),
                    due_date: current.due_date.clone(),
                    working_days_left,
                    procuratorate: opened.procuratorate.clone(),
                })
            }
            Alarm::Breached => DecisionsEvent::StageDeadlineBreached(StageDeadlineBreached {
                case_id: opened.case_id.clone(),
                stage: stage.into(),
                entered_on: entered_on.to_owned(),
                due_date: current.due_date.clone(),
                procuratorate: opened.procuratorate.clone(),
            }),
        };
        vec![event]
    }

    /// The category the case is handled under: the last one assessed, else the one claimed.
    pub fn category(&self) -> &str {
        match (&self.eligibility, &self.opened) {
            (Some(e), _) => &e.category,
            (None, Some(o)) => &o.category,
            (None, None) => "",
        }
    }

    /// Materials the case's category requires that have not been received; before a category
    /// is chosen, those every category requires.
    pub fn missing_materials(&self, policy: &ReliefPolicy) -> Vec<String> {
        let required: Vec<&String> = match policy.category(self.category()) {
            Some(category) => category.materials.iter().collect(),
            None => policy
                .materials
                .keys()
                .filter(|m| policy.categories.iter().all(|c| c.materials.contains(m)))
                .collect(),
        };
        required
            .into_iter()
            .filter(|m| !self.received.contains(*m))
            .cloned()
            .collect()
    }

    /// Registers a material; the application moves an informed case to applied.
    pub fn register_material(
        &self,
        received: MaterialReceived,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.settled() {
            return Err(CaseError::WrongStage {
                stage: stage_name(self.stage),
                action: "given materials",
            });
        }
        if !context.policy.materials.contains_key(&received.material) {
            return Err(CaseError::UnknownMaterial(received.material));
        }
        let applies = received.material == "application" && self.stage == Stage::Informed;
        let material = received.material.clone();
        let mut events = vec![DecisionsEvent::MaterialReceived(received)];
        if applies {
            events.push(DecisionsEvent::StageEntered(
                context.enter(&opened.case_id, Stage::Applied),
            ));
        }
        if let Some(owed) = &self.obligation
            && owed
                .materials
                .iter()
                .all(|m| *m == material || self.received.contains(m))
        {
            events.push(DecisionsEvent::MaterialsObligationMet(
                MaterialsObligationMet {
                    case_id: opened.case_id.clone(),
                    met_on: context.today.format("%Y-%m-%d").to_string(),
                },
            ));
        }
        Ok(events)
    }

    /// Assesses the facts against `category` (the case's own when empty).
    pub fn assess(
        &self,
        facts: &BTreeSet<String>,
        category: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.settled() || self.approval.is_some() {
            return Err(CaseError::WrongStage {
                stage: stage_name(self.stage),
                action: "assessed",
            });
        }
        if let Some(unknown) = facts.iter().find(|f| !context.policy.known_fact(f)) {
            return Err(CaseError::UnknownFact(unknown.clone()));
        }
        let chosen = if category.is_empty() {
            self.category()
        } else {
            category
        };
        let category = context
            .policy
            .category(chosen)
            .ok_or_else(|| CaseError::UnknownCategory(chosen.to_owned()))?;
        let found = context.policy.assess(category, facts);
        Ok(vec![DecisionsEvent::EligibilityAssessed(
            EligibilityAssessed {
                case_id: opened.case_id.clone(),
                category: category.id.clone(),
                eligible: found.eligible,
                rule: found.rule,
                reason: found.reason,
                facts: facts.iter().cloned().collect(),
                policy_version: context.policy.version.clone(),
            },
        )])
    }

    pub fn accept(&self, context: Context<'_>) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.in_stage(&[Stage::Applied], "accepted")?;
        Ok(vec![DecisionsEvent::StageEntered(
            context.enter(&opened.case_id, Stage::Accepted),
        )])
    }

    /// Reviews still to do (an interview and a home visit) before the case is reviewed.
    pub fn outstanding_reviews(&self) -> Vec<ReviewKind> {
        [ReviewKind::Interview, ReviewKind::HomeVisit]
            .into_iter()
            .filter(|k| !self.reviews.contains(&(*k as i32)))
            .collect()
    }

    /// Records an interview or home visit of an accepted case; the second of the two moves it
    /// to reviewed (the approval opinion's clock keeps running from acceptance).
    pub fn review(
        &self,
        mut recorded: ReviewRecorded,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.in_stage(&[Stage::Accepted, Stage::Reviewed], "reviewed")?;
        recorded.reviewed_on = context.today.format("%Y-%m-%d").to_string();
        let kind = recorded.kind;
        let mut events = vec![DecisionsEvent::ReviewRecorded(recorded)];
        let completes = self.stage == Stage::Accepted
            && self.outstanding_reviews().iter().all(|k| *k as i32 == kind);
        if completes {
            // Reviewed inherits the acceptance's due date: the opinion is due 10 working
            // days after acceptance, however the reviews went.
            let mut entered = context.enter(&opened.case_id, Stage::Reviewed);
            if let Some(accepted) = self.stages.last() {
                entered.due_date.clone_from(&accepted.due_date);
                entered.due_unknown.clone_from(&accepted.due_unknown);
                entered.due_provisional = accepted.due_provisional;
            }
            events.push(DecisionsEvent::StageEntered(entered));
        }
        Ok(events)
    }

    /// The normal cap, with the wage figure it is a multiple of.
    pub fn cap(&self, context: Context<'_>) -> Result<(i64, WageBase), CaseError> {
        let opened = self.opened()?;
        let base = context.wages.base_on(&opened.region_code, context.today)?;
        Ok((
            base.figure
                .monthly_fen
                .saturating_mul(context.policy.cap_months),
            base,
        ))
    }

    /// Proposes a decision. Emergency relief (a category marked `emergency`) may be decided
    /// before acceptance and with materials missing: they become an obligation on approval.
    pub fn propose(
        &self,
        proposal: Proposal,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let emergency = context
            .policy
            .category(self.category())
            .is_some_and(|c| c.emergency);
        let allowed: &[Stage] = if emergency {
            &[
                Stage::Informed,
                Stage::Applied,
                Stage::Accepted,
                Stage::Reviewed,
            ]
        } else {
            &[Stage::Accepted, Stage::Reviewed]
        };
        let opened = self.in_stage(allowed, "decided")?;
        match &self.eligibility {
            Some(e) if e.eligible => {}
            Some(e) => return Err(CaseError::NotEligible(e.rule.clone())),
            None => return Err(CaseError::NotEligible("not assessed".to_owned())),
        }
        let instalments = proposal.instalments.max(1);
        if instalments > context.policy.instalments.max {
            return Err(CaseError::TooManyInstalments {
                max: context.policy.instalments.max,
                given: instalments,
            });
        }
        let missing = self.missing_materials(context.policy);
        if !missing.is_empty() && !emergency {
            return Err(CaseError::MaterialsMissing(missing));
        }
        if proposal.departure_reason.trim().is_empty()
            && let Some(recommended) = self.departure(&proposal)
        {
            return Err(CaseError::DepartureUnexplained { recommended });
        }
        let (cap, wage) = self.cap(context)?;
        if proposal.amount_fen > cap && !proposal.exceptional {
            return Err(CaseError::AboveCap {
                amount: proposal.amount_fen,
                cap,
                months: context.policy.cap_months,
            });
        }
        if let Some(award) = proposal.court_award_fen
            && proposal.amount_fen > award
        {
            return Err(CaseError::AboveCourtAward {
                amount: proposal.amount_fen,
                award,
            });
        }
        let required = context
            .policy
            .required_approver(
                proposal.amount_fen,
                proposal.exceptional && proposal.amount_fen > cap,
            )
            .to_owned();
        Ok(vec![
            DecisionsEvent::DecisionProposed(DecisionProposed {
                case_id: opened.case_id.clone(),
                amount: Some(Money {
                    fen: proposal.amount_fen,
                }),
                methods: proposal.methods.into_iter().map(i32::from).collect(),
                cap: Some(Money { fen: cap }),
                exceptional: proposal.exceptional && proposal.amount_fen > cap,
                exceptional_reason: proposal.exceptional_reason,
                court_award: proposal.court_award_fen.map(|fen| Money { fen }),
                required_approver: required,
                departure_reason: proposal.departure_reason,
                proposed_by: proposal.proposed_by,
                policy_version: context.policy.version.clone(),
                wage_region: wage.figure.region.clone(),
                wage_year: wage.figure.year,
                wage_level: wage.figure.level.as_str().to_owned(),
                wage_source: wage.figure.source.clone(),
                wage_status: wage.figure.status.as_str().to_owned(),
                wage_wanted_year: wage.wanted_year,
                wage_monthly_fen: wage.figure.monthly_fen,
                emergency,
                outstanding_materials: missing,
                instalments: i32::try_from(instalments).unwrap_or(1),
                instalment_every_months: i32::try_from(context.policy.instalments.every_months)
                    .unwrap_or(1),
            }),
            DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::ApprovalOpinion)),
        ])
    }

    pub fn approve(
        &self,
        approver_role: &str,
        approved_by: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.in_stage(&[Stage::ApprovalOpinion], "approved")?;
        let proposal = self.proposal.as_ref().ok_or(CaseError::WrongStage {
            stage: stage_name(self.stage),
            action: "approved",
        })?;
        if proposal.required_approver != approver_role {
            return Err(CaseError::WrongApprover {
                required: proposal.required_approver.clone(),
                given: approver_role.to_owned(),
            });
        }
        let mut events = vec![
            DecisionsEvent::DecisionApproved(DecisionApproved {
                case_id: opened.case_id.clone(),
                person_id: opened.person_id.clone(),
                amount: proposal.amount,
                methods: proposal.methods.clone(),
                approver_role: approver_role.to_owned(),
                approved_by: approved_by.to_owned(),
                procuratorate: opened.procuratorate.clone(),
                instalments: proposal.instalments.max(1),
                instalment_every_months: proposal.instalment_every_months,
                approved_on: context.today.format("%Y-%m-%d").to_string(),
            }),
            DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Approved)),
        ];
        if !proposal.outstanding_materials.is_empty() {
            let days = context.policy.obligations.outstanding_materials;
            let (due_date, due_unknown, _) = due_after(context.calendar, context.today, days);
            events.push(DecisionsEvent::MaterialsObligationOpened(
                MaterialsObligationOpened {
                    case_id: opened.case_id.clone(),
                    materials: proposal.outstanding_materials.clone(),
                    due_date,
                    due_unknown,
                    procuratorate: opened.procuratorate.clone(),
                },
            ));
        }
        // Diversified relief: each method a department delivers is referred to it.
        for method in proposal
            .methods
            .iter()
            .filter_map(|m| ReliefMethod::try_from(*m).ok())
        {
            if let Some(department) = context.policy.referral_department(method) {
                events.push(DecisionsEvent::ReferralIssued(ReferralIssued {
                    case_id: opened.case_id.clone(),
                    referral_id: format!(
                        "{}:{}",
                        opened.case_id,
                        crate::policy::method_name(method)
                    ),
                    method: method.into(),
                    department: department.to_owned(),
                    person_id: opened.person_id.clone(),
                    procuratorate: opened.procuratorate.clone(),
                }));
            }
        }
        Ok(events)
    }

    pub fn reject(
        &self,
        reason: &str,
        rejected_by: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.in_stage(
            &[
                Stage::Informed,
                Stage::Applied,
                Stage::Accepted,
                Stage::Reviewed,
                Stage::ApprovalOpinion,
            ],
            "rejected",
        )?;
        Ok(vec![
            DecisionsEvent::DecisionRejected(DecisionRejected {
                case_id: opened.case_id.clone(),
                person_id: opened.person_id.clone(),
                reason: reason.to_owned(),
                rejected_by: rejected_by.to_owned(),
            }),
            DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Rejected)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{SHIPPED, WageStatus};
    use proptest::prelude::*;

    struct World {
        policy: ReliefPolicy,
        calendar: Calendar,
        wages: Wages,
    }

    fn world() -> World {
        let set = jiuzhu_policy::PolicySet::compiled_in()
            .unwrap_or_else(|e| panic!("compiled-in policy: {e}"));
        World {
            policy: ReliefPolicy::parse(SHIPPED).unwrap_or_default(),
            calendar: Calendar::shipped().unwrap_or_default(),
            wages: Wages::parse(set.text(jiuzhu_policy::WAGES)).unwrap_or_default(),
        }
    }

    impl World {
        fn on(&self, today: &str) -> Context<'_> {
            Context {
                policy: &self.policy,
                calendar: &self.calendar,
                wages: &self.wages,
                today: NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap_or_default(),
            }
        }
    }

    fn given(events: &[DecisionsEvent]) -> ReliefCase {
        let mut case = ReliefCase::default();
        for event in events {
            case.apply(event);
        }
        case
    }

    fn when(
        case: &mut ReliefCase,
        command: impl FnOnce(&ReliefCase) -> Result<Vec<DecisionsEvent>, CaseError>,
    ) -> Vec<DecisionsEvent> {
        let events = command(case).unwrap_or_default();
        for event in &events {
            case.apply(event);
        }
        events
    }

    fn material(name: &str) -> MaterialReceived {
        MaterialReceived {
            case_id: "c-1".to_owned(),
            material: name.to_owned(),
            file_id: format!("file-{name}"),
            sha256: "ab".repeat(32),
            centre: "南明区检察院服务中心".to_owned(),
            received_by: "clerk-1".to_owned(),
        }
    }

    /// An accepted, eligible serious-injury case in Guiyang with every material in.
    fn accepted(world: &World) -> ReliefCase {
        let context = world.on("2026-11-02");
        let mut case = given(
            &open(
                Open {
                    case_id: "c-1".to_owned(),
                    origin: CaseOrigin::Referral,
                    person_id: "p-1".to_owned(),
                    case_no: "(2026)黔0102刑初5号".to_owned(),
                    procuratorate: "贵阳市南明区人民检察院".to_owned(),
                    region_code: "520102".to_owned(),
                    category: "serious_injury_unpaid".to_owned(),
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        for name in [
            "application",
            "identity_proof",
            "proof_of_harm",
            "proof_of_hardship",
        ] {
            when(&mut case, |c| c.register_material(material(name), context));
        }
        let facts = [
            "seriously_injured_or_disabled",
            "offender_cannot_pay_or_unknown",
        ]
        .map(String::from)
        .into();
        when(&mut case, |c| c.assess(&facts, "", context));
        when(&mut case, |c| c.accept(context));
        case
    }

    #[test]
    fn a_referred_case_is_informed_then_applied_by_its_application_with_deadlines() {
        let world = world();
        let context = world.on("2026-09-30");
        let case = given(
            &open(
                Open {
                    case_id: "c-1".to_owned(),
                    origin: CaseOrigin::Referral,
                    category: "serious_injury_unpaid".to_owned(),
                    region_code: "520102".to_owned(),
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        assert_eq!(case.stage, Stage::Informed);
        // Five working days from 30 September across the National Day week (1–7 October off,
        // Saturday 10 October a make-up working day): 8, 9, 10, 12, 13 October.
        assert_eq!(case.stages[0].due_date, "2026-10-13");
        assert_eq!(
            case.missing_materials(&world.policy),
            [
                "application",
                "identity_proof",
                "proof_of_harm",
                "proof_of_hardship"
            ]
        );
        let events = case
            .register_material(material("application"), world.on("2026-10-09"))
            .unwrap_or_default();
        assert!(matches!(
            &events[..],
            [DecisionsEvent::MaterialReceived(_), DecisionsEvent::StageEntered(s)]
                if s.stage == Stage::Applied as i32 && s.due_date == "2026-10-19"
        ));
        assert_eq!(
            case.register_material(material("selfie"), context),
            Err(CaseError::UnknownMaterial("selfie".to_owned()))
        );
    }

    #[test]
    fn a_referral_may_leave_the_category_to_the_assessment() {
        let world = world();
        let context = world.on("2026-11-02");
        let mut case = given(
            &open(
                Open {
                    case_id: "c-4".to_owned(),
                    origin: CaseOrigin::Referral,
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        // Before a category: what every category needs.
        assert_eq!(
            case.missing_materials(&world.policy),
            ["application", "identity_proof"]
        );
        let facts = ["victim_killed", "relied_on_victims_income"]
            .map(String::from)
            .into();
        when(&mut case, |c| {
            c.assess(&facts, "dependant_of_killed", context)
        });
        assert_eq!(case.category(), "dependant_of_killed");
        assert!(
            case.missing_materials(&world.policy)
                .contains(&"death_certificate".to_owned())
        );
        assert!(
            open(
                Open {
                    origin: CaseOrigin::Application,
                    ..Open::default()
                },
                context
            )
            .is_err(),
            "an application claims a category"
        );
    }

    #[test]
    fn a_deadline_alarm_is_raised_once_and_never_for_a_stage_left_behind() {
        let world = world();
        let context = world.on("2026-11-02");
        let mut case = given(
            &open(
                Open {
                    case_id: "c-5".to_owned(),
                    origin: CaseOrigin::Application,
                    category: "other_in_need".to_owned(),
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        let breached = when(&mut case, |c| {
            Ok(c.deadline(Stage::Applied, "2026-11-02", Alarm::Breached))
        });
        assert!(matches!(
            &breached[..],
            [DecisionsEvent::StageDeadlineBreached(b)] if b.due_date == "2026-11-11"
        ));
        assert!(
            case.deadline(Stage::Applied, "2026-11-02", Alarm::Breached)
                .is_empty()
        );
        when(&mut case, |c| c.accept(world.on("2026-11-12")));
        assert!(
            case.deadline(
                Stage::Applied,
                "2026-11-02",
                Alarm::Approaching {
                    working_days_left: 1
                }
            )
            .is_empty(),
            "the applied stage is over"
        );
        assert_eq!(
            case.deadline(
                Stage::Accepted,
                "2026-11-12",
                Alarm::Approaching {
                    working_days_left: 1
                }
            )
            .len(),
            1
        );
    }

    #[test]
    fn a_short_budget_shows_the_case_waiting_and_the_payment_enters_distribution_once() {
        let world = world();
        let mut case = accepted(&world);
        let context = world.on("2026-11-10");
        let fen = |fen| Some(Money { fen });
        assert!(
            case.distribute("d-1", fen(500_000), "SIM1", context)
                .is_err(),
            "nothing approved, nothing to pay"
        );
        let proposal = Proposal {
            amount_fen: 500_000,
            methods: vec![ReliefMethod::OneTimePayment],
            proposed_by: "relief-prosecutor-1".to_owned(),
            ..Proposal::default()
        };
        when(&mut case, |c| c.propose(proposal, context));
        let approver = case
            .proposal
            .as_ref()
            .map(|p| p.required_approver.clone())
            .unwrap_or_default();
        when(&mut case, |c| c.approve(&approver, "head-1", context));
        when(&mut case, |c| {
            c.await_funds("d-1", fen(500_000), fen(1_000))
        });
        assert_eq!(case.waiting_for_funds.as_deref(), Some("d-1"));
        assert_eq!(
            case.await_funds("d-1", fen(500_000), fen(1_000)),
            Ok(Vec::new()),
            "told twice"
        );
        when(&mut case, |c| c.secure_funds("d-1"));
        assert_eq!(case.waiting_for_funds, None);
        assert_eq!(case.secure_funds("d-1"), Ok(Vec::new()));
        let paid = when(&mut case, |c| {
            c.distribute("d-1", fen(500_000), "SIM1", world.on("2026-11-12"))
        });
        assert!(matches!(
            &paid[..],
            [DecisionsEvent::ReliefDistributed(r), DecisionsEvent::StageEntered(s)]
                if r.amount == fen(500_000) && s.stage == Stage::Distributed as i32
                    && s.due_date == "2026-11-16"
        ));
        assert_eq!(
            case.distribute("d-1", fen(500_000), "SIM1", context),
            Ok(Vec::new()),
            "a redelivered payment"
        );
    }

    #[test]
    fn a_deadline_counted_into_a_year_without_its_notice_is_provisional_not_unknown() {
        let world = world();
        let events = open(
            Open {
                case_id: "c-2".to_owned(),
                origin: CaseOrigin::Application,
                category: "other_in_need".to_owned(),
                ..Open::default()
            },
            world.on("2026-12-28"),
        )
        .unwrap_or_default();
        // Seven working days from Monday 28 December 2026: 29, 30, 31, (1 January off), 4, 5,
        // 6, 7 January 2027, on the calendar computed from the holiday rules.
        assert!(matches!(
            &events[1],
            DecisionsEvent::StageEntered(s) if s.due_date == "2027-01-07"
                && s.due_unknown.is_empty() && s.due_provisional
        ));
        let inside = open(
            Open {
                case_id: "c-3".to_owned(),
                origin: CaseOrigin::Application,
                category: "other_in_need".to_owned(),
                ..Open::default()
            },
            world.on("2026-12-01"),
        )
        .unwrap_or_default();
        assert!(matches!(&inside[1], DecisionsEvent::StageEntered(s) if !s.due_provisional));
    }

    /// A case of `category` in Guiyang taken from opening to its first payment on `day`.
    fn paid(world: &World, day: &str) -> ReliefCase {
        let context = world.on(day);
        let mut case = given(
            &open(
                Open {
                    case_id: "c-9".to_owned(),
                    origin: CaseOrigin::Application,
                    person_id: "p-9".to_owned(),
                    procuratorate: "贵阳市南明区人民检察院".to_owned(),
                    region_code: "520102".to_owned(),
                    category: "other_in_need".to_owned(),
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        for name in ["application", "identity_proof", "proof_of_hardship"] {
            when(&mut case, |c| c.register_material(material(name), context));
        }
        let facts = ["judged_in_need".to_owned()].into();
        when(&mut case, |c| c.assess(&facts, "", context));
        when(&mut case, |c| c.accept(context));
        let proposal = Proposal {
            amount_fen: 600_000,
            methods: vec![ReliefMethod::OneTimePayment],
            proposed_by: "relief-prosecutor-1".to_owned(),
            ..Proposal::default()
        };
        when(&mut case, |c| c.propose(proposal, context));
        when(&mut case, |c| {
            c.approve("department_head", "head-1", context)
        });
        when(&mut case, |c| {
            c.distribute("d-9", Some(Money { fen: 600_000 }), "SIM9", context)
        });
        case
    }

    fn notice(day: &str, poor: bool) -> Notice {
        Notice {
            channel: "phone".to_owned(),
            notified_on: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap_or_default(),
            notified_by: "clerk-1".to_owned(),
            note: String::new(),
            registered_poor: poor,
        }
    }

    #[test]
    fn a_paid_case_is_notified_then_closed_and_a_poor_party_s_case_owes_its_report() {
        let world = world();
        let mut case = paid(&world, "2026-11-02");
        assert_eq!(case.stage, Stage::Distributed);
        let context = world.on("2026-11-03");
        assert!(
            matches!(
                case.notify(notice("2026-11-04", true), context),
                Err(CaseError::NotifiedOn { .. })
            ),
            "a notice dated after today"
        );
        assert!(
            matches!(
                case.notify(notice("2026-10-30", true), context),
                Err(CaseError::NotifiedOn { .. })
            ),
            "a notice before the money arrived"
        );
        let closing = when(&mut case, |c| c.notify(notice("2026-11-03", true), context));
        assert!(matches!(
            &closing[..],
            [
                DecisionsEvent::ApplicantNotified(n),
                DecisionsEvent::StageEntered(notified),
                DecisionsEvent::CaseClosed(closed),
                DecisionsEvent::StageEntered(closed_stage),
            ] if n.channel == "phone" && n.notified_on == "2026-11-03"
                && notified.stage == Stage::Notified as i32 && notified.due_date.is_empty()
                && closed.registered_poor && closed.relief_paid == Some(Money { fen: 600_000 })
                // Five working days from Tuesday 3 November: 4, 5, 6, 9, 10.
                && closed.report_due_date == "2026-11-10"
                && closed_stage.stage == Stage::Closed as i32
                && closed_stage.due_date == "2026-11-10"
        ));
        assert_eq!(case.stage, Stage::Closed);
        assert_eq!(
            case.notify(notice("2026-11-03", true), context),
            Ok(Vec::new())
        );
        // Before the report, the closed stage can breach; once reported, never again.
        let breach = case.deadline(Stage::Closed, "2026-11-03", Alarm::Breached);
        assert_eq!(breach.len(), 1);
        let reported = when(&mut case, |c| c.report("rural_revitalization", context));
        assert!(
            matches!(&reported[..], [DecisionsEvent::CaseReported(r)] if r.reported_on == "2026-11-03")
        );
        assert!(
            case.deadline(Stage::Closed, "2026-11-03", Alarm::Breached)
                .is_empty()
        );
        assert_eq!(case.report("rural_revitalization", context), Ok(Vec::new()));
    }

    #[test]
    fn a_party_who_is_not_poor_is_closed_with_nothing_owed() {
        let world = world();
        let mut case = paid(&world, "2026-11-02");
        let context = world.on("2026-11-02");
        let closing = when(&mut case, |c| {
            c.notify(notice("2026-11-02", false), context)
        });
        assert!(matches!(
            &closing[3],
            DecisionsEvent::StageEntered(s) if s.stage == Stage::Closed as i32 && s.due_date.is_empty()
        ));
        assert_eq!(case.report("rural_revitalization", context), Ok(Vec::new()));
        let unpaid = accepted(&world);
        assert!(matches!(
            unpaid.notify(notice("2026-11-02", false), context),
            Err(CaseError::WrongStage { .. })
        ));
    }

    #[test]
    fn in_2027_the_cap_uses_the_latest_published_wage_and_names_it() {
        let world = world();
        let case = paid(&world, "2027-01-05");
        let proposed = case.proposal.clone().unwrap_or_default();
        // The 2026 bulletins come out in 2027: the latest published year stands in.
        assert_eq!(proposed.wage_wanted_year, 2026);
        assert_eq!(proposed.wage_year, 2025);
        assert_eq!(proposed.wage_region, "52");
        assert_eq!(proposed.wage_level, "province");
        assert!(!proposed.wage_source.is_empty());
        assert!(
            ["official", "provisional", "illustrative"].contains(&proposed.wage_status.as_str())
        );
        assert_eq!(
            proposed.cap.map(|m| m.fen),
            Some(proposed.wage_monthly_fen * 36)
        );
        // Shandong and every other province decide too, in 2031 as well.
        let shandong = world.wages.base_on(
            "370102",
            NaiveDate::from_ymd_opt(2031, 6, 30).unwrap_or_default(),
        );
        assert!(matches!(shandong, Ok(b) if b.figure.region == "37" && b.figure.year == 2025));
        // The case went its way on the 2027 calendar, marked provisional.
        assert!(case.stages.iter().any(|s| s.due_provisional));
    }

    #[test]
    fn a_provisional_due_date_is_counted_again_when_the_notice_arrives() {
        let world = world();
        let opened = open(
            Open {
                case_id: "c-4".to_owned(),
                origin: CaseOrigin::Application,
                category: "other_in_need".to_owned(),
                ..Open::default()
            },
            world.on("2026-12-28"),
        )
        .unwrap_or_default();
        let mut case = given(&opened);
        // Nothing changes on the same calendar.
        assert!(case.recount(world.on("2027-01-04")).is_empty());
        // The 2027 notice gives 4 January off as well (an illustrative arrangement).
        let notice = format!(
            "{}\n[years.2027]\nholidays = [\"2027-01-01\", \"2027-01-04\"]\nworkdays = []\n",
            jiuzhu_calendar::SHIPPED
                .split("\n[rules]\n")
                .next()
                .unwrap_or_default()
        );
        let official = World {
            calendar: Calendar::parse(&format!(
                "{notice}\n[rules]\n{}",
                jiuzhu_calendar::SHIPPED
                    .split("\n[rules]\n")
                    .nth(1)
                    .unwrap_or_default()
            ))
            .unwrap_or_default(),
            ..world
        };
        let recounted = when(&mut case, |c| Ok(c.recount(official.on("2027-01-04"))));
        assert!(
            matches!(
                &recounted[..],
                [DecisionsEvent::StageDeadlineRecounted(r)]
                    if r.previous_due_date == "2027-01-07" && r.due_date == "2027-01-08" && !r.due_provisional
            ),
            "{recounted:?}"
        );
        assert_eq!(
            case.stages.last().map(|s| s.due_date.as_str()),
            Some("2027-01-08")
        );
        assert!(case.recount(official.on("2027-01-04")).is_empty());
    }

    #[test]
    fn a_decision_within_the_cap_goes_to_the_tier_its_amount_needs() {
        let world = world();
        let mut case = accepted(&world);
        let context = world.on("2026-11-10");
        // Guizhou's 2025 wage (the table's figure, 911,667 fen a month): the cap is 36 times it.
        let (cap, base) = case.cap(context).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (cap, base.figure.region.as_str(), base.figure.year),
            (32_820_012, "52", 2025)
        );
        assert_eq!(
            (base.wanted_year, base.figure.status == WageStatus::Official),
            (2025, false)
        );
        let proposal = Proposal {
            amount_fen: 2_000_000,
            methods: vec![ReliefMethod::OneTimePayment, ReliefMethod::Medical],
            proposed_by: "relief-prosecutor-1".to_owned(),
            ..Proposal::default()
        };
        let events = when(&mut case, |c| c.propose(proposal, context));
        assert!(matches!(
            &events[0],
            DecisionsEvent::DecisionProposed(p) if p.required_approver == "chief_prosecutors_meeting"
                && p.policy_version == "relief-2026.2"
        ));
        assert_eq!(
            case.approve("department_head", "head-1", context),
            Err(CaseError::WrongApprover {
                required: "chief_prosecutors_meeting".to_owned(),
                given: "department_head".to_owned(),
            })
        );
        let approved = when(&mut case, |c| {
            c.approve("chief_prosecutors_meeting", "chief-1", context)
        });
        assert!(matches!(
            &approved[0],
            DecisionsEvent::DecisionApproved(a) if a.amount == Some(Money { fen: 2_000_000 }) && a.person_id == "p-1"
        ));
        assert_eq!(case.stage, Stage::Approved);
        // The medical help goes to the health department, and only it may answer for it.
        assert!(matches!(
            &approved[2..],
            [DecisionsEvent::ReferralIssued(r)] if r.department == "health" && r.referral_id == "c-1:medical"
        ));
        assert!(matches!(
            case.update_referral(
                "education",
                "c-1:medical",
                ReferralStatus::Acknowledged,
                "",
                "x"
            ),
            Err(CaseError::NotTheirReferral { .. })
        ));
        when(&mut case, |c| {
            c.update_referral(
                "health",
                "c-1:medical",
                ReferralStatus::Completed,
                "treated",
                "h-1",
            )
        });
        assert!(
            case.update_referral(
                "health",
                "c-1:medical",
                ReferralStatus::Completed,
                "treated",
                "h-1"
            )
            .is_ok_and(|e| e.is_empty()),
            "the same update again changes nothing"
        );
        assert!(matches!(
            case.update_referral(
                "health",
                "c-1:medical",
                ReferralStatus::Acknowledged,
                "",
                "h-1"
            ),
            Err(CaseError::ReferralSettled { .. })
        ));
        assert!(matches!(
            case.reject("late", "x", context),
            Err(CaseError::WrongStage {
                stage: "approved",
                ..
            })
        ));
    }

    #[test]
    fn a_decision_that_departs_from_the_recommendation_says_why() {
        let world = world();
        let context = world.on("2026-11-10");
        let mut case = accepted(&world);
        let issued = RecommendationIssued {
            case_id: "c-1".to_owned(),
            model_version: "m-1".to_owned(),
            amount: Some(Money { fen: 3_000_000 }),
            low: Some(Money { fen: 2_500_000 }),
            high: Some(Money { fen: 3_600_000 }),
            methods: vec![
                ReliefMethod::OneTimePayment as i32,
                ReliefMethod::Medical as i32,
            ],
            clamped: String::new(),
        };
        when(&mut case, |c| c.recommend(issued));
        let proposal = Proposal {
            amount_fen: 1_000_000,
            methods: vec![ReliefMethod::OneTimePayment, ReliefMethod::Medical],
            ..Proposal::default()
        };
        assert!(matches!(
            case.propose(proposal.clone(), context),
            Err(CaseError::DepartureUnexplained { recommended }) if recommended.contains("2500000 to 3600000")
        ));
        let fewer = Proposal {
            amount_fen: 3_000_000,
            methods: vec![ReliefMethod::OneTimePayment],
            ..Proposal::default()
        };
        assert!(matches!(
            case.propose(fewer, context),
            Err(CaseError::DepartureUnexplained { recommended }) if recommended.contains("RELIEF_METHOD_MEDICAL")
        ));
        let explained = Proposal {
            departure_reason: "the family received a court award since".to_owned(),
            ..proposal
        };
        assert!(case.propose(explained, context).is_ok());
    }

    #[test]
    fn emergency_relief_is_decided_first_and_the_missing_materials_are_owed() {
        let world = world();
        let context = world.on("2026-11-02");
        let mut case = given(
            &open(
                Open {
                    case_id: "c-6".to_owned(),
                    origin: CaseOrigin::Application,
                    region_code: "520102".to_owned(),
                    category: "urgent_medical".to_owned(),
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        when(&mut case, |c| {
            c.register_material(material("application"), context)
        });
        let facts = ["urgent_medical_need", "cannot_pay_treatment"]
            .map(String::from)
            .into();
        when(&mut case, |c| c.assess(&facts, "", context));
        // Not accepted, two materials missing: still decided, at once.
        let proposed = when(&mut case, |c| {
            c.propose(
                Proposal {
                    amount_fen: 800_000,
                    methods: vec![ReliefMethod::OneTimePayment],
                    ..Proposal::default()
                },
                context,
            )
        });
        assert!(matches!(
            &proposed[0],
            DecisionsEvent::DecisionProposed(p) if p.emergency
                && p.outstanding_materials == ["identity_proof", "medical_urgency"]
        ));
        let approved = when(&mut case, |c| {
            c.approve("department_head", "head-1", context)
        });
        assert!(approved.iter().any(|e| matches!(
            e,
            DecisionsEvent::MaterialsObligationOpened(o) if o.due_date == "2026-11-30" && o.materials.len() == 2
        )));
        assert_eq!(case.obligation_breached().len(), 1);
        when(&mut case, |c| {
            c.register_material(material("identity_proof"), context)
        });
        assert!(case.obligation.is_some(), "one material still owed");
        let met = when(&mut case, |c| {
            c.register_material(material("medical_urgency"), context)
        });
        assert!(matches!(
            &met[..],
            [_, DecisionsEvent::MaterialsObligationMet(_)]
        ));
        assert!(case.obligation_breached().is_empty());
    }

    #[test]
    fn an_interview_and_a_home_visit_make_a_case_reviewed_on_the_acceptance_clock() {
        let world = world();
        let mut case = accepted(&world);
        let due = case
            .stages
            .last()
            .map(|s| s.due_date.clone())
            .unwrap_or_default();
        let record = |kind: ReviewKind| ReviewRecorded {
            case_id: "c-1".to_owned(),
            kind: kind as i32,
            record_file_id: "rec-1".to_owned(),
            sha256: "cd".repeat(32),
            reviewed_by: "p-1".to_owned(),
            reviewed_on: String::new(),
        };
        let first = when(&mut case, |c| {
            c.review(record(ReviewKind::HomeVisit), world.on("2026-11-04"))
        });
        assert_eq!(first.len(), 1);
        assert_eq!(case.outstanding_reviews(), [ReviewKind::Interview]);
        let second = when(&mut case, |c| {
            c.review(record(ReviewKind::Interview), world.on("2026-11-05"))
        });
        assert!(matches!(
            &second[..],
            [_, DecisionsEvent::StageEntered(s)] if s.stage == Stage::Reviewed as i32 && s.due_date == due
        ));
        assert_eq!(case.stage, Stage::Reviewed);
    }

    #[test]
    fn nothing_is_decided_before_eligibility_and_materials_are_in() {
        let world = world();
        let context = world.on("2026-11-02");
        let mut case = given(
            &open(
                Open {
                    case_id: "c-3".to_owned(),
                    origin: CaseOrigin::Application,
                    region_code: "520102".to_owned(),
                    category: "serious_injury_unpaid".to_owned(),
                    ..Open::default()
                },
                context,
            )
            .unwrap_or_default(),
        );
        when(&mut case, |c| c.accept(context));
        let proposal = Proposal {
            amount_fen: 100_000,
            methods: vec![ReliefMethod::OneTimePayment],
            ..Proposal::default()
        };
        assert_eq!(
            case.propose(proposal.clone(), context),
            Err(CaseError::NotEligible("not assessed".to_owned()))
        );
        let at_fault = [
            "seriously_injured_or_disabled",
            "offender_cannot_pay_or_unknown",
            "major_fault",
        ]
        .map(String::from)
        .into();
        when(&mut case, |c| c.assess(&at_fault, "", context));
        assert_eq!(
            case.propose(proposal.clone(), context),
            Err(CaseError::NotEligible("exclusion:major_fault".to_owned()))
        );
        let facts = [
            "seriously_injured_or_disabled",
            "offender_cannot_pay_or_unknown",
        ]
        .map(String::from)
        .into();
        when(&mut case, |c| c.assess(&facts, "", context));
        assert!(matches!(
            case.propose(proposal, context),
            Err(CaseError::MaterialsMissing(m)) if m.len() == 4
        ));
        let unknown = ["bad_luck".to_owned()].into();
        assert_eq!(
            case.assess(&unknown, "", context),
            Err(CaseError::UnknownFact("bad_luck".to_owned()))
        );
    }

    proptest! {
        /// No approved amount above the cap without the exceptional path, and never above a
        /// court's award.
        #[test]
        fn no_approved_amount_exceeds_the_cap_unless_exceptional(
            amount in 1i64..60_000_000,
            exceptional in any::<bool>(),
            award in proptest::option::of(1i64..60_000_000),
        ) {
            let world = world();
            let context = world.on("2026-11-10");
            let mut case = accepted(&world);
            let cap = case.cap(context).map(|(cap, _)| cap).unwrap_or(0);
            let proposal = Proposal {
                amount_fen: amount,
                methods: vec![ReliefMethod::OneTimePayment],
                exceptional,
                exceptional_reason: "especially grave loss".to_owned(),
                court_award_fen: award,
                ..Proposal::default()
            };
            when(&mut case, |c| c.propose(proposal, context));
            let required = case.proposal.as_ref().map(|p| p.required_approver.clone()).unwrap_or_default();
            when(&mut case, |c| c.approve(&required, "approver", context));
            if let Some(approved) = &case.approval {
                let fen = approved.amount.map_or(0, |m| m.fen);
                prop_assert!(fen <= cap || (exceptional && required == "procuratorial_committee"));
                prop_assert!(award.is_none_or(|award| fen <= award));
            } else {
                prop_assert!((amount > cap && !exceptional) || award.is_some_and(|a| amount > a));
            }
        }
    }
}
