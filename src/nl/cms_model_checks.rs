//! Checks of the Continuum Memory System inside a trained model (Nested Learning arXiv 2512.24695 v1, §7.1
//! Eqs. 70–74; Hope's output chain, §8 Eq. 97): the models' CMS (`crate::models::cms`, tch, batched, chunked,
//! autograd inner gradients) against the f64 token-by-token reference (`super::cms::reference`, hand gradients),
//! its equivalences with static MLPs and the ordinary feed-forward, its cadence inside the model, and the outer
//! gradient with respect to the initial states (Eq. 73) against central finite differences.

use super::cms::reference as cms_ref;
use crate::check::{CheckEnv, Measurement};
use crate::models::blocks::{matrix, vector};
use crate::models::cms::{self as model_cms, Cms, CmsLayout, CmsSpec, CmsState};
use crate::models::spec::{MemorySpec, ModelKind, ModelSpec};
use crate::models::{MemoryLm, ModelState};
use crate::tensor::{from_tch, round_to_kind, to_tch, with_torch_seed, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{Array1, Array2, Axis, Ix2};
use tch::{nn, Kind, Tensor};

const VOCAB: usize = 11;

/// Exact agreement of 0/1 flags: any mismatch gives a relative error of order 1.
const EXACT: f64 = 0.0;

fn stack<D: ndarray::Dimension>(xs: &[ndarray::Array<f64, D>]) -> Arr {
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    ndarray::stack(Axis(0), &views).expect("equal shapes").into_dyn()
}

/// Eqs. 70–71 (and 74, 97): the models' CMS component, driven chunk by chunk (`C_min` tokens) by the regression
/// loss `Σ_t ‖y_t − z_t‖²` through the same calls the model makes (`forward`, `accumulate`, `advance`), against
/// the reference (every token, hand gradients): outputs, final levels of every sequence, and which tokens
/// updated which level. Periods out of order, a partial last chunk, both layouts. The inner learning rate is
/// 0.001: a regression on a three-level residual chain sums up to six tokens' gradients per update, and at 0.002
/// one draw in five already grew without bound (both sides agreed to 1e-13 relative on the finite draws); at
/// 0.001 every one of 20 draws stays bounded while every level still moves by a few percent per update.
pub fn chain(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (k, dev) = (env.kind, env.device);
    let tol = tolerance::torch_vs_reference(k);
    let (b, d) = (2usize, 5i64);
    let cases: [(&[usize], CmsLayout, usize); 3] =
        [(&[2, 6, 4], CmsLayout::Chain, 13), (&[1, 3], CmsLayout::Chain, 7), (&[3, 6, 3], CmsLayout::Independent, 13)];
    let mut out = vec![];
    for &seed in &env.seeds {
        for (periods, layout, t) in cases {
            let spec = CmsSpec { expansion: 2, lr: 0.001, layout, ..CmsSpec::with_periods(periods) };
            let (_vs, cms) = with_torch_seed(seed, || {
                let mut vs = nn::VarStore::new(dev);
                let cms = Cms::new(&vs.root(), d, &spec);
                vs.set_kind(k);
                (vs, cms)
            });
            let mut r = Draw::new(seed + 500);
            if let Some(agg) = cms.aggregator() {
                let a = to_tch(&r.uniform(&[periods.len()], 0.2, 0.9), k, dev);
                tch::no_grad(|| agg.shallow_clone().copy_(&a));
            }
            let x = round_to_kind(&r.normal(&[b, t, d as usize], 1.0), k);
            let z = round_to_kind(&r.normal(&[b, t, d as usize], 1.0), k);
            let (y, st, flags) = drive(&cms, &to_tch(&x, k, dev), &to_tch(&z, k, dev), spec.chunk());
            // the reference from the model's own initial states
            let levels: Vec<cms_ref::Level> = cms
                .initial_weights()
                .into_iter()
                .zip(periods)
                .map(|(w, &period)| -> Result<cms_ref::Level> {
                    Ok(cms_ref::Level {
                        w1: matrix(w[0])?,
                        b1: vector(w[1])?,
                        w2: matrix(w[2])?,
                        b2: vector(w[3])?,
                        activation: cms_ref::Activation::Gelu,
                        biased: true,
                        period,
                        lr: spec.lr,
                    })
                })
                .collect::<Result<_>>()?;
            let agg = cms.aggregator().map(|a| from_tch(a).map(|a| a.iter().copied().collect::<Vec<f64>>()));
            let agg = agg.transpose()?;
            let runs: Vec<cms_ref::Run> = (0..b)
                .map(|i| {
                    let xi = x.index_axis(Axis(0), i).to_owned().into_dimensionality::<Ix2>().expect("[T, d]");
                    let zi = z.index_axis(Axis(0), i).to_owned().into_dimensionality::<Ix2>().expect("[T, d]");
                    cms_ref::run_with(&levels, agg.as_deref(), &xi, &zi)
                })
                .collect();
            let tag = format!("{layout:?} periods {periods:?}, T={t}, seed {seed}");
            let ys: Vec<Array2<f64>> = runs.iter().map(|r| r.y.clone()).collect();
            out.push(Measurement::compare(format!("y ({tag})"), &from_tch(&y)?, &stack(&ys), tol)?);
            for (j, fast) in st.fast.iter().enumerate() {
                let w1: Vec<Array2<f64>> = runs.iter().map(|r| r.levels[j].w1.clone()).collect();
                let b1: Vec<Array1<f64>> = runs.iter().map(|r| r.levels[j].b1.clone()).collect();
                let w2: Vec<Array2<f64>> = runs.iter().map(|r| r.levels[j].w2.clone()).collect();
                let b2: Vec<Array1<f64>> = runs.iter().map(|r| r.levels[j].b2.clone()).collect();
                for (name, ours, theirs) in [
                    ("W1", &fast[0], stack(&w1)),
                    ("b1", &fast[1], stack(&b1)),
                    ("W2", &fast[2], stack(&w2)),
                    ("b2", &fast[3], stack(&b2)),
                ] {
                    let q = format!("final level {} {name} ({tag})", j + 1);
                    out.push(Measurement::compare(q, &from_tch(ours)?, &theirs, tol)?);
                }
            }
            let as_arr = |f: &[Vec<bool>]| {
                Array2::from_shape_fn((t, periods.len()), |(i, j)| if f[i][j] { 1.0 } else { 0.0 }).into_dyn()
            };
            out.push(Measurement::compare(
                format!("updates ({tag})"),
                &as_arr(&flags),
                &as_arr(&runs[0].updated),
                EXACT,
            )?);
        }
    }
    Ok(out)
}

/// The component alone on `x [B, T, d]` with the regression loss against `z`, in chunks of `chunk` tokens: the
/// outputs, the final state, and for each token which levels were observed to change after it.
fn drive(cms: &Cms, x: &Tensor, z: &Tensor, chunk: i64) -> (Tensor, CmsState, Vec<Vec<bool>>) {
    let (b, t) = (x.size()[0], x.size()[1]);
    let mut st = cms.initial_state(b);
    let k = st.fast.len();
    let mut flags = vec![vec![false; k]; t as usize];
    let mut ys = vec![];
    let mut pos = 0;
    while pos < t {
        let len = chunk.min(t - pos);
        Cms::new_chunk(&mut st);
        let before: Vec<Tensor> = st.fast.iter().map(|w| w[0].detach().copy()).collect();
        let y = cms.forward(&x.narrow(1, pos, len), &st);
        let loss = (&y - z.narrow(1, pos, len)).square().sum(y.kind());
        model_cms::accumulate(&[cms], &mut [&mut st], &loss, false);
        cms.advance(&mut st, len, true, false);
        ys.push(y.detach());
        for (j, w) in before.iter().enumerate() {
            flags[(pos + len - 1) as usize][j] = !st.fast[j][0].detach().equal(w);
        }
        pos += len;
    }
    (Tensor::cat(&ys, 1), st, flags)
}

/// A small model spec with a CMS: `kind`, D = 8, H = 2, two layers, N_p = 2, linear memory.
pub fn spec(kind: ModelKind, cms: CmsSpec) -> ModelSpec {
    ModelSpec {
        kind,
        dim: 8,
        heads: 2,
        layers: 2,
        persistent_tokens: 2,
        segment_len: 3,
        window: 4,
        memory: MemorySpec::default(),
        mac_combine: Default::default(),
        attention: Default::default(),
        cms: Some(cms),
    }
}

/// The model of `spec` with the weights drawn from `seed`, in `kind`.
pub fn build(spec: &ModelSpec, seed: u64, kind: Kind, device: tch::Device) -> Result<(nn::VarStore, MemoryLm)> {
    let rule = crate::memories::build(&spec.memory, spec.dim / spec.heads)?;
    Ok(with_torch_seed(seed, || {
        let mut vs = nn::VarStore::new(device);
        let m = MemoryLm::new(&vs.root(), spec, VOCAB, rule);
        vs.set_kind(kind);
        (vs, m)
    }))
}

/// Copies every variable of `from` into `to`, renaming with `rename` (the names of `to` must all be covered).
fn copy_weights(from: &nn::VarStore, to: &nn::VarStore, rename: impl Fn(&str) -> String) -> Result<()> {
    let src = from.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in to.variables() {
            let source =
                src.iter().find(|(n, _)| rename(n) == name).ok_or_else(|| anyhow::anyhow!("no variable for {name}"))?;
            var.shallow_clone().copy_(source.1);
        }
        Ok(())
    })
}

fn tokens(b: i64, t: i64, seed: u64, device: tch::Device) -> Tensor {
    with_torch_seed(seed, || Tensor::randint(VOCAB as i64, [b, t], (Kind::Int64, device)))
}

/// Eq. 70's equivalences in the model: all periods ≥ T (so no level is ever updated, although every inner
/// gradient is taken) == the same weights with η = 0 (static MLPs, no inner step at all); a single level with
/// η = 0 or a period ≥ T == the ordinary feed-forward model with the same weights ("a Transformer block is the
/// case k = 1 with frequency 0").
pub fn static_equivalences(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (k, dev) = (env.kind, env.device);
    let tol = tolerance::equivalence(k);
    let t = 13;
    let mut out = vec![];
    for &seed in &env.seeds {
        let x = tokens(2, t, seed + 1, dev);
        for kind in [ModelKind::Lmm, ModelKind::Mag] {
            let learning = CmsSpec { lr: 0.05, ..CmsSpec::with_periods(&[16, 32]) };
            let (vs_a, a) = build(&spec(kind, learning.clone()), seed, k, dev)?;
            let (vs_b, b) = build(&spec(kind, CmsSpec { lr: 0.0, ..learning }), seed + 7, k, dev)?;
            copy_weights(&vs_a, &vs_b, str::to_string)?;
            let (la, lb) = tch::no_grad(|| (a.forward(&x), b.forward(&x)));
            let q = format!("{kind:?} logits, periods [16, 32] >= T = {t} vs static (seed {seed})");
            out.push(Measurement::compare(q, &from_tch(&la)?, &from_tch(&lb)?, tol)?);

            let mut plain = spec(kind, CmsSpec::with_periods(&[1]));
            plain.cms = None;
            let (vs_p, p) = build(&plain, seed + 11, k, dev)?;
            let lp = tch::no_grad(|| p.forward(&x));
            for (label, one) in
                [("lr 0", CmsSpec { lr: 0.0, ..CmsSpec::with_periods(&[1]) }), ("period 16", learning_one())]
            {
                let (vs_c, c) = build(&spec(kind, one), seed + 13, k, dev)?;
                copy_weights(&vs_p, &vs_c, |n| n.replace(".ffn.", ".cms.level0."))?;
                let lc = tch::no_grad(|| c.forward(&x));
                let q = format!("{kind:?} logits, one level ({label}) vs feed-forward model (seed {seed})");
                out.push(Measurement::compare(q, &from_tch(&lc)?, &from_tch(&lp)?, tol)?);
            }
        }
    }
    Ok(out)
}

fn learning_one() -> CmsSpec {
    CmsSpec { lr: 0.05, ..CmsSpec::with_periods(&[16]) }
}

/// Every block's fast weights `W₁` per level, from a model state.
fn fast_w1(state: &ModelState) -> Vec<Vec<Tensor>> {
    state
        .iter()
        .map(|s| s.cms.as_ref().expect("a CMS state").fast.iter().map(|w| w[0].detach().copy()).collect())
        .collect()
}

/// Eq. 71 inside the model: chained calls of one chunk each (`C_min` = 2 tokens, periods written out of order,
/// two blocks, under `no_grad` as in evaluation); level ℓ's fast weights change exactly between the calls that
/// follow chunks ending at a multiple of `C_ℓ` (a chunk's update waits for its last token's target, the next
/// call's first token).
pub fn cadence(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (k, dev) = (env.kind, env.device);
    let periods = [4usize, 2, 6];
    let (chunk, t) = (2i64, 24i64);
    let mut out = vec![];
    for &seed in &env.seeds {
        for kind in [ModelKind::Lmm, ModelKind::Mac] {
            let cms = CmsSpec { lr: 0.05, ..CmsSpec::with_periods(&periods) };
            let mut s = spec(kind, cms);
            s.segment_len = 2;
            let (_vs, m) = build(&s, seed, k, dev)?;
            let x = tokens(2, t, seed + 2, dev);
            let calls = t / chunk;
            let mut state = None;
            let mut seen = vec![];
            for c in 0..calls {
                let (_, st) = tch::no_grad(|| m.forward_with_state(&x.narrow(1, c * chunk, chunk), state.take()))?;
                seen.push(fast_w1(&st));
                state = Some(st);
            }
            let rows = (calls - 1) as usize;
            let layers = s.layers;
            let observed = Array2::from_shape_fn((rows, layers * periods.len()), |(n, lj)| {
                let (layer, j) = (lj / periods.len(), lj % periods.len());
                if seen[n + 1][layer][j].equal(&seen[n][layer][j]) {
                    0.0
                } else {
                    1.0
                }
            });
            let expected = Array2::from_shape_fn((rows, layers * periods.len()), |(n, lj)| {
                let tokens_before = (n as i64 + 1) * chunk;
                if tokens_before % periods[lj % periods.len()] as i64 == 0 {
                    1.0
                } else {
                    0.0
                }
            });
            let q = format!("{kind:?}: levels changed between calls, periods {periods:?}, T = {t} (seed {seed})");
            out.push(Measurement::compare(q, &observed.into_dyn(), &expected.into_dyn(), EXACT)?);
        }
    }
    Ok(out)
}

/// The parameters whose outer gradient [`outer_gradient`] compares: `(variable, flat index)`.
const PROBES: [(&str, i64); 4] = [
    ("block0.cms.level0.w1.weight", 13),
    ("block0.cms.level1.w2.bias", 3),
    ("block1.cms.level0.w2.weight", 29),
    ("block1.cms.level1.w1.bias", 5),
];

/// Eq. 73 (initial states learned by the outer loop), in f64 whatever the check's dtype (finite differences):
/// the outer loss is a fixed random projection `Σ R ⊙ logits`. With `second_order: true`, autograd's gradient
/// with respect to entries of the levels' initial states equals central finite differences of the whole
/// forward, inner updates included (the differences run the evaluation path, under `no_grad`). With
/// `second_order: false` it equals the first-order expression: central differences of the forward in which
/// every chunk's fast weights are the recorded ones of the unperturbed run plus the perturbation (the inner
/// increments held fixed), replayed chunk by chunk through a static (η = 0) copy of the model. The two
/// gradients must also differ (the second-order terms are live).
pub fn outer_gradient(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (k, dev) = (Kind::Double, env.device);
    let (t, chunk) = (9i64, 3i64);
    let h = 1e-5;
    let mut out = vec![];
    for &seed in &env.seeds {
        let first = CmsSpec { lr: 0.3, ..CmsSpec::with_periods(&[3, 6]) };
        let second = CmsSpec { second_order: true, ..first.clone() };
        let (vs1, m1) = build(&spec(ModelKind::Lmm, first.clone()), seed, k, dev)?;
        let (vs2, m2) = build(&spec(ModelKind::Lmm, second), seed + 1, k, dev)?;
        let (vs0, m0) = build(&spec(ModelKind::Lmm, CmsSpec { lr: 0.0, ..first }), seed + 2, k, dev)?;
        copy_weights(&vs1, &vs2, str::to_string)?;
        copy_weights(&vs1, &vs0, str::to_string)?;
        let x = tokens(2, t, seed + 3, dev);
        let proj = to_tch(&Draw::new(seed + 4).normal(&[2, t as usize, VOCAB], 1.0), k, dev);
        let loss = |logits: &Tensor| (logits * &proj).sum(k);

        let autograd = |vs: &nn::VarStore, m: &MemoryLm| -> Vec<f64> {
            for (_, mut v) in vs.variables() {
                v.zero_grad();
            }
            loss(&m.forward(&x)).backward();
            PROBES.iter().map(|(name, i)| vs.variables()[*name].grad().view([-1]).double_value(&[*i])).collect()
        };
        let g1 = autograd(&vs1, &m1);
        let g2 = autograd(&vs2, &m2);

        // second order: differences of the whole forward
        let vars2 = vs2.variables();
        let fd2: Vec<f64> = PROBES
            .iter()
            .map(|(name, i)| {
                let v = vars2[*name].shallow_clone();
                let at = |delta: f64| {
                    tch::no_grad(|| {
                        let _ = v.view([-1]).get(*i).f_add_scalar_(delta);
                    });
                    let l = tch::no_grad(|| loss(&m2.forward(&x))).double_value(&[]);
                    tch::no_grad(|| {
                        let _ = v.view([-1]).get(*i).f_sub_scalar_(delta);
                    });
                    l
                };
                (at(h) - at(-h)) / (2.0 * h)
            })
            .collect();

        // first order: the recorded fast weights of every chunk, replayed with the perturbation added
        let mut recorded = vec![];
        let mut state = None;
        for c in 0..t / chunk {
            let (_, st) = tch::no_grad(|| m1.forward_with_state(&x.narrow(1, c * chunk, chunk), state.take()))?;
            recorded.push(
                st.iter()
                    .map(|s| {
                        s.cms
                            .as_ref()
                            .expect("cms")
                            .fast
                            .iter()
                            .map(|w| w.each_ref().map(Tensor::detach))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>(),
            );
            state = Some(st);
        }
        let vars0 = vs0.variables();
        let fd1: Vec<f64> = PROBES
            .iter()
            .map(|(name, i)| -> Result<f64> {
                let (layer, level, slot) = locate(name);
                let v = vars0[*name].shallow_clone();
                let replay = |delta: f64| -> Result<f64> {
                    let bump = v.zeros_like().view([-1]);
                    let _ = tch::no_grad(|| bump.get(*i).fill_(delta));
                    let bump = bump.view(v.size().as_slice()).unsqueeze(0);
                    tch::no_grad(|| {
                        let _ = v.view([-1]).get(*i).f_add_scalar_(delta);
                    });
                    let mut logits = vec![];
                    let mut state: Option<ModelState> = None;
                    for c in 0..t / chunk {
                        if let Some(st) = state.as_mut() {
                            for (l, s) in st.iter_mut().enumerate() {
                                let cs = s.cms.as_mut().expect("cms");
                                for (j, w) in cs.fast.iter_mut().enumerate() {
                                    for (q, tensor) in w.iter_mut().enumerate() {
                                        let base = &recorded[c as usize][l][j][q];
                                        *tensor = if (l, j, q) == (layer, level, slot) {
                                            base + &bump
                                        } else {
                                            base.shallow_clone()
                                        };
                                    }
                                }
                            }
                        }
                        let (lg, st) =
                            tch::no_grad(|| m0.forward_with_state(&x.narrow(1, c * chunk, chunk), state.take()))?;
                        logits.push(lg);
                        state = Some(st);
                    }
                    tch::no_grad(|| {
                        let _ = v.view([-1]).get(*i).f_sub_scalar_(delta);
                    });
                    Ok(loss(&Tensor::cat(&logits, 1)).double_value(&[]))
                };
                Ok((replay(h)? - replay(-h)?) / (2.0 * h))
            })
            .collect::<Result<_>>()?;

        let arr = |v: &[f64]| Array1::from(v.to_vec()).into_dyn();
        let tol = tolerance::FINITE_DIFFERENCE_CHAIN;
        out.push(Measurement::compare(
            format!("second order: autograd vs FD (seed {seed})"),
            &arr(&g2),
            &arr(&fd2),
            tol,
        )?);
        out.push(Measurement::compare(
            format!("first order: autograd vs FD with fixed inner increments (seed {seed})"),
            &arr(&g1),
            &arr(&fd1),
            tol,
        )?);
        let m = Measurement::compare(format!("second vs first order differ (seed {seed})"), &arr(&g1), &arr(&g2), 0.0)?;
        anyhow::ensure!(
            m.errors.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE,
            "first- and second-order outer gradients agree to {:.1e}: the inner updates do not reach the outer loss",
            m.errors.rel_rmse
        );
    }
    Ok(out)
}

/// `block{l}.cms.level{j}.w{1,2}.{weight,bias}` → (layer, level, slot in `[W₁, b₁, W₂, b₂]`).
fn locate(name: &str) -> (usize, usize, usize) {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts[0].trim_start_matches("block").parse().expect("block index");
    let level = parts[2].trim_start_matches("level").parse().expect("level index");
    let slot = match (parts[3], parts[4]) {
        ("w1", "weight") => 0,
        ("w1", "bias") => 1,
        ("w2", "weight") => 2,
        _ => 3,
    };
    (layer, level, slot)
}
