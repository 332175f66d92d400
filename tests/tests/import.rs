//! `jiuzhu gen registry` and `jiuzhu registry import` end to end: a generated population in
//! GB18030 with some bad records goes into a real registry; the rejects file names line, field
//! and reason; importing the same file again changes nothing; a changed record becomes an update.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jiuzhu_proto::registry::SearchPersonsRequest;
use jiuzhu_proto::registry::search_persons_request::Query;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{binary_path, unique_namespace};
use jiuzhu_tests::{TestResult, eventually, start};

/// Runs `jiuzhu`: its exit code and standard error.
fn jiuzhu(args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
    let output = Command::new(binary_path("jiuzhu")?).args(args).output()?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Exit status of an import that finished but rejected records.
const SOME_REJECTED: Option<i32> = Some(3);

/// Imports `file`, which holds rejected records: the import finishes with status 3.
fn import(registry: &str, file: &Path) -> anyhow::Result<String> {
    let file = file.to_string_lossy();
    let certs = jiuzhu_testkit::certs_dir()?.display().to_string();
    let (code, stderr) = jiuzhu(&[
        "registry",
        "import",
        "--certs",
        &certs,
        "--department",
        "civil_affairs",
        "--registry",
        registry,
        "--quiet",
        "--batch",
        "50",
        &file,
    ])?;
    anyhow::ensure!(code == SOME_REJECTED, "import ended {code:?}: {stderr}");
    Ok(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_department_file_is_validated_idempotent_and_updates_changes() -> TestResult {
    let dir = std::env::temp_dir().join(format!("jiuzhu-import-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let generated = dir.join("population.csv");
    let (code, stderr) = jiuzhu(&[
        "gen",
        "registry",
        "--persons",
        "300",
        "--seed",
        "11",
        "--out",
        &generated.to_string_lossy(),
    ])?;
    anyhow::ensure!(code == Some(0), "gen failed: {stderr}");

    // Three bad records at known lines: a bad check character, an unknown region, a bad date.
    let mut lines: Vec<String> = std::fs::read_to_string(&generated)?
        .lines()
        .map(str::to_owned)
        .collect();
    lines.push("BAD-1,赵坏号,男,1980-01-01,110105198001010033,522701,,,,,,".to_owned()); // line 302
    lines.push("BAD-2,钱无区,女,1980-01-01,,999999,,,,,,".to_owned()); // line 303
    lines.push("BAD-3,孙错日,女,31/12/1980,,522701,,,,,,".to_owned()); // line 304
    let text = lines.join("\n") + "\n";
    let gbk = dir.join("civil_affairs.csv");
    std::fs::write(&gbk, encoding_rs::GB18030.encode(&text).0)?;

    let started = start::<Registry>(&unique_namespace()).await?;
    let address = format!("https://{}", started.running.grpc_addr);
    let first = import(&address, &gbk)?;
    assert!(first.contains("(gb18030"), "{first}");
    assert!(
        first.contains("303 records read, 300 created, 0 updated, 0 unchanged, 3 rejected"),
        "{first}"
    );
    let rejects = std::fs::read_to_string(dir.join("civil_affairs.csv.rejects.csv"))?;
    let mut reasons: Vec<(String, String)> = csv::Reader::from_reader(rejects.as_bytes())
        .records()
        .filter_map(Result::ok)
        .map(|r| (r[0].to_owned(), r[2].to_owned()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("302".to_owned(), "resident_id".to_owned()),
            ("303".to_owned(), "region.code".to_owned()),
            ("304".to_owned(), "birth_date".to_owned()),
        ]
    );

    let again = import(&address, &gbk)?;
    assert!(again.contains("300 unchanged"), "{again}");

    // One record changes village: an update, nothing else.
    let mut changed_lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = changed_lines[1].split(',').map(str::to_owned).collect();
    fields[7] = "新迁村".to_owned();
    let moved_id = fields[4].clone();
    changed_lines[1] = fields.join(",");
    std::fs::write(
        &gbk,
        encoding_rs::GB18030
            .encode(&(changed_lines.join("\n") + "\n"))
            .0,
    )?;
    let third = import(&address, &gbk)?;
    assert!(
        third.contains("0 created, 1 updated, 299 unchanged"),
        "{third}"
    );

    let pool = started.running.store.pool().clone();
    let registry = jiuzhu_tests::registry_client(&started.running).await?;
    eventually(
        "all imported persons in the read model",
        Duration::from_secs(60),
        || {
            let (pool, mut registry, moved_id) = (pool.clone(), registry.clone(), moved_id.clone());
            async move {
                let persons: i64 = sqlx::query_scalar("SELECT count(*) FROM persons")
                    .fetch_one(&pool)
                    .await?;
                // The view keeps identities sealed: the API opens them.
                let found = registry
                    .search_persons(SearchPersonsRequest {
                        purpose: jiuzhu_tests::PURPOSE.to_owned(),
                        query: Some(Query::ResidentId(moved_id)),
                        ..SearchPersonsRequest::default()
                    })
                    .await?
                    .into_inner()
                    .persons;
                let moved = found.first().is_some_and(|p| p.village == "新迁村");
                Ok((persons == 300 && moved).then_some(()))
            }
        },
    )
    .await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    assert_eq!(
        events, 601,
        "300 registrations, 300 household memberships and one update; nothing from the repeats"
    );

    // The generator's households came along: one household per reference, at most one head.
    let references: std::collections::HashSet<String> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .filter_map(Result::ok)
        .filter(|r| r[0].starts_with('P'))
        .map(|r| r[10].to_owned())
        .collect();
    let households = eventually("every household in the read model", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let (households, members, most_heads): (i64, i64, i64) = sqlx::query_as(
                "SELECT count(DISTINCT household_id), count(*), coalesce(max(heads), 0) FROM household_members \
                 JOIN (SELECT household_id, count(*) FILTER (WHERE relationship = 1) AS heads \
                       FROM household_members GROUP BY household_id) h USING (household_id)",
            )
            .fetch_one(&pool)
            .await?;
            // Joins and registrations travel on different partitions; the person view must show
            // the household whichever came first.
            let placed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM persons p \
                 WHERE EXISTS (SELECT 1 FROM household_members m WHERE m.person_id = p.person_id)",
            )
                .fetch_one(&pool)
                .await?;
            Ok((members == 300 && placed == 300).then_some((households, most_heads)))
        }
    })
    .await?;
    assert_eq!(households, (i64::try_from(references.len())?, 1));

    // A file that cannot be read fails (1), naming it; wrong usage is 2.
    let (code, missing) = jiuzhu(&[
        "registry",
        "import",
        "--department",
        "x",
        "--registry",
        &address,
        "/nonexistent.csv",
    ])?;
    assert_eq!(code, Some(1), "{missing}");
    assert!(missing.contains("/nonexistent.csv"), "{missing}");
    let (code, usage) = jiuzhu(&["registry", "import", "/nonexistent.csv"])?;
    assert_eq!(code, Some(2), "{usage}");
    assert!(usage.contains("--department"), "{usage}");
    started.running.stop().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
