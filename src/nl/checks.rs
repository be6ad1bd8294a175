//! Checks for Nested Learning (arXiv 2512.24695 v1). The optimizers that train the models (`crate::optim`, tch)
//! iterate on a seeded random positive-definite quadratic from the same start as their f64 references
//! (`super::optimizers::reference`, written as loops or closed forms), every iterate compared; the inner problems
//! of §4 (`super::inner`) are compared against autograd or a numeric solve; equivalences (momentum as a memory ==
//! ordinary momentum, DMGD with an inactive deep part == momentum) run one side in tch.

use super::cms;
use super::hope;
use super::inner::{reference as inner_ref, torch as inner_torch};
use super::optimizers::reference::{self as opt_ref, DeepMomentum, Quadratic};
use super::self_modifying::{self as sm, Form, HopeConfig, Objective};
use crate::check::{CheckEnv, Measurement};
use crate::newton_schulz::{self, Kind as NsKind};
use crate::optim::{self, Moments, NsName, Optimizer, OptimizerSpec};
use crate::tensor::{from_tch, round_to_kind, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::{Context, Result};
use ndarray::{Array1, Array2, Ix1, Ix2};
use tch::{nn, Kind, Tensor};

/// Matrix parameter `r × c` and vector length, odd and unequal.
const R: usize = 5;
const C: usize = 7;
const Z: usize = 4;
const STEPS: usize = 11;

/// A drawn problem, rounded to the dtype under test.
pub struct Problem {
    pub q: Quadratic,
    pub w0: Array2<f64>,
    pub z0: Array1<f64>,
    pub z_star: Array1<f64>,
    /// one learning rate per step (a varying schedule)
    pub lrs: Vec<f64>,
}

fn two(a: Arr) -> Array2<f64> {
    a.into_dimensionality::<Ix2>().expect("a matrix")
}
fn one(a: Arr) -> Array1<f64> {
    a.into_dimensionality::<Ix1>().expect("a vector")
}

impl Problem {
    /// `H = AᵀA/c + ½ I` (eigenvalues in about [0.5, 4.5]), Gaussian `W*`, `W_0`, learning rates in `[lo, hi)`.
    pub fn draw(seed: u64, kind: Kind, lo: f64, hi: f64) -> Self {
        let mut d = Draw::new(seed);
        let a = two(d.normal(&[C, C], 1.0));
        let h = a.t().dot(&a) / C as f64 + Array2::<f64>::eye(C) * 0.5;
        let r = |x: Arr| round_to_kind(&x, kind);
        let h = two(r(h.into_dyn()));
        let h = (&h + &h.t()) * 0.5; // exactly symmetric after rounding
        Self {
            q: Quadratic { h, w_star: two(r(d.normal(&[R, C], 1.0))) },
            w0: two(r(d.normal(&[R, C], 1.0))),
            z0: one(r(d.normal(&[Z], 1.0))),
            z_star: one(r(d.normal(&[Z], 1.0))),
            lrs: d.uniform(&[STEPS], lo, hi).iter().map(|&x| x as f32 as f64).collect(),
        }
    }
}

/// The tch optimizer `spec` on the problem: parameters `w` (and `z` when `with_vector`), loss
/// `½⟨(w − W*)H, w − W*⟩ + ½‖z − z*‖²` differentiated by autograd. Returns the iterates of `w` and `z` and the
/// optimizer's initial state.
fn torch_run(
    env: &CheckEnv,
    spec: &OptimizerSpec,
    p: &Problem,
    with_vector: bool,
    wd: f64,
) -> Result<(Vec<Arr>, Vec<Arr>, Vec<(String, Tensor)>)> {
    let (k, dev) = (env.kind, env.device);
    let vs = nn::VarStore::new(dev);
    let (w_init, z_init) = (to_tch(&p.w0.clone().into_dyn(), k, dev), to_tch(&p.z0.clone().into_dyn(), k, dev));
    let mut w = vs.root().var_copy("w", &w_init);
    let mut z = with_vector.then(|| vs.root().var_copy("z", &z_init));
    // variables are created in f32: convert, then copy the exact values again
    let mut vs = vs;
    vs.set_kind(k);
    tch::no_grad(|| {
        w.copy_(&w_init);
        if let Some(z) = z.as_mut() {
            z.copy_(&z_init);
        }
    });
    let mut opt: Box<dyn Optimizer> = optim::build(spec, &vs)?;
    let initial: Vec<(String, Tensor)> = opt.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let h = to_tch(&p.q.h.clone().into_dyn(), k, dev);
    let w_star = to_tch(&p.q.w_star.clone().into_dyn(), k, dev);
    let z_star = to_tch(&p.z_star.clone().into_dyn(), k, dev);
    let (mut ws, mut zs) = (vec![], vec![]);
    for &lr in &p.lrs {
        let d = &w - &w_star;
        let mut loss = (d.matmul(&h) * &d).sum(k) * 0.5;
        if let Some(z) = &z {
            loss = loss + (z - &z_star).square().sum(k) * 0.5;
        }
        loss.backward();
        opt.update(lr, wd);
        ws.push(from_tch(&w)?);
        if let Some(z) = &z {
            zs.push(from_tch(z)?);
        }
    }
    Ok((ws, zs, initial))
}

pub(super) fn stack2(xs: &[Array2<f64>]) -> Arr {
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    ndarray::stack(ndarray::Axis(0), &views).unwrap().into_dyn()
}
fn stack1(xs: &[Array1<f64>]) -> Arr {
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    ndarray::stack(ndarray::Axis(0), &views).unwrap().into_dyn()
}
fn stack_arr(xs: &[Arr]) -> Arr {
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    ndarray::stack(ndarray::Axis(0), &views).unwrap()
}

/// Eq. 1 (closed form on the quadratic) and Eq. 3 (the FTRL form `W_{t+1} = W_1 − Σ_s λ_s ∇L(W_s)`).
fn sgd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let p = Problem::draw(seed, env.kind, 0.05, 0.3);
        let (ws, _, _) = torch_run(env, &OptimizerSpec::Sgd, &p, false, 0.0)?;
        let closed = opt_ref::sgd_closed_form(&p.q, &p.w0, &p.lrs);
        let tol = tolerance::torch_vs_reference(env.kind);
        out.push(Measurement::compare(
            format!("W_t, Eq. 1 closed form (seed {seed})"),
            &stack_arr(&ws),
            &stack2(&closed),
            tol,
        )?);
        // FTRL: the sum of all past gradients, each at the reference iterate where it was taken
        let mut ftrl = vec![];
        let mut acc = p.w0.clone();
        let mut prev = p.w0.clone();
        for (t, &lr) in p.lrs.iter().enumerate() {
            acc = acc - p.q.grad(&prev) * lr;
            ftrl.push(acc.clone());
            prev = closed[t].clone();
        }
        out.push(Measurement::compare(
            format!("W_t, Eq. 3 FTRL sum (seed {seed})"),
            &stack_arr(&ws),
            &stack2(&ftrl),
            tol,
        )?);
    }
    Ok(out)
}

/// Eq. 33: tch momentum against the reference loop (with decoupled weight decay).
fn momentum(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let p = Problem::draw(seed, env.kind, 0.02, 0.1);
        let (ws, _, _) = torch_run(env, &OptimizerSpec::Momentum { beta: 0.85 }, &p, false, 0.3)?;
        let r = opt_ref::momentum(&p.q, &p.w0, 0.85, &p.lrs, 0.3);
        out.push(Measurement::compare(
            format!("W_t (seed {seed})"),
            &stack_arr(&ws),
            &stack2(&r),
            tolerance::torch_vs_reference(env.kind),
        )?);
    }
    Ok(out)
}

/// Eqs. 10–13, 33–34: the two-level system (outer `W`, inner memory `S` = the minimiser of
/// `⟨S, g⟩ + (1/2λ)‖S − βS_prev‖²` found by a linear solve) equals tch's ordinary momentum.
fn momentum_as_memory(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        // β = 0: GD as a proximal step (Eqs. 2, 9, 31) == tch SGD; β = 1: Eqs. 10–13; β = 0.8: Eqs. 33–34
        for (beta, spec) in [
            (0.0, OptimizerSpec::Sgd),
            (1.0, OptimizerSpec::Momentum { beta: 1.0 }),
            (0.8, OptimizerSpec::Momentum { beta: 0.8 }),
        ] {
            let p = Problem::draw(seed, env.kind, 0.02, 0.1);
            let (ws, _, _) = torch_run(env, &spec, &p, false, 0.0)?;
            let (mut w, mut s) = (p.w0.clone(), Array2::<f64>::zeros((R, C)));
            let mut nested = vec![];
            for &lr in &p.lrs {
                // inner level: the memory compresses the new gradient; outer level: W reads the memory
                s = inner_ref::momentum_memory_argmin(&s, &p.q.grad(&w), beta, lr);
                w = &w + &s;
                nested.push(w.clone());
            }
            out.push(Measurement::compare(
                format!("W_t, nested argmin (beta {beta}) vs tch {} (seed {seed})", spec.name()),
                &stack_arr(&ws),
                &stack2(&nested),
                tolerance::equivalence(env.kind),
            )?);
        }
    }
    Ok(out)
}

/// Eqs. 17–18: linear attention as one unit step of the inner memory `argmin −⟨Mk, v⟩ + ½‖M − M_t‖²` (the same
/// linear solve as momentum's, with `g = −v kᵀ`, `β = 1`, step 1) == the tch linear-attention state and reads
/// (Eqs. 15–16, `models::attention::torch::linear_attention_state`).
fn linear_attention_as_memory(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    for &seed in &env.seeds {
        let mut d = Draw::new(seed);
        let (t_len, dk, dv) = (9, 5, 3);
        let r = |a: Arr| two(round_to_kind(&a, k));
        let (q, key, v) =
            (r(d.normal(&[t_len, dk], 1.0)), r(d.normal(&[t_len, dk], 1.0)), r(d.normal(&[t_len, dv], 1.0)));
        let mut m = Array2::<f64>::zeros((dv, dk));
        let mut ys = Array2::<f64>::zeros((t_len, dv));
        for t in 0..t_len {
            let g = Array2::from_shape_fn((dv, dk), |(a, b)| -v[[t, a]] * key[[t, b]]);
            m = inner_ref::momentum_memory_argmin(&m, &g, 1.0, 1.0);
            ys.row_mut(t).assign(&m.dot(&q.row(t)));
        }
        let tt = |a: &Array2<f64>| to_tch(&a.clone().into_dyn(), k, dev);
        let (y, mt) = crate::models::attention::torch::linear_attention_state(&tt(&q), &tt(&key), &tt(&v));
        let tol = tolerance::torch_vs_reference(k);
        out.push(Measurement::compare(format!("M_T (seed {seed})"), &from_tch(&mt)?, &m.into_dyn(), tol)?);
        out.push(Measurement::compare(format!("y_t = M_t q_t (seed {seed})"), &from_tch(&y)?, &ys.into_dyn(), tol)?);
    }
    Ok(out)
}

/// Eqs. 48–49 (consistent form).
fn delta_momentum(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut p = Problem::draw(seed, env.kind, 0.005, 0.03);
        // start near the minimum (‖g‖₂ ≈ 3) so that the erase factor β I − 2λ gᵀg stays contractive
        p.w0 = two(round_to_kind(&(&p.q.w_star + &((&p.w0 - &p.q.w_star) * 0.1)).into_dyn(), env.kind));
        let (ws, _, _) = torch_run(env, &OptimizerSpec::DeltaMomentum { beta: 0.9 }, &p, false, 0.2)?;
        let r = opt_ref::delta_momentum(&p.q, &p.w0, 0.9, &p.lrs, 0.2);
        out.push(Measurement::compare(
            format!("W_t (seed {seed})"),
            &stack_arr(&ws),
            &stack2(&r),
            tolerance::torch_vs_reference(env.kind),
        )?);
        // the erase term acts: plain momentum with learning rate 2λ differs
        let plain = opt_ref::momentum(&p.q, &p.w0, 0.9, &p.lrs.iter().map(|l| 2.0 * l).collect::<Vec<_>>(), 0.2);
        let e = crate::tensor::errors(&stack2(&plain), &stack2(&r))?;
        anyhow::ensure!(
            e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE,
            "delta momentum equals plain momentum ({:.2e}): the erase term did nothing",
            e.rel_rmse
        );
    }
    Ok(out)
}

/// Eq. 42 (= Eq. 52 with a linear value-less memory and σ = NS), both Newton–Schulz kinds; vectors take Adam.
fn muon(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for (ns, kind) in [(NsName::QuinticMuon, NsKind::QuinticMuon), (NsName::Cubic, NsKind::Cubic)] {
            let p = Problem::draw(seed, env.kind, 0.01, 0.05);
            let spec = OptimizerSpec::Muon { beta: 0.9, ns, ns_steps: 5, rms_match: true, adam_params: vec![] };
            let (ws, zs, _) = torch_run(env, &spec, &p, true, 0.1)?;
            let cfg = opt_ref::Muon { beta: 0.9, ns: kind, ns_steps: 5, rms_match: true };
            let (rw, rz) = opt_ref::muon(&p.q, &p.w0, (&p.z0, &p.z_star), cfg, &p.lrs, 0.1);
            let tol = tolerance::torch_vs_reference(env.kind);
            out.push(Measurement::compare(format!("W_t, {kind:?} (seed {seed})"), &stack_arr(&ws), &stack2(&rw), tol)?);
            out.push(Measurement::compare(
                format!("z_t Adam, {kind:?} (seed {seed})"),
                &stack_arr(&zs),
                &stack1(&rz),
                tol,
            )?);
        }
    }
    Ok(out)
}

/// Algorithm 1 (and Eq. 75 read through it): the tch M3 against the two-loop reference, sums and EMAs,
/// period 3 over 11 steps (a partial last block).
fn m3(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for moments in [Moments::Ema, Moments::Sum] {
            let p = Problem::draw(seed, env.kind, 0.002, 0.01);
            let (beta1, beta2, beta3, alpha, eps, frequency) = (0.9, 0.99, 0.8, 0.7, 1e-3, 3);
            let spec = OptimizerSpec::M3 {
                beta1,
                beta2,
                beta3,
                alpha,
                eps,
                frequency,
                moments,
                ns: NsName::QuinticMuon,
                ns_steps: 5,
                adam_params: vec![],
            };
            let (ws, zs, _) = torch_run(env, &spec, &p, true, 0.1)?;
            let cfg = opt_ref::M3 {
                beta1,
                beta2,
                beta3,
                alpha,
                eps,
                frequency,
                ema: moments == Moments::Ema,
                ns: NsKind::QuinticMuon,
                ns_steps: 5,
            };
            let (rw, rz) = opt_ref::m3(&p.q, &p.w0, (&p.z0, &p.z_star), cfg, &p.lrs, 0.1);
            let tol = tolerance::torch_vs_reference(env.kind);
            out.push(Measurement::compare(
                format!("W_t, {moments:?} (seed {seed})"),
                &stack_arr(&ws),
                &stack2(&rw),
                tol,
            )?);
            out.push(Measurement::compare(
                format!("z_t Adam, {moments:?} (seed {seed})"),
                &stack_arr(&zs),
                &stack1(&rz),
                tol,
            )?);
            // the slow memory acts: α = 0 gives other iterates
            let (r0, _) = opt_ref::m3(&p.q, &p.w0, (&p.z0, &p.z_star), opt_ref::M3 { alpha: 0.0, ..cfg }, &p.lrs, 0.1);
            let e = crate::tensor::errors(&stack2(&r0), &stack2(&rw))?;
            anyhow::ensure!(e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE, "M3's slow momentum had no effect");
        }
    }
    Ok(out)
}

fn initial_slot(state: &[(String, Tensor)], name: &str) -> Result<Array2<f64>> {
    let t = &state.iter().find(|(n, _)| n == name).with_context(|| format!("no {name} in the optimizer state"))?.1;
    Ok(two(from_tch(t)?))
}

/// Eq. 50: tch DMGD (inner gradients by autograd) against the reference (inner gradients by hand), from the
/// optimizer's own initial memory.
fn dmgd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let p = Problem::draw(seed, env.kind, 0.02, 0.08);
        let (beta, inner_lr, hidden) = (0.8, 0.7, 3);
        let (ws, _, init) = torch_run(env, &OptimizerSpec::Dmgd { beta, inner_lr, hidden }, &p, false, 0.1)?;
        let psi0 = DeepMomentum {
            b: initial_slot(&init, "dmgd_b.w")?,
            w1: initial_slot(&init, "dmgd_w1.w")?,
            w2: initial_slot(&init, "dmgd_w2.w")?,
        };
        let r = opt_ref::dmgd(&p.q, &p.w0, &psi0, beta, inner_lr, &p.lrs, 0.1);
        out.push(Measurement::compare(
            format!("W_t (seed {seed})"),
            &stack_arr(&ws),
            &stack2(&r),
            tolerance::torch_vs_reference(env.kind),
        )?);
        // the deep part acts: with it removed the iterates differ
        let lin = DeepMomentum { w1: Array2::zeros(psi0.w1.raw_dim()), ..psi0.clone() };
        let r0 = opt_ref::dmgd(&p.q, &p.w0, &lin, beta, inner_lr, &p.lrs, 0.1);
        let e = crate::tensor::errors(&stack2(&r0), &stack2(&r))?;
        anyhow::ensure!(e.rel_rmse > 1e-6, "DMGD's deep part had no effect ({:.2e})", e.rel_rmse);
    }
    Ok(out)
}

/// Eq. 50's reduction: a memory whose deep part is inactive (`W₁ = W₂ = 0` is a fixed point of its inner
/// descent), `η = 1`, constant `λ`: DMGD's reference == tch momentum.
fn dmgd_reduces_to_momentum(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut p = Problem::draw(seed, env.kind, 0.02, 0.08);
        let lr = p.lrs[0];
        p.lrs = vec![lr; STEPS];
        let beta = 0.75;
        let (ws, _, _) = torch_run(env, &OptimizerSpec::Momentum { beta }, &p, false, 0.0)?;
        let psi0 = DeepMomentum { b: Array2::zeros((R, C)), w1: Array2::zeros((3, C)), w2: Array2::zeros((C, 3)) };
        let r = opt_ref::dmgd(&p.q, &p.w0, &psi0, beta, 1.0, &p.lrs, 0.0);
        out.push(Measurement::compare(
            format!("W_t (seed {seed})"),
            &stack_arr(&ws),
            &stack2(&r),
            tolerance::equivalence(env.kind),
        )?);
    }
    Ok(out)
}

/// Eqs. 8, 29–31: autograd's weight gradients of a two-layer perceptron == the outer products `δ_ℓ x̂_{ℓ−1}ᵀ` of the
/// local surprise signals (summed over a batch of 3 inputs).
fn backprop(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    for &seed in &env.seeds {
        let mut d = Draw::new(seed);
        let (din, dh, dout, n) = (5, 6, 3, 3);
        let r = |a: Arr| round_to_kind(&a, k);
        let (w1, b1, w2, b2) = (
            r(d.normal(&[dh, din], 0.5)),
            r(d.normal(&[dh], 0.3)),
            r(d.normal(&[dout, dh], 0.5)),
            r(d.normal(&[dout], 0.3)),
        );
        let (x, y) = (r(d.normal(&[n, din], 1.0)), r(d.normal(&[n, dout], 1.0)));
        let net =
            inner_ref::TwoLayer { w1: two(w1.clone()), b1: one(b1.clone()), w2: two(w2.clone()), b2: one(b2.clone()) };
        let (xs, ys) = (two(x.clone()), two(y.clone()));
        let mut sums: Vec<Arr> = vec![];
        for i in 0..n {
            let (g1, gb1, g2, gb2) = inner_ref::backprop(&net, &xs.row(i).to_owned(), &ys.row(i).to_owned());
            let gs = [g1.into_dyn(), gb1.into_dyn(), g2.into_dyn(), gb2.into_dyn()];
            if sums.is_empty() {
                sums = gs.to_vec();
            } else {
                for (s, g) in sums.iter_mut().zip(gs) {
                    *s = &*s + &g;
                }
            }
        }
        let t = |a: &Arr| to_tch(a, k, dev);
        let grads = inner_torch::backprop(&t(&w1), &t(&b1), &t(&w2), &t(&b2), &t(&x), &t(&y));
        for ((name, g), s) in ["dL/dW1", "dL/db1", "dL/dW2", "dL/db2"].iter().zip(&grads).zip(&sums) {
            out.push(Measurement::compare(
                format!("{name} (seed {seed})"),
                &from_tch(g)?,
                s,
                tolerance::gradient_vs_reference(k),
            )?);
        }
    }
    Ok(out)
}

/// Eqs. 43–44: one autograd step (ζ = 1/4) on `½‖O − g‖² + ½‖OᵀO − I‖²` from `O₀ = g` is the cubic Newton–Schulz
/// step (`newton_schulz::reference`, 1 step); `k` steps of size ½ on `¼‖OᵀO − I‖²` (reference) are `k` cubic
/// steps (`newton_schulz::torch`); the printed Eq. 44 step (reference) == the autograd step.
fn newton_schulz_as_descent(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    for &seed in &env.seeds {
        let mut d = Draw::new(seed);
        let s = two(round_to_kind(&d.normal(&[R, C], 1.0), k));
        // Newton–Schulz first normalises, X_0 = s / (‖s‖ + ε) (NL does not state it; convergence needs it): the
        // inner memory starts from that X_0, and NS is given s itself
        let g = &s / (s.iter().map(|x| x * x).sum::<f64>().sqrt() + newton_schulz::NORM_EPS);
        let gt = to_tch(&g.clone().into_dyn(), k, dev);
        let st = to_tch(&s.clone().into_dyn(), k, dev);
        let step = inner_torch::orthogonalization_step(&gt, &gt, 0.25);
        let ns1 = newton_schulz::reference::orthogonalize(&s, NsKind::Cubic, 1);
        let tol = tolerance::torch_vs_reference(k);
        out.push(Measurement::compare(
            format!("O_1 = cubic NS (seed {seed})"),
            &from_tch(&step)?,
            &ns1.into_dyn(),
            tol,
        )?);
        let printed = inner_ref::orthogonalization_step(&g, &g, 0.25);
        out.push(Measurement::compare(
            format!("Eq. 44 printed gradient vs autograd (seed {seed})"),
            &from_tch(&step)?,
            &printed.into_dyn(),
            tol,
        )?);
        // a second step of Eq. 44 differs from pure NS: the (O − g) pull
        let second = inner_ref::orthogonalization_step(&two(from_tch(&step)?), &g, 0.25);
        let ns2 = newton_schulz::reference::orthogonalize(&s, NsKind::Cubic, 2);
        let e = crate::tensor::errors(&second.into_dyn(), &ns2.into_dyn())?;
        anyhow::ensure!(e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE, "Eq. 44's second step equals pure NS");
        let descent = inner_ref::orthogonality_descent(&g, 5);
        let ns5 = newton_schulz::torch::orthogonalize(&st, NsKind::Cubic, 5);
        out.push(Measurement::compare(
            format!("5 descent steps = NS-5 cubic (seed {seed})"),
            &from_tch(&ns5)?,
            &descent.into_dyn(),
            tol,
        )?);
    }
    Ok(out)
}

/// Appendix B: the closed-form optima of the element-wise (Eqs. 101–102) and matrix (Eqs. 106–107) momentum
/// memories against a Newton step with autograd derivatives and a ridge least-squares solve.
fn adam_as_memory(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    for &seed in &env.seeds {
        let mut d = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, k);
        let (n_grads, lambda) = (6, 0.3);
        let gs = r(d.normal(&[n_grads, R, C], 1.0));
        let p = r(d.normal(&[R, C], 1.0));
        let list: Vec<Array2<f64>> = (0..n_grads).map(|i| two(gs.index_axis(ndarray::Axis(0), i).to_owned())).collect();
        let closed = inner_ref::elementwise_memory_optimum(&list, &two(p.clone()), lambda);
        let newton = inner_torch::elementwise_memory_optimum(&to_tch(&gs, k, dev), &to_tch(&p, k, dev), lambda);
        let tol = tolerance::torch_vs_reference(k);
        out.push(Measurement::compare(
            format!("element-wise m* (seed {seed})"),
            &from_tch(&newton)?,
            &closed.into_dyn(),
            tol,
        )?);
        let gv = r(d.normal(&[n_grads, C], 1.0));
        let pv = r(d.normal(&[R], 1.0));
        let rows: Vec<Array1<f64>> = (0..n_grads).map(|i| one(gv.index_axis(ndarray::Axis(0), i).to_owned())).collect();
        let closed = inner_ref::matrix_memory_optimum(&rows, &one(pv.clone()), lambda);
        let ridge = inner_torch::matrix_memory_optimum(&to_tch(&gv, k, dev), &to_tch(&pv, k, dev), lambda);
        out.push(Measurement::compare(
            format!("matrix m* (seed {seed})"),
            &from_tch(&ridge)?,
            &closed.into_dyn(),
            tol,
        )?);
    }
    Ok(out)
}

/// Eqs. 56–57: the DGD closed form (reference, Sherman–Morrison) == the minimiser of Eq. 56 by a batched linear
/// solve (tch), for inputs of any norm; and the printed Eq. 57 (`η' = η/(1+η)`, `u = −∇_y L`) for unit inputs.
fn dgd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    let b = 3;
    for &seed in &env.seeds {
        let mut d = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, k);
        let w = r(d.normal(&[b, R, C], 1.0));
        let x_any = r(d.normal(&[b, C], 0.8));
        let x_unit = r(d.unit_rows(&[b, C]));
        let u = r(d.normal(&[b, R], 1.0));
        let eta = 0.7;
        let tol = tolerance::torch_vs_reference(k);
        for (label, x) in [("any norm", &x_any), ("unit norm", &x_unit)] {
            let solved = inner_torch::dgd_solve(&to_tch(&w, k, dev), &to_tch(x, k, dev), &to_tch(&u, k, dev), eta);
            let (mut closed, mut printed) = (vec![], vec![]);
            for i in 0..b {
                let wi = two(w.index_axis(ndarray::Axis(0), i).to_owned());
                let xi = one(x.index_axis(ndarray::Axis(0), i).to_owned());
                let ui = one(u.index_axis(ndarray::Axis(0), i).to_owned());
                closed.push(inner_ref::dgd_step(&wi, &xi, &ui, eta));
                // Eq. 57 as printed: W(I − η' x xᵀ) − η' ∇_y L ⊗ x with ∇_y L = −u, η' = η/(1+η)
                let ep = eta / (1.0 + eta);
                let xx = Array2::from_shape_fn((C, C), |(a, c)| xi[a] * xi[c]);
                let grad_x = Array2::from_shape_fn((R, C), |(a, c)| -ui[a] * xi[c]);
                printed.push(wi.dot(&(Array2::<f64>::eye(C) - xx * ep)) - grad_x * ep);
            }
            out.push(Measurement::compare(
                format!("W_t+1 closed form, {label} (seed {seed})"),
                &from_tch(&solved)?,
                &stack2(&closed),
                tol,
            )?);
            if label == "unit norm" {
                out.push(Measurement::compare(
                    format!("Eq. 57 as printed, unit x (seed {seed})"),
                    &from_tch(&solved)?,
                    &stack2(&printed),
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// CMS problem: `B` sequences of `T` tokens, width `d`, three levels (hidden widths 4, 6, 3).
struct CmsProblem {
    x: Arr,
    z: Arr,
    w1: Vec<Array2<f64>>,
    w2: Vec<Array2<f64>>,
}

const CMS_B: usize = 2;
const CMS_T: usize = 13;
const CMS_D: usize = 5;

impl CmsProblem {
    fn draw(seed: u64, kind: Kind) -> Self {
        let mut d = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, kind);
        let x = r(d.normal(&[CMS_B, CMS_T, CMS_D], 1.0));
        let z = r(d.normal(&[CMS_B, CMS_T, CMS_D], 1.0));
        let (mut w1, mut w2) = (vec![], vec![]);
        for h in [4, 6, 3] {
            w1.push(two(r(d.normal(&[h, CMS_D], 0.4))));
            w2.push(two(r(d.normal(&[CMS_D, h], 0.4))));
        }
        Self { x, z, w1, w2 }
    }

    fn reference(&self, b: usize, periods: &[usize], lrs: &[f64]) -> cms::reference::Run {
        let levels: Vec<cms::reference::Level> = (0..3)
            .map(|j| {
                let tanh = cms::reference::Activation::Tanh;
                cms::reference::Level::unbiased(self.w1[j].clone(), self.w2[j].clone(), tanh, periods[j], lrs[j])
            })
            .collect();
        let x = two(self.x.index_axis(ndarray::Axis(0), b).to_owned());
        let z = two(self.z.index_axis(ndarray::Axis(0), b).to_owned());
        cms::reference::run(&levels, &x, &z)
    }

    fn torch(
        &self,
        env: &CheckEnv,
        periods: &[usize],
        lrs: &[f64],
    ) -> (Tensor, Vec<cms::torch::Level>, Vec<Vec<bool>>) {
        let (k, dev) = (env.kind, env.device);
        let batch = |a: &Array2<f64>| to_tch(&a.clone().into_dyn(), k, dev).unsqueeze(0).repeat([CMS_B as i64, 1, 1]);
        let levels = (0..3)
            .map(|j| cms::torch::Level {
                w1: batch(&self.w1[j]),
                w2: batch(&self.w2[j]),
                period: periods[j],
                lr: lrs[j],
            })
            .collect();
        cms::torch::run(levels, &to_tch(&self.x, k, dev), &to_tch(&self.z, k, dev))
    }
}

/// Eqs. 70–71: tch CMS (batched, autograd) against the token-by-token reference (hand gradients): outputs and final
/// levels, periods (1, 3, 5) over 13 tokens (chunks end mid-sequence; the last chunks stay pending).
fn cms_chain(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (periods, lrs) = ([1, 3, 5], [0.05, 0.03, 0.02]);
    for &seed in &env.seeds {
        let p = CmsProblem::draw(seed, env.kind);
        let (y, levels, _) = p.torch(env, &periods, &lrs);
        let runs: Vec<_> = (0..CMS_B).map(|b| p.reference(b, &periods, &lrs)).collect();
        let tol = tolerance::torch_vs_reference(env.kind);
        let ys: Vec<Array2<f64>> = runs.iter().map(|r| r.y.clone()).collect();
        out.push(Measurement::compare(format!("y_t (seed {seed})"), &from_tch(&y)?, &stack2(&ys), tol)?);
        for (j, l) in levels.iter().enumerate() {
            let w1: Vec<Array2<f64>> = runs.iter().map(|r| r.levels[j].w1.clone()).collect();
            let w2: Vec<Array2<f64>> = runs.iter().map(|r| r.levels[j].w2.clone()).collect();
            out.push(Measurement::compare(
                format!("level {} W1_T (seed {seed})", j + 1),
                &from_tch(&l.w1)?,
                &stack2(&w1),
                tol,
            )?);
            out.push(Measurement::compare(
                format!("level {} W2_T (seed {seed})", j + 1),
                &from_tch(&l.w2)?,
                &stack2(&w2),
                tol,
            )?);
        }
    }
    Ok(out)
}

/// Exact agreement of 0/1 flags: any mismatch gives a relative error of order 1.
const EXACT: f64 = 0.0;

/// Eq. 71's cadence: the tokens at which each level's parameters are observed to change (tch, by comparing the
/// parameters around every token) are exactly `{i : i mod C_ℓ = 0}`, and the reference agrees.
fn cms_cadence(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for periods in [[1, 3, 5], [4, 2, 7]] {
            let p = CmsProblem::draw(seed, env.kind);
            let lrs = [0.05, 0.03, 0.02];
            let (_, _, changed) = p.torch(env, &periods, &lrs);
            let flags = |f: &Vec<Vec<bool>>| {
                Array2::from_shape_fn((CMS_T, 3), |(t, j)| if f[t][j] { 1.0 } else { 0.0 }).into_dyn()
            };
            let expected =
                Array2::from_shape_fn((CMS_T, 3), |(t, j)| if (t + 1) % periods[j] == 0 { 1.0 } else { 0.0 })
                    .into_dyn();
            out.push(Measurement::compare(
                format!("tch updates, periods {periods:?} (seed {seed})"),
                &flags(&changed),
                &expected,
                EXACT,
            )?);
            let r = p.reference(0, &periods, &lrs);
            out.push(Measurement::compare(
                format!("reference updates, periods {periods:?} (seed {seed})"),
                &flags(&r.updated),
                &expected,
                EXACT,
            )?);
        }
    }
    Ok(out)
}

/// All periods 1 with one learning rate == ordinary online SGD on the MLP stack (tch: the `sgd` training optimizer
/// stepping after every token's backward); all periods ≥ T == the static stack (no update inside the sequence).
fn cms_online_stack(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    for &seed in &env.seeds {
        let p = CmsProblem::draw(seed, env.kind);
        let lr = 0.04;
        let r = p.reference(0, &[1, 1, 1], &[lr; 3]);
        let vs = nn::VarStore::new(dev);
        let mut params = vec![];
        for j in 0..3 {
            for (name, a) in [("w1", &p.w1[j]), ("w2", &p.w2[j])] {
                let init = to_tch(&a.clone().into_dyn(), k, dev);
                params.push((vs.root().var_copy(&format!("l{j}_{name}"), &init), init));
            }
        }
        let mut vs = vs;
        vs.set_kind(k);
        tch::no_grad(|| {
            for (v, init) in params.iter_mut() {
                v.copy_(init);
            }
        });
        let mut opt = optim::build(&OptimizerSpec::Sgd, &vs)?;
        let (x, z) = (to_tch(&p.x, k, dev).get(0), to_tch(&p.z, k, dev).get(0));
        let mut ys = vec![];
        for t in 0..CMS_T as i64 {
            let mut a = x.get(t);
            for j in 0..3 {
                a = &a + params[2 * j + 1].0.mv(&params[2 * j].0.mv(&a).tanh());
            }
            ((&a - z.get(t)).square().sum(k)).backward();
            ys.push(a.detach());
            opt.update(lr, 0.0);
        }
        let tol = tolerance::equivalence(k);
        out.push(Measurement::compare(
            format!("y_t, periods 1 vs online SGD (seed {seed})"),
            &from_tch(&Tensor::stack(&ys, 0))?,
            &r.y.clone().into_dyn(),
            tol,
        )?);
        out.push(Measurement::compare(
            format!("level 3 W2_T, periods 1 vs online SGD (seed {seed})"),
            &from_tch(&params[5].0)?,
            &r.levels[2].w2.clone().into_dyn(),
            tol,
        )?);
        // periods ≥ T: outputs of the frozen initial stack
        let frozen = p.reference(0, &[CMS_T + 1, 50, 99], &[lr; 3]);
        let x0 = two(p.x.index_axis(ndarray::Axis(0), 0).to_owned());
        let mut a = x0.clone();
        for j in 0..3 {
            a = &a + &a.dot(&p.w1[j].t()).mapv(f64::tanh).dot(&p.w2[j].t());
        }
        out.push(Measurement::compare(
            format!("y_t, periods >= T vs static stack (seed {seed})"),
            &frozen.y.into_dyn(),
            &a.into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
    }
    Ok(out)
}

/// Eqs. 88, 90, 93 (linear memory, `□ = memory`): tch Hope DGD rule (chunk products + token-by-token erase)
/// against the f64 token loop, chunk sizes 1 (Eq. 88) and 3 over 10 tokens (a partial last chunk).
fn hope_dgd_memory(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    let (b, h, t_len, d) = (2, 2, 10, 4);
    for &seed in &env.seeds {
        let mut dr = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, k);
        let (key, q) = (r(dr.unit_rows(&[b, h, t_len, d])), r(dr.unit_rows(&[b, h, t_len, d])));
        let v = r(dr.normal(&[b, h, t_len, d], 0.5));
        let (alpha, theta) = (r(dr.uniform(&[b, h, t_len], 0.0, 0.2)), r(dr.uniform(&[b, h, t_len], 0.05, 0.2)));
        let m0 = r(dr.normal(&[b, h, d, d], 0.5));
        let t = |a: &Arr| to_tch(a, k, dev);
        let mut per_chunk = vec![];
        for c in [1, 3] {
            let (y, m) = hope::torch::forward(&t(&key), &t(&v), &t(&q), &t(&alpha), &t(&theta), &t(&m0), c);
            let (mut ys, mut ms) = (vec![], vec![]);
            for bi in 0..b {
                for hi in 0..h {
                    let sel2 = |a: &Arr| crate::tensor::head2(a, bi, hi);
                    let sel1 = |a: &Arr| crate::tensor::head1(a, bi, hi);
                    let (yr, mr) = hope::reference::forward(
                        &sel2(&key),
                        &sel2(&v),
                        &sel2(&q),
                        &sel1(&alpha),
                        &sel1(&theta),
                        &sel2(&m0),
                        c,
                    );
                    ys.push(yr);
                    ms.push(mr);
                }
            }
            let tol = tolerance::torch_vs_reference(k);
            let shape_y = [b, h, t_len, d];
            let yr = stack2(&ys).into_shape_with_order(ndarray::IxDyn(&shape_y))?;
            let mr = stack2(&ms).into_shape_with_order(ndarray::IxDyn(&[b, h, d, d]))?;
            out.push(Measurement::compare(format!("y_t, C = {c} (seed {seed})"), &from_tch(&y)?, &yr, tol)?);
            out.push(Measurement::compare(format!("M_T, C = {c} (seed {seed})"), &from_tch(&m)?, &mr, tol)?);
            per_chunk.push(yr);
        }
        // chunking changes the function (boundary-state values, gradients and reads)
        let e = crate::tensor::errors(&per_chunk[1], &per_chunk[0])?;
        anyhow::ensure!(e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE, "C = 3 equals C = 1 ({:.1e})", e.rel_rmse);
    }
    Ok(out)
}

/// Eq. 88 is Eq. 57's DGD: one token with `α = 0`, unit key, of the Hope rule (reference) == the minimiser of Eq. 56
/// with `x = k`, `u = −∇_y ℓ = −2(M k − v̂)` and `η = θ/(1 − θ)` (so that `η/(1 + η) = θ`), by tch's linear solve.
fn hope_dgd_is_dgd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    let d = 5;
    for &seed in &env.seeds {
        let mut dr = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, k);
        let key = two(r(dr.unit_rows(&[1, d])));
        let v = two(r(dr.normal(&[1, d], 1.0)));
        let m0 = two(r(dr.normal(&[d, d], 0.5)));
        let theta = 0.3;
        let (_, m1) = hope::reference::forward(&key, &v, &key, &Array1::zeros(1), &Array1::from_elem(1, theta), &m0, 1);
        let kr = key.row(0).to_owned();
        let u = (m0.dot(&kr) - m0.dot(&v.row(0))) * -2.0;
        let t = |a: Arr| to_tch(&a, k, dev);
        let solved = inner_torch::dgd_solve(
            &t(m0.clone().insert_axis(ndarray::Axis(0)).into_dyn()),
            &t(key.clone().into_dyn()),
            &t(u.insert_axis(ndarray::Axis(0)).into_dyn()),
            theta / (1.0 - theta),
        );
        out.push(Measurement::compare(
            format!("M_1 (seed {seed})"),
            &from_tch(&solved.get(0))?,
            &m1.into_dyn(),
            tolerance::equivalence(k),
        )?);
    }
    Ok(out)
}

/// The rule with linear memories, fixed projections, self-generated values, l2 and DGD.
fn linear_fixed(chunk: usize) -> HopeConfig {
    HopeConfig {
        form: Form::Linear,
        expansion: 1,
        activation: crate::memory::activation::Activation::Silu,
        objective: Objective::L2,
        dgd: true,
        self_modifying: true,
        adaptive_k: false,
        adaptive_v: false,
        adaptive_q: false,
        normalize_v: false,
        own_keys: false,
        chunk,
    }
}

/// The catalogue rule `kind: hope` (`self_modifying`) with linear memories, no adaptive projections and
/// before-write reads is the main memory alone: it must equal Eq. 93's code (`hope`), f64 token loop and tch, for
/// C = 1 and 3 over 10 tokens.
fn hope_rule_linear_is_hope_dgd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (k, dev) = (env.kind, env.device);
    let (b, h, t_len, d) = (2, 2, 10, 4);
    for &seed in &env.seeds {
        let mut dr = Draw::new(seed + 101);
        let r = |a: Arr| round_to_kind(&a, k);
        let (key, q) = (r(dr.unit_rows(&[b, h, t_len, d])), r(dr.unit_rows(&[b, h, t_len, d])));
        let v = r(dr.normal(&[b, h, t_len, d], 0.5));
        let (alpha, theta) = (r(dr.uniform(&[b, h, t_len], 0.0, 0.2)), r(dr.uniform(&[b, h, t_len], 0.05, 0.3)));
        let m0 = r(dr.normal(&[b, h, d, d], 0.5));
        let t = |a: &Arr| to_tch(a, k, dev);
        for c in [1, 3] {
            let cfg = linear_fixed(c);
            let read = crate::memory::ReadMode::BeforeWrite;
            let (y, m) = sm::torch::forward(&cfg, &t(&key), &t(&v), &t(&q), &t(&alpha), &t(&theta), &[t(&m0)], read);
            let (y_hope, m_hope) = hope::torch::forward(&t(&key), &t(&v), &t(&q), &t(&alpha), &t(&theta), &t(&m0), c);
            let tol = tolerance::equivalence(k);
            let tag = format!("C = {c}, seed {seed}");
            out.push(Measurement::compare(
                format!("tch y, rule vs nl::hope ({tag})"),
                &from_tch(&y)?,
                &from_tch(&y_hope)?,
                tol,
            )?);
            out.push(Measurement::compare(
                format!("tch M_T, rule vs nl::hope ({tag})"),
                &from_tch(&m[0])?,
                &from_tch(&m_hope)?,
                tol,
            )?);
            for (bi, hi) in [(0, 0), (1, 1)] {
                let (s2, s1) = (|a: &Arr| crate::tensor::head2(a, bi, hi), |a: &Arr| crate::tensor::head1(a, bi, hi));
                let (yr, mr) = sm::reference::forward(
                    &cfg,
                    &s2(&key),
                    &s2(&v),
                    &s2(&q),
                    &s1(&alpha),
                    &s1(&theta),
                    &[s2(&m0)],
                    read,
                );
                let (yh, mh) =
                    hope::reference::forward(&s2(&key), &s2(&v), &s2(&q), &s1(&alpha), &s1(&theta), &s2(&m0), c);
                let f64_tol = tolerance::ALGEBRAIC_F64;
                let at = format!("head ({bi}, {hi}), {tag}");
                out.push(Measurement::compare(
                    format!("f64 y, rule vs nl::hope ({at})"),
                    &yr.into_dyn(),
                    &yh.into_dyn(),
                    f64_tol,
                )?);
                out.push(Measurement::compare(
                    format!("f64 M_T, rule vs nl::hope ({at})"),
                    &mr[0].clone().into_dyn(),
                    &mh.into_dyn(),
                    f64_tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// Layer-wise DGD is Eq. 56 per layer: one token (α = 0) of the rule's MLP main memory (f64 reference, inputs and
/// errors by hand) == for each matrix `W` the minimiser of `½‖W a − u‖² + ‖W − W_s‖²/(2θ)` with the layer input
/// `a` and `u = −δ`, where `δ aᵀ = ∇_W L` comes from tch autograd of `L = ‖M(k) − v̂‖²` (`v̂ = M_s(v)` held fixed),
/// `δ = ∇_W L a/‖a‖²`, solved by tch's linear solve (Eq. 56's stationarity system). SiLU and GELU, keys of norm ≠ 1.
fn hope_layerwise_dgd_is_dgd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    use crate::titans::mlp_memory::Activation;
    let mut out = vec![];
    let (kind, dev) = (env.kind, env.device);
    let (d, e) = (5, 2);
    for &seed in &env.seeds {
        for activation in [Activation::Silu, Activation::Gelu] {
            let cfg = HopeConfig { form: Form::Mlp, expansion: e, activation, ..linear_fixed(1) };
            let mut dr = Draw::new(seed + 202);
            let r = |a: Arr| round_to_kind(&a, kind);
            let key = two(r(dr.normal(&[1, d], 0.7)));
            let v = two(r(dr.normal(&[1, d], 1.0)));
            let w1 = two(r(dr.normal(&[d, e * d], 0.4)));
            let w2 = two(r(dr.normal(&[e * d, d], 0.4)));
            let theta = 0.3;
            let (_, after) = sm::reference::forward(
                &cfg,
                &key,
                &v,
                &key,
                &Array1::zeros(1),
                &Array1::from_elem(1, theta),
                &[w1.clone(), w2.clone()],
                crate::memory::ReadMode::BeforeWrite,
            );
            // autograd side: ∇_W L with v̂ = M_s(v) detached, and the layer inputs a
            let t = |a: &Array2<f64>| to_tch(&a.clone().into_dyn(), kind, dev);
            let (w1t, w2t) = (t(&w1).set_requires_grad(true), t(&w2).set_requires_grad(true));
            let (kt, vt) = (t(&key), t(&v));
            let mlp = |z: &Tensor| sm::torch::apply(&cfg, &[w1t.shallow_clone(), w2t.shallow_clone()], z);
            let v_hat = tch::no_grad(|| mlp(&vt));
            let loss = (mlp(&kt) - &v_hat).square().sum(kind);
            let grads = Tensor::run_backward(&[loss], &[&w1t, &w2t], false, false);
            let hidden = tch::no_grad(|| {
                let pre = kt.matmul(&w2t.tr());
                match activation {
                    Activation::Gelu => pre.gelu("none"),
                    _ => pre.silu(),
                }
            });
            let inputs = [hidden, kt.shallow_clone()]; // a of W₁ and of W₂, [1, cols]
            for (l, (w, a)) in [&w1t, &w2t].iter().zip(&inputs).enumerate() {
                // δ = ∇_W L a / ‖a‖²
                let delta = grads[l].matmul(&a.tr()) / a.square().sum(kind);
                let solved = inner_torch::dgd_solve(&w.detach().unsqueeze(0), a, &(-delta.tr()), theta);
                out.push(Measurement::compare(
                    format!("W_{} after one token, {} (seed {seed})", if l == 0 { 1 } else { 2 }, activation.name()),
                    &from_tch(&solved.get(0))?,
                    &after[l].clone().into_dyn(),
                    tolerance::equivalence(kind),
                )?);
            }
        }
    }
    Ok(out)
}

pub fn checks() -> Vec<crate::check::Check> {
    use crate::check::Check;
    vec![
        Check { name: "nl_sgd", summary: "tch SGD on a random PD quadratic == its closed form (Eq. 1) and the FTRL sum (Eq. 3)", run: sgd },
        Check { name: "nl_momentum", summary: "tch momentum optimizer == f64 loop of Eq. 33 on a PD quadratic (varying lr, weight decay)", run: momentum },
        Check {
            name: "nl_momentum_as_memory",
            summary: "two-level system, inner memory = argmin <S,g> + ||S - beta S_prev||^2/2lr by a linear solve (Eqs. 12-13, 34) == tch momentum",
            run: momentum_as_memory,
        },
        Check {
            name: "nl_linear_attention_as_memory",
            summary: "linear attention as unit GD steps of the inner argmin -<Mk,v> + ||M - M_t||^2/2 (Eqs. 17-18) == tch linear-attention state and reads",
            run: linear_attention_as_memory,
        },
        Check { name: "nl_delta_momentum", summary: "tch delta momentum == f64 loop of Eqs. 48-49 (consistent form), and != plain momentum", run: delta_momentum },
        Check { name: "nl_muon", summary: "tch Muon (quintic and cubic NS, Adam on vectors) == f64 loop of Eq. 42 / Eq. 52", run: muon },
        Check { name: "nl_m3", summary: "tch M3 == f64 two-loop Algorithm 1 (sum and EMA moments, period 3, partial block); alpha matters", run: m3 },
        Check { name: "nl_dmgd", summary: "tch DMGD (inner grads by autograd) == f64 Eq. 50 loop (inner grads by hand); the deep part matters", run: dmgd },
        Check { name: "nl_dmgd_reduces_to_momentum", summary: "f64 DMGD with an inactive deep part, eta = 1 == tch momentum (Eq. 50 -> Eq. 33)", run: dmgd_reduces_to_momentum },
        Check { name: "nl_backprop_as_memory", summary: "autograd weight gradients == outer products delta x^T of the local surprise signals (Eqs. 8, 29)", run: backprop },
        Check {
            name: "nl_newton_schulz_as_descent",
            summary: "one autograd GD step (zeta = 1/4) on Eq. 44's objective == cubic NS step; 5 descent steps on ||O^T O - I||^2/4 == NS-5",
            run: newton_schulz_as_descent,
        },
        Check { name: "nl_cms", summary: "tch CMS chain (batched, autograd) == f64 token-by-token reference (Eqs. 70-71), periods (1, 3, 5), T = 13", run: cms_chain },
        Check { name: "nl_cms_cadence", summary: "CMS level l changes exactly at tokens i = 0 mod C_l (observed in tch and in the reference)", run: cms_cadence },
        Check { name: "nl_cms_online_stack", summary: "CMS with all periods 1 == online SGD (the sgd optimizer) on the MLP stack; periods >= T == static stack", run: cms_online_stack },
        Check {
            name: "nl_cms_model_chain",
            summary: "the models' CMS (GELU levels with biases, batched, chunks of C_min, autograd) driven by a regression loss == f64 token reference (Eqs. 70-71, 74, 97)",
            run: super::cms_model_checks::chain,
        },
        Check {
            name: "nl_cms_model_static",
            summary: "CMS model with all periods >= T == the same weights with static MLPs (lr 0); one never-updated level == the feed-forward model",
            run: super::cms_model_checks::static_equivalences,
        },
        Check {
            name: "nl_cms_model_cadence",
            summary: "inside the model, level l's fast weights change exactly after chunks ending at multiples of C_l (chained one-chunk calls)",
            run: super::cms_model_checks::cadence,
        },
        Check {
            name: "nl_cms_model_outer_gradient",
            summary: "outer gradient w.r.t. CMS initial states (Eq. 73, f64): second order == central FD of the whole forward; first order == FD with fixed inner increments",
            run: super::cms_model_checks::outer_gradient,
        },
        Check {
            name: "nl_adam_as_memory",
            summary: "Appendix B closed-form optima (element-wise Eqs. 101-102, matrix Eqs. 106-107) == autograd Newton step / ridge lstsq",
            run: adam_as_memory,
        },
        Check { name: "nl_hope_dgd_memory", summary: "tch Hope DGD rule with self-generated values (linear, chunk 1 and 3) == f64 token loop (Eqs. 88, 90, 93)", run: hope_dgd_memory },
        Check { name: "nl_hope_dgd_is_dgd", summary: "one token of Hope's rule (alpha = 0, unit key) == Eq. 56's minimiser by linear solve with eta = theta/(1 - theta)", run: hope_dgd_is_dgd },
        Check {
            name: "nl_hope_rule_linear_is_hope_dgd",
            summary: "kind: hope with linear memories and fixed projections (f64 and tch, C = 1 and 3) == the linear Hope DGD rule (Eqs. 88, 90, 93)",
            run: hope_rule_linear_is_hope_dgd,
        },
        Check {
            name: "nl_hope_layerwise_dgd_is_dgd",
            summary: "one token of kind: hope's MLP memory (alpha = 0; SiLU, GELU) == Eq. 56's minimiser per weight matrix (layer input a, u = -delta from autograd) by linear solve",
            run: hope_layerwise_dgd_is_dgd,
        },
        Check { name: "nl_dgd", summary: "DGD closed form (Sherman-Morrison, Eq. 57 general norm) == batched linear solve of Eq. 56; printed Eq. 57 for unit x", run: dgd },
    ]
}
