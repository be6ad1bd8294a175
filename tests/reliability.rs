//! Issue 15: no panic, no hang, nothing written outside `--out`, no silent wrong result. One group of tests per
//! numbered item of the issue (the test names are cited in its closing note); every one of them failed on the
//! code before the fix.

use repro::experiment::lock::StudyLock;
use repro::experiment::runner::{run_study, write_report, RunOptions};
use repro::experiment::spec::Study;
use repro::experiment::store::{MetricLine, RunDir, TensorInfo};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{Device, Kind, Tensor};

// ---------------------------------------------------------------------------------------------------------
// helpers

fn repro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).output().expect("run repro")
}

fn repro_env(args: &[&str], var: &str, value: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).env(var, value).output().expect("run repro")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A failing command prints one `error:` line that contains every needle, no panic, and exits non-zero.
fn assert_clean_error(o: &Output, needles: &[&str]) {
    let t = text(o);
    assert!(!o.status.success(), "expected failure: {t}");
    assert!(t.contains("error:"), "no `error:` line: {t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in: {t}");
    }
    assert!(!t.contains("panicked") && !t.contains("RUST_BACKTRACE") && !t.contains("terminate called"), "{t}");
}

const MICRO: &str = r#"name: micro
paper: titans
description: a micro study for the reliability tests
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
seeds: [0]
ablations:
  - name: LMM
  - name: MAC
    set: { model.kind: mac }
"#;

/// MICRO with one row (LMM) only.
fn one_row() -> String {
    MICRO.replace("  - name: MAC\n    set: { model.kind: mac }\n", "")
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

fn load_err(text: &str, scale: &str, sets: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "bad.yaml", text);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    format!("{:#}", Study::load(&file, scale, &sets).expect_err("should fail"))
}

/// Random f64 tensors of the given shapes, named.
fn tensors(shapes: &[(&str, &[i64])]) -> Vec<(String, Tensor)> {
    repro::tensor::with_torch_seed(5, || {
        shapes.iter().map(|(n, s)| (n.to_string(), Tensor::rand(*s, (Kind::Double, Device::Cpu)) * 0.5)).collect()
    })
}

fn eval(rule: &str, inputs: &Path, out: &Path, imp: &str, params: &[&str]) -> Output {
    let mut args =
        vec!["eval", rule, "--inputs", inputs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--impl", imp];
    for p in params {
        args.push("--param");
        args.push(p);
    }
    repro(&args)
}

/// Inputs of the MIRAS linear rules (`miras.framework`, `miras.moneta`, ...) at B, H, T: keys, values, queries
/// and the named gates (each rule declares exactly the gates its configuration reads).
fn miras_inputs(b: i64, h: i64, t: i64, gates: &[&str]) -> Vec<(String, Tensor)> {
    let mut shapes: Vec<(&str, Vec<i64>)> =
        vec![("k", vec![b, h, t, 4]), ("v", vec![b, h, t, 3]), ("q", vec![b, h, t, 4])];
    for e in gates {
        shapes.push((e, vec![b, h, t]));
    }
    let s: Vec<(&str, &[i64])> = shapes.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    tensors(&s)
}

// ---------------------------------------------------------------------------------------------------------
// 1. `repro eval` with an empty batch, head or sequence

#[test]
fn eval_rejects_zero_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let titans = |b: i64, h: i64, t: i64| {
        tensors(&[
            ("k", &[b, h, t, 4]),
            ("v", &[b, h, t, 3]),
            ("q", &[b, h, t, 4]),
            ("alpha", &[b, h, t]),
            ("eta", &[b, h, t]),
            ("theta", &[b, h, t]),
        ])
    };
    for (b, h, t, sym) in [(0, 2, 5, "(B) is 0"), (1, 0, 5, "(H) is 0"), (1, 2, 0, "(T) is 0")] {
        let p = dir.path().join(format!("titans-{b}-{h}-{t}.safetensors"));
        Tensor::write_safetensors(&titans(b, h, t), &p).unwrap();
        let m = dir.path().join(format!("miras-{b}-{h}-{t}.safetensors"));
        Tensor::write_safetensors(&miras_inputs(b, h, t, &["eta"]), &m).unwrap();
        let mo = dir.path().join(format!("moneta-{b}-{h}-{t}.safetensors"));
        Tensor::write_safetensors(&miras_inputs(b, h, t, &["alpha", "eta"]), &mo).unwrap();
        for imp in ["reference", "torch"] {
            for (rule, input, params) in [
                ("titans.linear_memory", &p, vec![]),
                ("titans.linear_memory_chunkwise", &p, vec!["chunk_size=2"]),
                ("miras.framework", &m, vec![]),
                ("miras.moneta", &mo, vec![]),
                ("miras.moneta", &mo, vec!["chunk_size=2"]),
            ] {
                let o = eval(rule, input, &out, imp, &params);
                assert_clean_error(&o, &["tensor `k`", sym, "at least 1"]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2. REPRO_THREADS

#[test]
fn threads_env_is_validated() {
    use repro::device::cpu_threads;
    assert_eq!(cpu_threads(None).unwrap(), 1);
    assert_eq!(cpu_threads(Some("")).unwrap(), 1);
    assert_eq!(cpu_threads(Some("2")).unwrap(), 2);
    for bad in ["0", "-1", "99999", "abc", "1.5"] {
        let e = format!("{:#}", cpu_threads(Some(bad)).err().unwrap_or_else(|| panic!("{bad} accepted")));
        assert!(e.contains("REPRO_THREADS") && e.contains(bad), "{e}");
    }
    // end to end: a clean one-line error before anything trains, for each kind of bad value
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let out = tmp.path().join("out");
    for bad in ["0", "-1", "99999", "abc"] {
        let o = repro_env(&["run", file.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()], "REPRO_THREADS", bad);
        assert_clean_error(&o, &["REPRO_THREADS", bad]);
        assert!(!out.join("micro").join("runs").exists(), "nothing may train with REPRO_THREADS={bad}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. values from the YAML that used to reach a panic

#[test]
fn yaml_values_that_used_to_panic_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let run = |sets: &[&str]| {
        let out = tmp.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let mut args = vec!["run", file.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
        for s in sets {
            args.push("--set");
            args.push(s);
        }
        repro(&args)
    };
    // a needle-in-a-haystack training length too short to hold the needle
    assert_clean_error(
        &run(&["task.kind=niah", "task.lengths=[8]", "task.seq_len=5"]),
        &["--set task.seq_len=5", "niah", "at least 8"],
    );
    // character LM windows longer than the validation split
    if repro::experiment::tasks::corpus_path().exists() {
        assert_clean_error(
            &run(&["task.kind=lm-char", "task.seq_len=5000000"]),
            &["task.seq_len = 5000000", "validation split"],
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// 4. study names

#[test]
fn study_name_must_be_a_single_path_component() {
    for bad in ["\"../escape\"", "/tmp/abs", "\"\"", "a/b", ".", "..", ".hidden", "\"a\\\\b\""] {
        let e = load_err(&MICRO.replace("name: micro", &format!("name: {bad}")), "tiny", &[]);
        assert!(e.contains("bad.yaml:1: name:"), "{bad}: {e}");
    }
    // nothing is written outside --out either
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "esc.yaml", &one_row().replace("name: micro", "name: \"../escaped\""));
    let out = tmp.path().join("out");
    assert!(run_study(&file, &opts(&out)).is_err());
    assert!(!tmp.path().join("escaped").exists());
    // the names the shipped studies use stay valid
    Study::load(&write(tmp.path(), "ok.yaml", &MICRO.replace("name: micro", "name: titans_table5.v2-b")), "tiny", &[])
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// 5. row names that share a run folder

#[test]
fn colliding_row_folders_are_rejected() {
    let two = MICRO.replace("  - name: LMM\n", "  - name: LMM!\n").replace("  - name: MAC\n", "  - name: LMM?\n");
    let e = load_err(&two, "tiny", &[]);
    assert!(e.contains("`LMM!`") && e.contains("`LMM?`") && e.contains("runs/LMM_/") && e.contains("bad.yaml:"), "{e}");
    let case = MICRO.replace("  - name: MAC\n", "  - name: lmm\n");
    let e = load_err(&case, "tiny", &[]);
    assert!(e.contains("`LMM`") && e.contains("`lmm`"), "{e}");
    let empty = MICRO.replace("  - name: MAC\n", "  - name: \"\"\n");
    assert!(load_err(&empty, "tiny", &[]).contains("empty name"));
}

// ---------------------------------------------------------------------------------------------------------
// 6. one `repro run` per study folder

#[test]
fn a_second_run_on_the_same_study_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let out = tmp.path().join("out");
    let study = out.join("micro");
    std::fs::create_dir_all(&study).unwrap();
    // another process holds the lock (a second open file description behaves like one)
    let held = StudyLock::acquire(&study).unwrap();
    let e = format!("{:#}", run_study(&file, &opts(&out)).err().expect("must be refused"));
    assert!(e.contains("another `repro run`") && e.contains(&format!("pid {}", std::process::id())), "{e}");
    assert!(!study.join("runs").exists(), "nothing may train while the lock is held");
    // the CLI says the same and exits non-zero
    let o = repro(&["run", file.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["another `repro run`", "host"]);
    drop(held);
    // a lock file left by a process that died (kill -9) is stale: its flock went with it
    std::fs::write(
        study.join(".lock"),
        r#"{"pid":999999,"host":"elsewhere","since":0,"command":"repro run (killed)"}"#,
    )
    .unwrap();
    let o = run_study(&file, &opts(&out)).unwrap();
    assert!(o.failed.is_empty(), "{:?}", o.failed);
    assert_eq!(StudyLock::recorded_holder(&study).unwrap().pid, std::process::id());
}

// ---------------------------------------------------------------------------------------------------------
// 7. checkpoints are one verified unit

/// Runs LMM to step 4 (checkpoint at step 3) and returns the run folder.
fn interrupted(out: &Path, file: &Path) -> RunDir {
    let mut o = opts(out);
    o.stop_after = Some(4);
    assert!(run_study(file, &o).is_err());
    RunDir::new(&out.join("micro"), "LMM", 0)
}

fn status_of(out: &Path) -> String {
    RunDir::new(&out.join("micro"), "LMM", 0).result().unwrap().expect("result.json").status
}

#[test]
fn checkpoint_is_verified_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let straight = tmp.path().join("straight");
    run_study(&file, &opts(&straight)).unwrap();
    let reference = RunDir::new(&straight.join("micro"), "LMM", 0);

    // a crash after the tensors of step 5 were written but before their record: the record still names
    // step 3's tensors, which are still there, and the resumed run equals the uninterrupted one
    let crashed = tmp.path().join("crashed");
    let rd = interrupted(&crashed, &file);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.path.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(meta["step"], 3);
    assert_eq!(meta["tensors"], "checkpoint-3.safetensors");
    assert!(meta["params"].as_array().unwrap().len() > 3 && meta["config_hash"].is_string());
    let other = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("junk", other)], rd.path.join("checkpoint-5.safetensors")).unwrap();
    run_study(&file, &opts(&crashed)).unwrap();
    assert_eq!(rd.metrics().unwrap(), reference.metrics().unwrap());
    assert_eq!(rd.result().unwrap().unwrap().final_metric, reference.result().unwrap().unwrap().final_metric);
    assert!(!rd.path.join("checkpoint-5.safetensors").exists(), "unreferenced tensors are removed");

    // a corrupt tensor file is caught by its hash
    let corrupt = tmp.path().join("corrupt");
    let rd = interrupted(&corrupt, &file);
    let p = rd.path.join("checkpoint-3.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let o = run_study(&file, &opts(&corrupt)).unwrap();
    assert!(!o.failed.is_empty());
    let s = status_of(&corrupt);
    assert!(s.contains("corrupt") && s.contains("checkpoint-3.safetensors") && s.contains("--fresh"), "{s}");

    // a step beyond training.steps is an error, not "done"
    let beyond = tmp.path().join("beyond");
    let rd = interrupted(&beyond, &file);
    let meta_path = rd.path.join("checkpoint.json");
    let edited = std::fs::read_to_string(&meta_path).unwrap().replace("\"step\": 3", "\"step\": 60");
    std::fs::write(&meta_path, edited).unwrap();
    run_study(&file, &opts(&beyond)).unwrap();
    let s = status_of(&beyond);
    assert!(s.starts_with("failed") && s.contains("step 60") && s.contains("training.steps = 6"), "{s}");

    // a checkpoint of another model (MAC's in an LMM run) is refused: configuration hash, then tensors
    let mac = tmp.path().join("mac");
    let mac_file = write(tmp.path(), "mac.yaml", &one_row().replace("  kind: lmm", "  kind: mac"));
    let mut o = opts(&mac);
    o.stop_after = Some(4);
    assert!(run_study(&mac_file, &o).is_err());
    let swapped = tmp.path().join("swapped");
    let rd = interrupted(&swapped, &file);
    let mac_rd = RunDir::new(&mac.join("micro"), "LMM", 0);
    for f in ["checkpoint.json", "checkpoint-3.safetensors"] {
        std::fs::copy(mac_rd.path.join(f), rd.path.join(f)).unwrap();
    }
    run_study(&file, &opts(&swapped)).unwrap();
    let s = status_of(&swapped);
    assert!(s.contains("another configuration"), "{s}");
    // same configuration hash but other tensors: the names and shapes are checked against the model
    let expected = vec![TensorInfo { name: "param.x".into(), shape: vec![3] }];
    let hash = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(mac_rd.path.join("checkpoint.json")).unwrap(),
    )
    .unwrap()["config_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let e = format!("{:#}", mac_rd.load_checkpoint(&hash, &expected).err().unwrap());
    assert!(e.contains("not of this model") && e.contains("lacks `param.x`"), "{e}");
}

// ---------------------------------------------------------------------------------------------------------
// 8. metrics.jsonl: append-only, truncated to the checkpoint on resume

#[test]
fn resume_before_the_first_checkpoint_leaves_no_duplicate_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let straight = tmp.path().join("straight");
    run_study(&file, &opts(&straight)).unwrap();
    let resumed = tmp.path().join("resumed");
    let mut o = opts(&resumed);
    o.stop_after = Some(2); // two metric lines, no checkpoint yet (checkpoint_every: 3)
    assert!(run_study(&file, &o).is_err());
    let rd = RunDir::new(&resumed.join("micro"), "LMM", 0);
    assert_eq!(rd.metrics().unwrap().len(), 2);
    assert!(!rd.path.join("checkpoint.json").exists());
    run_study(&file, &opts(&resumed)).unwrap();
    let a = RunDir::new(&straight.join("micro"), "LMM", 0);
    let steps: Vec<u64> = rd.metrics().unwrap().iter().map(|l| l.step).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
    assert_eq!(a.metrics().unwrap(), rd.metrics().unwrap());
}

#[test]
fn metrics_are_appended_in_place() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let rd = RunDir::new(tmp.path(), "row", 0);
    let line = |step| MetricLine { step, loss: 1.0, accuracy: 0.5, lr: 0.1, grad_norm: 1.0, metric: None };
    rd.append_metric(&line(1)).unwrap();
    let p = rd.path.join("metrics.jsonl");
    let inode = std::fs::metadata(&p).unwrap().ino();
    rd.append_metric(&line(2)).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().ino(), inode, "appending must not rewrite the file");
    // a line torn by a crash (no newline) is dropped, and the truncation removes it and later steps
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    std::io::Write::write_all(&mut f, br#"{"step": 3, "lo"#).unwrap();
    assert_eq!(rd.metrics().unwrap().len(), 2);
    rd.truncate_metrics(1).unwrap();
    assert_eq!(rd.metrics().unwrap(), vec![line(1)]);
    assert!(std::fs::read_to_string(&p).unwrap().ends_with('\n'));
}

// ---------------------------------------------------------------------------------------------------------
// 9. evaluation sizes and scales

#[test]
fn evaluation_sizes_and_scales_are_validated_at_load() {
    let e = load_err(&MICRO.replace("  batches: 2", "  batches: 0"), "tiny", &[]);
    assert!(e.contains("bad.yaml:") && e.contains("evaluation.batches") && e.contains("at least 1"), "{e}");
    let e = load_err(&MICRO.replace("  batch_size: 8", "  batch_size: 0"), "tiny", &[]);
    assert!(e.contains("evaluation.batch_size") && e.contains("at least 1"), "{e}");
    // a scale the study does not declare
    let e = load_err(MICRO, "paper", &[]);
    assert!(e.contains("--scale `paper`") && e.contains("only the default `tiny`"), "{e}");
    let scaled = format!("{MICRO}scales:\n  tiny: {{}}\n  small: {{ training.steps: 8 }}\n");
    let e = load_err(&scaled, "paper", &[]);
    assert!(e.contains("--scale `paper`") && e.contains("known scales: tiny, small"), "{e}");
    // a bad key inside a preset that is not selected
    let bad_preset = format!("{MICRO}scales:\n  tiny: {{}}\n  paper: {{ model.dimm: 64 }}\n");
    let e = load_err(&bad_preset, "tiny", &[]);
    assert!(e.contains("scales.paper") && e.contains("dimm") && e.contains("did you mean `dim`"), "{e}");
    let bad_value = format!("{MICRO}scales:\n  tiny: {{}}\n  paper: {{ model.heads: 3 }}\n");
    let e = load_err(&bad_value, "tiny", &[]);
    assert!(e.contains("--scale paper") && e.contains("scales.paper") && e.contains("model.heads"), "{e}");
}

// ---------------------------------------------------------------------------------------------------------
// 10. MIRAS parameters outside their domain, extra fields, missing thresholds

#[test]
fn miras_parameters_outside_their_domain_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let p = dir.path().join("in.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 2, 5, &["eta"]), &p).unwrap();
    let moneta = dir.path().join("moneta.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 2, 5, &["alpha", "eta"]), &moneta).unwrap();
    let yaad = dir.path().join("yaad.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 2, 5, &["alpha", "eta", "delta"]), &yaad).unwrap();
    for (rule, params, needle) in [
        ("miras.moneta", vec!["p=0"], "p must be at least 1"),
        ("miras.moneta", vec!["q=1"], "q must be greater than 1"),
        ("miras.moneta", vec!["chunk_size=-3"], "chunk_size=-3"),
        ("miras.moneta", vec!["chunk_size=2.5"], "chunk_size=2.5"),
        ("miras.framework", vec!["bias={kind: lp, p: -1}"], "p = -1"),
        ("miras.framework", vec!["bias={kind: lp, p: 0.5}"], "p ≥ 1"),
        ("miras.framework", vec!["retention={kind: lq, q: 0, form: mirror}"], "q = 0"),
        ("miras.framework", vec!["retention={kind: lq, q: -2, form: printed}"], "q > 1"),
        ("miras.framework", vec!["retention={kind: elastic-net, beta: 0, alpha: 1}"], "beta = 0"),
        ("miras.framework", vec!["bias={kind: lp-smooth, p: 3, kappa: 0, eps: 0.1}"], "kappa > 0"),
    ] {
        let input = if rule == "miras.moneta" { &moneta } else { &p };
        for imp in ["reference", "torch"] {
            assert_clean_error(&eval(rule, input, &out, imp, &params), &[needle]);
        }
    }
    // the Titans rules already refused these; the MIRAS chunk sizes now say the same kind of thing
    assert_clean_error(&eval("miras.yaad", &yaad, &out, "torch", &["chunk_size=-1"]), &["positive integer"]);
    let o = eval("miras.yaad", &yaad, &out, "torch", &["chunk_size=2"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn miras_fieldless_variants_reject_extra_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let p = dir.path().join("in.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 2, 5, &["eta"]), &p).unwrap();
    let huber = dir.path().join("huber.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 2, 5, &["eta", "delta"]), &huber).unwrap();
    assert_clean_error(
        &eval("miras.framework", &p, &out, "reference", &["bias={kind: huber, delta: 0.5}"]),
        &["--param bias", "unknown field `bias.delta`", "`bias` has no field `delta`"],
    );
    assert_clean_error(
        &eval("miras.framework", &p, &out, "reference", &["algorithm={kind: momentum, mu: 0.9}"]),
        &["--param algorithm", "`algorithm` has no field `mu`"],
    );
    assert_clean_error(
        &eval("miras.framework", &p, &out, "reference", &["retention={kind: kl, alpha: 3}"]),
        &["`retention` has no field `alpha`"],
    );
    // fields a variant has are still fine
    let o = eval("miras.framework", &p, &out, "reference", &["bias={kind: lp, p: 3}", "retention={kind: none}"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = eval("miras.framework", &huber, &out, "reference", &["bias={kind: huber}"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn miras_threshold_biases_need_delta() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let p = dir.path().join("in.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 2, 5, &["eta"]), &p).unwrap();
    for bias in ["huber", "huber-norm", "l2-l1-switch", "value-shift"] {
        let o = eval("miras.framework", &p, &out, "torch", &[&format!("bias={{kind: {bias}}}")]);
        assert_clean_error(&o, &["missing tensor `delta`", "bias threshold"]);
    }
    let o = eval("miras.framework", &p, &out, "reference", &["algorithm={kind: momentum}"]);
    assert_clean_error(&o, &["missing tensor `mu`", "momentum"]);
    // biases without a threshold do not need it
    let o = eval("miras.framework", &p, &out, "reference", &["bias={kind: l2, scale: 1}"]);
    assert!(o.status.success(), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------------------
// 11. NaN in the MIRAS chunkwise forms at α = 0, and the value-shift bias at e = 0

#[test]
fn miras_chunkwise_survives_full_erase() {
    use repro::miras::checks::{batched, Case, Drawn, Ranges};
    use repro::miras::framework::LqForm;
    use repro::miras::models::{reference as mref, torch as mtorch, Model};
    use repro::tensor::{errors, from_tch, to_tch};
    for kind in [Kind::Double, Kind::Float] {
        let mut d = Drawn::new(11, Case::with_len(9), Ranges::default(), kind);
        // full erases inside chunks and at chunk starts
        for (b, h, t) in [(0, 0, 1), (0, 1, 4), (1, 2, 6), (1, 0, 0), (0, 2, 8)] {
            d.alpha[[b, h, t]] = 0.0;
        }
        for model in [Model::Moneta { p: 3.0, q: 4.0, form: LqForm::Mirror }, Model::Yaad, Model::Memora { scale: 1.0 }]
        {
            for b in [1usize, 3, 4] {
                let reference = batched(&d, |x| mref::chunkwise(&model, x, b));
                let t = |a: &repro::tensor::Arr| to_tch(a, kind, Device::Cpu);
                let alpha = t(&d.alpha).set_requires_grad(true);
                let eta = t(&d.eta).set_requires_grad(true);
                let o = mtorch::chunkwise(
                    &model,
                    &t(&d.k),
                    &t(&d.v),
                    &t(&d.q),
                    &alpha,
                    &eta,
                    &t(&d.delta),
                    &t(&d.m0),
                    b as i64,
                );
                let y = from_tch(&o.y).unwrap();
                assert!(y.iter().all(|x| x.is_finite()), "{model:?} b={b} {kind:?}: NaN in y");
                let tol = if kind == Kind::Double { 1e-9 } else { 1e-4 };
                let e = errors(&y, &reference[0]).unwrap();
                assert!(e.rel_rmse < tol, "{model:?} b={b} {kind:?}: {e:?}");
                // gradients through the zero gates stay finite
                let g = Tensor::run_backward(&[o.y.sum(kind)], &[&alpha, &eta], false, false);
                for gi in g {
                    assert!(from_tch(&gi).unwrap().iter().all(|x| x.is_finite()), "{model:?} b={b}: NaN gradient");
                }
            }
        }
    }
}

#[test]
fn value_shift_is_finite_at_zero_error() {
    use ndarray::{arr1, arr2};
    use repro::miras::bias::{reference as bref, torch as btorch, Bias};
    // W k = v exactly: e = 0
    let w = arr2(&[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]);
    let k = arr1(&[0.5, -1.0]);
    let v = w.dot(&k);
    let psi = bref::output_grad(Bias::ValueShift, w.view(), k.view(), v.view(), 0.7);
    assert!(psi.iter().all(|x| *x == 0.0), "{psi:?}");
    let l = bref::loss(Bias::ValueShift, w.view(), k.view(), v.view(), 0.7);
    assert!((l - 0.5 * 0.49).abs() < 1e-15, "{l}");
    for kind in [Kind::Double, Kind::Float] {
        let t = |a: &[f64], s: &[i64]| Tensor::from_slice(a).reshape(s).to_kind(kind);
        let (wt, kt, vt) =
            (t(w.as_slice().unwrap(), &[3, 2]), t(k.as_slice().unwrap(), &[2]), t(v.as_slice().unwrap(), &[3]));
        let dt = Tensor::from(0.7).to_kind(kind);
        for g in [
            btorch::grad(Bias::ValueShift, &wt, &kt, &vt, &dt),
            btorch::grad_autograd(Bias::ValueShift, &wt, &kt, &vt, &dt),
        ] {
            let g = repro::tensor::from_tch(&g).unwrap();
            assert!(g.iter().all(|x| x.is_finite() && *x == 0.0), "{kind:?}: {g:?}");
        }
    }
    // and through the recurrence: a first token with e = 0 no longer poisons every later output
    use repro::miras::framework::{Algorithm, Config, Retention};
    use repro::miras::update::{reference as uref, torch as utorch};
    let cfg = Config::linear(Bias::ValueShift, Retention::L2Decayed, Algorithm::Gd);
    let (d_v, d_k, steps) = (3usize, 2usize, 4usize);
    let kk = ndarray::Array2::from_shape_fn((steps, d_k), |(i, j)| 0.3 + 0.1 * (i + 2 * j) as f64);
    let mut vv = ndarray::Array2::from_shape_fn((steps, d_v), |(i, j)| 0.2 - 0.1 * (i * j) as f64);
    vv.row_mut(0).fill(0.0); // W_0 = 0 and v_0 = 0: e_1 = 0
    let inp = uref::Inputs {
        k: kk.clone(),
        v: vv.clone(),
        q: kk.clone(),
        alpha: ndarray::Array1::from_elem(steps, 0.9),
        eta: ndarray::Array1::from_elem(steps, 0.2),
        delta: ndarray::Array1::from_elem(steps, 0.5),
        mu: ndarray::Array1::zeros(steps),
        m0: ndarray::Array2::zeros((d_v, d_k)),
    };
    let o = uref::forward(&cfg, &inp);
    assert!(o.y.iter().all(|x| x.is_finite()), "{:?}", o.y);
    let tt = |a: &[f64], s: &[i64]| Tensor::from_slice(a).reshape(s);
    let to = utorch::forward(
        &cfg,
        &tt(kk.as_slice().unwrap(), &[1, 1, steps as i64, d_k as i64]),
        &tt(vv.as_slice().unwrap(), &[1, 1, steps as i64, d_v as i64]),
        &tt(kk.as_slice().unwrap(), &[1, 1, steps as i64, d_k as i64]),
        &Tensor::full([1, 1, steps as i64], 0.9, (Kind::Double, Device::Cpu)),
        &Tensor::full([1, 1, steps as i64], 0.2, (Kind::Double, Device::Cpu)),
        &Tensor::full([1, 1, steps as i64], 0.5, (Kind::Double, Device::Cpu)),
        &Tensor::zeros([1, 1, steps as i64], (Kind::Double, Device::Cpu)),
        &Tensor::zeros([1, 1, d_v as i64, d_k as i64], (Kind::Double, Device::Cpu)),
    );
    let ty = repro::tensor::from_tch(&to.y).unwrap();
    assert!(ty.iter().all(|x| x.is_finite()), "{ty:?}");
    let e = repro::tensor::errors(&ty.into_shape_with_order(ndarray::IxDyn(&[steps, d_v])).unwrap(), &o.y.into_dyn())
        .unwrap();
    assert!(e.max_abs < 1e-12, "{e:?}");
}

// ---------------------------------------------------------------------------------------------------------
// 12. recovering from a failed run; a report with one unreadable run

#[test]
fn fresh_retries_failed_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let out = tmp.path().join("out");
    let rd = interrupted(&out, &file);
    std::fs::write(rd.path.join("checkpoint-3.safetensors"), b"not a checkpoint").unwrap();
    let o = run_study(&file, &opts(&out)).unwrap();
    assert_eq!(o.failed.len(), 1);
    // a plain rerun skips it (and says how to retry) ...
    let o = run_study(&file, &opts(&out)).unwrap();
    assert_eq!(o.failed.len(), 1, "{:?}", o.failed);
    // ... --fresh retries it
    let mut fresh = opts(&out);
    fresh.fresh = true;
    let o = run_study(&file, &fresh).unwrap();
    assert!(o.failed.is_empty(), "{:?}", o.failed);
    assert_eq!(status_of(&out), "done");
    // a corrupt result.json or manifest.json is named, and --fresh discards the run
    std::fs::write(rd.path.join("result.json"), b"{ broken").unwrap();
    let e = format!("{:#}", run_study(&file, &opts(&out)).err().unwrap());
    assert!(e.contains("result.json") && e.contains("--fresh"), "{e}");
    run_study(&file, &fresh).unwrap();
    assert_eq!(status_of(&out), "done");
}

#[test]
fn report_renders_other_rows_when_one_run_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", MICRO);
    let out = tmp.path().join("out");
    run_study(&file, &opts(&out)).unwrap();
    let dir = out.join("micro");
    let bad = RunDir::new(&dir, "MAC", 0).path.join("metrics.jsonl");
    let body = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, body.replacen("{\"step\":2", "{\"stp\":2", 1)).unwrap();
    write_report(&dir).unwrap();
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let lmm = RunDir::new(&dir, "LMM", 0).result().unwrap().unwrap().final_metric.unwrap();
    let number = repro::report::stats::fmt_num(lmm);
    assert!(report.contains(&number), "LMM's number {number} is missing: {report}");
    assert!(report.contains("unreadable") && report.contains("metrics.jsonl:2"), "{report}");
    let o = repro(&["report", dir.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("metrics.jsonl:2"), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------------------
// 13. messages that name their cause

#[test]
fn set_errors_blame_the_set() {
    let e = load_err(MICRO, "tiny", &["training.steps=abc"]);
    assert!(e.starts_with("--set training.steps=abc:") && e.contains("invalid type"), "{e}");
    assert!(!e.contains("bad.yaml"), "the file is not to blame: {e}");
    let e = load_err(MICRO, "tiny", &["training.lr=-1"]);
    assert!(e.starts_with("--set training.lr=-1:") && e.contains("positive"), "{e}");
    // a row's override is blamed at the row
    let e = load_err(&MICRO.replace("{ model.kind: mac }", "{ model.kind: mac, training.steps: x }"), "tiny", &[]);
    assert!(e.contains("bad.yaml:28") && e.contains("ablation row `MAC`, set `training.steps`"), "{e}");
}

#[test]
fn capacity_width_zero_blames_width() {
    let cap = MICRO.replace(
        "  kind: mqar\n  vocab: 16\n  seq_len: 12\n  num_pairs: 3\n",
        "  kind: capacity\n  pairs: [4, 8]\n  width: 0\n",
    );
    let e = load_err(&cap, "tiny", &[]);
    assert!(e.contains("task.width") && !e.contains("task.pairs"), "{e}");
}

#[test]
fn config_changes_name_the_keys_and_cosmetic_ones_keep_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    let out = tmp.path().join("out");
    run_study(&file, &opts(&out)).unwrap();
    let result = RunDir::new(&out.join("micro"), "LMM", 0).path.join("result.json");
    let before = std::fs::read_to_string(&result).unwrap();
    // description, log_every, the paper's reference numbers and the plots do not change what a run computes
    let cosmetic = one_row()
        .replace("description: a micro study", "description: reworded")
        .replace("  log_every: 1", "  log_every: 2")
        .replace("seeds: [0]", "seeds: [0]\nplots: [final-metric]");
    write(tmp.path(), "micro.yaml", &cosmetic);
    let o = run_study(&file, &opts(&out)).unwrap();
    assert!(o.failed.is_empty());
    assert_eq!(std::fs::read_to_string(&result).unwrap(), before, "the finished run must be kept");
    // a real change is refused, naming the key and both values
    write(tmp.path(), "micro.yaml", &cosmetic.replace("  lr: 0.01", "  lr: 0.02"));
    let e = format!("{:#}", run_study(&file, &opts(&out)).err().unwrap());
    assert!(e.contains("training.lr: 0.01 → 0.02") && e.contains("--fresh"), "{e}");
}

#[test]
fn out_paths_and_report_roots_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "micro.yaml", &one_row());
    // `repro run --out` naming a file
    let not_a_dir = write(tmp.path(), "plain-file", "x");
    let o = repro(&["run", file.to_str().unwrap(), "-q", "--out", not_a_dir.to_str().unwrap()]);
    assert_clean_error(&o, &["--out", "is a file, not a folder"]);
    // `repro eval --out` naming a folder
    let inputs = tmp.path().join("in.safetensors");
    Tensor::write_safetensors(&miras_inputs(1, 1, 3, &[]), &inputs).unwrap();
    let o = eval("miras.framework", &inputs, tmp.path(), "reference", &[]);
    assert_clean_error(&o, &["--out", "is a folder"]);
    // `repro report` on the --out root lists the studies below it
    let out = tmp.path().join("out");
    run_study(&file, &opts(&out)).unwrap();
    let o = repro(&["report", out.to_str().unwrap()]);
    assert_clean_error(&o, &["no stored study here", "micro"]);
}
