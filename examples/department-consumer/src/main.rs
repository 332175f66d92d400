//! A department's consumer of its Jiuzhu share topic (`jiuzhu.share.<department>.v1`), to copy
//! and adapt. Each message is a `jiuzhu.common.v1.EventEnvelope` whose payload is the event its
//! `event_type` names, holding only the fields the department's data-sharing agreement allows,
//! with the person as the department's pseudonym. Delivery is at least once, so events already
//! handled are skipped by id (keep that set in your own database, in the transaction that
//! handles the event), and the offset is committed only after handling.
//!
//! This example decodes with the contracts' descriptor set (`make descriptors`, or the one built
//! into `jiuzhu-proto`), so it handles event types added later without a rebuild; generating
//! types from `proto/` with prost works as well.
//!
//! `department-consumer --brokers 127.0.0.1:9092 --department civil_affairs`

use std::collections::HashSet;
use std::time::Duration;

use clap::Parser;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Headers;

#[derive(Debug, Parser)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Your department, as in your topic's name (`civil_affairs`, `education`, …).
    #[arg(long)]
    department: String,
    /// The installation's topic prefix, if it has one.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// Consumer group (one per application of the department).
    #[arg(long, default_value = "department-consumer")]
    group: String,
    /// Stop after this many events (for trying it out).
    #[arg(long)]
    max: Option<usize>,
    /// Stop when nothing arrives for this many seconds.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
    let topic = format!("{}jiuzhu.share.{}.v1", args.topic_prefix, args.department);
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let mut handled: HashSet<String> = HashSet::new();
    loop {
        if args.max.is_some_and(|max| handled.len() >= max) {
            return Ok(());
        }
        let record =
            match tokio::time::timeout(Duration::from_secs(args.idle_seconds), consumer.recv())
                .await
            {
                Err(_) => return Ok(()),
                Ok(record) => record?,
            };
        let payload = rdkafka::Message::payload(&record).unwrap_or_default();
        let envelope = jiuzhu_proto::common::EventEnvelope::decode(payload)?;
        if handled.insert(envelope.event_id.clone()) {
            let agreement = rdkafka::Message::headers(&record)
                .and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "jiuzhu-agreement-version")
                        .and_then(|h| h.value)
                })
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let event = match pool.get_message_by_name(&envelope.event_type) {
                Some(descriptor) => serde_json::to_value(DynamicMessage::decode(
                    descriptor,
                    envelope.payload.as_slice(),
                )?)?,
                // A type newer than these contracts: keep it for later, do not guess.
                None => serde_json::Value::Null,
            };
            println!(
                "{}",
                serde_json::json!({
                    "event_id": envelope.event_id,
                    "event_type": envelope.event_type,
                    "agreement_version": agreement,
                    "event": event,
                })
            );
        }
        consumer.commit_message(&record, CommitMode::Async)?;
    }
}
