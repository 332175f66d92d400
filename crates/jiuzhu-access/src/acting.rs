//! The person acting through a calling system (a prosecutor at an agency's case system), as the
//! system vouches for them: a staff number in `jiuzhu-acting-person`, the time in
//! `jiuzhu-acting-at` (Unix seconds), and in `jiuzhu-acting-signature` the hex ECDSA P-256
//! signature of both and the RPC, made with the key of the system's client certificate. The
//! guard checks it against that certificate; an unsigned, stale or forged claim is refused.
//!
//! The staff console (role `console`) also states who the person is, in `jiuzhu-acting-as`:
//! `office/<code>/role/<role>[/tier/<tier>]`, signed with the rest. The guard then judges the
//! call as that office, role and tier (within the console certificate's office), so the access
//! table, jurisdiction and audit apply to the person and never to the console.

use crate::AccessError;
use crate::signing::SigningKey;

pub const ACTING_HEADER: &str = "jiuzhu-acting-person";
pub const ACTING_AT_HEADER: &str = "jiuzhu-acting-at";
pub const ACTING_SIGNATURE_HEADER: &str = "jiuzhu-acting-signature";
/// The console's statement of the acting staff member's office, role and tier.
pub const ACTING_AS_HEADER: &str = "jiuzhu-acting-as";
/// How far a signature's time may be from the server's clock, either way.
pub const ACTING_SKEW_SECONDS: u64 = 300;

fn signed_text(person: &str, method: &str, at: u64, acting_as: Option<&str>) -> String {
    match acting_as {
        None => format!("jiuzhu-acting-person\n{person}\n{method}\n{at}"),
        Some(acting_as) => format!("jiuzhu-acting-person\n{person}\n{method}\n{at}\n{acting_as}"),
    }
}

/// The hex signature a client sends for `person` acting on `method` (a gRPC path) at `at`,
/// made with the private key (PEM, PKCS#8) of its client certificate.
pub fn sign(key_pem: &str, person: &str, method: &str, at: u64) -> Result<String, AccessError> {
    SigningKey::from_pem(key_pem)?.sign(signed_text(person, method, at, None).as_bytes())
}

/// The console's signature for `person`, who is `acting_as` (see [`ACTING_AS_HEADER`]).
pub fn sign_as(
    key: &SigningKey,
    person: &str,
    acting_as: &str,
    method: &str,
    at: u64,
) -> Result<String, AccessError> {
    key.sign(signed_text(person, method, at, Some(acting_as)).as_bytes())
}

/// The `jiuzhu-acting-as` value for a staff member of `office` in `role` (with an approver's
/// `tier`).
pub fn acting_as(office: &str, role: crate::Role, tier: Option<&str>) -> String {
    match tier {
        Some(tier) => format!("office/{office}/role/{role}/tier/{tier}"),
        None => format!("office/{office}/role/{role}"),
    }
}

/// The identity a console (`console`, from its certificate) states in `acting_as`, or why it
/// may not: the role must be a staff role and the office within the console's.
pub fn delegated_identity(
    console: &crate::Identity,
    acting_as: &str,
) -> Result<crate::Identity, String> {
    let uri = format!(
        "spiffe://jiuzhu/agency/{}/{acting_as}/name/{}",
        console.agency, console.name
    );
    let identity = crate::Identity::from_uri(&uri).map_err(|_| {
        format!("{ACTING_AS_HEADER} must be office/<code>/role/<role>[/tier/<tier>]")
    })?;
    if !identity.role.is_staff() {
        return Err(format!(
            "the console speaks only for staff, not for role {}",
            identity.role
        ));
    }
    if !console.covers(&identity.office) {
        return Err(format!(
            "office {} is outside the console's office {}",
            identity.office, console.office
        ));
    }
    Ok(identity)
}

/// Checks a claim against the caller's certificate (DER) at `now` (Unix seconds); why not.
pub fn verify(
    certificate: &[u8],
    person: &str,
    method: &str,
    at: &str,
    signature: &str,
    now: u64,
) -> Result<(), String> {
    verify_as(certificate, person, None, method, at, signature, now)
}

/// [`verify`] for a claim that also states whom the person acts as.
pub fn verify_as(
    certificate: &[u8],
    person: &str,
    acting_as: Option<&str>,
    method: &str,
    at: &str,
    signature: &str,
    now: u64,
) -> Result<(), String> {
    if person.is_empty() || person.len() > 64 || !person.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the acting person must be 1 to 64 printable ASCII characters".to_owned());
    }
    let at: u64 = at
        .parse()
        .map_err(|_| format!("{ACTING_AT_HEADER} must be Unix seconds"))?;
    if at.abs_diff(now) > ACTING_SKEW_SECONDS {
        return Err(format!(
            "{ACTING_AT_HEADER} is more than {ACTING_SKEW_SECONDS} s from the server's clock"
        ));
    }
    if hex::decode(signature).is_err() {
        return Err(format!("{ACTING_SIGNATURE_HEADER} must be hex"));
    }
    crate::signing::verify(
        certificate,
        signed_text(person, method, at, acting_as).as_bytes(),
        signature,
    )
    .map_err(|_| "the acting person's signature does not verify".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{DevAuthority, HOSTS};
    use crate::{Identity, Role};

    #[test]
    fn a_signed_claim_verifies_only_as_signed_and_while_fresh()
    -> Result<(), Box<dyn std::error::Error>> {
        let authority = DevAuthority::new()?;
        let issued = authority.issue(
            &Identity::new("procuratorate", "520102", Role::Approver, "case-system"),
            &HOSTS,
        )?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes())?;
        let method = "/jiuzhu.decisions.v1.DecisionsService/GetCase";
        let signature = sign(&issued.key_pem, "P-0042", method, 1_000_000)?;
        let check = |person: &str, method: &str, at: &str, now: u64| {
            verify(&pem.contents, person, method, at, &signature, now)
        };
        assert_eq!(check("P-0042", method, "1000000", 1_000_100), Ok(()));
        assert!(check("P-0043", method, "1000000", 1_000_000).is_err());
        assert!(check("P-0042", "/other/Method", "1000000", 1_000_000).is_err());
        assert!(check("P-0042", method, "1000001", 1_000_000).is_err());
        let stale = check(
            "P-0042",
            method,
            "1000000",
            1_000_000 + ACTING_SKEW_SECONDS + 1,
        );
        assert!(stale.is_err_and(|e| e.contains("clock")));
        // Another system's key does not speak for this one.
        let other = authority.issue(
            &Identity::new("procuratorate", "520102", Role::Approver, "other"),
            &HOSTS,
        )?;
        let forged = sign(&other.key_pem, "P-0042", method, 1_000_000)?;
        assert!(
            verify(
                &pem.contents,
                "P-0042",
                method,
                "1000000",
                &forged,
                1_000_000
            )
            .is_err()
        );
        Ok(())
    }
}

#[cfg(test)]
mod console_tests {
    use super::*;
    use crate::dev::{DevAuthority, HOSTS};
    use crate::{Identity, Role};

    #[test]
    fn the_console_speaks_for_staff_of_its_office_only_as_signed()
    -> Result<(), Box<dyn std::error::Error>> {
        let authority = DevAuthority::new()?;
        let console = Identity::new("procuratorate", "520100", Role::Console, "console");
        let issued = authority.issue(&console, &HOSTS)?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes())?;
        let key = SigningKey::from_pem(&issued.key_pem)?;
        let method = "/jiuzhu.decisions.v1.DecisionsService/ApproveDecision";
        let approver = acting_as("520102", Role::Approver, Some("department_head"));
        let signature = sign_as(&key, "P-7", &approver, method, 1_000)?;
        let check = |acting_as: Option<&str>| {
            verify_as(
                &pem.contents,
                "P-7",
                acting_as,
                method,
                "1000",
                &signature,
                1_000,
            )
        };
        assert_eq!(check(Some(&approver)), Ok(()));
        // The statement is signed: another tier, or none, does not verify.
        let committee = acting_as("520102", Role::Approver, Some("procuratorial_committee"));
        assert!(check(Some(&committee)).is_err());
        assert!(check(None).is_err());

        let staff = delegated_identity(&console, &approver)?;
        assert_eq!(
            (staff.office.as_str(), staff.role, staff.scope.as_deref()),
            ("520102", Role::Approver, Some("department_head"))
        );
        assert_eq!(staff.name, "console");
        for (claim, reason) in [
            (acting_as("522701", Role::ReliefProsecutor, None), "outside"),
            (acting_as("520100", Role::Service, None), "only for staff"),
            (acting_as("520100", Role::Console, None), "only for staff"),
            ("office/520100/role/king".to_owned(), "must be"),
        ] {
            let refused = delegated_identity(&console, &claim)
                .err()
                .unwrap_or_default();
            assert!(refused.contains(reason), "{claim}: {refused}");
        }
        Ok(())
    }
}
