//! Preconditioned optimizers of Nested Learning v1 §4.2 and §4.4 (Eqs. 38, 46–47), with concrete preconditioners
//! (the paper leaves `P` open: "Hessian information" or random features).
//!
//! **Eq. 38**, preconditioned GD, with the preconditioner a linear map of the gradient (Eq. 39's `P^{-1}(g)`):
//! $$W_{t+1} = W_t - \eta_{t+1} P_{t+1}^{-1}(g_{t+1})$$
//! On `L(W) = ½⟨(W − W*)H, W − W*⟩` (`g = (W − W*)H`) the Hessian's action `P(g) = g H` makes it Newton's
//! method: `W_{t+1} − W* = (1 − η_{t+1})(W_t − W*)`, one step to `W*` at `η = 1` (the reference is this closed
//! form; the tch side solves `P(x) = g` at every step).
//!
//! **Eqs. 46–47**, preconditioned momentum: the momentum memory minimises `⟨m ∇L(W_i)ᵀ, P_i⟩` (P_i ∈ R^{r×r}) by
//! one GD step, whose gradient is `P_i ∇L`:
//! $$\min_m\ \langle m\,\nabla\mathcal L(W_i;x_i)^\top, P_i\rangle\quad(46),\qquad
//!   W_{i+1} = W_i + m_{i+1},\quad m_{i+1} = \alpha\, m_i - \eta_i P_i\nabla\mathcal L(W_i;x_i)\quad(47)$$
//! with the forget gate `α` the text mentions and the formula omits (`α = 1` as printed). The reference writes
//! `P g` by hand; the tch side takes the inner gradient of Eq. 46 by autograd. `P = I` is Eq. 33's momentum.

/// f64 references on the quadratic.
pub mod reference {
    use crate::nl::optimizers::reference::Quadratic;
    use ndarray::Array2;

    /// Eq. 38 with `P(g) = g H`: `W_t = W* + Π_{s ≤ t}(1 − η_s)(W_0 − W*)`, every iterate.
    pub fn newton_closed_form(q: &Quadratic, w0: &Array2<f64>, lrs: &[f64]) -> Vec<Array2<f64>> {
        let mut factor = 1.0;
        lrs.iter()
            .map(|&lr| {
                factor *= 1.0 - lr;
                &q.w_star + &((w0 - &q.w_star) * factor)
            })
            .collect()
    }

    /// Eq. 47: `m ← α m − η P g` (the gradient `P g` of Eq. 46 written out entry by entry), `W ← W + m`.
    pub fn preconditioned_momentum(
        q: &Quadratic,
        w0: &Array2<f64>,
        p: &Array2<f64>,
        alpha: f64,
        lrs: &[f64],
    ) -> Vec<Array2<f64>> {
        let (r, c) = w0.dim();
        let mut w = w0.clone();
        let mut m = Array2::<f64>::zeros((r, c));
        let mut out = vec![];
        for &lr in lrs {
            let g = q.grad(&w);
            // (m gᵀ)_{ij} = Σ_b m_{ib} g_{jb}, so ∂/∂m_{ab} Σ_{ij} (m gᵀ)_{ij} P_{ij} = Σ_j P_{aj} g_{jb} = (P g)_{ab}
            let mut pg = Array2::<f64>::zeros((r, c));
            for a in 0..r {
                for b in 0..c {
                    pg[[a, b]] = (0..r).map(|j| p[[a, j]] * g[[j, b]]).sum();
                }
            }
            m = &m * alpha - &pg * lr;
            w = &w + &m;
            out.push(w.clone());
        }
        out
    }
}

/// tch versions, gradients of the outer loss (and of Eq. 46) by autograd.
pub mod torch {
    use crate::nl::optimizers::torch::quadratic_grad;
    use tch::Tensor;

    /// Eq. 38 with `P(x) = x H`: `W ← W − η x` where `x H = g` is solved (`H` symmetric).
    pub fn newton(w0: &Tensor, h: &Tensor, w_star: &Tensor, lrs: &[f64]) -> Vec<Tensor> {
        let mut w = w0.detach().copy();
        let mut out = vec![];
        for &lr in lrs {
            let g = quadratic_grad(&w, h, w_star);
            // x H = g  ⇔  H xᵀ = gᵀ
            let x = Tensor::linalg_solve(h, &g.transpose(0, 1), true).transpose(0, 1);
            w = &w - x * lr;
            out.push(w.copy());
        }
        out
    }

    /// Eqs. 46–47: the memory's step is the autograd gradient of `⟨m gᵀ, P⟩` in `m`.
    pub fn preconditioned_momentum(
        w0: &Tensor,
        h: &Tensor,
        w_star: &Tensor,
        p: &Tensor,
        alpha: f64,
        lrs: &[f64],
    ) -> Vec<Tensor> {
        let mut w = w0.detach().copy();
        let mut m = w0.zeros_like();
        let mut out = vec![];
        for &lr in lrs {
            let g = quadratic_grad(&w, h, w_star);
            let leaf = m.detach().set_requires_grad(true);
            let inner = tch::with_grad(|| {
                let objective = (leaf.matmul(&g.transpose(0, 1)) * p).sum(g.kind());
                Tensor::run_backward(&[objective], &[&leaf], false, false).pop().expect("one gradient")
            });
            m = &m * alpha - inner * lr;
            w = &w + &m;
            out.push(w.copy());
        }
        out
    }
}
