//! The decision: the recommendation, the cap, the proposal and the approval by the tier the
//! amount needs, or the rejection.

use super::*;

impl ReliefCase {
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
        // Refused here, not met later by payments as a zero-fen order it can never carry out.
        if proposal.amount_fen < i64::from(instalments) {
            return Err(CaseError::InstalmentsBelowOneFen {
                amount: proposal.amount_fen,
                instalments,
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
                region_code: opened.region_code.clone(),
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
        events.extend(referrals(opened, &proposal.methods, context));
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

/// Diversified relief: each approved method a department delivers is referred to it.
pub(super) fn referrals(
    opened: &CaseOpened,
    methods: &[i32],
    context: Context<'_>,
) -> Vec<DecisionsEvent> {
    methods
        .iter()
        .filter_map(|m| ReliefMethod::try_from(*m).ok())
        .filter_map(|method| {
            let department = context.policy.referral_department(method)?;
            Some(DecisionsEvent::ReferralIssued(ReferralIssued {
                case_id: opened.case_id.clone(),
                // The department's own reference of the case, never the case id.
                referral_id: format!(
                    "{}:{}",
                    jiuzhu_sharing::case_ref(department, &opened.case_id),
                    crate::policy::method_name(method)
                ),
                method: method.into(),
                department: department.to_owned(),
                person_id: opened.person_id.clone(),
                procuratorate: opened.procuratorate.clone(),
                // Only a department's copy carries whom to help, sealed for it.
                subject: None,
                acknowledge_by: due_after(
                    context.calendar,
                    context.today,
                    context.policy.referral_answers.acknowledge_within,
                )
                .0,
            }))
        })
        .collect()
}
