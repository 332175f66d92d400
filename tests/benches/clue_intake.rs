//! Clue intake benchmark: ReportParty latency (screening, matching against the in-memory linkage
//! index, recording the events) with a generated population. The persons are written straight
//! into the service's `linkage_persons` as the projection writes them (sealed under data keys
//! created in a running registry's key store), so that a million load in about a minute instead
//! of going through the registry; then the service restarts and loads its memory index from
//! them, opening them with keys from the registry's key service. Prints the load time, the memory it took, p50/p99/max and the
//! decisions; no assertions.
//!
//! `cargo build --release --bins && cargo bench -p jiuzhu-tests --bench clue_intake`
//! (PostgreSQL and the broker as for the tests). BENCH_PERSONS (1000000), BENCH_PARTIES (2000).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jiuzhu_clues::Clues;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::clues::{ClueOrigin, Harm, PartyRole, ReportPartyRequest};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{binary_path, unique_namespace};
use jiuzhu_tests::{as_deployed, bench_setting, restart_with, start};

/// Requests sent before timing starts.
const WARM_UP: usize = 100;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let persons = bench_setting("BENCH_PERSONS", 1_000_000);
    let parties = bench_setting("BENCH_PARTIES", 2000);
    let dir = std::env::temp_dir();
    let registry_file = dir.join(format!("jiuzhu-clue-bench-{persons}.csv"));
    let parties_file = dir.join(format!("jiuzhu-clue-bench-{persons}-parties.csv"));
    let jiuzhu = binary_path("jiuzhu")?;
    let status = std::process::Command::new(&jiuzhu)
        .args([
            "gen",
            "registry",
            "--persons",
            &persons.to_string(),
            "--seed",
            "7",
            "--out",
        ])
        .arg(&registry_file)
        .status()?;
    anyhow::ensure!(status.success(), "gen registry failed");
    let status = std::process::Command::new(&jiuzhu)
        .args([
            "gen",
            "parties",
            "--parties",
            &parties.to_string(),
            "--seed",
            "3",
            "--registry",
        ])
        .arg(&registry_file)
        .arg("--out")
        .arg(&parties_file)
        .status()?;
    anyhow::ensure!(status.success(), "gen parties failed");

    let namespace = unique_namespace();
    // The registry holds the persons' data keys (its key service opens them for the index).
    let registry = start::<Registry>(&namespace).await?;
    let registry_pool = registry.running.store.pool().clone();
    let master = {
        use base64::Engine;
        let text = jiuzhu_testkit::test_master_key(&registry.database.url);
        let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the test master key is not 32 bytes"))?;
        jiuzhu_vault::MasterKey::new(&bytes)
    };
    let vault = jiuzhu_vault::Vault::new(master);
    let clues = start::<Clues>(&namespace).await?;
    // Only its database is needed while the persons are written (a running service would
    // already follow them into memory).
    clues.running.stop().await;
    let pool = sqlx::PgPool::connect(&clues.database.url).await?;
    let loading = Instant::now();
    let mut reader = csv::Reader::from_path(&registry_file)?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap_or(usize::MAX);
    let [
        name,
        gender,
        birth,
        resident,
        region,
        township,
        village,
        phone,
    ] = [
        "full_name",
        "gender",
        "birth_date",
        "resident_id",
        "region_code",
        "township",
        "village",
        "phone",
    ]
    .map(column);
    let mut batch: Vec<csv::StringRecord> = Vec::with_capacity(5000);
    let mut records = reader.records();
    let mut loaded = 0u64;
    loop {
        batch.clear();
        for row in records.by_ref().take(5000) {
            batch.push(row?);
        }
        if batch.is_empty() {
            break;
        }
        let ids: Vec<uuid::Uuid> = batch.iter().map(|_| uuid::Uuid::now_v7()).collect();
        let mut conn = registry_pool.acquire().await?;
        let keys = vault.ensure_keys(&mut conn, &ids).await?;
        drop(conn);
        let (mut sealed, mut regions, mut male) = (Vec::new(), Vec::new(), Vec::new());
        for (row, person) in batch.iter().zip(&ids) {
            let get = |i: usize| row.get(i).unwrap_or("");
            let identity = PersonalIdentity {
                full_name: get(name).to_owned(),
                birth_date: get(birth).to_owned(),
                resident_id: get(resident).to_owned(),
                township: get(township).to_owned(),
                village: get(village).to_owned(),
                address_text: String::new(),
                phone: get(phone).to_owned(),
            };
            let key = keys
                .get(person)
                .and_then(jiuzhu_vault::KeyState::live)
                .ok_or_else(|| anyhow::anyhow!("no key for {person}"))?;
            sealed.push(prost::Message::encode_to_vec(
                &key.seal(*person, &identity)?,
            ));
            regions.push(get(region).to_owned());
            male.push(jiuzhu_linkage::normalise::gender(get(gender)));
        }
        // As the projection writes them: sealed as the registry sealed them.
        sqlx::query(
            "INSERT INTO linkage_persons (person_id, identity, region_code, male, version) \
             SELECT p, i, g, m, 1 FROM unnest($1::uuid[], $2::bytea[], $3::text[], $4::bool[]) \
             AS x(p, i, g, m)",
        )
        .bind(&ids)
        .bind(&sealed)
        .bind(&regions)
        .bind(&male)
        .execute(&pool)
        .await?;
        loaded += batch.len() as u64;
    }
    sqlx::query("ANALYZE linkage_persons")
        .execute(&pool)
        .await?;
    eprintln!(
        "wrote {loaded} persons into linkage_persons in {:.1?}",
        loading.elapsed()
    );
    pool.close().await;

    // The service starts and loads its memory index; the first party waits for the load.
    let before = resident_kib();
    let starting = Instant::now();
    let running = restart_with::<Clues>(&namespace, &clues.database, as_deployed).await?;
    let mut client = CluesServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    // A request waits for the load only as long as the server's request timeout: on a small
    // machine a million persons take longer, so the status is watched instead.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        // The status itself waits for the load, up to the request timeout.
        let indexed = match client
            .get_linkage_index_status(jiuzhu_proto::clues::GetLinkageIndexStatusRequest {})
            .await
        {
            Ok(status) => status.into_inner().indexed_persons,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
                ) =>
            {
                0
            }
            Err(status) => return Err(status.into()),
        };
        if u64::try_from(indexed).unwrap_or(0) >= loaded {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the index holds {indexed} of {loaded} persons after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What a service that has run a while has: its tables vacuumed, the load's writes
    // checkpointed, every pooled connection's statements prepared. Otherwise the first
    // seconds measure the load's aftermath (autovacuum and a checkpoint on the same two cores).
    for url in [&clues.database.url, &registry.database.url] {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        pool.close().await;
    }
    for n in 0..WARM_UP {
        client
            .report_party(ReportPartyRequest {
                request_id: format!("bench-warm-up-{n}"),
                case_no: "warm-up".to_owned(),
                party_ref: format!("warm-up-{n}"),
                procuratorate: "bench".to_owned(),
                role: PartyRole::Victim as i32,
                harm: Some(Harm {
                    disability_grade: 5,
                    ..Harm::default()
                }),
                full_name: "预热".to_owned(),
                // ReportParty refuses a party without a real region code.
                region: Some(RegionCode {
                    code: "110105".to_owned(),
                }),
                ..ReportPartyRequest::default()
            })
            .await?;
    }
    let after = resident_kib();
    println!(
        "memory index of {loaded} persons: loaded {:.1?} after start, resident memory +{} MiB ({} MiB in all)",
        starting.elapsed(),
        after.saturating_sub(before) / 1024,
        after / 1024
    );
    let mut histogram = Histogram::<u64>::new(3)?;
    let (mut automatic, mut review, mut none, mut refused) = (0, 0, 0, 0);
    let mut reader = csv::Reader::from_path(&parties_file)?;
    let headers = reader.headers()?.clone();
    let get = |row: &csv::StringRecord, name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| row.get(i))
            .unwrap_or("")
            .to_owned()
    };
    for (n, row) in reader.records().enumerate() {
        let row = row?;
        let request = ReportPartyRequest {
            request_id: format!("bench-{n}"),
            case_no: get(&row, "case_no"),
            party_ref: get(&row, "party_id"),
            procuratorate: "bench".to_owned(),
            role: PartyRole::Victim as i32,
            harm: Some(Harm {
                disability_grade: 5,
                ..Harm::default()
            }),
            full_name: get(&row, "name"),
            id_number: get(&row, "id_number"),
            gender: get(&row, "gender"),
            birth_date: get(&row, "birth_date"),
            phone: get(&row, "phone"),
            // A case file without the party's region leaves it out (an empty code is refused).
            region: Some(get(&row, "region_code"))
                .filter(|code| !code.is_empty())
                .map(|code| RegionCode { code }),
            address: get(&row, "address"),
            ..ReportPartyRequest::default()
        };
        let started = Instant::now();
        let answer = match client.report_party(request).await {
            Ok(answer) => answer.into_inner(),
            // A case file the API refuses (no region, say) is counted, not timed.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                refused += 1;
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        histogram.record(u64::try_from(started.elapsed().as_micros())?)?;
        match answer.clue.map(|c| c.origin) {
            Some(o) if o == ClueOrigin::Automatic as i32 => automatic += 1,
            Some(_) => review += 1,
            None => none += 1,
        }
        // A steady 200 parties per second, not a burst.
        tokio::time::sleep(Duration::from_millis(5).saturating_sub(started.elapsed())).await;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "ReportParty against {loaded} indexed persons, {parties} parties: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {automatic} automatic, {review} review, {none} none, {refused} refused as invalid",
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    running.stop().await;
    registry.running.stop().await;
    let _ = std::fs::remove_file(&registry_file);
    let _ = std::fs::remove_file(&parties_file);
    Ok(())
}

/// This process's resident memory (the service runs in it), from /proc.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
