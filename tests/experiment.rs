//! The experiment runner end to end: a micro study (parse → train a few steps → report), strict config
//! errors that name file, line and field, and resuming an interrupted run to the same numbers.

use repro::experiment::runner::{run_study, RunOptions};
use repro::experiment::spec::Study;
use repro::experiment::store::RunDir;
use std::path::{Path, PathBuf};

const MICRO: &str = r#"name: micro
paper: titans
description: a micro study for the tests
reference:
  source: Table 5
  note: ordering only
  higher_is_better: true
  values: { LMM: 92.68, MAC: 97.95 }
task:
  kind: mqar
  vocab: 16
  seq_len: 12
  num_pairs: 3
model:
  kind: lmm
  dim: 8
  heads: 2
  persistent_tokens: 2
  segment_len: 4
training:
  steps: 6
  batch_size: 4
  lr: 0.01
  warmup: 2
  checkpoint_every: 3
  log_every: 1
evaluation:
  batches: 2
  batch_size: 8
seeds: [0, 1]
ablations:
  - name: LMM
  - name: MAC
    set: { model.kind: mac }
plots: [training-curves, final-metric]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn opts(out: &Path) -> RunOptions {
    RunOptions {
        scale: "tiny".into(),
        sets: vec![],
        out: out.to_path_buf(),
        quiet: true,
        fresh: false,
        stop_after: None,
        device: None,
    }
}

#[test]
fn micro_study_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", MICRO);
    let out = tmp.path().join("reports");
    let o = run_study(&file, &opts(&out)).unwrap();
    assert!(o.failed.is_empty(), "{:?}", o.failed);
    let dir = out.join("micro");
    for row in ["LMM", "MAC"] {
        for seed in [0, 1] {
            let rd = RunDir::new(&dir, row, seed);
            let r = rd.result().unwrap().expect("result.json");
            assert_eq!(r.status, "done");
            let m = r.final_metric.unwrap();
            assert!((0.0..=100.0).contains(&m), "{m}");
            let lines = rd.metrics().unwrap();
            assert_eq!(lines.len(), 6, "one metrics line per step");
            let manifest = rd.manifest().unwrap().unwrap();
            assert_eq!(manifest.seed, seed);
            assert!(!manifest.git_revision.is_empty() && manifest.libtorch.contains("2.11"));
            assert!(rd.path.join("checkpoint.json").exists() && rd.path.join("checkpoint-6.safetensors").exists());
        }
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("LMM") && report.contains("MAC"), "{report}");
    assert!(dir.join("summary.json").exists() && dir.join("study.json").exists());
    // a second run skips everything and gives the same report inputs
    let before = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    run_study(&file, &opts(&out)).unwrap();
    assert_eq!(before, std::fs::read_to_string(dir.join("summary.json")).unwrap());
    // `repro report` regenerates without training
    std::fs::remove_file(dir.join("report.md")).unwrap();
    repro::experiment::runner::write_report(&dir).unwrap();
    assert!(dir.join("report.md").exists());
}

#[test]
fn interrupted_run_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let one_row = MICRO
        .replace("  - name: MAC\n    set: { model.kind: mac }\n", "")
        .replace("values: { LMM: 92.68, MAC: 97.95 }", "values: { LMM: 92.68 }")
        .replace("seeds: [0, 1]", "seeds: [3]");
    let file = write(tmp.path(), "micro.yaml", &one_row);
    let straight = tmp.path().join("straight");
    run_study(&file, &opts(&straight)).unwrap();
    let resumed = tmp.path().join("resumed");
    let mut o = opts(&resumed);
    o.stop_after = Some(4); // the checkpoint is at step 3: steps 4.. are redone
    let err = run_study(&file, &o).err().expect("interrupted");
    assert!(format!("{err:#}").contains("resume"), "{err:#}");
    let rd = RunDir::new(&resumed.join("micro"), "LMM", 3);
    assert!(rd.result().unwrap().is_none(), "an interrupted run must not look finished");
    assert_eq!(rd.metrics().unwrap().len(), 4);
    run_study(&file, &opts(&resumed)).unwrap();
    let a = RunDir::new(&straight.join("micro"), "LMM", 3);
    assert_eq!(a.metrics().unwrap(), rd.metrics().unwrap(), "resumed metrics differ");
    assert_eq!(a.result().unwrap().unwrap().final_metric, rd.result().unwrap().unwrap().final_metric);
}

fn load_err(text: &str, sets: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "bad.yaml", text);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    format!("{:#}", Study::load(&file, "tiny", &sets).expect_err("should fail"))
}

#[test]
fn config_errors_name_file_line_field_and_suggest() {
    let e = load_err(&MICRO.replace("  lr: 0.01", "  lerning_rate: 0.01"), &[]);
    assert!(
        e.contains("bad.yaml:") && e.contains("lerning_rate") && e.contains("line") || e.contains("bad.yaml:2"),
        "{e}"
    );
    let e = load_err(&MICRO.replace("  kind: lmm", "  kind: lmn"), &[]);
    assert!(e.contains("bad.yaml:") && e.contains("lmn") && e.contains("did you mean `lmm`"), "{e}");
    let e = load_err(&MICRO.replace("  lr: 0.01", "  lr: -0.01"), &[]);
    assert!(
        e.contains("bad.yaml:23") && e.contains("training.lr") && !e.contains("row") && e.contains("positive"),
        "{e}"
    );
    let e = load_err(&MICRO.replace("  segment_len: 4", "  segment_len: 0"), &[]);
    assert!(e.contains("bad.yaml:19") && e.contains("model.segment_len"), "{e}");
    let e = load_err(&MICRO.replace("{ model.kind: mac }", "{ model.memory.momentun: false }"), &[]);
    assert!(e.contains("MAC") && e.contains("momentun") && e.contains("did you mean `momentum`"), "{e}");
    let e = load_err(MICRO, &["model.dimm=3"]);
    assert!(e.contains("dimm") && e.contains("did you mean `dim`"), "{e}");
    let e = load_err(MICRO, &["model.heads=3"]);
    assert!(e.contains("model.heads") && e.contains("multiple"), "{e}");
    let e = load_err(&MICRO.replace("values: { LMM: 92.68, MAC: 97.95 }", "values: { LMM: 92.68, MAG: 1.0 }"), &[]);
    assert!(e.contains("reference.values") && e.contains("MAG"), "{e}");
}

#[test]
fn cms_config_is_strict_and_validated() {
    let e = load_err(MICRO, &["model.cms={periods: [4], lrr: 0.1}"]);
    assert!(e.contains("lrr") && e.contains("did you mean `lr`"), "{e}");
    let e = load_err(MICRO, &["model.cms={periods: [4, 6]}"]);
    assert!(e.contains("model.cms.periods") && e.contains("multiple of the smallest"), "{e}");
    let e = load_err(MICRO, &["model.cms={periods: []}"]);
    assert!(e.contains("model.cms.periods") && e.contains("at least one level"), "{e}");
    let e = load_err(MICRO, &["model.cms={periods: [0]}"]);
    assert!(e.contains("model.cms.periods") && e.contains("at least 1"), "{e}");
    let e = load_err(MICRO, &["model.cms={periods: [4], lr: -1}"]);
    assert!(e.contains("model.cms.lr") && e.contains(">= 0"), "{e}");
    let e = load_err(MICRO, &["model.kind=mac", "model.cms={periods: [2]}"]);
    assert!(e.contains("segment_len") && e.contains("multiple"), "{e}");
    let e = load_err(
        &MICRO.replace("  segment_len: 4", "  segment_len: 4\n  cms: {periods: [4, 12], layout: stacked}"),
        &[],
    );
    assert!(e.contains("bad.yaml:") && e.contains("stacked") && e.contains("chain"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "ok.yaml", MICRO);
    let study = Study::load(&file, "tiny", &["model.cms={periods: [4, 12], second_order: true}".to_string()]).unwrap();
    let c = study.base_config().unwrap().model.cms.unwrap();
    assert_eq!((c.periods, c.expansion, c.lr, c.second_order), (vec![4, 12], 4, 0.01, true));
}

#[test]
fn a_nan_stops_the_row_and_keeps_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    // an absurd learning rate blows the loss up; the row is marked failed, the study goes on
    let text = MICRO
        .replace("  lr: 0.01", "  lr: 1.0e30")
        .replace("  clip: 1.0\n", "")
        .replace("  warmup: 2", "  warmup: 0\n  clip: 0");
    let file = write(tmp.path(), "nan.yaml", &text);
    let out = tmp.path().join("r");
    let o = run_study(&file, &opts(&out)).unwrap();
    assert!(!o.failed.is_empty(), "expected a failed run");
    let rd = RunDir::new(&out.join("micro"), "LMM", 0);
    let r = rd.result().unwrap().unwrap();
    assert!(r.status.starts_with("failed:") && (r.status.contains("NaN") || r.status.contains("inf")), "{}", r.status);
    assert!(rd.manifest().unwrap().is_some());
    assert!(out.join("micro").join("report.md").exists());
}

#[test]
fn every_shipped_experiment_parses_at_every_scale() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            for scale in ["tiny", "small", "paper"] {
                Study::load(&p, scale, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            }
            n += 1;
        }
    }
    assert!(n >= 4, "expected the shipped experiments, found {n}");
}

#[test]
fn every_task_kind_trains_a_few_steps() {
    // one tiny run per shipped experiment (2 steps, 1 seed, 1 eval batch): every task and model path runs
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
    let tmp = tempfile::tempdir().unwrap();
    for name in ["quickstart", "niah", "capacity", "titans_table5"] {
        let file = dir.join(format!("{name}.yaml"));
        let mut o = opts(&tmp.path().join(name));
        o.sets = [
            "training.steps=2",
            "seeds=[0]",
            "evaluation.batches=1",
            "evaluation.batch_size=2",
            "training.batch_size=2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if name == "titans_table5" && !repro::experiment::tasks::corpus_path().exists() {
            // the corpus comes from scripts/setup.sh, which the README's test command runs first
            let err = format!("{:#}", run_study(&file, &o).err().expect("no corpus"));
            assert!(err.contains("scripts/setup.sh"), "{err}");
            continue;
        }
        let out = run_study(&file, &o).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(out.failed.is_empty(), "{name}: {:?}", out.failed);
        assert!(out.dir.join("report.md").exists());
    }
}

#[test]
fn selective_copy_and_mag_mal_train() {
    let tmp = tempfile::tempdir().unwrap();
    let text = MICRO
        .replace(
            "  kind: mqar\n  vocab: 16\n  seq_len: 12\n  num_pairs: 3\n",
            "  kind: selective-copy\n  vocab: 12\n  seq_len: 14\n  num_tokens: 3\n",
        )
        .replace("values: { LMM: 92.68, MAC: 97.95 }", "values: { LMM: 1.0 }")
        .replace(
            "  - name: MAC\n    set: { model.kind: mac }\n",
            "  - name: MAG\n    set: { model.kind: mag }\n  - name: MAL\n    set: { model.kind: mal }\n",
        )
        .replace("seeds: [0, 1]", "seeds: [0]");
    let file = write(tmp.path(), "sc.yaml", &text);
    let o = run_study(&file, &opts(&tmp.path().join("r"))).unwrap();
    assert!(o.failed.is_empty(), "{:?}", o.failed);
    for row in ["LMM", "MAG", "MAL"] {
        let r = RunDir::new(&o.dir, row, 0).result().unwrap().unwrap();
        assert_eq!(r.status, "done", "{row}");
    }
}
