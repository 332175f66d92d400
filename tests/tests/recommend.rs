//! `jiuzhu gen relief-history`, `jiuzhu recommend train` and `jiuzhu recommend predict` end to
//! end: a model trained on generated history recommends for every case of a file, in order,
//! each with its range, factors and precedents; a cap clamps out loud; a bad line is refused with
//! its number and field.

use std::process::Command;

use jiuzhu_testkit::binary_path;
use jiuzhu_tests::TestResult;

fn jiuzhu(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let output = Command::new(binary_path("jiuzhu")?).args(args).output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    ))
}

#[test]
fn a_trained_model_recommends_for_every_case_of_a_file() -> TestResult {
    let dir = std::env::temp_dir().join(format!(
        "jiuzhu-recommend-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (history, model, cases, out) = (
        path("history.jsonl"),
        path("model.json"),
        path("cases.jsonl"),
        path("predictions.jsonl"),
    );
    let (ok, said) = jiuzhu(&[
        "gen",
        "relief-history",
        "--cases",
        "700",
        "--seed",
        "3",
        "--out",
        &history,
    ])?;
    assert!(ok, "{said}");
    let (ok, said) = jiuzhu(&[
        "recommend",
        "train",
        "--history",
        &history,
        "--out",
        &model,
        "--version",
        "audit-1",
    ])?;
    assert!(ok, "{said}");
    // Seven cases to audit: five decided (their amounts given), two not.
    let all = std::fs::read_to_string(&history)?;
    let mut lines: Vec<serde_json::Value> = all
        .lines()
        .rev()
        .take(7)
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    for undecided in &mut lines[5..] {
        let object = undecided
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("a case is not an object"))?;
        object.remove("amount_fen");
        object.remove("methods");
    }
    let predict = |extra: &[&str]| {
        let mut args = vec![
            "recommend",
            "predict",
            "--cases",
            &cases,
            "--model",
            &model,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        jiuzhu(&args)
    };
    // Fields the model does not use (protected attributes, the generator's truth) are said to
    // be left out; a county given beside the case is carried through.
    lines[0]["gender"] = serde_json::json!("female");
    lines[0]["county"] = serde_json::json!("522325");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&cases, &text)?;

    let (ok, said) = predict(&[])?;
    assert!(ok, "{said}");
    assert!(said.contains("recommended for 7 cases"), "{said}");
    assert!(
        said.contains("fields the model does not use, left out: age, county, gender, truth"),
        "{said}"
    );
    assert!(said.contains("against the 5 amounts given"), "{said}");
    let predicted: Vec<serde_json::Value> = std::fs::read_to_string(&out)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(predicted.len(), 7);
    for (case, p) in lines.iter().zip(&predicted) {
        assert_eq!(p["case_id"], case["case_id"], "in the cases' order");
        assert_eq!(p["model_version"], "audit-1");
        let (low, amount, high) = (
            p["low_fen"].as_i64().unwrap_or(-1),
            p["amount_fen"].as_i64().unwrap_or(-1),
            p["high_fen"].as_i64().unwrap_or(-1),
        );
        assert!(0 <= low && low <= amount && amount <= high, "{p}");
        assert_eq!(p["similar"].as_array().map(Vec::len), Some(5), "{p}");
        assert!(
            p["factors"].as_array().is_some_and(|f| !f.is_empty()),
            "{p}"
        );
        assert!(p["clamped"].is_null());
        assert_eq!(p["given_amount_fen"], case["amount_fen"]);
        // The factors start from the base and add up to the amount, to the fen.
        let factors: i64 = p["factors"]
            .as_array()
            .map_or(0, |f| f.iter().filter_map(|f| f["fen"].as_i64()).sum());
        assert_eq!(
            p["base_fen"].as_i64().map(|b| b + factors),
            Some(amount),
            "{p}"
        );
        // Methods ranked by what similar followed-up cases achieved, and said in a sentence.
        assert!(
            p["effect_note"]
                .as_str()
                .is_some_and(|n| n.starts_with("of ") || n.contains("similar followed-up")),
            "{p}"
        );
        assert_eq!(p["methods"].as_array().map(Vec::len), Some(8), "{p}");
        assert_eq!(p["gender"], case["gender"]);
        assert_eq!(p["age"], case["age"]);
    }
    assert_eq!(predicted[0]["county"], "522325");
    assert_eq!(predicted[1]["county"], lines[1]["region"]);
    assert!(predicted[6]["given_amount_fen"].is_null());

    // A cap clamps every amount above it, and says so.
    let (ok, said) = predict(&["--cap-fen", "100000"])?;
    assert!(ok, "{said}");
    for p in std::fs::read_to_string(&out)?.lines() {
        let p: serde_json::Value = serde_json::from_str(p)?;
        assert!(
            p["amount_fen"].as_i64().is_some_and(|a| a <= 100_000),
            "{p}"
        );
        assert!(
            p["clamped"]
                .as_str()
                .is_some_and(|c| c.contains("clamped to the cap")),
            "{p}"
        );
    }

    // A case whose wage is not a number: refused with its line and field, nothing written.
    let mut bad = lines.clone();
    bad[1]["wage_fen"] = serde_json::json!("much");
    let broken: String = bad.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&cases, broken)?;
    std::fs::remove_file(&out)?;
    let (ok, said) = predict(&[])?;
    assert!(!ok);
    assert!(
        said.contains("line 2") && said.contains("wage_fen"),
        "{said}"
    );
    assert!(
        !std::path::Path::new(&out).exists(),
        "nothing written for a bad file"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `jiuzhu recommend history` with a historic cut, `train --debias`, `predict` and `report`:
/// the history's cut is flagged before training and mitigated, the recommendations learnt from
/// the de-biased history carry no gap, and a bad predictions line is refused by line and field.
#[test]
fn the_fairness_report_flags_a_historic_cut_that_mitigation_keeps_out() -> TestResult {
    let dir =
        std::env::temp_dir().join(format!("jiuzhu-fairness-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (history, model, cases, out) = (
        path("history.jsonl"),
        path("model.json"),
        path("cases.jsonl"),
        path("predictions.jsonl"),
    );
    let (ok, said) = jiuzhu(&[
        "recommend",
        "history",
        "--cases",
        "3000",
        "--seed",
        "4",
        "--cut-county",
        "110105:0.15",
        "--cut-women",
        "0.1",
        "--out",
        &history,
    ])?;
    assert!(ok, "{said}");
    let (ok, said) = jiuzhu(&[
        "recommend",
        "train",
        "--history",
        &history,
        "--out",
        &model,
        "--debias",
        "--evaluate",
        "300",
    ])?;
    assert!(ok, "{said}");
    let section = |text: &str, title: &str| -> String {
        text.split("fairness, ")
            .find(|part| part.starts_with(title))
            .unwrap_or_default()
            .to_owned()
    };
    let before = section(&said, "history before training");
    let flagged = |table: &str, group: &str| {
        table
            .lines()
            .any(|l| l.contains(&format!(" {group} ")) && l.contains("FLAGGED"))
    };
    assert!(
        flagged(&before, "110105") && flagged(&before, "female"),
        "{said}"
    );
    assert!(
        !section(&said, "history after mitigation").contains("FLAGGED"),
        "{said}"
    );

    // The last 600 cases, recommended for and judged with the history.
    let all = std::fs::read_to_string(&history)?;
    let tail: Vec<&str> = all.lines().skip(2400).collect();
    std::fs::write(&cases, tail.join("\n") + "\n")?;
    let (ok, said) = jiuzhu(&[
        "recommend",
        "predict",
        "--cases",
        &cases,
        "--model",
        &model,
        "--out",
        &out,
    ])?;
    assert!(ok, "{said}");
    let (ok, said) = jiuzhu(&[
        "recommend",
        "report",
        "--predictions",
        &out,
        "--history",
        &history,
    ])?;
    assert!(ok, "{said}");
    assert!(flagged(&section(&said, "history"), "110105"), "{said}");
    let recommended = section(&said, "recommendations");
    assert!(
        recommended.contains("gender") && recommended.contains("age band"),
        "{said}"
    );
    assert!(!recommended.contains("FLAGGED"), "{said}");
    assert!(said.contains("0 groups with a gap over 5%"), "{said}");
    assert!(
        said.contains("could stand in for a protected attribute"),
        "{said}"
    );

    // A predictions line whose amount is not a number: refused with its line and field.
    let mut lines: Vec<String> = std::fs::read_to_string(&out)?
        .lines()
        .map(str::to_owned)
        .collect();
    lines[2] = lines[2].replacen("\"amount_fen\":", "\"amount_fen\":\"much\",\"was\":", 1);
    std::fs::write(&out, lines.join("\n"))?;
    let (ok, said) = jiuzhu(&["recommend", "report", "--predictions", &out])?;
    assert!(!ok);
    assert!(
        said.contains("line 3") && said.contains("amount_fen"),
        "{said}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
