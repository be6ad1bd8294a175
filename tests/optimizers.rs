//! `training.optimizer`: every optimizer trains a micro study, an interrupted run resumes bit for bit (metrics
//! and every checkpoint tensor, the optimizer's memories included), AdamW keeps its configuration hash when it
//! is named explicitly, and bad hyper-parameters are errors that name the field.

use repro::experiment::runner::{run_study, RunOptions};
use repro::experiment::spec::Study;
use repro::experiment::store::RunDir;
use std::path::{Path, PathBuf};
use tch::Tensor;

const MICRO: &str = r#"name: micro
paper: nl
description: a micro study for the optimizer tests
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
  steps: 8
  batch_size: 4
  lr: 0.01
  warmup: 2
  checkpoint_every: 3
  log_every: 1
  weight_decay: 0.05
OPTIMIZER
evaluation:
  batches: 2
  batch_size: 8
seeds: [0]
ablations:
  - name: row
"#;

fn study(optimizer: &str) -> String {
    MICRO.replace(
        "OPTIMIZER\n",
        &if optimizer.is_empty() { String::new() } else { format!("  optimizer: {optimizer}\n") },
    )
}

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

fn checkpoint(rd: &RunDir, step: usize) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(rd.path.join(format!("checkpoint-{step}.safetensors"))).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// Trains straight through, and again interrupted after step 5 (checkpoint at 3) then resumed; both must agree
/// bit for bit. Returns the final checkpoint's tensor names.
fn resumes_exactly(optimizer: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &study(optimizer));
    let straight = tmp.path().join("straight");
    let o = run_study(&file, &opts(&straight)).unwrap();
    assert!(o.failed.is_empty(), "{optimizer}: {:?}", o.failed);
    let resumed = tmp.path().join("resumed");
    let mut o = opts(&resumed);
    o.stop_after = Some(5);
    assert!(run_study(&file, &o).is_err(), "{optimizer}: the interrupted run must fail");
    let rd = RunDir::new(&resumed.join("micro"), "row", 0);
    assert!(rd.result().unwrap().is_none());
    run_study(&file, &opts(&resumed)).unwrap();
    let a = RunDir::new(&straight.join("micro"), "row", 0);
    let (ma, mb) = (a.metrics().unwrap(), rd.metrics().unwrap());
    assert_eq!(ma.len(), 8);
    assert!(ma.iter().all(|m| m.loss.is_finite()), "{optimizer}: {ma:?}");
    assert_eq!(ma, mb, "{optimizer}: resumed metrics differ");
    assert_eq!(a.result().unwrap().unwrap().final_metric, rd.result().unwrap().unwrap().final_metric);
    let (ta, tb) = (checkpoint(&a, 8), checkpoint(&rd, 8));
    assert_eq!(ta.len(), tb.len());
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(xa.equal(xb), "{optimizer}: {na} differs after resuming");
    }
    // the parameters moved
    let first = checkpoint(&a, 8);
    assert!(first.iter().any(|(n, _)| n.starts_with("param.")));
    ta.into_iter().map(|(n, _)| n).collect()
}

fn has_slot(names: &[String], slot: &str) -> bool {
    names.iter().any(|n| n.starts_with(&format!("{slot}.")))
}

#[test]
fn adamw_default_resumes_exactly() {
    let names = resumes_exactly("");
    assert!(has_slot(&names, "adam_m") && has_slot(&names, "adam_v"));
}

#[test]
fn sgd_resumes_exactly() {
    let names = resumes_exactly("{ kind: sgd }");
    assert!(names.iter().all(|n| n.starts_with("param.")), "sgd has no state: {names:?}");
}

#[test]
fn momentum_resumes_exactly() {
    assert!(has_slot(&resumes_exactly("{ kind: momentum, beta: 0.8 }"), "momentum"));
}

#[test]
fn delta_momentum_resumes_exactly() {
    assert!(has_slot(&resumes_exactly("{ kind: delta-momentum }"), "momentum"));
}

#[test]
fn muon_resumes_exactly() {
    let names = resumes_exactly("{ kind: muon, ns: cubic, ns_steps: 4 }");
    assert!(has_slot(&names, "muon_momentum") && has_slot(&names, "adam_m"), "{names:?}");
}

#[test]
fn m3_resumes_exactly() {
    // frequency 2: slow steps at 3, 5, 7 straddle the checkpoint (3) and the interruption (5)
    for moments in ["ema", "sum"] {
        let names = resumes_exactly(&format!("{{ kind: m3, frequency: 2, moments: {moments}, eps: 0.001 }}"));
        for s in ["m3_m1", "m3_m2", "m3_v", "m3_o2", "m3_block", "adam_v"] {
            assert!(has_slot(&names, s), "{s}: {names:?}");
        }
    }
}

#[test]
fn dmgd_resumes_exactly() {
    let names = resumes_exactly("{ kind: dmgd, hidden: 3, inner_lr: 0.5 }");
    for s in ["dmgd_b", "dmgd_w1", "dmgd_w2"] {
        assert!(has_slot(&names, s), "{s}: {names:?}");
    }
}

#[test]
fn explicit_adamw_keeps_the_configuration_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let hash = |text: &str, name: &str| {
        let file = write(tmp.path(), name, text);
        let s = Study::load(&file, "tiny", &[]).unwrap();
        let cfg = serde_yaml::to_value(s.row_config("row").unwrap()).unwrap();
        repro::experiment::store::config_hash(&cfg)
    };
    let plain = hash(&study(""), "a.yaml");
    assert_eq!(plain, hash(&study("{ kind: adamw }"), "b.yaml"));
    assert_ne!(plain, hash(&study("{ kind: sgd }"), "c.yaml"));
}

fn load_err(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "bad.yaml", text);
    format!("{:#}", Study::load(&file, "tiny", &[]).expect_err("should fail"))
}

#[test]
fn bad_optimizer_settings_name_the_field() {
    let e = load_err(&study("{ kind: m3, frequency: 0 }"));
    assert!(e.contains("training.optimizer.frequency") && e.contains("at least 1"), "{e}");
    let e = load_err(&study("{ kind: momentum, beta: 1.5 }"));
    assert!(e.contains("training.optimizer.beta") && e.contains("[0, 1)"), "{e}");
    let e = load_err(&study("{ kind: muon, ns_steps: 0 }"));
    assert!(e.contains("training.optimizer.ns_steps"), "{e}");
    let e = load_err(&study("{ kind: dmgd, hidden: 0 }"));
    assert!(e.contains("training.optimizer.hidden"), "{e}");
    let e = load_err(&study("{ kind: momentum, bta: 0.5 }"));
    assert!(e.contains("bta"), "{e}");
    let e = load_err(&study("{ kind: lion }"));
    assert!(e.contains("lion") && e.contains("m3"), "{e}");
}
