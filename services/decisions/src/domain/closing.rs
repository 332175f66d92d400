//! The end of a case: the applicant notified, the case closed and reported.

use super::*;

impl ReliefCase {
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

    /// A merge found `other_case_id`, an earlier case of the same person and crime: flagged
    /// once on this case.
    pub fn flag_duplicate(
        &self,
        other_case_id: &str,
        person_id: &str,
        merged_by: &str,
    ) -> Result<Vec<DecisionsEvent>, CaseError> {
        let opened = self.opened()?;
        if self.duplicates.contains(other_case_id) || opened.case_id == other_case_id {
            return Ok(Vec::new());
        }
        Ok(vec![DecisionsEvent::DuplicateReliefFlagged(
            DuplicateReliefFlagged {
                case_id: opened.case_id.clone(),
                other_case_id: other_case_id.to_owned(),
                person_id: person_id.to_owned(),
                case_no: opened.case_no.clone(),
                merged_by: merged_by.to_owned(),
                procuratorate: opened.procuratorate.clone(),
            },
        )])
    }
}
