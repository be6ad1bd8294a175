//! OjaNet (Nested Learning v1 §5, Eqs. 66–67): a matrix memory updated by Oja's rule, which NL writes as one GD
//! step on the objective
//!
//! $$\tilde{\mathcal L}(\mathcal M;\mathbf k,\mathbf v) = -2\langle\mathcal M\phi(\mathbf k),\mathbf v\rangle + \|\mathcal M^\top\mathbf v\|_2^2\quad(67)$$
//!
//! whose gradient is `∇_M L̃ = 2(v vᵀ M − v φ(k)ᵀ)` (catalog ⚠: the printed `Mᵀv − vφ(k)ᵀ` adds a vector to a
//! matrix). With retention, in project letters (NL `α_t` = project `1 − α_t`, NL `η_t` = project `θ_t`):
//!
//! $$\mathcal M_t = (1-\alpha_t)\mathcal M_{t-1} + 2\theta_t\,\mathbf v_t\big(\phi(\mathbf k_t)^\top - \mathbf v_t^\top\mathcal M_{t-1}\big)\quad(66)$$
//!
//! `M ∈ R^{d_v×d_k}`, `φ` = identity, reads `y_t = M_t q_t`. The reference writes the update of Eq. 66 entry by
//! entry; the tch side takes the gradient of Eq. 67 by autograd at every token (batched over `[B, H]`), so the
//! check ties the update to its objective.

/// f64, one head, token by token.
pub mod reference {
    use ndarray::{Array1, Array2};

    /// `(y [T, d_v], M_T)` for keys, queries `[T, d_k]`, values `[T, d_v]`, gates `α, θ [T]`.
    pub fn forward(
        k: &Array2<f64>,
        v: &Array2<f64>,
        q: &Array2<f64>,
        alpha: &Array1<f64>,
        theta: &Array1<f64>,
        m0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_k) = k.dim();
        let d_v = v.ncols();
        let mut m = m0.clone();
        let mut y = Array2::<f64>::zeros((t_len, d_v));
        for t in 0..t_len {
            let (kt, vt) = (k.row(t), v.row(t));
            // (vᵀ M)_b = Σ_a v_a M_ab
            let vm: Vec<f64> = (0..d_k).map(|b| (0..d_v).map(|a| vt[a] * m[[a, b]]).sum()).collect();
            let mut next = Array2::<f64>::zeros((d_v, d_k));
            for a in 0..d_v {
                for b in 0..d_k {
                    // M_t = (1 − α_t) M_{t−1} + 2θ_t v_t (k_tᵀ − v_tᵀ M_{t−1})
                    next[[a, b]] = (1.0 - alpha[t]) * m[[a, b]] + 2.0 * theta[t] * vt[a] * (kt[b] - vm[b]);
                }
            }
            m = next;
            y.row_mut(t).assign(&m.dot(&q.row(t)));
        }
        (y, m)
    }
}

/// tch, batched over `[B, H]`; the step is minus the autograd gradient of Eq. 67.
pub mod torch {
    use tch::Tensor;

    /// `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, `alpha, theta [B, H, T]`, `m0 [B, H, d_v, d_k]`.
    pub fn forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        theta: &Tensor,
        m0: &Tensor,
    ) -> (Tensor, Tensor) {
        let t_len = k.size()[2];
        let mut m = m0.shallow_clone();
        let mut ys = vec![];
        for t in 0..t_len {
            let (kt, vt) = (k.select(2, t), v.select(2, t)); // [B, H, d]
            let leaf = m.detach().set_requires_grad(true);
            let grad = tch::with_grad(|| {
                // L̃ = −2⟨M k, v⟩ + ‖Mᵀ v‖², summed over the independent heads
                let mk = leaf.matmul(&kt.unsqueeze(-1)).squeeze_dim(-1);
                let mtv = leaf.transpose(-2, -1).matmul(&vt.unsqueeze(-1)).squeeze_dim(-1);
                let objective = (mk * &vt).sum(k.kind()) * -2.0 + mtv.square().sum(k.kind());
                Tensor::run_backward(&[objective], &[&leaf], false, false).pop().expect("one gradient")
            });
            let a = alpha.select(2, t).unsqueeze(-1).unsqueeze(-1);
            let th = theta.select(2, t).unsqueeze(-1).unsqueeze(-1);
            m = &m * (-a + 1.0) - grad * th;
            ys.push(m.matmul(&q.select(2, t).unsqueeze(-1)).squeeze_dim(-1));
        }
        (Tensor::stack(&ys, 2), m)
    }
}
