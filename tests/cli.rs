//! The `repro` binary end to end: equations, verify, eval round trips, and one-line errors on bad input.

use repro::tensor::{errors, from_tch, to_tch};
use repro::titans::checks::{reference_batched, Case, Drawn};
use repro::titans::linear_memory::ReadMode;
use std::path::Path;
use std::process::{Command, Output};
use tch::{Device, Kind, Tensor};

fn repro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).output().expect("run repro")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A failing command prints one `error:` line, no panic and no backtrace, and exits non-zero.
fn assert_clean_error(o: &Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "expected failure: {t}");
    assert!(t.contains("error:") && t.contains(needle), "expected `{needle}` in: {t}");
    assert!(!t.contains("panicked") && !t.contains("RUST_BACKTRACE"), "{t}");
}

#[test]
fn equations_lists_titans() {
    let o = repro(&["equations", "--paper", "titans"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("35 equations"), "{t}");
    for id in ["titans.8 ", "titans.13 ", "titans.15 ", "titans.35 "] {
        assert!(t.contains(id), "{id} missing: {t}");
    }
    let v = text(&repro(&["equations", "--paper", "titans", "--status", "verified"]));
    assert!(v.contains("titans.14") && !v.contains("titans.6 "), "{v}");
    assert_clean_error(&repro(&["equations", "--paper", "titanz"]), "unknown paper `titanz`");
}

#[test]
fn verify_prints_a_table_and_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    for dtype in ["f64", "f32"] {
        let o = repro(&[
            "verify",
            "--check",
            "memory_titans_linear",
            "--device",
            "cpu",
            "--dtype",
            dtype,
            "--seeds",
            "1",
            "-q",
            "--out",
            out,
        ]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("equation") && t.contains("rel_rmse") && t.contains("memory_titans_linear"), "{t}");
        assert!(!t.contains(" NO"), "{t}");
        let report = std::fs::read_to_string(dir.path().join(format!("cpu-{dtype}.md"))).unwrap();
        assert!(report.contains("checks pass") && report.contains("dL/dtheta"), "{report}");
    }
    assert_clean_error(&repro(&["verify", "--dtype", "f16"]), "unknown dtype `f16`");
    assert_clean_error(&repro(&["verify", "--device", "tpu"]), "unknown device `tpu`");
    assert_clean_error(&repro(&["verify", "--check", "nope", "--out", out]), "no checks to run");
}

fn write_inputs(path: &Path, d: &Drawn, kind: Kind, skip: &[&str]) {
    let named: Vec<(String, Tensor)> = d
        .all()
        .iter()
        .filter(|(n, _)| !skip.contains(n))
        .map(|(n, a)| (n.to_string(), to_tch(a, kind, Device::Cpu)))
        .collect();
    Tensor::write_safetensors(&named, path).unwrap();
}

fn read_outputs(path: &Path) -> Vec<(String, repro::tensor::Arr)> {
    let mut v: Vec<(String, repro::tensor::Arr)> =
        Tensor::read_safetensors(path).unwrap().into_iter().map(|(n, t)| (n, from_tch(&t).unwrap())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn eval_round_trips_both_implementations() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in.safetensors");
    let d = Drawn::new(77, Case { b: 2, h: 1, t: 11, d_k: 5, d_v: 3 }, Kind::Double);
    write_inputs(&inputs, &d, Kind::Double, &[]);
    let (y, m, s) = reference_batched(&d, 0.5, ReadMode::BeforeWrite);
    for imp in ["reference", "torch"] {
        let out = dir.path().join(format!("{imp}.safetensors"));
        let o = repro(&[
            "eval",
            "titans.linear_memory",
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--impl",
            imp,
            "--param",
            "loss_scale=0.5",
            "--param",
            "read=before-write",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let got = read_outputs(&out);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["m_final", "s_final", "y"]);
        for ((_, ours), reference) in got.iter().zip([&m, &s, &y]) {
            assert!(errors(ours, reference).unwrap().rel_rmse < 1e-12, "{imp}");
        }
    }
    // omitted optional states default to zeros; f32 inputs are accepted
    let f32_inputs = dir.path().join("in32.safetensors");
    write_inputs(&f32_inputs, &d, Kind::Float, &["m0", "s0"]);
    let out = dir.path().join("zero-state.safetensors");
    let o = repro(&[
        "eval",
        "titans.linear_memory",
        "--inputs",
        f32_inputs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn eval_rejects_bad_inputs_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let out = out.to_str().unwrap();
    let d = Drawn::new(3, Case { b: 1, h: 2, t: 5, d_k: 4, d_v: 3 }, Kind::Double);
    // wrong shape: theta with T+1 entries
    let mut bad = d.clone();
    bad.theta = repro::tensor::Draw::new(1).uniform(&[1, 2, 6], 0.0, 0.1);
    let p = dir.path().join("bad.safetensors");
    write_inputs(&p, &bad, Kind::Double, &[]);
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", p.to_str().unwrap(), "--out", out]),
        "tensor `theta`",
    );
    // missing tensor
    let p2 = dir.path().join("missing.safetensors");
    write_inputs(&p2, &d, Kind::Double, &["q"]);
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", p2.to_str().unwrap(), "--out", out]),
        "missing tensor `q`",
    );
    // integer dtype
    let p3 = dir.path().join("int.safetensors");
    let mut named: Vec<(String, Tensor)> =
        d.all().iter().map(|(n, a)| (n.to_string(), to_tch(a, Kind::Double, Device::Cpu))).collect();
    named[0].1 = named[0].1.to_kind(Kind::Int64);
    Tensor::write_safetensors(&named, &p3).unwrap();
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", p3.to_str().unwrap(), "--out", out]),
        "dtype",
    );
    // a missing file, an unknown rule, an unknown parameter, a non-numeric parameter
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", "/nonexistent.safetensors", "--out", out]),
        "does not exist",
    );
    assert_clean_error(&repro(&["eval", "titans.nope", "--describe"]), "unknown rule `titans.nope`");
    let good = dir.path().join("good.safetensors");
    write_inputs(&good, &d, Kind::Double, &[]);
    let g = good.to_str().unwrap();
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", g, "--out", out, "--param", "lr=1"]),
        "unknown parameter `lr`",
    );
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", g, "--out", out, "--param", "loss_scale=abc"]),
        "loss_scale",
    );
    // not a safetensors file
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"hello").unwrap();
    assert_clean_error(
        &repro(&["eval", "titans.linear_memory", "--inputs", junk.to_str().unwrap(), "--out", out]),
        "safetensors",
    );
}

#[test]
fn eval_describe_lists_shapes() {
    let o = repro(&["eval", "titans.linear_memory", "--describe"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("[B, H, T, d_k]") && t.contains("loss_scale") && t.contains("m_final"), "{t}");
    assert!(text(&repro(&["eval", "--list"])).contains("titans.linear_memory"));
}

#[test]
fn run_and_report_errors_are_one_line() {
    assert_clean_error(&repro(&["run", "/nonexistent/study.yaml"]), "cannot read");
    assert_clean_error(&repro(&["report", "/nonexistent/dir"]), "no stored study");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("typo.yaml");
    std::fs::write(&f, "name: x\npaper: titans\ntask: { kind: mqar }\nmodel: { kind: mac }\ntraining: { steps: 1, batch_size: 1, lr: 0.1 }\nablations: [{ name: a }]\nplotz: []\n").unwrap();
    assert_clean_error(&repro(&["run", f.to_str().unwrap()]), "plotz");
    assert_clean_error(&repro(&["run", f.to_str().unwrap(), "--scale", "huge"]), "--scale");
}
