//! `jiuzhu demo seed`: the demo county's relief cases, taken through the running platform's
//! public APIs (`jiuzhu_demo::seed`), from the county file `jiuzhu gen registry --county`
//! wrote and `jiuzhu registry import` imported.

use std::path::PathBuf;

use jiuzhu_demo::seed::County;
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
    let residents = jiuzhu_demo::seed::read_residents(&args.registry)?;
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
