use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiuzhu_config::{ConfigError, Layers, Validate};
use serde::Deserialize;

use crate::{AccessError, Role};

/// The shipped access table.
pub const SHIPPED: &str = include_str!("../../../policy/security/access.toml");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    version: String,
    roles: BTreeMap<String, RoleFile>,
    #[serde(default)]
    external: ExternalFile,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[allow(dead_code)] // documentation for readers of the file
    title: String,
    #[serde(default)]
    nationwide: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalFile {
    services: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    service: String,
    methods: Vec<String>,
    roles: Vec<String>,
    #[serde(default)]
    personal: bool,
    /// Only these systems (certificate names) of the allowed roles; empty: any.
    #[serde(default)]
    systems: Vec<String>,
}

impl Validate for TableFile {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Who may call one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The roles allowed; `None` for any authenticated caller (health, reflection).
    pub roles: Option<BTreeSet<Role>>,
    /// The RPC reads personal data: audited, and the caller must state a purpose.
    pub personal: bool,
    /// Only these systems may call, by their certificate's name (the key service answers the
    /// services that open sealed identities, not every Jiuzhu system); empty: any of the roles.
    pub systems: BTreeSet<String>,
}

impl Rule {
    pub fn allows(&self, role: Role) -> bool {
        self.roles
            .as_ref()
            .is_none_or(|roles| roles.contains(&role))
    }

    /// Whether the rule lets this identity in: its role, and its system where the rule names
    /// systems.
    pub fn admits(&self, identity: &crate::Identity) -> bool {
        self.allows(identity.role)
            && (self.systems.is_empty() || self.systems.contains(&identity.name))
    }
}

/// Every RPC's rule, keyed by its gRPC path (`/package.Service/Method`).
#[derive(Debug, Clone)]
pub struct AccessTable {
    pub version: String,
    nationwide: BTreeSet<Role>,
    rules: HashMap<String, Rule>,
    external: Vec<String>,
}

impl AccessTable {
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let file: TableFile = Layers::from_toml(text)?.section("access")?;
        if file.version.is_empty() {
            return Err(AccessError::Table("`version` is required".to_owned()));
        }
        let role = |name: &str| {
            Role::parse(name).ok_or_else(|| AccessError::Table(format!("unknown role `{name}`")))
        };
        let mut nationwide = BTreeSet::new();
        for (name, declared) in &file.roles {
            if declared.nationwide {
                nationwide.insert(role(name)?);
            }
        }
        if let Some(missing) = Role::ALL
            .iter()
            .find(|r| !file.roles.contains_key(r.name()))
        {
            return Err(AccessError::Table(format!(
                "role `{missing}` is not described under [access.roles]"
            )));
        }
        let mut rules = HashMap::new();
        for rule in file.rules {
            let roles = if rule.roles == ["*"] {
                None
            } else if rule.roles.is_empty() {
                return Err(AccessError::Table(format!(
                    "{}: a rule needs roles (\"*\" for anyone authenticated)",
                    rule.service
                )));
            } else {
                Some(
                    rule.roles
                        .iter()
                        .map(|r| role(r))
                        .collect::<Result<BTreeSet<_>, _>>()?,
                )
            };
            for method in &rule.methods {
                let path = format!("/{}/{method}", rule.service);
                let previous = rules.insert(
                    path.clone(),
                    Rule {
                        roles: roles.clone(),
                        personal: rule.personal,
                        systems: rule.systems.iter().cloned().collect(),
                    },
                );
                if previous.is_some() {
                    return Err(AccessError::Table(format!("{path} has two rules")));
                }
            }
        }
        Ok(Self {
            version: file.version,
            nationwide,
            rules,
            external: file.external.services,
        })
    }

    pub fn shipped() -> Result<Self, AccessError> {
        Self::parse(SHIPPED)
    }

    /// The rule for a gRPC path; `None` means refused.
    pub fn rule(&self, path: &str) -> Option<&Rule> {
        self.rules.get(path)
    }

    /// Roles that see every jurisdiction.
    pub fn is_nationwide(&self, role: Role) -> bool {
        self.nationwide.contains(&role)
    }

    /// Every path with a rule, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        paths.sort_unstable();
        paths
    }

    /// Services of the contracts that Jiuzhu does not serve (a bank's).
    pub fn is_external(&self, service: &str) -> bool {
        self.external.iter().any(|s| s == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Served beside every service, from descriptors outside Jiuzhu's contracts.
    const STANDARD: [&str; 4] = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ];

    #[test]
    fn every_rpc_of_the_contracts_has_exactly_one_rule_and_every_rule_an_rpc()
    -> Result<(), Box<dyn std::error::Error>> {
        let table = AccessTable::shipped()?;
        let pool = prost_reflect::DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
        let mut served = BTreeSet::new();
        for service in pool.services() {
            if table.is_external(service.full_name()) {
                continue;
            }
            for method in service.methods() {
                served.insert(format!("/{}/{}", service.full_name(), method.name()));
            }
        }
        let without_rule: Vec<&String> = served
            .iter()
            .filter(|path| table.rule(path).is_none())
            .collect();
        assert!(
            without_rule.is_empty(),
            "RPCs without an access rule (refused until given one): {without_rule:?}"
        );
        let unknown: Vec<&str> = table
            .paths()
            .into_iter()
            .filter(|path| !served.contains(*path) && !STANDARD.contains(path))
            .collect();
        assert!(
            unknown.is_empty(),
            "rules for RPCs that do not exist: {unknown:?}"
        );
        assert!(served.len() > 50, "{} RPCs", served.len());
        Ok(())
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let base = "[access]\nversion = \"t\"\n[access.roles]\n";
        let roles: String = Role::ALL
            .iter()
            .map(|r| format!("{r} = {{ title = \"x\" }}\n"))
            .collect();
        for (rules, reason) in [
            (
                "[[access.rules]]\nservice = \"s\"\nmethods = [\"M\"]\nroles = [\"king\"]\n",
                "unknown role",
            ),
            (
                "[[access.rules]]\nservice = \"s\"\nmethods = [\"M\"]\nroles = []\n",
                "needs roles",
            ),
            (
                "[[access.rules]]\nservice = \"s\"\nmethods = [\"M\"]\nroles = [\"auditor\"]\n[[access.rules]]\nservice = \"s\"\nmethods = [\"M\"]\nroles = [\"service\"]\n",
                "two rules",
            ),
        ] {
            let text = format!("{base}{roles}{rules}");
            let error = AccessTable::parse(&text).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains(reason)),
                "{reason}: {error:?}"
            );
        }
        let error = AccessTable::parse(&format!("{base}auditor = {{ title = \"x\" }}\n"))
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("not described")),
            "{error:?}"
        );
    }

    #[test]
    fn roles_are_checked_and_the_star_admits_anyone() -> Result<(), AccessError> {
        let table = AccessTable::shipped()?;
        let approve = table
            .rule("/jiuzhu.decisions.v1.DecisionsService/ApproveDecision")
            .cloned();
        assert!(approve.as_ref().is_some_and(|r| r.allows(Role::Approver)));
        assert!(
            approve
                .as_ref()
                .is_some_and(|r| !r.allows(Role::FinanceOfficer))
        );
        let health = table.rule("/grpc.health.v1.Health/Check");
        assert!(health.is_some_and(|r| Role::ALL.iter().all(|role| r.allows(*role))));
        assert!(
            table
                .rule("/jiuzhu.decisions.v1.DecisionsService/Nothing")
                .is_none()
        );
        assert!(table.is_nationwide(Role::Auditor) && !table.is_nationwide(Role::Approver));
        Ok(())
    }
}
