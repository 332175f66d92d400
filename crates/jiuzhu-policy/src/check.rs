//! A policy set checked as a whole, as `jiuzhu policy check` runs it: every file parses, and
//! what one file names exists in the others — follow-up schedules are for relief categories,
//! every relief method a department delivers routes to a department whose sharing agreement
//! carries referrals, every province has a wage figure, the calendar covers the current year.

use chrono::{Datelike, NaiveDate};
use jiuzhu_calendar::{Calendar, Coverage};
use jiuzhu_proto::decisions::ReliefMethod;

use crate::followup::FollowupPolicy;
use crate::relief::{ReliefPolicy, method_name};
use crate::screening::ScreeningPolicy;
use crate::set::{
    ACCESS, CALENDAR, FOLLOWUP, MANIFEST, PolicyError, PolicySet, RELIEF, SCREENING, SHARING,
    WAGES, line_of,
};
use crate::wages::{RegionLevel, WageStatus, Wages};

/// The event a department must receive for referrals to reach it.
const REFERRAL_EVENT: &str = "jiuzhu.decisions.v1.ReferralIssued";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The set must not be used.
    Error,
    /// Usable, but someone should act (an illustrative figure, a provisional calendar).
    Warning,
}

/// One thing found, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(line) => write!(f, "{}:{line}: {kind}: {}", self.file, self.reason),
            None => write!(f, "{}: {kind}: {}", self.file, self.reason),
        }
    }
}

impl From<PolicyError> for Finding {
    fn from(error: PolicyError) -> Self {
        match error {
            PolicyError::Invalid { file, line, reason } => Finding {
                severity: Severity::Error,
                file,
                line,
                reason,
            },
            PolicyError::Unreadable { path, reason } => Finding {
                severity: Severity::Error,
                file: path,
                line: None,
                reason,
            },
        }
    }
}

/// What the check read, for its summary.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Wage figures by status.
    pub wage_statuses: Vec<(WageStatus, usize)>,
    /// The years the calendar has official data for.
    pub official_years: Vec<i32>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

struct Checker<'a> {
    set: &'a PolicySet,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn at(&mut self, severity: Severity, file: &str, needle: Option<&str>, reason: String) {
        let line = needle.and_then(|n| line_of(self.set.text(file), n));
        self.findings.push(Finding {
            severity,
            file: file.to_owned(),
            line,
            reason,
        });
    }

    fn parsed<T>(
        &mut self,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, PolicyError>,
    ) -> Option<T> {
        match parse(self.set.text(file)) {
            Ok(value) => Some(value),
            Err(error) => {
                self.findings.push(error.into());
                None
            }
        }
    }
}

/// A parser's error as a finding of `file`: at the line it names ("line N"), else at the first
/// line holding the value it quotes.
fn located<E: std::fmt::Display>(file: &str, text: &str, error: E) -> PolicyError {
    let reason = error.to_string();
    let named = reason
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    let quoted = reason
        .split('`')
        .skip(1)
        .step_by(2)
        .find_map(|q| line_of(text, q));
    PolicyError::Invalid {
        file: file.to_owned(),
        line: named.or(quoted),
        reason,
    }
}

/// Checks `set` as it would be used on `today`.
pub fn check(set: &PolicySet, today: NaiveDate) -> Report {
    let mut checker = Checker {
        set,
        findings: Vec::new(),
    };
    let relief = checker.parsed(RELIEF, |t| {
        ReliefPolicy::parse(t).map_err(|e| PolicyError::from_config(RELIEF, t, &e))
    });
    let followup = checker.parsed(FOLLOWUP, |t| {
        FollowupPolicy::parse(t).map_err(|e| PolicyError::from_config(FOLLOWUP, t, &e))
    });
    checker.parsed(SCREENING, |t| {
        ScreeningPolicy::parse(t).map_err(|e| PolicyError::from_config(SCREENING, t, &e))
    });
    let wages = checker.parsed(WAGES, |t| Wages::parse(t).map_err(|e| located(WAGES, t, e)));
    let calendar = checker.parsed(CALENDAR, |t| {
        Calendar::parse(t).map_err(|e| located(CALENDAR, t, e))
    });
    let agreements = checker.parsed(SHARING, |t| {
        jiuzhu_sharing::Agreements::parse_for_contracts(t).map_err(|e| located(SHARING, t, e))
    });
    checker.parsed(ACCESS, |t| {
        jiuzhu_access::AccessTable::parse(t).map_err(|e| located(ACCESS, t, e))
    });
    if set.file(MANIFEST).is_none() {
        checker.at(
            Severity::Error,
            MANIFEST,
            None,
            "the set has no manifest".to_owned(),
        );
    }

    if let (Some(relief), Some(followup)) = (&relief, &followup) {
        for category in followup.categories.keys() {
            if relief.category(category).is_none() {
                checker.at(
                    Severity::Error,
                    FOLLOWUP,
                    Some(&format!("categories.{category}")),
                    format!(
                        "schedule for `{category}`, which is not a category of {RELIEF} (its \
                         categories: {})",
                        relief
                            .categories
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }

    if let Some(relief) = &relief {
        for method in (1..)
            .map_while(|n| ReliefMethod::try_from(n).ok())
            .filter(|m| *m != ReliefMethod::OneTimePayment)
        {
            let name = method_name(method);
            let Some(department) = relief.referral_department(method) else {
                checker.at(
                    Severity::Error,
                    RELIEF,
                    Some("[relief.referrals]"),
                    format!("relief method `{name}` routes to no department"),
                );
                continue;
            };
            let Some(agreements) = &agreements else {
                continue;
            };
            let covered = agreements.departments.get(department).map(|d| {
                d.shares.iter().any(|share| {
                    share.event_type == REFERRAL_EVENT
                        && share.when.as_ref().is_some_and(|w| {
                            w.field.as_deref() == Some("department")
                                && w.equals.as_deref() == Some(department)
                        })
                })
            });
            let reason = match covered {
                Some(true) => continue,
                Some(false) => format!(
                    "`{name}` routes to `{department}`, whose sharing agreement does not carry \
                     its referrals ({REFERRAL_EVENT} when department = \"{department}\")"
                ),
                None => format!(
                    "`{name}` routes to `{department}`, which has no sharing agreement in \
                     {SHARING}"
                ),
            };
            checker.at(Severity::Error, RELIEF, Some(&format!("{name} = ")), reason);
        }
    }

    let mut wage_statuses = Vec::new();
    if let Some(wages) = &wages {
        let wanted = today.year() - 1;
        let mut provinces: Vec<&jiuzhu_identity::Region> = jiuzhu_identity::all_regions()
            .into_iter()
            .filter(|r| r.code.ends_with("0000"))
            .collect();
        provinces.sort_by_key(|r| r.code);
        for province in provinces {
            match wages.for_year(province.code, wanted) {
                Ok(base) if base.figure.level >= RegionLevel::Province => {}
                _ => checker.at(
                    Severity::Error,
                    WAGES,
                    None,
                    format!(
                        "province {} ({}) has no wage figure of its own for {wanted} or the \
                         years before",
                        &province.code[..2],
                        province.name
                    ),
                ),
            }
        }
        if wages.for_year("00", wanted).is_err() {
            checker.at(
                Severity::Error,
                WAGES,
                None,
                format!("no national (00) wage figure for {wanted} or the years before"),
            );
        }
        for status in [
            WageStatus::Official,
            WageStatus::Provisional,
            WageStatus::Illustrative,
        ] {
            let count = wages.figures().filter(|f| f.status == status).count();
            wage_statuses.push((status, count));
        }
    }

    let mut official_years = Vec::new();
    if let Some(calendar) = &calendar {
        official_years = calendar.official_years();
        match calendar.coverage(today.year()) {
            Coverage::Official => {}
            Coverage::Provisional => checker.at(
                Severity::Warning,
                CALENDAR,
                Some("[rules]"),
                format!(
                    "{} has no official holiday notice: deadlines in it are provisional, \
                     computed from the holiday rules; add the notice when it is published",
                    today.year()
                ),
            ),
            Coverage::None => checker.at(
                Severity::Error,
                CALENDAR,
                None,
                format!("the calendar does not cover {}", today.year()),
            ),
        }
    }

    Report {
        findings: checker.findings,
        wage_statuses,
        official_years,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::PolicyBook;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    fn compiled_in() -> PolicySet {
        PolicyBook::compiled_in()
            .map(|b| b.latest().clone())
            .unwrap_or_else(|e| panic!("compiled-in set: {e}"))
    }

    #[test]
    fn the_shipped_set_passes_on_every_day_we_test() {
        let set = compiled_in();
        for today in ["2026-12-04", "2027-01-05", "2028-01-01", "2031-06-30"] {
            let report = check(&set, day(today));
            assert_eq!(report.errors(), 0, "{today}: {:?}", report.findings);
        }
    }

    fn with(file: &'static str, edit: impl Fn(&str) -> String) -> PolicySet {
        let mut set = compiled_in();
        set.replace(file, edit(set.text(file)));
        set
    }

    #[test]
    fn a_schedule_for_a_category_that_does_not_exist_is_caught_with_its_line() {
        let set = with(FOLLOWUP, |t| {
            t.replace(
                "categories.dependant_of_killed",
                "categories.dependant_of_deceased",
            )
        });
        let report = check(&set, day("2026-12-04"));
        let finding = report.findings.first().cloned();
        assert_eq!(report.errors(), 1, "{:?}", report.findings);
        assert!(finding.as_ref().is_some_and(|f| f.file == FOLLOWUP
            && f.line == line_of(set.text(FOLLOWUP), "dependant_of_deceased")
            && f.line.is_some()
            && f.reason.contains("`dependant_of_deceased`")));
    }

    #[test]
    fn a_referral_route_without_an_agreement_that_carries_it_is_caught() {
        let set = with(RELIEF, |t| {
            t.replace("medical = \"health\"", "medical = \"hospital\"")
        });
        let report = check(&set, day("2026-12-04"));
        assert_eq!(report.errors(), 1, "{:?}", report.findings);
        assert!(report.findings[0].reason.contains("no sharing agreement"));
        assert_eq!(
            report.findings[0].line,
            line_of(set.text(RELIEF), "medical = ")
        );
        let set = with(SHARING, |t| {
            t.replace(
                "when = { field = \"department\", equals = \"education\" }",
                "when = { field = \"department\", equals = \"civil_affairs\" }",
            )
        });
        let report = check(&set, day("2026-12-04"));
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.reason.contains("does not carry its referrals")),
            "{:?}",
            report.findings
        );
        let set = with(RELIEF, |t| {
            t.replace("relocation = \"civil_affairs\"\n", "")
        });
        assert!(
            check(&set, day("2026-12-04"))
                .findings
                .iter()
                .any(|f| f.reason.contains("`relocation` routes to no department"))
        );
    }

    #[test]
    fn a_province_without_a_wage_figure_is_caught() {
        let set = with(WAGES, |t| {
            t.lines()
                .filter(|l| !l.starts_with("37,"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        let report = check(&set, day("2026-12-04"));
        assert_eq!(report.errors(), 1, "{:?}", report.findings);
        assert!(report.findings[0].reason.contains("province 37"));
    }

    #[test]
    fn a_broken_file_is_reported_with_file_and_line() {
        let set = with(RELIEF, |t| t.replace("informed = 5", "informd = 5"));
        let report = check(&set, day("2026-12-04"));
        assert!(report.errors() >= 1);
        let finding = &report.findings[0];
        assert_eq!(finding.file, RELIEF);
        assert_eq!(finding.line, line_of(set.text(RELIEF), "informd"));
        assert!(finding.to_string().starts_with("decisions/relief.toml:"));
        let set = with(WAGES, |t| format!("{t}\n52,2025,-1,x,official\n"));
        let report = check(&set, day("2026-12-04"));
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.file == WAGES && f.line.is_some())
        );
    }

    #[test]
    fn a_year_beyond_the_rules_and_notices_is_an_error() {
        let report = check(&compiled_in(), day("2101-03-01"));
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.file == CALENDAR && f.severity == Severity::Error)
        );
        let report = check(&compiled_in(), day("2030-03-01"));
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.file == CALENDAR && f.severity == Severity::Warning)
        );
    }
}
