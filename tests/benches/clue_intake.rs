//! Clue intake benchmark: ReportParty latency (screening, matching against the linkage index,
//! recording the events) with a generated population in the clues service's index. The index
//! is loaded straight into the service's database with the same normalisation and blocking keys
//! the projection writes, so that a million persons load in about a minute instead of going
//! through the registry. Prints p50/p99/max and the decisions; no assertions.
//!
//! `cargo build --release --bins && cargo bench -p jiuzhu-tests --bench clue_intake`
//! (PostgreSQL and the broker as for the tests). BENCH_PERSONS (1000000), BENCH_PARTIES (2000).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jiuzhu_clues::Clues;
use jiuzhu_linkage::{Normalised, Written, blocking_keys};
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::clues::{ClueOrigin, Harm, PartyRole, ReportPartyRequest};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_testkit::{binary_path, unique_namespace};
use jiuzhu_tests::{bench_setting, start};

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

    let clues = start::<Clues>(&unique_namespace()).await?;
    let pool = clues.running.store.pool().clone();
    let loading = Instant::now();
    let mut reader = csv::Reader::from_path(&registry_file)?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap_or(usize::MAX);
    let [
        id,
        name,
        gender,
        birth,
        resident,
        region,
        township,
        village,
        phone,
    ] = [
        "source_record_id",
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
        let mut ids = Vec::new();
        let mut columns: [Vec<String>; 9] = Default::default();
        let mut male = Vec::new();
        let (mut keys, mut key_persons) = (Vec::new(), Vec::new());
        for row in &batch {
            let get = |i: usize| row.get(i).unwrap_or("");
            let person = uuid::Uuid::now_v7();
            let normalised = Normalised::from_written(&Written {
                name: get(name),
                resident_id: get(resident),
                gender: get(gender),
                birth_date: get(birth),
                phone: get(phone),
                region_code: get(region),
                township: get(township),
                village: get(village),
            });
            for key in blocking_keys(&normalised) {
                keys.push(key);
                key_persons.push(person);
            }
            ids.push(person);
            male.push(normalised.male);
            for (slot, value) in columns.iter_mut().zip([
                get(name),
                get(birth),
                get(resident),
                get(region),
                get(phone),
                get(township),
                get(village),
                &normalised.name,
                get(id),
            ]) {
                slot.push(value.to_owned());
            }
        }
        sqlx::query(
            "INSERT INTO linkage_persons (person_id, full_name, birth_date, resident_id, region_code, \
             phone, township, village, norm_name, male, version) \
             SELECT p, n, b, r, g, ph, t, v, nn, m, 1 FROM unnest($1::uuid[], $2::text[], $3::text[], \
             $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[]) \
             AS x(p, n, b, r, g, ph, t, v, nn, m)",
        )
        .bind(&ids)
        .bind(&columns[0])
        .bind(&columns[1])
        .bind(&columns[2])
        .bind(&columns[3])
        .bind(&columns[4])
        .bind(&columns[5])
        .bind(&columns[6])
        .bind(&columns[7])
        .bind(&male)
        .execute(&pool)
        .await?;
        sqlx::query(
            "INSERT INTO linkage_blocks (key, person_id) SELECT * FROM unnest($1::text[], $2::uuid[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&keys)
        .bind(&key_persons)
        .execute(&pool)
        .await?;
        loaded += batch.len() as u64;
    }
    sqlx::query("UPDATE linkage_index_stats SET persons = $1")
        .bind(i64::try_from(loaded)?)
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE linkage_persons")
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE linkage_blocks").execute(&pool).await?;
    eprintln!(
        "loaded {loaded} persons into the linkage index in {:.1?}",
        loading.elapsed()
    );

    let mut client =
        CluesServiceClient::connect(format!("http://{}", clues.running.grpc_addr)).await?;
    let mut histogram = Histogram::<u64>::new(3)?;
    let (mut automatic, mut review, mut none) = (0, 0, 0);
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
            region: Some(RegionCode {
                code: get(&row, "region_code"),
            }),
            address: get(&row, "address"),
            ..ReportPartyRequest::default()
        };
        let started = Instant::now();
        let answer = client.report_party(request).await?.into_inner();
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
        "ReportParty against {loaded} indexed persons, {parties} parties: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {automatic} automatic, {review} review, {none} none",
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    clues.running.stop().await;
    let _ = std::fs::remove_file(&registry_file);
    let _ = std::fs::remove_file(&parties_file);
    Ok(())
}
