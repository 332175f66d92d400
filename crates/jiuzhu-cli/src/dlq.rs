//! `jiuzhu dlq`: the dead letters of one service's consumers (its database's `dead_letters`):
//! list them by consumer, topic and reason, show one with its original message's headers, replay
//! one through the same idempotent path, or discard it. Replays and discards record who did it
//! and why (`--by`, `--note`), and are shown by `list --resolved`.

use anyhow::Context;
use jiuzhu_messaging::dead_letters::{self, DeadLetter, Filter};

#[derive(Debug, clap::Args)]
pub struct Database {
    /// The service's database (its `dead_letters`).
    #[arg(long, env = "JIUZHU_DLQ_DATABASE_URL")]
    database_url: String,
}

impl Database {
    async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await
            .context("cannot reach the database")
    }
}

#[derive(Debug, clap::Args)]
pub struct Broker {
    /// The Kafka brokers (`host:port,…`) the service reads from.
    #[arg(
        long,
        env = "JIUZHU__KAFKA__BROKERS",
        default_value = "127.0.0.1:19092"
    )]
    brokers: String,
    /// A librdkafka property for TLS or SASL (`security.protocol=SASL_SSL`); repeatable.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

impl Broker {
    fn settings(&self) -> anyhow::Result<jiuzhu_messaging::KafkaSettings> {
        let mut settings = jiuzhu_messaging::KafkaSettings {
            brokers: self.brokers.clone(),
            ..jiuzhu_messaging::KafkaSettings::default()
        };
        for property in &self.properties {
            let (key, value) = property
                .split_once('=')
                .with_context(|| format!("--kafka-property `{property}` is not KEY=VALUE"))?;
            settings
                .properties
                .insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(settings)
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    database: Database,
    /// Only this consumer's (e.g. `clues.linkage_index`).
    #[arg(long)]
    consumer: Option<String>,
    /// Only those from this topic.
    #[arg(long)]
    topic: Option<String>,
    /// Only those whose reason contains this text.
    #[arg(long)]
    reason: Option<String>,
    /// Replayed and discarded ones too, with who resolved them.
    #[arg(long)]
    resolved: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    database: Database,
    #[command(flatten)]
    broker: Broker,
    /// The dead letter's id (from `list`).
    id: i64,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    database: Database,
    #[command(flatten)]
    broker: Broker,
    /// Who does it (recorded with the dead letter).
    #[arg(long)]
    by: String,
    /// Why (recorded with the dead letter).
    #[arg(long)]
    note: String,
    /// The dead letters' ids (from `list`).
    #[arg(required = true)]
    ids: Vec<i64>,
}

fn line(letter: &DeadLetter) -> String {
    let resolved = match (&letter.resolution, &letter.resolved_by) {
        (Some(resolution), by) => format!(
            "  [{resolution} by {}: {}]",
            by.as_deref().unwrap_or(""),
            letter.note
        ),
        _ => String::new(),
    };
    format!(
        "{:>6}  {}  {:<32} {}/{}@{}  attempts {}  {}{resolved}",
        letter.id,
        letter.dead_at.format("%Y-%m-%d %H:%M:%S"),
        letter.consumer,
        letter.topic,
        letter.partition,
        letter.offset,
        letter.attempts,
        letter.reason
    )
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let pool = args.database.pool().await?;
    let filter = Filter {
        consumer: args.consumer,
        topic: args.topic,
        reason_contains: args.reason,
        resolved: args.resolved,
    };
    let letters = dead_letters::list(&pool, &filter).await?;
    for letter in &letters {
        if args.json {
            println!("{}", serde_json::to_string(letter)?);
        } else {
            println!("{}", line(letter));
        }
    }
    eprintln!("{} dead letters", letters.len());
    Ok(())
}

pub async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let pool = args.database.pool().await?;
    let letter = dead_letters::get(&pool, args.id).await?;
    println!("{}", serde_json::to_string_pretty(&letter)?);
    // The headers say what the message is and who sent it; the payload stays where it is (it
    // may carry sealed personal data).
    let settings = args.broker.settings()?;
    let fetched = letter.clone();
    match tokio::task::spawn_blocking(move || dead_letters::original(&settings, &fetched)).await? {
        Ok(original) => {
            println!(
                "original message: key {}, {} payload bytes, headers:",
                original
                    .key
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                original.payload.as_ref().map_or(0, Vec::len)
            );
            for (key, value) in &original.headers {
                println!("  {key}: {}", String::from_utf8_lossy(value));
            }
        }
        Err(error) => println!("original message: {error}"),
    }
    Ok(())
}

pub async fn replay(args: ResolveArgs) -> anyhow::Result<()> {
    let pool = args.database.pool().await?;
    let settings = args.broker.settings()?;
    for id in &args.ids {
        let letter = dead_letters::replay(&pool, &settings, *id, &args.by, &args.note)
            .await
            .with_context(|| format!("dead letter {id}"))?;
        println!(
            "replayed {id}: {} gets {}/{}@{} again",
            letter.consumer, letter.topic, letter.partition, letter.offset
        );
    }
    Ok(())
}

pub async fn discard(args: ResolveArgs) -> anyhow::Result<()> {
    let pool = args.database.pool().await?;
    for id in &args.ids {
        dead_letters::discard(&pool, *id, &args.by, &args.note)
            .await
            .with_context(|| format!("dead letter {id}"))?;
        println!("discarded {id}");
    }
    Ok(())
}
