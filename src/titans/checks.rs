//! Checks for Titans' linear memory (Eqs. 8–15): tch against the f64 reference (outputs, final state,
//! gradients), the hand-derived gradients against autograd and central finite differences, and the
//! reductions the paper states (η = α = 0 → Eq. 8; α = 0 → Eqs. 9–10; θ = 0 → decay only).

use super::linear_memory::{reference, torch, ReadMode};
use crate::check::{finite_difference, CheckEnv, Measurement};
use crate::tensor::{from_tch, head1, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{Array1, Array2};
use tch::{Kind, Tensor};

/// Sizes of one drawn problem. Odd and unequal on purpose (d_k ≠ d_v).
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

/// Batched random inputs `[B, H, ...]`, already rounded to the dtype under test.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub k: Arr,
    pub v: Arr,
    pub q: Arr,
    pub alpha: Arr,
    pub eta: Arr,
    pub theta: Arr,
    pub m0: Arr,
    pub s0: Arr,
}

impl Drawn {
    /// Unit-norm keys and queries (Titans ℓ2-normalises them, §4.4), Gaussian values, a non-zero initial
    /// memory and surprise, α ∈ [0, 0.3), η ∈ [0, 0.9), θ ∈ [0.05, 0.4): contractive enough to stay bounded
    /// over 100 tokens (2θ‖k‖² ≤ 0.8 < 2 − α).
    pub fn new(seed: u64, c: Case, kind: Kind) -> Self {
        let mut r = Draw::new(seed);
        let (b, h, t) = (c.b, c.h, c.t);
        let d = Self {
            k: r.unit_rows(&[b, h, t, c.d_k]),
            v: r.normal(&[b, h, t, c.d_v], 1.0),
            q: r.unit_rows(&[b, h, t, c.d_k]),
            alpha: r.uniform(&[b, h, t], 0.0, 0.3),
            eta: r.uniform(&[b, h, t], 0.0, 0.9),
            theta: r.uniform(&[b, h, t], 0.05, 0.4),
            m0: r.normal(&[b, h, c.d_v, c.d_k], 0.5),
            s0: r.normal(&[b, h, c.d_v, c.d_k], 0.1),
        };
        d.map(|a| round_to_kind(a, kind))
    }

    fn map(&self, f: impl Fn(&Arr) -> Arr) -> Self {
        Self {
            k: f(&self.k),
            v: f(&self.v),
            q: f(&self.q),
            alpha: f(&self.alpha),
            eta: f(&self.eta),
            theta: f(&self.theta),
            m0: f(&self.m0),
            s0: f(&self.s0),
        }
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.k.shape()[0], self.k.shape()[1])
    }

    pub fn head(&self, b: usize, h: usize) -> reference::Inputs {
        reference::Inputs {
            k: head2(&self.k, b, h),
            v: head2(&self.v, b, h),
            q: head2(&self.q, b, h),
            alpha: head1(&self.alpha, b, h),
            eta: head1(&self.eta, b, h),
            theta: head1(&self.theta, b, h),
            m0: head2(&self.m0, b, h),
            s0: head2(&self.s0, b, h),
        }
    }

    /// The inputs as tch tensors, in the order k, v, q, α, η, θ, M_0, S_0.
    pub fn tensors(&self, env: &CheckEnv, requires_grad: bool) -> Vec<Tensor> {
        self.all().iter().map(|(_, a)| to_tch(a, env.kind, env.device).set_requires_grad(requires_grad)).collect()
    }

    pub fn all(&self) -> [(&'static str, &Arr); 8] {
        [
            ("k", &self.k),
            ("v", &self.v),
            ("q", &self.q),
            ("alpha", &self.alpha),
            ("eta", &self.eta),
            ("theta", &self.theta),
            ("m0", &self.m0),
            ("s0", &self.s0),
        ]
    }
}

fn run_torch(x: &[Tensor], loss_scale: f64, read: ReadMode) -> torch::Outputs {
    torch::forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], loss_scale, read)
}

/// Reference forward of every head, restacked as `[B, H, ...]`: `(y, M_T, S_T)`.
pub fn reference_batched(d: &Drawn, loss_scale: f64, read: ReadMode) -> (Arr, Arr, Arr) {
    let (nb, nh) = d.dims();
    let (mut ys, mut ms, mut ss) = (vec![], vec![], vec![]);
    for b in 0..nb {
        for h in 0..nh {
            let tr = reference::forward(&d.head(b, h), loss_scale, read);
            ms.push(tr.final_memory().clone());
            ss.push(tr.final_surprise().clone());
            ys.push(tr.y);
        }
    }
    (stack_heads(&ys, nb, nh), stack_heads(&ms, nb, nh), stack_heads(&ss, nb, nh))
}

const LENGTHS: [usize; 4] = [1, 7, 64, 100];
const LOSS_SCALE: f64 = 1.0;

/// Eq. 12: the hand-derived inner gradient against tch autograd, tch's closed form and central finite
/// differences of the reference loss.
pub fn l2_inner_gradient(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut r = Draw::new(seed);
        let (d_k, d_v) = (7, 5);
        let loss_scale = r.uniform(&[1], 0.25, 2.0)[0];
        let m = round_to_kind(&r.normal(&[d_v, d_k], 1.0), env.kind);
        let k = round_to_kind(&r.normal(&[d_k], 1.0), env.kind);
        let v = round_to_kind(&r.normal(&[d_v], 1.0), env.kind);
        let (m2, k1, v1) = (to2(&m), to1(&k), to1(&v));
        let hand = reference::l2_grad(m2.view(), k1.view(), v1.view(), loss_scale).into_dyn();
        let (mt, kt, vt) =
            (to_tch(&m, env.kind, env.device), to_tch(&k, env.kind, env.device), to_tch(&v, env.kind, env.device));
        let auto = from_tch(&torch::l2_grad_autograd(&mt, &kt, &vt, loss_scale))?;
        let closed = from_tch(&torch::l2_grad(&mt, &kt, &vt, loss_scale))?;
        let fd =
            finite_difference(&m2, |mm| reference::l2_loss(mm.view(), k1.view(), v1.view(), loss_scale)).into_dyn();
        let tol = tolerance::gradient_vs_reference(env.kind);
        out.push(Measurement::compare(format!("torch autograd vs hand (seed {seed})"), &auto, &hand, tol)?);
        out.push(Measurement::compare(format!("torch closed form vs hand (seed {seed})"), &closed, &hand, tol)?);
        out.push(Measurement::compare(
            format!("finite differences vs hand (seed {seed})"),
            &fd,
            &hand,
            tolerance::FINITE_DIFFERENCE,
        )?);
    }
    Ok(out)
}

/// Eqs. 9–15: tch against the reference on outputs and final states, both read modes, T = 1, 7, 64, 100.
pub fn linear_memory_forward(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (i, &t) in LENGTHS.iter().enumerate() {
            for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
                let d = Drawn::new(seed + i as u64, Case::with_len(t), env.kind);
                let (y_ref, m_ref, s_ref) = reference_batched(&d, LOSS_SCALE, read);
                let o = run_torch(&d.tensors(env, false), LOSS_SCALE, read);
                let tag = format!("T={t}, {}, seed {seed}", read.name());
                out.push(Measurement::compare(format!("y ({tag})"), &from_tch(&o.y)?, &y_ref, tol)?);
                out.push(Measurement::compare(format!("M_T ({tag})"), &from_tch(&o.m_final)?, &m_ref, tol)?);
                out.push(Measurement::compare(format!("S_T ({tag})"), &from_tch(&o.s_final)?, &s_ref, tol)?);
            }
        }
    }
    Ok(out)
}

/// Outer gradients through the whole recurrence: tch autograd against the reference's hand-derived
/// backward pass, for a random projection `L = ⟨R_y, y⟩ + ⟨R_M, M_T⟩ + ⟨R_S, S_T⟩`, with respect to all eight
/// inputs.
pub fn linear_memory_gradients(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::gradient_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (i, &t) in LENGTHS.iter().enumerate() {
            for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
                let case = Case::with_len(t);
                let d = Drawn::new(seed + 100 + i as u64, case, env.kind);
                let mut r = Draw::new(seed ^ 0xBEEF);
                let ry = r.normal(&[case.b, case.h, t, case.d_v], 1.0);
                let rm = r.normal(&[case.b, case.h, case.d_v, case.d_k], 1.0);
                let rs = r.normal(&[case.b, case.h, case.d_v, case.d_k], 1.0);
                // tch side
                let x = d.tensors(env, true);
                let o = run_torch(&x, LOSS_SCALE, read);
                let proj = |a: &Tensor, w: &Arr| (a * to_tch(w, env.kind, env.device)).sum(env.kind);
                let loss = proj(&o.y, &ry) + proj(&o.m_final, &rm) + proj(&o.s_final, &rs);
                let refs: Vec<&Tensor> = x.iter().collect();
                let grads = Tensor::run_backward(&[loss], &refs, false, false);
                // reference side, head by head
                let (nb, nh) = d.dims();
                let mut per_input: Vec<Vec<Arr>> = vec![vec![]; 8];
                for b in 0..nb {
                    for h in 0..nh {
                        let inp = d.head(b, h);
                        let tr = reference::forward(&inp, LOSS_SCALE, read);
                        let g = reference::backward(
                            &inp,
                            &tr,
                            LOSS_SCALE,
                            read,
                            &head2(&ry, b, h),
                            &head2(&rm, b, h),
                            &head2(&rs, b, h),
                        );
                        let gs: [Arr; 8] = [
                            g.k.into_dyn(),
                            g.v.into_dyn(),
                            g.q.into_dyn(),
                            g.alpha.into_dyn(),
                            g.eta.into_dyn(),
                            g.theta.into_dyn(),
                            g.m0.into_dyn(),
                            g.s0.into_dyn(),
                        ];
                        for (j, a) in gs.into_iter().enumerate() {
                            per_input[j].push(a);
                        }
                    }
                }
                for (j, (name, _)) in d.all().iter().enumerate() {
                    let reference = stack_heads(&per_input[j], nb, nh);
                    out.push(Measurement::compare(
                        format!("dL/d{name} (T={t}, {}, seed {seed})", read.name()),
                        &from_tch(&grads[j])?,
                        &reference,
                        tol,
                    )?);
                }
            }
        }
    }
    Ok(out)
}

/// The reference's hand-derived backward pass against central finite differences of the reference's own
/// forward pass (f64 on the host; independent of the device under test).
pub fn linear_memory_backward_fd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
            let case = Case { b: 1, h: 1, t: 9, d_k: 4, d_v: 3 };
            let d = Drawn::new(seed + 7, case, Kind::Double);
            let inp = d.head(0, 0);
            let mut r = Draw::new(seed ^ 0xF00D);
            let ry = to2(&r.normal(&[case.t, case.d_v], 1.0));
            let rm = to2(&r.normal(&[case.d_v, case.d_k], 1.0));
            let rs = to2(&r.normal(&[case.d_v, case.d_k], 1.0));
            let loss = |inp: &reference::Inputs| {
                let tr = reference::forward(inp, LOSS_SCALE, read);
                (&tr.y * &ry).sum() + (tr.final_memory() * &rm).sum() + (tr.final_surprise() * &rs).sum()
            };
            let tr = reference::forward(&inp, LOSS_SCALE, read);
            let g = reference::backward(&inp, &tr, LOSS_SCALE, read, &ry, &rm, &rs);
            let tag = |n: &str| format!("dL/d{n} hand vs FD ({}, seed {seed})", read.name());
            let fd2 = |sel: fn(&mut reference::Inputs) -> &mut Array2<f64>| {
                let base = sel(&mut inp.clone()).clone();
                finite_difference(&base, |x| {
                    let mut p = inp.clone();
                    *sel(&mut p) = x.clone();
                    loss(&p)
                })
                .into_dyn()
            };
            let fd1 = |sel: fn(&mut reference::Inputs) -> &mut Array1<f64>| {
                let base = sel(&mut inp.clone()).clone();
                finite_difference(&base, |x| {
                    let mut p = inp.clone();
                    *sel(&mut p) = x.clone();
                    loss(&p)
                })
                .into_dyn()
            };
            let tol = tolerance::FINITE_DIFFERENCE;
            out.push(Measurement::compare(tag("k"), &fd2(|p| &mut p.k), &g.k.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("v"), &fd2(|p| &mut p.v), &g.v.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("q"), &fd2(|p| &mut p.q), &g.q.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("m0"), &fd2(|p| &mut p.m0), &g.m0.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("s0"), &fd2(|p| &mut p.s0), &g.s0.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("alpha"), &fd1(|p| &mut p.alpha), &g.alpha.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("eta"), &fd1(|p| &mut p.eta), &g.eta.clone().into_dyn(), tol)?);
            out.push(Measurement::compare(tag("theta"), &fd1(|p| &mut p.theta), &g.theta.clone().into_dyn(), tol)?);
        }
    }
    Ok(out)
}

/// Which gates a reduction check pins to zero.
#[derive(Clone, Copy)]
enum Reduction {
    /// η = α = 0 and S_0 = 0: Eq. 8, plain online gradient descent.
    OnlineGradientDescent,
    /// α = 0: Eqs. 9–10, momentum without forgetting.
    MomentumWithoutForgetting,
    /// θ = 0: no learning, only decay of M_0 and of S_0.
    DecayOnly,
}

/// Runs tch's full rule with some gates pinned to zero and compares its outputs with the reduced recurrence
/// written out here on its own, element by element, in f64.
fn reduction(env: &CheckEnv, which: Reduction) -> Result<Vec<Measurement>> {
    let tol = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &t in &[7usize, 63] {
            let case = Case::with_len(t);
            let mut d = Drawn::new(seed + 31, case, env.kind);
            match which {
                Reduction::OnlineGradientDescent => {
                    d.alpha.fill(0.0);
                    d.eta.fill(0.0);
                    d.s0.fill(0.0);
                }
                Reduction::MomentumWithoutForgetting => d.alpha.fill(0.0),
                Reduction::DecayOnly => d.theta.fill(0.0),
            }
            let o = run_torch(&d.tensors(env, false), LOSS_SCALE, ReadMode::AfterWrite);
            let (nb, nh) = d.dims();
            let mut ys = vec![];
            for b in 0..nb {
                for h in 0..nh {
                    ys.push(reduced_outputs(&d.head(b, h), which));
                }
            }
            out.push(Measurement::compare(
                format!("y, T={t}, seed {seed}"),
                &from_tch(&o.y)?,
                &stack_heads(&ys, nb, nh),
                tol,
            )?);
        }
    }
    Ok(out)
}

/// The reduced recurrences, written independently of `reference::step`, with explicit index loops.
fn reduced_outputs(inp: &reference::Inputs, which: Reduction) -> Array2<f64> {
    let (t_len, d_v, d_k) = (inp.k.nrows(), inp.m0.nrows(), inp.m0.ncols());
    let mut m = inp.m0.clone();
    let mut s = inp.s0.clone();
    let mut y = Array2::zeros((t_len, d_v));
    // decay-only closed form: M_t = β_t M_0 + Σ_{j≤t} (β_t/β_j) P_j S_0 with β_t = Π(1−α), P_j = Π η
    let mut beta = 1.0;
    let mut weighted_p = 0.0; // Σ_{j≤t} (β_t/β_j) P_j
    let mut p = 1.0;
    for t in 0..t_len {
        match which {
            Reduction::OnlineGradientDescent => {
                // Eq. 8: M_t = M_{t−1} − θ_t · 2(M_{t−1}k_t − v_t)k_tᵀ
                let mut e = vec![0.0; d_v];
                for i in 0..d_v {
                    e[i] = (0..d_k).map(|j| m[[i, j]] * inp.k[[t, j]]).sum::<f64>() - inp.v[[t, i]];
                }
                for i in 0..d_v {
                    for j in 0..d_k {
                        m[[i, j]] -= inp.theta[t] * 2.0 * LOSS_SCALE * e[i] * inp.k[[t, j]];
                    }
                }
            }
            Reduction::MomentumWithoutForgetting => {
                // Eqs. 9–10: S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t−1}), M_t = M_{t−1} + S_t
                let mut e = vec![0.0; d_v];
                for i in 0..d_v {
                    e[i] = (0..d_k).map(|j| m[[i, j]] * inp.k[[t, j]]).sum::<f64>() - inp.v[[t, i]];
                }
                for i in 0..d_v {
                    for j in 0..d_k {
                        s[[i, j]] = inp.eta[t] * s[[i, j]] - inp.theta[t] * 2.0 * LOSS_SCALE * e[i] * inp.k[[t, j]];
                        m[[i, j]] += s[[i, j]];
                    }
                }
            }
            Reduction::DecayOnly => {
                beta *= 1.0 - inp.alpha[t];
                p *= inp.eta[t];
                weighted_p = weighted_p * (1.0 - inp.alpha[t]) + p;
                for i in 0..d_v {
                    for j in 0..d_k {
                        m[[i, j]] = beta * inp.m0[[i, j]] + weighted_p * inp.s0[[i, j]];
                    }
                }
            }
        }
        for i in 0..d_v {
            y[[t, i]] = (0..d_k).map(|j| m[[i, j]] * inp.q[[t, j]]).sum();
        }
    }
    y
}

pub fn online_gradient_descent(env: &CheckEnv) -> Result<Vec<Measurement>> {
    reduction(env, Reduction::OnlineGradientDescent)
}
pub fn momentum_without_forgetting(env: &CheckEnv) -> Result<Vec<Measurement>> {
    reduction(env, Reduction::MomentumWithoutForgetting)
}
pub fn decay_only(env: &CheckEnv) -> Result<Vec<Measurement>> {
    reduction(env, Reduction::DecayOnly)
}

fn to2(a: &Arr) -> Array2<f64> {
    a.clone().into_dimensionality().expect("rank 2")
}
fn to1(a: &Arr) -> Array1<f64> {
    a.clone().into_dimensionality().expect("rank 1")
}
