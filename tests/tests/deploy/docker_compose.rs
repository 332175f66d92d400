//! Compose: every service runs, everything it references exists, Kafka is KRaft with SASL_SSL,
//! and each service gets valid settings for its own database and peers.

use super::*;

pub(crate) fn compose() -> anyhow::Result<Json> {
    yaml_documents(COMPOSE)?
        .into_iter()
        .next()
        .with_context(|| format!("{COMPOSE}: empty"))
}

pub(crate) fn compose_service<'a>(doc: &'a Json, name: &str) -> anyhow::Result<&'a Json> {
    doc["services"]
        .get(name)
        .with_context(|| format!("{COMPOSE}: no service `{name}`"))
}

pub(crate) fn compose_env(service: &Json) -> BTreeMap<String, String> {
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
pub(crate) fn tokens(value: &Json) -> Vec<String> {
    words(value)
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn words(value: &Json) -> Vec<String> {
    match value {
        Json::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        other => items(other).filter_map(scalar).collect(),
    }
}

/// A volume of a compose service: `source` is a named volume, a path (`./…`) or empty.
#[derive(Debug)]
pub(crate) struct Mount {
    pub(crate) source: String,
    pub(crate) target: String,
}

pub(crate) fn compose_mounts(service: &Json) -> Vec<Mount> {
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

pub(crate) fn env_files(service: &Json) -> Vec<String> {
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
pub(crate) fn check_compose_path(what: &str, path: &str) -> TestResult {
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
pub(crate) fn compose_provides(service: &Json, path: &str) -> bool {
    compose_mounts(service).iter().any(|m| {
        path == m.target || path.starts_with(&format!("{}/", m.target.trim_end_matches('/')))
    })
}

pub(crate) fn is_jiuzhu_image(service: &Json) -> bool {
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
pub(crate) fn listeners(text: &str) -> BTreeMap<String, (String, u16)> {
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
pub(crate) fn flag(words: &[String], name: &str) -> Option<String> {
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
                && health.contains("GET /readyz"),
            "{what}: the healthcheck must ask GET /readyz on port {metrics}"
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
            (
                settings
                    .audit
                    .key_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
                "audit.key_file",
            ),
        ] {
            if let Some(file) = file {
                assert!(
                    compose_provides(service, &file),
                    "{what}: {setting} {file} is not mounted"
                );
            }
        }
        // A production audit chain is keyed, and its checkpoints outlive the container (the
        // root file system is read-only).
        assert!(
            settings.audit.key_file.is_some(),
            "{what}: [audit] key_file must be set: an unkeyed chain can be recomputed"
        );
        let checkpoints = settings.audit.checkpoint_dir.display().to_string();
        assert!(
            compose_mounts(service)
                .iter()
                .any(|m| m.target == checkpoints && !m.source.starts_with('.')),
            "{what}: [audit] checkpoint_dir {checkpoints} must be a named volume"
        );
        let tls_dir = settings.tls.dir.display().to_string();
        assert!(
            compose_mounts(service)
                .iter()
                .any(|m| m.target == tls_dir && m.source == certs_volume),
            "{what}: [tls] dir {tls_dir} must be the `{certs_volume}` volume the certs job writes"
        );
        let provider = if name == "payments" {
            provider_endpoint(&settings)
        } else {
            String::new()
        };
        for (setting, url) in [
            ("peers.registry", &settings.peers.registry),
            ("provider.endpoint", &provider),
            ("telemetry.otlp_endpoint", &settings.telemetry.otlp_endpoint),
        ] {
            let host = parse_url(url).map(|u| u.host).unwrap_or_default();
            assert!(
                url.is_empty() || services.contains_key(&host),
                "{what}: {setting} {url}: `{host}` is no service"
            );
        }
        // The development certificates are valid for a fixed list of host names.
        for url in [&settings.peers.registry, &provider]
            .into_iter()
            .filter(|u| !u.is_empty())
        {
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
    let endpoint = provider_endpoint(&payments);
    let provider = parse_url(&endpoint);
    assert!(
        provider
            .as_ref()
            .is_some_and(|u| u.host == SIMULATOR.0 && u.port == Some(SIMULATOR.1)),
        "{COMPOSE}: payments must pay through the simulator at {}:{}, not {}",
        SIMULATOR.0,
        SIMULATOR.1,
        endpoint
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
pub(crate) fn check_simulator(
    what: &str,
    command: &[String],
    tls_dir_mounted: impl Fn(&str) -> bool,
) {
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

/// The script of the `kafka-users` job that adds the departments' users and ACLs.
const KAFKA_DEPARTMENTS: &str = "deploy/compose/kafka-departments.sh";

/// Kafka holds every department's system to its own topics: the broker authorizes (refusing
/// what no ACL allows), only the services' user and the loopback listeners are super users, and
/// every source of inbound messages gets a user of its own that may write its inbound topic and
/// read its share topic, nothing else.
#[test]
fn compose_gives_each_department_a_kafka_user_held_to_its_own_topics() -> TestResult {
    let doc = compose()?;
    let kafka = compose_service(&doc, "kafka")?;
    let env = compose_env(kafka);
    let get = |key: &str| env.get(key).cloned().unwrap_or_default();
    assert_eq!(
        get("KAFKA_AUTHORIZER_CLASS_NAME"),
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "{COMPOSE}: kafka must authorize (KRaft's StandardAuthorizer)"
    );
    assert_eq!(get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"), "false");
    let template = read(COMPOSE_KAFKA_TEMPLATE)?;
    let tables = toml_tables(&template, COMPOSE_KAFKA_TEMPLATE)?;
    let services_user = string_map(&tables["kafka"]["properties"])
        .get("sasl.username")
        .cloned()
        .unwrap_or_default();
    let super_users: BTreeSet<String> = get("KAFKA_SUPER_USERS")
        .split(';')
        .map(|u| u.trim().to_owned())
        .collect();
    assert_eq!(
        super_users,
        BTreeSet::from(["User:ANONYMOUS".to_owned(), format!("User:{services_user}")]),
        "{COMPOSE}: only the services' user and the loopback listeners may be super users"
    );

    // The job runs the script, mounted from the repository.
    let job = compose_service(&doc, "kafka-users")?;
    let mounted = compose_mounts(job)
        .into_iter()
        .find(|m| m.source == "./compose/kafka-departments.sh")
        .with_context(|| format!("{COMPOSE}: kafka-users must mount {KAFKA_DEPARTMENTS}"))?;
    let command = tokens(&job["command"]);
    assert!(
        command.iter().any(|w| w == &mounted.target),
        "{COMPOSE}: kafka-users must run {} ({command:?})",
        mounted.target
    );

    // Every source of inbound messages has a user: the registry's feeding departments, the
    // departments the agreements share with, and the case systems.
    let secrets = read(DEV_SECRETS)?;
    let listed = secrets
        .split_once("DEPARTMENTS=(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(BTreeSet::new);
    let mut sources: BTreeSet<String> = jiuzhu_registry::inbound::FEEDING_DEPARTMENTS
        .iter()
        .map(|d| (*d).to_owned())
        .collect();
    sources.extend(jiuzhu_policy::PolicyBook::compiled_in()?.departments());
    sources.insert("cases".to_owned());
    assert_eq!(
        listed, sources,
        "{DEV_SECRETS}: DEPARTMENTS must name every source of inbound messages"
    );

    // Each ACL the script adds is the source's own: write its inbound topic, read its share
    // topic, consumer groups of its name.
    let script = read(KAFKA_DEPARTMENTS)?;
    let mut grants = Vec::new();
    for call in script.split("kafka-acls.sh\"").skip(1) {
        let words: Vec<String> = call
            .split("\n  \"$bin")
            .next()
            .unwrap_or("")
            .replace("\\\n", " ")
            .split_whitespace()
            .map(|w| w.trim_matches('"').to_owned())
            .collect();
        let operations: BTreeSet<&str> = words
            .iter()
            .enumerate()
            .filter(|(_, w)| *w == "--operation")
            .filter_map(|(n, _)| words.get(n + 1).map(String::as_str))
            .collect();
        let principal = flag(&words, "allow-principal").unwrap_or_default();
        assert_eq!(principal, "User:$source", "{KAFKA_DEPARTMENTS}: {words:?}");
        assert!(
            !words
                .iter()
                .any(|w| w == "--deny-principal" || w.contains('*')),
            "{KAFKA_DEPARTMENTS}: {words:?}"
        );
        let resource = match (flag(&words, "topic"), flag(&words, "group")) {
            (Some(topic), None) => topic,
            (None, Some(group)) => format!("group {group}"),
            _ => panic!("{KAFKA_DEPARTMENTS}: one topic or group per ACL: {words:?}"),
        };
        grants.push((
            resource,
            operations.into_iter().collect::<Vec<_>>().join(","),
        ));
    }
    let expected = [
        ("jiuzhu.inbound.$source.v1", "Describe,Write"),
        ("jiuzhu.share.$source.v1", "Describe,Read"),
        ("group $source-", "Read"),
    ]
    .map(|(r, o)| (r.to_owned(), o.to_owned()));
    assert_eq!(
        grants, expected,
        "{KAFKA_DEPARTMENTS}: the ACLs of each source"
    );
    assert!(
        script.contains("--resource-pattern-type prefixed"),
        "{KAFKA_DEPARTMENTS}: consumer groups are the source's by prefix"
    );
    assert_eq!(
        jiuzhu_messaging::inbound_topic("civil_affairs"),
        "jiuzhu.inbound.civil_affairs.v1"
    );
    assert_eq!(
        jiuzhu_registry::sharing::share_topic("civil_affairs"),
        "jiuzhu.share.civil_affairs.v1"
    );
    Ok(())
}

/// Prometheus in compose scrapes each service at the metrics port compose gives it, and loads
/// the alert rules it mounts.
#[test]
fn compose_prometheus_scrapes_every_services_metrics_port() -> TestResult {
    let doc = compose()?;
    let config = yaml_documents("deploy/observability/prometheus.yml")?
        .into_iter()
        .next()
        .context("deploy/observability/prometheus.yml: empty")?;
    let scraped: BTreeSet<String> = config["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|job| {
            job["static_configs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|c| c["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let mut expected = BTreeSet::new();
    for (name, _, metrics_port) in SERVICES {
        let env = compose_env(compose_service(&doc, name)?);
        let key = format!("JIUZHU__{}__METRICS_LISTEN", name.to_uppercase());
        let listen = env
            .get(&key)
            .with_context(|| format!("{COMPOSE}: {name} sets no {key}"))?;
        assert!(
            listen.ends_with(&format!(":{metrics_port}")),
            "{COMPOSE}: {name} {key}={listen}"
        );
        expected.insert(format!("{name}:{metrics_port}"));
    }
    assert_eq!(
        scraped, expected,
        "deploy/observability/prometheus.yml targets"
    );
    let rules: Vec<String> = config["rule_files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let prometheus = compose_service(&doc, "prometheus")?;
    let mounted: Vec<String> = compose_mounts(prometheus)
        .into_iter()
        .map(|m| m.target)
        .collect();
    for rule in rules {
        let inside = format!("/etc/prometheus/{rule}");
        assert!(
            mounted.contains(&inside),
            "{COMPOSE}: prometheus loads {rule} but mounts no {inside}: {mounted:?}"
        );
    }
    Ok(())
}
