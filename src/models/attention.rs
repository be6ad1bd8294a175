//! Titans (arXiv 2501.00663 v1) §2.1, Eqs. 2–5: the attention building blocks the models use.
//!
//! * Eq. 2, causal softmax attention (one head, rows are tokens, scale `1/√d` by default):
//!   $$y_i = \sum_{j\le i} \frac{\exp(q_i^\top k_j\,s)}{\sum_{\ell\le i}\exp(q_i^\top k_\ell\,s)}\,v_j$$
//!   with two options the models need: a sliding window `w` (token i sees `i − w < j ≤ i`, Eq. 27/31's
//!   SW-Attn) and an always-visible prefix of `N_p` tokens (the persistent memory of Fig. 3b: `j < N_p` is
//!   exempt from the window, never from causality).
//! * Eq. 3, linear attention with a feature map φ (the consistent kernel property is `φ(x)ᵀφ(y)`):
//!   $$y_i = \frac{\phi(q_i)^\top \sum_{j\le i}\phi(k_j) v_j^\top}{\phi(q_i)^\top \sum_{\ell\le i}\phi(k_\ell)}$$
//!   φ = elu + 1 by default (positive, so the denominator is positive; the paper names no φ).
//! * Eqs. 4–5 (project form, `M ∈ R^{d_v×d_k}`): $$M_t = M_{t-1} + v_t k_t^\top,\qquad y_t = M_t q_t$$
//!   the unnormalised identity-kernel form (Eq. 3 without its denominator).
//!
//! [`reference`]: explicit loops (Eq. 2 and Eq. 3 in their pairwise left-hand forms, Eqs. 4–5 as the
//! recurrence). [`torch`]: batched `[B, H, T, d]` (Eq. 2 with a boolean mask, Eq. 3 with cumulative state
//! sums — its right-hand form, Eqs. 4–5 in the parallel form `tril(QKᵀ)V`).

/// The feature map φ of Eq. 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureMap {
    /// `φ(x) = elu(x) + 1` (positive)
    #[default]
    EluPlusOne,
    /// `φ(x) = x` (the denominator may vanish; use only with positive inputs)
    Identity,
}

/// Which keys a query sees in Eq. 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mask {
    /// sliding window `w`: token i sees `j > i − w`; `None` = full causal
    pub window: Option<usize>,
    /// the first `prefix` tokens are visible to every later token regardless of the window
    pub prefix: usize,
}

impl Mask {
    /// Whether query `i` sees key `j` (0-based).
    pub fn visible(&self, i: usize, j: usize) -> bool {
        j <= i && (j < self.prefix || self.window.is_none_or(|w| i - j < w))
    }
}

/// The f64 reference, one head, explicit loops.
pub mod reference {
    use super::{FeatureMap, Mask};
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    fn phi(f: FeatureMap, x: ArrayView1<f64>) -> Array1<f64> {
        match f {
            FeatureMap::EluPlusOne => x.mapv(|u| if u > 0.0 { u + 1.0 } else { u.exp() }),
            FeatureMap::Identity => x.to_owned(),
        }
    }

    /// Eq. 2: `q, k` are `T × d_k`, `v` is `T × d_v`; a max-shifted softmax over the visible keys.
    pub fn softmax_attention(
        q: ArrayView2<f64>,
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        scale: f64,
        mask: Mask,
    ) -> Array2<f64> {
        let (t_len, d_v) = (q.nrows(), v.ncols());
        let mut y = Array2::zeros((t_len, d_v));
        for i in 0..t_len {
            let seen: Vec<usize> = (0..t_len).filter(|&j| mask.visible(i, j)).collect();
            let scores: Vec<f64> = seen.iter().map(|&j| q.row(i).dot(&k.row(j)) * scale).collect();
            let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
            let z: f64 = w.iter().sum();
            for (&j, wj) in seen.iter().zip(&w) {
                for c in 0..d_v {
                    y[[i, c]] += wj / z * v[[j, c]];
                }
            }
        }
        y
    }

    /// Eq. 3 in its pairwise form `Σ_j φ(q_i)ᵀφ(k_j) v_j / Σ_ℓ φ(q_i)ᵀφ(k_ℓ)`.
    pub fn linear_attention(q: ArrayView2<f64>, k: ArrayView2<f64>, v: ArrayView2<f64>, f: FeatureMap) -> Array2<f64> {
        let (t_len, d_v) = (q.nrows(), v.ncols());
        let mut y = Array2::zeros((t_len, d_v));
        for i in 0..t_len {
            let pq = phi(f, q.row(i));
            let sims: Vec<f64> = (0..=i).map(|j| pq.dot(&phi(f, k.row(j)))).collect();
            let z: f64 = sims.iter().sum();
            for (j, s) in sims.iter().enumerate() {
                for c in 0..d_v {
                    y[[i, c]] += s / z * v[[j, c]];
                }
            }
        }
        y
    }

    /// Eqs. 4–5, the recurrence: returns `(y, M_T)`.
    pub fn linear_attention_state(
        q: ArrayView2<f64>,
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_k, d_v) = (q.nrows(), q.ncols(), v.ncols());
        let mut m = Array2::zeros((d_v, d_k));
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            // Eq. 4: M_t = M_{t−1} + v_t k_tᵀ
            for a in 0..d_v {
                for b in 0..d_k {
                    m[[a, b]] += v[[t, a]] * k[[t, b]];
                }
            }
            // Eq. 5: y_t = M_t q_t
            y.row_mut(t).assign(&m.dot(&q.row(t)));
        }
        (y, m)
    }
}

/// The tch implementation, batched `[B, H, T, d]`.
pub mod torch {
    use super::{FeatureMap, Mask};
    use tch::{Kind, Tensor};

    fn phi(f: FeatureMap, x: &Tensor) -> Tensor {
        match f {
            FeatureMap::EluPlusOne => x.elu() + 1.0,
            FeatureMap::Identity => x.shallow_clone(),
        }
    }

    /// The boolean `[T_q, T_k]` visibility matrix of `mask` (query i, key j).
    pub fn visibility(t: i64, mask: Mask, device: tch::Device) -> Tensor {
        let i = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(1);
        let j = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(0);
        let causal = j.le_tensor(&i);
        let mut ok = match mask.window {
            Some(w) => (&i - &j).lt(w as i64),
            None => causal.ones_like(),
        };
        if mask.prefix > 0 {
            ok = ok.logical_or(&j.lt(mask.prefix as i64));
        }
        causal.logical_and(&ok)
    }

    /// Eq. 2: causal softmax attention with optional sliding window and always-visible prefix.
    pub fn softmax_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, mask: Mask) -> Tensor {
        let vis = visibility(q.size()[2], mask, q.device());
        softmax_attention_visible(q, k, v, scale, &vis)
    }

    /// Eq. 2 under an explicit boolean visibility matrix `[T_q, T_k]` (true = may attend); the models use it
    /// for masks that [`Mask`] does not describe (MAC's queries over `p ‖ h ‖ S`).
    pub fn softmax_attention_visible(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, visible: &Tensor) -> Tensor {
        let scores = q.matmul(&k.transpose(-1, -2)) * scale;
        let scores = scores.masked_fill(&visible.logical_not(), f64::NEG_INFINITY);
        scores.softmax(-1, q.kind()).matmul(v)
    }

    /// Eq. 3 in its right-hand form: cumulative state `Σ_{j≤i} φ(k_j) v_jᵀ` and normaliser `Σ_{j≤i} φ(k_j)`.
    pub fn linear_attention(q: &Tensor, k: &Tensor, v: &Tensor, f: FeatureMap) -> Tensor {
        let (pq, pk) = (phi(f, q), phi(f, k));
        // [B, H, T, d_k, d_v], cumulative over T
        let states = pk.unsqueeze(-1).matmul(&v.unsqueeze(-2)).cumsum(2, q.kind());
        let norms = pk.cumsum(2, q.kind());
        let num = pq.unsqueeze(-2).matmul(&states).squeeze_dim(-2);
        let den = (&pq * norms).sum_dim_intlist([-1i64].as_slice(), true, q.kind());
        num / den
    }

    /// Eqs. 4–5 in parallel form: `Y = tril(Q Kᵀ) V`, `M_T = Vᵀ K`; returns `(y, M_T)`.
    pub fn linear_attention_state(q: &Tensor, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let y = q.matmul(&k.transpose(-1, -2)).tril(0).matmul(v);
        let m = v.transpose(-1, -2).matmul(k);
        (y, m)
    }
}
