//! The payment provider behind a trait, and the adapter for a bank gateway speaking
//! `jiuzhu.gateway.v1` (which the simulator serves too). The one rule callers rely on: an
//! answer that did not come (timeout, connection lost) is `Unknown`, never a failure, because
//! the bank may have paid; the same instruction is sent again under the same key.

use std::future::Future;
use std::time::Duration;

use jiuzhu_proto::common::Money;
use jiuzhu_proto::gateway::payment_gateway_service_client::PaymentGatewayServiceClient;
use jiuzhu_proto::gateway::{PayRequest, PaymentOutcome};
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

/// One attempt of a disbursement as the provider receives it. Contains the payee's account:
/// never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct Instruction {
    pub idempotency_key: String,
    pub payee_name: String,
    pub payee_account: String,
    pub payee_institution: String,
    pub fen: i64,
    pub remittance: String,
}

impl std::fmt::Debug for Instruction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instruction")
            .field("idempotency_key", &self.idempotency_key)
            .field("fen", &self.fen)
            .finish_non_exhaustive()
    }
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Paid {
        reference: String,
    },
    /// Accepted; a notice will say how it ended.
    Pending,
    Rejected {
        reason: String,
        retryable: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer: the payment may or may not have been made.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The provider holds different content under this key: a bug or tampering, for people.
    #[error("the provider refused the key: {0}")]
    KeyConflict(String),
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Pays `instruction` at most once per idempotency key.
    fn pay(
        &self,
        instruction: &Instruction,
    ) -> impl Future<Output = Result<Answer, ProviderError>> + Send;
}

/// A bank gateway reached over gRPC.
#[derive(Debug, Clone)]
pub struct GatewayProvider {
    name: String,
    client: PaymentGatewayServiceClient<Channel>,
    timeout: Duration,
}

impl GatewayProvider {
    /// Connects lazily: a provider that is down makes outcomes unknown, not the service unable
    /// to start.
    pub fn new(name: &str, endpoint: Endpoint, timeout: Duration) -> Self {
        let channel = endpoint
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        Self {
            name: name.to_owned(),
            client: PaymentGatewayServiceClient::new(channel),
            timeout,
        }
    }
}

impl PaymentProvider for GatewayProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn pay(&self, instruction: &Instruction) -> Result<Answer, ProviderError> {
        let span =
            jiuzhu_telemetry::grpc_client_span("/jiuzhu.gateway.v1.PaymentGatewayService/Pay");
        self.call(instruction).instrument(span).await
    }
}

impl GatewayProvider {
    /// The call itself, inside its client span (the provider's server span continues it).
    async fn call(&self, instruction: &Instruction) -> Result<Answer, ProviderError> {
        let mut request = tonic::Request::new(PayRequest {
            idempotency_key: instruction.idempotency_key.clone(),
            payee_name: instruction.payee_name.clone(),
            payee_account: instruction.payee_account.clone(),
            payee_institution: instruction.payee_institution.clone(),
            amount: Some(Money {
                fen: instruction.fen,
            }),
            remittance_information: instruction.remittance.clone(),
        });
        request.set_timeout(self.timeout);
        jiuzhu_telemetry::inject_current(&mut request);
        let answer = tokio::time::timeout(self.timeout, self.client.clone().pay(request))
            .await
            .map_err(|_| ProviderError::Unknown("no answer in time".to_owned()))?;
        let answer = match answer {
            Ok(answer) => answer.into_inner(),
            Err(status) if status.code() == tonic::Code::AlreadyExists => {
                return Err(ProviderError::KeyConflict(status.message().to_owned()));
            }
            Err(status) => {
                return Err(ProviderError::Unknown(format!(
                    "{:?}: {}",
                    status.code(),
                    status.message()
                )));
            }
        };
        match PaymentOutcome::try_from(answer.outcome) {
            Ok(PaymentOutcome::Paid) => Ok(Answer::Paid {
                reference: answer.provider_reference,
            }),
            Ok(PaymentOutcome::Pending) => Ok(Answer::Pending),
            Ok(PaymentOutcome::Rejected) => Ok(Answer::Rejected {
                reason: answer.reason,
                retryable: answer.retryable,
            }),
            _ => Err(ProviderError::Unknown(format!(
                "unrecognised outcome {}",
                answer.outcome
            ))),
        }
    }
}
