//! Signed checkpoints of the audit chain, kept outside the database: every so often the
//! service appends `{service, sequence, hash, at, signature}` (the newest record's sequence and
//! hash, signed with the key of the service's certificate) to a JSON Lines file. A chain that
//! was cut short, or rewritten as a whole, no longer reaches what a checkpoint vouches for.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use jiuzhu_access::signing::{SigningKey, verify};
use serde::{Deserialize, Serialize};

use crate::{Audit, AuditError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub service: String,
    pub sequence: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// Hex ECDSA P-256 over [`Checkpoint::signed_text`], by the service's certificate key.
    pub signature: String,
}

impl Checkpoint {
    fn signed_text(&self) -> String {
        format!(
            "jiuzhu-audit-checkpoint\n{}\n{}\n{}\n{}",
            self.service,
            self.sequence,
            self.hash,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }
}

const SUFFIX: &str = ".audit-checkpoints.jsonl";

/// The file an instance of a service appends its checkpoints to in `dir`:
/// `<service>.audit-checkpoints.jsonl`, or `<service>@<instance>.audit-checkpoints.jsonl` when
/// replicas share the directory (each writes its own file; every one vouches for the chain).
pub fn checkpoint_file(dir: &Path, service: &str, instance: &str) -> PathBuf {
    if instance.is_empty() {
        dir.join(format!("{service}{SUFFIX}"))
    } else {
        dir.join(format!("{service}@{instance}{SUFFIX}"))
    }
}

/// Every instance's checkpoint file of `service` in `dir`, in name order (none when the
/// directory does not exist).
pub fn checkpoint_files(dir: &Path, service: &str) -> Result<Vec<PathBuf>, AuditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(AuditError::Checkpoints(format!(
                "{}: {error}",
                dir.display()
            )));
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|error| AuditError::Checkpoints(format!("{}: {error}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let of_service = name
            .strip_suffix(SUFFIX)
            .is_some_and(|stem| stem == service || stem.starts_with(&format!("{service}@")));
        if of_service {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The checkpoints of every instance of `service` in `dir`, each signature checked against
/// `certificate` (DER), in order of sequence.
pub fn read_service_checkpoints(
    dir: &Path,
    service: &str,
    certificate: &[u8],
) -> Result<Vec<Checkpoint>, AuditError> {
    let mut checkpoints = Vec::new();
    for file in checkpoint_files(dir, service)? {
        checkpoints.extend(read_checkpoints(&file, certificate)?);
    }
    checkpoints.sort_by_key(|c| c.sequence);
    Ok(checkpoints)
}

/// Reads a checkpoint file and checks every line's signature against `certificate` (DER). A
/// missing file holds no checkpoints.
pub fn read_checkpoints(path: &Path, certificate: &[u8]) -> Result<Vec<Checkpoint>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(AuditError::Checkpoints(format!(
                "{}: {error}",
                path.display()
            )));
        }
    };
    let mut checkpoints = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at_line = |why: String| {
            AuditError::Checkpoints(format!("{}:{}: {why}", path.display(), number + 1))
        };
        let checkpoint: Checkpoint =
            serde_json::from_str(line).map_err(|error| at_line(error.to_string()))?;
        verify(
            certificate,
            checkpoint.signed_text().as_bytes(),
            &checkpoint.signature,
        )
        .map_err(at_line)?;
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}

/// Appends checkpoints of one service's chain to its file, signed with its key.
#[derive(Debug)]
pub struct Checkpointer {
    audit: Audit,
    service: String,
    path: PathBuf,
    key: SigningKey,
    last: i64,
}

impl Checkpointer {
    /// Continues the file at `path` (its last checkpoint is not repeated).
    pub fn new(audit: Audit, service: &str, path: PathBuf, key: SigningKey) -> Self {
        let last = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| {
                text.lines()
                    .rev()
                    .find_map(|line| serde_json::from_str::<Checkpoint>(line).ok())
            })
            .map_or(0, |c| c.sequence);
        Self {
            audit,
            service: service.to_owned(),
            path,
            key,
            last,
        }
    }

    /// Appends a checkpoint of the newest record, if there is a record newer than the last
    /// checkpoint; the checkpoint written.
    pub async fn checkpoint(
        &mut self,
        at: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>, AuditError> {
        let Some((sequence, hash)) = self.audit.newest().await? else {
            return Ok(None);
        };
        if sequence <= self.last {
            return Ok(None);
        }
        let mut checkpoint = Checkpoint {
            service: self.service.clone(),
            sequence,
            hash,
            at,
            signature: String::new(),
        };
        checkpoint.signature = self
            .key
            .sign(checkpoint.signed_text().as_bytes())
            .map_err(|error| AuditError::Checkpoints(error.to_string()))?;
        let line = serde_json::to_string(&checkpoint)
            .map_err(|error| AuditError::Checkpoints(error.to_string()))?;
        let written = (|| {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            writeln!(file, "{line}")?;
            file.sync_data()
        })();
        written.map_err(|error| {
            AuditError::Checkpoints(format!("{}: {error}", self.path.display()))
        })?;
        self.last = sequence;
        Ok(Some(checkpoint))
    }
}
