//! TNT (arXiv 2511.07343 v1) §4.1.2 Eq. 7, Appendix B Eqs. 8–10 and Appendix C: the Q-K projection.
//!
//! The local memories are trained on keys and read with queries; TNT maps each query into the span of the keys
//! written so far before the local read:
//! $$\tilde q_t = P_t\,q_t,\qquad P_t=\sum_{\tau=r(t)}^{t}\frac{k_\tau k_\tau^\top}{\|k_\tau\|^2}\qquad\text{(Eq. 7 / Eq. 8)}$$
//! where `r(t)` is the first token of `t`'s shard. ⚠ The printed Eq. 7 sums from the *local chunk* start
//! `ξ(t, C_L)`, §4.1.2 describes a running sum from `τ = 1`, Appendix B sums from the memory's reset and Appendix C
//! resets the recurrence exactly at shard boundaries; the consistent reading (the catalog's) is the per-shard
//! running sum, reset together with the local memories — that is what is implemented (`S_L ≥ T` gives Eq. 8's sum
//! over all past keys). ⚠ The denominator is `‖k‖²` (each term a rank-1 orthogonal projector; identical to Eq. 9's
//! `k kᵀ` for unit keys, which the models always feed). `‖k‖²` is clamped at [`MIN_KEY_NORM2`] on both sides so a
//! zero key adds nothing instead of a NaN.
//!
//! As a recurrence (Eq. 10, Appendix C; 1-based `t`, reset at `t ≡ 1 mod S_L`):
//! $$\mathcal M_t=\begin{cases}\hat k_t\hat k_t^\top & t\equiv 1\ (\mathrm{mod}\ S_L)\\ \mathcal M_{t-1}+\hat k_t\hat k_t^\top&\text{otherwise}\end{cases}$$
//! and chunk-parallel (Appendix C): a carried `d_k × d_k` state plus an intra-block prefix sum,
//! `Q̃ = Q P_{carried} + tril(Q K̂ᵀ) K̂` (rows are tokens), `P_end = P_carried + K̂ᵀK̂`. The block is any run of
//! tokens inside one shard; the hierarchy uses the whole shard segment of a call.
//!
//! [`reference`]: the recurrence token by token, and Eq. 8 as an explicit double sum. [`torch`]: the block form.

/// The floor on `‖k‖²` in the projector's denominator (both implementations).
pub const MIN_KEY_NORM2: f64 = 1e-12;

/// Token by token, f64.
pub mod reference {
    use super::MIN_KEY_NORM2;
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    /// Eq. 10 with Eq. 7's normalisation: `P ← P + k kᵀ/‖k‖²`.
    pub fn accumulate(p: &mut Array2<f64>, k: ArrayView1<f64>) {
        let n2 = k.dot(&k).max(MIN_KEY_NORM2);
        let d = k.len();
        for i in 0..d {
            for j in 0..d {
                p[[i, j]] += k[i] * k[j] / n2;
            }
        }
    }

    /// The projected query `P q`.
    pub fn project(p: &Array2<f64>, q: ArrayView1<f64>) -> Array1<f64> {
        p.dot(&q)
    }

    /// Appendix C's recurrence over a sequence: the projector after each token (`[T]` of `d_k × d_k`), starting
    /// `pos` tokens into the stream with carried projector `p0`, reset to zero before every token at a shard
    /// start (`pos + t ≡ 0 mod shard`, 0-based).
    pub fn projectors(k: ArrayView2<f64>, p0: &Array2<f64>, pos: usize, shard: usize) -> Vec<Array2<f64>> {
        let mut p = p0.clone();
        let mut out = vec![];
        for t in 0..k.nrows() {
            if (pos + t) % shard == 0 {
                p.fill(0.0);
            }
            accumulate(&mut p, k.row(t));
            out.push(p.clone());
        }
        out
    }

    /// Eq. 8 written as its explicit double sum over all past keys (no reset, no recurrence):
    /// `q̃_t = Σ_{τ ≤ t} k_τ (k_τᵀ q_t) / ‖k_τ‖²`, rows are tokens.
    pub fn project_all_past(k: ArrayView2<f64>, q: ArrayView2<f64>) -> Array2<f64> {
        let (t_len, d) = (q.nrows(), q.ncols());
        let mut out = Array2::zeros((t_len, d));
        for t in 0..t_len {
            for tau in 0..=t {
                let kt = k.row(tau);
                let c = kt.dot(&q.row(t)) / kt.dot(&kt).max(MIN_KEY_NORM2);
                for j in 0..d {
                    out[[t, j]] += c * kt[j];
                }
            }
        }
        out
    }

    /// Eq. 9: the same sum without the normalisation (`Σ_{τ ≤ t} k_τ k_τᵀ q_t`), equal to Eq. 8 for unit keys.
    pub fn project_all_past_unit_keys(k: ArrayView2<f64>, q: ArrayView2<f64>) -> Array2<f64> {
        let (t_len, d) = (q.nrows(), q.ncols());
        let mut out = Array2::zeros((t_len, d));
        for t in 0..t_len {
            for tau in 0..=t {
                let c = k.row(tau).dot(&q.row(t));
                for j in 0..d {
                    out[[t, j]] += c * k[[tau, j]];
                }
            }
        }
        out
    }
}

/// The block (prefix-sum) form, batched over any leading dims.
pub mod torch {
    use super::MIN_KEY_NORM2;
    use tch::Tensor;

    /// Unit keys `k̂ = k/‖k‖` (so that `k̂ k̂ᵀ = k kᵀ/‖k‖²`), `[.., T, d_k]`.
    pub fn unit_keys(k: &Tensor) -> Tensor {
        let n2 = k.square().sum_dim_intlist(&[-1i64][..], true, k.kind()).clamp_min(MIN_KEY_NORM2);
        k / n2.sqrt()
    }

    /// One block inside one shard: `k, q [.., L, d_k]`, carried projector `p0 [.., d_k, d_k]`; returns the
    /// projected queries `Q̃ = Q P₀ᵀ + tril(Q K̂ᵀ) K̂` (rows `P_t q_t`) and `P_end = P₀ + K̂ᵀ K̂`.
    pub fn prefix_project(k: &Tensor, q: &Tensor, p0: &Tensor) -> (Tensor, Tensor) {
        let kh = unit_keys(k);
        let scores = q.matmul(&kh.transpose(-1, -2)).tril(0);
        let qt = q.matmul(&p0.transpose(-1, -2)) + scores.matmul(&kh);
        let p_end = p0 + kh.transpose(-1, -2).matmul(&kh);
        (qt, p_end)
    }
}
