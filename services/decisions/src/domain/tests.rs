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

use jiuzhu_eventstore::given_when_then::{given, when};

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
    let mut case: ReliefCase = given(
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
    let case: ReliefCase = given(
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
    let mut case: ReliefCase = given(
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
    let mut case: ReliefCase = given(
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
        Ok::<_, CaseError>(c.deadline(Stage::Applied, "2026-11-02", Alarm::Breached))
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
    let mut case: ReliefCase = given(
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
    assert!(["official", "provisional", "illustrative"].contains(&proposed.wage_status.as_str()));
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
    let mut case: ReliefCase = given(&opened);
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
    let recounted = when(&mut case, |c| {
        Ok::<_, CaseError>(c.recount(official.on("2027-01-04")))
    });
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
            && p.policy_version == "relief-2026.3"
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
    let referral = format!("{}:medical", jiuzhu_sharing::case_ref("health", "c-1"));
    assert!(matches!(
        &approved[2..],
        [DecisionsEvent::ReferralIssued(r)] if r.department == "health" && r.referral_id == referral
    ));
    assert!(matches!(
        case.update_referral(
            "education",
            &referral,
            ReferralStatus::Acknowledged,
            "",
            "x"
        ),
        Err(CaseError::NotTheirReferral { .. })
    ));
    when(&mut case, |c| {
        c.update_referral(
            "health",
            &referral,
            ReferralStatus::Completed,
            "treated",
            "h-1",
        )
    });
    assert!(
        case.update_referral(
            "health",
            &referral,
            ReferralStatus::Completed,
            "treated",
            "h-1"
        )
        .is_ok_and(|e| e.is_empty()),
        "the same update again changes nothing"
    );
    assert!(matches!(
        case.update_referral("health", &referral, ReferralStatus::Acknowledged, "", "h-1"),
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
fn an_amount_smaller_than_its_instalments_is_refused_before_anything_is_decided() {
    let world = world();
    let context = world.on("2026-11-10");
    let case = accepted(&world);
    let proposal = Proposal {
        amount_fen: 5,
        instalments: 12,
        methods: vec![ReliefMethod::OneTimePayment],
        ..Proposal::default()
    };
    assert_eq!(
        case.propose(proposal.clone(), context),
        Err(CaseError::InstalmentsBelowOneFen {
            amount: 5,
            instalments: 12
        })
    );
    let twelve = Proposal {
        amount_fen: 12,
        departure_reason: "a token sum in twelve parts".to_owned(),
        ..proposal
    };
    assert!(case.propose(twelve, context).is_ok());
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
    let mut case: ReliefCase = given(
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
    let mut case: ReliefCase = given(
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

/// The accepted case rejected by `approver-a` on Monday 2 November 2026.
fn rejected(world: &World) -> ReliefCase {
    let mut case = accepted(world);
    let events = when(&mut case, |c| {
        c.reject("hardship not shown", "approver-a", world.on("2026-11-02"))
    });
    assert_eq!(events.len(), 2, "rejected");
    case
}

#[test]
fn an_objection_is_filed_once_in_time_and_waits_for_review() {
    let world = world();
    let mut case = rejected(&world);
    // Five working days from Monday 2 November: Monday 9 November is the last day.
    assert!(matches!(
        case.object("new proof", day("2026-11-10"), "office", world.on("2026-11-10")),
        Err(CaseError::ObjectionLate { ref last_day, .. }) if last_day == "2026-11-09"
    ));
    assert!(matches!(
        case.object(
            "new proof",
            day("2026-11-06"),
            "office",
            world.on("2026-11-05")
        ),
        Err(CaseError::ObjectionInFuture(_))
    ));
    let events = when(&mut case, |c| {
        c.object(
            "new proof",
            day("2026-11-09"),
            "office",
            world.on("2026-11-09"),
        )
    });
    let [
        DecisionsEvent::ObjectionFiled(filed),
        DecisionsEvent::StageEntered(review),
    ] = events.as_slice()
    else {
        panic!("an objection and its review stage: {events:?}");
    };
    assert_eq!(filed.rejected_by, "approver-a");
    assert_eq!(review.stage, i32::from(Stage::ObjectionReview));
    // Ten working days for the review.
    assert_eq!(review.due_date, "2026-11-23");
    assert!(matches!(
        case.object("again", day("2026-11-09"), "office", world.on("2026-11-09")),
        Err(CaseError::WrongStage { .. })
    ));
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
}

#[test]
fn another_approver_upholds_amends_or_reopens_an_objection() {
    let world = world();
    let context = world.on("2026-11-12");
    let mut case = rejected(&world);
    when(&mut case, |c| {
        c.object("new proof", day("2026-11-04"), "office", context)
    });
    assert!(matches!(
        case.review_objection(
            ObjectionDecision::Upheld,
            "r",
            "department_head",
            "approver-a",
            context
        ),
        Err(CaseError::SameApprover)
    ));
    // Amended: within the cap, by the tier the amount needs; approved and referred like any.
    assert!(matches!(
        case.review_objection(
            ObjectionDecision::Amended {
                amount_fen: 2_000_000,
                methods: vec![]
            },
            "r",
            "department_head",
            "approver-b",
            context
        ),
        Err(CaseError::WrongApprover { .. })
    ));
    assert!(matches!(
        case.review_objection(
            ObjectionDecision::Amended {
                amount_fen: 1_000_000_000,
                methods: vec![]
            },
            "r",
            "chief_prosecutors_meeting",
            "approver-b",
            context
        ),
        Err(CaseError::AboveCap { .. })
    ));
    let mut amended = case.clone();
    let events = when(&mut amended, |c| {
        c.review_objection(
            ObjectionDecision::Amended {
                amount_fen: 800_000,
                methods: vec![ReliefMethod::OneTimePayment, ReliefMethod::Medical],
            },
            "hardship shown on objection",
            "department_head",
            "approver-b",
            context,
        )
    });
    let approved = events.iter().find_map(|e| match e {
        DecisionsEvent::DecisionApproved(a) => Some(a.clone()),
        _ => None,
    });
    assert_eq!(
        approved.and_then(|a| a.amount).map(|m| m.fen),
        Some(800_000)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DecisionsEvent::ReferralIssued(r) if r.department == "health"))
    );
    assert_eq!(amended.stage, Stage::Approved);

    let mut upheld = case.clone();
    when(&mut upheld, |c| {
        c.review_objection(
            ObjectionDecision::Upheld,
            "no new facts",
            "department_head",
            "approver-b",
            context,
        )
    });
    assert_eq!(upheld.stage, Stage::Rejected);
    assert!(matches!(
        upheld.object("once more", day("2026-11-12"), "office", context),
        Err(CaseError::ObjectedBefore(_))
    ));

    let mut reopened = case;
    when(&mut reopened, |c| {
        c.review_objection(
            ObjectionDecision::Reopened,
            "assess again",
            "department_head",
            "approver-b",
            context,
        )
    });
    assert_eq!(reopened.stage, Stage::Accepted);
}

#[test]
fn an_objection_to_a_paid_amount_waits_beside_the_case_and_is_alarmed_once_when_late() {
    let world = world();
    // Approved and paid on Monday 2 November 2026 (600,000 fen, by head-1).
    let mut case = paid(&world, "2026-11-02");
    assert!(matches!(
        case.object("too little", day("2026-11-10"), "office", world.on("2026-11-10")),
        Err(CaseError::ObjectionLate { decision: "approval", ref last_day, .. }) if last_day == "2026-11-09"
    ));
    let context = world.on("2026-11-05");
    let events = when(&mut case, |c| {
        c.object(
            "medical bills left out",
            day("2026-11-05"),
            "office",
            context,
        )
    });
    let [DecisionsEvent::ObjectionFiled(filed)] = events.as_slice() else {
        panic!("only the objection: the case stays where it is: {events:?}");
    };
    assert_eq!(filed.disputed_amount.map(|m| m.fen), Some(600_000));
    assert_eq!(filed.rejected_by, "head-1", "who decided the amount");
    assert_eq!(filed.review_due, "2026-11-19", "ten working days");
    assert_eq!(case.stage, Stage::Distributed);
    // The case goes on: the applicant is notified and the case closes meanwhile.
    when(&mut case, |c| {
        c.notify(notice("2026-11-05", false), world.on("2026-11-05"))
    });
    assert_eq!(case.stage, Stage::Closed);
    assert!(
        case.objection_overdue(day("2026-11-19")).is_empty(),
        "due that day"
    );
    let late = when(&mut case, |c| {
        Ok::<_, CaseError>(c.objection_overdue(day("2026-11-20")))
    });
    assert!(
        matches!(late.as_slice(), [DecisionsEvent::ObjectionReviewOverdue(o)] if o.review_due == "2026-11-19")
    );
    assert!(case.objection_overdue(day("2026-11-23")).is_empty(), "once");
}

#[test]
fn an_amount_objection_is_upheld_or_raised_and_only_the_difference_is_paid() {
    let world = world();
    let context = world.on("2026-11-06");
    let mut case = paid(&world, "2026-11-02");
    when(&mut case, |c| {
        c.object(
            "medical bills left out",
            day("2026-11-05"),
            "office",
            context,
        )
    });
    let review = |case: &ReliefCase, decision, by: &str| {
        case.review_objection(decision, "r", "department_head", by, context)
    };
    let raise = |fen| ObjectionDecision::Amended {
        amount_fen: fen,
        methods: vec![],
    };
    assert!(matches!(
        review(&case, raise(700_000), "head-1"),
        Err(CaseError::SameApprover)
    ));
    assert!(matches!(
        review(&case, ObjectionDecision::Reopened, "head-2"),
        Err(CaseError::AmountObjectionReopened)
    ));
    assert!(matches!(
        review(&case, raise(600_000), "head-2"),
        Err(CaseError::AmendmentNotAbove {
            approved: 600_000,
            ..
        })
    ));
    assert!(matches!(
        review(
            &case,
            ObjectionDecision::Amended {
                amount_fen: 700_000,
                methods: vec![ReliefMethod::Medical]
            },
            "head-2"
        ),
        Err(CaseError::MethodsKept)
    ));
    // 1,200,000 fen needs the chief prosecutors' meeting.
    assert!(matches!(
        review(&case, raise(1_200_000), "head-2"),
        Err(CaseError::WrongApprover { .. })
    ));

    let mut upheld = case.clone();
    let events = when(&mut upheld, |c| {
        c.review_objection(
            ObjectionDecision::Upheld,
            "r",
            "department_head",
            "head-2",
            context,
        )
    });
    assert!(
        matches!(events.as_slice(), [DecisionsEvent::ObjectionReviewed(r)] if r.supplement.is_none())
    );
    assert_eq!(upheld.stage, Stage::Distributed);
    assert!(matches!(
        review(&upheld, raise(700_000), "head-3"),
        Err(CaseError::ReviewedBefore(_))
    ));

    let events = when(&mut case, |c| {
        c.review_objection(
            raise(750_000),
            "bills shown",
            "department_head",
            "head-2",
            context,
        )
    });
    let [
        DecisionsEvent::ObjectionReviewed(reviewed),
        DecisionsEvent::DecisionAmended(amended),
    ] = events.as_slice()
    else {
        panic!("reviewed and amended: {events:?}");
    };
    assert_eq!(reviewed.supplement.map(|m| m.fen), Some(150_000));
    assert_eq!(amended.supplement.map(|m| m.fen), Some(150_000));
    assert_eq!(amended.approved_amount.map(|m| m.fen), Some(600_000));
    assert_eq!(amended.amended_by, "head-2");
    assert_eq!(
        case.stage,
        Stage::Distributed,
        "the stage is the case's own"
    );
    // The supplement is paid like any disbursement, once.
    when(&mut case, |c| {
        c.distribute("d-10", Some(Money { fen: 150_000 }), "SIM10", context)
    });
    assert_eq!(case.distributed.values().sum::<i64>(), 750_000);
    assert!(
        case.objection_overdue(day("2026-12-31")).is_empty(),
        "reviewed"
    );
}

#[test]
fn a_referral_unanswered_past_its_day_is_overdue_once() {
    let world = world();
    let context = world.on("2026-11-02");
    let mut case = accepted(&world);
    when(&mut case, |c| {
        c.propose(
            Proposal {
                amount_fen: 500_000,
                methods: vec![ReliefMethod::OneTimePayment, ReliefMethod::Medical],
                proposed_by: "relief-prosecutor-1".to_owned(),
                ..Proposal::default()
            },
            context,
        )
    });
    let approved = when(&mut case, |c| {
        c.approve("department_head", "head-1", context)
    });
    let Some(referral) = approved.iter().find_map(|e| match e {
        DecisionsEvent::ReferralIssued(r) => Some(r.clone()),
        _ => None,
    }) else {
        panic!("no referral: {approved:?}");
    };
    // Five working days from Monday 2 November.
    assert_eq!(referral.acknowledge_by, "2026-11-09");
    let id = referral.referral_id.as_str();
    assert!(case.referral_overdue(id, day("2026-11-09")).is_empty());
    let mut unanswered = case.clone();
    let overdue = when(&mut unanswered, |c| {
        Ok::<_, CaseError>(c.referral_overdue(id, day("2026-11-10")))
    });
    assert!(matches!(
        overdue.as_slice(),
        [DecisionsEvent::ReferralOverdue(o)] if o.department == "health" && o.acknowledge_by == "2026-11-09"
    ));
    assert!(
        unanswered
            .referral_overdue(id, day("2026-11-20"))
            .is_empty(),
        "once"
    );
    when(&mut case, |c| {
        c.update_referral("health", id, ReferralStatus::Acknowledged, "", "h-1")
    });
    assert!(
        case.referral_overdue(id, day("2026-11-20")).is_empty(),
        "answered"
    );
    assert!(
        case.referral_overdue("no-such", day("2026-11-20"))
            .is_empty()
    );
}

#[test]
fn a_duplicate_found_by_a_merge_is_flagged_once() {
    let world = world();
    let mut case = accepted(&world);
    let flagged = when(&mut case, |c| {
        c.flag_duplicate("c-0", "p-2", "spiffe://jiuzhu/x")
    });
    assert!(matches!(
        flagged.as_slice(),
        [DecisionsEvent::DuplicateReliefFlagged(f)] if f.other_case_id == "c-0" && f.case_id == "c-1"
    ));
    assert!(
        case.flag_duplicate("c-0", "p-2", "x")
            .is_ok_and(|e| e.is_empty()),
        "once"
    );
    assert!(
        case.flag_duplicate("c-1", "p-2", "x")
            .is_ok_and(|e| e.is_empty()),
        "not itself"
    );
}
