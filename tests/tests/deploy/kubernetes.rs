//! Kubernetes: kustomizations list every manifest, workloads have probes and resources and run
//! as non-root, referenced ConfigMaps and Secrets exist, and topics have the partitions the
//! consumers scale to.

use super::*;

/// A kustomization's resources (recursively through bases), each document with its file.
pub(crate) struct Kustomized {
    pub(crate) kustomization: Json,
    pub(crate) documents: Vec<(String, Json)>,
}

pub(crate) fn kustomize(dir: &str) -> anyhow::Result<Kustomized> {
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

pub(crate) fn kind<'a>(documents: &'a [(String, Json)], kind: &str) -> Vec<(&'a str, &'a Json)> {
    documents
        .iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(file, d)| (file.as_str(), d))
        .collect()
}

pub(crate) fn named<'a>(
    documents: &'a [(String, Json)],
    wanted: &str,
    name: &str,
) -> Option<(&'a str, &'a Json)> {
    kind(documents, wanted)
        .into_iter()
        .find(|(_, d)| d["metadata"]["name"] == name)
}

pub(crate) fn secret_example() -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
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
pub(crate) fn containers(deployment: &Json) -> Vec<&Json> {
    let spec = &deployment["spec"]["template"]["spec"];
    items(&spec["initContainers"])
        .chain(items(&spec["containers"]))
        .collect()
}

/// What a container's environment holds: ConfigMaps (envFrom), then its own variables, with
/// Secret values taken from the documented example.
pub(crate) fn k8s_env(
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
pub(crate) fn k8s_file(
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

pub(crate) fn container_port(container: &Json, port: &Json) -> Option<u16> {
    match port {
        Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Json::String(name) => items(&container["ports"])
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

pub(crate) fn selector_matches(selector: &Json, labels: &Json) -> bool {
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
pub(crate) fn json_selector(selector: &Json) -> Json {
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
                // The serving container's audit chain is keyed, with a key from a Secret, and
                // checkpointed to a volume every replica shares (outside the database).
                let serving = pod["containers"]
                    .as_array()
                    .is_some_and(|c| c.contains(container));
                if serving {
                    let key_file = settings.audit.key_file.clone().ok_or_else(|| {
                        anyhow!("{what}: no audit.key_file: the audit chain would be unkeyed")
                    })?;
                    files.push(("audit.key_file".to_owned(), key_file.display().to_string()));
                    let checkpoints = settings.audit.checkpoint_dir.display().to_string();
                    let shared = items(&container["volumeMounts"])
                        .find(|m| m["mountPath"] == checkpoints.as_str())
                        .and_then(|m| items(&pod["volumes"]).find(|v| v["name"] == m["name"]))
                        .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
                        .and_then(|claim| named(documents, "PersistentVolumeClaim", claim))
                        .is_some_and(|(_, claim)| {
                            items(&claim["spec"]["accessModes"]).any(|m| m == "ReadWriteMany")
                        });
                    assert!(
                        shared,
                        "{what}: audit.checkpoint_dir {checkpoints} must be a mounted \
                         ReadWriteMany PersistentVolumeClaim (the replicas share it)"
                    );
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
                    for (probe, path) in [
                        ("startupProbe", "/readyz"),
                        ("readinessProbe", "/readyz"),
                        ("livenessProbe", "/livez"),
                    ] {
                        let get = &container[probe]["httpGet"];
                        assert!(
                            get["path"] == path
                                && container_port(container, &get["port"]) == Some(metrics),
                            "{what}: the {probe} must GET {path} on the metrics port {metrics} \
                             (the only plain-HTTP endpoint)"
                        );
                    }
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
