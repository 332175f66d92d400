//! The Dockerfile: the image builds every deployed binary and ships policy and configuration.

use super::*;

/// The Dockerfile's instructions (continuation lines joined, comments dropped), by stage.
pub(crate) struct Dockerfile {
    pub(crate) stages: Vec<Vec<String>>,
}

impl Dockerfile {
    pub(crate) fn read() -> anyhow::Result<Self> {
        let text = read(DOCKERFILE)?;
        let mut stages: Vec<Vec<String>> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    let instruction = std::mem::take(&mut current);
                    if instruction.starts_with("FROM ") {
                        stages.push(Vec::new());
                    }
                    match stages.last_mut() {
                        Some(stage) => stage.push(instruction),
                        None => bail!("{DOCKERFILE}: `{instruction}` before any FROM"),
                    }
                }
            }
        }
        ensure!(
            stages.len() >= 2,
            "{DOCKERFILE}: expected a build stage and a runtime stage"
        );
        Ok(Self { stages })
    }

    pub(crate) fn build_stage(&self) -> &[String] {
        self.stages.first().map(Vec::as_slice).unwrap_or_default()
    }

    pub(crate) fn final_stage(&self) -> &[String] {
        self.stages.last().map(Vec::as_slice).unwrap_or_default()
    }
}

/// The sources and destination of a `COPY` without `--from`.
pub(crate) fn copy_sources(instruction: &str) -> Option<(Vec<String>, String)> {
    let rest = instruction.strip_prefix("COPY ")?;
    if rest.contains("--from=") {
        return None;
    }
    let mut words: Vec<String> = rest
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .map(|w| w.trim_end_matches('/').to_owned())
        .collect();
    let destination = words.pop()?;
    Some((words, destination))
}

/// Every binary of the workspace: `[[bin]]` names, and Cargo's implicit ones (`src/main.rs`
/// named after the package, `src/bin/*.rs` after the file).
pub(crate) fn workspace_binaries() -> anyhow::Result<BTreeSet<String>> {
    let mut binaries = BTreeSet::new();
    for parent in ["crates", "services", "examples"] {
        for entry in std::fs::read_dir(root().join(parent))? {
            let dir = entry?.path();
            let manifest = dir.join("Cargo.toml");
            if !manifest.is_file() {
                continue;
            }
            let what = manifest.display().to_string();
            let layers = Layers::from_toml(&std::fs::read_to_string(&manifest)?)
                .with_context(|| what.clone())?;
            let Raw(package) = layers.section::<Raw>("package")?;
            let Raw(declared) = layers.section::<Raw>("bin")?;
            for bin in items(&declared) {
                if let Some(name) = bin["name"].as_str() {
                    binaries.insert(name.to_owned());
                }
            }
            let main_declared = items(&declared).any(|b| b["path"] == "src/main.rs");
            if dir.join("src/main.rs").is_file()
                && !main_declared
                && let Some(name) = package["name"].as_str()
            {
                binaries.insert(name.to_owned());
            }
            if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
                for entry in entries {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "rs")
                        && let Some(stem) = path.file_stem()
                    {
                        binaries.insert(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    Ok(binaries)
}

/// The Jiuzhu binaries a command runs: its program, or in a `sh -c`/`bash -c` script each
/// command word that starts with `jiuzhu`.
pub(crate) fn binaries_in(words: &[String]) -> Vec<String> {
    let Some(first) = words.first() else {
        return Vec::new();
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    if !matches!(program, "sh" | "bash") {
        return vec![program.to_owned()];
    }
    let script = words
        .iter()
        .position(|w| w == "-c")
        .and_then(|c| words.get(c + 1))
        .map(String::as_str)
        .unwrap_or_default();
    script
        .split(['\n', ';', '|', '&'])
        .filter_map(|command| command.split_whitespace().next())
        .filter(|word| word.starts_with("jiuzhu"))
        .map(str::to_owned)
        .collect()
}

/// The binaries the Dockerfile builds (`--bin`) and copies into the image.
pub(crate) fn image_binaries(dockerfile: &Dockerfile) -> BTreeSet<String> {
    let words: Vec<&str> = dockerfile
        .build_stage()
        .iter()
        .flat_map(|line| line.split_whitespace())
        .collect();
    let built: BTreeSet<&str> = words
        .windows(2)
        .filter(|pair| pair[0] == "--bin")
        .map(|pair| pair[1])
        .collect();
    built
        .into_iter()
        .filter(|bin| words.contains(&format!("target/release/{bin}").as_str()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_builds_every_deployed_binary_and_ships_policy_and_configuration() -> TestResult {
    let dockerfile = Dockerfile::read()?;
    let known = workspace_binaries()?;
    let in_image = image_binaries(&dockerfile);
    for binary in DEPLOYED_BINARIES {
        assert!(
            known.contains(binary),
            "{DOCKERFILE}: {binary} is no binary of the workspace"
        );
        assert!(
            in_image.contains(binary),
            "{DOCKERFILE}: {binary} is not built (`--bin {binary}`) and copied out of \
             target/release into the image"
        );
    }

    // What the build needs: every workspace member's manifest (cargo loads the whole
    // workspace), the contracts, and the policy files the services compile in.
    let build = dockerfile.build_stage();
    let copies: Vec<(usize, Vec<String>)> = build
        .iter()
        .enumerate()
        .filter_map(|(n, line)| copy_sources(line).map(|(sources, _)| (n, sources)))
        .collect();
    let copied_at = |path: &str| -> Option<usize> {
        copies
            .iter()
            .find(|(_, sources)| sources.iter().any(|s| s == path || s == "."))
            .map(|(n, _)| *n)
    };
    let members = Layers::from_toml(&read("Cargo.toml")?)?
        .section::<Raw>("workspace")?
        .0;
    let mut needed: BTreeSet<String> = items(&members["members"])
        .filter_map(Json::as_str)
        .filter_map(|m| m.split('/').next())
        .map(str::to_owned)
        .collect();
    needed.extend(["Cargo.toml", "Cargo.lock", "proto", "policy"].map(str::to_owned));
    let cargo_build = build
        .iter()
        .position(|line| line.contains("cargo build"))
        .context("deploy/Dockerfile: no `cargo build` in the build stage")?;
    for path in &needed {
        let at = copied_at(path);
        assert!(
            at.is_some_and(|n| n < cargo_build),
            "{DOCKERFILE}: the build stage must COPY {path} before `cargo build`"
        );
    }
    assert!(
        build.iter().any(|l| l.contains("--locked")),
        "{DOCKERFILE}: build with --locked (the image gets the versions Cargo.lock tested)"
    );

    // The runtime stage: configuration where JIUZHU_CONFIG_DIR says, the policy files for
    // reading, binaries from the build stage, a user that is not root, and no ENTRYPOINT (the
    // command picks the binary).
    let config_dir = image_config_dir()?;
    let runtime = dockerfile.final_stage();
    let runtime_copies: Vec<(Vec<String>, String)> =
        runtime.iter().filter_map(|l| copy_sources(l)).collect();
    assert!(
        runtime_copies.iter().any(|(sources, destination)| {
            sources.iter().any(|s| s == "deploy/config") && *destination == config_dir
        }),
        "{DOCKERFILE}: the image must COPY deploy/config/ to JIUZHU_CONFIG_DIR ({config_dir})"
    );
    assert!(
        runtime_copies
            .iter()
            .any(|(sources, _)| sources.iter().any(|s| s == "policy")),
        "{DOCKERFILE}: the image must ship policy/ (what the binaries were built with)"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=") && l.contains("/usr/local/bin")),
        "{DOCKERFILE}: the binaries must be copied onto the PATH (/usr/local/bin)"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .map(str::trim);
    assert!(
        user.is_some_and(|u| !matches!(u.split(':').next(), Some("root" | "0"))),
        "{DOCKERFILE}: the image must end on a non-root USER, not {user:?}"
    );
    assert!(
        !runtime.iter().any(|l| l.starts_with("ENTRYPOINT")),
        "{DOCKERFILE}: no ENTRYPOINT: one image for every binary, the command picks it"
    );

    // The build context: nothing the Dockerfile copies may be ignored; the development secrets
    // must be.
    let ignored: Vec<String> = read(DOCKERIGNORE)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_owned())
        .collect();
    for (sources, _) in dockerfile
        .stages
        .iter()
        .flatten()
        .filter_map(|l| copy_sources(l))
    {
        for source in sources {
            assert!(
                !ignored
                    .iter()
                    .any(|i| source == *i || source.starts_with(&format!("{i}/"))),
                "{DOCKERIGNORE}: ignores {source}, which {DOCKERFILE} copies"
            );
        }
    }
    for must in ["target", "deploy/compose/secrets"] {
        assert!(
            ignored.iter().any(|i| i == must),
            "{DOCKERIGNORE}: must ignore {must}/"
        );
    }
    Ok(())
}
