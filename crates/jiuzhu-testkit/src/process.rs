use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::TestkitError;

/// Path of a workspace binary (e.g. `jiuzhu-registry`) built beside the running test.
pub fn binary_path(name: &str) -> Result<PathBuf, TestkitError> {
    let exe = std::env::current_exe()?;
    // A binary beside another (target/<profile>/<bin>) finds it there.
    if let Some(beside) = exe.parent().map(|dir| dir.join(name))
        && beside.exists()
        && beside != exe
    {
        return Ok(beside);
    }
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).ok_or_else(|| {
        TestkitError::Process(format!(
            "cannot locate the target directory from {}",
            exe.display()
        ))
    })?;
    let path = profile_dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(TestkitError::Process(format!(
            "{} does not exist: build the binaries first (`cargo build --workspace --bins`, which `make test` does)",
            path.display()
        )))
    }
}

/// A service binary running as a child process; killed on drop if not stopped.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
}

impl ServiceProcess {
    /// Starts `binary serve` with `JIUZHU__…` variables from `env`. Output goes to the test's.
    pub fn spawn(binary: &str, env: &[(String, String)]) -> Result<Self, TestkitError> {
        Self::spawn_args(binary, &["serve"], env)
    }

    /// Starts `binary` with `args` and the variables in `env`.
    pub fn spawn_args(
        binary: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<Self, TestkitError> {
        Self::spawn_logged(binary, args, env, None)
    }

    /// Starts `binary` with `args` and the variables in `env`, its output appended to `log`
    /// (else the caller's).
    pub fn spawn_logged(
        binary: &str,
        args: &[&str],
        env: &[(String, String)],
        log: Option<&std::path::Path>,
    ) -> Result<Self, TestkitError> {
        let path = binary_path(binary)?;
        let mut command = Command::new(path);
        command
            .args(args)
            .env("JIUZHU_CONFIG_DIR", "/nonexistent-jiuzhu-config")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        if let Some(log) = log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        Ok(Self {
            child: command.spawn()?,
        })
    }

    /// Waits up to `limit` for the process to end by itself; its exit status if it did.
    pub async fn exited(
        &mut self,
        limit: std::time::Duration,
    ) -> Result<Option<std::process::ExitStatus>, TestkitError> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => Ok(None),
        }
    }

    /// Kills the process outright (SIGKILL: no shutdown, nothing flushed), as a crash does.
    pub async fn kill(mut self) -> Result<(), TestkitError> {
        self.child.kill().await?;
        Ok(())
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub async fn terminate(mut self) -> Result<bool, TestkitError> {
        if let Some(pid) = self.child.id() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await?;
            if !status.success() {
                return Err(TestkitError::Process(format!("kill -TERM {pid} failed")));
            }
        }
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait()).await;
        match waited {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                self.child.kill().await?;
                Ok(false)
            }
        }
    }
}
