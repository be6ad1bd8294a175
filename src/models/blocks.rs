//! Building blocks of the models: multi-head attention under an explicit mask (Titans Eq. 2 with the masks of
//! Eqs. 23, 27 and 31) and optional rotary positions ([`super::rope`]), the feed-forward layer, and ℓ2
//! normalisation.

use tch::nn::{self, Module};
use tch::Tensor;

/// Row-wise ℓ2 normalisation along the last axis (Titans §4.4, for q and k).
pub fn l2_normalize(x: &Tensor) -> Tensor {
    // the norm's own backward is zero at x = 0 (sqrt of a sum of squares would give 0 · ∞ = NaN there)
    let norm = x.norm_scalaropt_dim(2.0, [-1i64].as_slice(), true).clamp_min(1e-6);
    x / norm
}

/// A rank-2 tensor as an f64 array (for the reference's weights).
pub fn matrix(t: &Tensor) -> anyhow::Result<ndarray::Array2<f64>> {
    Ok(crate::tensor::from_tch(t)?.into_dimensionality::<ndarray::Ix2>()?)
}

/// A rank-1 tensor as an f64 array.
pub fn vector(t: &Tensor) -> anyhow::Result<ndarray::Array1<f64>> {
    Ok(crate::tensor::from_tch(t)?.into_dimensionality::<ndarray::Ix1>()?)
}

/// Splits `[B, T, D]` into heads `[B, H, T, D/H]`.
pub fn split_heads(x: &Tensor, heads: i64) -> Tensor {
    let s = x.size();
    let (b, t, d) = (s[0], s[1], s[2]);
    x.view([b, t, heads, d / heads]).transpose(1, 2)
}

/// Merges `[B, H, T, d]` back into `[B, T, H·d]`.
pub fn merge_heads(x: &Tensor) -> Tensor {
    let s = x.size();
    let (b, h, t, d) = (s[0], s[1], s[2], s[3]);
    x.transpose(1, 2).contiguous().view([b, t, h * d])
}

/// Multi-head softmax attention (Eq. 2) with separate query and key/value sequences and an explicit mask.
#[derive(Debug)]
pub struct Attention {
    wq: nn::Linear,
    wk: nn::Linear,
    wv: nn::Linear,
    wo: nn::Linear,
    heads: i64,
    /// RoPE's base when queries and keys are rotated by their positions
    rope_base: Option<f64>,
}

impl Attention {
    pub fn new(p: &nn::Path, dim: i64, heads: i64, rope_base: Option<f64>) -> Self {
        let c = nn::LinearConfig { bias: false, ..Default::default() };
        Self {
            wq: nn::linear(p / "wq", dim, dim, c),
            wk: nn::linear(p / "wk", dim, dim, c),
            wv: nn::linear(p / "wv", dim, dim, c),
            wo: nn::linear(p / "wo", dim, dim, c),
            heads,
            rope_base,
        }
    }

    /// The weights as f64 arrays (`[out, in]`, as `nn::Linear` stores them) for the reference.
    pub fn weights(&self) -> anyhow::Result<super::reference::AttentionWeights> {
        Ok(super::reference::AttentionWeights {
            wq: matrix(&self.wq.ws)?,
            wk: matrix(&self.wk.ws)?,
            wv: matrix(&self.wv.ws)?,
            wo: matrix(&self.wo.ws)?,
            heads: self.heads as usize,
            rope_base: self.rope_base,
        })
    }

    /// `x_q [B, Tq, D]` attends to `x_kv [B, Tk, D]` where `mask [Tq, Tk]` is true; with RoPE, queries and keys
    /// are rotated by their positions `q_pos [Tq]`, `k_pos [Tk]` (position 0 = not rotated).
    pub fn forward(&self, x_q: &Tensor, x_kv: &Tensor, mask: &Tensor, q_pos: &Tensor, k_pos: &Tensor) -> Tensor {
        let mut q = split_heads(&self.wq.forward(x_q), self.heads);
        let mut k = split_heads(&self.wk.forward(x_kv), self.heads);
        if let Some(base) = self.rope_base {
            q = super::rope::torch::rotate(&q, q_pos, base);
            k = super::rope::torch::rotate(&k, k_pos, base);
        }
        let v = split_heads(&self.wv.forward(x_kv), self.heads);
        let d = q.size()[3] as f64;
        // Eq. 2: softmax(Q Kᵀ / √d) V over the allowed positions
        let out = super::attention::torch::softmax_attention_visible(&q, &k, &v, 1.0 / d.sqrt(), mask);
        self.wo.forward(&merge_heads(&out))
    }
}

/// The feed-forward sub-layer `W₂ GELU(W₁ x)` with a 4× expansion.
#[derive(Debug)]
pub struct FeedForward {
    w1: nn::Linear,
    w2: nn::Linear,
}

impl FeedForward {
    pub fn new(p: &nn::Path, dim: i64) -> Self {
        Self {
            w1: nn::linear(p / "w1", dim, 4 * dim, Default::default()),
            w2: nn::linear(p / "w2", 4 * dim, dim, Default::default()),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.w2.forward(&self.w1.forward(x).gelu("none"))
    }
}
