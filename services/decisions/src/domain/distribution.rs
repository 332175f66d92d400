//! After approval: funds awaited and secured, relief distributed by its method, referrals to
//! departments and their answers, the materials obligation.

use super::*;

impl ReliefCase {
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
}
