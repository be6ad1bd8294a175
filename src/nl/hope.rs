//! The update rule of Hope's self-modifying memories (Nested Learning v1, §8, Eqs. 88, 90, 93) for a **linear**
//! memory generating its own values (`□ = memory`): DGD with weight decay on the l2 objective.
//!
//! Project form (NL's `η_t` = project `θ_t`, NL's `α_t` = project `1 − α_t`, factor 2 of the l2 loss explicit),
//! for `M ∈ R^{d×d}` (`d_k = d_v`: the memory reads its own value `v̂_t = M v_t`, Eq. 84/95):
//!
//! $$\hat v_t = M_s v_t,\qquad M_t = M_{t-1}\big((1-\alpha_t)I - \theta_t k_tk_t^\top\big) - 2\theta_t\,(M_s k_t - \hat v_t)\,k_t^\top,\qquad y_t = M_s q_t$$
//!
//! where `M_s` is the state the chunk's values, gradients and reads come from: `M_s = M_{t−1}` token by token
//! (`C = 1`, Eq. 88 with the pre-update read of Eq. 94), and the state after the **previous** chunk for chunk size
//! `C > 1` (Eqs. 90, 93; the printed index `C⌈t/C⌉` is the end of the current chunk, which is acausal — the consistent
//! reading `C⌊(t−1)/C⌋` is used). Only the erase factor runs token by token inside a chunk.
//! The self-modifying projections (`M_k, M_v, M_η, M_α`, Eqs. 83–85) and the CMS on the output (Eq. 97) are not
//! built here.

/// f64, one head, token by token.
pub mod reference {
    use ndarray::{Array1, Array2};

    /// `(y [T, d], M_T)` for keys, values, queries `[T, d]`, gates `α, θ [T]`, chunk size `c ≥ 1`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        k: &Array2<f64>,
        v: &Array2<f64>,
        q: &Array2<f64>,
        alpha: &Array1<f64>,
        theta: &Array1<f64>,
        m0: &Array2<f64>,
        c: usize,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d) = k.dim();
        let mut m = m0.clone();
        let mut m_s = m0.clone();
        let mut y = Array2::<f64>::zeros((t_len, d));
        for t in 0..t_len {
            if t % c == 0 {
                m_s = m.clone(); // the state after the previous chunk (C = 1: M_{t−1})
            }
            let (kt, vt, qt) = (k.row(t), v.row(t), q.row(t));
            // v̂_t = M_s v_t (self-generated value);  y_t = M_s q_t
            let v_hat = m_s.dot(&vt);
            y.row_mut(t).assign(&m_s.dot(&qt));
            // M_t = M_{t−1}((1 − α_t) I − θ_t k kᵀ) − 2θ_t (M_s k_t − v̂_t) k_tᵀ
            let err = m_s.dot(&kt) - &v_hat;
            let mk = m.dot(&kt);
            let mut next = &m * (1.0 - alpha[t]);
            for a in 0..d {
                for b in 0..d {
                    next[[a, b]] -= theta[t] * (mk[a] * kt[b] + 2.0 * err[a] * kt[b]);
                }
            }
            m = next;
        }
        (y, m)
    }
}

/// tch, batched over `[B, H]`: per chunk, the values, errors and reads of all its tokens in one product with the
/// boundary state, then the erase factors token by token.
pub mod torch {
    use tch::Tensor;

    /// `k, v, q [B, H, T, d]`, `alpha, theta [B, H, T]`, `m0 [B, H, d, d]`; returns `(y [B, H, T, d], M_T)`.
    pub fn forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        theta: &Tensor,
        m0: &Tensor,
        c: usize,
    ) -> (Tensor, Tensor) {
        let t_len = k.size()[2];
        let mut m = m0.shallow_clone();
        let mut ys = vec![];
        let mut start = 0i64;
        while start < t_len {
            let len = (c as i64).min(t_len - start);
            let (kc, vc, qc) = (k.narrow(2, start, len), v.narrow(2, start, len), q.narrow(2, start, len));
            let m_s = m.shallow_clone();
            // rows: y = Q M_sᵀ;  errors M_s k − M_s v = (K − V) M_sᵀ
            ys.push(qc.matmul(&m_s.transpose(-2, -1)));
            let err = (&kc - &vc).matmul(&m_s.transpose(-2, -1));
            for i in 0..len {
                let kt = kc.select(2, i); // [B, H, d]
                let (a, th) = (alpha.select(2, start + i), theta.select(2, start + i));
                let (a, th) = (a.unsqueeze(-1).unsqueeze(-1), th.unsqueeze(-1).unsqueeze(-1));
                let mk = m.matmul(&kt.unsqueeze(-1)); // [B, H, d, 1]
                let write = (mk + err.select(2, i).unsqueeze(-1) * 2.0).matmul(&kt.unsqueeze(-2));
                m = &m * (-&a + 1.0) - write * th;
            }
            start += len;
        }
        (Tensor::cat(&ys, 2), m)
    }
}
