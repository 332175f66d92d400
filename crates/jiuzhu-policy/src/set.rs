//! A policy set as read from a directory: each file's text and where it came from, the set's
//! manifest (version, effective date, who adopted it), and the book of every set, so that a
//! decision can use the one in force on its date.
//!
//! Layout: the directory (`[policy] dir`, default `policy`) is one set, with `set.toml` as its
//! manifest. Further sets live in `sets/<name>/`, each with its own `set.toml`; a file a
//! further set does not have is taken from the base set, so a new set holds only what changed.
//! A file the base directory lacks is taken from the copy compiled into this build (and said
//! so); a file that is present but broken is an error, never silently replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use jiuzhu_config::{ConfigError, Layers, Validate};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "set.toml";
pub const CALENDAR: &str = "calendar/cn-workdays.toml";
pub const RELIEF: &str = "decisions/relief.toml";
pub const WAGES: &str = "decisions/wages.csv";
pub const FOLLOWUP: &str = "followup/followup.toml";
pub const SCREENING: &str = "clues/screening.toml";
pub const SHARING: &str = "sharing/agreements.toml";
pub const ACCESS: &str = "security/access.toml";

/// Every file of a policy set, with the copy compiled into this build.
pub const FILES: [(&str, &str); 8] = [
    (MANIFEST, include_str!("../../../policy/set.toml")),
    (CALENDAR, jiuzhu_calendar::SHIPPED),
    (RELIEF, crate::relief::SHIPPED),
    (WAGES, include_str!("../../../policy/decisions/wages.csv")),
    (FOLLOWUP, crate::followup::SHIPPED),
    (SCREENING, crate::screening::SHIPPED),
    (SHARING, jiuzhu_sharing::SHIPPED),
    (ACCESS, jiuzhu_access::SHIPPED),
];

/// Where further sets live inside the policy directory.
const SETS_DIR: &str = "sets";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("policy {file}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid {
        file: String,
        line: Option<usize>,
        reason: String,
    },
}

impl PolicyError {
    /// A parse error of `file`, located at the first line naming `needle` when it has one.
    pub fn invalid(file: &str, text: &str, needle: Option<&str>, reason: String) -> Self {
        PolicyError::Invalid {
            file: file.to_owned(),
            line: needle.and_then(|n| line_of(text, n)),
            reason,
        }
    }

    /// A configuration error of `file`, located at the line of the key it names.
    pub fn from_config(file: &str, text: &str, error: &ConfigError) -> Self {
        let needle = match error {
            ConfigError::Invalid { key, reason } => reason
                .split('`')
                .nth(1)
                .filter(|quoted| line_of(text, quoted).is_some())
                .map(str::to_owned)
                .or_else(|| key.rsplit('.').next().map(str::to_owned)),
            ConfigError::Source(_) => None,
        };
        Self::invalid(file, text, needle.as_deref(), error.to_string())
    }
}

/// The 1-based line of the first line that mentions `needle` outside a comment.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.lines()
        .position(|line| {
            let code = line.split('#').next().unwrap_or_default();
            code.contains(needle)
        })
        .map(|i| i + 1)
}

/// `[policy]`: where the policy directory is.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    pub dir: PathBuf,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("policy"),
        }
    }
}

impl Validate for PolicySettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.dir"),
                "must name a directory",
            ));
        }
        Ok(())
    }
}

/// `set.toml`: what the set is and from when it holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: String,
    /// "YYYY-MM-DD": decisions dated from this day on use the set.
    pub effective_from: String,
    /// Who adopted it (the document or meeting), for the adoption record.
    pub adopted_by: String,
    #[serde(default)]
    pub note: String,
}

impl Validate for Manifest {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.version.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.version"),
                "is required",
            ));
        }
        if self.adopted_by.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.adopted_by"),
                "is required (who adopted the set)",
            ));
        }
        if NaiveDate::parse_from_str(&self.effective_from, "%Y-%m-%d").is_err() {
            return Err(ConfigError::invalid(
                format!("{prefix}.effective_from"),
                format!("`{}` is not a YYYY-MM-DD date", self.effective_from),
            ));
        }
        Ok(())
    }
}

/// Where a file's text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    CompiledIn,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::CompiledIn => f.write_str("the copy compiled into this build"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub text: String,
    pub origin: Origin,
}

/// One policy set: its manifest and every file's text.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub manifest: Manifest,
    pub effective_from: NaiveDate,
    files: BTreeMap<&'static str, PolicyFile>,
}

impl PolicySet {
    fn new(files: BTreeMap<&'static str, PolicyFile>) -> Result<Self, PolicyError> {
        let text = files.get(MANIFEST).map_or("", |f| f.text.as_str());
        let manifest: Manifest = Layers::from_toml(text)
            .and_then(|layers| layers.section("set"))
            .map_err(|error| PolicyError::from_config(MANIFEST, text, &error))?;
        let effective_from = NaiveDate::parse_from_str(&manifest.effective_from, "%Y-%m-%d")
            .map_err(|_| {
                PolicyError::invalid(
                    MANIFEST,
                    text,
                    Some("effective_from"),
                    "effective_from is not a date".to_owned(),
                )
            })?;
        Ok(Self {
            manifest,
            effective_from,
            files,
        })
    }

    /// The set compiled into this build.
    pub fn compiled_in() -> Result<Self, PolicyError> {
        Self::new(
            FILES
                .iter()
                .map(|(name, text)| {
                    (
                        *name,
                        PolicyFile {
                            text: (*text).to_owned(),
                            origin: Origin::CompiledIn,
                        },
                    )
                })
                .collect(),
        )
    }

    /// The text of one of [`FILES`] (empty for a name that is not one).
    pub fn text(&self, name: &str) -> &str {
        self.files.get(name).map_or("", |f| f.text.as_str())
    }

    pub fn file(&self, name: &str) -> Option<&PolicyFile> {
        self.files.get(name)
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    /// SHA-256 over every file's name and text, hex: what an adoption record names.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for (name, file) in &self.files {
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(file.text.as_bytes());
            hash.update([0]);
        }
        hex::encode(hash.finalize())
    }

    /// SHA-256 of one file's text, hex.
    pub fn file_digest(&self, name: &str) -> String {
        hex::encode(Sha256::digest(self.text(name).as_bytes()))
    }

    /// Replaces the text of one of [`FILES`] (a candidate set in checks and tests).
    pub fn replace(&mut self, name: &'static str, text: String) {
        if let Some(file) = self.files.get_mut(name) {
            file.text = text;
        }
    }

    /// Files that came from the compiled-in copy rather than the directory.
    pub fn compiled_in_files(&self) -> Vec<&'static str> {
        self.files
            .iter()
            .filter(|(_, f)| f.origin == Origin::CompiledIn)
            .map(|(name, _)| *name)
            .collect()
    }
}

fn read_set(
    dir: &Path,
    base: Option<&PolicySet>,
) -> Result<BTreeMap<&'static str, PolicyFile>, PolicyError> {
    let mut files = BTreeMap::new();
    for (name, shipped) in FILES {
        let path = dir.join(name);
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => PolicyFile {
                text,
                origin: Origin::File(path),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                match base.and_then(|b| b.files.get(name)) {
                    // A further set inherits what it does not change, but names its own.
                    Some(inherited) if name != MANIFEST => inherited.clone(),
                    Some(_) => {
                        return Err(PolicyError::Unreadable {
                            path: path.display().to_string(),
                            reason: "every set needs its own set.toml".to_owned(),
                        });
                    }
                    None => PolicyFile {
                        text: shipped.to_owned(),
                        origin: Origin::CompiledIn,
                    },
                }
            }
            Err(error) => {
                return Err(PolicyError::Unreadable {
                    path: path.display().to_string(),
                    reason: error.to_string(),
                });
            }
        };
        files.insert(name, file);
    }
    Ok(files)
}

/// Every policy set known, by effective date.
#[derive(Debug, Clone)]
pub struct PolicyBook {
    /// Ascending by effective date; never empty.
    sets: Vec<PolicySet>,
}

impl PolicyBook {
    /// The sets of `dir` (the base set and `sets/*/`). A directory that does not exist gives
    /// the compiled-in set.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        if !dir.is_dir() {
            return Self::compiled_in();
        }
        let base = PolicySet::new(read_set(dir, None)?)?;
        let mut sets = vec![];
        let further = dir.join(SETS_DIR);
        if further.is_dir() {
            let entries = std::fs::read_dir(&further).map_err(|error| PolicyError::Unreadable {
                path: further.display().to_string(),
                reason: error.to_string(),
            })?;
            let mut dirs: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for sub in dirs {
                sets.push(PolicySet::new(read_set(&sub, Some(&base))?)?);
            }
        }
        sets.push(base);
        Self::of(sets)
    }

    /// The set compiled into this build alone.
    pub fn compiled_in() -> Result<Self, PolicyError> {
        Self::of(vec![PolicySet::compiled_in()?])
    }

    fn of(mut sets: Vec<PolicySet>) -> Result<Self, PolicyError> {
        sets.sort_by_key(|s| s.effective_from);
        for pair in sets.windows(2) {
            if pair[0].effective_from == pair[1].effective_from {
                return Err(PolicyError::Invalid {
                    file: MANIFEST.to_owned(),
                    line: None,
                    reason: format!(
                        "sets {} and {} both take effect on {}",
                        pair[0].version(),
                        pair[1].version(),
                        pair[0].effective_from
                    ),
                });
            }
            if pair[0].version() == pair[1].version() {
                return Err(PolicyError::Invalid {
                    file: MANIFEST.to_owned(),
                    line: None,
                    reason: format!("two sets are both version {}", pair[0].version()),
                });
            }
        }
        if sets.is_empty() {
            return Err(PolicyError::Invalid {
                file: MANIFEST.to_owned(),
                line: None,
                reason: "no policy set".to_owned(),
            });
        }
        Ok(Self { sets })
    }

    /// Every department the latest set's data-sharing agreements name: the departments whose
    /// integrators may hold certificates.
    pub fn departments(&self) -> Vec<String> {
        #[derive(Debug, Default, serde::Deserialize)]
        struct Names {
            #[serde(default)]
            departments: std::collections::BTreeMap<String, serde_json::Value>,
        }
        impl jiuzhu_config::Validate for Names {
            fn validate(&self, _prefix: &str) -> Result<(), jiuzhu_config::ConfigError> {
                Ok(())
            }
        }
        jiuzhu_config::Layers::from_toml(self.latest().text(crate::SHARING))
            .and_then(|layers| layers.section::<Names>("sharing"))
            .map(|names| names.departments.into_keys().collect())
            .unwrap_or_default()
    }

    /// Every approval tier some set's relief policy names (by amount, and the exceptional
    /// one), in order of first appearance: what approver certificates may carry.
    pub fn approval_tiers(&self) -> Vec<String> {
        let mut tiers: Vec<String> = Vec::new();
        for set in &self.sets {
            let Ok(relief) = crate::relief::ReliefPolicy::parse(set.text(crate::RELIEF)) else {
                continue;
            };
            let named = relief
                .approval_tiers
                .iter()
                .map(|tier| tier.approver.clone())
                .chain([relief.exceptional_approver.clone()]);
            for tier in named {
                if !tiers.contains(&tier) {
                    tiers.push(tier);
                }
            }
        }
        tiers
    }

    pub fn sets(&self) -> &[PolicySet] {
        &self.sets
    }

    /// The set that takes effect last: its facts (calendar, wages) are the most complete.
    pub fn latest(&self) -> &PolicySet {
        &self.sets[self.sets.len() - 1]
    }

    /// The set in force on `day`: the last one effective on or before it (the earliest set
    /// for a day before every set).
    pub fn in_force(&self, day: NaiveDate) -> &PolicySet {
        self.sets
            .iter()
            .rev()
            .find(|s| s.effective_from <= day)
            .unwrap_or(&self.sets[0])
    }

    /// Parses one file of every set with `parse`, naming the set and file on error.
    pub fn parse_each<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, PolicyError>,
    ) -> Result<Vec<(NaiveDate, T)>, PolicyError> {
        self.sets
            .iter()
            .map(|set| Ok((set.effective_from, parse(set.text(name))?)))
            .collect()
    }
}

/// Of values parsed per set (ascending by date), the one in force on `day`.
pub fn in_force_on<T>(values: &[(NaiveDate, T)], day: NaiveDate) -> Option<&T> {
    values
        .iter()
        .rev()
        .find(|(from, _)| *from <= day)
        .or_else(|| values.first())
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jiuzhu-policy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_compiled_in_set_has_every_file_and_a_manifest() -> Result<(), PolicyError> {
        let book = PolicyBook::compiled_in()?;
        let set = book.latest();
        assert!(!set.version().is_empty());
        assert_eq!(set.compiled_in_files().len(), FILES.len());
        assert_eq!(set.digest().len(), 64);
        Ok(())
    }

    #[test]
    fn a_directory_overrides_file_by_file_and_further_sets_take_effect_by_date()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = scratch("sets");
        std::fs::create_dir_all(dir.join("decisions"))?;
        std::fs::write(
            dir.join(MANIFEST),
            "[set]\nversion = \"base\"\neffective_from = \"2025-01-01\"\nadopted_by = \"test\"\n",
        )?;
        std::fs::write(
            dir.join(WAGES),
            "region,year,average_monthly_wage_fen,source,status\n",
        )?;
        let next = dir.join(SETS_DIR).join("2027");
        std::fs::create_dir_all(next.join("decisions"))?;
        std::fs::write(
            next.join(MANIFEST),
            "[set]\nversion = \"next\"\neffective_from = \"2027-01-01\"\nadopted_by = \"test\"\n",
        )?;
        let relief = crate::relief::SHIPPED.replace("cap_months = 36", "cap_months = 40");
        std::fs::write(next.join(RELIEF), &relief)?;
        let book = PolicyBook::load(&dir)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(book.sets().len(), 2);
        let before = book.in_force(day("2026-12-31"));
        let after = book.in_force(day("2027-01-05"));
        assert_eq!((before.version(), after.version()), ("base", "next"));
        // The base set's own wage file, the compiled-in relief policy for the base set, the
        // further set's relief policy, and the wage file inherited from the base.
        assert!(matches!(
            before.file(WAGES).map(|f| &f.origin),
            Some(Origin::File(_))
        ));
        assert!(before.compiled_in_files().contains(&RELIEF));
        assert!(after.text(RELIEF).contains("cap_months = 40"));
        assert_eq!(after.text(WAGES), before.text(WAGES));
        assert_eq!(book.in_force(day("2020-01-01")).version(), "base");
        Ok(())
    }

    #[test]
    fn a_broken_manifest_names_file_and_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = scratch("broken");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(MANIFEST),
            "[set]\nversion = \"x\"\neffective_from = \"someday\"\nadopted_by = \"t\"\n",
        )?;
        let error = PolicyBook::load(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        std::fs::remove_dir_all(&dir)?;
        assert!(error.starts_with("policy set.toml line 3:"), "{error}");
        Ok(())
    }
}
