//! The README's instructions for departments, exercised: a department reads its share topic
//! with `confluent-kafka` and the published descriptor set (`examples/python/
//! read_share_topic.py`, in a virtualenv cached under ~/.cache/jiuzhu), with kafkajs and
//! protobufjs (`examples/node/read_share_topic.js`, its locked packages installed under
//! ~/.cache/jiuzhu), and with the Rust example (`examples/department-consumer`), and sees
//! exactly its pseudonymised copy.

use std::path::PathBuf;
use std::process::Command;

use jiuzhu_proto::followup::ReturnToPovertyRiskFlagged;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{TestResult, publish, read_topic, registry_client, start, villager};
use rdkafka::producer::FutureProducer;

/// A virtualenv with confluent-kafka and protobuf from PyPI, made once.
fn python() -> anyhow::Result<PathBuf> {
    let home = std::env::var("HOME")?;
    let venv = PathBuf::from(home).join(".cache/jiuzhu/py-departments");
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import confluent_kafka, google.protobuf"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?;
        anyhow::ensure!(
            made.success(),
            "python3 -m venv failed (install python3-venv)"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "confluent-kafka", "protobuf"])
            .status()?;
        anyhow::ensure!(
            installed.success(),
            "pip install confluent-kafka protobuf failed"
        );
    }
    Ok(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_reads_its_share_topic_in_python_and_rust_as_the_readme_shows() -> TestResult {
    let python = tokio::task::spawn_blocking(python).await??;
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let person = registry_client(&registry.running)
        .await?
        .register_person(villager("py-zhao", "赵桂兰", "civil_affairs"))
        .await?
        .into_inner()
        .person_id;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    publish(
        &producer,
        &ns,
        "followup",
        &person,
        &ReturnToPovertyRiskFlagged {
            plan_id: uuid::Uuid::now_v7().to_string(),
            person_id: person.clone(),
            visit_number: 2,
            reasons: vec!["depression_moderate".to_owned()],
            policy_version: "followup-2026.1".to_owned(),
            region_code: "520102".to_owned(),
        },
    )
    .await?;
    let topic = format!("{ns}jiuzhu.share.civil_affairs.v1");
    let records = read_topic(&kafka_brokers(), &topic, 1)?;
    // CloudEvents 1.0 in binary mode, beside Jiuzhu's own headers.
    let headers: std::collections::BTreeMap<String, String> = {
        use rdkafka::message::{Headers as _, Message as _};
        records[0]
            .headers()
            .map(|h| {
                h.iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        headers.get("ce_specversion").map(String::as_str),
        Some("1.0")
    );
    assert_eq!(
        headers.get("ce_type").map(String::as_str),
        Some("jiuzhu.followup.v1.ReturnToPovertyRiskFlagged")
    );
    assert_eq!(
        headers.get("ce_source").map(String::as_str),
        Some("/jiuzhu/registry/share/civil_affairs")
    );
    assert_eq!(headers.get("ce_id"), headers.get("jiuzhu-event-id"));
    let time = headers.get("ce_time").cloned().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&time).is_ok(),
        "ce_time `{time}`"
    );

    // The published descriptor set, as an integrator gets it.
    let descriptors = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/jiuzhu.binpb");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/read_share_topic.py"
    );
    let group = format!("{ns}civil-affairs-reader");
    let read = |limit: &str, timeout_s: &str| {
        Command::new(&python)
            .arg(script)
            .arg(kafka_brokers())
            .arg(&topic)
            .arg(descriptors)
            .arg(limit)
            .arg(timeout_s)
            .env("JIUZHU_GROUP_ID", &group)
            .output()
    };
    let output = read("1", "30")?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap_or_default())?;
    assert_eq!(
        line["event_type"],
        "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged"
    );
    assert_eq!(line["agreement_version"], "sharing-2026.3");
    assert_eq!(line["event"]["reasons"][0], "depression_moderate");
    assert!(
        line["event"]["personId"]
            .as_str()
            .is_some_and(|p| p.starts_with("ps-"))
    );
    assert!(line["event"].get("planId").is_none(), "not agreed: {line}");
    assert!(!stdout.contains(&person), "Jiuzhu's own person id leaked");
    // The group committed its offset after handling: started again, it reads nothing twice.
    let again = read("1", "5")?;
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8(again.stdout)?,
        "",
        "read again after its offset was committed"
    );

    // The Node.js example reads the same, and commits its offsets too.
    let modules = tokio::task::spawn_blocking(|| {
        jiuzhu_tests::npm_packages("examples/node", "node-departments")
    })
    .await??;
    let node_script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/node/read_share_topic.js"
    );
    let node_group = format!("{ns}civil-affairs-node-reader");
    let read_in_node = |limit: &str, timeout_s: &str| {
        Command::new("node")
            .arg(node_script)
            .arg(kafka_brokers())
            .arg(&topic)
            .arg(descriptors)
            .arg(limit)
            .arg(timeout_s)
            .env("JIUZHU_GROUP_ID", &node_group)
            .env("NODE_PATH", &modules)
            .output()
    };
    let output = read_in_node("1", "60")?;
    let node_out = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{node_out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let node_line: serde_json::Value =
        serde_json::from_str(node_out.lines().next().unwrap_or_default())?;
    assert_eq!(node_line["event_id"], line["event_id"]);
    assert_eq!(node_line["agreement_version"], "sharing-2026.3");
    assert_eq!(node_line["event"]["personId"], line["event"]["personId"]);
    assert_eq!(node_line["event"]["reasons"][0], "depression_moderate");
    let again = read_in_node("1", "5")?;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        String::from_utf8(again.stdout)?,
        "",
        "Node.js read again after its offset was committed"
    );

    // The Rust example (examples/department-consumer) reads the same.
    let consumer = jiuzhu_testkit::binary_path("department-consumer")?;
    let output = tokio::process::Command::new(consumer)
        .args([
            "--brokers",
            &kafka_brokers(),
            "--department",
            "civil_affairs",
        ])
        .args(["--topic-prefix", &ns, "--max", "1", "--idle-seconds", "30"])
        .output()
        .await?;
    let rust_out = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rust_line: serde_json::Value =
        serde_json::from_str(rust_out.lines().next().unwrap_or_default())?;
    assert_eq!(rust_line["event_id"], line["event_id"]);
    assert_eq!(rust_line["event"]["personId"], line["event"]["personId"]);
    registry.running.stop().await;
    Ok(())
}
