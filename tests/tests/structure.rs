//! The floor plan holds: no crate of the workspace has an import loop between its modules
//! (module A names `crate::b` and module B names `crate::a`, directly or around a longer
//! cycle), and no module of a service imports the gRPC adapter. Read from the source, so a
//! change that brings a loop back fails here with the cycle named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every crate's `src` directory (crates/* and services/*).
fn crate_sources() -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for group in ["crates", "services"] {
        let Ok(entries) = std::fs::read_dir(workspace().join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            let src = entry.path().join("src");
            if src.is_dir() {
                sources.push(src);
            }
        }
    }
    sources.sort();
    sources
}

/// The top-level module a source file belongs to (`src/grpc.rs` → grpc, `src/domain/x.rs` →
/// domain); `None` for the crate root and binaries.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_owned();
    (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Module → the other top-level modules it names as `crate::<module>`, outside test code.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Test modules may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let named = graph.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if target != from && modules.contains(&target) {
                named.insert(target);
            }
        }
        // `use crate::{a::X, b::Y}` groups.
        for (i, _) in code.match_indices("use crate::{") {
            let group = &code[i + "use crate::{".len()..];
            let group = group.split('}').next().unwrap_or_default();
            for part in group.split(',') {
                let target = part.trim().split("::").next().unwrap_or_default();
                if target != from && modules.contains(target) {
                    named.insert(target.to_owned());
                }
            }
        }
    }
    graph
}

/// A cycle through the graph, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_loop_between_its_modules() {
    let sources = crate_sources();
    assert!(sources.len() >= 20, "found only {sources:?}");
    let mut loops = Vec::new();
    for src in &sources {
        if let Some(found) = cycle(&edges(src)) {
            loops.push(format!("{}: {}", src.display(), found.join(" → ")));
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("app", vec!["domain"]),
        ("grpc", vec!["app"]),
        ("domain", vec!["grpc"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    let found = cycle(&graph).unwrap_or_default();
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn no_module_of_a_service_imports_the_grpc_adapter() {
    let mut importers = Vec::new();
    for src in crate_sources()
        .into_iter()
        .filter(|s| s.starts_with(workspace().join("services")))
    {
        for (module, named) in edges(&src) {
            if named.contains("grpc") {
                importers.push(format!("{}: {module}", src.display()));
            }
        }
    }
    assert!(
        importers.is_empty(),
        "modules importing crate::grpc: {importers:?}"
    );
}

/// The application layer and everything under it speak `jiuzhu_errors::AppError`; only the
/// adapters that are gRPC (the API, and payments' client of the bank) and the crate root that
/// hosts them name tonic.
#[test]
fn no_module_below_the_adapters_names_tonic() {
    const GRPC_ADAPTERS: [&str; 2] = ["grpc", "provider"];
    let mut naming = Vec::new();
    for src in crate_sources()
        .into_iter()
        .filter(|s| s.starts_with(workspace().join("services")))
    {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let Some(module) = module_of(&src, &file) else {
                continue;
            };
            if GRPC_ADAPTERS.contains(&module.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.contains("tonic") {
                naming.push(file.display().to_string());
            }
        }
    }
    assert!(naming.is_empty(), "modules naming tonic: {naming:?}");
}
