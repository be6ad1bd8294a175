//! AdaTransformer (Nested Learning v1 §3.2, Eq. 21; Eq. 69 with a time index): a feed-forward weight replaced
//! by a linear-attention memory whose initial state is the meta-learned weight,
//!
//! $$\mathcal M_t = \mathcal M_{t-1} + \mathbf v_t\mathbf k_t^\top,\quad \mathcal M_0 = W_{\rm LinAttn},\qquad
//!   \mathbf y_t = \mathcal M_t\,\mathbf u_t\quad(21, 69)$$
//!
//! where `u_t` is the block's input row (the attention output `y_attn`). The paper gives no keys and values for
//! the memory; here they are inputs (a model would project them from `u_t`). Reads are after the token's own
//! write. With no writes (`v = 0`) the block is the static linear layer `y = W u` (the paper's reduction).
//!
//! The reference runs the recurrence token by token; the tch side uses the parallel form
//! `y_t = M_0 u_t + Σ_{s ≤ t} v_s (k_sᵀ u_t)` (causal linear attention added to the static layer) and
//! `M_T = M_0 + Σ_s v_s k_sᵀ`, batched over `B`.

/// f64, one sequence, token by token.
pub mod reference {
    use ndarray::Array2;

    /// `(y [T, d_out], M_T)` for inputs `u`, keys `k [T, d_in]`, values `v [T, d_out]`, `M_0 = w [d_out, d_in]`.
    pub fn forward(u: &Array2<f64>, k: &Array2<f64>, v: &Array2<f64>, w: &Array2<f64>) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_out) = (u.nrows(), w.nrows());
        let mut m = w.clone();
        let mut y = Array2::<f64>::zeros((t_len, d_out));
        for t in 0..t_len {
            // M_t = M_{t−1} + v_t k_tᵀ
            for ((a, b), x) in m.indexed_iter_mut() {
                *x += v[[t, a]] * k[[t, b]];
            }
            // y_t = M_t u_t
            y.row_mut(t).assign(&m.dot(&u.row(t)));
        }
        (y, m)
    }
}

/// tch, parallel over time and batched over `B`.
pub mod torch {
    use tch::Tensor;

    /// `u, k [B, T, d_in]`, `v [B, T, d_out]`, `w [d_out, d_in]`; returns `(y [B, T, d_out], M_T [B, d_out, d_in])`.
    pub fn forward(u: &Tensor, k: &Tensor, v: &Tensor, w: &Tensor) -> (Tensor, Tensor) {
        let t_len = u.size()[1];
        // scores_{ts} = k_sᵀ u_t for s ≤ t
        let causal = Tensor::ones([t_len, t_len], (u.kind(), u.device())).tril(0);
        let scores = u.matmul(&k.transpose(1, 2)) * causal;
        let y = u.matmul(&w.transpose(0, 1)) + scores.matmul(v);
        let m_final = w.unsqueeze(0) + v.transpose(1, 2).matmul(k);
        (y, m_final)
    }
}
