use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaSettings;
use crate::dead_letter::DLQ_SUFFIX;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("Kafka admin client could not be created: {0}")]
    Client(#[source] KafkaError),
    #[error("topic `{topic}` could not be created: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic creation failed: {0}")]
    Request(#[source] KafkaError),
    #[error("cannot read the offsets of `{topic}`: {source}")]
    Offsets {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading the offsets of `{0}` was interrupted")]
    Interrupted(String),
    #[error("the broker did not answer: {0}")]
    Unreachable(#[source] KafkaError),
}

/// `jiuzhu.<service>.events.v1`.
pub fn service_topic(service: &str) -> String {
    format!("jiuzhu.{service}.events.v1")
}

/// `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Creates the topics that do not exist yet; existing ones are left as they are. Returns the
/// topics it created. Services provision explicitly rather than relying on broker
/// auto-creation.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[String],
) -> Result<Vec<String>, TopicError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config()
        .create()
        .map_err(TopicError::Client)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(TopicError::Request)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    Ok(created)
}

/// Whether `topic` has never held a record: every partition's high watermark is 0. True of a
/// topic just created, or created again by a broker that lost its log; false of one whose
/// records retention deleted.
pub async fn never_written(settings: &KafkaSettings, topic: &str) -> Result<bool, TopicError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let config = settings.client_config();
    let topic = topic.to_owned();
    let name = topic.clone();
    tokio::task::spawn_blocking(move || {
        let offsets = |source| TopicError::Offsets {
            topic: topic.clone(),
            source,
        };
        let consumer: BaseConsumer = config.create().map_err(TopicError::Client)?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(offsets)?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        for partition in 0..partitions {
            let partition = i32::try_from(partition).unwrap_or(i32::MAX);
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .map_err(offsets)?;
            if high > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
    .map_err(|_| TopicError::Interrupted(name))?
}

/// Asks the broker for its metadata: whether it answers (readiness). One client, kept.
#[derive(Clone)]
pub struct BrokerProbe {
    client: std::sync::Arc<rdkafka::consumer::BaseConsumer>,
}

impl std::fmt::Debug for BrokerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProbe").finish_non_exhaustive()
    }
}

impl BrokerProbe {
    pub fn new(settings: &KafkaSettings) -> Result<Self, TopicError> {
        let client = settings
            .client_config()
            .create()
            .map_err(TopicError::Client)?;
        Ok(Self {
            client: std::sync::Arc::new(client),
        })
    }

    /// The high watermark (the next offset to be written) of each (topic, partition), as the
    /// broker answers within `timeout` each; a partition it does not answer for is left out.
    pub async fn high_watermarks(
        &self,
        partitions: Vec<(String, i32)>,
        timeout: Duration,
    ) -> Result<Vec<(String, i32, i64)>, TopicError> {
        use rdkafka::consumer::Consumer;
        let client = std::sync::Arc::clone(&self.client);
        tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .filter_map(|(topic, partition)| {
                    let (_, high) = client.fetch_watermarks(&topic, partition, timeout).ok()?;
                    Some((topic, partition, high))
                })
                .collect()
        })
        .await
        .map_err(|_| TopicError::Interrupted("broker watermarks".to_owned()))
    }

    /// Whether the broker answered within `timeout`; the error says why not.
    pub async fn check(&self, timeout: Duration) -> Result<(), TopicError> {
        use rdkafka::consumer::Consumer;
        let client = std::sync::Arc::clone(&self.client);
        tokio::task::spawn_blocking(move || {
            client
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(TopicError::Unreachable)
        })
        .await
        .map_err(|_| TopicError::Interrupted("broker metadata".to_owned()))?
    }
}
