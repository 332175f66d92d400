//! Objections (申诉/复查): an applicant who disputes a rejection or the amount approved objects
//! once, through the handling office, within the policy's working days of the decision; an
//! approver other than the one who decided reviews it within the `objection_review` deadline.
//!
//! A rejected case waits in the objection review stage. Upheld, the rejection stands for good;
//! amended, the case is approved with an amount (within the cap, by the tier the amount needs)
//! and paid like any approval; reopened, it goes back to handling.
//!
//! An approved case keeps its stage while the objection to its amount waits: payment and the
//! notice to the applicant are not held up by it. Upheld, the amount stands; amended, the amount
//! is raised and the difference is paid once as a supplement (`DecisionAmended`). A case being
//! paid is never reopened.

use super::decision::referrals;
use super::*;

/// How a reviewer decided an objection, as the shell validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectionDecision {
    Upheld,
    Amended {
        amount_fen: i64,
        methods: Vec<ReliefMethod>,
    },
    Reopened,
}

/// The stages in which an approved amount may be objected to.
const APPROVED: [Stage; 4] = [
    Stage::Approved,
    Stage::Distributed,
    Stage::Notified,
    Stage::Closed,
];

impl ReliefCase {
    /// The applicant's objection to the rejection or to the amount approved, received on
    /// `filed_on`.
    pub fn object(
        &self,
        grounds: &str,
        filed_on: NaiveDate,
        filed_by: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        let (decision, decided_by, decided_on, disputed_amount) = match (&self.approval, self.stage)
        {
            (_, Stage::Rejected) => {
                let rejected_on = self
                    .stages
                    .iter()
                    .rev()
                    .find(|s| s.stage == i32::from(Stage::Rejected))
                    .map(|s| s.entered_on.clone());
                let rejected_by = self.rejection.as_ref().map(|r| r.rejected_by.clone());
                ("rejection", rejected_by, rejected_on, None)
            }
            (Some(approval), stage) if APPROVED.contains(&stage) => (
                "approval",
                Some(approval.approved_by.clone()),
                Some(approval.approved_on.clone()),
                approval.amount,
            ),
            _ => {
                return Err(CaseError::WrongStage {
                    stage: stage_name(self.stage),
                    action: "objected to",
                });
            }
        };
        if let Some(earlier) = &self.objection {
            return Err(CaseError::ObjectedBefore(earlier.filed_on.clone()));
        }
        if filed_on > context.today {
            return Err(CaseError::ObjectionInFuture(day_text(filed_on)));
        }
        // A year the calendar does not cover yet cannot be counted: the applicant has the
        // benefit of the doubt, and the record shows when it was filed.
        if let Some(decided_on) = decided_on
            .as_deref()
            .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
            && let Ok(last) = context
                .calendar
                .due(decided_on, context.policy.objections.within_working_days)
            && filed_on > last.date
        {
            return Err(CaseError::ObjectionLate {
                decision,
                decided_on: day_text(decided_on),
                last_day: day_text(last.date),
            });
        }
        let review = context.enter(&opened.case_id, Stage::ObjectionReview);
        let mut events = vec![DecisionsEvent::ObjectionFiled(ObjectionFiled {
            case_id: opened.case_id.clone(),
            person_id: opened.person_id.clone(),
            grounds: grounds.to_owned(),
            filed_on: day_text(filed_on),
            filed_by: filed_by.to_owned(),
            rejected_by: decided_by.unwrap_or_default(),
            policy_version: context.policy.version.clone(),
            disputed_amount,
            review_due: review.due_date.clone(),
        })];
        if disputed_amount.is_none() {
            events.push(DecisionsEvent::StageEntered(review));
        }
        Ok(events)
    }

    /// The review of the objection by `reviewed_by`, whose certificate names `reviewer_tier`.
    pub fn review_objection(
        &self,
        decision: ObjectionDecision,
        reason: &str,
        reviewer_tier: &str,
        reviewed_by: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        let objection = match &self.objection {
            Some(objection)
                if self.stage == Stage::ObjectionReview
                    || (objection.disputed_amount.is_some() && self.objection_review.is_none()) =>
            {
                objection
            }
            _ => {
                if let Some(review) = &self.objection_review {
                    return Err(CaseError::ReviewedBefore(review.reviewed_on.clone()));
                }
                return Err(CaseError::WrongStage {
                    stage: stage_name(self.stage),
                    action: "reviewed on objection",
                });
            }
        };
        if objection.rejected_by == reviewed_by {
            return Err(CaseError::SameApprover);
        }
        let reviewed = |outcome: ObjectionOutcome, amount: Option<Money>, supplement| {
            DecisionsEvent::ObjectionReviewed(ObjectionReviewed {
                case_id: opened.case_id.clone(),
                person_id: opened.person_id.clone(),
                outcome: outcome.into(),
                amount,
                reason: reason.to_owned(),
                reviewed_by: reviewed_by.to_owned(),
                reviewed_on: day_text(context.today),
                supplement,
            })
        };
        let amendment = |amount_fen: i64| -> Result<(), CaseError> {
            if amount_fen < 1 {
                return Err(CaseError::InstalmentsBelowOneFen {
                    amount: amount_fen,
                    instalments: 1,
                });
            }
            let (cap, _) = self.cap(context)?;
            if amount_fen > cap {
                return Err(CaseError::AboveCap {
                    amount: amount_fen,
                    cap,
                    months: context.policy.cap_months,
                });
            }
            let required = context.policy.required_approver(amount_fen, false);
            if required != reviewer_tier {
                return Err(CaseError::WrongApprover {
                    required: required.to_owned(),
                    given: reviewer_tier.to_owned(),
                });
            }
            Ok(())
        };
        if let Some(approved) = objection.disputed_amount {
            return match decision {
                ObjectionDecision::Upheld => {
                    Ok(vec![reviewed(ObjectionOutcome::Upheld, None, None)])
                }
                ObjectionDecision::Reopened => Err(CaseError::AmountObjectionReopened),
                ObjectionDecision::Amended {
                    amount_fen,
                    methods,
                } => {
                    if !methods.is_empty() {
                        return Err(CaseError::MethodsKept);
                    }
                    if amount_fen <= approved.fen {
                        return Err(CaseError::AmendmentNotAbove {
                            amount: amount_fen,
                            approved: approved.fen,
                        });
                    }
                    amendment(amount_fen)?;
                    let amount = Some(Money { fen: amount_fen });
                    let supplement = Some(Money {
                        fen: amount_fen - approved.fen,
                    });
                    Ok(vec![
                        reviewed(ObjectionOutcome::Amended, amount, supplement),
                        DecisionsEvent::DecisionAmended(DecisionAmended {
                            case_id: opened.case_id.clone(),
                            person_id: opened.person_id.clone(),
                            procuratorate: opened.procuratorate.clone(),
                            region_code: opened.region_code.clone(),
                            approved_amount: Some(approved),
                            amount,
                            supplement,
                            approver_role: reviewer_tier.to_owned(),
                            amended_by: reviewed_by.to_owned(),
                            amended_on: day_text(context.today),
                            policy_version: context.policy.version.clone(),
                        }),
                    ])
                }
            };
        }
        Ok(match decision {
            ObjectionDecision::Upheld => vec![
                reviewed(ObjectionOutcome::Upheld, None, None),
                DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Rejected)),
            ],
            ObjectionDecision::Reopened => vec![
                reviewed(ObjectionOutcome::Reopened, None, None),
                DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Accepted)),
            ],
            ObjectionDecision::Amended {
                amount_fen,
                methods,
            } => {
                amendment(amount_fen)?;
                let methods: Vec<i32> = if methods.is_empty() {
                    vec![ReliefMethod::OneTimePayment.into()]
                } else {
                    methods.into_iter().map(i32::from).collect()
                };
                let amount = Some(Money { fen: amount_fen });
                let mut events = vec![
                    reviewed(ObjectionOutcome::Amended, amount, None),
                    DecisionsEvent::DecisionApproved(DecisionApproved {
                        case_id: opened.case_id.clone(),
                        person_id: opened.person_id.clone(),
                        amount,
                        methods: methods.clone(),
                        approver_role: reviewer_tier.to_owned(),
                        approved_by: reviewed_by.to_owned(),
                        procuratorate: opened.procuratorate.clone(),
                        instalments: 1,
                        instalment_every_months: i32::try_from(
                            context.policy.instalments.every_months,
                        )
                        .unwrap_or(1),
                        approved_on: day_text(context.today),
                        region_code: opened.region_code.clone(),
                    }),
                    DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Approved)),
                ];
                events.extend(referrals(opened, &methods, context));
                events
            }
        })
    }

    /// The review of an objection to an amount, not done by its day: the alarm, once.
    pub fn objection_overdue(&self, today: NaiveDate) -> Vec<DecisionsEvent> {
        match &self.objection {
            Some(objection)
                if objection.disputed_amount.is_some()
                    && self.objection_review.is_none()
                    && !self.objection_overdue
                    && NaiveDate::parse_from_str(&objection.review_due, "%Y-%m-%d")
                        .is_ok_and(|due| due < today) =>
            {
                vec![DecisionsEvent::ObjectionReviewOverdue(
                    ObjectionReviewOverdue {
                        case_id: objection.case_id.clone(),
                        filed_on: objection.filed_on.clone(),
                        review_due: objection.review_due.clone(),
                        procuratorate: self
                            .opened
                            .as_ref()
                            .map(|o| o.procuratorate.clone())
                            .unwrap_or_default(),
                    },
                )]
            }
            _ => Vec::new(),
        }
    }
}
