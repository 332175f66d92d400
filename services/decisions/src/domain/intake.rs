//! A case gathers its materials, is assessed and accepted, and passes its reviews.

use super::*;

impl ReliefCase {
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
}
