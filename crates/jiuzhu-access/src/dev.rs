//! A development certificate authority and certificates for local runs and tests: made fresh by
//! `jiuzhu dev certs`, never committed (an installation uses its own authority).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{Identity, Role};

/// The system that exports decided cases to train the recommender (`jiuzhu recommend export`).
pub const TRAINER: &str = "trainer";

/// Jiuzhu's own systems: each gets a certificate with role `service` (the simulator: role
/// `provider`), valid as server and client. People and department systems get role
/// certificates (`as-<role>`), and the CLI acts as one of those.
pub const SYSTEMS: [&str; 7] = [
    "registry",
    "clues",
    "decisions",
    "payments",
    "followup",
    "paysim",
    TRAINER,
];

/// Host names the development server certificates are valid for.
pub const HOSTS: [&str; 8] = [
    "localhost",
    "127.0.0.1",
    "registry",
    "clues",
    "decisions",
    "payments",
    "followup",
    "paysim",
];

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("revocation list: {0}")]
    Revocation(String),
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A throwaway certificate authority.
pub struct DevAuthority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl std::fmt::Debug for DevAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevAuthority")
    }
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevAuthority {
    pub fn new() -> Result<Self, DevError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            DnType::CommonName,
            "Jiuzhu development CA (not for production)",
        );
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let ca = params.self_signed(&key)?;
        Ok(Self {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A certificate for `identity`, valid as a client and, for `hosts`, as a server.
    pub fn issue(&self, identity: &Identity, hosts: &[&str]) -> Result<Issued, DevError> {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, identity.name.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, identity.agency.clone());
        params
            .subject_alt_names
            .push(SanType::URI(identity.uri().try_into()?));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl DevAuthority {
    /// A revocation list (PEM) of this authority naming `certificates` (PEM).
    pub fn revocation_list(&self, certificates: &[&str]) -> Result<String, DevError> {
        let mut revoked_certs = Vec::new();
        for pem in certificates {
            let der = crate::signing::certificate_der(pem)
                .map_err(|error| DevError::Revocation(error.to_string()))?;
            let (_, certificate) = x509_parser::parse_x509_certificate(&der)
                .map_err(|error| DevError::Revocation(error.to_string()))?;
            revoked_certs.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(certificate.raw_serial()),
                revocation_time: rcgen::date_time_ymd(2026, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// The file name of the staff console's certificate (role `console`, the province's office).
pub const CONSOLE_FILE: &str = "console";

/// The file name a role's development certificate has: `as-<role>`.
pub fn role_file(role: Role) -> String {
    format!("as-{role}")
}

fn write(path: PathBuf, text: &str, written: &mut Vec<PathBuf>) -> Result<(), DevError> {
    std::fs::write(&path, text).map_err(|source| DevError::Write {
        path: path.display().to_string(),
        source,
    })?;
    written.push(path);
    Ok(())
}

/// The file name of an approver's certificate for `tier`: `as-approver.<tier>`.
pub fn approver_file(tier: &str) -> String {
    format!("{}.{tier}", role_file(Role::Approver))
}

/// The file name of a department's integrator certificate: `as-department_integrator.<name>`.
pub fn integrator_file(department: &str) -> String {
    format!("{}.{department}", role_file(Role::DepartmentIntegrator))
}

/// The file name of a certificate for another office than the default: `<file>@<office>`.
pub fn office_file(file: &str, office: &str) -> String {
    format!("{file}@{office}")
}

/// What scoped certificates to write besides one per role: approvers per tier, integrators
/// per department, and every procuratorate role (and tier) again for each extra office.
#[derive(Debug, Clone, Default)]
pub struct Scopes {
    pub tiers: Vec<String>,
    pub departments: Vec<String>,
    pub extra_offices: Vec<String>,
}

/// Writes a fresh authority (`ca.pem`; its key is not kept) and certificates into `dir`: one
/// per Jiuzhu system ([`SYSTEMS`], role `service`, national), one per role (`as-<role>`,
/// agency `procuratorate`, office `office`) and one approver per approval tier
/// (`as-approver.<tier>`), one integrator per department (`as-department_integrator.<name>`,
/// agency the department, national), and for each extra office the role and approver
/// certificates again (`as-<role>@<office>`, `as-approver.<tier>@<office>`), and the staff
/// console's (`console`, the province of `office`). Returns the files written.
pub fn write_certs(dir: &Path, office: &str, scopes: &Scopes) -> Result<Vec<PathBuf>, DevError> {
    std::fs::create_dir_all(dir).map_err(|source| DevError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let authority = DevAuthority::new()?;
    let mut written = Vec::new();
    write(dir.join("ca.pem"), authority.ca_pem(), &mut written)?;
    let mut identities: Vec<(String, Identity)> = SYSTEMS
        .iter()
        .map(|name| {
            (
                (*name).to_owned(),
                // The simulator stands for the bank: its notices are a provider's.
                if *name == "paysim" {
                    Identity::new("bank", "000000", Role::Provider, name)
                } else {
                    Identity::new("jiuzhu", "000000", Role::Service, name)
                },
            )
        })
        .collect();
    // The staff console speaks for the staff of every office in the province of `office`.
    let province = format!("{}0000", office.get(..2).unwrap_or("00"));
    identities.push((
        CONSOLE_FILE.to_owned(),
        Identity::new("procuratorate", &province, Role::Console, "console"),
    ));
    for (index, office) in std::iter::once(office)
        .chain(scopes.extra_offices.iter().map(String::as_str))
        .enumerate()
    {
        let named = |file: String| {
            if index == 0 {
                file
            } else {
                office_file(&file, office)
            }
        };
        for role in Role::ALL {
            let file = role_file(role);
            identities.push((
                named(file.clone()),
                Identity::new("procuratorate", office, role, &file),
            ));
        }
        for tier in &scopes.tiers {
            identities.push((
                named(approver_file(tier)),
                Identity::new(
                    "procuratorate",
                    office,
                    Role::Approver,
                    &format!("as-approver-{tier}"),
                )
                .scoped(tier),
            ));
        }
    }
    for department in &scopes.departments {
        let file = integrator_file(department);
        identities.push((
            file.clone(),
            Identity::new(
                &department.replace('_', "-"),
                "000000",
                Role::DepartmentIntegrator,
                &format!("as-integrator-{department}"),
            )
            .scoped(department),
        ));
    }
    for (file, identity) in identities {
        let issued = authority.issue(&identity, &HOSTS)?;
        write(
            dir.join(format!("{file}.pem")),
            &issued.cert_pem,
            &mut written,
        )?;
        write(
            dir.join(format!("{file}.key")),
            &issued.key_pem,
            &mut written,
        )?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_their_identity() -> Result<(), Box<dyn std::error::Error>> {
        let authority = DevAuthority::new()?;
        let identity = Identity::new("procuratorate", "520102", Role::Approver, "as-approver");
        let issued = authority.issue(&identity, &HOSTS)?;
        let der = pem_to_der(&issued.cert_pem);
        assert_eq!(Identity::from_certificate(&der)?, identity);
        Ok(())
    }

    #[test]
    fn extra_offices_get_every_role_and_tier_again() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("jiuzhu-dev-certs-{}", std::process::id()));
        let scopes = Scopes {
            tiers: vec!["department_head".into()],
            departments: vec![],
            extra_offices: vec!["522701".into()],
        };
        write_certs(&dir, "520100", &scopes)?;
        let identity_in = |file: &str| -> Result<Identity, Box<dyn std::error::Error>> {
            let pem = std::fs::read_to_string(dir.join(format!("{file}.pem")))?;
            Ok(Identity::from_certificate(&pem_to_der(&pem))?)
        };
        let own = identity_in("as-relief_prosecutor")?;
        let other = identity_in("as-relief_prosecutor@522701")?;
        let approver = identity_in("as-approver.department_head@522701")?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(
            (own.office.as_str(), own.role),
            ("520100", Role::ReliefProsecutor)
        );
        assert_eq!(
            (other.office.as_str(), other.role),
            ("522701", Role::ReliefProsecutor)
        );
        assert_eq!(approver.office, "522701");
        assert_eq!(approver.scope.as_deref(), Some("department_head"));
        Ok(())
    }

    fn pem_to_der(pem: &str) -> Vec<u8> {
        use x509_parser::pem::parse_x509_pem;
        parse_x509_pem(pem.as_bytes())
            .map(|(_, pem)| pem.contents)
            .unwrap_or_default()
    }
}
