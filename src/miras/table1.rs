//! The remaining rows of MIRAS Table 1 (arXiv 2504.13173 v1, §2–3): recurrences whose retention gate acts per
//! key channel, or that take several delta steps per token, which the framework's scalar gates
//! (`super::presets`) do not express. In the project convention (`M ∈ R^{d_v×d_k}`, key-space factors on the
//! right; catalog §5 "Table 1 reproduced"), read `y_t = M_t q_t`:
//!
//! | row | write rule |
//! |---|---|
//! | DFW | $M_t = (\beta_t\alpha_t^\top)\odot M_{t-1} + v_tk_t^\top$ (rank-one gate: `β` over values, `α` over keys) |
//! | GLA | $M_t = M_{t-1}\,\mathrm{Diag}(\alpha_t) + v_tk_t^\top$ |
//! | HGRN2 | $M_t = M_{t-1}\,\mathrm{Diag}(\alpha_t) + v_t(1-\alpha_t)^\top$ (the forget gate's complement is the key) |
//! | RWKV-7 | $M_t = M_{t-1}\,\mathrm{Diag}(\alpha_t)(I-\beta_tk_tk_t^\top) + \beta_tv_tk_t^\top$ (simplified, as the table) |
//! | DeltaProduct | $M \leftarrow \alpha_tM_{t-1}$, then for $i = 1..n$: $M \leftarrow M(I-\beta_{t,i}k_{t,i}k_{t,i}^\top) + \beta_{t,i}v_{t,i}k_{t,i}^\top$ |
//!
//! The printed GLA/HGRN2/RWKV-7 rules put `Diag(α)` on the left, which for `d_v ≠ d_k` is undefined; the gate acts on
//! the key index here. DeltaProduct's printed sum is garbled (`v_{j,i}` inside the product); the sequential
//! Householder form above is the one its authors define. The Transformer row (a growing key–value set read by
//! softmax attention, the non-parametric ℓ2 regression) is MIRAS Eqs. 1–2, verified with the models' attention.
//!
//! The reference loops entry by entry; the tch side is batched `[B, H, …]` with broadcast products.

/// f64, one head, token by token (rows are tokens).
pub mod reference {
    use ndarray::{Array1, Array2, Array3};

    fn read(m: &Array2<f64>, q: ndarray::ArrayView1<f64>) -> Array1<f64> {
        m.dot(&q)
    }

    /// DFW: `alpha [T, d_k]`, `beta [T, d_v]`.
    pub fn dfw(
        k: &Array2<f64>,
        v: &Array2<f64>,
        q: &Array2<f64>,
        alpha: &Array2<f64>,
        beta: &Array2<f64>,
        m0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_v) = (k.nrows(), v.ncols());
        let mut m = m0.clone();
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            for ((a, b), x) in m.indexed_iter_mut() {
                // M_ab ← β_a α_b M_ab + v_a k_b
                *x = beta[[t, a]] * alpha[[t, b]] * *x + v[[t, a]] * k[[t, b]];
            }
            y.row_mut(t).assign(&read(&m, q.row(t)));
        }
        (y, m)
    }

    /// GLA (`keys = k`) and HGRN2 (`keys = 1 − α`): `M_ab ← M_ab α_b + v_a key_b`, `alpha [T, d_k]`.
    pub fn gated_key_channels(
        keys: &Array2<f64>,
        v: &Array2<f64>,
        q: &Array2<f64>,
        alpha: &Array2<f64>,
        m0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_v) = (keys.nrows(), v.ncols());
        let mut m = m0.clone();
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            for ((a, b), x) in m.indexed_iter_mut() {
                *x = *x * alpha[[t, b]] + v[[t, a]] * keys[[t, b]];
            }
            y.row_mut(t).assign(&read(&m, q.row(t)));
        }
        (y, m)
    }

    /// HGRN2's key: `1 − α_t`.
    pub fn hgrn2_keys(alpha: &Array2<f64>) -> Array2<f64> {
        alpha.mapv(|a| 1.0 - a)
    }

    /// RWKV-7 (simplified): `M ← M Diag(α)(I − β k kᵀ) + β v kᵀ`, `alpha [T, d_k]`, `beta [T]`.
    pub fn rwkv7(
        k: &Array2<f64>,
        v: &Array2<f64>,
        q: &Array2<f64>,
        alpha: &Array2<f64>,
        beta: &Array1<f64>,
        m0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_v, d_k) = (k.nrows(), v.ncols(), k.ncols());
        let mut m = m0.clone();
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            // G = M Diag(α): G_ab = M_ab α_b;  (G k)_a = Σ_b G_ab k_b
            let g = Array2::from_shape_fn((d_v, d_k), |(a, b)| m[[a, b]] * alpha[[t, b]]);
            let gk: Vec<f64> = (0..d_v).map(|a| (0..d_k).map(|b| g[[a, b]] * k[[t, b]]).sum()).collect();
            m = Array2::from_shape_fn((d_v, d_k), |(a, b)| {
                g[[a, b]] - beta[t] * gk[a] * k[[t, b]] + beta[t] * v[[t, a]] * k[[t, b]]
            });
            y.row_mut(t).assign(&read(&m, q.row(t)));
        }
        (y, m)
    }

    /// DeltaProduct: `k [T, n, d_k]`, `v [T, n, d_v]`, `alpha [T]`, `beta [T, n]`; `n` Householder-like delta
    /// steps per token after the scalar decay.
    pub fn delta_product(
        k: &Array3<f64>,
        v: &Array3<f64>,
        q: &Array2<f64>,
        alpha: &Array1<f64>,
        beta: &Array2<f64>,
        m0: &Array2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, n, d_k) = k.dim();
        let d_v = v.dim().2;
        let mut m = m0.clone();
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            m *= alpha[t];
            for i in 0..n {
                let mk: Vec<f64> = (0..d_v).map(|a| (0..d_k).map(|b| m[[a, b]] * k[[t, i, b]]).sum()).collect();
                for ((a, b), x) in m.indexed_iter_mut() {
                    // M ← M − β (M k − v) kᵀ
                    *x -= beta[[t, i]] * (mk[a] - v[[t, i, a]]) * k[[t, i, b]];
                }
            }
            y.row_mut(t).assign(&read(&m, q.row(t)));
        }
        (y, m)
    }
}

/// tch, batched over `[B, H]`: `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, channel gates `[B, H, T, d]`, scalar
/// gates `[B, H, T]`, `m0 [B, H, d_v, d_k]`; returns `(y [B, H, T, d_v], M_T)`.
pub mod torch {
    use tch::Tensor;

    fn outer(v: &Tensor, k: &Tensor) -> Tensor {
        v.unsqueeze(-1).matmul(&k.unsqueeze(-2))
    }

    fn read(m: &Tensor, q: &Tensor) -> Tensor {
        m.matmul(&q.unsqueeze(-1)).squeeze_dim(-1)
    }

    pub fn dfw(k: &Tensor, v: &Tensor, q: &Tensor, alpha: &Tensor, beta: &Tensor, m0: &Tensor) -> (Tensor, Tensor) {
        let mut m = m0.shallow_clone();
        let mut ys = vec![];
        for t in 0..k.size()[2] {
            // (β αᵀ) ⊙ M + v kᵀ
            let gate = outer(&beta.select(2, t), &alpha.select(2, t));
            m = gate * &m + outer(&v.select(2, t), &k.select(2, t));
            ys.push(read(&m, &q.select(2, t)));
        }
        (Tensor::stack(&ys, 2), m)
    }

    /// GLA with `keys = k`; HGRN2 with `keys = 1 − α`.
    pub fn gated_key_channels(keys: &Tensor, v: &Tensor, q: &Tensor, alpha: &Tensor, m0: &Tensor) -> (Tensor, Tensor) {
        let mut m = m0.shallow_clone();
        let mut ys = vec![];
        for t in 0..keys.size()[2] {
            // M Diag(α) + v keyᵀ
            m = &m * alpha.select(2, t).unsqueeze(-2) + outer(&v.select(2, t), &keys.select(2, t));
            ys.push(read(&m, &q.select(2, t)));
        }
        (Tensor::stack(&ys, 2), m)
    }

    pub fn rwkv7(k: &Tensor, v: &Tensor, q: &Tensor, alpha: &Tensor, beta: &Tensor, m0: &Tensor) -> (Tensor, Tensor) {
        let mut m = m0.shallow_clone();
        let mut ys = vec![];
        let d_k = k.size()[3];
        for t in 0..k.size()[2] {
            let (kt, b) = (k.select(2, t), beta.select(2, t).unsqueeze(-1).unsqueeze(-1));
            let eye = Tensor::eye(d_k, (k.kind(), k.device()));
            // M Diag(α)(I − β k kᵀ) + β v kᵀ
            let erase = eye - outer(&kt, &kt) * &b;
            m = (&m * alpha.select(2, t).unsqueeze(-2)).matmul(&erase) + outer(&v.select(2, t), &kt) * &b;
            ys.push(read(&m, &q.select(2, t)));
        }
        (Tensor::stack(&ys, 2), m)
    }

    /// `k [B, H, T, n, d_k]`, `v [B, H, T, n, d_v]`, `alpha [B, H, T]`, `beta [B, H, T, n]`.
    pub fn delta_product(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        beta: &Tensor,
        m0: &Tensor,
    ) -> (Tensor, Tensor) {
        let mut m = m0.shallow_clone();
        let mut ys = vec![];
        let (t_len, n) = (k.size()[2], k.size()[3]);
        for t in 0..t_len {
            m = &m * alpha.select(2, t).unsqueeze(-1).unsqueeze(-1);
            for i in 0..n {
                let (ki, vi) = (k.select(2, t).select(2, i), v.select(2, t).select(2, i));
                let b = beta.select(2, t).select(2, i).unsqueeze(-1).unsqueeze(-1);
                // M (I − β k kᵀ) + β v kᵀ
                let eye = Tensor::eye(ki.size()[2], (ki.kind(), ki.device()));
                m = m.matmul(&(eye - outer(&ki, &ki) * &b)) + outer(&vi, &ki) * &b;
            }
            ys.push(read(&m, &q.select(2, t)));
        }
        (Tensor::stack(&ys, 2), m)
    }
}
