//! Issue 16: run selection (`--only`, `--seeds`), sharding (`--shard i/n`), per-run locks so that shards share
//! one study folder, and `sweep:` grids.

use repro::experiment::lock::RunLock;
use repro::experiment::runner::{run_study_selected, RunOptions};
use repro::experiment::select::Selection;
use repro::experiment::spec::Study;
use repro::experiment::store::RunDir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MICRO: &str = r#"name: micro
paper: titans
task:
  kind: mqar
  vocab: 16
  seq_len: 12
  num_pairs: 3
model:
  kind: lmm
  dim: 8
  heads: 2
  segment_len: 4
training:
  steps: 3
  batch_size: 4
  lr: 0.01
  checkpoint_every: 3
  log_every: 1
evaluation:
  batches: 1
  batch_size: 4
seeds: [0, 1, 2]
ablations:
  - name: LMM
  - name: MAC
    set: { model.kind: mac }
  - name: MAG
    set: { model.kind: mag, seeds: [0, 5] }
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

fn repro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).output().expect("run repro")
}

fn load(text: &str) -> anyhow::Result<Study> {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.yaml", text);
    Study::load(&f, "tiny", &[])
}

fn sel(only: &[&str], seeds: Option<&str>, shard: Option<&str>) -> Selection {
    Selection::parse(&only.iter().map(|s| s.to_string()).collect::<Vec<_>>(), seeds, shard).unwrap()
}

#[test]
fn shards_of_a_study_are_disjoint_and_complete() {
    let study = load(MICRO).unwrap();
    let full = Selection::full_grid(&study).unwrap();
    // every row with its own seeds, in file order
    let want: Vec<(String, u64)> =
        [("LMM", 0), ("LMM", 1), ("LMM", 2), ("MAC", 0), ("MAC", 1), ("MAC", 2), ("MAG", 0), ("MAG", 5)]
            .iter()
            .map(|(r, s)| (r.to_string(), *s))
            .collect();
    assert_eq!(full, want);
    for base in [sel(&[], None, None), sel(&["LMM,MAG"], None, None), sel(&[], Some("0,2"), None)] {
        let selected = base.grid(&study).unwrap();
        for n in 1..=9 {
            let mut union = vec![];
            for i in 0..n {
                let part = Selection { shard: Some((i, n)), ..base.clone() }.grid(&study).unwrap();
                union.extend(part);
            }
            let set: BTreeSet<_> = union.iter().cloned().collect();
            assert_eq!(set.len(), union.len(), "shards overlap (n = {n})");
            assert_eq!(set, selected.iter().cloned().collect::<BTreeSet<_>>(), "shards miss runs (n = {n})");
        }
    }
    // --only and --seeds keep exactly what they name
    assert_eq!(sel(&["MAG"], Some("5"), None).grid(&study).unwrap(), vec![("MAG".to_string(), 5)]);
    assert_eq!(sel(&["MAC", "LMM"], Some("2"), None).grid(&study).unwrap().len(), 2);
    // the same arguments give the same partition (a fresh load, another process)
    let again = load(MICRO).unwrap();
    assert_eq!(sel(&[], None, Some("1/3")).grid(&study).unwrap(), sel(&[], None, Some("1/3")).grid(&again).unwrap());
}

#[test]
fn bad_selections_are_clear_errors() {
    let study = load(MICRO).unwrap();
    let e = sel(&["LMN"], None, None).grid(&study).unwrap_err().to_string();
    assert!(e.contains("no row `LMN`") && e.contains("did you mean `LMM`") && e.contains("MAC"), "{e}");
    let e = sel(&["LMM"], Some("5"), None).grid(&study).unwrap_err().to_string();
    assert!(e.contains("seed 5") && e.contains("0, 1, 2"), "{e}");
    for (args, want) in [
        (vec!["--shard", "2/2"], "less than n"),
        (vec!["--shard", "0/0"], "at least 1"),
        (vec!["--seeds", "0,x"], "`x` is not a seed"),
        (vec!["--only", "Nope"], "no row `Nope`"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let f = write(tmp.path(), "s.yaml", MICRO);
        let out = tmp.path().join("out");
        let mut a = vec!["run", f.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
        a.extend(args.iter());
        let o = repro(&a);
        let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(
            !o.status.success() && t.contains("error:") && t.contains(want) && !t.contains("panicked"),
            "{args:?}: {t}"
        );
        assert!(!out.join("micro").join("runs").exists(), "{args:?}: nothing may run");
    }
}

#[test]
fn shards_share_one_study_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let text = MICRO
        .replace("seeds: [0, 1, 2]", "seeds: [0, 1]")
        .replace("    set: { model.kind: mag, seeds: [0, 5] }\n", "    set: { model.kind: mag }\n");
    let f = write(tmp.path(), "s.yaml", &text);
    let out = tmp.path().join("out");
    let study = out.join("micro");
    // two shards at once, in two threads (each takes the study lock shared and every run's lock)
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (f, out) = (f.clone(), out.clone());
            std::thread::spawn(move || {
                run_study_selected(&f, &opts(&out), &sel(&[], None, Some(&format!("{i}/2"))))
                    .map(|o| (o.failed, o.busy))
            })
        })
        .collect();
    for h in handles {
        let (failed, busy) = h.join().unwrap().unwrap();
        assert!(failed.is_empty() && busy.is_empty(), "{failed:?} {busy:?}");
    }
    for row in ["LMM", "MAC", "MAG"] {
        for s in [0, 1] {
            let r = RunDir::new(&study, row, s).result().unwrap().expect("every run done by one shard");
            assert_eq!(r.status, "done");
        }
    }
    // a run held by another process is skipped, not trained twice; the others are skipped as done
    std::fs::remove_dir_all(RunDir::new(&study, "MAC", 1).path).unwrap();
    let held = RunLock::try_acquire(&RunDir::new(&study, "MAC", 1).path).unwrap().expect("free");
    let o = run_study_selected(&f, &opts(&out), &sel(&["MAC"], None, None)).unwrap();
    assert_eq!(o.busy, vec!["MAC seed 1".to_string()]);
    assert!(RunDir::new(&study, "MAC", 1).result().unwrap().is_none(), "a held run must not be trained here");
    // the lock names its holder to the process that finds it held
    let who = RunLock::try_acquire(&RunDir::new(&study, "MAC", 1).path).unwrap().err().unwrap();
    assert!(who.contains(&format!("pid {}", std::process::id())), "{who}");
    drop(held);
    let o = run_study_selected(&f, &opts(&out), &sel(&["MAC"], Some("1"), None)).unwrap();
    assert!(o.busy.is_empty() && o.failed.is_empty());
    assert_eq!(RunDir::new(&study, "MAC", 1).result().unwrap().unwrap().status, "done");
    // the report lists every run, whichever process trained it
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study.join("summary.json")).unwrap()).unwrap();
    let runs: usize = summary["rows"].as_array().unwrap().iter().map(|r| r["runs"].as_array().unwrap().len()).sum();
    assert_eq!(runs, 6);
}

const SWEEP: &str = r#"name: swept
paper: titans
task: { kind: mqar, vocab: 16, seq_len: 12, num_pairs: 3 }
model: { kind: lmm, dim: 8, heads: 2 }
training: { steps: 2, batch_size: 4, lr: 0.01 }
seeds: [0]
sweep:
  training.lr: [0.001, 0.003]
  model.memory.chunk_size: [1, 4]
"#;

#[test]
fn sweeps_expand_into_named_rows() {
    let names = |s: &Study| s.spec.ablations.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    let study = load(SWEEP).unwrap();
    assert_eq!(
        names(&study),
        vec!["lr=0.001 chunk_size=1", "lr=0.001 chunk_size=4", "lr=0.003 chunk_size=1", "lr=0.003 chunk_size=4"]
    );
    let cfg = study.row_config("lr=0.003 chunk_size=4").unwrap();
    assert_eq!((cfg.training.lr, cfg.model.memory.chunk_size), (0.003, 4));
    // crossed with the ablation rows, each row's points after it
    let with_rows = format!("{SWEEP}ablations:\n  - name: LMM\n  - name: MAC\n    set: {{ model.kind: mac }}\n");
    let study = load(&with_rows).unwrap();
    let n = names(&study);
    assert_eq!(n.len(), 8);
    assert_eq!(n[0], "LMM lr=0.001 chunk_size=1");
    assert_eq!(n[7], "MAC lr=0.003 chunk_size=4");
    let cfg = study.row_config("MAC lr=0.001 chunk_size=4").unwrap();
    assert_eq!((cfg.model.kind, cfg.model.memory.chunk_size), (repro::experiment::spec::ModelKind::Mac, 4));
    // keys sharing a last segment keep their whole path
    let both = SWEEP.replace(
        "  model.memory.chunk_size: [1, 4]\n",
        "  evaluation.batch_size: [2, 3]\n  training.batch_size: [5]\n",
    );
    let n = names(&load(&both).unwrap());
    assert_eq!(n[0], "lr=0.001 evaluation.batch_size=2 training.batch_size=5");
}

#[test]
fn sweep_errors_name_the_field() {
    let err = |text: &str| format!("{:#}", load(text).expect_err("must be refused"));
    let e = err(&SWEEP.replace("training.lr:", "training.lrr:"));
    assert!(
        e.contains("sweep.training.lrr") && e.contains("unknown field `lrr`") && e.contains("did you mean `lr`"),
        "{e}"
    );
    assert!(e.contains("s.yaml:8:"), "the line of the key: {e}");
    let e = err(&SWEEP.replace("[0.001, 0.003]", "0.001"));
    assert!(e.contains("sweep.training.lr") && e.contains("list"), "{e}");
    let e = err(&SWEEP.replace("[0.001, 0.003]", "[]"));
    assert!(e.contains("sweep.training.lr") && e.contains("at least one value"), "{e}");
    let e = err(&SWEEP.replace("[0.001, 0.003]", "[0.001, 0.001]"));
    assert!(e.contains("listed twice"), "{e}");
    let e = err(&SWEEP.replace("[1, 4]", "[1, many]"));
    assert!(e.contains("sweep.model.memory.chunk_size") && e.contains("value many"), "{e}");
    let e = err(&SWEEP.replace("training.lr:", "seeds:"));
    assert!(e.contains("sweep.seeds") && e.contains("cannot be swept"), "{e}");
    let e = err(&format!("{SWEEP}ablations:\n  - name: fast\n    set: {{ training.lr: 0.1 }}\n"));
    assert!(e.contains("row `fast` sets `training.lr`"), "{e}");
    // a value that parses but fails validation names the generated row and the field
    let e = err(&SWEEP.replace("[1, 4]", "[1, 0]"));
    assert!(e.contains("chunk_size=0") && e.contains("model.memory.chunk_size"), "{e}");
}

#[test]
fn slurm_dry_run_prints_both_scripts_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.yaml", MICRO);
    let out = tmp.path().join("out");
    let (fs, os) = (f.to_str().unwrap(), out.to_str().unwrap());
    let o = repro(&[
        "slurm",
        fs,
        "--out",
        os,
        "--dry-run",
        "--partition",
        "gpu",
        "--gpus-per-task",
        "2",
        "--time",
        "1:00:00",
        "--max-parallel",
        "3",
        "--set",
        "training.steps=2",
    ]);
    let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{t}");
    for want in [
        "#SBATCH --array=0-7%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=2",
        "#SBATCH --time=1:00:00",
        "ROWS=(LMM LMM LMM MAC MAC MAC MAG MAG)",
        "SEEDS=(0 1 2 0 1 2 0 5)",
        "--set training.steps=2",
        "--only \"${ROWS[$i]}\" --seeds \"${SEEDS[$i]}\"",
        "report ",
        "--dependency=afterany:",
    ] {
        assert!(t.contains(want), "expected `{want}` in:\n{t}");
    }
    // the report job asks for no GPU
    let report = &t[t.find("report.sbatch\n").expect("report script")..];
    assert!(!report.contains("--gpus-per-task") && report.contains("--partition=gpu"), "{report}");
    assert!(!out.exists(), "--dry-run writes nothing");
    // one-word values only: they become #SBATCH lines
    let o = repro(&["slurm", fs, "--out", os, "--dry-run", "--time", "1 hour"]);
    let t = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && t.contains("--time `1 hour`"), "{t}");
}
