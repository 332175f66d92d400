//! The AsyncAPI document (`docs/asyncapi.json`) cannot drift: its channels are exactly the
//! topics the five services create on the broker (dead-letter topics aside), every message type
//! it names is in the published contracts, each message's schema is that message's
//! self-contained `.proto` text as the contracts define it, and each share channel carries
//! exactly the event types its department's agreement names.

use std::collections::BTreeSet;
use std::time::Duration;

use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{TestResult, eventually, start};
use prost_reflect::DescriptorPool;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn document() -> anyhow::Result<serde_json::Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

fn documented(doc: &serde_json::Value) -> BTreeSet<String> {
    doc["channels"]
        .as_object()
        .map(|channels| {
            channels
                .values()
                .filter_map(|c| c["address"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asyncapi_document_names_every_topic_and_type_and_nothing_else() -> TestResult {
    let doc = document()?;
    assert_eq!(doc["asyncapi"], "3.0.0");
    let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
    let channels = doc["channels"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no channels"))?;
    for (id, channel) in channels {
        for kind in channel["x-jiuzhu-message-types"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = kind.as_str().unwrap_or_default();
            assert!(
                pool.get_message_by_name(name).is_some(),
                "channel {id} names `{name}`, which no contract defines"
            );
        }
    }
    for (id, message) in doc["components"]["messages"]
        .as_object()
        .into_iter()
        .flatten()
    {
        // The schema is the message as one self-contained .proto text (AsyncAPI's protobuf
        // parser follows no imports), exactly as the contracts define it today.
        let name = message["x-jiuzhu-protobuf-message"]
            .as_str()
            .unwrap_or_default();
        let expected = jiuzhu_proto::schema::proto_schema(&pool, name)
            .ok_or_else(|| anyhow::anyhow!("{id}: no contract defines `{name}`"))?;
        assert_eq!(
            message["payload"]["schemaFormat"],
            "application/vnd.google.protobuf;version=3"
        );
        assert_eq!(
            message["payload"]["schema"].as_str().unwrap_or_default(),
            expected,
            "{id}: the schema differs from the contracts; `make descriptors` writes it again"
        );
    }
    let agreements = jiuzhu_sharing::Agreements::shipped()?;
    for (department, agreement) in &agreements.departments {
        let channel = &channels[&format!("share_{department}")];
        let documented: BTreeSet<&str> = channel["x-jiuzhu-message-types"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .collect();
        let agreed: BTreeSet<&str> = agreement
            .shares
            .iter()
            .map(|s| s.event_type.as_str())
            .collect();
        assert_eq!(documented, agreed, "share_{department}");
    }

    // The topics the services actually create.
    let ns = unique_namespace();
    let registry = start::<jiuzhu_registry::Registry>(&ns).await?;
    let clues = start::<jiuzhu_clues::Clues>(&ns).await?;
    let decisions = start::<jiuzhu_decisions::Decisions>(&ns).await?;
    let payments = start::<jiuzhu_payments::Payments>(&ns).await?;
    let followup = start::<jiuzhu_followup::Followup>(&ns).await?;
    let wanted = documented(&doc);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let created = eventually("the services' topics", Duration::from_secs(60), || {
        let (consumer, ns, wanted) = (&consumer, &ns, &wanted);
        async move {
            let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
            let topics: BTreeSet<String> = metadata
                .topics()
                .iter()
                .filter_map(|t| t.name().strip_prefix(ns.as_str()))
                .filter(|t| !t.ends_with(".dlq"))
                .map(str::to_owned)
                .collect();
            // The share relay creates its topics as it starts: wait for at least as many.
            Ok((topics.len() >= wanted.len()).then_some(topics))
        }
    })
    .await?;
    assert_eq!(
        created, wanted,
        "docs/asyncapi.json and the topics the services create differ"
    );
    for started in [registry, clues, decisions, payments, followup] {
        started.running.stop().await;
    }
    Ok(())
}

/// The descriptor set integrators download (`docs/jiuzhu.binpb`) is the contracts' own.
#[test]
fn the_published_descriptor_set_is_the_contracts() -> TestResult {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/jiuzhu.binpb");
    let published = std::fs::read(path)?;
    assert!(
        published == jiuzhu_proto::FILE_DESCRIPTOR_SET,
        "docs/jiuzhu.binpb differs from the contracts: run `make descriptors` and commit it"
    );
    Ok(())
}

/// The stock AsyncAPI parser with its protobuf schema parser (from the npm registry, as an
/// integrator's tooling runs them) reads the document without an error or a warning, and sees
/// each message's payload as an object with the contract's fields.
#[test]
fn stock_asyncapi_tools_parse_the_document_and_its_protobuf_schemas() -> TestResult {
    let modules = jiuzhu_tests::npm_packages("tests/asyncapi-parser", "asyncapi-parser")?;
    let output = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/asyncapi-parser/parse.js"
        ))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/asyncapi.json"
        ))
        .env("NODE_PATH", &modules)
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}{stdout}");
    assert!(stderr.trim().is_empty(), "diagnostics: {stderr}");
    let parsed: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let doc = document()?;
    let messages = doc["components"]["messages"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no messages"))?;
    for (id, message) in messages {
        let seen = parsed
            .iter()
            .find(|p| p["message"] == id.as_str())
            .ok_or_else(|| anyhow::anyhow!("the parser did not see message {id}: {stdout}"))?;
        assert_eq!(seen["type"], "object", "{id}: {seen}");
        let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
        let contract = pool
            .get_message_by_name(
                message["x-jiuzhu-protobuf-message"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .ok_or_else(|| anyhow::anyhow!("{id}: no contract"))?;
        let fields: BTreeSet<String> = contract.fields().map(|f| f.name().to_owned()).collect();
        let properties: BTreeSet<String> = seen["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        assert_eq!(properties, fields, "{id}: the payload's properties");
    }
    Ok(())
}
