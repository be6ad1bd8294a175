//! Checks for the deep (MLP) memory: the hand-written inner gradient against autograd and central finite
//! differences (L_M = 1, 2, 3 and a residual memory); the whole recurrence, tch against the f64 reference
//! (outputs, final weights, final momentum); `L_M = 1` against the linear memory; and outer gradients through
//! the recurrence (second order: they differentiate the inner gradient) against central finite differences of
//! the f64 reference.

use super::checks::{Case, Drawn};
use super::linear_memory;
use super::mlp_memory::{reference, torch, Activation, MlpConfig, ReadMode};
use crate::check::{finite_difference, CheckEnv, Measurement};
use crate::tensor::{from_tch, head1, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::Array2;
use tch::{Kind, Tensor};

pub(crate) const LOSS_SCALE: f64 = 1.0;

/// Drawn inputs of an MLP-memory problem: the gates, keys, values and queries of [`Drawn`] with α scaled to
/// [0, 0.03) (W = 0 is a fixed point of an MLP memory without biases — SiLU(0) = 0 kills every gradient — and
/// strong forgetting drives the weights there within 100 tokens, which would make the comparisons trivial), θ
/// scaled to [0.0125, 0.1) (a contractive, non-chaotic trajectory, so that f32 rounding is not amplified), per-layer weights `N(0, 1.2²/cols)` and surprise `N(0, 0.1²)`.
#[derive(Debug, Clone)]
pub struct MlpDrawn {
    pub base: Drawn,
    pub cfg: MlpConfig,
    pub m0: Vec<Arr>,
    pub s0: Vec<Arr>,
}

impl MlpDrawn {
    pub fn new(seed: u64, c: Case, cfg: MlpConfig, kind: Kind) -> Self {
        let mut base = Drawn::new(seed, c, kind);
        base.theta = round_to_kind(&base.theta.mapv(|x| x * 0.25), kind);
        base.alpha = round_to_kind(&base.alpha.mapv(|x| x * 0.1), kind);
        let mut r = Draw::new(seed ^ 0x5EED);
        let (mut m0, mut s0) = (vec![], vec![]);
        for (rows, cols) in cfg.shapes(c.d_k, c.d_v) {
            m0.push(round_to_kind(&r.normal(&[c.b, c.h, rows, cols], 1.2 / (cols as f64).sqrt()), kind));
            s0.push(round_to_kind(&r.normal(&[c.b, c.h, rows, cols], 0.1), kind));
        }
        Self { base, cfg, m0, s0 }
    }

    pub fn head(&self, b: usize, h: usize) -> reference::Inputs {
        let d = &self.base;
        reference::Inputs {
            k: head2(&d.k, b, h),
            v: head2(&d.v, b, h),
            q: head2(&d.q, b, h),
            alpha: head1(&d.alpha, b, h),
            eta: head1(&d.eta, b, h),
            theta: head1(&d.theta, b, h),
            m0: self.m0.iter().map(|a| head2(a, b, h)).collect(),
            s0: self.s0.iter().map(|a| head2(a, b, h)).collect(),
        }
    }

    /// Every input array in the order k, v, q, α, η, θ, M_0 layers, S_0 layers, with names.
    pub fn all(&self) -> Vec<(String, &Arr)> {
        let d = &self.base;
        let mut v: Vec<(String, &Arr)> = vec![
            ("k".into(), &d.k),
            ("v".into(), &d.v),
            ("q".into(), &d.q),
            ("alpha".into(), &d.alpha),
            ("eta".into(), &d.eta),
            ("theta".into(), &d.theta),
        ];
        for (l, a) in self.m0.iter().enumerate() {
            v.push((format!("W{}_0", l + 1), a));
        }
        for (l, a) in self.s0.iter().enumerate() {
            v.push((format!("S{}_0", l + 1), a));
        }
        v
    }

    /// A copy with the `i`-th array of [`Self::all`] replaced.
    pub fn with(&self, i: usize, x: &Arr) -> Self {
        let mut d = self.clone();
        let n_l = self.m0.len();
        match i {
            0 => d.base.k = x.clone(),
            1 => d.base.v = x.clone(),
            2 => d.base.q = x.clone(),
            3 => d.base.alpha = x.clone(),
            4 => d.base.eta = x.clone(),
            5 => d.base.theta = x.clone(),
            j if j < 6 + n_l => d.m0[j - 6] = x.clone(),
            j => d.s0[j - 6 - n_l] = x.clone(),
        }
        d
    }

    /// `(k, v, q, α, η, θ)`, `M_0` layers, `S_0` layers as tch tensors.
    pub fn tensors(&self, env: &CheckEnv, requires_grad: bool) -> (Vec<Tensor>, Vec<Tensor>, Vec<Tensor>) {
        let t = |a: &Arr| to_tch(a, env.kind, env.device).set_requires_grad(requires_grad);
        let d = &self.base;
        (
            [&d.k, &d.v, &d.q, &d.alpha, &d.eta, &d.theta].iter().map(|a| t(a)).collect(),
            self.m0.iter().map(t).collect(),
            self.s0.iter().map(t).collect(),
        )
    }
}

/// Runs a per-head reference over every `(b, h)` and restacks `(y, M_T layers, S_T layers)` as `[B, H, ...]`.
pub fn reference_batched(
    d: &MlpDrawn,
    f: impl Fn(&reference::Inputs) -> reference::Trace,
) -> (Arr, Vec<Arr>, Vec<Arr>) {
    let (nb, nh) = d.base.dims();
    let n_l = d.m0.len();
    let (mut ys, mut ms, mut ss) = (vec![], vec![vec![]; n_l], vec![vec![]; n_l]);
    for b in 0..nb {
        for h in 0..nh {
            let tr = f(&d.head(b, h));
            ys.push(tr.y);
            for l in 0..n_l {
                ms[l].push(tr.m_final[l].clone());
                ss[l].push(tr.s_final[l].clone());
            }
        }
    }
    let stack = |v: &Vec<Array2<f64>>| stack_heads(v, nb, nh);
    (stack_heads(&ys, nb, nh), ms.iter().map(stack).collect(), ss.iter().map(stack).collect())
}

/// Compares `(y, M_T, S_T)` of a tch run with a reference run, layer by layer.
pub fn compare_outputs(
    tag: &str,
    o: &torch::Outputs,
    r: &(Arr, Vec<Arr>, Vec<Arr>),
    tol: f64,
) -> Result<Vec<Measurement>> {
    let mut out = vec![Measurement::compare(format!("y ({tag})"), &from_tch(&o.y)?, &r.0, tol)?];
    for l in 0..r.1.len() {
        out.push(Measurement::compare(format!("W{}_T ({tag})", l + 1), &from_tch(&o.m_final[l])?, &r.1[l], tol)?);
        out.push(Measurement::compare(format!("S{}_T ({tag})", l + 1), &from_tch(&o.s_final[l])?, &r.2[l], tol)?);
    }
    Ok(out)
}

/// The memory shapes the checks use: L_M = 1, 2, 3 with an odd hidden width.
pub fn configs() -> Vec<MlpConfig> {
    vec![MlpConfig::new(1, 6), MlpConfig::new(2, 6), MlpConfig::new(3, 6)]
}

/// Eq. 12 for the MLP memory: hand-written backprop vs tch autograd vs central finite differences, for
/// L_M = 1, 2, 3, a residual 2-layer memory, a deep linear (identity-activation) memory and an exact-GELU memory; and L_M = 1 vs the
/// linear memory's closed-form gradient.
pub fn mlp_inner_gradient(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let mut cases: Vec<(MlpConfig, usize, usize)> = configs().into_iter().map(|c| (c, 7, 5)).collect();
    cases.push((MlpConfig { residual: true, ..MlpConfig::new(2, 6) }, 5, 5));
    cases.push((MlpConfig { activation: Activation::Identity, ..MlpConfig::new(3, 4) }, 7, 5));
    cases.push((MlpConfig { activation: Activation::Gelu, ..MlpConfig::new(2, 6) }, 7, 5));
    for &seed in &env.seeds {
        for (ci, &(cfg, d_k, d_v)) in cases.iter().enumerate() {
            let case = Case { b: 1, h: 1, t: 1, d_k, d_v };
            let d = MlpDrawn::new(seed + 11 * ci as u64, case, cfg, env.kind);
            let mut r = Draw::new(seed ^ 0xAB);
            let loss_scale = r.uniform(&[1], 0.25, 2.0)[0];
            let inp = d.head(0, 0);
            // a general (non-unit) key for the gradient check
            let k = round_to_kind(&r.normal(&[d_k], 1.0), env.kind);
            let k1 = k.clone().into_dimensionality::<ndarray::Ix1>()?;
            let v1 = inp.v.row(0).to_owned();
            let hand = reference::inner_grad(&inp.m0, &cfg, k1.view(), v1.view(), loss_scale);
            let (x, m0, _) = d.tensors(env, false);
            let kt = to_tch(&k, env.kind, env.device).reshape([1, 1, d_k as i64]);
            let auto = torch::inner_grad(&m0, &cfg, &kt, &x[1].select(2, 0), loss_scale);
            let tag = format!(
                "L_M={}, {}{}, seed {seed}",
                cfg.layers,
                cfg.activation.name(),
                if cfg.residual { ", residual" } else { "" }
            );
            for l in 0..cfg.layers {
                let hand_l = hand[l].clone().into_dyn();
                let auto_l = from_tch(&auto[l].squeeze_dim(0).squeeze_dim(0))?;
                out.push(Measurement::compare(
                    format!("dW{}: autograd vs hand ({tag})", l + 1),
                    &auto_l,
                    &hand_l,
                    tolerance::gradient_vs_reference(env.kind),
                )?);
                let fd = finite_difference(&inp.m0[l], |w| {
                    let mut p = inp.m0.clone();
                    p[l] = w.clone();
                    reference::inner_loss(&p, &cfg, k1.view(), v1.view(), loss_scale)
                });
                out.push(Measurement::compare(
                    format!("dW{}: finite differences vs hand ({tag})", l + 1),
                    &fd.into_dyn(),
                    &hand_l,
                    tolerance::FINITE_DIFFERENCE,
                )?);
            }
            if cfg.layers == 1 && !cfg.residual {
                let lin = linear_memory::reference::l2_grad(inp.m0[0].view(), k1.view(), v1.view(), loss_scale);
                out.push(Measurement::compare(
                    format!("L_M=1 hand backprop vs linear memory 2c(Mk−v)kᵀ (seed {seed})"),
                    &hand[0].clone().into_dyn(),
                    &lin.into_dyn(),
                    tolerance::ALGEBRAIC_F64,
                )?);
            }
        }
    }
    Ok(out)
}

const LENGTHS: [usize; 4] = [1, 7, 63, 100];

/// The whole MLP recurrence (Eqs. 12–15 on every layer): tch (autograd inner gradients) vs the f64 reference
/// (hand backprop), outputs, final weights and final momentum; L_M = 1 also against the linear memory.
pub fn mlp_memory_forward(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for cfg in configs() {
            for (i, &t) in LENGTHS.iter().enumerate() {
                let reads: &[ReadMode] =
                    if t == 63 { &[ReadMode::AfterWrite, ReadMode::BeforeWrite] } else { &[ReadMode::AfterWrite] };
                for &read in reads {
                    let d = MlpDrawn::new(seed + 40 + i as u64, Case::with_len(t), cfg, env.kind);
                    let r = reference_batched(&d, |inp| reference::forward(inp, &cfg, LOSS_SCALE, read));
                    let (x, m0, s0) = d.tensors(env, false);
                    let o = torch::forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &m0, &s0, &cfg, LOSS_SCALE, read);
                    let tag = format!("L_M={}, T={t}, {}, seed {seed}", cfg.layers, read.name());
                    out.extend(compare_outputs(&tag, &o, &r, tol)?);
                    if cfg.layers == 1 {
                        // L_M = 1 is the linear memory: the linear reference on the same inputs
                        let mut lin = d.base.clone();
                        lin.m0 = d.m0[0].clone();
                        lin.s0 = d.s0[0].clone();
                        let (y_lin, m_lin, _) = super::checks::reference_batched(&lin, LOSS_SCALE, read);
                        out.push(Measurement::compare(
                            format!("L_M=1 y vs linear memory ({tag})"),
                            &from_tch(&o.y)?,
                            &y_lin,
                            tol,
                        )?);
                        out.push(Measurement::compare(
                            format!("L_M=1 W1_T vs linear memory M_T ({tag})"),
                            &from_tch(&o.m_final[0])?,
                            &m_lin,
                            tol,
                        )?);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A random projection `L = ⟨R_y, y⟩ + Σ_l ⟨R_{W,l}, W_T⟩ + ⟨R_{S,l}, S_T⟩` of a run's outputs.
pub struct Projection {
    pub ry: Arr,
    pub rm: Vec<Arr>,
    pub rs: Vec<Arr>,
}

impl Projection {
    pub fn draw(seed: u64, d: &MlpDrawn) -> Self {
        let mut r = Draw::new(seed);
        let s = d.base.v.shape().to_vec();
        Self {
            ry: r.normal(&s, 1.0),
            rm: d.m0.iter().map(|a| r.normal(a.shape(), 1.0)).collect(),
            rs: d.s0.iter().map(|a| r.normal(a.shape(), 1.0)).collect(),
        }
    }
    /// The projection of reference outputs (f64).
    pub fn of_reference(&self, r: &(Arr, Vec<Arr>, Vec<Arr>)) -> f64 {
        let dot = |a: &Arr, b: &Arr| a.iter().zip(b.iter()).map(|(x, y)| x * y).sum::<f64>();
        dot(&r.0, &self.ry)
            + self.rm.iter().zip(&r.1).map(|(a, b)| dot(a, b)).sum::<f64>()
            + self.rs.iter().zip(&r.2).map(|(a, b)| dot(a, b)).sum::<f64>()
    }
    /// The projection of tch outputs (a differentiable scalar).
    pub fn of_torch(&self, o: &torch::Outputs, env: &CheckEnv) -> Tensor {
        let p = |a: &Tensor, w: &Arr| (a * to_tch(w, env.kind, env.device)).sum(env.kind);
        let mut loss = p(&o.y, &self.ry);
        for l in 0..self.rm.len() {
            loss = loss + p(&o.m_final[l], &self.rm[l]) + p(&o.s_final[l], &self.rs[l]);
        }
        loss
    }
}

/// Outer gradients of a projection of a run, w.r.t. every input: tch autograd (through autograd's own
/// inner gradient, `create_graph`) vs central finite differences of the f64 reference run `reference_run`.
pub fn outer_gradients_vs_fd(
    env: &CheckEnv,
    tag: &str,
    d: &MlpDrawn,
    proj: &Projection,
    torch_run: impl Fn(&[Tensor], &[Tensor], &[Tensor]) -> torch::Outputs,
    reference_run: impl Fn(&MlpDrawn) -> (Arr, Vec<Arr>, Vec<Arr>),
) -> Result<Vec<Measurement>> {
    let (x, m0, s0) = d.tensors(env, true);
    let o = torch_run(&x, &m0, &s0);
    let loss = proj.of_torch(&o, env);
    let inputs: Vec<&Tensor> = x.iter().chain(m0.iter()).chain(s0.iter()).collect();
    let grads = Tensor::run_backward(&[loss], &inputs, false, false);
    let tol = tolerance::FINITE_DIFFERENCE.max(tolerance::gradient_vs_reference(env.kind));
    let mut out = vec![];
    for (i, (name, a)) in d.all().iter().enumerate() {
        let fd = finite_difference(*a, |xi| proj.of_reference(&reference_run(&d.with(i, xi))));
        out.push(Measurement::compare(
            format!("dL/d{name}: autograd vs FD of reference ({tag})"),
            &from_tch(&grads[i])?,
            &fd,
            tol,
        )?);
    }
    Ok(out)
}

/// Outer gradients through the sequential MLP recurrence (L_M = 2, 3; both read modes).
pub fn mlp_memory_gradients(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for cfg in [MlpConfig::new(2, 5), MlpConfig::new(3, 3)] {
            for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
                let case = Case { b: 1, h: 2, t: 6, d_k: 4, d_v: 3 };
                let d = MlpDrawn::new(seed + 77, case, cfg, env.kind);
                let proj = Projection::draw(seed ^ 0xD1FF, &d);
                let tag = format!("L_M={}, T=6, {}, seed {seed}", cfg.layers, read.name());
                out.extend(outer_gradients_vs_fd(
                    env,
                    &tag,
                    &d,
                    &proj,
                    |x, m0, s0| {
                        torch::forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], m0, s0, &cfg, LOSS_SCALE, read)
                    },
                    |dd| reference_batched(dd, |inp| reference::forward(inp, &cfg, LOSS_SCALE, read)),
                )?);
            }
        }
    }
    Ok(out)
}
