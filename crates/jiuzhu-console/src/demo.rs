//! The demo staff of `make run`: one member per role of the demo city office (520100, whose
//! jurisdiction holds the demo county), two approvers (one per tier), an administrator, and a
//! relief prosecutor of another office (522701) to see what another office sees.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::staff::{NewStaff, StaffError};

/// The demo members' shared password (a demo only: printed by `make run`).
pub const DEMO_PASSWORD: &str = "jiuzhu-demo-2026";

/// Staff number, name, office, role, tier, administrator.
pub const DEMO_STAFF: [(&str, &str, &str, &str, &str, bool); 8] = [
    ("A-0001", "管理员 周", "520100", "auditor", "", true),
    (
        "P-1001",
        "救助检察官 李",
        "520100",
        "relief_prosecutor",
        "",
        false,
    ),
    (
        "J-1001",
        "部门负责人 王",
        "520100",
        "approver",
        "department_head",
        false,
    ),
    (
        "J-1002",
        "检察长 陈",
        "520100",
        "approver",
        "chief_prosecutors_meeting",
        false,
    ),
    ("F-1001", "财务 赵", "520100", "finance_officer", "", false),
    ("V-1001", "回访 孙", "520100", "followup_officer", "", false),
    (
        "C-1001",
        "承办检察官 钱",
        "520100",
        "case_prosecutor",
        "",
        false,
    ),
    (
        "P-2001",
        "救助检察官 吴 (黔东南)",
        "522701",
        "relief_prosecutor",
        "",
        false,
    ),
];

/// Adds the demo members not yet in the directory; returns those added.
pub async fn add_demo_staff(pool: &PgPool, at: DateTime<Utc>) -> Result<Vec<String>, StaffError> {
    let mut added = Vec::new();
    for (staff_no, name, office, role, tier, administrator) in DEMO_STAFF {
        let new = NewStaff {
            staff_no: staff_no.to_owned(),
            display_name: name.to_owned(),
            office: office.to_owned(),
            role: role.to_owned(),
            tier: tier.to_owned(),
            administrator,
            password: DEMO_PASSWORD.to_owned(),
        };
        match crate::staff::add(pool, "make-run", &new, at).await {
            Ok(_) => added.push(staff_no.to_owned()),
            Err(StaffError::Exists(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(added)
}
