//! End-to-end test of `repro::report::write_report` on a synthetic study: files written atomically,
//! PNGs valid and not blank, markdown table, statistics, ordering mismatch, failed run, image links.
//!
//! Set `REPRO_TEST_REPORT_DIR=<folder>` to keep a copy of the report for inspection.

use repro::report::data::*;
use repro::report::plots::{HEIGHT, WIDTH};
use repro::report::write_report;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

fn run(seed: u64, final_metric: Option<f64>, status: &str, scale: f64) -> RunData {
    let steps = if final_metric.is_some() { 50 } else { 20 };
    let curve = (0..steps)
        .map(|i| CurvePoint {
            step: i * 100,
            loss: scale * 5.0 * (-(i as f64) / 7.0).exp() * (1.0 + 0.02 * seed as f64) + 1e-3,
            metric: None,
        })
        .collect();
    let by_length = match final_metric {
        Some(f) => [1024usize, 2048, 4096, 8192, 16384]
            .iter()
            .enumerate()
            .map(|(j, &l)| (l, (f - 0.08 * j as f64 / scale).clamp(0.0, 1.0)))
            .collect(),
        None => vec![],
    };
    RunData {
        seed,
        curve,
        final_metric,
        by_length,
        by_pairs: vec![],
        status: status.to_string(),
        tokens_per_s: None,
        memory: vec![],
    }
}

fn row(name: &str, overrides: &[(&str, &str)], runs: Vec<RunData>) -> RowSummary {
    RowSummary {
        name: name.to_string(),
        overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        runs,
    }
}

fn study(plots: Vec<PlotKind>) -> StudySummary {
    let rows = vec![
        row(
            "titans-mal",
            &[("model.variant", "mal")],
            vec![run(0, Some(0.80), "done", 1.0), run(1, Some(0.90), "done", 1.0)],
        ),
        row(
            "titans-mac",
            &[("model.variant", "mac")],
            vec![run(0, Some(0.70), "done", 1.3), run(1, Some(0.74), "done", 1.3)],
        ),
        row(
            "no-memory",
            &[("model.memory", "none"), ("train.lr", "0.001")],
            vec![run(0, Some(0.50), "done", 2.0), run(1, None, "failed: CUDA out of memory", 2.0)],
        ),
        row("lmm-deep", &[], vec![run(0, Some(0.60), "done", 1.6), run(1, Some(0.62), "done", 1.6)]),
    ];
    let mut values = BTreeMap::new();
    values.insert("titans-mal".to_string(), 95.0);
    values.insert("titans-mac".to_string(), 97.0); // the paper ranks MAC above MAL: deliberate mismatch
    values.insert("no-memory".to_string(), 60.0);
    StudySummary {
        name: "niah-ablation".into(),
        paper: "titans".into(),
        description: "Needle-in-a-haystack accuracy of the Titans variants".into(),
        metric: MetricInfo { name: "accuracy".into(), higher_is_better: true, unit: "".into() },
        paper_reference: Some(PaperReference {
            source: "Table 2".into(),
            note: "S-NIAH-1 accuracy (%) at 16K, 760M-parameter models".into(),
            values,
            higher_is_better: true,
        }),
        rows,
        config_yaml: "model:\n  dim: 64\n  variant: mac\ntrain:\n  lr: 0.0003\n  steps: 5000\n".into(),
        scale: "tiny".into(),
        device: "cpu".into(),
        plots,
    }
}

/// Adds capacity data (recall against the number of stored pairs) to every finished run.
fn with_pairs(mut s: StudySummary) -> StudySummary {
    for (i, r) in s.rows.iter_mut().enumerate() {
        for run in r.runs.iter_mut().filter(|r| r.final_metric.is_some()) {
            run.by_pairs = [8usize, 16, 32, 64, 128, 256]
                .iter()
                .map(|&k| (k, 1.0 / (1.0 + (k as f64 / (40.0 * (i + 1) as f64)).powi(2)) - 0.01 * run.seed as f64))
                .collect();
        }
    }
    s
}

fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} lacks the PNG signature", path.display());
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT), "{}", path.display());
    let colors: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colors.len() > 20, "{} has only {} colours", path.display(), colors.len());
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let frac = non_white as f64 / (WIDTH * HEIGHT) as f64;
    assert!(frac > 0.01 && frac < 0.9, "{}: non-white fraction {frac}", path.display());
}

#[test]
fn writes_report_and_plots() {
    let s = study(vec![
        PlotKind::TrainingCurves,
        PlotKind::FinalMetric,
        PlotKind::AccuracyVsLength,
        PlotKind::RecallVsPairs, // requested, but there is no by_pairs data
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reports").join(&s.name);
    let written = write_report(&dir, &s).unwrap();
    let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["training_curves.png", "final_metric.png", "accuracy_vs_length.png", "report.md"]);
    for p in &written {
        assert!(p.is_file(), "{} missing", p.display());
    }
    assert!(!dir.join("recall_vs_pairs.png").exists());
    // no temporary files left behind
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
    for p in written.iter().filter(|p| p.extension().unwrap() == "png") {
        check_png(p);
    }

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    if let Ok(keep) = std::env::var("REPRO_TEST_REPORT_DIR") {
        write_report(Path::new(&keep), &s).unwrap();
    }
    assert!(md.starts_with("# niah-ablation (titans)"));
    assert!(md.contains("Needle-in-a-haystack accuracy of the Titans variants"));
    assert!(md.contains("scale: `tiny`") && md.contains("device: `cpu`"));
    // table rows: mean ± sample std over finished seeds
    assert!(
        md.contains("| titans-mal | 0.8500 ± 0.07071 (2 seeds) | 95.00 | s0: 0.8000, s1: 0.9000 | done (2/2) |"),
        "{md}"
    );
    assert!(md.contains("| titans-mac | 0.7200 ± 0.02828 (2 seeds) | 97.00 |"), "{md}");
    assert!(md.contains("| lmm-deep | 0.6100 ± 0.01414 (2 seeds) | — |"), "{md}");
    // the failed run is shown, and the row's statistics use the finished run only
    assert!(
        md.contains("| no-memory | 0.5000 (n=1) | 60.00 | s0: 0.5000, s1: — | seed 0: done; seed 1: failed: CUDA out of memory |"),
        "{md}"
    );
    // ordering: MAC vs MAL disagree, and nothing else
    assert!(md.contains("**Ordering differs**"), "{md}");
    assert!(!md.contains("Ordering matches"));
    assert!(md.contains("1 of 3 pairs"), "{md}");
    assert!(md.contains("- ours, best first: titans-mal > titans-mac > no-memory"), "{md}");
    assert!(md.contains("- paper, best first: titans-mac > titans-mal > no-memory"), "{md}");
    assert!(md.contains("`titans-mac` vs `titans-mal`: ours titans-mac is worse than titans-mal"), "{md}");
    assert!(md.contains("paper titans-mac is better than titans-mal"), "{md}");
    assert!(!md.contains("`no-memory` vs"), "{md}");
    // plots
    assert!(md.contains("![Training curves](training_curves.png)"));
    assert!(md.contains("![Final metric](final_metric.png)"));
    assert!(md.contains("![Accuracy vs sequence length](accuracy_vs_length.png)"));
    assert!(!md.contains("](recall_vs_pairs.png)"));
    assert!(md.contains("Recall vs number of pairs: not drawn (no data)"));
    // overrides and configuration
    assert!(md.contains("- **no-memory**: `model.memory: none`, `train.lr: 0.001`"));
    assert!(md.contains("- **lmm-deep**: base configuration"));
    assert!(
        md.contains("```yaml\nmodel:\n  dim: 64\n  variant: mac\ntrain:\n  lr: 0.0003\n  steps: 5000\n```"),
        "{md}"
    );
}

#[test]
fn unrequested_plots_are_not_written() {
    // the study has data for every plot, but asks for one
    let s = with_pairs(study(vec![PlotKind::FinalMetric]));
    let tmp = tempfile::tempdir().unwrap();
    let written = write_report(tmp.path(), &s).unwrap();
    assert_eq!(written, vec![tmp.path().join("final_metric.png"), tmp.path().join("report.md")]);
    for f in ["training_curves.png", "accuracy_vs_length.png", "recall_vs_pairs.png"] {
        assert!(!tmp.path().join(f).exists(), "{f} written though not requested");
    }
    check_png(&tmp.path().join("final_metric.png"));
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(md.contains("![Final metric](final_metric.png)"));
    assert!(!md.contains("training_curves.png"));
}

#[test]
fn ordering_matches_and_cannot_be_judged() {
    let mut s = study(vec![]);
    let p = s.paper_reference.as_mut().unwrap();
    p.values.insert("titans-mac".into(), 90.0); // now MAL > MAC > no-memory, as ours
    let tmp = tempfile::tempdir().unwrap();
    write_report(tmp.path(), &s).unwrap();
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(md.contains("**Ordering matches** the paper's over all 3 comparable rows"), "{md}");
    assert!(md.contains("No plots requested."));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    // only one row with both numbers (no-memory has no finished run now)
    let mut s = study(vec![]);
    for i in [0, 2] {
        for r in &mut s.rows[i].runs {
            r.final_metric = None;
            r.status = "running".into();
        }
    }
    write_report(tmp.path(), &s).unwrap();
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(md.contains("**Cannot be judged**: only 1 comparable row(s)"), "{md}");
    assert!(md.contains("Left out (paper number but no finished run of ours): titans-mal, no-memory."), "{md}");
    assert!(md.contains("| titans-mal | — (no finished run) |"), "{md}");
}

#[test]
fn recall_vs_pairs_is_drawn_with_data() {
    let mut s = with_pairs(study(vec![PlotKind::RecallVsPairs, PlotKind::FinalMetric]));
    s.metric = MetricInfo { name: "recall".into(), higher_is_better: true, unit: "".into() };
    s.paper_reference = None;
    let tmp = tempfile::tempdir().unwrap();
    let written = write_report(tmp.path(), &s).unwrap();
    assert_eq!(
        written,
        vec![tmp.path().join("recall_vs_pairs.png"), tmp.path().join("final_metric.png"), tmp.path().join("report.md")]
    );
    check_png(&written[0]);
    check_png(&written[1]);
    let md = std::fs::read_to_string(&written[2]).unwrap();
    assert!(md.contains("![Recall vs number of pairs](recall_vs_pairs.png)"));
    assert!(md.contains("Cannot be judged: the study has no paper reference."), "{md}");
    if let Ok(keep) = std::env::var("REPRO_TEST_REPORT_DIR") {
        write_report(&Path::new(&keep).join("recall"), &s).unwrap();
    }
}
