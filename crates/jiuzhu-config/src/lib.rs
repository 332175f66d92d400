//! Layered configuration for every Jiuzhu binary, in increasing precedence: the built-in
//! defaults of each settings type (`#[serde(default)]`), `config/default.toml`, the
//! environment-specific `config/<JIUZHU_ENV>.toml`, and `JIUZHU__SECTION__KEY` environment
//! variables. Sections are read one by one so that an error names the key that is wrong, and
//! values are validated at start-up rather than when first used. Secrets are wrapped in
//! [`Secret`] so that printing settings never prints them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Environment variable naming the environment-specific file (`config/<name>.toml`).
pub const ENV_SELECTOR: &str = "JIUZHU_ENV";
/// Environment variable overriding the directory that holds the config files.
pub const DIR_SELECTOR: &str = "JIUZHU_CONFIG_DIR";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Source(#[from] config::ConfigError),
    #[error("configuration key `{key}` is invalid: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Settings that can check themselves once loaded. `prefix` is the section the value was read
/// from, so the error can name the full key (e.g. `outbox.batch_size`).
pub trait Validate {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError>;
}

/// The merged configuration sources; read sections out of it with [`Layers::section`].
#[derive(Debug)]
pub struct Layers {
    merged: config::Config,
}

impl Layers {
    /// Loads files from `$JIUZHU_CONFIG_DIR` (default `./config`) and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let dir = std::env::var_os(DIR_SELECTOR)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let environment = std::env::var(ENV_SELECTOR).ok().filter(|e| !e.is_empty());
        Self::load_from(&dir, environment.as_deref())
    }

    /// Loads `dir/default.toml` (optional), `dir/<environment>.toml` (required when an
    /// environment is named) and `JIUZHU__…` variables.
    pub fn load_from(dir: &Path, environment: Option<&str>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")).required(false));
        if let Some(environment) = environment {
            builder = builder.add_source(
                config::File::from(dir.join(format!("{environment}.toml"))).required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("JIUZHU")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        Ok(Self {
            merged: builder.build()?,
        })
    }

    /// Builds layers from TOML text alone (tests, embedded defaults).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let merged = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?;
        Ok(Self { merged })
    }

    /// Reads one section; a missing section yields the type's defaults.
    pub fn section<T>(&self, key: &str) -> Result<T, ConfigError>
    where
        T: DeserializeOwned + Default + Validate,
    {
        parse_section(key, self.raw(key)?)
    }

    fn raw(&self, key: &str) -> Result<serde_json::Value, ConfigError> {
        match self.merged.get::<serde_json::Value>(key) {
            Ok(raw) => Ok(raw),
            Err(config::ConfigError::NotFound(_)) => Ok(serde_json::Value::Null),
            Err(error) => Err(error.into()),
        }
    }
}

/// One section's value: the type's defaults when absent, else deserialised with the path
/// tracked (so that an error names the exact key) and validated.
fn parse_section<T>(key: &str, raw: serde_json::Value) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Default + Validate,
{
    let value: T = if raw.is_null() {
        T::default()
    } else {
        serde_path_to_error::deserialize(raw).map_err(|error| {
            let path = error.path().to_string();
            let full = if path == "." {
                key.to_owned()
            } else {
                format!("{key}.{path}")
            };
            ConfigError::invalid(full, error.into_inner().to_string())
        })?
    };
    value.validate(key)?;
    Ok(value)
}

/// A settings section one service owns (payments' `[provider]`): the platform carries it
/// unread, the service reads it with [`OwnSections::get`].
pub trait Section: DeserializeOwned + serde::Serialize + Default + Validate {
    /// The section's name in the configuration.
    const NAME: &'static str;
}

/// The sections services own, as configured; each is read and validated by its service.
#[derive(Debug, Clone, Default)]
pub struct OwnSections {
    raw: std::collections::BTreeMap<&'static str, serde_json::Value>,
}

impl OwnSections {
    /// The named sections as the layers hold them.
    pub fn from_layers(layers: &Layers, names: &[&'static str]) -> Result<Self, ConfigError> {
        let mut raw = std::collections::BTreeMap::new();
        for name in names {
            raw.insert(*name, layers.raw(name)?);
        }
        Ok(Self { raw })
    }

    /// The section `T` owns: its defaults when unset, an error naming the key when invalid.
    pub fn get<T: Section>(&self) -> Result<T, ConfigError> {
        parse_section(
            T::NAME,
            self.raw
                .get(T::NAME)
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        )
    }

    /// Sets the section `T` owns (tests, tools that start a service in-process).
    pub fn set<T: Section>(&mut self, value: &T) {
        self.raw.insert(
            T::NAME,
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
    }
}

/// A value that must never be printed (passwords, keys, connection strings with credentials).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Fails with the key's name when `value` is not within `range`.
pub fn check_range<T>(
    prefix: &str,
    field: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Display,
{
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            format!("{prefix}.{field}"),
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Outbox {
        batch_size: u32,
    }

    impl Default for Outbox {
        fn default() -> Self {
            Self { batch_size: 100 }
        }
    }

    impl Validate for Outbox {
        fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
            check_range(prefix, "batch_size", self.batch_size, 1..=10_000)
        }
    }

    #[test]
    fn missing_section_gives_defaults() -> Result<(), ConfigError> {
        let layers = Layers::from_toml("")?;
        assert_eq!(layers.section::<Outbox>("outbox")?, Outbox::default());
        Ok(())
    }

    #[test]
    fn wrong_type_names_the_key() {
        let layers = Layers::from_toml("[outbox]\nbatch_size = \"many\"\n");
        let error = layers
            .and_then(|l| l.section::<Outbox>("outbox"))
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("outbox.batch_size"), "{error}");
    }

    #[test]
    fn out_of_range_names_the_key() {
        let error = Layers::from_toml("[outbox]\nbatch_size = 0\n")
            .and_then(|l| l.section::<Outbox>("outbox"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("`outbox.batch_size`"), "{error}");
    }

    #[test]
    fn environment_file_overrides_default_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("jiuzhu-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("default.toml"), "[outbox]\nbatch_size = 5\n")?;
        std::fs::write(dir.join("staging.toml"), "[outbox]\nbatch_size = 7\n")?;
        let staged = Layers::load_from(&dir, Some("staging"))?.section::<Outbox>("outbox")?;
        let plain = Layers::load_from(&dir, None)?.section::<Outbox>("outbox")?;
        let missing = Layers::load_from(&dir, Some("nowhere"));
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(staged.batch_size, 7);
        assert_eq!(plain.batch_size, 5);
        assert!(missing.is_err());
        Ok(())
    }

    impl Section for Outbox {
        const NAME: &'static str = "outbox";
    }

    #[test]
    fn an_owned_section_is_read_by_its_owner_with_the_same_rules() -> Result<(), ConfigError> {
        let layers = Layers::from_toml("[outbox]\nbatch_size = 7\n")?;
        let own = OwnSections::from_layers(&layers, &[Outbox::NAME])?;
        assert_eq!(own.get::<Outbox>()?.batch_size, 7);
        // Unset: the defaults. Set in code (tests): that value.
        let mut unset = OwnSections::default();
        assert_eq!(unset.get::<Outbox>()?, Outbox::default());
        unset.set(&Outbox { batch_size: 9 });
        assert_eq!(unset.get::<Outbox>()?.batch_size, 9);
        // A bad value is refused naming the key, as for the platform's sections.
        let bad = Layers::from_toml("[outbox]\nbatch_size = 0\n")?;
        let error = OwnSections::from_layers(&bad, &[Outbox::NAME])?
            .get::<Outbox>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("outbox.batch_size"), "{error}");
        Ok(())
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("postgres://user:hunter2@db/x");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "postgres://user:hunter2@db/x");
    }
}
