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
use jiuzhu_decisions::settings::RecommenderSettings;
use jiuzhu_payments::settings::ProviderSettings;
use jiuzhu_runtime::Settings;
use serde::Deserialize;
use serde_json::{Map, Value as Json};

pub(crate) type TestResult = anyhow::Result<()>;

pub(crate) const DOCKERFILE: &str = "deploy/Dockerfile";
pub(crate) const DOCKERIGNORE: &str = ".dockerignore";
pub(crate) const COMPOSE: &str = "deploy/compose.yaml";
pub(crate) const K8S: &str = "deploy/k8s";
pub(crate) const K8S_SIMULATOR: &str = "deploy/k8s/simulator";
pub(crate) const SECRET_EXAMPLE: &str = "deploy/k8s/secret.example.yaml";
pub(crate) const DEFAULT_TOML: &str = "deploy/config/default.toml";
pub(crate) const ASYNCAPI: &str = "docs/asyncapi.json";
/// The Kafka client settings compose's services get, rendered by `DEV_SECRETS` with a password.
pub(crate) const COMPOSE_KAFKA_TEMPLATE: &str = "deploy/compose/production.toml.in";
pub(crate) const POSTGRES_INIT: &str = "deploy/compose/postgres-init.sh";
/// Writes compose's development-only secrets into `GENERATED`: the files compose mounts from
/// there are not in the repository (they must never be committed), so instead of existing they
/// must be written by this script, and git must ignore them.
pub(crate) const DEV_SECRETS: &str = "deploy/compose/dev-secrets.sh";
pub(crate) const GENERATED: &str = "compose/secrets/";

/// The services: name, gRPC port, metrics port.
pub(crate) const SERVICES: [(&str, u16, u16); 5] = [
    ("registry", 50051, 9101),
    ("clues", 50052, 9102),
    ("decisions", 50053, 9103),
    ("payments", 50054, 9104),
    ("followup", 50055, 9105),
];
/// The payment-provider simulator: not a production component.
pub(crate) const SIMULATOR: (&str, u16) = ("paysim", 50060);
/// The binaries the image must hold.
pub(crate) const DEPLOYED_BINARIES: [&str; 7] = [
    "jiuzhu-registry",
    "jiuzhu-clues",
    "jiuzhu-decisions",
    "jiuzhu-payments",
    "jiuzhu-followup",
    "jiuzhu-paysim",
    "jiuzhu",
];
/// Services that seal personal data with the vault: they refuse to start without its key.
pub(crate) const VAULT_USERS: [&str; 2] = ["registry", "clues"];

/// Secrets the Deployments use that the kustomization deliberately does not create: they hold
/// credentials and keys, which an installation makes from its own secret store, never from
/// files in this repository. Each is documented (with placeholders) in `SECRET_EXAMPLE`, which
/// no kustomization lists.
pub(crate) const EXTERNAL_SECRETS: [(&str, &str); 14] = [
    (
        "jiuzhu-master-key",
        "the vault master key wrapping every person's data key (registry, clues)",
    ),
    (
        "jiuzhu-audit-key",
        "the key of every service's audit chain (HMAC), apart from the databases",
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

mod config;
mod docker_compose;
mod dockerfile;
mod files;
mod kubernetes;

use config::*;
use docker_compose::*;
use dockerfile::*;
use files::*;
