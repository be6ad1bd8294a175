//! ATLAS (arXiv 2505.23735 v1) §4.2, Eqs. 24–26: the DeepTransformer with a **linear** memory — a Hebbian write of
//! `v_t φ*(k_t)ᵀ` per token (Eq. 25 on the dot-product bias `−⟨M φ*(k), v⟩`, unit step, no retention) — read
//! with `φ*(q_t)`, which equals unnormalised causal attention (Eq. 26, corrected index):
//!
//! $$\mathcal M_t = \mathcal M_{t-1} + v_t\,\phi^*(k_t)^\top,\qquad y_t = \mathcal M_t\,\phi^*(q_t)
//! = \sum_{i\le t} v_i \exp(q_t^\top k_i)$$
//!
//! and, with the value-free normaliser memory `z_t = z_{t−1} + φ*(k_t)` of Eq. 24's note,
//! `y_t = M_tφ*(q_t) / z_tᵀφ*(q_t)` = softmax attention (without the `1/√d`, dropped by the paper). `φ*` cannot be
//! materialised; here it is the degree-`p` truncation of [`super::features`] (`φ_p(q)ᵀφ_p(k) = Σ_{j≤p}(qᵀk)^j/j!`),
//! so the equalities hold up to the Taylor remainder, which the check bounds. The deep-memory DeepTransformer and
//! Dot are not implemented.
//!
//! [`reference`]: f64, token by token, the state written out; [`torch`]: batched, prefix sums of the writes.

use super::features::PolyFeatures;

/// f64, one head, token by token.
pub mod reference {
    use super::PolyFeatures;
    use crate::atlas::features::reference::phi;
    use ndarray::{Array1, Array2};

    /// `y [T, d_v]` of the linear-memory DeepTransformer with `φ = φ_p`; `normalized` divides by `z_tᵀφ(q_t)`.
    pub fn forward(
        f: &PolyFeatures,
        k: &Array2<f64>,
        v: &Array2<f64>,
        q: &Array2<f64>,
        normalized: bool,
    ) -> Array2<f64> {
        let d_in = f.width(k.ncols());
        let mut m = Array2::<f64>::zeros((v.ncols(), d_in));
        let mut z = Array1::<f64>::zeros(d_in);
        let mut y = Array2::zeros((k.nrows(), v.ncols()));
        for t in 0..k.nrows() {
            let pk = phi(f, k.row(t));
            // Eq. 26: M_t = M_{t−1} + v_t φ(k_t)ᵀ;  z_t = z_{t−1} + φ(k_t)
            for r in 0..v.ncols() {
                for c in 0..d_in {
                    m[[r, c]] += v[[t, r]] * pk[c];
                }
            }
            z = z + &pk;
            let pq = phi(f, q.row(t));
            let read = m.dot(&pq);
            let out = if normalized { read / z.dot(&pq) } else { read };
            y.row_mut(t).assign(&out);
        }
        y
    }
}

/// tch, batched over leading dimensions `[B, H]`.
pub mod torch {
    use super::PolyFeatures;
    use crate::atlas::features::torch::phi;
    use tch::Tensor;

    /// `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]` → `y [B, H, T, d_v]`: the states `M_t` as prefix sums of the
    /// writes `v_i φ(k_i)ᵀ`, read with `φ(q_t)`.
    pub fn forward(f: &PolyFeatures, k: &Tensor, v: &Tensor, q: &Tensor, normalized: bool) -> Tensor {
        let (pk, pq) = (phi(f, k), phi(f, q));
        // M_t = Σ_{i≤t} v_i φ(k_i)ᵀ, [B, H, T, d_v, D]
        let states = (v.unsqueeze(-1) * pk.unsqueeze(-2)).cumsum(2, v.kind());
        let read = states.matmul(&pq.unsqueeze(-1)).squeeze_dim(-1);
        if normalized {
            let z = pk.cumsum(2, pk.kind());
            read / (z * &pq).sum_dim_intlist(&[-1i64][..], true, None)
        } else {
            read
        }
    }
}
