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

/// The file of a service's checkpoints in `dir`.
pub fn checkpoint_file(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{service}.audit-checkpoints.jsonl"))
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
