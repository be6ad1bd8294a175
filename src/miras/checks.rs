//! Checks for MIRAS: shared drawing helpers and the attentional-bias gradients (§4–§5.1, Eqs. 10–17):
//! the hand-derived gradient (reference) against tch autograd of the loss, tch's closed form and central
//! finite differences of the reference loss. Retention checks are in [`super::checks_retention`], the
//! models and presets in [`super::checks_models`].

use super::bias::{reference as bias_ref, torch as bias_torch, Bias};
use super::framework::Config;
use super::update::{reference as upd_ref, torch as upd_torch};
use crate::check::{finite_difference, CheckEnv, Measurement};
use crate::tensor::{from_tch, head1, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{Array1, Array2, Ix1, Ix2};
use tch::Tensor;

/// Sizes of one drawn problem: odd, d_k ≠ d_v.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub b: usize,
    pub h: usize,
    pub t: usize,
    pub d_k: usize,
    pub d_v: usize,
}

impl Case {
    pub fn with_len(t: usize) -> Self {
        Self { b: 2, h: 3, t, d_k: 7, d_v: 5 }
    }
}

/// Ranges of the drawn gates and the scale of the initial state.
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    pub alpha: (f64, f64),
    pub eta: (f64, f64),
    pub delta: (f64, f64),
    pub mu: (f64, f64),
    /// initial state: Gaussian with this scale, or uniform on (lo, hi) when `m0_uniform`
    pub m0: (f64, f64),
    pub m0_uniform: bool,
    pub v_scale: f64,
}

impl Default for Ranges {
    fn default() -> Self {
        Self {
            alpha: (0.8, 1.0),
            eta: (0.05, 0.3),
            delta: (0.3, 1.5),
            mu: (0.0, 0.9),
            m0: (0.0, 0.5),
            m0_uniform: false,
            v_scale: 1.0,
        }
    }
}

/// Batched inputs `[B, H, ...]` of the generic recurrence, rounded to the dtype under test.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub k: Arr,
    pub v: Arr,
    pub q: Arr,
    pub alpha: Arr,
    pub eta: Arr,
    pub delta: Arr,
    pub mu: Arr,
    pub m0: Arr,
}

impl Drawn {
    pub fn new(seed: u64, c: Case, r: Ranges, kind: tch::Kind) -> Self {
        let mut d = Draw::new(seed);
        let (b, h, t) = (c.b, c.h, c.t);
        let m0 = if r.m0_uniform {
            d.uniform(&[b, h, c.d_v, c.d_k], r.m0.0, r.m0.1)
        } else {
            d.normal(&[b, h, c.d_v, c.d_k], r.m0.1)
        };
        let x = Self {
            k: d.unit_rows(&[b, h, t, c.d_k]),
            v: d.normal(&[b, h, t, c.d_v], r.v_scale),
            q: d.unit_rows(&[b, h, t, c.d_k]),
            alpha: d.uniform(&[b, h, t], r.alpha.0, r.alpha.1),
            eta: d.uniform(&[b, h, t], r.eta.0, r.eta.1),
            delta: d.uniform(&[b, h, t], r.delta.0, r.delta.1),
            mu: d.uniform(&[b, h, t], r.mu.0, r.mu.1),
            m0,
        };
        x.map(|a| round_to_kind(a, kind))
    }

    pub fn map(&self, f: impl Fn(&Arr) -> Arr) -> Self {
        Self {
            k: f(&self.k),
            v: f(&self.v),
            q: f(&self.q),
            alpha: f(&self.alpha),
            eta: f(&self.eta),
            delta: f(&self.delta),
            mu: f(&self.mu),
            m0: f(&self.m0),
        }
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.k.shape()[0], self.k.shape()[1])
    }

    pub fn head(&self, b: usize, h: usize) -> upd_ref::Inputs {
        upd_ref::Inputs {
            k: head2(&self.k, b, h),
            v: head2(&self.v, b, h),
            q: head2(&self.q, b, h),
            alpha: head1(&self.alpha, b, h),
            eta: head1(&self.eta, b, h),
            delta: head1(&self.delta, b, h),
            mu: head1(&self.mu, b, h),
            m0: head2(&self.m0, b, h),
        }
    }

    /// k, v, q, α, η, δ, μ, m0 as tensors.
    pub fn tensors(&self, env: &CheckEnv) -> Vec<Tensor> {
        [&self.k, &self.v, &self.q, &self.alpha, &self.eta, &self.delta, &self.mu, &self.m0]
            .iter()
            .map(|a| to_tch(a, env.kind, env.device))
            .collect()
    }
}

/// Per-head outputs `(y, W_T, state_T, S_T)` restacked as `[B, H, ...]`.
pub fn batched(d: &Drawn, f: impl Fn(&upd_ref::Inputs) -> upd_ref::Outputs) -> [Arr; 4] {
    let (nb, nh) = d.dims();
    let (mut y, mut w, mut st, mut s) = (vec![], vec![], vec![], vec![]);
    for b in 0..nb {
        for h in 0..nh {
            let o = f(&d.head(b, h));
            y.push(o.y);
            w.push(o.w);
            st.push(o.state);
            s.push(o.s);
        }
    }
    [stack_heads(&y, nb, nh), stack_heads(&w, nb, nh), stack_heads(&st, nb, nh), stack_heads(&s, nb, nh)]
}

/// The generic recurrence through tch.
pub fn torch_forward(cfg: &Config, d: &Drawn, env: &CheckEnv) -> Result<[Arr; 4]> {
    let x = d.tensors(env);
    let o = tch::no_grad(|| upd_torch::forward(cfg, &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7]));
    Ok([from_tch(&o.y)?, from_tch(&o.w)?, from_tch(&o.state)?, from_tch(&o.s)?])
}

/// Compares the four outputs of two runs.
pub fn compare4(out: &mut Vec<Measurement>, tag: &str, ours: &[Arr; 4], reference: &[Arr; 4], tol: f64) -> Result<()> {
    for (i, name) in ["y", "W_T", "state_T", "S_T"].iter().enumerate() {
        out.push(Measurement::compare(format!("{name} ({tag})"), &ours[i], &reference[i], tol)?);
    }
    Ok(())
}

pub fn to2(a: &Arr) -> Array2<f64> {
    a.clone().into_dimensionality::<Ix2>().unwrap()
}
pub fn to1(a: &Arr) -> Array1<f64> {
    a.clone().into_dimensionality::<Ix1>().unwrap()
}

/// A named rule that picks the threshold δ from the drawn error `e`.
type DeltaRule = (&'static str, fn(&Array1<f64>) -> f64);

/// One bias at one threshold: hand vs autograd vs closed form vs FD. `delta_of` picks δ from the drawn error.
fn bias_case(
    env: &CheckEnv,
    bias: Bias,
    seed: u64,
    label: &str,
    delta_of: impl Fn(&Array1<f64>) -> f64,
) -> Result<Vec<Measurement>> {
    let mut r = Draw::new(seed);
    let (d_k, d_v) = (7, 5);
    let w = round_to_kind(&r.normal(&[d_v, d_k], 1.0), env.kind);
    let k = round_to_kind(&r.normal(&[d_k], 1.0), env.kind);
    let v = round_to_kind(&r.normal(&[d_v], 1.0), env.kind);
    let (w2, k1, v1) = (to2(&w), to1(&k), to1(&v));
    let e = w2.dot(&k1) - &v1;
    let delta = round_to_kind(&Arr::from_elem(ndarray::IxDyn(&[]), delta_of(&e)), env.kind)[[]];
    let inside = e.iter().filter(|x| x.abs() <= delta).count();
    let norm = e.dot(&e).sqrt();
    let hand = bias_ref::grad(bias, w2.view(), k1.view(), v1.view(), delta).into_dyn();
    let (wt, kt, vt) =
        (to_tch(&w, env.kind, env.device), to_tch(&k, env.kind, env.device), to_tch(&v, env.kind, env.device));
    let dt = Tensor::from(delta).to_kind(env.kind).to_device(env.device);
    let auto = from_tch(&bias_torch::grad_autograd(bias, &wt, &kt, &vt, &dt))?;
    let closed = from_tch(&bias_torch::grad(bias, &wt, &kt, &vt, &dt))?;
    let loss_t = from_tch(&bias_torch::loss(bias, &wt, &kt, &vt, &dt))?;
    let loss_r = Arr::from_elem(ndarray::IxDyn(&[]), bias_ref::loss(bias, w2.view(), k1.view(), v1.view(), delta));
    let fd = finite_difference(&w2, |m| bias_ref::loss(bias, m.view(), k1.view(), v1.view(), delta)).into_dyn();
    let tag = format!("{label}, δ = {delta:.3}, ‖e‖ = {norm:.3}, {inside}/{d_v} coords with |e_j| ≤ δ, seed {seed}");
    Ok(vec![
        Measurement::compare(
            format!("loss: torch vs reference ({tag})"),
            &loss_t,
            &loss_r,
            tolerance::torch_vs_reference(env.kind),
        )?,
        Measurement::compare(
            format!("torch autograd vs hand ({tag})"),
            &auto,
            &hand,
            tolerance::gradient_vs_reference(env.kind),
        )?,
        Measurement::compare(
            format!("torch closed form vs hand ({tag})"),
            &closed,
            &hand,
            tolerance::gradient_vs_reference(env.kind),
        )?,
        Measurement::compare(format!("finite differences vs hand ({tag})"), &fd, &hand, tolerance::FINITE_DIFFERENCE)?,
    ])
}

fn bias_check(env: &CheckEnv, bias: Bias, label: &str, deltas: &[DeltaRule]) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for (i, (dl, f)) in deltas.iter().enumerate() {
            out.extend(bias_case(env, bias, seed + 31 * i as u64, &format!("{label}, {dl}"), f)?);
        }
    }
    Ok(out)
}

const NO_DELTA: &[DeltaRule] = &[("no threshold", |_| 0.0)];

fn norm(e: &Array1<f64>) -> f64 {
    e.dot(e).sqrt()
}

/// §4 dot-product bias `−2c⟨Wk, v⟩`.
pub fn bias_dot_product(env: &CheckEnv) -> Result<Vec<Measurement>> {
    bias_check(env, Bias::DotProduct { scale: 0.7 }, "dot product c = 0.7", NO_DELTA)
}

/// ℓ2 bias `c‖Wk − v‖²`.
pub fn bias_l2(env: &CheckEnv) -> Result<Vec<Measurement>> {
    bias_check(env, Bias::L2 { scale: 0.6 }, "l2 c = 0.6", NO_DELTA)
}

/// Eqs. 10–11, 25: ℓ_p at p = 1.5, 2, 3, 4.
pub fn bias_lp(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for p in [1.5, 2.0, 3.0, 4.0] {
        out.extend(bias_check(env, Bias::Lp { p }, &format!("lp p = {p}"), NO_DELTA)?);
    }
    Ok(out)
}

/// Eq. 12: ℓ1.
pub fn bias_l1(env: &CheckEnv) -> Result<Vec<Measurement>> {
    bias_check(env, Bias::L1, "l1", NO_DELTA)
}

/// Eqs. 13–14: coordinate-wise Huber, all inside, mixed, all outside.
pub fn bias_huber(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let deltas: &[DeltaRule] = &[
        ("all inside", |e| e.iter().fold(0.0f64, |m, x| m.max(x.abs())) * 1.5),
        ("mixed", |e| {
            let mut a: Vec<f64> = e.iter().map(|x| x.abs()).collect();
            a.sort_by(|x, y| x.partial_cmp(y).unwrap());
            0.5 * (a[1] + a[2])
        }),
        ("all outside", |e| e.iter().fold(f64::INFINITY, |m, x| m.min(x.abs())) * 0.5),
    ];
    bias_check(env, Bias::Huber, "huber", deltas)
}

/// Eq. 15: Huber of the norm, both sides.
pub fn bias_huber_norm(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let deltas: &[DeltaRule] = &[("inside", |e| 1.5 * norm(e)), ("outside", |e| 0.5 * norm(e))];
    bias_check(env, Bias::HuberNorm, "huber-norm", deltas)
}

/// Eq. 16: Yaad's ℓ2/ℓ1 switch, both sides.
pub fn bias_l2_l1_switch(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let deltas: &[DeltaRule] = &[("l2 side", |e| 1.5 * norm(e)), ("l1 side", |e| 0.5 * norm(e))];
    bias_check(env, Bias::L2L1Switch, "l2-l1-switch", deltas)
}

/// Eq. 17: robust to value shifts; plus the worst-case shift `δv* = −Δ e/‖e‖` attains the loss and random
/// feasible shifts do not exceed it.
pub fn bias_value_shift(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let deltas: &[DeltaRule] = &[("Δ = 0.3‖e‖", |e| 0.3 * norm(e)), ("Δ = 2‖e‖", |e| 2.0 * norm(e))];
    let mut out = bias_check(env, Bias::ValueShift, "value-shift", deltas)?;
    for &seed in &env.seeds {
        let mut r = Draw::new(seed + 7);
        let w = to2(&r.normal(&[5, 7], 1.0));
        let k = to1(&r.normal(&[7], 1.0));
        let v = to1(&r.normal(&[5], 1.0));
        let dd = r.uniform(&[1], 0.1, 2.0)[0];
        let e = w.dot(&k) - &v;
        let l = bias_ref::loss(Bias::ValueShift, w.view(), k.view(), v.view(), dd);
        let shifted = |dv: &Array1<f64>| {
            let r = &e - dv;
            0.5 * r.dot(&r)
        };
        let worst = &e * (-dd / norm(&e));
        let at_worst = Arr::from_elem(ndarray::IxDyn(&[]), shifted(&worst));
        let closed = Arr::from_elem(ndarray::IxDyn(&[]), l);
        out.push(Measurement::compare(
            format!("½‖e − δv*‖² vs closed-form loss (seed {seed})"),
            &at_worst,
            &closed,
            tolerance::ALGEBRAIC_F64,
        )?);
        let mut excess = 0.0f64;
        for _ in 0..200 {
            let u = to1(&r.unit_rows(&[5]));
            let rad = r.uniform(&[1], 0.0, 1.0)[0] * dd;
            excess = excess.max(shifted(&(&u * rad)) - l);
        }
        let ex = Arr::from_elem(ndarray::IxDyn(&[]), excess.max(0.0));
        out.push(Measurement::compare(
            format!("max(0, max over 200 feasible shifts − loss) (seed {seed})"),
            &ex,
            &Arr::zeros(ndarray::IxDyn(&[])),
            tolerance::ALGEBRAIC_F64,
        )?);
    }
    Ok(out)
}

/// Remark 5: the smoothed ℓ_p step. Hand ψ kᵀ vs tch closed form vs tch autograd of the surrogate loss, and the
/// limit κ → ∞, ε → 0 against the exact ℓ_p gradient (there is no loss, so no finite differences).
pub fn bias_lp_smooth(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for p in [1.5, 3.0] {
            let mut r = Draw::new(seed + 3);
            let w = round_to_kind(&r.normal(&[5, 7], 1.0), env.kind);
            let k = round_to_kind(&r.normal(&[7], 1.0), env.kind);
            let v = round_to_kind(&r.normal(&[5], 1.0), env.kind);
            let (w2, k1, v1) = (to2(&w), to1(&k), to1(&v));
            let t = |a: &Arr| to_tch(a, env.kind, env.device);
            let dt = Tensor::from(0.0).to_kind(env.kind).to_device(env.device);
            for (kappa, eps) in [(3.0, 1e-6), (10.0, 0.05)] {
                let bias = Bias::LpSmooth { p, kappa, eps };
                let hand = bias_ref::grad(bias, w2.view(), k1.view(), v1.view(), 0.0).into_dyn();
                let closed = from_tch(&bias_torch::grad(bias, &t(&w), &t(&k), &t(&v), &dt))?;
                let auto = from_tch(&bias_torch::grad_autograd(bias, &t(&w), &t(&k), &t(&v), &dt))?;
                let tag = format!("p = {p}, κ = {kappa}, ε = {eps}, seed {seed}");
                out.push(Measurement::compare(
                    format!("torch closed form vs hand ({tag})"),
                    &closed,
                    &hand,
                    tolerance::gradient_vs_reference(env.kind),
                )?);
                out.push(Measurement::compare(
                    format!("torch autograd of ⟨sg(ψ), e⟩ vs hand ({tag})"),
                    &auto,
                    &hand,
                    tolerance::gradient_vs_reference(env.kind),
                )?);
            }
            let limit =
                bias_ref::grad(Bias::LpSmooth { p, kappa: 1e9, eps: 1e-300 }, w2.view(), k1.view(), v1.view(), 0.0)
                    .into_dyn();
            let exact = bias_ref::grad(Bias::Lp { p }, w2.view(), k1.view(), v1.view(), 0.0).into_dyn();
            out.push(Measurement::compare(
                format!("κ = 1e9, ε = 1e-300 vs exact ℓ_p gradient (p = {p}, seed {seed})"),
                &limit,
                &exact,
                tolerance::ALGEBRAIC_F64,
            )?);
        }
    }
    Ok(out)
}
