//! Issue 16, memory diagnostics: the generic measurements of `repro::models::diagnostics` (computed from a
//! rule's tch forward, retrieval and autograd) against hand-derived values for Titans' linear memory, computed
//! independently from the rule's f64 reference token by token (or chunk by chunk), the closed-form gradient
//! `∇_M ‖Mk − v‖² = 2(Mk − v)kᵀ`, and an SVD from ndarray-linalg.

use ndarray::{s, Array1, Array2, ArrayD, Axis, IxDyn};
use ndarray_linalg::SVD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use repro::memory::rule::{as_matrix, HeadInputs};
use repro::memory::ReadMode;
use repro::models::diagnostics::{observe, record_if, Probe, PROBE_STEPS};
use repro::models::spec::MemorySpec;
use repro::tensor::to_tch;
use tch::{Device, Kind};

fn normal(rng: &mut ChaCha8Rng, shape: &[usize], scale: f64) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| scale * rng.sample::<f64, _>(StandardNormal))
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{what}: measured {a}, expected {b}");
}

#[test]
fn diagnostics_of_the_linear_memory_match_hand_derived_values() {
    let (b, h, t, d) = (2usize, 3usize, 37usize, 5usize);
    for chunk in [1usize, 4] {
        let spec = MemorySpec { chunk_size: chunk, ..Default::default() };
        let rule = repro::memories::build(&spec, d).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(16 + chunk as u64);
        let mut k = normal(&mut rng, &[b, h, t, d], 1.0);
        for mut row in k.lanes_mut(Axis(3)) {
            let n = row.dot(&row).sqrt();
            row /= n;
        }
        let v = normal(&mut rng, &[b, h, t, d], 1.0);
        let specs = rule.gates();
        let gates: Vec<ArrayD<f64>> = specs
            .iter()
            .map(|g| ArrayD::from_shape_fn(IxDyn(&[b, h, t]), |_| rng.random_range(g.draw.0..=g.draw.1)))
            .collect();
        let states: Vec<ArrayD<f64>> = [0.5, 0.1].iter().map(|&sc| normal(&mut rng, &[b, h, d, d], sc)).collect();
        let tch = |a: &ArrayD<f64>| to_tch(a, Kind::Double, Device::Cpu);
        let (kt, vt) = (tch(&k), tch(&v));
        let gt: Vec<_> = gates.iter().map(tch).collect();
        let st: Vec<_> = states.iter().map(tch).collect();
        let probe = Probe { label: "layer".into(), chunk };
        let (_, rec) = record_if(true, || {
            let (_, fin) = rule.forward(&kt, &vt, &kt, &gt, &st, ReadMode::AfterWrite);
            observe(&probe, rule.as_ref(), &specs, &kt, &vt, &gt, &st, &fin, ReadMode::AfterWrite);
            fin
        });
        assert_eq!(rec.layers.len(), 1);
        let got = &rec.layers[0];

        // the reference, update step by update step, per (batch, head)
        let steps = t.div_ceil(chunk);
        let first = steps.saturating_sub(PROBE_STEPS as usize);
        let (mut upd_m, mut upd_s, mut surprise, mut norm_m, mut norm_s, mut erank) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for bi in 0..b {
            for hi in 0..h {
                let mut state: Vec<ArrayD<f64>> =
                    states.iter().map(|x| x.slice(s![bi, hi, .., ..]).into_dyn().to_owned()).collect();
                for j in 0..steps {
                    let (from, to) = (j * chunk, ((j + 1) * chunk).min(t));
                    let kk: Array2<f64> = k.slice(s![bi, hi, from..to, ..]).to_owned();
                    let vv: Array2<f64> = v.slice(s![bi, hi, from..to, ..]).to_owned();
                    let gg: Vec<Array1<f64>> = gates.iter().map(|g| g.slice(s![bi, hi, from..to]).to_owned()).collect();
                    let m = as_matrix(&state[0]);
                    if j >= first {
                        // ∇_M of the step's mean ‖M k − v‖² at the step's start: (2/len) Σ (M k − v) kᵀ
                        let resid = kk.dot(&m.t()) - &vv;
                        let grad = resid.t().dot(&kk) * (2.0 / (to - from) as f64);
                        surprise += grad.iter().map(|x| x * x).sum::<f64>().sqrt();
                    }
                    let inputs = HeadInputs { k: kk.clone(), v: vv, q: kk, gates: gg };
                    let next = rule.reference_forward(&inputs, &state, ReadMode::AfterWrite).1;
                    if j >= first {
                        let fro = |a: &ArrayD<f64>, b: &ArrayD<f64>| (a - b).iter().map(|x| x * x).sum::<f64>().sqrt();
                        upd_m += fro(&next[0], &state[0]);
                        upd_s += fro(&next[1], &state[1]);
                    }
                    state = next;
                }
                let fro = |a: &ArrayD<f64>| a.iter().map(|x| x * x).sum::<f64>().sqrt();
                norm_m += fro(&state[0]);
                norm_s += fro(&state[1]);
                let (_, sigma, _) = as_matrix(&state[0]).svd(false, false).unwrap();
                let p = &sigma / sigma.sum();
                erank += (-p.iter().filter(|&&x| x > 0.0).map(|x| x * x.ln()).sum::<f64>()).exp();
            }
        }
        let heads = (b * h) as f64;
        let replayed = heads * (steps - first) as f64;
        close(got.update["m"], upd_m / replayed, "‖ΔM‖");
        close(got.update["s"], upd_s / replayed, "‖ΔS‖");
        close(got.surprise, surprise / replayed, "surprise");
        close(got.norm["m"], norm_m / heads, "‖M‖");
        close(got.norm["s"], norm_s / heads, "‖S‖");
        close(got.effective_rank.unwrap(), erank / heads, "effective rank");
        for (g, spec) in gates.iter().zip(&specs) {
            close(got.gates[spec.name], g.mean().unwrap(), spec.name);
        }
        // the memory is what the read depends on: M, not its momentum S
        assert_eq!(got.memory, vec!["m".to_string()]);
        close(got.memory_norm, norm_m / heads, "‖M‖ (memory)");
        close(got.memory_update, upd_m / replayed, "‖ΔM‖ (memory)");
        assert!(rec.seconds > 0.0);
    }
}

#[test]
fn nothing_is_recorded_unless_asked() {
    let (out, rec) = record_if(false, || 3);
    assert_eq!(out, 3);
    assert!(rec.layers.is_empty());
    assert!(!repro::models::diagnostics::recording());
}

#[test]
fn a_diverged_memory_is_written_as_null_and_read_back() {
    use repro::models::diagnostics::LayerDiagnostics;
    let mut d = LayerDiagnostics {
        layer: "block0.memory".into(),
        surprise: f64::INFINITY,
        memory_norm: 2.5,
        ..Default::default()
    };
    d.norm.insert("m".into(), f64::NAN);
    d.gates.insert("alpha".into(), 0.25);
    let text = serde_json::to_string(&d).unwrap();
    assert!(text.contains(r#""surprise":null"#) && text.contains(r#""m":null"#), "{text}");
    let back: LayerDiagnostics = serde_json::from_str(&text).unwrap();
    assert!(back.surprise.is_nan() && back.norm["m"].is_nan());
    assert_eq!((back.memory_norm, back.gates["alpha"]), (2.5, 0.25));
}

/// Every run's `metrics.jsonl` carries tokens/s and the memory diagnostics at each logged step, staged runs
/// (whose run-level file is rebuilt from the stages') included, and the report tabulates and plots them.
#[test]
fn runs_log_throughput_and_diagnostics_and_the_report_shows_them() {
    use repro::experiment::runner::{run_study, RunOptions};
    use repro::experiment::store::RunDir;
    let study = r#"name: diag
paper: titans
task: { kind: mqar, vocab: 16, seq_len: 12, num_pairs: 3 }
model: { kind: lmm, dim: 8, heads: 2, segment_len: 4 }
training: { steps: 4, batch_size: 4, lr: 0.01, log_every: 2 }
evaluation: { batches: 1, batch_size: 4 }
seeds: [0]
ablations:
  - name: LMM
  - name: staged
    set: { training.stages: [{ steps: 2 }, { steps: 2, set: { training.lr: 0.005 } }] }
"#;
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("diag.yaml");
    std::fs::write(&f, study).unwrap();
    let out = tmp.path().join("out");
    let opts = RunOptions {
        scale: "tiny".into(),
        sets: vec![],
        out: out.clone(),
        quiet: true,
        fresh: false,
        stop_after: None,
        device: None,
    };
    let o = run_study(&f, &opts).unwrap();
    assert!(o.failed.is_empty(), "{:?}", o.failed);
    for row in ["LMM", "staged"] {
        let rd = RunDir::new(&out.join("diag"), row, 0);
        let lines: Vec<serde_json::Value> = rd.metric_records().unwrap();
        assert_eq!(lines.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 4], "{row}");
        for l in &lines {
            assert!(l["tokens_per_s"].as_f64().unwrap() > 0.0, "{row}: {l}");
            let m = &l["memory"][0];
            assert_eq!(m["layer"], "block0.memory", "{row}: {l}");
            assert!(m["memory_norm"].as_f64().unwrap() > 0.0 && m["surprise"].as_f64().unwrap() > 0.0, "{row}: {l}");
            assert!(m["gates"]["theta"].as_f64().unwrap() > 0.0, "{row}: {l}");
        }
        assert!(rd.result().unwrap().unwrap().tokens_per_s.unwrap() > 0.0, "{row}");
    }
    let report = std::fs::read_to_string(out.join("diag/report.md")).unwrap();
    assert!(report.contains("## Throughput and memory diagnostics") && report.contains("| staged |"), "{report}");
    assert!(report.contains("![Memory diagnostics](memory_diagnostics.png)"));
    let png = std::fs::read(out.join("diag/memory_diagnostics.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
