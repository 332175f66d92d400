//! Configuration as the binaries load it: the image's `default.toml`, the mounted
//! `production.toml` and `JIUZHU__…` variables, merged and read by the services' own settings types.

use super::*;

/// Any section of a TOML file, as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(crate) struct Raw(pub(crate) Json);

impl Validate for Raw {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The top-level tables of a TOML file, read with the services' own loader.
pub(crate) fn toml_tables(text: &str, what: &str) -> anyhow::Result<Map<String, Json>> {
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

pub(crate) fn deep_merge(base: &mut Map<String, Json>, over: Map<String, Json>) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Json::Object(base)), Json::Object(over)) => deep_merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

pub(crate) fn set_path(table: &mut Map<String, Json>, path: &[String], value: Json) {
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
pub(crate) fn env_value(value: &str) -> Json {
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

pub(crate) fn toml_value(value: &Json) -> anyhow::Result<String> {
    Ok(match value {
        Json::String(_) | Json::Number(_) | Json::Bool(_) => serde_json::to_string(value)?,
        Json::Array(values) => {
            let values: anyhow::Result<Vec<String>> = values.iter().map(toml_value).collect();
            format!("[{}]", values?.join(", "))
        }
        Json::Null | Json::Object(_) => bail!("not a TOML value: {value}"),
    })
}

pub(crate) fn write_toml(
    out: &mut String,
    path: &[String],
    table: &Map<String, Json>,
) -> anyhow::Result<()> {
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
pub(crate) fn load_settings(
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
    let settings = Settings::from_layers(&layers, service, port, own_sections(service))
        .map_err(|error| anyhow!("{what}: {error}"))?;
    // The sections a service owns are read by its own types at start: here too.
    let owned = match service {
        "payments" => settings.own.get::<ProviderSettings>().map(drop),
        "decisions" => settings.own.get::<RecommenderSettings>().map(drop),
        _ => Ok(()),
    };
    owned.map_err(|error| anyhow!("{what}: {error}"))?;
    Ok(settings)
}

/// The settings sections a service owns, as its binary declares them.
pub(crate) fn own_sections(service: &str) -> &'static [&'static str] {
    use jiuzhu_runtime::Service;
    match service {
        "payments" => jiuzhu_payments::Payments::SECTIONS,
        "decisions" => jiuzhu_decisions::Decisions::SECTIONS,
        "registry" => jiuzhu_registry::Registry::SECTIONS,
        "clues" => jiuzhu_clues::Clues::SECTIONS,
        "followup" => jiuzhu_followup::Followup::SECTIONS,
        _ => &[],
    }
}

/// The bank payments pays through (`[provider] endpoint`); empty for the other services.
pub(crate) fn provider_endpoint(settings: &Settings) -> String {
    settings
        .own
        .get::<ProviderSettings>()
        .map(|provider| provider.endpoint)
        .unwrap_or_default()
}

/// The configuration directory of the image (`ENV JIUZHU_CONFIG_DIR=` in the Dockerfile).
pub(crate) fn image_config_dir() -> anyhow::Result<String> {
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
pub(crate) fn check_service_settings(
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
