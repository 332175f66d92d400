//! `jiuzhu gen parties` and `jiuzhu link` end to end: generated parties with ground truth are
//! linked to a generated registry; the output has one row per party with the specified columns,
//! the assignments are accurate, and a file missing a required column is refused by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use jiuzhu_testkit::binary_path;
use jiuzhu_tests::TestResult;

fn jiuzhu(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let output = Command::new(binary_path("jiuzhu")?).args(args).output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A fresh directory and the registry, parties and output files in it.
fn scratch() -> anyhow::Result<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("jiuzhu-link-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let files = (
        dir.join("registry.csv"),
        dir.join("parties.csv"),
        dir.join("matches.csv"),
    );
    Ok((dir, files.0, files.1, files.2))
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `jiuzhu link` on the files, which must succeed; its standard error.
fn link(registry: &Path, parties: &Path, out: &Path) -> anyhow::Result<String> {
    let (ok, stderr) = jiuzhu(&[
        "link",
        "--registry",
        &path(registry),
        "--parties",
        &path(parties),
        "--out",
        &path(out),
        "--quiet",
    ])?;
    anyhow::ensure!(ok, "{stderr}");
    Ok(stderr)
}

fn rows(path: &Path) -> anyhow::Result<Vec<HashMap<String, String>>> {
    let mut reader = csv::Reader::from_path(path)?;
    let headers = reader.headers()?.clone();
    let mut found = Vec::new();
    for row in reader.records() {
        let row = row?;
        found.push(
            headers
                .iter()
                .zip(row.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    Ok(found)
}

#[test]
fn parties_are_linked_accurately_with_explanations() -> TestResult {
    let (dir, registry, parties, out) = scratch()?;
    let (ok, stderr) = jiuzhu(&[
        "gen",
        "registry",
        "--persons",
        "5000",
        "--seed",
        "4",
        "--out",
        &path(&registry),
    ])?;
    anyhow::ensure!(ok, "{stderr}");
    let (ok, stderr) = jiuzhu(&[
        "gen",
        "parties",
        "--registry",
        &path(&registry),
        "--parties",
        "600",
        "--seed",
        "9",
        "--out",
        &path(&parties),
    ])?;
    anyhow::ensure!(ok, "{stderr}");
    let stderr = link(&registry, &parties, &out)?;
    assert!(
        stderr.contains("linked 600 parties against 5000 registry persons"),
        "{stderr}"
    );

    let truth: HashMap<String, String> = rows(&parties)?
        .into_iter()
        .map(|r| (r["party_id"].clone(), r["true_person_id"].clone()))
        .collect();
    let matches = rows(&out)?;
    assert_eq!(matches.len(), 600);
    let (mut right, mut wrong, mut missed) = (0u32, 0u32, 0u32);
    for row in &matches {
        assert!(["match", "review", "none"].contains(&row["decision"].as_str()));
        let score: f64 = row["score"].parse()?;
        assert!((0.0..=1.0).contains(&score));
        let expected = &truth[&row["party_id"]];
        let got = if row["decision"] == "match" {
            &row["person_id"]
        } else {
            &String::new()
        };
        if !got.is_empty() && got == expected {
            right += 1;
            assert!(
                row["explanation"].contains("name: "),
                "{}",
                row["explanation"]
            );
        } else if !got.is_empty() {
            wrong += 1;
        }
        if !expected.is_empty() && got != expected {
            missed += 1;
        }
    }
    let precision = f64::from(right) / f64::from(right + wrong);
    let recall = f64::from(right) / f64::from(right + missed);
    assert!(
        precision > 0.95 && recall > 0.95,
        "precision {precision}, recall {recall}"
    );
    // The parties carry their truth: the command evaluates itself, and agrees with this count.
    assert!(
        stderr.contains(&format!(
            "at match (p >= 0.95): precision {precision:.3}, recall {recall:.3}"
        )),
        "{stderr}"
    );
    // The evaluation's tables (the training report before it has one of its own): by bins of
    // probability, and by deciles of the parties, a tenth of them in each.
    let table = |heading: &str, pairs_column: usize| -> anyhow::Result<Vec<usize>> {
        stderr
            .lines()
            .skip_while(|l| !l.starts_with(heading))
            .skip(2)
            .take_while(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .map(|l| {
                l.split_whitespace()
                    .nth(pairs_column)
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| anyhow::anyhow!("unreadable row `{l}`: {stderr}"))
            })
            .collect()
    };
    let bins = table("reliability by bins", 1)?;
    assert_eq!(
        bins.iter().sum::<usize>(),
        600,
        "every party in one bin: {stderr}"
    );
    let deciles = table("reliability by decile", 2)?;
    assert_eq!(deciles, vec![60; 10], "ten equal deciles: {stderr}");

    // A parties file without party_id is refused by name.
    std::fs::write(dir.join("bad.csv"), "name,birth_date\n王秀英,1949-12-31\n")?;
    let (ok, stderr) = jiuzhu(&[
        "link",
        "--registry",
        &path(&registry),
        "--parties",
        &path(&dir.join("bad.csv")),
        "--out",
        &path(&dir.join("x.csv")),
        "--quiet",
    ])?;
    assert!(!ok && stderr.contains("no `party_id` column"), "{stderr}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// On the independent generator's cases (a victim with relatives of the same household), a
/// party's co-parties are evidence: the model weighs them from the files, and the clue names it.
#[test]
fn a_case_with_relatives_is_evidence_weighed_from_the_files() -> TestResult {
    let (dir, registry, parties, out) = scratch()?;
    let (ok, stderr) = jiuzhu(&[
        "gen",
        "linkage-eval",
        "--persons",
        "10000",
        "--parties",
        "1500",
        "--seed",
        "12",
        "--registry",
        &path(&registry),
        "--out",
        &path(&parties),
    ])?;
    anyhow::ensure!(ok, "{stderr}");
    let stderr = link(&registry, &parties, &out)?;
    let weights: Vec<f64> = stderr
        .lines()
        .find(|l| l.contains("co-parties were linked: a candidate of their households weighs"))
        .ok_or_else(|| anyhow::anyhow!("no case weights reported: {stderr}"))?
        .split("weighs ")
        .nth(1)
        .unwrap_or_default()
        .split(", another ")
        .map(|w| w.trim().parse::<f64>())
        .collect::<Result<_, _>>()?;
    assert!(
        weights.len() == 2 && weights[0] > 1.0 && weights[1] < -1.0,
        "a relative's household counts for a candidate, another against: {weights:?}"
    );

    let truth: HashMap<String, String> = rows(&parties)?
        .into_iter()
        .map(|r| (r["party_id"].clone(), r["true_person_id"].clone()))
        .collect();
    let matched: Vec<HashMap<String, String>> = rows(&out)?
        .into_iter()
        .filter(|r| r["decision"] == "match")
        .collect();
    let by_household: Vec<&HashMap<String, String>> = matched
        .iter()
        .filter(|r| r["explanation"].contains("case: of a household the case's other parties"))
        .collect();
    assert!(
        by_household.len() >= 50,
        "{} matched with the case's help",
        by_household.len()
    );
    let right = by_household
        .iter()
        .filter(|r| truth[&r["party_id"]] == r["person_id"])
        .count();
    assert!(
        right as f64 >= 0.95 * by_household.len() as f64,
        "{right} of {} matched with the case's help are the person",
        by_household.len()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
