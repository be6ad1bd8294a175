//! Two-stage training inside one run (`training.stages`, TNT §4.2): an interruption in either stage resumes to
//! the uninterrupted result bit for bit; a changed stage 2 keeps finished stage-1 work and equals a fresh run
//! of the new configuration; bad stage settings are refused with the field named.

use repro::experiment::runner::{run_study, RunOptions};
use repro::experiment::spec::Study;
use repro::experiment::store::RunDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// A TNT memory (global chunk 8, one local memory C_L = 4 reset every 8 tokens) trained 4 steps, then
/// fine-tuned 3 steps with C_L = 1.
const TWO_STAGE: &str = r#"name: staged
paper: tnt
task:
  kind: mqar
  vocab: 16
  seq_len: 12
  num_pairs: 3
model:
  kind: lmm
  dim: 8
  heads: 2
  persistent_tokens: 0
  memory: { kind: tnt, chunk_size: 8, local_chunks: [4], shard: 8, momentum: false, forgetting: false }
training:
  steps: 7
  batch_size: 4
  lr: 0.01
  warmup: 1
  checkpoint_every: 2
  log_every: 1
  stages:
    - { steps: 4 }
    - { steps: 3, set: { model.memory.local_chunks: [1], training.lr: 0.005 } }
evaluation:
  batches: 2
  batch_size: 8
seeds: [2]
ablations:
  - name: TNT
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn opts(out: &Path, stop_after: Option<usize>) -> RunOptions {
    RunOptions {
        scale: "tiny".into(),
        sets: vec![],
        out: out.to_path_buf(),
        quiet: true,
        fresh: false,
        stop_after,
        device: None,
    }
}

fn run_dir(out: &Path) -> RunDir {
    RunDir::new(&out.join("staged"), "TNT", 2)
}

/// The parameters of a stage's last checkpoint, by name.
fn final_params(rd: &RunDir, stage: usize) -> BTreeMap<String, Tensor> {
    let dir = rd.path.join(format!("stage-{stage}"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap()).unwrap();
    let file = dir.join(meta["tensors"].as_str().unwrap());
    Tensor::read_safetensors(file).unwrap().into_iter().filter(|(n, _)| n.starts_with("param.")).collect()
}

fn assert_same_run(a: &RunDir, b: &RunDir) {
    assert_eq!(a.metrics().unwrap(), b.metrics().unwrap(), "metrics differ");
    let (ra, rb) = (a.result().unwrap().unwrap(), b.result().unwrap().unwrap());
    assert_eq!(ra.status, "done");
    assert_eq!(ra.final_metric, rb.final_metric);
    assert_eq!(ra.steps, rb.steps);
    let (pa, pb) = (final_params(a, 2), final_params(b, 2));
    assert_eq!(pa.keys().collect::<Vec<_>>(), pb.keys().collect::<Vec<_>>());
    for (n, t) in &pa {
        assert!(t.equal(&pb[n]), "parameter {n} differs");
    }
}

#[test]
fn two_stages_survive_an_interruption_in_each_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "staged.yaml", TWO_STAGE);
    let straight = tmp.path().join("straight");
    run_study(&file, &opts(&straight, None)).unwrap();
    let a = run_dir(&straight);
    let lines = a.metrics().unwrap();
    assert_eq!(lines.iter().map(|l| l.step).collect::<Vec<_>>(), (1..=7).collect::<Vec<u64>>());
    // stage 2 has its own schedule: its first step runs at its own peak lr (warm-up 1), half of stage 1's
    assert!((lines[4].lr - 0.005).abs() < 1e-12, "{}", lines[4].lr);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.path.join("stage-2").join("stage.json")).unwrap()).unwrap();
    assert_eq!(record["stage"], 2);

    // interrupted in stage 1 (after run step 3; its checkpoint is at 2), then in stage 2 (after run step 6;
    // stage 2's checkpoint is at its step 2 = run step 6), then finished
    let resumed = tmp.path().join("resumed");
    let err = run_study(&file, &opts(&resumed, Some(3))).err().expect("interrupted in stage 1");
    assert!(format!("{err:#}").contains("stage 1"), "{err:#}");
    let b = run_dir(&resumed);
    assert!(b.result().unwrap().is_none(), "an interrupted run must not look finished");
    assert_eq!(b.metrics().unwrap().len(), 3);
    assert!(!b.path.join("stage-2").exists());
    let err = run_study(&file, &opts(&resumed, Some(6))).err().expect("interrupted in stage 2");
    assert!(format!("{err:#}").contains("stage 2"), "{err:#}");
    assert_eq!(b.metrics().unwrap().len(), 6);
    run_study(&file, &opts(&resumed, None)).unwrap();
    assert_same_run(&a, &b);

    // interrupted exactly at the stage boundary (stage 1 done, stage 2 not begun)
    let boundary = tmp.path().join("boundary");
    run_study(&file, &opts(&boundary, Some(4))).err().expect("interrupted at the boundary");
    // stage 2 is seeded with stage 1's final parameters (a step-0 checkpoint, zero moments)
    let c = run_dir(&boundary);
    let s1 = final_params(&c, 1);
    let seeded = final_params(&c, 2);
    assert_eq!(s1.keys().collect::<Vec<_>>(), seeded.keys().collect::<Vec<_>>());
    for (n, t) in &seeded {
        assert!(t.equal(&s1[n]), "stage 2 did not start from stage 1's {n}");
    }
    run_study(&file, &opts(&boundary, None)).unwrap();
    assert_same_run(&a, &run_dir(&boundary));
}

#[test]
fn a_changed_stage_two_keeps_stage_one() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "staged.yaml", TWO_STAGE);
    let out = tmp.path().join("out");
    run_study(&file, &opts(&out, None)).unwrap();
    let rd = run_dir(&out);
    let stage1 = rd.path.join("stage-1").join("checkpoint-4.safetensors");
    let before = std::fs::read(&stage1).unwrap();
    let modified = std::fs::metadata(&stage1).unwrap().modified().unwrap();

    // stage 2 now uses C_L = 2 and 4 steps: stage 1 is kept, stage 2 redone
    let changed = TWO_STAGE.replace("steps: 7", "steps: 8").replace(
        "{ steps: 3, set: { model.memory.local_chunks: [1]",
        "{ steps: 4, set: { model.memory.local_chunks: [2]",
    );
    let file2 = write(tmp.path(), "staged2.yaml", &changed);
    run_study(&file2, &opts(&out, None)).unwrap();
    assert_eq!(std::fs::read(&stage1).unwrap(), before);
    assert_eq!(std::fs::metadata(&stage1).unwrap().modified().unwrap(), modified, "stage 1 was retrained");
    assert_eq!(rd.metrics().unwrap().len(), 8);
    assert_eq!(rd.manifest().unwrap().unwrap().config["training"]["steps"], 8);

    // the same as a fresh run of the changed study
    let fresh = tmp.path().join("fresh");
    run_study(&file2, &opts(&fresh, None)).unwrap();
    assert_same_run(&rd, &run_dir(&fresh));

    // a change before the last stage (stage 1) is a different run: refused without --fresh
    let other = write(
        tmp.path(),
        "staged3.yaml",
        &changed.replace("- { steps: 4 }", "- { steps: 4, set: { training.lr: 0.02 } }"),
    );
    let err = run_study(&other, &opts(&out, None)).err().expect("stage 1 changed");
    assert!(format!("{err:#}").contains("different configuration"), "{err:#}");
}

fn load_err(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "bad.yaml", text);
    format!("{:#}", Study::load(&file, "tiny", &[]).expect_err("should fail"))
}

#[test]
fn bad_stages_are_refused_with_the_field() {
    let e = load_err(&TWO_STAGE.replace("steps: 7", "steps: 9"));
    assert!(e.contains("training.steps") && e.contains("sum of training.stages"), "{e}");
    let e = load_err(&TWO_STAGE.replace("training.lr: 0.005", "task.seq_len: 20"));
    assert!(
        e.contains("training.stages") && e.contains("task.seq_len") && e.contains("cannot be set per stage"),
        "{e}"
    );
    let e = load_err(&TWO_STAGE.replace("local_chunks: [1]", "local_chunks: [3]"));
    assert!(e.contains("stage 2") && e.contains("multiple of every local chunk"), "{e}");
    let e = load_err(&TWO_STAGE.replace("- { steps: 4 }", "- { steps: 4, sett: {} }"));
    assert!(e.contains("sett"), "{e}");
}
