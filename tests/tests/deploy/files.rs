//! Reading the deployment files: YAML documents, scalars, URLs.

use super::*;

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn read(rel: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(root().join(rel)).with_context(|| format!("cannot read {rel}"))
}

/// `a/b/../c` → `a/c`, for paths relative to the repository.
pub(crate) fn normalise(path: &str) -> String {
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
pub(crate) fn yaml_documents(rel: &str) -> anyhow::Result<Vec<Json>> {
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

pub(crate) fn has_merge_key(value: &serde_yaml_ng::Value) -> bool {
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
pub(crate) fn scalar(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        Json::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

pub(crate) fn items(value: &Json) -> impl Iterator<Item = &Json> {
    value.as_array().into_iter().flatten()
}

pub(crate) fn string_map(value: &Json) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v)))
        .collect()
}

/// `scheme://[user[:password]@]host[:port][/path][?query]`.
#[derive(Debug)]
pub(crate) struct Url {
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) path: String,
}

pub(crate) fn parse_url(url: &str) -> Option<Url> {
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
