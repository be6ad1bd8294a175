//! Titans (arXiv 2501.00663 v1) Appendix C, Eqs. 32–35: the linear memory as a sequence model, and its
//! relation to DeltaNet, Gated DeltaNet and Longhorn (corrected forms of the catalog's §1 and §4).
//!
//! * Eqs. 32–33, channel-wise gates (⚠ Eq. 32 prints `M_t` on the right; `M_{t−1}` is the consistent form; the
//!   gates act on the rows, i.e. the value channels — v1 does not say which index):
//!   $$S_t = \mathrm{diag}(\eta_t) S_{t-1} - \mathrm{diag}(\theta_t)\,2c\,(M_{t-1}k_t - v_t)k_t^\top,\qquad
//!     M_t = \mathrm{diag}(1-\alpha_t) M_{t-1} + S_t,\qquad \alpha_t,\eta_t,\theta_t\in\mathbb R^{d_v}$$
//!   (Eq. 33's row-vector `M k^⊤k − v^⊤k` is the ½-loss gradient `(Mk − v)kᵀ`; we keep the explicit `c`.)
//! * Eq. 34, DeltaNet: $$S_t = S_{t-1}(I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top$$ — Titans with
//!   `η = α = 0`, `S_0 = 0` and `β_t = 2cθ_t` (`β = θ` with the appendix's ½-loss).
//! * Gated DeltaNet: $$S_t = S_{t-1}\,a_t(I - b_t k_t k_t^\top) + b_t v_t k_t^\top .$$ ⚠ The appendix's claim
//!   "η = 0 gives (Gated) DeltaNet" holds only for α = 0. With the naive map `a = 1 − α`, `b = 2θ` the step
//!   differs by `2α_tθ_t M_{t−1}k_tk_t^⊤`; the exact map is `a = 1 − α`, `b = 2θ/(1 − α)` with values rescaled
//!   to `(1 − α)v` (conversely `α = 1 − a`, `θ = ab/2`, values `v/a`). GDN is "decay, then one ½-loss gradient
//!   step at the decayed state".
//! * Eq. 35, Longhorn (⚠ the denominator is the scalar `k^⊤k`): the proximal step
//!   $$S_t = \arg\min_S \tfrac12\lVert Sk_t - v_t\rVert^2 + \tfrac{1}{2\theta_t}\lVert S - S_{t-1}\rVert_F^2
//!     = S_{t-1}(I - \delta_t k_tk_t^\top) + \delta_t v_tk_t^\top,\quad \delta_t = \frac{\theta_t}{1+\theta_t k_t^\top k_t}$$
//!   — with unit keys, DeltaNet with `β = θ/(1 + θ)`.
//!
//! Reads are after the write, `y_t = S_t q_t` (`M_t q_t`). [`reference`]: f64 loops, Longhorn also as the
//! argmin solved by a linear solve. [`torch`]: batched `[B, H, ...]` recurrences.

/// The f64 reference, one head; each rule written in its own printed form.
pub mod reference {
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
    use ndarray_linalg::Solve;

    fn outer(a: ArrayView1<f64>, b: ArrayView1<f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.len(), b.len()), |(i, j)| a[i] * b[j])
    }

    /// Eqs. 32–33 (corrected): gates are `T × d_v`, one value per row of the memory. Returns `(y, M_T, S_T)`.
    #[allow(clippy::too_many_arguments)]
    pub fn channelwise_forward(
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        q: ArrayView2<f64>,
        alpha: ArrayView2<f64>,
        eta: ArrayView2<f64>,
        theta: ArrayView2<f64>,
        m0: &Array2<f64>,
        s0: &Array2<f64>,
        loss_scale: f64,
    ) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        let (t_len, d_v, d_k) = (k.nrows(), m0.nrows(), m0.ncols());
        let (mut m, mut s) = (m0.clone(), s0.clone());
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            let e = m.dot(&k.row(t)) - v.row(t);
            for i in 0..d_v {
                for j in 0..d_k {
                    // Eq. 33: S_t = diag(η_t) S_{t−1} − diag(θ_t) 2c (M_{t−1}k_t − v_t) k_tᵀ
                    s[[i, j]] = eta[[t, i]] * s[[i, j]] - theta[[t, i]] * 2.0 * loss_scale * e[i] * k[[t, j]];
                    // Eq. 32: M_t = diag(1 − α_t) M_{t−1} + S_t
                    m[[i, j]] = (1.0 - alpha[[t, i]]) * m[[i, j]] + s[[i, j]];
                }
            }
            y.row_mut(t).assign(&m.dot(&q.row(t)));
        }
        (y, m, s)
    }

    /// Eq. 34, DeltaNet: `S_t = S_{t−1}(I − β_t k kᵀ) + β_t v kᵀ`; returns `(y, S_T)`.
    pub fn deltanet(
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        q: ArrayView2<f64>,
        beta: ArrayView1<f64>,
        s0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let d_k = k.ncols();
        let mut s = s0.clone();
        let mut y = Array2::zeros((k.nrows(), s0.nrows()));
        for t in 0..k.nrows() {
            let erase = Array2::<f64>::eye(d_k) - outer(k.row(t), k.row(t)) * beta[t];
            s = s.dot(&erase) + outer(v.row(t), k.row(t)) * beta[t];
            y.row_mut(t).assign(&s.dot(&q.row(t)));
        }
        (y, s)
    }

    /// Gated DeltaNet: `S_t = S_{t−1} a_t (I − b_t k kᵀ) + b_t v kᵀ`; returns `(y, S_T)`.
    pub fn gated_deltanet(
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        q: ArrayView2<f64>,
        a: ArrayView1<f64>,
        b: ArrayView1<f64>,
        s0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let d_k = k.ncols();
        let mut s = s0.clone();
        let mut y = Array2::zeros((k.nrows(), s0.nrows()));
        for t in 0..k.nrows() {
            let transition = (Array2::<f64>::eye(d_k) - outer(k.row(t), k.row(t)) * b[t]) * a[t];
            s = s.dot(&transition) + outer(v.row(t), k.row(t)) * b[t];
            y.row_mut(t).assign(&s.dot(&q.row(t)));
        }
        (y, s)
    }

    /// Gated DeltaNet read as "decay, then one gradient step of `½‖Sk − v‖²` with step `b` at the decayed
    /// state": `S' = a S_{t−1}`, `S_t = S' − b (S'k − v) kᵀ`.
    pub fn gated_deltanet_as_decayed_step(
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        a: ArrayView1<f64>,
        b: ArrayView1<f64>,
        s0: &Array2<f64>,
    ) -> Array2<f64> {
        let mut s = s0.clone();
        for t in 0..k.nrows() {
            let decayed = &s * a[t];
            let err = decayed.dot(&k.row(t)) - v.row(t);
            s = &decayed - &(outer(err.view(), k.row(t)) * b[t]);
        }
        s
    }

    /// Eq. 35 as the proximal argmin, solved numerically: `S (k kᵀ + I/θ) = v kᵀ + S_{t−1}/θ`, one linear
    /// solve per row of `S` (the system matrix is symmetric). Returns `(y, S_T)`.
    pub fn longhorn_proximal(
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        q: ArrayView2<f64>,
        theta: ArrayView1<f64>,
        s0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let d_k = k.ncols();
        let mut s = s0.clone();
        let mut y = Array2::zeros((k.nrows(), s0.nrows()));
        for t in 0..k.nrows() {
            let a = outer(k.row(t), k.row(t)) + Array2::<f64>::eye(d_k) / theta[t];
            let rhs = outer(v.row(t), k.row(t)) + &s / theta[t];
            let mut next = Array2::zeros(s.raw_dim());
            for r in 0..s.nrows() {
                let row: Array1<f64> = a.solve(&rhs.row(r).to_owned()).expect("k kᵀ + I/θ is positive definite");
                next.row_mut(r).assign(&row);
            }
            s = next;
            y.row_mut(t).assign(&s.dot(&q.row(t)));
        }
        (y, s)
    }
}

/// The tch implementation, batched over `[B, H]`, token-by-token recurrences.
pub mod torch {
    use tch::Tensor;

    fn outer(a: &Tensor, b: &Tensor) -> Tensor {
        a.unsqueeze(-1).matmul(&b.unsqueeze(-2))
    }
    fn stack_or_empty(ys: Vec<Tensor>, like_k: &Tensor, d_v: i64) -> Tensor {
        if ys.is_empty() {
            Tensor::zeros([like_k.size()[0], like_k.size()[1], 0, d_v], (like_k.kind(), like_k.device()))
        } else {
            Tensor::stack(&ys, 2)
        }
    }

    /// Eqs. 32–33: `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, gates `[B, H, T, d_v]`, states
    /// `[B, H, d_v, d_k]`. Returns `(y, M_T, S_T)`.
    #[allow(clippy::too_many_arguments)]
    pub fn channelwise_forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        m0: &Tensor,
        s0: &Tensor,
        loss_scale: f64,
    ) -> (Tensor, Tensor, Tensor) {
        let (mut m, mut s) = (m0.shallow_clone(), s0.shallow_clone());
        let mut ys = vec![];
        // diag(g) X scales the rows of X: g as a column [B, H, d_v, 1]
        let rows = |g: &Tensor, t: i64| g.select(2, t).unsqueeze(-1);
        for t in 0..k.size()[2] {
            let (k_t, v_t) = (k.select(2, t), v.select(2, t));
            let e = m.matmul(&k_t.unsqueeze(-1)).squeeze_dim(-1) - v_t;
            let grad = outer(&e, &k_t) * (2.0 * loss_scale);
            s = rows(eta, t) * &s - rows(theta, t) * grad;
            m = (1.0 - rows(alpha, t)) * &m + &s;
            ys.push(m.matmul(&q.select(2, t).unsqueeze(-1)).squeeze_dim(-1));
        }
        (stack_or_empty(ys, k, v.size()[3]), m, s)
    }

    /// Gated DeltaNet (DeltaNet, Eq. 34, when `a = 1`): `a, b [B, H, T]`, `s0 [B, H, d_v, d_k]`; returns `(y, S_T)`.
    pub fn gated_deltanet(k: &Tensor, v: &Tensor, q: &Tensor, a: &Tensor, b: &Tensor, s0: &Tensor) -> (Tensor, Tensor) {
        let mut s = s0.shallow_clone();
        let mut ys = vec![];
        let sc = |g: &Tensor, t: i64| g.select(2, t).unsqueeze(-1).unsqueeze(-1);
        for t in 0..k.size()[2] {
            let (k_t, v_t) = (k.select(2, t), v.select(2, t));
            // S a (I − b k kᵀ) + b v kᵀ = a S − a b (S k) kᵀ + b v kᵀ
            let sk = s.matmul(&k_t.unsqueeze(-1)).squeeze_dim(-1);
            s = sc(a, t) * &s - sc(a, t) * sc(b, t) * outer(&sk, &k_t) + sc(b, t) * outer(&v_t, &k_t);
            ys.push(s.matmul(&q.select(2, t).unsqueeze(-1)).squeeze_dim(-1));
        }
        (stack_or_empty(ys, k, v.size()[3]), s)
    }

    /// Eq. 34, DeltaNet: Gated DeltaNet with `a = 1`.
    pub fn deltanet(k: &Tensor, v: &Tensor, q: &Tensor, beta: &Tensor, s0: &Tensor) -> (Tensor, Tensor) {
        gated_deltanet(k, v, q, &beta.ones_like(), beta, s0)
    }

    /// Eq. 35 (corrected) in closed form: `δ_t = θ_t / (1 + θ_t k_tᵀk_t)`, then a DeltaNet step with `δ_t`.
    pub fn longhorn(k: &Tensor, v: &Tensor, q: &Tensor, theta: &Tensor, s0: &Tensor) -> (Tensor, Tensor) {
        let kk = k.square().sum_dim_intlist([-1i64].as_slice(), false, k.kind());
        let delta = theta / (theta * kk + 1.0);
        deltanet(k, v, q, &delta, s0)
    }
}
