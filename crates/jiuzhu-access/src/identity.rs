use serde::Deserialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::AccessError;

/// What a caller does, and so what it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CaseProsecutor,
    ReliefProsecutor,
    Approver,
    FinanceOfficer,
    FollowupOfficer,
    DepartmentIntegrator,
    Auditor,
    Service,
    /// The bank (or its simulator): the only caller whose payment notices count.
    Provider,
    /// The staff console: it calls only for a signed-in staff member, whose office, role and
    /// tier it states and signs (`jiuzhu-acting-as`); the call is judged as that member's.
    Console,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::CaseProsecutor,
        Role::ReliefProsecutor,
        Role::Approver,
        Role::FinanceOfficer,
        Role::FollowupOfficer,
        Role::DepartmentIntegrator,
        Role::Auditor,
        Role::Service,
        Role::Provider,
        Role::Console,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::CaseProsecutor => "case_prosecutor",
            Role::ReliefProsecutor => "relief_prosecutor",
            Role::Approver => "approver",
            Role::FinanceOfficer => "finance_officer",
            Role::FollowupOfficer => "followup_officer",
            Role::DepartmentIntegrator => "department_integrator",
            Role::Auditor => "auditor",
            Role::Service => "service",
            Role::Provider => "provider",
            Role::Console => "console",
        }
    }

    /// Whether the console may speak for a staff member of this role: the procuratorate's
    /// people, not systems, departments or the bank.
    pub fn is_staff(self) -> bool {
        matches!(
            self,
            Role::CaseProsecutor
                | Role::ReliefProsecutor
                | Role::Approver
                | Role::FinanceOfficer
                | Role::FollowupOfficer
                | Role::Auditor
        )
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A caller's identity as its certificate states it, in a SPIFFE ID:
/// `spiffe://jiuzhu/agency/<agency>/office/<region code>/role/<role>/name/<system>`, with the
/// approval tier of an approver (`…/role/approver/tier/<tier>/name/…`) or the department of an
/// integrator (`…/role/department_integrator/department/<department>/name/…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The agency, e.g. `procuratorate`, `civil-affairs`, `jiuzhu` (the platform's own).
    pub agency: String,
    /// The office's six-digit region code: `520102` a district, `520100` a city, `520000` a
    /// province, `000000` national.
    pub office: String,
    pub role: Role,
    /// An approver's tier (`department_head`, `procuratorial_committee`, …), or an integrator's
    /// department (`civil_affairs`, …): what the certificate lets it decide or speak for.
    pub scope: Option<String>,
    /// The system holding the certificate (`registry`, `case-system-nanming`, …).
    pub name: String,
}

const TRUST_DOMAIN: &str = "spiffe://jiuzhu/";

fn slug_ok(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Identity {
    pub fn new(agency: &str, office: &str, role: Role, name: &str) -> Self {
        Self {
            agency: agency.to_owned(),
            office: office.to_owned(),
            role,
            scope: None,
            name: name.to_owned(),
        }
    }

    /// The same identity with an approver's tier or an integrator's department.
    pub fn scoped(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    /// The path segment naming the scope of `role`: an approver's `tier`, an integrator's
    /// `department`; other roles have none.
    pub fn scope_kind(role: Role) -> Option<&'static str> {
        match role {
            Role::Approver => Some("tier"),
            Role::DepartmentIntegrator => Some("department"),
            _ => None,
        }
    }

    pub fn uri(&self) -> String {
        let scope = match (Self::scope_kind(self.role), &self.scope) {
            (Some(kind), Some(scope)) => format!("/{kind}/{scope}"),
            _ => String::new(),
        };
        format!(
            "{TRUST_DOMAIN}agency/{}/office/{}/role/{}{scope}/name/{}",
            self.agency, self.office, self.role, self.name
        )
    }

    pub fn from_uri(uri: &str) -> Result<Self, AccessError> {
        let refuse = |reason: &str| AccessError::Identity {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let path = uri
            .strip_prefix(TRUST_DOMAIN)
            .ok_or_else(|| refuse("not a spiffe://jiuzhu/ identity"))?;
        let parts: Vec<&str> = path.split('/').collect();
        let (agency, office, role, scope, name) = match parts.as_slice() {
            [
                "agency",
                agency,
                "office",
                office,
                "role",
                role,
                "name",
                name,
            ] => (*agency, *office, *role, None, *name),
            [
                "agency",
                agency,
                "office",
                office,
                "role",
                role,
                kind,
                scope,
                "name",
                name,
            ] => (*agency, *office, *role, Some((*kind, *scope)), *name),
            _ => {
                return Err(refuse(
                    "must be agency/<agency>/office/<code>/role/<role>[/tier|department/<scope>]/name/<name>",
                ));
            }
        };
        if !slug_ok(agency) || !slug_ok(name) {
            return Err(refuse(
                "agency and name are lowercase letters, digits, - and _",
            ));
        }
        if office.len() != 6 || !office.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse("office must be a six-digit region code"));
        }
        let role = Role::parse(role).ok_or_else(|| refuse("unknown role"))?;
        let identity = Self::new(agency, office, role, name);
        match scope {
            None => Ok(identity),
            Some((kind, scope)) if Self::scope_kind(role) == Some(kind) && slug_ok(scope) => {
                Ok(identity.scoped(scope))
            }
            Some((kind, _)) => Err(refuse(&format!(
                "a {role} certificate has no `{kind}` (approvers have a tier, integrators a department)"
            ))),
        }
    }

    /// The identity in a DER certificate's subject alternative names.
    pub fn from_certificate(der: &[u8]) -> Result<Self, AccessError> {
        let (_, certificate) = X509Certificate::from_der(der)
            .map_err(|error| AccessError::Certificate(error.to_string()))?;
        let names = certificate
            .subject_alternative_name()
            .map_err(|error| AccessError::Certificate(error.to_string()))?
            .ok_or_else(|| AccessError::Certificate("no subject alternative names".to_owned()))?;
        let uri = names
            .value
            .general_names
            .iter()
            .find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with(TRUST_DOMAIN) => Some(*uri),
                _ => None,
            })
            .ok_or_else(|| AccessError::Certificate("no spiffe://jiuzhu/ identity".to_owned()))?;
        Self::from_uri(uri)
    }

    /// Whether the office's jurisdiction holds `region_code` (its own code and every code
    /// under it: `520100` holds `520102`; `000000` holds everything).
    pub fn covers(&self, region_code: &str) -> bool {
        office_covers(&self.office, region_code)
    }

    /// The leading digits every region code of the office's jurisdiction starts with (`5201`
    /// for `520100`; empty for `000000`).
    pub fn region_prefix(&self) -> &str {
        office_prefix(&self.office)
    }
}

/// The leading digits every region code of `office`'s jurisdiction starts with.
pub fn office_prefix(office: &str) -> &str {
    let mut prefix = office;
    while let Some(shorter) = prefix.strip_suffix("00") {
        prefix = shorter;
    }
    prefix
}

/// Whether the jurisdiction of `office` holds `region_code` (for resources that belong to an
/// office rather than to a caller: a budget, a statement). An empty office holds nothing.
pub fn office_covers(office: &str, region_code: &str) -> bool {
    !office.is_empty() && region_code.starts_with(office_prefix(office))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_and_bad_ones_say_why() -> Result<(), AccessError> {
        let identity = Identity::new("procuratorate", "520102", Role::Approver, "case-system");
        assert_eq!(Identity::from_uri(&identity.uri())?, identity);
        for (uri, reason) in [
            (
                "spiffe://other/agency/a/office/520102/role/approver/name/x",
                "spiffe://jiuzhu/",
            ),
            (
                "spiffe://jiuzhu/agency/a/office/5201/role/approver/name/x",
                "six-digit",
            ),
            (
                "spiffe://jiuzhu/agency/a/office/520102/role/king/name/x",
                "unknown role",
            ),
            (
                "spiffe://jiuzhu/agency/A B/office/520102/role/approver/name/x",
                "lowercase",
            ),
            (
                "spiffe://jiuzhu/agency/a/office/520102/role/approver",
                "must be",
            ),
        ] {
            let error = Identity::from_uri(uri).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains(reason)),
                "{uri}: {error:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn an_approver_carries_its_tier_and_an_integrator_its_department() -> Result<(), AccessError> {
        let approver = Identity::new("procuratorate", "520102", Role::Approver, "as-approver")
            .scoped("procuratorial_committee");
        assert!(
            approver
                .uri()
                .contains("/role/approver/tier/procuratorial_committee/name/")
        );
        assert_eq!(Identity::from_uri(&approver.uri())?, approver);
        let integrator = Identity::new("civil-affairs", "520000", Role::DepartmentIntegrator, "x")
            .scoped("civil_affairs");
        assert_eq!(Identity::from_uri(&integrator.uri())?, integrator);
        // A tier on another role, or a department on an approver, is no identity.
        for uri in [
            "spiffe://jiuzhu/agency/a/office/520102/role/finance_officer/tier/department_head/name/x",
            "spiffe://jiuzhu/agency/a/office/520102/role/approver/department/health/name/x",
        ] {
            assert!(Identity::from_uri(uri).is_err(), "{uri}");
        }
        Ok(())
    }

    #[test]
    fn an_office_covers_its_own_region_and_everything_under_it() {
        let district = Identity::new("procuratorate", "520102", Role::CaseProsecutor, "x");
        assert!(district.covers("520102"));
        assert!(!district.covers("520103"));
        let city = Identity::new("procuratorate", "520100", Role::CaseProsecutor, "x");
        assert!(city.covers("520102") && !city.covers("520201"));
        let national = Identity::new("jiuzhu", "000000", Role::Service, "x");
        assert!(national.covers("110101"));
    }
}
