//! Text messages to applicants' phones, through an SMS gateway. The gateway is an adapter
//! ([`SmsGateway`]); the simulator ([`SimulatedSms`], the default, like the payment simulator)
//! keeps each message in `sms_simulated` with the number masked and logs it, so a demo or a
//! test reads the code there. Numbers are kept only as hashes; codes only as hashes.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS gateway: {0}")]
    Gateway(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Sends a text to a phone.
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    fn send<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
        at: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SmsError>> + Send + 'a>>;
}

/// `138****5678`: enough for a person to recognise their number, not enough to call it.
pub fn masked(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 7 {
        return "****".to_owned();
    }
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// The SHA-256 of a number's digits (how numbers are found without keeping them).
pub fn phone_digest(phone: &str) -> Vec<u8> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    Sha256::digest(format!("jiuzhu-phone\n{digits}").as_bytes()).to_vec()
}

/// The simulator: nothing leaves the machine.
#[derive(Debug, Clone)]
pub struct SimulatedSms {
    pub pool: PgPool,
}

impl SmsGateway for SimulatedSms {
    fn send<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
        at: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SmsError>> + Send + 'a>>
    {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO sms_simulated (sent_at, phone_masked, phone_sha256, text)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(at)
            .bind(masked(phone))
            .bind(phone_digest(phone))
            .bind(text)
            .execute(&self.pool)
            .await?;
            tracing::info!(to = %masked(phone), text, "SMS simulator: message sent");
            Ok(())
        })
    }
}

/// The last message the simulator sent to `phone`.
pub async fn last_simulated(pool: &PgPool, phone: &str) -> Result<Option<String>, SmsError> {
    Ok(sqlx::query_scalar(
        "SELECT text FROM sms_simulated WHERE phone_sha256 = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(phone_digest(phone))
    .fetch_optional(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_masked_and_hashed_by_its_digits() {
        assert_eq!(masked("139-8501-1234"), "139****1234");
        assert_eq!(masked("12"), "****");
        assert_eq!(phone_digest("139 8501 1234"), phone_digest("13985011234"));
        assert_ne!(phone_digest("13985011234"), phone_digest("13985011235"));
    }
}
