//! The models (LMM, MAC, MAG, MAL) with every memory of the catalogue (`repro::memories::examples`): output
//! shapes, causality, one optimizer step lowering the loss on a tiny batch, gradients reaching the gates
//! through the inner loop, and state carried across calls — one test body per memory, every model kind.

use repro::experiment::tasks::loss_and_accuracy;
use repro::models::spec::{MemorySpec, ModelKind, ModelSpec};
use repro::models::MemoryLm;
use rstest::rstest;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

const VOCAB: usize = 19;

fn spec_with(kind: ModelKind, persistent: usize, memory: MemorySpec) -> ModelSpec {
    ModelSpec {
        kind,
        dim: 12,
        heads: 3,
        layers: 2,
        persistent_tokens: persistent,
        segment_len: 5,
        window: 4,
        memory,
        mac_combine: Default::default(),
        attention: Default::default(),
        cms: None,
    }
}

fn spec(kind: ModelKind, persistent: usize) -> ModelSpec {
    spec_with(kind, persistent, MemorySpec::default())
}

fn build(s: &ModelSpec, seed: i64) -> (nn::VarStore, MemoryLm) {
    let rule = repro::memories::build(&s.memory, s.dim / s.heads).unwrap();
    repro::tensor::with_torch_seed(seed as u64, || {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = MemoryLm::new(&vs.root(), s, VOCAB, rule);
        (vs, m)
    })
}

fn model(kind: ModelKind, persistent: usize, seed: i64) -> (nn::VarStore, MemoryLm) {
    build(&spec(kind, persistent), seed)
}

/// The catalogue entry `name` as a model spec of `kind`.
fn memory_model(name: &str, kind: ModelKind, seed: i64) -> (nn::VarStore, MemoryLm) {
    let (_, yaml) = repro::memories::examples().into_iter().find(|(n, _)| *n == name).unwrap();
    build(&spec_with(kind, 2, MemorySpec::with_rule(yaml)), seed)
}

fn tokens(b: i64, t: i64, seed: i64) -> Tensor {
    repro::tensor::with_torch_seed(seed as u64, || Tensor::randint(VOCAB as i64, [b, t], (Kind::Int64, Device::Cpu)))
}

const KINDS: [ModelKind; 4] = [ModelKind::Lmm, ModelKind::Mac, ModelKind::Mag, ModelKind::Mal];

#[rstest]
fn forward_has_the_right_shape(#[values(0, 1, 2, 3)] k: usize) {
    let (_vs, m) = model(KINDS[k], 3, 1);
    let y = m.forward(&tokens(2, 13, 2));
    assert_eq!(y.size(), [2, 13, VOCAB as i64]);
    assert!(y.isfinite().all().int64_value(&[]) == 1);
}

#[rstest]
fn outputs_do_not_see_the_future(#[values(0, 1, 2, 3)] k: usize) {
    let (_vs, m) = model(KINDS[k], 3, 3);
    let x = tokens(2, 13, 4);
    let y = tch::no_grad(|| m.forward(&x));
    for cut in [1i64, 6, 11] {
        // change every token after `cut`
        let x2 = x.copy();
        let mut tail = x2.narrow(1, cut + 1, 13 - cut - 1);
        tail.copy_(&(&tail + 7).remainder(VOCAB as i64));
        let y2 = tch::no_grad(|| m.forward(&x2));
        let before = (y.narrow(1, 0, cut + 1) - y2.narrow(1, 0, cut + 1)).abs().max().double_value(&[]);
        assert!(before < 1e-5, "{:?}: output at t ≤ {cut} changed by {before}", KINDS[k]);
        let after = (y.narrow(1, cut + 1, 1) - y2.narrow(1, cut + 1, 1)).abs().max().double_value(&[]);
        assert!(after > 1e-6, "{:?}: the changed token itself had no effect", KINDS[k]);
    }
}

#[rstest]
fn one_training_step_lowers_the_loss(#[values(0, 1, 2, 3)] k: usize) {
    let (vs, m) = model(KINDS[k], 2, 5);
    let x = tokens(4, 11, 6);
    let targets = tokens(4, 11, 7);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let (l0, _) = loss_and_accuracy(&m.forward(&x), &targets);
    opt.backward_step(&l0);
    let (l1, _) = loss_and_accuracy(&m.forward(&x), &targets);
    let (a, b) = (l0.double_value(&[]), l1.double_value(&[]));
    assert!(b < a, "{:?}: loss {a} → {b}", KINDS[k]);
    // the memory's gate parameters receive gradients through the inner loop
    let gates = vs.variables().into_iter().find(|(n, _)| n.contains("memory.gates.weight")).unwrap().1;
    assert!(gates.grad().defined() || gates.requires_grad());
}

#[test]
fn inner_loop_is_differentiated_into_the_gates() {
    let (vs, m) = model(ModelKind::Lmm, 0, 8);
    let (l, _) = loss_and_accuracy(&m.forward(&tokens(2, 9, 9)), &tokens(2, 9, 10));
    l.backward();
    for (name, v) in vs.variables() {
        if name.contains("gates") || name.contains("memory.wk") || name.contains("memory.wv") {
            let g = v.grad();
            assert!(g.defined() && g.abs().sum(Kind::Double).double_value(&[]) > 0.0, "{name} got no gradient");
        }
    }
}

#[rstest]
#[case::lmm(ModelKind::Lmm, 0, 7)]
#[case::lmm_with_persistent_tokens(ModelKind::Lmm, 3, 6)]
#[case::mac_with_persistent_tokens(ModelKind::Mac, 3, 10)]
#[case::mag_with_persistent_tokens(ModelKind::Mag, 3, 9)]
#[case::mal_with_persistent_tokens(ModelKind::Mal, 3, 2)]
#[case::mal_without(ModelKind::Mal, 0, 11)]
fn one_call_equals_two_chained_calls(#[case] kind: ModelKind, #[case] persistent: usize, #[case] split: i64) {
    let (_vs, m) = model(kind, persistent, 11);
    let x = tokens(2, 15, 12);
    let (full, _) = tch::no_grad(|| m.forward_with_state(&x, None)).unwrap();
    let (a, st) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, 0, split), None)).unwrap();
    let (b, _) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, split, 15 - split), Some(st))).unwrap();
    let chained = Tensor::cat(&[a, b], 1);
    let err = (full - chained).abs().max().double_value(&[]);
    assert!(err < 1e-5, "{kind:?}: chained calls differ by {err}");
}

#[test]
fn chunkwise_memory_with_chunk_one_equals_sequential_and_chunks_change_the_model() {
    // chunk_size = 1 in the model goes through the sequential rule; C > 1 through Eqs. 16–18
    let mut s = spec(ModelKind::Lmm, 2);
    let x = tokens(2, 13, 21);
    let run = |s: &ModelSpec| {
        let (_vs, m) = build(s, 22);
        tch::no_grad(|| m.forward(&x))
    };
    let sequential = run(&s);
    s.memory.chunk_size = 4;
    let chunked = run(&s);
    let diff = (&sequential - &chunked).abs().max().double_value(&[]);
    assert!(diff > 1e-4, "chunk size 4 should be a different model (diff {diff})");
    assert_eq!(chunked.size(), sequential.size());
}

#[test]
fn a_state_from_another_model_is_an_error() {
    let (_vs, m) = model(ModelKind::Mag, 0, 13);
    let (_, st) = m.forward_with_state(&tokens(1, 4, 1), None).unwrap();
    let mut short = st;
    short.pop();
    let err = m.forward_with_state(&tokens(1, 4, 1), Some(short)).unwrap_err().to_string();
    assert!(err.contains("layers"), "{err}");
}

/// The memories `every_memory_trains_in_every_model` lists by hand (rstest needs literals): the whole catalogue.
const TESTED_MEMORIES: [&str; 26] = [
    "titans-linear",
    "titans-mlp",
    "titans-mlp-gelu",
    "miras-framework-huber-momentum",
    "miras-framework-mlp",
    "moneta",
    "yaad",
    "memora",
    "preset-linear-attention",
    "preset-retnet",
    "preset-mamba2",
    "preset-deltanet",
    "preset-gated-deltanet",
    "preset-longhorn",
    "preset-ttt-linear",
    "preset-titans-lmm",
    "atlas-omega-linear",
    "atlas-omeganet",
    "atlas-atlas-linear",
    "atlas-atlas-deep",
    "atlas-swla",
    "atlas-dla-deep",
    "tnt",
    "nl-hope",
    "nl-hope-adaptive-q-gd",
    "nl-hope-linear-dot",
];

#[test]
fn the_model_test_covers_every_catalogue_memory() {
    let catalogue: Vec<&str> = repro::memories::examples().into_iter().map(|(n, _)| n).collect();
    assert_eq!(catalogue, TESTED_MEMORIES, "add the new memory to every_memory_trains_in_every_model's values");
}

/// Every memory of the catalogue inside every model kind: shape, causality, a training step that lowers the
/// loss with gradients reaching the memory's gates and projections, and one call == two chained calls.
#[rstest]
fn every_memory_trains_in_every_model(
    #[values(
        "titans-linear",
        "titans-mlp",
        "titans-mlp-gelu",
        "miras-framework-huber-momentum",
        "miras-framework-mlp",
        "moneta",
        "yaad",
        "memora",
        "preset-linear-attention",
        "preset-retnet",
        "preset-mamba2",
        "preset-deltanet",
        "preset-gated-deltanet",
        "preset-longhorn",
        "preset-ttt-linear",
        "preset-titans-lmm",
        "atlas-omega-linear",
        "atlas-omeganet",
        "atlas-atlas-linear",
        "atlas-atlas-deep",
        "atlas-swla",
        "atlas-dla-deep",
        "tnt",
        "nl-hope",
        "nl-hope-adaptive-q-gd",
        "nl-hope-linear-dot"
    )]
    memory: &str,
) {
    for kind in KINDS {
        let what = format!("{memory} in {kind:?}");
        let (vs, m) = memory_model(memory, kind, 31);
        // shape and finiteness
        let x = tokens(2, 11, 32);
        let y = tch::no_grad(|| m.forward(&x));
        assert_eq!(y.size(), [2, 11, VOCAB as i64], "{what}");
        assert!(y.isfinite().all().int64_value(&[]) == 1, "{what}: non-finite logits");
        // causality: changing tokens after `cut` leaves the outputs up to `cut` unchanged
        let cut = 5;
        let x2 = x.copy();
        let mut tail = x2.narrow(1, cut + 1, 11 - cut - 1);
        tail.copy_(&(&tail + 7).remainder(VOCAB as i64));
        let y2 = tch::no_grad(|| m.forward(&x2));
        let before = (y.narrow(1, 0, cut + 1) - y2.narrow(1, 0, cut + 1)).abs().max().double_value(&[]);
        assert!(before < 1e-5, "{what}: output at t <= {cut} changed by {before}");
        // one chained call == one call (MAC: split at a segment boundary)
        let (full, _) = tch::no_grad(|| m.forward_with_state(&x, None)).unwrap();
        let (a, st) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, 0, 5), None)).unwrap();
        let (b, _) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, 5, 6), Some(st))).unwrap();
        let err = (full - Tensor::cat(&[a, b], 1)).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{what}: chained calls differ by {err}");
        // one optimizer step lowers the loss; the gates and key/value projections receive gradients
        let targets = tokens(2, 11, 33);
        let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
        let (l0, _) = loss_and_accuracy(&m.forward(&x), &targets);
        opt.zero_grad();
        l0.backward();
        let learned_gates = m.rule().gates().iter().any(|g| g.pinned.is_none());
        for (name, v) in vs.variables() {
            let gate = name.contains("memory.gates.weight") && learned_gates;
            if gate || name.contains("memory.wk") || name.contains("memory.wv") {
                let g = v.grad();
                assert!(
                    g.defined() && g.abs().sum(Kind::Double).double_value(&[]) > 0.0,
                    "{what}: {name} got no gradient"
                );
            }
        }
        opt.step();
        let (l1, _) = loss_and_accuracy(&m.forward(&x), &targets);
        let (a, b) = (l0.double_value(&[]), l1.double_value(&[]));
        assert!(b < a, "{what}: loss {a} -> {b}");
    }
}

/// `model.memory: {kind: hope, …}` is strict: an unknown field is named (with the closest one), invalid values and
/// combinations are clear errors.
#[test]
fn hope_config_errors_name_the_field() {
    let err = |yaml: &str| format!("{:#}", repro::memories::build(&MemorySpec::with_rule(yaml), 4).unwrap_err());
    let e = err("{kind: hope, expansoin: 2}");
    assert!(e.contains("unknown field `expansoin`") && e.contains("did you mean `expansion`"), "{e}");
    let e = err("{kind: hope, objective: dot}");
    assert!(e.contains("objective: dot") && e.contains("memory: linear"), "{e}");
    let e = err("{kind: hope, expansion: 0}");
    assert!(e.contains("expansion must be at least 1"), "{e}");
    let e = err("{kind: hope, memory: quadratic}");
    assert!(e.contains("quadratic") && e.contains("mlp") && e.contains("linear"), "{e}");
    let e = err("{kind: hope, chunk_size: 0}");
    assert!(e.contains("chunk_size"), "{e}");
}
