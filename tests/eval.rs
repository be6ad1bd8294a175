//! `repro eval` reaches every rule family with any valid parameters: inputs drawn from the rule's own
//! description and written to safetensors, both implementations run through `run_file`, and they agree; a
//! chunkwise family with `chunk_size = 1` reproduces its sequential rule.

use repro::eval::{find_rule, run_file, Impl, Rule};
use repro::memory::batched::draw;
use repro::tensor::{errors, from_tch, to_tch, Arr};
use rstest::rstest;
use tch::{Device, Kind, Tensor};

fn rule(name: &str, params: &[(&str, &str)]) -> Rule {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    find_rule(name, &params).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// Writes inputs drawn for `rule` (`B = 2, H = 3, T = 11`, `d_k = 5`, `d_v = 3` unless the rule needs them equal).
fn write_inputs(rule: &Rule, path: &std::path::Path, seed: u64) {
    let (dk, dv) = if rule.rule.validate_dims(5, 3).is_ok() { (5, 3) } else { (4, 4) };
    let x = draw(rule.rule.as_ref(), seed, (2, 3, 11, dk, dv), Kind::Double);
    let named: Vec<(String, Tensor)> = rule
        .inputs()
        .iter()
        .zip(x.all())
        .map(|(s, a)| (s.name.clone(), to_tch(a, Kind::Double, Device::Cpu)))
        .collect();
    Tensor::write_safetensors(&named, path).unwrap();
}

fn run(rule: &Rule, inputs: &std::path::Path, out: &std::path::Path, imp: Impl) -> Vec<(String, Arr)> {
    run_file(rule, inputs, out, imp, Device::Cpu, Kind::Double).unwrap();
    let mut t: Vec<(String, Arr)> =
        Tensor::read_safetensors(out).unwrap().into_iter().map(|(n, t)| (n, from_tch(&t).unwrap())).collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn assert_close(a: &[(String, Arr)], b: &[(String, Arr)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for ((na, xa), (nb, xb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(xa.iter().all(|x| x.is_finite()), "{what}: {na} not finite");
        let e = errors(xa, xb).unwrap();
        assert!(e.rel_rmse <= repro::tolerance::TORCH_F64_VS_REFERENCE, "{what}: {na} rel_rmse {:.3e}", e.rel_rmse);
    }
}

#[rstest]
#[case("titans.linear_memory", &[("loss_scale", "0.5"), ("read", "before-write")])]
#[case("titans.linear_memory_chunkwise", &[("chunk_size", "4")])]
#[case("titans.mlp_memory", &[("layers", "3"), ("expansion", "2"), ("activation", "gelu")])]
#[case("titans.mlp_memory_chunkwise", &[("chunk_size", "4"), ("residual", "true")])]
#[case("miras.framework", &[("bias", "{kind: huber}"), ("retention", "{kind: l2-local-global}"), ("algorithm", "{kind: momentum}")])]
#[case("miras.framework", &[("bias", "{kind: lp, p: 3}"), ("retention", "{kind: lq, q: 4, form: mirror}")])]
#[case("miras.framework", &[("retention", "{kind: elastic-net-ftrl, alpha: 2}")])]
#[case("miras.framework", &[("retention", "{kind: bregman-sigmoid}")])]
#[case("miras.preset", &[("preset", "gated-deltanet")])]
#[case("miras.preset", &[("preset", "longhorn")])]
#[case("miras.preset", &[("preset", "mamba2")])]
#[case("miras.preset", &[("preset", "titans-lmm")])]
#[case("miras.moneta", &[])]
#[case("miras.moneta", &[("chunk_size", "4"), ("form", "printed")])]
#[case("miras.yaad", &[("chunk_size", "3")])]
#[case("miras.memora", &[("chunk_size", "5"), ("scale", "0.5")])]
#[case("miras.mlp", &[])]
#[case("miras.mlp", &[("retention", "{kind: l2-local-global}"), ("algorithm", "{kind: momentum}")])]
#[case("nl.hope", &[("expansion", "2"), ("chunk_size", "3")])]
#[case("nl.hope", &[("memory", "linear"), ("objective", "dot"), ("adaptive_q", "true"), ("read", "after-write")])]
#[case("nl.hope", &[("activation", "gelu"), ("dgd", "false"), ("self_modifying", "false"), ("normalize_v", "false")])]
fn both_implementations_agree(#[case] name: &str, #[case] params: &[(&str, &str)]) {
    let r = rule(name, params);
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in.safetensors");
    write_inputs(&r, &inputs, 7);
    let a = run(&r, &inputs, &dir.path().join("a.safetensors"), Impl::Reference);
    let b = run(&r, &inputs, &dir.path().join("b.safetensors"), Impl::Torch);
    assert_eq!(a.len(), r.outputs().len());
    assert_close(&b, &a, &format!("{name} {params:?}: torch vs reference"));
}

#[rstest]
#[case("titans.linear_memory_chunkwise", "titans.linear_memory")]
#[case("titans.mlp_memory_chunkwise", "titans.mlp_memory")]
fn chunk_size_one_is_the_sequential_rule(#[case] chunked: &str, #[case] sequential: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in.safetensors");
    let c1 = rule(chunked, &[("chunk_size", "1")]);
    write_inputs(&c1, &inputs, 9);
    let seq = run(&rule(sequential, &[]), &inputs, &dir.path().join("s.safetensors"), Impl::Reference);
    let one = run(&c1, &inputs, &dir.path().join("c.safetensors"), Impl::Torch);
    assert_close(&one, &seq, "chunk_size = 1 vs sequential");
}

#[test]
fn every_family_builds_with_its_defaults() {
    for f in repro::eval::all_rules() {
        let r = find_rule(f.name, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", f.name));
        assert!(!r.inputs().is_empty() && !r.outputs().is_empty());
        assert!(repro::eval::describe(&r).contains("[B, H, T, d_k]"));
    }
}
