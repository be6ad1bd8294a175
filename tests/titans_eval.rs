//! `repro eval` reaches every Titans update rule: for the linear and MLP memories, sequential and chunkwise,
//! the reference and the tch implementation agree on user-supplied tensors, and `chunk_size = 1` reproduces
//! the sequential rule.

use repro::eval::{find_rule, run_file, Impl};
use repro::tensor::{from_tch, to_tch, Arr, Draw};
use repro::titans::checks::{Case, Drawn};
use rstest::rstest;
use tch::{Device, Kind, Tensor};

fn write_inputs(path: &std::path::Path, mlp_params: Option<usize>) {
    let case = Case::with_len(13);
    let mut d = Drawn::new(7, case, Kind::Double);
    d.theta.mapv_inplace(|x| x * 0.25);
    let mut named: Vec<(String, Tensor)> = vec![];
    let mut push = |n: &str, a: &Arr| named.push((n.to_string(), to_tch(a, Kind::Double, Device::Cpu)));
    for (n, a) in [("k", &d.k), ("v", &d.v), ("q", &d.q), ("alpha", &d.alpha), ("eta", &d.eta), ("theta", &d.theta)] {
        push(n, a);
    }
    match mlp_params {
        None => {
            push("m0", &d.m0);
            push("s0", &d.s0);
        }
        Some(p) => {
            let mut r = Draw::new(9);
            push("m0", &r.normal(&[case.b, case.h, p], 0.4));
            push("s0", &r.normal(&[case.b, case.h, p], 0.05));
        }
    }
    Tensor::write_safetensors(&named, path).unwrap();
}

fn run(
    rule: &str,
    inputs: &std::path::Path,
    out: &std::path::Path,
    imp: Impl,
    params: &[(&str, &str)],
) -> Vec<(String, Arr)> {
    let rule = find_rule(rule).unwrap();
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run_file(&rule, inputs, out, imp, Device::Cpu, Kind::Double, &params).unwrap();
    let mut t: Vec<(String, Arr)> =
        Tensor::read_safetensors(out).unwrap().into_iter().map(|(n, t)| (n, from_tch(&t).unwrap())).collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn assert_close(a: &[(String, Arr)], b: &[(String, Arr)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((na, xa), (nb, xb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        let e = repro::tensor::errors(xa, xb).unwrap();
        assert!(e.rel_rmse <= repro::tolerance::TORCH_F64_VS_REFERENCE, "{what}: {na} rel_rmse {:.3e}", e.rel_rmse);
    }
}

#[rstest]
#[case::linear("titans.linear_memory_chunkwise", None)]
#[case::mlp("titans.mlp_memory_chunkwise", Some(6 * 7 + 5 * 6))]
fn eval_rules_agree(#[case] chunked: &str, #[case] mlp: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in.safetensors");
    write_inputs(&inputs, mlp);
    let extra: Vec<(&str, &str)> = if mlp.is_some() { vec![("layers", "2"), ("hidden", "6")] } else { vec![] };
    let with = |c: &'static str| {
        let mut p = extra.clone();
        p.push(("chunk_size", c));
        p
    };
    let out = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let sequential = chunked.trim_end_matches("_chunkwise");
    let seq_ref = run(sequential, &inputs, &out("a"), Impl::Reference, &extra);
    let seq_torch = run(sequential, &inputs, &out("b"), Impl::Torch, &extra);
    assert_close(&seq_torch, &seq_ref, "sequential torch vs reference");
    let c1 = run(chunked, &inputs, &out("c"), Impl::Torch, &with("1"));
    assert_close(&c1, &seq_ref, "chunk_size = 1 vs sequential");
    let c4_ref = run(chunked, &inputs, &out("d"), Impl::Reference, &with("4"));
    let c4_torch = run(chunked, &inputs, &out("e"), Impl::Torch, &with("4"));
    assert_close(&c4_torch, &c4_ref, "chunkwise torch vs reference");
}
