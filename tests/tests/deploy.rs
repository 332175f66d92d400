//! The deployment files cannot drift from what they deploy: `deploy/Dockerfile`,
//! `deploy/compose.yaml` (with `deploy/compose/`) and `deploy/k8s/` (with its `simulator/`
//! overlay), checked as far as a machine without Docker or a cluster can. Every YAML document is
//! parsed; every reference (dependencies, volumes, files, ConfigMaps, Secrets and their keys,
//! autoscaling targets) must resolve; and each service's configuration, as compose or its
//! Deployment assembles it (the image's `default.toml`, the mounted `production.toml`, the
//! `JIUZHU__…` variables), is loaded by the services' own settings types, so that a misspelt key
//! or a bad value fails here instead of at start-up, and the ports, database, Kafka security and
//! certificates it names are checked against the files.
//!
//! Not covered: building the image, starting the containers, a cluster admitting the manifests
//! (the base images and registries are not reachable from CI), and the contents of secrets.
//! That the services create every documented topic on a real broker is `asyncapi.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, anyhow, bail, ensure};
use jiuzhu_config::{ConfigError, Layers, Validate};
use jiuzhu_runtime::Settings;
use serde::Deserialize;
use serde_json::{Map, Value as Json};

type TestResult = anyhow::Result<()>;

const DOCKERFILE: &str = "deploy/Dockerfile";
const DOCKERIGNORE: &str = ".dockerignore";
const COMPOSE: &str = "deploy/compose.yaml";
const K8S: &str = "deploy/k8s";
const K8S_SIMULATOR: &str = "deploy/k8s/simulator";
const SECRET_EXAMPLE: &str = "deploy/k8s/secret.example.yaml";
const DEFAULT_TOML: &str = "deploy/config/default.toml";
const ASYNCAPI: &str = "docs/asyncapi.json";
/// The Kafka client settings compose's services get, rendered by `DEV_SECRETS` with a password.
const COMPOSE_KAFKA_TEMPLATE: &str = "deploy/compose/production.toml.in";
const POSTGRES_INIT: &str = "deploy/compose/postgres-init.sh";
/// Writes compose's development-only secrets into `GENERATED`: the files compose mounts from
/// there are not in the repository (they must never be committed), so instead of existing they
/// must be written by this script, and git must ignore them.
const DEV_SECRETS: &str = "deploy/compose/dev-secrets.sh";
const GENERATED: &str = "compose/secrets/";

/// The services: name, gRPC port, metrics port.
const SERVICES: [(&str, u16, u16); 5] = [
    ("registry", 50051, 9101),
    ("clues", 50052, 9102),
    ("decisions", 50053, 9103),
    ("payments", 50054, 9104),
    ("followup", 50055, 9105),
];
/// The payment-provider simulator: not a production component.
const SIMULATOR: (&str, u16) = ("paysim", 50060);
/// The binaries the image must hold.
const DEPLOYED_BINARIES: [&str; 7] = [
    "jiuzhu-registry",
    "jiuzhu-clues",
    "jiuzhu-decisions",
    "jiuzhu-payments",
    "jiuzhu-followup",
    "jiuzhu-paysim",
    "jiuzhu",
];
/// Services that seal personal data with the vault: they refuse to start without its key.
const VAULT_USERS: [&str; 2] = ["registry", "clues"];

/// Secrets the Deployments use that the kustomization deliberately does not create: they hold
/// credentials and keys, which an installation makes from its own secret store, never from
/// files in this repository. Each is documented (with placeholders) in `SECRET_EXAMPLE`, which
/// no kustomization lists.
const EXTERNAL_SECRETS: [(&str, &str); 13] = [
    (
        "jiuzhu-master-key",
        "the vault master key wrapping every person's data key (registry, clues)",
    ),
    (
        "jiuzhu-kafka-ca",
        "the authority of the installation's Kafka brokers",
    ),
    (
        "jiuzhu-registry",
        "registry's database URL (password) and Kafka client settings (SASL password)",
    ),
    (
        "jiuzhu-clues",
        "clues' database URL (password) and Kafka client settings (SASL password)",
    ),
    (
        "jiuzhu-decisions",
        "decisions' database URL (password) and Kafka client settings (SASL password)",
    ),
    (
        "jiuzhu-payments",
        "payments' database URL (password) and Kafka client settings (SASL password)",
    ),
    (
        "jiuzhu-followup",
        "followup's database URL (password) and Kafka client settings (SASL password)",
    ),
    (
        "jiuzhu-registry-tls",
        "registry's mutual-TLS certificate and key",
    ),
    ("jiuzhu-clues-tls", "clues' mutual-TLS certificate and key"),
    (
        "jiuzhu-decisions-tls",
        "decisions' mutual-TLS certificate and key",
    ),
    (
        "jiuzhu-payments-tls",
        "payments' mutual-TLS certificate and key",
    ),
    (
        "jiuzhu-followup-tls",
        "followup's mutual-TLS certificate and key",
    ),
    (
        "jiuzhu-paysim-tls",
        "the simulator's mutual-TLS certificate and key (simulator overlay)",
    ),
];

// ---- reading the files ---------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(root().join(rel)).with_context(|| format!("cannot read {rel}"))
}

/// `a/b/../c` → `a/c`, for paths relative to the repository.
fn normalise(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Every document of a YAML file, with `<<` merge keys applied (compose uses them), as JSON.
fn yaml_documents(rel: &str) -> anyhow::Result<Vec<Json>> {
    let text = read(rel)?;
    let mut documents = Vec::new();
    for (n, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let mut value = serde_yaml_ng::Value::deserialize(document)
            .with_context(|| format!("{rel}: document {} is not valid YAML", n + 1))?;
        // One pass resolves one level: a merged mapping may bring its own `<<` (compose's
        // x-jiuzhu-service merges x-jiuzhu-image).
        while has_merge_key(&value) {
            value
                .apply_merge()
                .with_context(|| format!("{rel}: document {}: bad `<<` merge", n + 1))?;
        }
        if !value.is_null() {
            documents.push(serde_json::to_value(&value)?);
        }
    }
    Ok(documents)
}

fn has_merge_key(value: &serde_yaml_ng::Value) -> bool {
    match value {
        serde_yaml_ng::Value::Mapping(mapping) => mapping
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        serde_yaml_ng::Value::Sequence(sequence) => sequence.iter().any(has_merge_key),
        serde_yaml_ng::Value::Tagged(tagged) => has_merge_key(&tagged.value),
        _ => false,
    }
}

/// A scalar as text (YAML numbers and booleans included).
fn scalar(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        Json::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn items(value: &Json) -> impl Iterator<Item = &Json> {
    value.as_array().into_iter().flatten()
}

fn string_map(value: &Json) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v)))
        .collect()
}

/// `scheme://[user[:password]@]host[:port][/path][?query]`.
#[derive(Debug)]
struct Url {
    user: String,
    host: String,
    port: Option<u16>,
    path: String,
}

fn parse_url(url: &str) -> Option<Url> {
    let (_, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.split('?').next().unwrap_or_default().to_owned();
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (
            userinfo.split(':').next().unwrap_or_default().to_owned(),
            host_port,
        ),
        None => (String::new(), authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), Some(port.parse().ok()?)),
        None => (host_port.to_owned(), None),
    };
    Some(Url {
        user,
        host,
        port,
        path,
    })
}

// ---- configuration as the binaries load it -------------------------------------------------

/// Any section of a TOML file, as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
struct Raw(Json);

impl Validate for Raw {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The top-level tables of a TOML file, read with the services' own loader.
fn toml_tables(text: &str, what: &str) -> anyhow::Result<Map<String, Json>> {
    let layers = Layers::from_toml(text).with_context(|| format!("{what}: not valid TOML"))?;
    let mut tables = Map::new();
    let mut in_table = false;
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            in_table = true;
            let name = header
                .split(['.', ']'])
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches('"');
            if !name.is_empty() && !tables.contains_key(name) {
                let Raw(value) = layers
                    .section::<Raw>(name)
                    .with_context(|| format!("{what}: [{name}]"))?;
                tables.insert(name.to_owned(), value);
            }
        } else if !in_table && !line.is_empty() && !line.starts_with('#') {
            bail!("{what}: a key outside any [section] (`{line}`) is not a setting");
        }
    }
    Ok(tables)
}

fn deep_merge(base: &mut Map<String, Json>, over: Map<String, Json>) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Json::Object(base)), Json::Object(over)) => deep_merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set_path(table: &mut Map<String, Json>, path: &[String], value: Json) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut table = table;
    for key in parents {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| Json::Object(Map::new()));
        if !entry.is_object() {
            *entry = Json::Object(Map::new());
        }
        let Json::Object(inner) = entry else {
            return;
        };
        table = inner;
    }
    table.insert(last.clone(), value);
}

/// A variable's value typed as the loader types it (it parses booleans and numbers).
fn env_value(value: &str) -> Json {
    if let Ok(flag) = value.to_lowercase().parse::<bool>() {
        Json::Bool(flag)
    } else if let Ok(integer) = value.parse::<i64>() {
        Json::from(integer)
    } else if let Some(number) = value
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Json::Number(number)
    } else {
        Json::String(value.to_owned())
    }
}

fn toml_value(value: &Json) -> anyhow::Result<String> {
    Ok(match value {
        Json::String(_) | Json::Number(_) | Json::Bool(_) => serde_json::to_string(value)?,
        Json::Array(values) => {
            let values: anyhow::Result<Vec<String>> = values.iter().map(toml_value).collect();
            format!("[{}]", values?.join(", "))
        }
        Json::Null | Json::Object(_) => bail!("not a TOML value: {value}"),
    })
}

fn write_toml(out: &mut String, path: &[String], table: &Map<String, Json>) -> anyhow::Result<()> {
    if !path.is_empty() {
        let quoted: anyhow::Result<Vec<String>> =
            path.iter().map(|p| Ok(serde_json::to_string(p)?)).collect();
        writeln!(out, "[{}]", quoted?.join("."))?;
    }
    for (key, value) in table {
        if !value.is_object() && !value.is_null() {
            writeln!(
                out,
                "{} = {}",
                serde_json::to_string(key)?,
                toml_value(value)?
            )?;
        }
    }
    for (key, value) in table {
        if let Json::Object(inner) = value {
            let mut inner_path = path.to_vec();
            inner_path.push(key.clone());
            write_toml(out, &inner_path, inner)?;
        }
    }
    Ok(())
}

/// A service's settings as its binary assembles them: the image's `default.toml`, then the
/// environment's file (`$JIUZHU_ENV.toml`, `environment_file`), then `JIUZHU__SECTION__KEY`
/// variables, read by the service's own settings types (unknown keys and bad values are refused,
/// naming the key). Merged here rather than with `Layers::load`, which would mix in this test
/// process's own environment.
fn load_settings(
    service: &str,
    port: u16,
    environment_file: Option<&str>,
    env: &BTreeMap<String, String>,
    what: &str,
) -> anyhow::Result<Settings> {
    let mut merged = toml_tables(&read(DEFAULT_TOML)?, DEFAULT_TOML)?;
    match (env.get("JIUZHU_ENV"), environment_file) {
        (Some(name), Some(text)) => deep_merge(
            &mut merged,
            toml_tables(text, &format!("{what}: {name}.toml"))?,
        ),
        (Some(name), None) => bail!(
            "{what}: JIUZHU_ENV={name} but no {name}.toml is mounted in the configuration directory \
             (the service would refuse to start)"
        ),
        (None, _) => {}
    }
    for (key, value) in env {
        let Some(path) = key.strip_prefix("JIUZHU__") else {
            continue;
        };
        let path: Vec<String> = path.to_lowercase().split("__").map(str::to_owned).collect();
        ensure!(
            path.iter().all(|p| !p.is_empty() && !p.contains('.')),
            "{what}: variable {key}: a `.` or an empty part in a variable's name does not name a \
             setting (use the environment's file for librdkafka properties)"
        );
        set_path(&mut merged, &path, env_value(value));
    }
    let mut text = String::new();
    write_toml(&mut text, &[], &merged)?;
    let layers = Layers::from_toml(&text).with_context(|| format!("{what}: merged settings"))?;
    Settings::from_layers(&layers, service, port).map_err(|error| anyhow!("{what}: {error}"))
}

/// The configuration directory of the image (`ENV JIUZHU_CONFIG_DIR=` in the Dockerfile).
fn image_config_dir() -> anyhow::Result<String> {
    let dockerfile = Dockerfile::read()?;
    dockerfile
        .final_stage()
        .iter()
        .find_map(|line| {
            let rest = line.strip_prefix("ENV ")?;
            let (_, value) = rest
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == "JIUZHU_CONFIG_DIR")?;
            Some(value.trim_matches('"').trim_end_matches('/').to_owned())
        })
        .with_context(|| format!("{DOCKERFILE}: no ENV JIUZHU_CONFIG_DIR=… in the final stage"))
}

/// What every service's settings must say, whichever way it is deployed.
fn check_service_settings(
    what: &str,
    (service, port, metrics): (&str, u16, u16),
    settings: &Settings,
    env: &BTreeMap<String, String>,
) {
    let listen = settings.service.listen;
    assert!(
        listen.ip().is_unspecified() && listen.port() == port,
        "{what}: {service} must listen on all interfaces at port {port} (not {listen}): \
         on a loopback address nothing outside its container reaches it"
    );
    let metrics_listen = settings.service.metrics_listen;
    assert!(
        metrics_listen.is_some_and(|m: SocketAddr| m.ip().is_unspecified() && m.port() == metrics),
        "{what}: {service}'s metrics_listen must be 0.0.0.0:{metrics} (not {metrics_listen:?}): \
         the health checks and Prometheus use it"
    );
    let url = settings.service.database_url.expose();
    let own = format!("jiuzhu_{service}");
    let parsed = parse_url(url);
    assert!(
        parsed
            .as_ref()
            .is_some_and(|u| u.path == own && u.user == own),
        "{what}: {service}'s database URL must name its own database and role {own}, not `{}` as \
         `{}` (a service never uses another's database)",
        parsed.as_ref().map(|u| u.path.as_str()).unwrap_or_default(),
        parsed.as_ref().map(|u| u.user.as_str()).unwrap_or_default(),
    );
    for (other, _, _) in SERVICES.iter().filter(|(other, _, _)| *other != service) {
        let key = format!("JIUZHU__{}__DATABASE_URL", other.to_uppercase());
        assert!(
            !env.contains_key(&key),
            "{what}: {service} is given {key}: another service's database is none of its business"
        );
    }
    let kafka = &settings.kafka.properties;
    assert_eq!(
        kafka.get("security.protocol").map(String::as_str),
        Some("SASL_SSL"),
        "{what}: {service}'s Kafka client must use SASL_SSL (kafka.properties security.protocol)"
    );
    for key in ["sasl.mechanism", "sasl.username", "sasl.password"] {
        assert!(
            kafka.get(key).is_some_and(|v| !v.is_empty()),
            "{what}: {service}'s Kafka client settings lack `{key}`"
        );
    }
    if VAULT_USERS.contains(&service) {
        assert!(
            settings.vault.master_key_file.is_some() || settings.vault.master_key.is_some(),
            "{what}: {service} refuses to start without the vault master key"
        );
    }
    let registry = parse_url(&settings.peers.registry);
    assert!(
        registry
            .as_ref()
            .is_some_and(|u| u.host == "registry" && u.port == Some(SERVICES[0].1)),
        "{what}: {service}'s peers.registry must be https://registry:{}, not {}",
        SERVICES[0].1,
        settings.peers.registry
    );
}

// ---- the Dockerfile --------------------------------------------------------------------------

/// The Dockerfile's instructions (continuation lines joined, comments dropped), by stage.
struct Dockerfile {
    stages: Vec<Vec<String>>,
}

impl Dockerfile {
    fn read() -> anyhow::Result<Self> {
        let text = read(DOCKERFILE)?;
        let mut stages: Vec<Vec<String>> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    let instruction = std::mem::take(&mut current);
                    if instruction.starts_with("FROM ") {
                        stages.push(Vec::new());
                    }
                    match stages.last_mut() {
                        Some(stage) => stage.push(instruction),
                        None => bail!("{DOCKERFILE}: `{instruction}` before any FROM"),
                    }
                }
            }
        }
        ensure!(
            stages.len() >= 2,
            "{DOCKERFILE}: expected a build stage and a runtime stage"
        );
        Ok(Self { stages })
    }

    fn build_stage(&self) -> &[String] {
        self.stages.first().map(Vec::as_slice).unwrap_or_default()
    }

    fn final_stage(&self) -> &[String] {
        self.stages.last().map(Vec::as_slice).unwrap_or_default()
    }
}

/// The sources and destination of a `COPY` without `--from`.
fn copy_sources(instruction: &str) -> Option<(Vec<String>, String)> {
    let rest = instruction.strip_prefix("COPY ")?;
    if rest.contains("--from=") {
        return None;
    }
    let mut words: Vec<String> = rest
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .map(|w| w.trim_end_matches('/').to_owned())
        .collect();
    let destination = words.pop()?;
    Some((words, destination))
}

/// Every binary of the workspace: `[[bin]]` names, and Cargo's implicit ones (`src/main.rs`
/// named after the package, `src/bin/*.rs` after the file).
fn workspace_binaries() -> anyhow::Result<BTreeSet<String>> {
    let mut binaries = BTreeSet::new();
    for parent in ["crates", "services", "examples"] {
        for entry in std::fs::read_dir(root().join(parent))? {
            let dir = entry?.path();
            let manifest = dir.join("Cargo.toml");
            if !manifest.is_file() {
                continue;
            }
            let what = manifest.display().to_string();
            let layers = Layers::from_toml(&std::fs::read_to_string(&manifest)?)
                .with_context(|| what.clone())?;
            let Raw(package) = layers.section::<Raw>("package")?;
            let Raw(declared) = layers.section::<Raw>("bin")?;
            for bin in items(&declared) {
                if let Some(name) = bin["name"].as_str() {
                    binaries.insert(name.to_owned());
                }
            }
            let main_declared = items(&declared).any(|b| b["path"] == "src/main.rs");
            if dir.join("src/main.rs").is_file()
                && !main_declared
                && let Some(name) = package["name"].as_str()
            {
                binaries.insert(name.to_owned());
            }
            if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
                for entry in entries {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "rs")
                        && let Some(stem) = path.file_stem()
                    {
                        binaries.insert(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    Ok(binaries)
}

/// The Jiuzhu binaries a command runs: its program, or in a `sh -c`/`bash -c` script each
/// command word that starts with `jiuzhu`.
fn binaries_in(words: &[String]) -> Vec<String> {
    let Some(first) = words.first() else {
        return Vec::new();
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    if !matches!(program, "sh" | "bash") {
        return vec![program.to_owned()];
    }
    let script = words
        .iter()
        .position(|w| w == "-c")
        .and_then(|c| words.get(c + 1))
        .map(String::as_str)
        .unwrap_or_default();
    script
        .split(['\n', ';', '|', '&'])
        .filter_map(|command| command.split_whitespace().next())
        .filter(|word| word.starts_with("jiuzhu"))
        .map(str::to_owned)
        .collect()
}

/// The binaries the Dockerfile builds (`--bin`) and copies into the image.
fn image_binaries(dockerfile: &Dockerfile) -> BTreeSet<String> {
    let words: Vec<&str> = dockerfile
        .build_stage()
        .iter()
        .flat_map(|line| line.split_whitespace())
        .collect();
    let built: BTreeSet<&str> = words
        .windows(2)
        .filter(|pair| pair[0] == "--bin")
        .map(|pair| pair[1])
        .collect();
    built
        .into_iter()
        .filter(|bin| words.contains(&format!("target/release/{bin}").as_str()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_builds_every_deployed_binary_and_ships_policy_and_configuration() -> TestResult {
    let dockerfile = Dockerfile::read()?;
    let known = workspace_binaries()?;
    let in_image = image_binaries(&dockerfile);
    for binary in DEPLOYED_BINARIES {
        assert!(
            known.contains(binary),
            "{DOCKERFILE}: {binary} is no binary of the workspace"
        );
        assert!(
            in_image.contains(binary),
            "{DOCKERFILE}: {binary} is not built (`--bin {binary}`) and copied out of \
             target/release into the image"
        );
    }

    // What the build needs: every workspace member's manifest (cargo loads the whole
    // workspace), the contracts, and the policy files the services compile in.
    let build = dockerfile.build_stage();
    let copies: Vec<(usize, Vec<String>)> = build
        .iter()
        .enumerate()
        .filter_map(|(n, line)| copy_sources(line).map(|(sources, _)| (n, sources)))
        .collect();
    let copied_at = |path: &str| -> Option<usize> {
        copies
            .iter()
            .find(|(_, sources)| sources.iter().any(|s| s == path || s == "."))
            .map(|(n, _)| *n)
    };
    let members = Layers::from_toml(&read("Cargo.toml")?)?
        .section::<Raw>("workspace")?
        .0;
    let mut needed: BTreeSet<String> = items(&members["members"])
        .filter_map(Json::as_str)
        .filter_map(|m| m.split('/').next())
        .map(str::to_owned)
        .collect();
    needed.extend(["Cargo.toml", "Cargo.lock", "proto", "policy"].map(str::to_owned));
    let cargo_build = build
        .iter()
        .position(|line| line.contains("cargo build"))
        .context("deploy/Dockerfile: no `cargo build` in the build stage")?;
    for path in &needed {
        let at = copied_at(path);
        assert!(
            at.is_some_and(|n| n < cargo_build),
            "{DOCKERFILE}: the build stage must COPY {path} before `cargo build`"
        );
    }
    assert!(
        build.iter().any(|l| l.contains("--locked")),
        "{DOCKERFILE}: build with --locked (the image gets the versions Cargo.lock tested)"
    );

    // The runtime stage: configuration where JIUZHU_CONFIG_DIR says, the policy files for
    // reading, binaries from the build stage, a user that is not root, and no ENTRYPOINT (the
    // command picks the binary).
    let config_dir = image_config_dir()?;
    let runtime = dockerfile.final_stage();
    let runtime_copies: Vec<(Vec<String>, String)> =
        runtime.iter().filter_map(|l| copy_sources(l)).collect();
    assert!(
        runtime_copies.iter().any(|(sources, destination)| {
            sources.iter().any(|s| s == "deploy/config") && *destination == config_dir
        }),
        "{DOCKERFILE}: the image must COPY deploy/config/ to JIUZHU_CONFIG_DIR ({config_dir})"
    );
    assert!(
        runtime_copies
            .iter()
            .any(|(sources, _)| sources.iter().any(|s| s == "policy")),
        "{DOCKERFILE}: the image must ship policy/ (what the binaries were built with)"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=") && l.contains("/usr/local/bin")),
        "{DOCKERFILE}: the binaries must be copied onto the PATH (/usr/local/bin)"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .map(str::trim);
    assert!(
        user.is_some_and(|u| !matches!(u.split(':').next(), Some("root" | "0"))),
        "{DOCKERFILE}: the image must end on a non-root USER, not {user:?}"
    );
    assert!(
        !runtime.iter().any(|l| l.starts_with("ENTRYPOINT")),
        "{DOCKERFILE}: no ENTRYPOINT: one image for every binary, the command picks it"
    );

    // The build context: nothing the Dockerfile copies may be ignored; the development secrets
    // must be.
    let ignored: Vec<String> = read(DOCKERIGNORE)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_owned())
        .collect();
    for (sources, _) in dockerfile
        .stages
        .iter()
        .flatten()
        .filter_map(|l| copy_sources(l))
    {
        for source in sources {
            assert!(
                !ignored
                    .iter()
                    .any(|i| source == *i || source.starts_with(&format!("{i}/"))),
                "{DOCKERIGNORE}: ignores {source}, which {DOCKERFILE} copies"
            );
        }
    }
    for must in ["target", "deploy/compose/secrets"] {
        assert!(
            ignored.iter().any(|i| i == must),
            "{DOCKERIGNORE}: must ignore {must}/"
        );
    }
    Ok(())
}

// ---- compose ---------------------------------------------------------------------------------

fn compose() -> anyhow::Result<Json> {
    yaml_documents(COMPOSE)?
        .into_iter()
        .next()
        .with_context(|| format!("{COMPOSE}: empty"))
}

fn compose_service<'a>(doc: &'a Json, name: &str) -> anyhow::Result<&'a Json> {
    doc["services"]
        .get(name)
        .with_context(|| format!("{COMPOSE}: no service `{name}`"))
}

fn compose_env(service: &Json) -> BTreeMap<String, String> {
    match &service["environment"] {
        Json::Array(entries) => entries
            .iter()
            .filter_map(Json::as_str)
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        other => string_map(other),
    }
}

/// A command as words; a `sh -c` script split into its words too (for looking up flags).
fn tokens(value: &Json) -> Vec<String> {
    words(value)
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(str::to_owned)
        .collect()
}

fn words(value: &Json) -> Vec<String> {
    match value {
        Json::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        other => items(other).filter_map(scalar).collect(),
    }
}

/// A volume of a compose service: `source` is a named volume, a path (`./…`) or empty.
#[derive(Debug)]
struct Mount {
    source: String,
    target: String,
}

fn compose_mounts(service: &Json) -> Vec<Mount> {
    items(&service["volumes"])
        .filter_map(|volume| match volume {
            Json::String(short) => {
                let mut parts = short.split(':');
                match (parts.next(), parts.next()) {
                    (Some(source), Some(target)) => Some(Mount {
                        source: source.to_owned(),
                        target: target.to_owned(),
                    }),
                    (Some(target), None) => Some(Mount {
                        source: String::new(),
                        target: target.to_owned(),
                    }),
                    _ => None,
                }
            }
            long => Some(Mount {
                source: long["source"].as_str().unwrap_or_default().to_owned(),
                target: long["target"].as_str().unwrap_or_default().to_owned(),
            }),
        })
        .collect()
}

fn env_files(service: &Json) -> Vec<String> {
    match &service["env_file"] {
        Json::String(path) => vec![path.clone()],
        other => items(other)
            .filter_map(|f| f.as_str().or_else(|| f["path"].as_str()))
            .map(str::to_owned)
            .collect(),
    }
}

/// A path compose takes from the repository (relative to deploy/) must exist, unless it is one
/// of the development secrets, which dev-secrets.sh must write and git must ignore.
fn check_compose_path(what: &str, path: &str) -> TestResult {
    let rel = normalise(&format!("deploy/{path}"));
    let in_deploy = rel.strip_prefix("deploy/").unwrap_or(&rel);
    if let Some(generated) = in_deploy.strip_prefix(GENERATED) {
        let script = read(DEV_SECRETS)?;
        let name = generated.rsplit('/').next().unwrap_or(generated);
        let per_service = SERVICES.iter().any(|(s, _, _)| name == format!("{s}.env"))
            && script.contains("$service.env");
        assert!(
            script.contains(name) || per_service,
            "{what}: {path} is not in the repository and {DEV_SECRETS} does not write it"
        );
        assert!(
            read("deploy/compose/.gitignore")?
                .lines()
                .any(
                    |l| l.trim().trim_matches('/') == GENERATED.trim_matches('/')
                        || l.trim().trim_matches('/') == "secrets"
                ),
            "deploy/compose/.gitignore: must ignore {GENERATED} (development secrets)"
        );
    } else {
        assert!(
            root().join(&rel).exists(),
            "{what}: {path} does not exist (looked for {rel})"
        );
    }
    Ok(())
}

/// Whether a file the service reads at `path` is provided by one of its mounts.
fn compose_provides(service: &Json, path: &str) -> bool {
    compose_mounts(service).iter().any(|m| {
        path == m.target || path.starts_with(&format!("{}/", m.target.trim_end_matches('/')))
    })
}

fn is_jiuzhu_image(service: &Json) -> bool {
    service["image"]
        .as_str()
        .is_some_and(|image| image.starts_with("jiuzhu:"))
}

#[test]
fn compose_runs_every_service_and_everything_it_references_exists() -> TestResult {
    let doc = compose()?;
    let services = doc["services"]
        .as_object()
        .with_context(|| format!("{COMPOSE}: no services"))?;
    for name in SERVICES.iter().map(|s| s.0).chain([SIMULATOR.0]) {
        assert!(
            services.contains_key(name),
            "{COMPOSE}: service `{name}` is missing"
        );
    }
    let volumes: BTreeSet<&String> = doc["volumes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    let mut used_volumes = BTreeSet::new();
    for (name, service) in services {
        let what = format!("{COMPOSE}: service {name}");
        let dependencies: Vec<(String, Option<&str>)> = match &service["depends_on"] {
            Json::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v["condition"].as_str()))
                .collect(),
            other => items(other)
                .filter_map(Json::as_str)
                .map(|k| (k.to_owned(), None))
                .collect(),
        };
        for (dependency, condition) in dependencies {
            let Some(target) = services.get(&dependency) else {
                panic!("{what}: depends_on `{dependency}`, which is no service");
            };
            match condition {
                Some("service_healthy") => assert!(
                    target["healthcheck"].is_object() && target["healthcheck"]["disable"] != true,
                    "{what}: waits for `{dependency}` to be healthy, which has no healthcheck"
                ),
                Some("service_completed_successfully") => assert!(
                    target["restart"] == "no",
                    "{what}: waits for `{dependency}` to complete, which is not a one-shot job \
                     (restart: \"no\")"
                ),
                Some("service_started") | None => {}
                Some(other) => {
                    panic!("{what}: depends_on `{dependency}`: unknown condition {other}")
                }
            }
        }
        if let Some(other) = service["network_mode"]
            .as_str()
            .and_then(|n| n.strip_prefix("service:"))
        {
            assert!(
                services.contains_key(other),
                "{what}: network_mode names `{other}`, which is no service"
            );
        }
        for mount in compose_mounts(service) {
            if mount.source.starts_with('.') {
                check_compose_path(&format!("{what}: volume {}", mount.target), &mount.source)?;
            } else if mount.source.starts_with('/') {
                panic!(
                    "{what}: mounts the host's {}: only paths in the repository and named volumes",
                    mount.source
                );
            } else if !mount.source.is_empty() {
                assert!(
                    volumes.contains(&mount.source),
                    "{what}: volume `{}` is not declared under volumes:",
                    mount.source
                );
                used_volumes.insert(mount.source.clone());
            }
        }
        for file in env_files(service) {
            check_compose_path(&format!("{what}: env_file"), &file)?;
        }
        for kind in ["secrets", "configs"] {
            for reference in items(&service[kind]) {
                let name = reference
                    .as_str()
                    .or_else(|| reference["source"].as_str())
                    .unwrap_or_default();
                let declared = &doc[kind][name];
                assert!(
                    declared.is_object(),
                    "{what}: {kind} `{name}` is not declared under {kind}:"
                );
                if let Some(file) = declared["file"].as_str() {
                    check_compose_path(&format!("{COMPOSE}: {kind} {name}"), file)?;
                }
            }
        }
        if !service["build"].is_null() {
            let context = service["build"]["context"].as_str().unwrap_or(".");
            let dockerfile = service["build"]["dockerfile"]
                .as_str()
                .unwrap_or("Dockerfile");
            check_compose_path(
                &format!("{what}: build"),
                &format!("{context}/{dockerfile}"),
            )?;
        }
    }
    for volume in &volumes {
        assert!(
            used_volumes.contains(volume.as_str()),
            "{COMPOSE}: volume `{volume}` is declared but no service uses it"
        );
    }
    for (name, _, _) in SERVICES {
        let service = compose_service(&doc, name)?;
        assert!(
            service["healthcheck"].is_object(),
            "{COMPOSE}: service {name} has no healthcheck"
        );
        assert!(
            service["restart"].is_string() && service["restart"] != "no",
            "{COMPOSE}: service {name} must be restarted when it fails"
        );
        assert!(
            is_jiuzhu_image(service),
            "{COMPOSE}: service {name} must run the image of deploy/Dockerfile (jiuzhu:…)"
        );
    }
    Ok(())
}

/// Listener name → (host, port), from `NAME://host:port,…`.
fn listeners(text: &str) -> BTreeMap<String, (String, u16)> {
    text.split(',')
        .filter_map(|l| {
            let (name, address) = l.trim().split_once("://")?;
            let (host, port) = address.rsplit_once(':')?;
            Some((name.to_owned(), (host.to_owned(), port.parse().ok()?)))
        })
        .collect()
}

#[test]
fn compose_kafka_runs_kraft_with_sasl_ssl_and_the_services_use_it() -> TestResult {
    let doc = compose()?;
    let services = doc["services"]
        .as_object()
        .with_context(|| format!("{COMPOSE}: no services"))?;
    let (kafka_name, kafka) = services
        .iter()
        .find(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("apache/kafka:"))
        })
        .with_context(|| format!("{COMPOSE}: no apache/kafka service"))?;
    let what = format!("{COMPOSE}: service {kafka_name}");
    let env = compose_env(kafka);
    let get = |key: &str| env.get(key).cloned().unwrap_or_default();

    let roles: BTreeSet<&str> = env
        .get("KAFKA_PROCESS_ROLES")
        .map(|r| r.split(',').map(str::trim).collect())
        .unwrap_or_default();
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "{what}: KAFKA_PROCESS_ROLES must make the node broker and controller (KRaft), not {roles:?}"
    );
    for key in [
        "CLUSTER_ID",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
    ] {
        assert!(!get(key).is_empty(), "{what}: KRaft needs {key}");
    }

    let protocols: BTreeMap<String, String> = get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        .split(',')
        .filter_map(|p| p.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let protocol = |name: &str| {
        protocols
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    };
    let bound = listeners(&get("KAFKA_LISTENERS"));
    let advertised = listeners(&get("KAFKA_ADVERTISED_LISTENERS"));
    let secure: Vec<&String> = bound
        .keys()
        .filter(|name| protocol(name) == "SASL_SSL")
        .collect();
    assert!(
        !secure.is_empty(),
        "{what}: KAFKA_LISTENERS has no SASL_SSL listener"
    );
    for (name, (host, _)) in &bound {
        if protocol(name) != "SASL_SSL" {
            assert!(
                host == "127.0.0.1" || host == "localhost",
                "{what}: listener {name} ({}) must be bound to the loopback: only SASL_SSL may be \
                 reachable from other containers",
                protocol(name)
            );
        }
    }
    let brokers: BTreeSet<String> = secure
        .iter()
        .filter_map(|name| advertised.get(*name))
        .map(|(host, port)| format!("{host}:{port}"))
        .collect();
    for broker in &brokers {
        let host = broker.split(':').next().unwrap_or_default();
        assert!(
            host == kafka_name,
            "{what}: the SASL_SSL listener is advertised as {broker}; other containers reach the \
             broker as {kafka_name}"
        );
    }
    let mechanisms: BTreeSet<String> = get("KAFKA_SASL_ENABLED_MECHANISMS")
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect();
    let jaas = get("KAFKA_OPTS")
        .split_whitespace()
        .find_map(|o| o.strip_prefix("-Djava.security.auth.login.config="))
        .map(str::to_owned)
        .with_context(|| format!("{what}: KAFKA_OPTS names no JAAS file"))?;
    assert!(
        compose_provides(kafka, &jaas),
        "{what}: the JAAS file {jaas} is not mounted"
    );
    for key in [
        "KAFKA_SSL_KEYSTORE_FILENAME",
        "KAFKA_SSL_KEYSTORE_CREDENTIALS",
        "KAFKA_SSL_KEY_CREDENTIALS",
    ] {
        // The apache/kafka image reads these files from /etc/kafka/secrets.
        let file = format!("/etc/kafka/secrets/{}", get(key));
        assert!(
            !get(key).is_empty() && compose_provides(kafka, &file),
            "{what}: {key}: {file} is not mounted"
        );
    }
    assert_eq!(
        get("KAFKA_AUTO_CREATE_TOPICS_ENABLE"),
        "false",
        "{what}: the services provision their topics; implicit creation would hide a topic \
         nobody provisions (KAFKA_AUTO_CREATE_TOPICS_ENABLE=false)"
    );

    // The services' side: the template of their production.toml.
    let template = read(COMPOSE_KAFKA_TEMPLATE)?;
    let tables = toml_tables(&template, COMPOSE_KAFKA_TEMPLATE)?;
    let properties = string_map(&tables["kafka"]["properties"]);
    let property = |key: &str| properties.get(key).cloned().unwrap_or_default();
    assert_eq!(
        property("security.protocol"),
        "SASL_SSL",
        "{COMPOSE_KAFKA_TEMPLATE}: security.protocol"
    );
    assert!(
        mechanisms.contains(&property("sasl.mechanism")),
        "{COMPOSE_KAFKA_TEMPLATE}: sasl.mechanism {} is not enabled on the broker ({mechanisms:?})",
        property("sasl.mechanism")
    );
    assert!(
        read(DEV_SECRETS)?.contains("production.toml.in"),
        "{DEV_SECRETS}: must render the services' production.toml from {COMPOSE_KAFKA_TEMPLATE}"
    );
    // The user the services log in as is created, for that mechanism, by a job.
    let username = property("sasl.username");
    let mechanism = property("sasl.mechanism");
    let creates_user = services.values().any(|s| {
        let command: Vec<String> = tokens(&s["entrypoint"])
            .into_iter()
            .chain(tokens(&s["command"]))
            .collect();
        command.iter().any(|w| w.ends_with("kafka-configs.sh"))
            && flag(&command, "entity-type").as_deref() == Some("users")
            && flag(&command, "entity-name").as_deref() == Some(username.as_str())
            && flag(&command, "add-config")
                .is_some_and(|c| c.trim_matches('"').starts_with(&format!("{mechanism}=")))
    });
    assert!(
        creates_user,
        "{COMPOSE}: no job creates the SCRAM user `{username}` the services log in as"
    );

    let config_dir = image_config_dir()?;
    for (name, _, _) in SERVICES {
        let service = compose_service(&doc, name)?;
        let env = compose_env(service);
        let what = format!("{COMPOSE}: service {name}");
        let brokers_used = env
            .get("JIUZHU__KAFKA__BROKERS")
            .cloned()
            .unwrap_or_default();
        assert!(
            brokers_used.split(',').all(|b| brokers.contains(b.trim())),
            "{what}: JIUZHU__KAFKA__BROKERS={brokers_used} is not the broker's SASL_SSL \
             listener ({brokers:?})"
        );
        let environment = env.get("JIUZHU_ENV").cloned().unwrap_or_default();
        let file = format!("{config_dir}/{environment}.toml");
        assert!(
            !environment.is_empty()
                && compose_mounts(service).iter().any(
                    |m| m.target == file && m.source == format!("./{GENERATED}production.toml")
                ),
            "{what}: the Kafka client settings must be mounted as {file} from \
             ./{GENERATED}production.toml and selected with JIUZHU_ENV"
        );
    }
    Ok(())
}

/// `--flag=value` or `--flag value` in a command.
fn flag(words: &[String], name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    words.iter().enumerate().find_map(|(n, w)| {
        w.strip_prefix(&prefix).map(str::to_owned).or_else(|| {
            (w == &format!("--{name}"))
                .then(|| words.get(n + 1).cloned())
                .flatten()
        })
    })
}

#[test]
fn compose_services_get_valid_settings_for_their_own_database_and_peers() -> TestResult {
    let doc = compose()?;
    let services = doc["services"]
        .as_object()
        .with_context(|| format!("{COMPOSE}: no services"))?;
    let template = read(COMPOSE_KAFKA_TEMPLATE)?;
    let init = read(POSTGRES_INIT)?;
    // The job making the development certificates, and the volume it writes them to.
    let certs_job = services
        .values()
        .find(|s| tokens(&s["command"]).join(" ").contains("jiuzhu dev certs"));
    let certs_out = certs_job
        .and_then(|s| flag(&tokens(&s["command"]), "out"))
        .with_context(|| format!("{COMPOSE}: no job runs `jiuzhu dev certs --out …`"))?;
    let certs_volume = certs_job
        .and_then(|s| {
            compose_mounts(s)
                .into_iter()
                .find(|m| m.target == certs_out)
        })
        .map(|m| m.source)
        .with_context(|| {
            format!("{COMPOSE}: the certs job writes {certs_out}, which is no volume")
        })?;

    for (name, port, metrics) in SERVICES {
        let service = compose_service(&doc, name)?;
        let what = format!("{COMPOSE}: service {name}");
        let env = compose_env(service);
        let settings = load_settings(name, port, Some(&template), &env, &what)?;
        check_service_settings(&what, (name, port, metrics), &settings, &env);

        let health = words(&service["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains(&format!("/dev/tcp/127.0.0.1/{metrics}"))
                && health.contains("GET /metrics"),
            "{what}: the healthcheck must ask GET /metrics on port {metrics}"
        );
        let url = parse_url(settings.service.database_url.expose());
        let host = url.as_ref().map(|u| u.host.clone()).unwrap_or_default();
        assert!(
            services.contains_key(&host),
            "{what}: the database host `{host}` is no service"
        );
        assert!(
            init.lines()
                .any(|l| l.trim_start().starts_with("for service in") && l.contains(name)),
            "{POSTGRES_INIT}: does not create {name}'s database and role"
        );
        assert!(
            env_files(service)
                .iter()
                .any(|f| f.ends_with(&format!("{GENERATED}{name}.env"))),
            "{what}: its database password (PGPASSWORD) must come from {GENERATED}{name}.env"
        );
        for (file, setting) in [
            (
                settings.kafka.properties.get("ssl.ca.location").cloned(),
                "kafka.properties ssl.ca.location",
            ),
            (
                settings
                    .vault
                    .master_key_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
                "vault.master_key_file",
            ),
        ] {
            if let Some(file) = file {
                assert!(
                    compose_provides(service, &file),
                    "{what}: {setting} {file} is not mounted"
                );
            }
        }
        let tls_dir = settings.tls.dir.display().to_string();
        assert!(
            compose_mounts(service)
                .iter()
                .any(|m| m.target == tls_dir && m.source == certs_volume),
            "{what}: [tls] dir {tls_dir} must be the `{certs_volume}` volume the certs job writes"
        );
        for (setting, url) in [
            ("peers.registry", &settings.peers.registry),
            ("provider.endpoint", &settings.provider.endpoint),
            ("telemetry.otlp_endpoint", &settings.telemetry.otlp_endpoint),
        ] {
            let host = parse_url(url).map(|u| u.host).unwrap_or_default();
            assert!(
                url.is_empty() || services.contains_key(&host),
                "{what}: {setting} {url}: `{host}` is no service"
            );
        }
        // The development certificates are valid for a fixed list of host names.
        for url in [&settings.peers.registry, &settings.provider.endpoint] {
            let host = parse_url(url).map(|u| u.host).unwrap_or_default();
            assert!(
                jiuzhu_access::dev::HOSTS.contains(&host.as_str()),
                "{what}: {url}: the development certificates are not valid for `{host}`"
            );
        }
    }

    let payments = load_settings(
        "payments",
        SERVICES[3].1,
        Some(&template),
        &compose_env(compose_service(&doc, "payments")?),
        COMPOSE,
    )?;
    let provider = parse_url(&payments.provider.endpoint);
    assert!(
        provider
            .as_ref()
            .is_some_and(|u| u.host == SIMULATOR.0 && u.port == Some(SIMULATOR.1)),
        "{COMPOSE}: payments must pay through the simulator at {}:{}, not {}",
        SIMULATOR.0,
        SIMULATOR.1,
        payments.provider.endpoint
    );
    let paysim = compose_service(&doc, SIMULATOR.0)?;
    check_simulator(
        &format!("{COMPOSE}: service {}", SIMULATOR.0),
        &words(&paysim["command"]),
        |dir| {
            compose_mounts(paysim)
                .iter()
                .any(|m| m.target == dir && m.source == certs_volume)
        },
    );
    Ok(())
}

/// The simulator's command: where it listens, whom it notifies, where its certificate is.
fn check_simulator(what: &str, command: &[String], tls_dir_mounted: impl Fn(&str) -> bool) {
    let listen: Option<SocketAddr> = flag(command, "listen").and_then(|l| l.parse().ok());
    assert!(
        listen.is_some_and(|l| l.ip().is_unspecified() && l.port() == SIMULATOR.1),
        "{what}: --listen must be 0.0.0.0:{}, not {listen:?}",
        SIMULATOR.1
    );
    let notify = flag(command, "notify").unwrap_or_default();
    assert!(
        parse_url(&notify).is_some_and(|u| u.host == "payments" && u.port == Some(SERVICES[3].1)),
        "{what}: --notify must be payments' API (https://payments:{}), not `{notify}`",
        SERVICES[3].1
    );
    let tls_dir = flag(command, "tls-dir").unwrap_or_default();
    assert!(
        tls_dir_mounted(&tls_dir),
        "{what}: --tls-dir `{tls_dir}` is not where its certificate is mounted"
    );
}

// ---- Kubernetes ------------------------------------------------------------------------------

/// A kustomization's resources (recursively through bases), each document with its file.
struct Kustomized {
    kustomization: Json,
    documents: Vec<(String, Json)>,
}

fn kustomize(dir: &str) -> anyhow::Result<Kustomized> {
    let file = format!("{dir}/kustomization.yaml");
    let kustomization = yaml_documents(&file)?
        .into_iter()
        .next()
        .with_context(|| format!("{file}: empty"))?;
    let mut documents = Vec::new();
    for resource in items(&kustomization["resources"]).filter_map(Json::as_str) {
        let path = normalise(&format!("{dir}/{resource}"));
        if root().join(&path).join("kustomization.yaml").is_file() {
            documents.extend(kustomize(&path)?.documents);
        } else if root().join(&path).is_file() {
            for document in yaml_documents(&path)? {
                documents.push((path.clone(), document));
            }
        } else {
            bail!("{file}: resource {resource} does not exist ({path})");
        }
    }
    // JSON-patch `replace`/`add` of ConfigMap data: what the simulator overlay does.
    for patch in items(&kustomization["patches"]) {
        let kind = patch["target"]["kind"].as_str().unwrap_or_default();
        let name = patch["target"]["name"].as_str().unwrap_or_default();
        let operations: Vec<Json> =
            serde_yaml_ng::from_str(patch["patch"].as_str().unwrap_or("[]"))
                .with_context(|| format!("{file}: patch of {kind} {name}"))?;
        let target = documents
            .iter_mut()
            .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
            .map(|(_, d)| d)
            .with_context(|| format!("{file}: patches {kind} {name}, which no resource defines"))?;
        for operation in operations {
            let op = operation["op"].as_str().unwrap_or_default();
            let path = operation["path"].as_str().unwrap_or_default();
            let Some(key) = path.strip_prefix("/data/") else {
                bail!("{file}: patch path {path}: this test applies /data/<key> only");
            };
            let data = target["data"]
                .as_object_mut()
                .with_context(|| format!("{file}: {kind} {name} has no data"))?;
            match op {
                "replace" => {
                    ensure!(
                        data.contains_key(key),
                        "{file}: replaces {path} in {kind} {name}, which has no such key"
                    );
                    data.insert(key.to_owned(), operation["value"].clone());
                }
                "add" => {
                    data.insert(key.to_owned(), operation["value"].clone());
                }
                other => bail!("{file}: patch op {other}: this test applies replace and add"),
            }
        }
    }
    Ok(Kustomized {
        kustomization,
        documents,
    })
}

fn kind<'a>(documents: &'a [(String, Json)], kind: &str) -> Vec<(&'a str, &'a Json)> {
    documents
        .iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(file, d)| (file.as_str(), d))
        .collect()
}

fn named<'a>(
    documents: &'a [(String, Json)],
    wanted: &str,
    name: &str,
) -> Option<(&'a str, &'a Json)> {
    kind(documents, wanted)
        .into_iter()
        .find(|(_, d)| d["metadata"]["name"] == name)
}

fn secret_example() -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    Ok(yaml_documents(SECRET_EXAMPLE)?
        .iter()
        .filter(|d| d["kind"] == "Secret")
        .filter_map(|d| {
            let name = d["metadata"]["name"].as_str()?.to_owned();
            let mut data = string_map(&d["stringData"]);
            data.extend(string_map(&d["data"]));
            Some((name, data))
        })
        .collect())
}

/// All containers of a Deployment: init containers first.
fn containers(deployment: &Json) -> Vec<&Json> {
    let spec = &deployment["spec"]["template"]["spec"];
    items(&spec["initContainers"])
        .chain(items(&spec["containers"]))
        .collect()
}

/// What a container's environment holds: ConfigMaps (envFrom), then its own variables, with
/// Secret values taken from the documented example.
fn k8s_env(
    container: &Json,
    documents: &[(String, Json)],
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in items(&container["envFrom"]) {
        if let Some(name) = source["configMapRef"]["name"].as_str()
            && let Some((_, map)) = named(documents, "ConfigMap", name)
        {
            env.extend(string_map(&map["data"]));
        }
        if let Some(name) = source["secretRef"]["name"].as_str()
            && let Some(data) = secrets.get(name)
        {
            env.extend(data.clone());
        }
    }
    for variable in items(&container["env"]) {
        let name = variable["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(value) = scalar(&variable["value"]) {
            Some(value)
        } else if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
            let secret = reference
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let key = reference
                .get("key")
                .and_then(Json::as_str)
                .unwrap_or_default();
            secrets.get(secret).and_then(|d| d.get(key)).cloned()
        } else if let Some(reference) = variable["valueFrom"]["configMapKeyRef"].as_object() {
            let map = reference
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let key = reference
                .get("key")
                .and_then(Json::as_str)
                .unwrap_or_default();
            named(documents, "ConfigMap", map).and_then(|(_, m)| scalar(&m["data"][key]))
        } else {
            None
        };
        if let Some(value) = value {
            env.insert(name, value);
        }
    }
    env
}

/// The text of the file a container sees at `path`, from its Secret or ConfigMap volumes
/// (Secrets as documented in the example), or why it sees none.
fn k8s_file(
    deployment: &Json,
    container: &Json,
    path: &str,
    documents: &[(String, Json)],
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<String, String> {
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    for mount in items(&container["volumeMounts"]) {
        let mount_path = mount["mountPath"].as_str().unwrap_or_default();
        let file = match mount["subPath"].as_str() {
            Some(sub) if path == mount_path => sub.to_owned(),
            Some(_) => continue,
            None => match path.strip_prefix(&format!("{}/", mount_path.trim_end_matches('/'))) {
                Some(relative) => relative.to_owned(),
                None => continue,
            },
        };
        let volume_name = mount["name"].as_str().unwrap_or_default();
        let Some(volume) = items(volumes).find(|v| v["name"] == volume_name) else {
            return Err(format!("volume `{volume_name}` is not declared"));
        };
        let (data, source) = if let Some(secret) = volume["secret"]["secretName"].as_str() {
            (secrets.get(secret).cloned(), format!("Secret {secret}"))
        } else if let Some(map) = volume["configMap"]["name"].as_str() {
            (
                named(documents, "ConfigMap", map).map(|(_, m)| string_map(&m["data"])),
                format!("ConfigMap {map}"),
            )
        } else {
            return Err(format!(
                "volume `{volume_name}` is neither a Secret nor a ConfigMap"
            ));
        };
        let data = data.ok_or_else(|| format!("{source} is not defined"))?;
        let listed = &volume["secret"]["items"];
        let listed = if listed.is_array() {
            listed
        } else {
            &volume["configMap"]["items"]
        };
        let key = if listed.is_array() {
            items(listed)
                .find(|i| i["path"] == file.as_str())
                .and_then(|i| i["key"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!("{source} is mounted with items that do not include {file}")
                })?
        } else {
            file
        };
        return data
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("{source} has no key `{key}`"));
    }
    Err("no volume is mounted there".to_owned())
}

fn container_port(container: &Json, port: &Json) -> Option<u16> {
    match port {
        Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Json::String(name) => items(&container["ports"])
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

fn selector_matches(selector: &Json, labels: &Json) -> bool {
    let wanted = string_map(&selector["matchLabels"]);
    let labels = string_map(labels);
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_kustomizations_list_every_manifest() -> TestResult {
    for dir in [K8S, K8S_SIMULATOR] {
        let file = format!("{dir}/kustomization.yaml");
        let kustomized = kustomize(dir)?;
        let listed: BTreeSet<String> = items(&kustomized.kustomization["resources"])
            .filter_map(Json::as_str)
            .map(|r| normalise(&format!("{dir}/{r}")))
            .collect();
        for entry in std::fs::read_dir(root().join(dir))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel = format!("{dir}/{name}");
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) || name == "kustomization.yaml"
            {
                continue;
            }
            if rel == SECRET_EXAMPLE {
                assert!(
                    !listed.contains(&rel),
                    "{file}: must not list {SECRET_EXAMPLE}: it is documentation with placeholders"
                );
            } else {
                assert!(listed.contains(&rel), "{file}: does not list {rel}");
            }
        }
        let mut seen = BTreeSet::new();
        for (source, document) in &kustomized.documents {
            let kind = document["kind"].as_str().unwrap_or_default();
            let name = document["metadata"]["name"].as_str().unwrap_or_default();
            assert!(
                document["apiVersion"].is_string() && !kind.is_empty() && !name.is_empty(),
                "{source}: a document without apiVersion, kind or metadata.name"
            );
            assert!(
                seen.insert((kind.to_owned(), name.to_owned())),
                "{file}: {kind} {name} is defined twice"
            );
            assert!(
                kind != "Secret",
                "{source}: defines Secret {name}: secrets come from the installation's secret \
                 store, never from this repository ({SECRET_EXAMPLE} documents them)"
            );
        }
    }
    let overlay = kustomize(K8S_SIMULATOR)?;
    assert!(
        items(&overlay.kustomization["resources"]).any(|r| normalise(&format!(
            "{K8S_SIMULATOR}/{}",
            r.as_str().unwrap_or_default()
        )) == K8S),
        "{K8S_SIMULATOR}/kustomization.yaml: the simulator overlay must build on the base"
    );
    Ok(())
}

#[test]
fn kubernetes_workloads_have_probes_resources_and_run_as_non_root() -> TestResult {
    let base = kustomize(K8S)?;
    let overlay = kustomize(K8S_SIMULATOR)?;
    for (file, deployment) in kind(&overlay.documents, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{file}: Deployment {name}");
        let pod = &deployment["spec"]["template"]["spec"];
        assert!(
            selector_matches(
                &deployment["spec"]["selector"],
                &deployment["spec"]["template"]["metadata"]["labels"]
            ),
            "{what}: the selector does not match the pod's labels"
        );
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{what}: the services never call the Kubernetes API: no service account token"
        );
        let volumes: BTreeSet<&str> = items(&pod["volumes"])
            .filter_map(|v| v["name"].as_str())
            .collect();
        for container in containers(deployment) {
            let cname = container["name"].as_str().unwrap_or_default();
            let what = format!("{what}: container {cname}");
            let non_root = container["securityContext"]["runAsNonRoot"] == true
                || pod["securityContext"]["runAsNonRoot"] == true;
            let user = container["securityContext"]["runAsUser"]
                .as_u64()
                .or_else(|| pod["securityContext"]["runAsUser"].as_u64());
            assert!(
                non_root && user != Some(0),
                "{what}: must run as non-root (runAsNonRoot: true)"
            );
            let security = &container["securityContext"];
            assert!(
                security["allowPrivilegeEscalation"] == false
                    && security["readOnlyRootFilesystem"] == true,
                "{what}: needs allowPrivilegeEscalation: false and readOnlyRootFilesystem: true"
            );
            for key in ["cpu", "memory"] {
                assert!(
                    scalar(&container["resources"]["requests"][key]).is_some(),
                    "{what}: no resources.requests.{key}"
                );
            }
            assert!(
                scalar(&container["resources"]["limits"]["memory"]).is_some(),
                "{what}: no resources.limits.memory"
            );
            for mount in items(&container["volumeMounts"]) {
                let volume = mount["name"].as_str().unwrap_or_default();
                assert!(
                    volumes.contains(volume),
                    "{what}: mounts volume `{volume}`, which the pod does not declare"
                );
            }
        }
        for container in items(&pod["containers"]) {
            let cname = container["name"].as_str().unwrap_or_default();
            let what = format!("{what}: container {cname}");
            for probe in ["readinessProbe", "livenessProbe"] {
                let spec = &container[probe];
                assert!(spec.is_object(), "{what}: no {probe}");
                // The APIs take mutual TLS only: the kubelet's gRPC probe presents no client
                // certificate and would fail the handshake, so the pod would never be ready.
                assert!(
                    spec["grpc"].is_null(),
                    "{what}: {probe} uses a native gRPC probe, which cannot pass mutual TLS"
                );
                let port = if spec["httpGet"].is_object() {
                    &spec["httpGet"]["port"]
                } else {
                    &spec["tcpSocket"]["port"]
                };
                assert!(
                    container_port(container, port).is_some(),
                    "{what}: {probe} probes port {port}, which the container does not declare"
                );
            }
        }
    }

    for (name, port, _) in SERVICES {
        let (file, deployment) = named(&base.documents, "Deployment", name)
            .with_context(|| format!("{K8S}: no Deployment {name}"))?;
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let (service_file, service) = named(&base.documents, "Service", name)
            .with_context(|| format!("{K8S}: no Service {name}"))?;
        assert!(
            selector_matches(&json_selector(&service["spec"]["selector"]), labels),
            "{service_file}: Service {name} does not select Deployment {name}'s pods"
        );
        assert!(
            items(&service["spec"]["ports"]).any(|p| p["port"] == port),
            "{service_file}: Service {name} does not expose port {port}"
        );
        assert!(
            kind(&base.documents, "PodDisruptionBudget")
                .iter()
                .any(|(_, pdb)| selector_matches(&pdb["spec"]["selector"], labels)),
            "{file}: no PodDisruptionBudget covers {name}"
        );
    }
    let (file, paysim) = named(&overlay.documents, "Deployment", SIMULATOR.0)
        .with_context(|| format!("{K8S_SIMULATOR}: no Deployment {}", SIMULATOR.0))?;
    assert!(
        named(&base.documents, "Deployment", SIMULATOR.0).is_none(),
        "{K8S}: the simulator must not be in the production base (only in {K8S_SIMULATOR})"
    );
    assert_eq!(
        paysim["metadata"]["labels"]["jiuzhu/non-production"], "true",
        "{file}: the simulator must be labelled jiuzhu/non-production"
    );
    Ok(())
}

/// A Service's selector (a plain map) as a `matchLabels` selector.
fn json_selector(selector: &Json) -> Json {
    serde_json::json!({ "matchLabels": selector })
}

#[test]
fn kubernetes_configmaps_and_secrets_referenced_exist() -> TestResult {
    let overlay = kustomize(K8S_SIMULATOR)?;
    let examples = secret_example()?;
    let base_files: BTreeSet<String> = items(&kustomize(K8S)?.kustomization["resources"])
        .filter_map(Json::as_str)
        .map(|r| normalise(&format!("{K8S}/{r}")))
        .collect();
    assert!(
        !base_files.contains(SECRET_EXAMPLE),
        "{K8S}/kustomization.yaml: must not list {SECRET_EXAMPLE}"
    );
    let external: BTreeMap<&str, &str> = EXTERNAL_SECRETS.into_iter().collect();
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for (file, deployment) in kind(&overlay.documents, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{file}: Deployment {name}");
        let pod = &deployment["spec"]["template"]["spec"];
        // (Secret or ConfigMap, name, key if one is named)
        let mut uses: Vec<(&str, String, Option<String>)> = Vec::new();
        for container in containers(deployment) {
            for source in items(&container["envFrom"]) {
                if let Some(map) = source["configMapRef"]["name"].as_str() {
                    uses.push(("ConfigMap", map.to_owned(), None));
                }
                if let Some(secret) = source["secretRef"]["name"].as_str() {
                    uses.push(("Secret", secret.to_owned(), None));
                }
            }
            for variable in items(&container["env"]) {
                for (kind, reference) in [
                    ("Secret", &variable["valueFrom"]["secretKeyRef"]),
                    ("ConfigMap", &variable["valueFrom"]["configMapKeyRef"]),
                ] {
                    if let Some(target) = reference["name"].as_str() {
                        uses.push((
                            kind,
                            target.to_owned(),
                            reference["key"].as_str().map(str::to_owned),
                        ));
                    }
                }
            }
        }
        for volume in items(&pod["volumes"]) {
            for (kind, target, listed) in [
                (
                    "Secret",
                    &volume["secret"]["secretName"],
                    &volume["secret"]["items"],
                ),
                (
                    "ConfigMap",
                    &volume["configMap"]["name"],
                    &volume["configMap"]["items"],
                ),
            ] {
                if let Some(target) = target.as_str() {
                    uses.push((kind, target.to_owned(), None));
                    for item in items(listed) {
                        uses.push((
                            kind,
                            target.to_owned(),
                            item["key"].as_str().map(str::to_owned),
                        ));
                    }
                }
            }
        }
        for (kind, target, key) in uses {
            if kind == "ConfigMap" {
                let map = named(&overlay.documents, "ConfigMap", &target);
                assert!(
                    map.is_some(),
                    "{what}: ConfigMap {target} is not in the kustomization"
                );
                if let (Some((map_file, map)), Some(key)) = (map, &key) {
                    assert!(
                        !map["data"][key.as_str()].is_null(),
                        "{map_file}: ConfigMap {target} has no key {key} ({what} uses it)"
                    );
                }
                continue;
            }
            assert!(
                external.contains_key(target.as_str()),
                "{what}: Secret {target} is neither created by the kustomization nor one of the \
                 documented external secrets (EXTERNAL_SECRETS in tests/tests/deploy.rs, and \
                 {SECRET_EXAMPLE})"
            );
            let example = examples.get(&target);
            assert!(
                example.is_some(),
                "{SECRET_EXAMPLE}: does not document Secret {target} ({what} uses it)"
            );
            if let (Some(example), Some(key)) = (example, &key) {
                assert!(
                    example.contains_key(key),
                    "{SECRET_EXAMPLE}: Secret {target} has no key {key} ({what} uses it)"
                );
            }
            referenced.insert(target);
        }
    }
    for (secret, why) in EXTERNAL_SECRETS {
        assert!(
            referenced.contains(secret),
            "EXTERNAL_SECRETS: {secret} ({why}) is used by no Deployment: drop it"
        );
    }
    Ok(())
}

#[test]
fn kubernetes_services_get_valid_settings_for_their_own_database_and_peers() -> TestResult {
    let base = kustomize(K8S)?;
    let overlay = kustomize(K8S_SIMULATOR)?;
    let secrets = secret_example()?;
    let image_dir = image_config_dir()?;
    let workspace = workspace_binaries()?;
    for (documents, variant) in [(&base.documents, K8S), (&overlay.documents, K8S_SIMULATOR)] {
        for (name, port, metrics) in SERVICES {
            let (file, deployment) = named(documents, "Deployment", name)
                .with_context(|| format!("{variant}: no Deployment {name}"))?;
            let pod = &deployment["spec"]["template"]["spec"];
            assert!(
                items(&pod["initContainers"]).any(|c| words(&c["command"])
                    .first()
                    .is_some_and(|b| *b == format!("jiuzhu-{name}"))
                    && words(&c["args"]) == ["migrate"]),
                "{file}: Deployment {name} must migrate first (init container `jiuzhu-{name} migrate`)"
            );
            for container in containers(deployment) {
                let cname = container["name"].as_str().unwrap_or_default();
                let what = format!("{file} ({variant}): Deployment {name}: container {cname}");
                let command = words(&container["command"]);
                for binary in binaries_in(&command) {
                    assert!(
                        workspace.contains(&binary) && DEPLOYED_BINARIES.contains(&binary.as_str()),
                        "{what}: runs {binary}, which is not a binary of the image"
                    );
                }
                let env = k8s_env(container, documents, &secrets);
                let config_dir = env
                    .get("JIUZHU_CONFIG_DIR")
                    .cloned()
                    .unwrap_or(image_dir.clone());
                let environment_file = match env.get("JIUZHU_ENV") {
                    Some(environment) => Some(
                        k8s_file(
                            deployment,
                            container,
                            &format!("{config_dir}/{environment}.toml"),
                            documents,
                            &secrets,
                        )
                        .map_err(|why| anyhow!("{what}: {config_dir}/{environment}.toml: {why}"))?,
                    ),
                    None => None,
                };
                let settings = load_settings(name, port, environment_file.as_deref(), &env, &what)?;
                check_service_settings(&what, (name, port, metrics), &settings, &env);
                let database = items(&container["env"])
                    .find(|v| v["name"] == format!("JIUZHU__{}__DATABASE_URL", name.to_uppercase()))
                    .map(|v| v["valueFrom"]["secretKeyRef"]["name"].clone());
                assert_eq!(
                    database,
                    Some(Json::from(format!("jiuzhu-{name}"))),
                    "{what}: the database URL must come from {name}'s own Secret jiuzhu-{name}"
                );
                let mut files: Vec<(String, String)> = Vec::new();
                if let Some(ca) = settings.kafka.properties.get("ssl.ca.location") {
                    files.push(("kafka.properties ssl.ca.location".to_owned(), ca.clone()));
                }
                if let Some(key) = &settings.vault.master_key_file {
                    files.push((
                        "vault.master_key_file".to_owned(),
                        key.display().to_string(),
                    ));
                }
                let tls = &settings.tls;
                for (setting, explicit, default) in [
                    ("tls.ca", &tls.ca, "ca.pem".to_owned()),
                    ("tls.cert", &tls.cert, format!("{name}.pem")),
                    ("tls.key", &tls.key, format!("{name}.key")),
                ] {
                    let path = explicit
                        .clone()
                        .unwrap_or_else(|| tls.dir.join(default))
                        .display()
                        .to_string();
                    files.push((setting.to_owned(), path));
                }
                for (setting, path) in files {
                    if let Err(why) = k8s_file(deployment, container, &path, documents, &secrets) {
                        panic!("{what}: {setting} {path}: {why}");
                    }
                }
                if pod["containers"]
                    .as_array()
                    .is_some_and(|c| c.contains(container))
                {
                    for (port_name, expected) in [("grpc", port), ("metrics", metrics)] {
                        assert_eq!(
                            container_port(container, &Json::from(port_name)),
                            Some(expected),
                            "{what}: containerPort `{port_name}` must be {expected}, where the \
                             settings make it listen"
                        );
                    }
                    let readiness = &container["readinessProbe"]["httpGet"];
                    assert!(
                        readiness["path"] == "/metrics"
                            && container_port(container, &readiness["port"]) == Some(metrics),
                        "{what}: the readiness probe must GET /metrics on the metrics port \
                         {metrics} (the only plain-HTTP endpoint)"
                    );
                }
            }
        }
        // Payments pays through the provider the ConfigMap names: in the simulator overlay,
        // the simulator.
        let (file, payments) = named(documents, "Deployment", "payments")
            .with_context(|| format!("{variant}: no Deployment payments"))?;
        let container = items(&payments["spec"]["template"]["spec"]["containers"])
            .next()
            .with_context(|| format!("{file}: payments has no container"))?;
        let endpoint = k8s_env(container, documents, &secrets)
            .get("JIUZHU__PROVIDER__ENDPOINT")
            .cloned()
            .unwrap_or_default();
        let host = parse_url(&endpoint).map(|u| u.host).unwrap_or_default();
        if variant == K8S_SIMULATOR {
            assert!(
                named(documents, "Service", &host).is_some() && host == SIMULATOR.0,
                "{K8S_SIMULATOR}: payments must pay through the simulator's Service, not {endpoint}"
            );
        } else {
            assert!(
                host != SIMULATOR.0,
                "{K8S}: the production base must not pay through the simulator"
            );
        }
    }
    let (file, paysim) = named(&overlay.documents, "Deployment", SIMULATOR.0)
        .with_context(|| format!("{K8S_SIMULATOR}: no Deployment {}", SIMULATOR.0))?;
    let container = items(&paysim["spec"]["template"]["spec"]["containers"])
        .next()
        .with_context(|| format!("{file}: paysim has no container"))?;
    let command: Vec<String> = words(&container["command"])
        .into_iter()
        .chain(words(&container["args"]))
        .collect();
    for binary in binaries_in(&command) {
        assert!(
            workspace.contains(&binary) && DEPLOYED_BINARIES.contains(&binary.as_str()),
            "{file}: Deployment paysim runs {binary}, which is not a binary of the image"
        );
    }
    check_simulator(&format!("{file}: Deployment paysim"), &command, |dir| {
        ["ca.pem", "paysim.pem", "paysim.key"].iter().all(|f| {
            k8s_file(
                paysim,
                container,
                &format!("{dir}/{f}"),
                &overlay.documents,
                &secrets,
            )
            .is_ok()
        })
    });
    Ok(())
}

#[test]
fn consumers_scale_no_further_than_the_topics_have_partitions() -> TestResult {
    let base = kustomize(K8S)?;
    let secrets = secret_example()?;
    // The partitions every service creates its topics with, as the services read the setting.
    let mut partitions = BTreeSet::new();
    for (name, port, _) in SERVICES {
        let (_, deployment) = named(&base.documents, "Deployment", name)
            .with_context(|| format!("{K8S}: no Deployment {name}"))?;
        for container in items(&deployment["spec"]["template"]["spec"]["containers"]) {
            let env = k8s_env(container, &base.documents, &secrets);
            let production = secrets
                .get(&format!("jiuzhu-{name}"))
                .and_then(|s| s.get("production.toml"))
                .map(String::as_str);
            let settings = load_settings(name, port, production, &env, K8S)?;
            partitions.insert(settings.kafka.partitions);
        }
    }
    let mut partitions = partitions.into_iter();
    let (Some(partitions), None) = (partitions.next(), partitions.next()) else {
        panic!("{K8S}: the services must all create topics with the same number of partitions");
    };
    let partitions = i64::from(partitions);

    for (file, autoscaler) in kind(&base.documents, "HorizontalPodAutoscaler") {
        let name = autoscaler["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{file}: HorizontalPodAutoscaler {name}");
        let target = &autoscaler["spec"]["scaleTargetRef"];
        let target_name = target["name"].as_str().unwrap_or_default();
        let deployment = named(&base.documents, "Deployment", target_name);
        assert!(
            target["kind"] == "Deployment" && deployment.is_some(),
            "{what}: scales Deployment {target_name}, which the kustomization does not define"
        );
        assert!(
            deployment.is_some_and(|(_, d)| d["spec"]["replicas"].is_null()),
            "{what}: Deployment {target_name} must not set replicas (each apply would reset the \
             autoscaler's count)"
        );
        let max = autoscaler["spec"]["maxReplicas"]
            .as_i64()
            .unwrap_or(i64::MAX);
        let min = autoscaler["spec"]["minReplicas"].as_i64().unwrap_or(1);
        // A consumer group has at most one active member per partition: replicas beyond the
        // partition count would consume nothing.
        assert!(
            max <= partitions,
            "{what}: maxReplicas {max} exceeds the {partitions} partitions of the topics \
             (JIUZHU__KAFKA__PARTITIONS): the extra replicas would consume nothing"
        );
        assert!(
            (1..=max).contains(&min),
            "{what}: minReplicas {min} must be between 1 and maxReplicas {max}"
        );
    }
    for (file, deployment) in kind(&base.documents, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let autoscaled = kind(&base.documents, "HorizontalPodAutoscaler")
            .into_iter()
            .find(|(_, h)| h["spec"]["scaleTargetRef"]["name"] == name);
        let replicas = match autoscaled {
            Some((_, h)) => h["spec"]["minReplicas"].as_i64().unwrap_or(1),
            None => deployment["spec"]["replicas"].as_i64().unwrap_or(1),
        };
        assert!(
            autoscaled.is_some() || replicas <= partitions,
            "{file}: Deployment {name} runs {replicas} replicas for {partitions} partitions"
        );
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (pdb_file, budget) in kind(&base.documents, "PodDisruptionBudget") {
            if selector_matches(&budget["spec"]["selector"], labels) {
                let min_available = budget["spec"]["minAvailable"].as_i64().unwrap_or(0);
                assert!(
                    min_available < replicas,
                    "{pdb_file}: minAvailable {min_available} with {replicas} replicas of {name} \
                     would block every node drain"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn every_documented_topic_is_provisioned_by_the_services() -> TestResult {
    // The services create their topics as they start (own events and dead letters, the topics
    // they consume, the registry's share topics): no deployment creates topics. That they
    // create exactly the documented ones on a real broker is asyncapi.rs; here, that every
    // documented topic is of a kind some deployed service provisions.
    let doc: Json = serde_json::from_str(&read(ASYNCAPI)?)?;
    let departments: Vec<String> = jiuzhu_sharing::Agreements::shipped()?
        .departments
        .keys()
        .cloned()
        .collect();
    for (id, channel) in doc["channels"].as_object().into_iter().flatten() {
        let address = channel["address"].as_str().unwrap_or_default();
        let own_events = SERVICES
            .iter()
            .any(|(s, _, _)| jiuzhu_messaging::service_topic(s) == address);
        let shared = departments
            .iter()
            .any(|d| jiuzhu_registry::sharing::share_topic(d) == address);
        let inbound = jiuzhu_messaging::inbound_source(address)
            .is_some_and(|source| jiuzhu_messaging::inbound_topic(source) == address);
        assert!(
            own_events || shared || inbound,
            "{ASYNCAPI}: channel {id} ({address}) is no topic a deployed service provisions \
             (its own events, a share topic of an agreement, an inbound topic it consumes)"
        );
    }

    // Nothing else may create topics, and every service must name them alike.
    let compose = compose()?;
    for (name, service) in compose["services"].as_object().into_iter().flatten() {
        let command = words(&service["command"]).join(" ");
        assert!(
            !command.contains("kafka-topics"),
            "{COMPOSE}: service {name} creates topics; the services provision their own"
        );
    }
    let mut prefixes = BTreeSet::new();
    for (name, _, _) in SERVICES {
        prefixes.insert(
            compose_env(compose_service(&compose, name)?)
                .get("JIUZHU__KAFKA__TOPIC_PREFIX")
                .cloned()
                .unwrap_or_default(),
        );
    }
    let base = kustomize(K8S)?;
    let secrets = secret_example()?;
    for (_, deployment) in kind(&base.documents, "Deployment") {
        for container in containers(deployment) {
            prefixes.insert(
                k8s_env(container, &base.documents, &secrets)
                    .get("JIUZHU__KAFKA__TOPIC_PREFIX")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    assert!(
        prefixes.len() == 1 && prefixes.contains(""),
        "{COMPOSE}, {K8S}: the topic prefix differs between services ({prefixes:?}), or the \
         documented topic names are not the ones used"
    );
    Ok(())
}

#[test]
fn compose_commands_name_binaries_the_image_holds() -> TestResult {
    let doc = compose()?;
    let workspace = workspace_binaries()?;
    let in_image = image_binaries(&Dockerfile::read()?);
    let mut checked = 0;
    for (name, service) in doc["services"].as_object().into_iter().flatten() {
        if !is_jiuzhu_image(service) {
            continue;
        }
        checked += 1;
        let command: Vec<String> = words(&service["entrypoint"])
            .into_iter()
            .chain(words(&service["command"]))
            .collect();
        let binaries = binaries_in(&command);
        assert!(
            !binaries.is_empty(),
            "{COMPOSE}: service {name} runs none of the image's binaries"
        );
        for binary in binaries {
            assert!(
                workspace.contains(&binary),
                "{COMPOSE}: service {name} runs {binary}, which is no binary of the workspace"
            );
            assert!(
                in_image.contains(&binary),
                "{COMPOSE}: service {name} runs {binary}, which {DOCKERFILE} does not build"
            );
        }
    }
    assert!(
        checked > SERVICES.len(),
        "{COMPOSE}: only {checked} services run the image of {DOCKERFILE} (jiuzhu:…)"
    );
    for (name, _, _) in SERVICES {
        let command = words(&compose_service(&doc, name)?["command"]);
        assert_eq!(
            command,
            [format!("jiuzhu-{name}"), "serve".to_owned()],
            "{COMPOSE}: service {name} must run `jiuzhu-{name} serve`"
        );
    }
    Ok(())
}
