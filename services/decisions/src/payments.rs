//! Payment outcomes from `jiuzhu.payments.events.v1` on the case: a short budget shows the case
//! waiting for funds (`FundsAwaited`, cleared by `FundsSecured`), and the payment made enters
//! the distributed stage (`ReliefDistributed`). Each is recorded once however often the event
//! is delivered (the request id is the payment event's).

use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::payments::{DisbursementSucceeded, FundsReserved, FundsShort};

use crate::app::{DecisionsApi, internal_call, on_case};

jiuzhu_eventstore::event_enum! {
    /// The payment events a case follows.
    pub enum PaymentOutcomes {
        FundsShort(FundsShort),
        FundsReserved(FundsReserved),
        DisbursementSucceeded(DisbursementSucceeded),
    }
}

#[derive(Debug)]
pub struct PaymentProgress {
    api: DecisionsApi,
}

impl PaymentProgress {
    pub fn new(api: DecisionsApi) -> Self {
        Self { api }
    }
}

impl Reaction for PaymentProgress {
    type Events = PaymentOutcomes;

    fn name(&self) -> &str {
        "decisions.payment_progress"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("payments")]
    }

    async fn react(
        &self,
        envelope: &EventEnvelope,
        event: PaymentOutcomes,
    ) -> Result<(), ProjectionError> {
        let outcome = event;
        let case_id = match &outcome {
            PaymentOutcomes::FundsShort(e) => &e.case_id,
            PaymentOutcomes::FundsReserved(e) => &e.case_id,
            PaymentOutcomes::DisbursementSucceeded(e) => &e.case_id,
        };
        let case_id = uuid::Uuid::parse_str(case_id)
            .map_err(|_| ProjectionError::Rejected(format!("case_id `{case_id}` is not a UUID")))?;
        let request_id = format!("payments-{}", envelope.event_id);
        on_case(
            &self.api,
            jiuzhu_access::Actor::Platform,
            internal_call("PaymentProgress", request_id),
            case_id,
            move |case, context| {
                let events = match &outcome {
                    PaymentOutcomes::FundsShort(e) => {
                        case.await_funds(&e.disbursement_id, e.amount, e.available)?
                    }
                    PaymentOutcomes::FundsReserved(e) => case.secure_funds(&e.disbursement_id)?,
                    PaymentOutcomes::DisbursementSucceeded(e) => case.distribute(
                        &e.disbursement_id,
                        e.amount,
                        &e.provider_reference,
                        context,
                    )?,
                };
                Ok((events, ()))
            },
        )
        .await
        .map(|_| ())
        .map_err(jiuzhu_messaging::ProjectionError::from)
    }
}
