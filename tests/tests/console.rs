//! The staff console in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver), against the five services as processes on their own databases, the real
//! broker and the payment simulator. A relief prosecutor signs in with password and
//! authenticator code, confirms a clue the matcher left for review, refers it, assesses the
//! case, uploads the materials and review records, accepts, asks for the recommendation,
//! proposes and reads the person file; an approver of the
//! wrong tier is refused and one of the right tier approves; a finance officer sees the payment;
//! and reconciles the bank's statement; a follow-up officer records a visit with PHQ-9 items; a prosecutor of another office sees no
//! clue and is refused the case; a victim applies from a phone-sized window with a code sent to
//! her phone (the SMS simulator), uploads two materials, and sees the stage and what is still
//! missing with her application number and check code. Every page is checked for the accessibility basics (labels,
//! language, contrast, names of charts) and photographed under `target/console-screenshots/`,
//! with its load time in `target/console-screenshots/load-times.txt`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use jiuzhu_demo::Platform;
use jiuzhu_demo::seed::Resident;
use jiuzhu_proto::clues::{Clue, ClueStatus};
use jiuzhu_testkit::{ServiceProcess, TestDatabase, unique_namespace};
use jiuzhu_tests::payments::Paysim;
use jiuzhu_tests::{SERVICES, TestResult, eventually};

const REGION: &str = "520102";
const PROCURATORATE: &str = "贵阳市南明区人民检察院";
const OTHER_OFFICE: &str = "522701";
const RESIDENTS: usize = 200;
const WAIT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "a long test passphrase";

/// The staff of the test, as the directory holds them.
struct Staff {
    staff_no: &'static str,
    secret: String,
}

/// The browser, where it writes screenshots, and what it measured.
struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
    taken: usize,
    load_times: Vec<(String, f64)>,
    accessibility: Vec<String>,
}

/// What the page must offer everyone: a language, labels on every control, names on every
/// button, link and chart, text contrast of at least 4.5:1 (WCAG AA).
const ACCESSIBILITY_CHECK: &str = r#"
const problems = [];
if (!document.documentElement.lang) problems.push('the page has no language');
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  const label = el.id && document.querySelector('label[for="' + el.id + '"]');
  if (!label && !el.getAttribute('aria-label')) problems.push('unlabelled control ' + (el.name || el.id));
}
for (const el of document.querySelectorAll('button, a')) {
  if (!el.textContent.trim() && !el.getAttribute('aria-label')) problems.push('unnamed ' + el.outerHTML.slice(0, 80));
}
for (const el of document.querySelectorAll('img')) if (!el.hasAttribute('alt')) problems.push('image without alt');
for (const el of document.querySelectorAll('svg')) {
  if (el.getAttribute('role') !== 'img' || !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'))) problems.push('chart without a name');
}
function channels(c) { return (c.match(/[\d.]+/g) || ['255', '255', '255']).map(Number); }
function luminance(c) {
  const [r, g, b] = channels(c).slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function background(el) {
  while (el) {
    const c = getComputedStyle(el).backgroundColor; const v = channels(c);
    if (v.length < 4 || v[3] > 0) return c;
    el = el.parentElement;
  }
  return 'rgb(255, 255, 255)';
}
for (const el of document.querySelectorAll('p, li, td, th, label, a, button, h1, h2, h3, dt, dd, summary, legend, small')) {
  if (!el.textContent.trim() || el.getClientRects().length === 0) continue;
  const a = luminance(getComputedStyle(el).color), b = luminance(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ' of ' + el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '"');
}
return problems;
"#;

impl Browser {
    async fn start(base: String, driver_port: u16) -> anyhow::Result<Self> {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": chromium()?,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1400", "--lang=zh-CN"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = eventually("chromedriver to take a session", WAIT, || {
            let capabilities = capabilities.clone();
            let connector = connector.clone();
            async move {
                Ok(ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{driver_port}"))
                    .await
                    .ok())
            }
        })
        .await?;
        let shots = target_dir().join("console-screenshots");
        // This run's pictures only.
        if shots.exists() {
            std::fs::remove_dir_all(&shots)?;
        }
        std::fs::create_dir_all(&shots)?;
        Ok(Self {
            client,
            base,
            shots,
            taken: 0,
            load_times: Vec::new(),
            accessibility: Vec::new(),
        })
    }

    /// Opens `path`, records how long the page took to load, checks its accessibility and
    /// photographs it as `name`.
    async fn visit(&mut self, path: &str, name: &str) -> TestResult {
        self.client.goto(&format!("{}{path}", self.base)).await?;
        self.look(name).await
    }

    /// Records the page scrolled to `css`.
    async fn look_at(&mut self, name: &str, css: &str) -> TestResult {
        self.client
            .execute(
                "const el = document.querySelector(arguments[0]); if (el) el.scrollIntoView();",
                vec![serde_json::Value::String(css.to_owned())],
            )
            .await?;
        self.look(name).await
    }

    /// Records the page as it stands now (after a form, a redirect).
    async fn look(&mut self, name: &str) -> TestResult {
        let duration = self
            .client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0]; return n ? n.duration : -1;",
                vec![],
            )
            .await?
            .as_f64()
            .unwrap_or(-1.0);
        self.load_times.push((name.to_owned(), duration));
        let problems = self.client.execute(ACCESSIBILITY_CHECK, vec![]).await?;
        for problem in problems.as_array().into_iter().flatten() {
            self.accessibility
                .push(format!("{name}: {}", problem.as_str().unwrap_or_default()));
        }
        self.taken += 1;
        let png = self.client.screenshot().await?;
        std::fs::write(
            self.shots.join(format!("{:02}-{name}.png", self.taken)),
            png,
        )?;
        Ok(())
    }

    async fn fill(&self, css: &str, text: &str) -> TestResult {
        let field = self.client.find(Locator::Css(css)).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    async fn click(&self, css: &str) -> TestResult {
        self.client.find(Locator::Css(css)).await?.click().await?;
        Ok(())
    }

    /// Clicks what sends a form or follows a link, and waits for the next page to load (a
    /// click returns before the navigation it starts).
    async fn submit(&self, css: &str) -> TestResult {
        self.client
            .execute("window.__jiuzhuBefore = true;", vec![])
            .await?;
        self.click(css).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self
                .client
                .execute(
                    "return window.__jiuzhuBefore === true ? 'before' : document.readyState;",
                    vec![],
                )
                .await;
            if matches!(
                state.as_ref().ok().and_then(|s| s.as_str()),
                Some("complete")
            ) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{css} led to no page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css(css)).await?.text().await?)
    }

    async fn has(&self, css: &str) -> anyhow::Result<bool> {
        Ok(!self.client.find_all(Locator::Css(css)).await?.is_empty())
    }

    /// Reloads `path` until the page has `css` (the platform's events cross services).
    async fn until(&self, path: &str, css: &str) -> TestResult {
        let deadline = Instant::now() + WAIT;
        loop {
            self.client.goto(&format!("{}{path}", self.base)).await?;
            if self.has(css).await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                let heading = self.text("h1").await.unwrap_or_default();
                anyhow::bail!("{path} never showed {css} (the page says: {heading})");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn sign_in(&mut self, member: &Staff) -> TestResult {
        self.client
            .goto(&format!("{}/signin?lang=zh-CN", self.base))
            .await?;
        self.fill("#staff_no", member.staff_no).await?;
        self.fill("#password", PASSWORD).await?;
        let code = jiuzhu_console::staff::totp_code(&member.secret, chrono::Utc::now())?;
        self.fill("#code", &code).await?;
        self.submit("#signin").await?;
        if !self.has("#who").await? {
            let error = self.text("#signin-error").await.unwrap_or_default();
            anyhow::bail!("{} could not sign in: {error}", member.staff_no);
        }
        Ok(())
    }

    async fn sign_out(&self) -> TestResult {
        self.submit("#signout").await?;
        anyhow::ensure!(
            self.has("#signin").await?,
            "signing out leads to the sign-in page"
        );
        Ok(())
    }

    /// The error page's status line, or empty when the page is not one.
    async fn refusal(&self) -> anyhow::Result<String> {
        Ok(if self.has("section.error").await? {
            self.text("section.error").await?
        } else {
            let url = self.client.current_url().await?;
            let heading = self.text("h1").await.unwrap_or_default();
            format!("no error page: at {} ({heading})", url.path())
        })
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn chromium() -> anyhow::Result<String> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Chromium is not installed: `apt-get install chromium chromium-driver` (.ci/run does)"
            )
        })
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Driver {
    fn start() -> anyhow::Result<Self> {
        let port = jiuzhu_testkit::free_port()?;
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|error| {
                anyhow::anyhow!(
                    "chromedriver: {error} (`apt-get install chromium-driver`; .ci/run does)"
                )
            })?;
        Ok(Self { child, port })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The five services as processes, the simulator, and the agencies' clients.
struct Services {
    simulator: Paysim,
    processes: Vec<ServiceProcess>,
    endpoints: jiuzhu_demo::Endpoints,
    platform: Platform,
    ports: BTreeMap<&'static str, u16>,
    _databases: Vec<TestDatabase>,
}

impl Services {
    async fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        // A recommendation model trained on synthetic past cases, as `jiuzhu recommend train`
        // writes one.
        let history = jiuzhu_recommend::generate::past_cases(2000, 24);
        let model = jiuzhu_recommend::Recommender::train(&history, "console-test", |_, _| {})?;
        let model_path = dir.join("recommender.json");
        std::fs::write(&model_path, serde_json::to_vec(&model)?)?;
        let namespace = unique_namespace();
        let ports = jiuzhu_tests::service_ports()?;
        let port = |service: &str| ports.get(service).copied().unwrap_or_default();
        let simulator = Paysim::spawn(
            Some(&format!("https://127.0.0.1:{}", port("payments"))),
            &["--asynchronous"],
        )
        .await?;
        let (databases, environments) = jiuzhu_tests::process_environments(
            &ports,
            &jiuzhu_tests::ProcessOptions {
                namespace: &namespace,
                otlp: "",
                max_connections: 5,
                instance_prefix: "console",
                provider: &simulator.endpoint,
                provider_poll_ms: 20,
                resend_after_ms: 2000,
                extra: vec![(
                    "JIUZHU__RECOMMENDER__MODEL".to_owned(),
                    model_path.display().to_string(),
                )],
            },
        )
        .await?;
        let mut processes = Vec::new();
        for service in SERVICES {
            processes.push(jiuzhu_tests::spawn_service(service, &environments)?);
        }
        for service in SERVICES {
            jiuzhu_tests::serving(port(service), WAIT).await?;
        }
        let endpoints = jiuzhu_tests::endpoints(&ports);
        let mut platform = Platform::connect(&jiuzhu_testkit::tls(), &endpoints).await?;
        platform.patience = WAIT;
        Ok(Self {
            simulator,
            processes,
            endpoints,
            platform,
            ports,
            _databases: databases.into_values().collect(),
        })
    }

    async fn stop(mut self) -> TestResult {
        while let Some(process) = self.processes.pop() {
            process.terminate().await?;
        }
        Ok(())
    }
}

/// What a case file leaves out of the victim's record.
type LeaveOut = fn(&mut jiuzhu_demo::Victim);

/// Reports the victim with less and less of her record left out, until the matcher leaves the
/// clue for review (between the policy's review and automatic probabilities).
async fn clue_for_review(
    platform: &Platform,
    resident: &Resident,
) -> anyhow::Result<(Clue, Vec<String>)> {
    let full = jiuzhu_demo::seed::victim_of(resident, false);
    // Case files often write a victim as surname + 某; less and less of the rest is known.
    let variants: [(&str, LeaveOut); 6] = [
        ("surname, birth date and county", |v| {
            v.full_name = format!("{}某", v.full_name.chars().next().unwrap_or('王'));
            v.address.clear();
            v.phone.clear();
        }),
        ("surname, birth date and address", |v| {
            v.full_name = format!("{}某", v.full_name.chars().next().unwrap_or('王'));
            v.phone.clear();
        }),
        ("surname, sex, birth date, address and phone", |v| {
            v.full_name = format!("{}某", v.full_name.chars().next().unwrap_or('王'));
        }),
        ("given name misheard, birth date", |v| {
            let mut name: Vec<char> = v.full_name.chars().collect();
            if let Some(last) = name.last_mut() {
                *last = if *last == '华' { '花' } else { '华' };
            }
            v.full_name = name.into_iter().collect();
            v.address.clear();
            v.phone.clear();
        }),
        ("given name misheard, county", |v| {
            let mut name: Vec<char> = v.full_name.chars().collect();
            if let Some(last) = name.last_mut() {
                *last = if *last == '华' { '花' } else { '华' };
            }
            v.full_name = name.into_iter().collect();
            v.birth_date.clear();
            v.address.clear();
            v.phone.clear();
        }),
        ("name and county", |v| {
            v.birth_date.clear();
            v.address.clear();
            v.phone.clear();
            v.gender.clear();
        }),
    ];
    let mut tried = Vec::new();
    for (n, (what, leave_out)) in variants.into_iter().enumerate() {
        let mut victim = full.clone();
        leave_out(&mut victim);
        let tag = format!("console-{}-{n}", uuid::Uuid::now_v7().simple());
        let case_no = format!("(2026)黔0102刑初{}号", 300 + n);
        let reported = platform
            .report_victim(&tag, &case_no, PROCURATORATE, &victim)
            .await;
        match reported {
            Ok(answer) => match answer.clue {
                Some(clue) if clue.status == ClueStatus::AwaitingReview as i32 => {
                    tried.push(format!("{what}: {:.3}, for review", clue.probability));
                    return Ok((clue, tried));
                }
                Some(clue) => tried.push(format!("{what}: {:.3}", clue.probability)),
                None => tried.push(format!("{what}: no clue ({})", answer.screened_out)),
            },
            Err(error) => tried.push(format!("{what}: refused ({error})")),
        }
    }
    anyhow::bail!("no report landed in the review band: {tried:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_take_a_case_from_clue_to_payment_and_visit_in_the_browser() -> TestResult {
    let driver = Driver::start()?;
    let dir =
        std::env::temp_dir().join(format!("jiuzhu-console-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let services = Services::start(&dir).await?;
    let platform = services.platform.clone();

    // The county's register, a registered-poor victim, and her clue left for review.
    let registry_port = services.ports.get("registry").copied().unwrap_or_default();
    let residents = jiuzhu_tests::import_register(
        registry_port,
        &dir.join("register.csv"),
        RESIDENTS,
        5,
        REGION,
    )?;
    let resident = residents
        .iter()
        .find(|r| r.resident_id.len() == 18 && r.birth_date.as_str() < "1990")
        .ok_or_else(|| anyhow::anyhow!("the register has no adult with an id"))?
        .clone();
    let person_id = platform.find_person(&resident.resident_id).await?;
    platform
        .record_registered_poor("console", &person_id)
        .await?;
    platform
        .wait_for_linkage_index(i64::try_from(RESIDENTS)?)
        .await?;
    let (clue, tried) = clue_for_review(&platform, &resident).await?;
    eprintln!("reports tried: {tried:?}");
    // Finance's budget, as the finance system sets it.
    platform
        .allocate("console", PROCURATORATE, 10_000_000)
        .await?;

    // The console, its staff directory, and the browser.
    let database = jiuzhu_testkit::empty_database("console").await?;
    let settings = jiuzhu_console::ConsoleSettings {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: jiuzhu_config::Secret::new(database.url.clone()),
        tls_dir: jiuzhu_testkit::certs_dir()?,
        registry: services.endpoints.registry.clone(),
        clues: services.endpoints.clues.clone(),
        decisions: services.endpoints.decisions.clone(),
        payments: services.endpoints.payments.clone(),
        followup: services.endpoints.followup.clone(),
        upload_dir: dir.join("uploads"),
        ..jiuzhu_console::ConsoleSettings::default()
    };
    let policy_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy");
    let console =
        jiuzhu_console::start(settings.clone(), &policy_dir, jiuzhu_clock::Clock::system()).await?;
    let pool = jiuzhu_console::database(&settings).await?;
    let mut staff = BTreeMap::new();
    for (staff_no, office, role, tier) in [
        ("P-1", REGION, "relief_prosecutor", ""),
        ("J-1", REGION, "approver", "department_head"),
        ("J-2", REGION, "approver", "chief_prosecutors_meeting"),
        ("F-1", REGION, "finance_officer", ""),
        ("V-1", REGION, "followup_officer", ""),
        ("P-9", OTHER_OFFICE, "relief_prosecutor", ""),
        ("A-1", REGION, "auditor", ""),
    ] {
        let secret = jiuzhu_console::staff::add(
            &pool,
            "test",
            &jiuzhu_console::staff::NewStaff {
                staff_no: staff_no.to_owned(),
                display_name: format!("测试 {staff_no}"),
                office: office.to_owned(),
                role: role.to_owned(),
                tier: tier.to_owned(),
                administrator: staff_no == "A-1",
                password: PASSWORD.to_owned(),
            },
            chrono::Utc::now(),
        )
        .await?;
        staff.insert(staff_no, Staff { staff_no, secret });
    }
    let member = |no: &str| {
        staff
            .get(no)
            .ok_or_else(|| anyhow::anyhow!("no member {no}"))
    };
    let mut browser = Browser::start(console.url(), driver.port).await?;

    // The sign-in page: keyboard order, then a wrong code is refused.
    browser.visit("/signin?lang=zh-CN", "signin").await?;
    let mut order = Vec::new();
    browser
        .client
        .execute(
            "document.activeElement && document.activeElement.blur();",
            vec![],
        )
        .await?;
    for _ in 0..5 {
        browser
            .client
            .find(Locator::Css("body"))
            .await?
            .send_keys("\u{e004}")
            .await?;
        let focused = browser
            .client
            .execute(
                "return document.activeElement.id || document.activeElement.className;",
                vec![],
            )
            .await?;
        order.push(focused.as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        order,
        ["skip", "staff_no", "password", "code", "signin"],
        "keyboard order"
    );
    browser.fill("#staff_no", "P-1").await?;
    browser.fill("#password", PASSWORD).await?;
    browser.fill("#code", "000000").await?;
    browser.submit("#signin").await?;
    assert!(
        browser.has("#signin-error").await?,
        "a wrong code is refused: {}",
        browser.text("body").await.unwrap_or_default()
    );

    // The relief prosecutor: confirm the clue left for review, refer it.
    browser.sign_in(member("P-1")?).await?;
    browser.look("home-relief-prosecutor").await?;
    let card = format!("#clue-{}", clue.clue_id);
    browser
        .until(
            "/clues?status=awaiting_review",
            &format!("{card} button.confirm"),
        )
        .await?;
    browser.look("clue-board-review").await?;
    assert!(
        browser
            .text(&format!("{card} .probability"))
            .await?
            .contains('%'),
        "the board shows the probability"
    );
    browser
        .fill(
            &format!("#confirm-reason-{}", clue.clue_id),
            "姓名、户籍地一致，经电话核实",
        )
        .await?;
    browser.submit(&format!("{card} button.confirm")).await?;
    assert!(
        browser.has("p.notice.ok").await?,
        "the confirmation is acknowledged: {}",
        browser.refusal().await?
    );
    browser
        .until("/clues", &format!("{card} button.refer"))
        .await?;
    browser.submit(&format!("{card} button.refer")).await?;
    browser
        .until("/clues", &format!("{card} a.case-link"))
        .await?;
    browser.look("clue-board-referred").await?;
    browser.visit("/cases", "cases-deadlines").await?;
    assert_eq!(
        browser.text("h1").await?,
        "案件",
        "{}",
        browser.refusal().await?
    );
    browser.visit("/clues", "clue-board-after-referral").await?;
    browser.submit(&format!("{card} a.case-link")).await?;
    let case_id = browser.text("#case-id").await?;
    let case_path = format!("/cases/{case_id}");
    browser.look("case-opened").await?;

    // Eligibility, the materials, acceptance.
    browser.click("#fact-seriously_injured_or_disabled").await?;
    browser
        .click("#fact-offender_cannot_pay_or_unknown")
        .await?;
    browser.submit("#assess").await?;
    browser.until(&case_path, "#eligibility").await?;
    for material in [
        "application",
        "identity_proof",
        "proof_of_harm",
        "proof_of_hardship",
    ] {
        let file = dir.join(format!("{material}.pdf"));
        std::fs::write(&file, format!("%PDF-1.4 {material} of {case_id}"))?;
        browser
            .until(&case_path, &format!("#material option[value={material}]"))
            .await?;
        browser
            .client
            .find(Locator::Css("#material"))
            .await?
            .select_by_value(material)
            .await?;
        browser
            .client
            .find(Locator::Css("#material-file"))
            .await?
            .send_keys(&file.display().to_string())
            .await?;
        browser.submit("#upload-material").await?;
        anyhow::ensure!(
            browser.has("p.notice.ok").await?,
            "{material}: {}",
            browser.refusal().await?
        );
    }
    browser.until(&case_path, "#accept").await?;
    browser
        .look_at("case-materials-complete", "#material-form, .materials")
        .await?;
    browser.submit("#accept").await?;
    for kind in ["home_visit", "interview"] {
        let file = dir.join(format!("{kind}.pdf"));
        std::fs::write(&file, format!("%PDF-1.4 {kind} record of {case_id}"))?;
        browser.until(&case_path, "#record-review").await?;
        browser
            .client
            .find(Locator::Css("#review-kind"))
            .await?
            .select_by_value(kind)
            .await?;
        browser
            .client
            .find(Locator::Css("#review-file"))
            .await?
            .send_keys(&file.display().to_string())
            .await?;
        browser.submit("#record-review").await?;
        anyhow::ensure!(
            browser.has("p.notice.ok").await?,
            "{kind}: {}",
            browser.refusal().await?
        );
    }
    // The victim's account, registered on the case page.
    browser.fill("#holder", &resident.full_name).await?;
    browser
        .fill("#account", &jiuzhu_paysim::sandbox_card("6222020000", 77))
        .await?;
    browser
        .fill("#institution", "中国农业银行南明区支行")
        .await?;
    browser.submit("#register-payee").await?;
    anyhow::ensure!(
        browser.has("p.notice.ok").await?,
        "the payee is registered: {}",
        browser.refusal().await?
    );
    // The recommendation from past cases, with what moved the amount and similar cases.
    browser.until(&case_path, "#propose").await?;
    browser.click("#serious_injury").await?;
    browser.fill("#disability_grade", "7").await?;
    browser.fill("#medical_costs", "30000").await?;
    browser.fill("#rec_income", "300").await?;
    browser.fill("#household_size", "4").await?;
    browser.fill("#minimum_line", "600").await?;
    browser.click("#registered_poor").await?;
    browser.submit("#recommend").await?;
    anyhow::ensure!(
        browser.has("#recommendation").await?,
        "a recommendation: {}",
        browser.refusal().await?
    );
    assert!(
        browser
            .client
            .find_all(Locator::Css("#recommendation tbody tr"))
            .await?
            .len()
            >= 3,
        "factors, methods and similar cases are shown"
    );
    browser
        .look_at("case-recommendation", "#recommendation-section")
        .await?;
    // 12,000 yuan: above 10,000, so the chief prosecutors' meeting decides.
    browser.fill("#amount", "12000").await?;
    // Departing from the recommendation needs a reason.
    browser
        .fill(
            "#departure_reason",
            "入户调查：家中两名未成年子女，困难程度高于同类案件",
        )
        .await?;
    browser.submit("#propose").await?;
    anyhow::ensure!(
        browser.has("p.notice.ok").await?,
        "the proposal is made: {}",
        browser.refusal().await?
    );
    browser.until(&case_path, "#awaiting").await?;
    browser.look("case-proposed").await?;
    browser.submit("#person-file-link").await?;
    let entries = browser
        .client
        .find_all(Locator::Css("#person-file li"))
        .await?
        .len();
    assert!(
        entries >= 5,
        "the person file tells the story so far: {entries} entries"
    );
    browser.look("person-file").await?;
    browser.sign_out().await?;

    // The head of department may not approve this amount; the meeting's approver does.
    browser.sign_in(member("J-1")?).await?;
    browser.visit(&case_path, "case-wrong-tier").await?;
    browser.submit("#approve").await?;
    let refused = browser.refusal().await?;
    assert!(
        refused.contains("403"),
        "a wrong tier is refused: {refused}"
    );
    browser.look("approval-refused-wrong-tier").await?;
    browser.sign_out().await?;
    browser.sign_in(member("J-2")?).await?;
    // The approver finds the case on the office's work list.
    browser
        .until("/cases", &format!("a[href=\"{case_path}\"]"))
        .await?;
    browser.look("cases-work-list").await?;
    browser.submit(&format!("a[href=\"{case_path}\"]")).await?;
    browser.until(&case_path, "#approve").await?;
    browser.submit("#approve").await?;
    assert!(
        browser.has("p.notice.ok").await?,
        "the right tier approves: {}",
        browser.refusal().await?
    );
    browser.until(&case_path, "#approval").await?;
    browser.look("case-approved").await?;
    browser.sign_out().await?;

    // Finance sees the payment go through.
    browser.sign_in(member("F-1")?).await?;
    let finance = format!("/finance?case_id={case_id}&procuratorate={}", PROCURATORATE);
    browser.until(&finance, ".disbursement.paid").await?;
    browser.look("finance-paid").await?;
    assert!(browser.text("#paid-total").await?.starts_with("12000.00"));
    // The bank's statement reconciles with what was recorded.
    let statement = services
        .simulator
        .client
        .clone()
        .export_statement(jiuzhu_proto::gateway::ExportStatementRequest {})
        .await?
        .into_inner();
    let statement_file = dir.join("statement.csv");
    std::fs::write(&statement_file, &statement.csv)?;
    browser
        .client
        .find(Locator::Css("#statement-file"))
        .await?
        .send_keys(&statement_file.display().to_string())
        .await?;
    browser
        .fill("#control_count", &statement.line_count.to_string())
        .await?;
    let total = statement.total.map(|m| m.fen).unwrap_or_default();
    browser
        .fill("#control_total", &jiuzhu_proto::money::yuan(total))
        .await?;
    browser.submit("#reconcile").await?;
    anyhow::ensure!(
        browser.has("#reconciliation").await?,
        "a reconciliation: {}",
        browser.refusal().await?
    );
    assert_eq!(browser.text("#statement-matched").await?, "1");
    assert!(browser.has("#no-mismatches").await?, "the statement agrees");
    browser
        .look_at("finance-reconciled", "#reconciliation")
        .await?;
    browser.sign_out().await?;

    // Follow-up records the first visit with the PHQ-9 items.
    let plan = platform.plan(&case_id).await?;
    browser.sign_in(member("V-1")?).await?;
    browser.visit("/followup", "followup-due").await?;
    let plan_path = format!("/followup/{}", plan.plan_id);
    browser.until(&plan_path, "#record-visit").await?;
    browser.fill("#income_per_head", "300").await?;
    for (item, answer) in [2, 2, 2, 1, 1, 1, 1, 1, 0].into_iter().enumerate() {
        browser
            .fill(&format!("#phq9_{}", item + 1), &answer.to_string())
            .await?;
    }
    browser.fill("#notes", "伤后未能务工，家中收入下降").await?;
    browser.submit("#record-visit").await?;
    assert!(
        browser.has("p.notice.ok").await?,
        "the visit is recorded: {}",
        browser.refusal().await?
    );
    browser.until(&plan_path, "svg.chart circle").await?;
    browser.look("followup-visit-recorded").await?;
    browser
        .look_at("followup-visit-form", "#visit-form fieldset")
        .await?;
    browser.sign_out().await?;

    // Another office's prosecutor sees none of it.
    browser.sign_in(member("P-9")?).await?;
    browser.visit("/clues", "other-office-clues").await?;
    assert!(
        browser.has("#no-clues").await?,
        "another office sees no clue"
    );
    browser.visit(&case_path, "other-office-case").await?;
    let refused = browser.refusal().await?;
    assert!(
        refused.contains("403"),
        "another office is refused the case: {refused}"
    );

    browser.sign_out().await?;

    // The administrator adds a member (the secret shown once) and turns another's access off;
    // both changes are in the directory's audit.
    browser.sign_in(member("A-1")?).await?;
    browser.visit("/admin/staff", "staff-directory").await?;
    browser.fill("#new-staff-no", "V-2").await?;
    browser.fill("#new-name", "回访 新").await?;
    browser.fill("#new-office", REGION).await?;
    browser
        .client
        .find(Locator::Css("#new-role"))
        .await?
        .select_by_value("followup_officer")
        .await?;
    browser.fill("#new-password", PASSWORD).await?;
    browser.submit("#add-staff").await?;
    let secret = browser.text("#new-secret").await?;
    assert!(secret.len() >= 32, "a base32 secret: {secret}");
    browser.submit("#staff-P-9 button").await?;
    let row = browser.text("#staff-P-9").await?;
    assert!(row.contains('否'), "P-9 is off: {row}");
    let audit = browser.text("ol.audit").await?;
    assert!(
        audit.contains("disabled · P-9") && audit.contains("added · V-2"),
        "{audit}"
    );
    browser.look("staff-directory-changed").await?;

    // The staff view in English.
    browser.visit("/", "home-administrator").await?;
    browser.submit("header form.inline button.link").await?;
    assert_eq!(browser.text("h1").await?, "Start", "the English start page");
    browser.look("home-english").await?;
    browser.sign_out().await?;

    // A victim applies from a phone, then sees the stage and what is missing.
    browser.client.set_window_size(390, 844).await?;
    let applicant = residents
        .iter()
        .find(|r| {
            r.resident_id.len() == 18
                && r.resident_id != resident.resident_id
                && r.phone.len() == 11
        })
        .ok_or_else(|| anyhow::anyhow!("the register has no second adult with a phone"))?;
    browser.visit("/apply?lang=zh-CN", "apply-phone").await?;
    browser.fill("#phone", &applicant.phone).await?;
    browser.submit("#send-code").await?;
    let text = jiuzhu_console::sms::last_simulated(&pool, &applicant.phone)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no text reached the SMS simulator"))?;
    let code: String = text.chars().filter(char::is_ascii_digit).take(6).collect();
    browser.fill("#code", &code).await?;
    browser.fill("#full_name", &applicant.full_name).await?;
    browser.fill("#resident_id", &applicant.resident_id).await?;
    browser.fill("#region_code", &applicant.region_code).await?;
    browser.fill("#case_no", "(2026)黔0102刑初501号").await?;
    browser.fill("#procuratorate", PROCURATORATE).await?;
    for material in ["application", "identity_proof"] {
        let file = dir.join(format!("applicant-{material}.jpg"));
        std::fs::write(&file, format!("photo of the {material}"))?;
        browser
            .client
            .find(Locator::Css(&format!("#file_{material}")))
            .await?
            .send_keys(&file.display().to_string())
            .await?;
    }
    browser.look("apply-form").await?;
    browser.submit("#submit-application").await?;
    anyhow::ensure!(
        browser.has("#application-no").await?,
        "the application is received: {} {}",
        browser.text("#apply-error").await.unwrap_or_default(),
        browser.refusal().await?
    );
    let application_no = browser.text("#application-no").await?;
    let check_code = browser.text("#check-code").await?;
    browser.look("apply-received").await?;
    let url = browser.client.current_url().await?.to_string();
    for personal in [&applicant.phone, &applicant.resident_id] {
        assert!(
            !url.contains(personal.as_str()),
            "personal data in the URL {url}"
        );
    }
    browser.visit("/status?lang=zh-CN", "status-form").await?;
    browser.fill("#application_no", &application_no).await?;
    browser.fill("#check_code", "WRONG123").await?;
    browser.submit("#check-status").await?;
    assert!(
        browser.has("#status-error").await?,
        "a wrong check code shows nothing"
    );
    browser.fill("#check_code", &check_code).await?;
    browser.submit("#check-status").await?;
    let stage = browser.text("#application-stage").await?;
    let missing = browser.text("#missing").await?;
    assert!(!stage.is_empty(), "the applicant sees the stage");
    assert!(
        missing.contains("损害证明"),
        "and what is missing: {missing}"
    );
    assert!(
        !missing.contains("身份证明"),
        "not what was uploaded: {missing}"
    );
    browser.look("status-shown").await?;
    browser.client.set_window_size(1280, 1400).await?;

    let times: String = browser
        .load_times
        .iter()
        .map(|(page, ms)| format!("{page}\t{ms:.0} ms\n"))
        .collect();
    std::fs::write(browser.shots.join("load-times.txt"), &times)?;
    eprintln!("page load times:\n{times}");
    assert!(
        browser.accessibility.is_empty(),
        "accessibility: {:#?}",
        browser.accessibility
    );
    assert!(browser.taken >= 15, "{} screenshots", browser.taken);

    browser.client.close().await?;
    console.stop().await;
    services.stop().await?;
    Ok(())
}

/// Sign-in and sessions on the console's real database: five failures lock an account for the
/// lockout (a right password then is refused too), a code counts once, a session unused for the
/// idle timeout is gone, disabling a member ends their sessions, and every change to the
/// directory is in its audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_limited_and_sessions_end() -> TestResult {
    use jiuzhu_console::staff::{self, Lockout, NewStaff, StaffError};
    let database = jiuzhu_testkit::empty_database("console").await?;
    let settings = jiuzhu_console::ConsoleSettings {
        database_url: jiuzhu_config::Secret::new(database.url.clone()),
        ..jiuzhu_console::ConsoleSettings::default()
    };
    let pool = jiuzhu_console::database(&settings).await?;
    let start = chrono::DateTime::parse_from_rfc3339("2026-12-07T01:00:00Z")?.to_utc();
    let new = |staff_no: &str| NewStaff {
        staff_no: staff_no.to_owned(),
        display_name: "测试".to_owned(),
        office: REGION.to_owned(),
        role: "relief_prosecutor".to_owned(),
        tier: String::new(),
        administrator: false,
        password: PASSWORD.to_owned(),
    };
    let secret = staff::add(&pool, "A-1", &new("P-1"), start).await?;
    let again = staff::add(&pool, "A-1", &new("P-1"), start).await;
    assert!(matches!(again, Err(StaffError::Exists(_))), "{again:?}");
    let lockout = Lockout {
        max_failures: 5,
        minutes: 15,
    };
    let code = |at| staff::totp_code(&secret, at);

    // A code counts once.
    let member = staff::sign_in(&pool, "P-1", PASSWORD, &code(start)?, start, lockout).await?;
    assert_eq!(
        member.acting_as(),
        format!("office/{REGION}/role/relief_prosecutor")
    );
    let replayed = staff::sign_in(&pool, "P-1", PASSWORD, &code(start)?, start, lockout).await;
    assert!(matches!(replayed, Err(StaffError::Refused)), "{replayed:?}");

    // Five failures lock the account (the replay was the first); the right password is
    // refused until the lockout ends.
    let mut at = start + chrono::Duration::seconds(60);
    for _ in 0..4 {
        let wrong = staff::sign_in(&pool, "P-1", "not the password", &code(at)?, at, lockout).await;
        assert!(matches!(wrong, Err(StaffError::Refused)), "{wrong:?}");
    }
    at += chrono::Duration::seconds(30);
    let locked = staff::sign_in(&pool, "P-1", PASSWORD, &code(at)?, at, lockout).await;
    assert!(matches!(locked, Err(StaffError::Locked(_))), "{locked:?}");
    at += chrono::Duration::minutes(16);
    staff::sign_in(&pool, "P-1", PASSWORD, &code(at)?, at, lockout).await?;
    // An unknown staff number looks like any other failure.
    let unknown = staff::sign_in(&pool, "nobody", PASSWORD, "123456", at, lockout).await;
    assert!(matches!(unknown, Err(StaffError::Refused)), "{unknown:?}");

    // A session lives while used and ends after the idle timeout.
    let l = jiuzhu_console::i18n::Language::Chinese;
    let token = jiuzhu_console::sessions::open(&pool, &member, l, at).await?;
    let find = |when| jiuzhu_console::sessions::find(&pool, &token, when, 30);
    assert!(find(at + chrono::Duration::minutes(29)).await?.is_some());
    assert!(
        find(at + chrono::Duration::minutes(58)).await?.is_some(),
        "used at 29, idle 29"
    );
    assert!(
        find(at + chrono::Duration::minutes(89)).await?.is_none(),
        "idle 31 minutes"
    );

    // Disabling a member ends their sessions at once.
    let later = at + chrono::Duration::hours(2);
    let token = jiuzhu_console::sessions::open(&pool, &member, l, later).await?;
    staff::set_active(&pool, "A-1", "P-1", false, later).await?;
    assert!(
        jiuzhu_console::sessions::find(&pool, &token, later, 30)
            .await?
            .is_none()
    );
    let audit = staff::audit_log(&pool, 10).await?;
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.staff_no.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("A-1", "disabled", "P-1"), ("A-1", "added", "P-1")]
    );
    assert!(
        audit.iter().all(|a| !a.detail.contains(PASSWORD)),
        "no password in the audit"
    );
    Ok(())
}
