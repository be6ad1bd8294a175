//! ATLAS on the capacity question (the `omega` / `atlas` memories inside every model kind are covered, with every
//! catalogue memory, by `tests/models.rs`):
//! * capacity (§3.1, Prop. 1–2): a linear memory with polynomial features recalls more stored pairs than the same
//!   memory on raw keys once the pairs outnumber the key width.

use repro::models::spec::MemorySpec;
use tch::{Device, Kind, Tensor};

/// Recall (%) of `n` random unit pairs of width `d` stored by the `omega` memory of degree `p` (window 1, no
/// momentum, no forgetting: the delta rule on φ(k)) in `passes` passes over the pairs, every gate at its initial
/// value, read back from the final memory; a key counts as recalled when its read-out is closest (cosine) to its
/// own value. Many passes drive the memory to the least-squares fit of the pairs, whose exact recall is what
/// Prop. 1–2 bound.
fn recall(d: usize, n: i64, degree: usize, passes: i64, seed: u64) -> f64 {
    let spec = MemorySpec {
        momentum: false,
        forgetting: false,
        ..MemorySpec::with_rule(&format!("{{kind: omega, window: 1, degree: {degree}}}"))
    };
    let rule = repro::memories::build(&spec, d).unwrap();
    repro::tensor::with_torch_seed(seed, || {
        let unit = |t: Tensor| &t / t.norm_scalaropt_dim(2.0, [-1], true);
        let k = unit(Tensor::randn([1, 1, n, d as i64], (Kind::Double, Device::Cpu)));
        let v = unit(Tensor::randn([1, 1, n, d as i64], (Kind::Double, Device::Cpu)));
        let gates: Vec<Tensor> = rule
            .gates()
            .iter()
            .map(|g| Tensor::full([1, 1, n], g.value(g.init_logit), (Kind::Double, Device::Cpu)))
            .collect();
        let state: Vec<Tensor> = rule
            .state(d, d)
            .iter()
            .map(|s| {
                let mut shape = vec![1i64, 1];
                shape.extend(s.shape.iter().map(|&x| x as i64));
                Tensor::zeros(shape.as_slice(), (Kind::Double, Device::Cpu))
            })
            .collect();
        let (kr, vr) = (k.repeat([1, 1, passes, 1]), v.repeat([1, 1, passes, 1]));
        let gates: Vec<Tensor> = gates.iter().map(|g| g.repeat([1, 1, passes])).collect();
        let (_, fin) =
            tch::no_grad(|| rule.forward(&kr, &vr, &kr, &gates, &state, repro::memory::ReadMode::AfterWrite));
        let read = tch::no_grad(|| rule.retrieve(&k, &fin)).squeeze_dim(0).squeeze_dim(0);
        let sims = unit(read).matmul(&v.squeeze_dim(0).squeeze_dim(0).transpose(0, 1));
        let hits = sims.argmax(-1, false).eq_tensor(&Tensor::arange(n, (Kind::Int64, Device::Cpu)));
        100.0 * hits.to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
    })
}

#[test]
fn polynomial_features_raise_the_recall_of_a_linear_memory() {
    // d = 8: a linear memory on raw keys holds at most 8 independent pairs (Prop. 1); with p = 2 the features have
    // 1 + 8 + 64 = 73 coordinates (rank C(10, 2) = 45), so up to 45 pairs can be fitted exactly (Prop. 2)
    let d = 8;
    let mean = |n: i64, p: usize, passes: i64| (0..4).map(|s| recall(d, n, p, passes, 100 + s)).sum::<f64>() / 4.0;
    for n in [16i64, 24, 32] {
        let (lin, poly) = (mean(n, 1, 40), mean(n, 2, 40));
        let (lin1, poly1) = (mean(n, 1, 1), mean(n, 2, 1));
        eprintln!(
            "d = {d}, {n} pairs: recall after 40 passes {lin:.1}% raw keys, {poly:.1}% degree-2 features; \
             after one pass {lin1:.1}% / {poly1:.1}%"
        );
        assert!(poly > lin + 20.0, "{n} pairs, 40 passes: degree-2 features {poly:.1}% should beat raw keys {lin:.1}%");
    }
}
