//! Objections (申诉/复查): an applicant who disputes a rejection objects once, through the
//! handling office, within the policy's working days of it; an approver other than the one who
//! rejected reviews it within the `objection_review` deadline. Upheld, the rejection stands for
//! good; amended, the case is approved with an amount (within the cap, by the tier the amount
//! needs) and paid like any approval; reopened, it goes back to handling.

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

impl ReliefCase {
    /// The applicant's objection to the rejection, received on `filed_on`.
    pub fn object(
        &self,
        grounds: &str,
        filed_on: NaiveDate,
        filed_by: &str,
        context: Context<'_>,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.in_stage(&[Stage::Rejected], "objected to")?;
        if let Some(earlier) = &self.objection {
            return Err(CaseError::ObjectedBefore(earlier.filed_on.clone()));
        }
        if filed_on > context.today {
            return Err(CaseError::ObjectionInFuture(day_text(filed_on)));
        }
        let rejected_by = self
            .rejection
            .as_ref()
            .map(|r| r.rejected_by.clone())
            .unwrap_or_default();
        let rejected_on = self
            .stages
            .iter()
            .rev()
            .find(|s| s.stage == i32::from(Stage::Rejected))
            .and_then(|s| NaiveDate::parse_from_str(&s.entered_on, "%Y-%m-%d").ok());
        // A year the calendar does not cover yet cannot be counted: the applicant has the
        // benefit of the doubt, and the record shows when it was filed.
        if let Some(rejected_on) = rejected_on
            && let Ok(last) = context
                .calendar
                .due(rejected_on, context.policy.objections.within_working_days)
            && filed_on > last.date
        {
            return Err(CaseError::ObjectionLate {
                rejected_on: day_text(rejected_on),
                last_day: day_text(last.date),
            });
        }
        Ok(vec![
            DecisionsEvent::ObjectionFiled(ObjectionFiled {
                case_id: opened.case_id.clone(),
                person_id: opened.person_id.clone(),
                grounds: grounds.to_owned(),
                filed_on: day_text(filed_on),
                filed_by: filed_by.to_owned(),
                rejected_by,
                policy_version: context.policy.version.clone(),
            }),
            DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::ObjectionReview)),
        ])
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
        let opened = self.in_stage(&[Stage::ObjectionReview], "reviewed on objection")?;
        let objection = self.objection.as_ref().ok_or(CaseError::WrongStage {
            stage: stage_name(self.stage),
            action: "reviewed on objection",
        })?;
        if objection.rejected_by == reviewed_by {
            return Err(CaseError::SameApprover);
        }
        let reviewed = |outcome: ObjectionOutcome, amount: Option<Money>| {
            DecisionsEvent::ObjectionReviewed(ObjectionReviewed {
                case_id: opened.case_id.clone(),
                person_id: opened.person_id.clone(),
                outcome: outcome.into(),
                amount,
                reason: reason.to_owned(),
                reviewed_by: reviewed_by.to_owned(),
                reviewed_on: day_text(context.today),
            })
        };
        Ok(match decision {
            ObjectionDecision::Upheld => vec![
                reviewed(ObjectionOutcome::Upheld, None),
                DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Rejected)),
            ],
            ObjectionDecision::Reopened => vec![
                reviewed(ObjectionOutcome::Reopened, None),
                DecisionsEvent::StageEntered(context.enter(&opened.case_id, Stage::Accepted)),
            ],
            ObjectionDecision::Amended {
                amount_fen,
                methods,
            } => {
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
                let methods: Vec<i32> = if methods.is_empty() {
                    vec![ReliefMethod::OneTimePayment.into()]
                } else {
                    methods.into_iter().map(i32::from).collect()
                };
                let amount = Some(Money { fen: amount_fen });
                let mut events = vec![
                    reviewed(ObjectionOutcome::Amended, amount),
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
}
