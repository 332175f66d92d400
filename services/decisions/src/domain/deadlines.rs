//! Stage deadlines: alarms when a deadline approaches or is breached, and provisional deadlines
//! recounted when the official calendar is published.

use super::*;

impl ReliefCase {
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

    /// The referral `referral_id` unanswered past its acknowledgement day (`today` after it):
    /// the alarm, once; nothing once the department has answered.
    pub fn referral_overdue(&self, referral_id: &str, today: NaiveDate) -> Vec<DecisionsEvent> {
        let (Some(opened), Some(referral), Some(due)) = (
            &self.opened,
            self.referrals.get(referral_id),
            self.referrals_due.get(referral_id),
        ) else {
            return Vec::new();
        };
        let past = NaiveDate::parse_from_str(due, "%Y-%m-%d").is_ok_and(|due| today > due);
        if !past
            || referral.status != ReferralStatus::Issued as i32
            || self.referrals_overdue.contains(referral_id)
        {
            return Vec::new();
        }
        vec![DecisionsEvent::ReferralOverdue(ReferralOverdue {
            case_id: opened.case_id.clone(),
            referral_id: referral_id.to_owned(),
            department: referral.department.clone(),
            acknowledge_by: due.clone(),
            procuratorate: opened.procuratorate.clone(),
        })]
    }
}
