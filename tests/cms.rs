//! The models with `model.cms` (a Continuum Memory System learning in context as every block's feed-forward,
//! Nested Learning §7.1): chained calls equal one call (splits on and off chunk boundaries, every model kind),
//! the evaluation path (`no_grad`) equals the training path, outputs stay causal, a few training steps lower the
//! loss without NaN, and the in-context updates change the model. The equation checks are
//! `nl_cms_model_*` (`repro verify --paper nl`).

use repro::experiment::tasks::loss_and_accuracy;
use repro::models::cms::{CmsLayout, CmsSpec};
use repro::models::spec::{ModelKind, ModelSpec};
use repro::models::{LanguageModel, MemoryLm};
use repro::nl::cms_model_checks::{build, spec};
use rstest::rstest;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

fn cms(periods: &[usize], second_order: bool) -> CmsSpec {
    CmsSpec { lr: 0.1, second_order, ..CmsSpec::with_periods(periods) }
}

fn model(s: &ModelSpec, seed: u64, kind: Kind) -> (nn::VarStore, MemoryLm) {
    build(s, seed, kind, Device::Cpu).unwrap()
}

fn tokens(b: i64, t: i64, seed: u64) -> Tensor {
    repro::tensor::with_torch_seed(seed, || Tensor::randint(11, [b, t], (Kind::Int64, Device::Cpu)))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[rstest]
#[case::lmm_on_a_chunk_boundary(ModelKind::Lmm, &[3, 6], 6, false)]
#[case::lmm_inside_a_chunk(ModelKind::Lmm, &[3, 6], 7, false)]
#[case::lmm_second_order(ModelKind::Lmm, &[3, 6], 8, true)]
#[case::mag_inside_a_chunk(ModelKind::Mag, &[2, 4], 5, false)]
#[case::mal_on_a_chunk_boundary(ModelKind::Mal, &[4, 2], 4, false)]
#[case::mac_on_a_chunk_boundary(ModelKind::Mac, &[3, 9], 9, false)]
fn one_call_equals_chained_calls(
    #[case] kind: ModelKind,
    #[case] periods: &[usize],
    #[case] split: i64,
    #[case] second_order: bool,
) {
    let (_vs, m) = model(&spec(kind, cms(periods, second_order)), 3, Kind::Double);
    let x = tokens(2, 17, 4);
    let (full, _) = tch::no_grad(|| m.forward_with_state(&x, None)).unwrap();
    let (a, st) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, 0, split), None)).unwrap();
    let (b, _) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, split, 17 - split), Some(st))).unwrap();
    let err = max_diff(&full, &Tensor::cat(&[a, b], 1));
    assert!(err < 1e-10, "{kind:?} split {split}: chained calls differ by {err}");
    // the training path (grad on, graph kept) computes the same logits as the evaluation path
    let trained = m.forward(&x);
    assert!(trained.requires_grad());
    let err = max_diff(&full, &trained.detach());
    assert!(err < 1e-10, "{kind:?}: grad and no-grad paths differ by {err}");
}

#[test]
fn evaluation_leaks_no_graph_and_the_updates_change_the_model() {
    let s = spec(ModelKind::Lmm, cms(&[2, 4], false));
    let (vs, m) = model(&s, 5, Kind::Float);
    let x = tokens(2, 12, 6);
    let (logits, st) = tch::no_grad(|| m.forward_with_state(&x, None)).unwrap();
    assert!(!logits.requires_grad());
    for layer in &st {
        let c = layer.cms.as_ref().unwrap();
        assert_eq!(c.tokens, 12);
        assert!(c.acc.iter().flatten().all(|a| !a.requires_grad()), "accumulators carry a graph");
        assert!(layer.memory.tensors.iter().all(|t| !t.requires_grad()), "memory state carries a graph");
    }
    // no parameter received a gradient from the inner steps
    assert!(vs.variables().values().all(|v| !v.grad().defined()));
    // with η = 0 the same weights give different logits after the first chunk, identical on it
    let mut frozen = s.clone();
    frozen.cms.as_mut().unwrap().lr = 0.0;
    let (mut vs0, m0) = model(&frozen, 99, Kind::Float);
    vs0.freeze();
    tch::no_grad(|| {
        for (name, v) in vs0.variables() {
            v.shallow_clone().copy_(&vs.variables()[&name]);
        }
    });
    let still = tch::no_grad(|| m0.forward(&x));
    assert!(max_diff(&still.narrow(1, 0, 2), &logits.narrow(1, 0, 2)) < 1e-6);
    assert!(max_diff(&still.narrow(1, 2, 10), &logits.narrow(1, 2, 10)) > 1e-4, "the in-context updates do nothing");
    assert!(m.describe().contains("CMS") && m.describe().contains("[2, 4]"), "{}", m.describe());
}

#[test]
fn outputs_do_not_see_the_future() {
    let (_vs, m) = model(&spec(ModelKind::Mag, cms(&[2, 4], false)), 7, Kind::Double);
    let x = tokens(1, 12, 8);
    let y = tch::no_grad(|| m.forward(&x));
    let x2 = x.copy();
    let _ = x2.narrow(1, 8, 4).fill_(3);
    let y2 = tch::no_grad(|| m.forward(&x2));
    // position 7's logits enter the inner loss with target x_8, but its output is computed before that update
    assert!(max_diff(&y.narrow(1, 0, 8), &y2.narrow(1, 0, 8)) < 1e-12);
}

#[rstest]
#[case::chain_first_order(CmsLayout::Chain, false)]
#[case::chain_second_order(CmsLayout::Chain, true)]
#[case::independent(CmsLayout::Independent, false)]
fn a_few_training_steps_lower_the_loss(#[case] layout: CmsLayout, #[case] second_order: bool) {
    let c = CmsSpec { layout, ..cms(&[3, 6], second_order) };
    let (vs, m) = model(&spec(ModelKind::Lmm, c), 9, Kind::Float);
    let x = tokens(4, 13, 10);
    let targets = tokens(4, 13, 11);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let mut losses = vec![];
    for _ in 0..4 {
        let (l, _) = loss_and_accuracy(&m.forward(&x), &targets);
        losses.push(l.double_value(&[]));
        opt.backward_step(&l);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[3] < losses[0], "loss did not decrease: {losses:?}");
    let level = vs.variables().into_iter().find(|(n, _)| n.contains("cms.level1.w1.weight")).unwrap().1;
    assert!(level.grad().defined() && level.grad().abs().sum(Kind::Double).double_value(&[]) > 0.0);
}
