//! The person acting through a calling system (a prosecutor at an agency's case system), as the
//! system vouches for them: a staff number in `jiuzhu-acting-person`, the time in
//! `jiuzhu-acting-at` (Unix seconds), and in `jiuzhu-acting-signature` the hex ECDSA P-256
//! signature of both and the RPC, made with the key of the system's client certificate. The
//! guard checks it against that certificate; an unsigned, stale or forged claim is refused.

use crate::AccessError;
use crate::signing::SigningKey;

pub const ACTING_HEADER: &str = "jiuzhu-acting-person";
pub const ACTING_AT_HEADER: &str = "jiuzhu-acting-at";
pub const ACTING_SIGNATURE_HEADER: &str = "jiuzhu-acting-signature";
/// How far a signature's time may be from the server's clock, either way.
pub const ACTING_SKEW_SECONDS: u64 = 300;

fn signed_text(person: &str, method: &str, at: u64) -> String {
    format!("jiuzhu-acting-person\n{person}\n{method}\n{at}")
}

/// The hex signature a client sends for `person` acting on `method` (a gRPC path) at `at`,
/// made with the private key (PEM, PKCS#8) of its client certificate.
pub fn sign(key_pem: &str, person: &str, method: &str, at: u64) -> Result<String, AccessError> {
    SigningKey::from_pem(key_pem)?.sign(signed_text(person, method, at).as_bytes())
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
        signed_text(person, method, at).as_bytes(),
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
