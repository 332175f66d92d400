use std::collections::BTreeMap;

use jiuzhu_config::{ConfigError, Validate, check_range};
use rdkafka::ClientConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Partitions for topics this service provisions.
    pub partitions: i32,
    /// Replication factor for topics this service provisions.
    pub replication_factor: i32,
    /// Prefix put before every topic and consumer group name, so that several environments
    /// (or test runs) can share one cluster without seeing each other's messages.
    pub topic_prefix: String,
    /// Extra librdkafka properties (TLS, SASL, timeouts), passed through as given.
    pub properties: BTreeMap<String, String>,
    /// This process's stable name among its service's processes (e.g. the pod name): when set,
    /// its consumers are static group members (`group.instance.id` = `<instance_id>.<name>`),
    /// so a process that crashes and comes back under the same name takes its partitions back
    /// at once instead of waiting out a rebalance. Empty: dynamic membership. Two live
    /// processes must never share one.
    pub instance_id: String,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            partitions: 3,
            replication_factor: 1,
            topic_prefix: String::new(),
            properties: BTreeMap::new(),
            instance_id: String::new(),
        }
    }
}

impl Validate for KafkaSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.brokers"),
                "must name at least one host:port",
            ));
        }
        if !self
            .topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::invalid(
                format!("{prefix}.topic_prefix"),
                "may hold only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if self.instance_id.len() > 128
            || !self
                .instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::invalid(
                format!("{prefix}.instance_id"),
                "may hold only ASCII letters, digits, '.', '_' and '-', at most 128 of them",
            ));
        }
        check_range(prefix, "partitions", self.partitions, 1..=10_000)?;
        check_range(
            prefix,
            "replication_factor",
            self.replication_factor,
            1..=16,
        )
    }
}

impl KafkaSettings {
    /// The name of `topic` in this environment.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    /// The static member name of this process's consumer `name`, when it has an instance id.
    pub fn group_instance_id(&self, name: &str) -> Option<String> {
        (!self.instance_id.is_empty()).then(|| format!("{}.{name}", self.instance_id))
    }

    /// The consumer group of a projection in this environment.
    pub fn group_id(&self, projection: &str) -> String {
        format!("{}jiuzhu.{projection}", self.topic_prefix)
    }

    /// Client configuration with the brokers and pass-through properties applied.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// Pause between outbox polls when the last poll found less than a full batch.
    pub poll_interval_ms: u64,
    /// Outbox rows published per transaction.
    pub batch_size: i64,
    /// Published rows are deleted after this many hours.
    pub retention_hours: i64,
    /// After publishing this many rows, once the outbox is drained, the relay vacuums it: every
    /// published row leaves a dead entry in the index of unpublished rows, which each poll would
    /// otherwise step over until autovacuum (which may lag, or be off) gets there.
    pub vacuum_after_rows: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 20,
            batch_size: 500,
            retention_hours: 168,
            vacuum_after_rows: 50_000,
        }
    }
}

impl Validate for RelaySettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_range(
            prefix,
            "poll_interval_ms",
            self.poll_interval_ms,
            1..=60_000,
        )?;
        check_range(prefix, "batch_size", self.batch_size, 1..=10_000)?;
        check_range(
            prefix,
            "retention_hours",
            self.retention_hours,
            1..=24 * 365,
        )?;
        check_range(
            prefix,
            "vacuum_after_rows",
            self.vacuum_after_rows,
            1_000..=1_000_000_000,
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Messages applied per database transaction at most.
    pub batch_size: usize,
    /// Attempts before a failing message goes to the dead-letter topic.
    pub max_attempts: u32,
    /// Pause before the first retry; doubles with each further attempt.
    pub retry_backoff_ms: u64,
    /// The longest pause between retries. A message waiting for another service's event (an
    /// outage of ordering, not of a server) is looked at again this often at worst.
    pub retry_backoff_max_ms: u64,
    /// Longest a fetch waits for new records (librdkafka `fetch.wait.max.ms`): the bound on
    /// delivery latency with brokers that hold a fetch until it expires.
    pub fetch_wait_max_ms: u64,
    /// How long the group coordinator waits for a member's heartbeat before giving its
    /// partitions to others (librdkafka `session.timeout.ms`; heartbeats go at a tenth of it).
    /// Short finds a dead member sooner; long rides out a coordinator that is slow to answer
    /// while it restarts, which otherwise makes every member rejoin at once.
    pub session_timeout_ms: u64,
    /// How often the offsets of applied messages are committed to the group (librdkafka
    /// `auto.commit.interval.ms`; also on leaving the group and on losing a partition). The
    /// inbox makes a re-read after a crash harmless; one commit per message would instead load
    /// the group coordinator with a write per message.
    pub commit_interval_ms: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_attempts: 5,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 5_000,
            fetch_wait_max_ms: 50,
            session_timeout_ms: 10_000,
            commit_interval_ms: 1_000,
        }
    }
}

impl Validate for ConsumerSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_range(prefix, "batch_size", self.batch_size, 1..=10_000)?;
        check_range(prefix, "max_attempts", self.max_attempts, 1..=100)?;
        check_range(
            prefix,
            "retry_backoff_ms",
            self.retry_backoff_ms,
            0..=60_000,
        )?;
        check_range(
            prefix,
            "retry_backoff_max_ms",
            self.retry_backoff_max_ms,
            self.retry_backoff_ms.max(1)..=600_000,
        )?;
        check_range(
            prefix,
            "session_timeout_ms",
            self.session_timeout_ms,
            6_000..=300_000,
        )?;
        check_range(
            prefix,
            "commit_interval_ms",
            self.commit_interval_ms,
            10..=60_000,
        )
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::BaseProducer;

    use super::*;

    /// TLS and SASL to the brokers are configuration: the client is built with TLS support and
    /// takes the properties as given.
    #[test]
    fn tls_and_sasl_properties_are_accepted() -> Result<(), rdkafka::error::KafkaError> {
        let mut settings = KafkaSettings::default();
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "jiuzhu-registry"),
            ("sasl.password", "from-the-secret-store"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ] {
            settings.properties.insert(key.to_owned(), value.to_owned());
        }
        let _producer: BaseProducer = settings.client_config().create()?;
        Ok(())
    }

    #[test]
    fn retries_back_off_no_further_than_the_cap_and_the_cap_is_no_smaller_than_the_start() {
        assert!(ConsumerSettings::default().validate("consumer").is_ok());
        let inverted = ConsumerSettings {
            retry_backoff_ms: 2_000,
            retry_backoff_max_ms: 500,
            ..ConsumerSettings::default()
        };
        let error = inverted.validate("consumer").err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("consumer.retry_backoff_max_ms")),
            "{error:?}"
        );
    }

    #[test]
    fn an_instance_id_makes_consumers_static_members() {
        let mut settings = KafkaSettings::default();
        assert_eq!(settings.group_instance_id("registry.persons"), None);
        settings.instance_id = "registry-7c9f".to_owned();
        assert_eq!(
            settings.group_instance_id("registry.persons").as_deref(),
            Some("registry-7c9f.registry.persons")
        );
        assert!(settings.validate("kafka").is_ok());
        settings.instance_id = "pod name".to_owned();
        let refused = settings.validate("kafka").err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("kafka.instance_id")),
            "{refused:?}"
        );
    }
}
