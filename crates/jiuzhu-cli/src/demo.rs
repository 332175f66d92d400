//! `jiuzhu demo seed`: the demo county's relief cases, taken through the running platform's
//! public APIs (`jiuzhu_demo::seed`), from the county file `jiuzhu gen registry --county`
//! wrote and `jiuzhu registry import` imported.

use std::path::PathBuf;

use anyhow::Context;
use jiuzhu_demo::seed::{County, Resident};
use jiuzhu_demo::{Endpoints, Platform};

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The county file (`jiuzhu gen registry --county … --out FILE`), already imported.
    #[arg(long)]
    registry: PathBuf,
    /// The county's six-digit code.
    #[arg(long, default_value = "520121")]
    county: String,
    /// The procuratorate that handles the county's cases.
    #[arg(long, default_value = "开阳县人民检察院")]
    procuratorate: String,
    /// Host the five services listen on (ports 50051 to 50055).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Directory holding `ca.pem` and the role certificates `as-<role>` (`jiuzhu dev certs`).
    #[arg(long, env = "JIUZHU_CERTS", default_value = ".jiuzhu/certs")]
    certs: PathBuf,
}

pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let residents = read_residents(&args.registry)?;
    let tls = jiuzhu_access::TlsSettings::in_dir(&args.certs);
    let platform = Platform::connect(&tls, &Endpoints::local(&args.host)).await?;
    let county = County {
        code: args.county.clone(),
        procuratorate: args.procuratorate.clone(),
        imported: i64::try_from(residents.len())?,
    };
    let seeded = jiuzhu_demo::seed::seed(&platform, &county, &residents, |step| {
        eprintln!("demo: {step}");
    })
    .await?;
    println!("demo cases of {} ({}):", args.procuratorate, args.county);
    for case in seeded {
        println!(
            "  {}  {:<17}  case {:<36}  trace {}",
            case.case_no,
            format!("{:?}", case.stage),
            if case.case_id.is_empty() {
                "-"
            } else {
                &case.case_id
            },
            case.trace_id
        );
    }
    Ok(())
}

/// The residents of the county file (the import columns), in file order.
fn read_residents(path: &std::path::Path) -> anyhow::Result<Vec<Resident>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read the county file {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let [name, gender, birth, id, region, address, phone] = [
        "full_name",
        "gender",
        "birth_date",
        "resident_id",
        "region_code",
        "address_text",
        "phone",
    ]
    .map(column);
    let (name, gender, birth, id, region, address, phone) =
        (name?, gender?, birth?, id?, region?, address?, phone?);
    let mut residents = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: line {}", path.display(), n + 2))?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        residents.push(Resident {
            full_name: field(name),
            gender: field(gender),
            birth_date: field(birth),
            resident_id: field(id),
            region_code: field(region),
            address: field(address),
            phone: field(phone),
        });
    }
    Ok(residents)
}
