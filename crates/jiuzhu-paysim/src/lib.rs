//! A payment provider simulator: it serves the gateway protocol (`jiuzhu.gateway.v1`) the way a
//! bank's gateway does, including the ways a bank's gateway goes wrong (latency, refusals,
//! answers that never come, notices sent twice or late), and keeps its own record of what it
//! paid. Tests run it as a separate process and use that record as the witness that nothing was
//! paid twice; `make run` starts it for the demo.
//!
//! With a journal (`--journal FILE`) the record survives the process: every new payment is
//! written and synced before it is answered, and read back at start, as a bank does not forget
//! what it paid when its gateway restarts (`make chaos` kills the simulator with SIGKILL).
//!
//! Behaviour per payment is deterministic: scenarios are chosen by the payee account's prefix
//! (like a bank sandbox's magic card ranges), and the random-looking rates hash the idempotency
//! key with a seed, so a run can be repeated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::gateway::gateway_notice_service_client::GatewayNoticeServiceClient;
use jiuzhu_proto::gateway::payment_gateway_service_server::{
    PaymentGatewayService, PaymentGatewayServiceServer,
};
use jiuzhu_proto::gateway::simulator_service_server::{SimulatorService, SimulatorServiceServer};
use jiuzhu_proto::gateway::*;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// A 19-digit sandbox card number starting with `prefix` (10 digits, e.g. a scenario's), with a
/// valid Luhn check digit: what demos and tests register as payees.
pub fn sandbox_card(prefix: &str, n: u64) -> String {
    let body = format!("{prefix}{n:08}");
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.saturating_sub(b'0'));
            // The check digit will be at position 0, so the body's rightmost digit is doubled.
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// What happens to payments to accounts with a given prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Refused for good ("account does not exist").
    Reject,
    /// The first key for the account is refused as retryable ("bank system busy"), later keys pay.
    Flaky,
    /// Paid, but no answer ever comes back (the call times out) and no notice is sent.
    Timeout,
}

impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(Self::Reject),
            "flaky" => Ok(Self::Flaky),
            "timeout" => Ok(Self::Timeout),
            other => Err(format!(
                "unknown scenario `{other}` (reject, flaky or timeout)"
            )),
        }
    }
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Delay before every answer.
    pub latency: Duration,
    /// Answer PENDING and report the outcome by notice (else answer PAID at once).
    pub asynchronous: bool,
    /// Delay of a notice after the payment.
    pub notice_delay: Duration,
    /// Each notice is sent this many extra times.
    pub duplicate_notices: u32,
    /// One more copy of each notice after this delay (a late notice); none when zero.
    pub late_notice: Duration,
    /// Share of payments refused as retryable (by the key's hash).
    pub failure_rate: f64,
    /// Share of payments done without an answer (by the key's hash).
    pub timeout_rate: f64,
    /// How long an unanswered call is held before the simulator gives up on it.
    pub timeout_hold: Duration,
    pub seed: u64,
    /// Account prefix → scenario.
    pub scenarios: Vec<(String, Scenario)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            asynchronous: false,
            notice_delay: Duration::from_millis(50),
            duplicate_notices: 0,
            late_notice: Duration::ZERO,
            failure_rate: 0.0,
            timeout_rate: 0.0,
            timeout_hold: Duration::from_secs(60),
            seed: 1,
            scenarios: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Payment {
    content: PayRequest,
    answer: PayResponse,
    pay_calls: i32,
    received_at_micros: i64,
    paid_at: Option<chrono::DateTime<Utc>>,
    /// No answer is ever given for it.
    silent: bool,
}

#[derive(Debug, Default)]
struct Book {
    payments: HashMap<String, Payment>,
    order: Vec<String>,
    /// Accounts whose first key was refused (the flaky scenario).
    refused_once: HashMap<String, String>,
    next_reference: u64,
}

/// The simulator's state, shared by its gRPC services.
#[derive(Debug, Clone)]
pub struct Simulator {
    behaviour: Arc<Behaviour>,
    book: Arc<Mutex<Book>>,
    notices: Option<GatewayNoticeServiceClient<Channel>>,
    journal: Option<Arc<Mutex<std::fs::File>>>,
}

/// One line of the journal: a payment as first decided.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct JournalLine {
    key: String,
    /// The encoded `PayRequest` and `PayResponse`, in hex.
    request: String,
    answer: String,
    received_at_micros: i64,
    paid_at_micros: Option<i64>,
    silent: bool,
}

impl JournalLine {
    fn of(key: &str, payment: &Payment) -> Self {
        use prost::Message as _;
        Self {
            key: key.to_owned(),
            request: hex::encode(payment.content.encode_to_vec()),
            answer: hex::encode(payment.answer.encode_to_vec()),
            received_at_micros: payment.received_at_micros,
            paid_at_micros: payment.paid_at.map(|t| t.timestamp_micros()),
            silent: payment.silent,
        }
    }

    fn payment(&self) -> anyhow::Result<Payment> {
        use prost::Message as _;
        Ok(Payment {
            content: PayRequest::decode(hex::decode(&self.request)?.as_slice())?,
            answer: PayResponse::decode(hex::decode(&self.answer)?.as_slice())?,
            pay_calls: 0,
            received_at_micros: self.received_at_micros,
            paid_at: self
                .paid_at_micros
                .and_then(chrono::DateTime::from_timestamp_micros),
            silent: self.silent,
        })
    }
}

fn fnv(text: &str, seed: u64) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325 ^ seed, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// A deterministic fraction in [0, 1) for a key.
fn share(key: &str, seed: u64, salt: &str) -> f64 {
    (fnv(&format!("{salt}:{key}"), seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// An amount as a statement shows it: yuan with two decimals.
pub use jiuzhu_proto::money::yuan;

impl Simulator {
    /// A simulator sending notices to `notify` (the payments service's endpoint), if given.
    pub fn new(behaviour: Behaviour, notify: Option<Endpoint>) -> anyhow::Result<Self> {
        let notices = notify.map(|endpoint| {
            GatewayNoticeServiceClient::new(
                endpoint
                    .connect_timeout(Duration::from_secs(2))
                    .connect_lazy(),
            )
        });
        Ok(Self {
            behaviour: Arc::new(behaviour),
            book: Arc::new(Mutex::new(Book::default())),
            notices,
            journal: None,
        })
    }

    /// Keeps the record in `path`: the payments already there are read back (a flaky account's
    /// first refusal included), and every new one is appended and synced before it is answered.
    /// Returns how many payments were read back.
    pub fn with_journal(mut self, path: &std::path::Path) -> anyhow::Result<(Self, usize)> {
        use std::io::BufRead as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("journal {}: {e}", path.display()))?;
        let mut read = 0;
        {
            let mut book = self
                .book
                .lock()
                .map_err(|_| anyhow::anyhow!("simulator state poisoned"))?;
            for (n, line) in std::io::BufReader::new(&file).lines().enumerate() {
                let at =
                    |what: String| anyhow::anyhow!("{} line {}: {what}", path.display(), n + 1);
                let line = line.map_err(|e| at(e.to_string()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let entry: JournalLine =
                    serde_json::from_str(&line).map_err(|e| at(e.to_string()))?;
                let payment = entry.payment().map_err(|e| at(e.to_string()))?;
                if let Some(number) = payment
                    .answer
                    .provider_reference
                    .strip_prefix("SIM")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    book.next_reference = book.next_reference.max(number);
                }
                if payment.answer.retryable
                    && self.scenario(&payment.content.payee_account) == Some(Scenario::Flaky)
                {
                    book.refused_once
                        .entry(payment.content.payee_account.clone())
                        .or_insert_with(|| entry.key.clone());
                }
                if book.payments.insert(entry.key.clone(), payment).is_none() {
                    book.order.push(entry.key);
                }
                read += 1;
            }
        }
        self.journal = Some(Arc::new(Mutex::new(file)));
        Ok((self, read))
    }

    /// Writes a new payment to the journal, if there is one, and syncs it.
    fn journal(&self, key: &str, payment: &Payment) -> Result<(), Status> {
        use std::io::Write as _;
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let unwritten = |e: &dyn std::fmt::Display| Status::unavailable(format!("journal: {e}"));
        let mut line =
            serde_json::to_string(&JournalLine::of(key, payment)).map_err(|e| unwritten(&e))?;
        line.push('\n');
        let mut file = journal.lock().map_err(|_| unwritten(&"poisoned"))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| unwritten(&e))
    }

    fn scenario(&self, account: &str) -> Option<Scenario> {
        self.behaviour
            .scenarios
            .iter()
            .find(|(prefix, _)| account.starts_with(prefix.as_str()))
            .map(|(_, scenario)| *scenario)
    }

    /// Decides a new payment's fate (under the book's lock).
    fn decide(&self, book: &mut Book, request: &PayRequest) -> Payment {
        let key = &request.idempotency_key;
        let behaviour = &self.behaviour;
        let rejected = |reason: &str, retryable: bool| PayResponse {
            outcome: PaymentOutcome::Rejected.into(),
            provider_reference: String::new(),
            reason: reason.to_owned(),
            retryable,
        };
        let scenario = self.scenario(&request.payee_account);
        let mut silent = false;
        let answer = match scenario {
            Some(Scenario::Reject) => rejected("account does not exist", false),
            Some(Scenario::Flaky)
                if book
                    .refused_once
                    .get(&request.payee_account)
                    .is_none_or(|first| first == key) =>
            {
                book.refused_once
                    .insert(request.payee_account.clone(), key.clone());
                rejected("bank system busy", true)
            }
            _ if scenario.is_none()
                && share(key, behaviour.seed, "fail") < behaviour.failure_rate =>
            {
                rejected("bank system busy", true)
            }
            _ => {
                silent = scenario == Some(Scenario::Timeout)
                    || share(key, behaviour.seed, "timeout") < behaviour.timeout_rate;
                book.next_reference += 1;
                PayResponse {
                    outcome: PaymentOutcome::Paid.into(),
                    provider_reference: format!("SIM{:08}", book.next_reference),
                    reason: String::new(),
                    retryable: false,
                }
            }
        };
        let paid = answer.outcome == i32::from(PaymentOutcome::Paid);
        Payment {
            content: request.clone(),
            answer,
            pay_calls: 0,
            received_at_micros: Utc::now().timestamp_micros(),
            paid_at: paid.then(Utc::now),
            silent,
        }
    }

    fn record(&self, request: &PayRequest) -> Result<(Payment, bool), Status> {
        let mut book = self
            .book
            .lock()
            .map_err(|_| Status::internal("simulator state poisoned"))?;
        let key = request.idempotency_key.clone();
        if let Some(existing) = book.payments.get_mut(&key) {
            if existing.content != *request {
                return Err(Status::already_exists(format!(
                    "idempotency key `{key}` was used with different content"
                )));
            }
            existing.pay_calls += 1;
            return Ok((existing.clone(), false));
        }
        let mut payment = self.decide(&mut book, request);
        payment.pay_calls = 1;
        // Written before it is answered: a payment made is never forgotten by a restart.
        self.journal(&key, &payment)?;
        book.payments.insert(key.clone(), payment.clone());
        book.order.push(key);
        Ok((payment, true))
    }

    fn send_notices(&self, request: &PayRequest, answer: &PayResponse) {
        let Some(client) = self.notices.clone() else {
            return;
        };
        let notice = NotifyRequest {
            idempotency_key: request.idempotency_key.clone(),
            outcome: answer.outcome,
            provider_reference: answer.provider_reference.clone(),
            reason: answer.reason.clone(),
            retryable: answer.retryable,
            amount: request.amount,
        };
        let behaviour = self.behaviour.clone();
        let mut delays = vec![behaviour.notice_delay; 1 + behaviour.duplicate_notices as usize];
        if !behaviour.late_notice.is_zero() {
            delays.push(behaviour.notice_delay + behaviour.late_notice);
        }
        // The notice continues the trace of the payment it answers.
        let parent = jiuzhu_telemetry::current_context_to_map();
        for delay in delays {
            let (mut client, notice) = (client.clone(), notice.clone());
            let span = jiuzhu_telemetry::grpc_client_span(
                "/jiuzhu.gateway.v1.GatewayNoticeService/Notify",
            );
            jiuzhu_telemetry::set_parent_from_map(&span, &parent);
            tokio::spawn(
                async move {
                    tokio::time::sleep(delay).await;
                    // Like a bank: keep notifying until acknowledged (for up to about a minute).
                    for _ in 0..120 {
                        let mut request = tonic::Request::new(notice.clone());
                        jiuzhu_telemetry::inject_current(&mut request);
                        if client.notify(request).await.is_ok() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    tracing::warn!(key = %notice.idempotency_key, "notice never acknowledged");
                }
                .instrument(span),
            );
        }
    }

    fn payments(&self) -> Result<Vec<(String, Payment)>, Status> {
        let book = self
            .book
            .lock()
            .map_err(|_| Status::internal("simulator state poisoned"))?;
        Ok(book
            .order
            .iter()
            .filter_map(|key| book.payments.get(key).map(|p| (key.clone(), p.clone())))
            .collect())
    }
}

#[tonic::async_trait]
impl PaymentGatewayService for Simulator {
    async fn pay(&self, request: Request<PayRequest>) -> Result<Response<PayResponse>, Status> {
        let request = request.into_inner();
        if request.idempotency_key.is_empty() {
            return Err(Status::invalid_argument("idempotency_key is required"));
        }
        if request.amount.is_none_or(|m| m.fen <= 0) {
            return Err(Status::invalid_argument("amount must be positive"));
        }
        let (payment, first) = self.record(&request)?;
        tokio::time::sleep(self.behaviour.latency).await;
        if payment.silent {
            tokio::time::sleep(self.behaviour.timeout_hold).await;
            return Err(Status::deadline_exceeded("no answer from the bank"));
        }
        if self.behaviour.asynchronous {
            if first {
                self.send_notices(&request, &payment.answer);
            }
            if payment.answer.outcome == i32::from(PaymentOutcome::Paid) && first {
                return Ok(Response::new(PayResponse {
                    outcome: PaymentOutcome::Pending.into(),
                    ..PayResponse::default()
                }));
            }
        }
        Ok(Response::new(payment.answer))
    }
}

#[tonic::async_trait]
impl SimulatorService for Simulator {
    async fn list_payments(
        &self,
        _request: Request<ListPaymentsRequest>,
    ) -> Result<Response<ListPaymentsResponse>, Status> {
        let payments = self
            .payments()?
            .into_iter()
            .map(|(key, p)| SimulatedPayment {
                idempotency_key: key,
                provider_reference: p.answer.provider_reference,
                amount: p.content.amount,
                outcome: p.answer.outcome,
                pay_calls: p.pay_calls,
                received_at_micros: p.received_at_micros,
                remittance_information: p.content.remittance_information,
            })
            .collect();
        Ok(Response::new(ListPaymentsResponse { payments }))
    }

    async fn export_statement(
        &self,
        _request: Request<ExportStatementRequest>,
    ) -> Result<Response<ExportStatementResponse>, Status> {
        let mut csv = String::from("value_date,bank_reference,idempotency_key,amount,direction\n");
        let mut mt940 = String::from(":20:SIMSTATEMENT\n:25:SIMULATOR\n:28C:1/1\n");
        let (mut count, mut total) = (0i64, 0i64);
        for (key, payment) in self.payments()? {
            let Some(paid_at) = payment.paid_at else {
                continue;
            };
            let fen = payment.content.amount.map_or(0, |m| m.fen);
            let day = jiuzhu_proto::time::beijing(paid_at);
            csv.push_str(&format!(
                "{},{},{key},{},DEBIT\n",
                day.format("%Y-%m-%d"),
                payment.answer.provider_reference,
                yuan(fen)
            ));
            mt940.push_str(&format!(
                ":61:{}{}D{}NTRFNONREF//{}\n:86:KEY:{key}\n",
                day.format("%y%m%d"),
                day.format("%m%d"),
                yuan(fen).replace('.', ","),
                payment.answer.provider_reference,
            ));
            count += 1;
            total += fen;
        }
        Ok(Response::new(ExportStatementResponse {
            csv,
            mt940,
            line_count: count,
            total: Some(Money { fen: total }),
        }))
    }
}

/// Serves the gateway and the simulator's record on `listener` until `shutdown` resolves.
/// Serves over mutual TLS, as a bank's gateway would.
pub async fn serve(
    simulator: Simulator,
    listener: tokio::net::TcpListener,
    tls: tonic::transport::ServerTlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let (reflection, reflection_v1alpha) = jiuzhu_proto::reflection::services(
        &[
            "jiuzhu.gateway.v1.PaymentGatewayService",
            "jiuzhu.gateway.v1.SimulatorService",
        ],
        &[],
    )?;
    tonic::transport::Server::builder()
        .tls_config(tls)?
        .trace_fn(jiuzhu_telemetry::grpc_server_span)
        .add_service(PaymentGatewayServiceServer::new(simulator.clone()))
        .add_service(SimulatorServiceServer::new(simulator))
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Binds `addr` (port 0 picks one) and returns the listener with its address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, account: &str) -> PayRequest {
        PayRequest {
            idempotency_key: key.to_owned(),
            payee_name: "王秀英".to_owned(),
            payee_account: account.to_owned(),
            payee_institution: "农业银行".to_owned(),
            amount: Some(Money { fen: 100 }),
            remittance_information: "d-1".to_owned(),
        }
    }

    #[test]
    fn a_key_pays_once_and_different_content_under_it_is_refused() -> anyhow::Result<()> {
        let simulator = Simulator::new(Behaviour::default(), None)?;
        let (first, new) = simulator.record(&request("k-1", "6222"))?;
        assert!(new);
        let (again, new_again) = simulator.record(&request("k-1", "6222"))?;
        assert!(!new_again);
        assert_eq!(again.answer, first.answer);
        assert_eq!(again.pay_calls, 2);
        let conflict = simulator.record(&request("k-1", "6223")).err();
        assert_eq!(conflict.map(|s| s.code()), Some(tonic::Code::AlreadyExists));
        assert_eq!(simulator.payments()?.len(), 1);
        Ok(())
    }

    #[test]
    fn scenarios_follow_the_account_prefix() -> anyhow::Result<()> {
        let behaviour = Behaviour {
            scenarios: vec![
                ("9990".to_owned(), Scenario::Reject),
                ("9991".to_owned(), Scenario::Flaky),
                ("9992".to_owned(), Scenario::Timeout),
            ],
            ..Behaviour::default()
        };
        let simulator = Simulator::new(behaviour, None)?;
        let (rejected, _) = simulator.record(&request("a", "99901"))?;
        assert!(!rejected.answer.retryable);
        let (flaky, _) = simulator.record(&request("b:1", "99911"))?;
        assert!(flaky.answer.retryable);
        let (flaky_again, _) = simulator.record(&request("b:2", "99911"))?;
        assert_eq!(flaky_again.answer.outcome, i32::from(PaymentOutcome::Paid));
        let (silent, _) = simulator.record(&request("c", "99921"))?;
        assert!(silent.silent && silent.paid_at.is_some());
        assert_eq!(yuan(123_405), "1234.05");
        Ok(())
    }

    #[test]
    fn a_restarted_simulator_remembers_what_it_paid_from_its_journal() -> anyhow::Result<()> {
        let path = std::env::temp_dir().join(format!(
            "jiuzhu-paysim-journal-{}-{}.jsonl",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let behaviour = Behaviour {
            scenarios: vec![("9991".to_owned(), Scenario::Flaky)],
            ..Behaviour::default()
        };
        let (first, read) = Simulator::new(behaviour.clone(), None)?.with_journal(&path)?;
        assert_eq!(read, 0);
        let (paid, _) = first.record(&request("k-1", "6222"))?;
        let (refused, _) = first.record(&request("f:1", "99911"))?;
        assert!(refused.answer.retryable);
        drop(first);

        let (second, read) = Simulator::new(behaviour, None)?.with_journal(&path)?;
        assert_eq!(read, 2);
        let (again, new) = second.record(&request("k-1", "6222"))?;
        assert!(!new, "the key was paid before the restart");
        assert_eq!(again.answer, paid.answer);
        // The flaky account's first refusal is remembered: its next key pays.
        let (retried, _) = second.record(&request("f:2", "99911"))?;
        assert_eq!(retried.answer.outcome, i32::from(PaymentOutcome::Paid));
        assert_ne!(
            retried.answer.provider_reference, paid.answer.provider_reference,
            "references continue after the journal's last"
        );
        assert_eq!(second.payments()?.len(), 3);
        std::fs::write(&path, "{not json\n")?;
        let broken = Simulator::new(Behaviour::default(), None)?.with_journal(&path);
        assert!(broken.is_err_and(|e| e.to_string().contains("line 1")));
        std::fs::remove_file(&path)?;
        Ok(())
    }
}
