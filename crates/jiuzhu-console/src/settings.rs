//! `[console]`: where the console listens, its database, the services it calls, and how long a
//! signed-in session lasts.

use std::net::SocketAddr;
use std::path::PathBuf;

use jiuzhu_config::{ConfigError, Secret, Validate, check_range};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Where the pages are served (plain HTTP: put TLS in front of it, or keep it on loopback).
    pub listen: SocketAddr,
    /// The console's own database (staff directory, sessions); never a service's.
    #[serde(skip_serializing)]
    pub database_url: Secret,
    /// The certificate directory (`ca.pem` and the console's certificate and key).
    pub tls_dir: PathBuf,
    /// The console's certificate and key in `tls_dir`: `<name>.pem`, `<name>.key` (role
    /// `console`; its office bounds the offices of the staff it may speak for).
    pub certificate: String,
    /// The five services' gRPC endpoints (`https://host:port`).
    pub registry: String,
    pub clues: String,
    pub decisions: String,
    pub payments: String,
    pub followup: String,
    /// A session unused this long is signed out.
    pub idle_timeout_minutes: u32,
    /// Cookies only over HTTPS (`Secure`, `__Host-` prefix). Browsers treat `http://localhost`
    /// and `http://127.0.0.1` as secure, so this stays on for local use too.
    pub secure_cookies: bool,
    /// Failed sign-ins in a row before an account waits `lockout_minutes`.
    pub max_failed_signins: u32,
    pub lockout_minutes: u32,
    /// Sign-in attempts a minute from one address.
    pub signins_per_minute: u32,
    /// Largest upload (a material's scan), in bytes.
    pub max_upload_bytes: usize,
    /// Where uploaded files are kept, named by their SHA-256.
    pub upload_dir: PathBuf,
    /// The staff number the victims' online applications are filed under (as a relief
    /// prosecutor of the county the applicant names).
    pub intake_staff_no: String,
    /// Requests a minute from one address to the public pages (codes, applications, status).
    pub public_requests_per_minute: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: Secret::new("postgres://postgres@127.0.0.1:5432/jiuzhu_console"),
            tls_dir: PathBuf::from(".jiuzhu/certs"),
            certificate: "console".to_owned(),
            registry: "https://127.0.0.1:50051".to_owned(),
            clues: "https://127.0.0.1:50052".to_owned(),
            decisions: "https://127.0.0.1:50053".to_owned(),
            payments: "https://127.0.0.1:50054".to_owned(),
            followup: "https://127.0.0.1:50055".to_owned(),
            idle_timeout_minutes: 30,
            secure_cookies: true,
            max_failed_signins: 5,
            lockout_minutes: 15,
            signins_per_minute: 20,
            max_upload_bytes: 10 * 1024 * 1024,
            upload_dir: PathBuf::from(".jiuzhu/uploads"),
            intake_staff_no: "online-intake".to_owned(),
            public_requests_per_minute: 10,
        }
    }
}

impl jiuzhu_config::Section for ConsoleSettings {
    const NAME: &'static str = "console";
}

impl Validate for ConsoleSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_range(
            prefix,
            "idle_timeout_minutes",
            self.idle_timeout_minutes,
            1..=24 * 60,
        )?;
        check_range(
            prefix,
            "max_failed_signins",
            self.max_failed_signins,
            1..=100,
        )?;
        check_range(prefix, "lockout_minutes", self.lockout_minutes, 1..=24 * 60)?;
        check_range(
            prefix,
            "signins_per_minute",
            self.signins_per_minute,
            1..=10_000,
        )?;
        check_range(
            prefix,
            "max_upload_bytes",
            self.max_upload_bytes,
            1_024..=100 * 1024 * 1024,
        )?;
        for (key, endpoint) in [
            ("registry", &self.registry),
            ("clues", &self.clues),
            ("decisions", &self.decisions),
            ("payments", &self.payments),
            ("followup", &self.followup),
        ] {
            if !endpoint.starts_with("https://") {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    format!(
                        "`{endpoint}` must be an https:// endpoint (the services speak mutual TLS)"
                    ),
                ));
            }
        }
        Ok(())
    }
}
