//! Titans (arXiv 2501.00663 v1) Eqs. 1 and 11 with the §4.4 details: the query/key/value projections of the
//! memory branch and the data-dependent gates α_t, η_t, θ_t.
//!
//! * Eqs. 1/11 (project form, columns): $$q_t = W_Q x_t,\quad k_t = W_K x_t,\quad v_t = W_V x_t$$
//! * §4.4: each projection is followed by a 1-D depthwise-separable causal convolution and SiLU, and q, k are
//!   ℓ2-normalised. Per stream and channel `ch`, with kernel size `K`:
//!   $$z_t = W x_t,\qquad c_t[ch] = \sum_{j=0}^{K-1} w_{ch,j}\, z_{t-K+1+j}[ch]\ \ (z_{<1} = 0),\qquad
//!     a_t = \mathrm{SiLU}(c_t),\qquad \hat a_t = a_t / \max(\lVert a_t\rVert_2, \epsilon)$$
//!   (`w_{ch,K−1}` weighs the current token, PyTorch's `conv1d` layout).
//! * Gates (Eqs. 13–14 say only that they are functions of x_t):
//!   $$\alpha_t = \mathrm{sigmoid}(w_\alpha^\top x_t + b_\alpha),\quad \eta_t = \mathrm{sigmoid}(w_\eta^\top x_t + b_\eta),\quad
//!     \theta_t = \theta_{\max}\,\mathrm{sigmoid}(w_\theta^\top x_t + b_\theta)$$
//!   one scalar per token and head.
//!
//! **What v1 leaves open, and what this module chooses** (fields of [`ProjectionConfig`] / arguments):
//! the order is projection → convolution → SiLU → ℓ2-norm (Titans does not state it); the kernel size is 4
//! (MIRAS, same authors, says 4; Titans does not), `conv_kernel = 0` switches the convolution off; the
//! convolution has no bias; v gets conv + SiLU but no normalisation; the gates are sigmoid(linear(x)) with θ
//! scaled by a maximal learning rate θ_max (as lucidrains/titans-pytorch does; the paper gives no form, no
//! range for η and θ, and no bias initialisation). The convolution starts from zeros at every call (no conv
//! state is carried across calls; the models carry the last `K − 1` inputs themselves if they need to).

/// One projection stream (q, k or v).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionConfig {
    /// kernel size of the causal depthwise convolution; 0 = no convolution
    pub conv_kernel: usize,
    pub silu: bool,
    pub l2_normalize: bool,
    /// ε in `a / max(‖a‖, ε)`
    pub eps: f64,
}

impl ProjectionConfig {
    /// q and k: conv (kernel 4) → SiLU → ℓ2-norm.
    pub fn query_key() -> Self {
        Self { conv_kernel: 4, silu: true, l2_normalize: true, eps: 1e-12 }
    }
    /// v: conv (kernel 4) → SiLU, not normalised.
    pub fn value() -> Self {
        Self { conv_kernel: 4, silu: true, l2_normalize: false, eps: 1e-12 }
    }
}

/// The f64 reference, one head, explicit loops over tokens, channels and taps.
pub mod reference {
    use super::ProjectionConfig;
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Eqs. 1/11 + §4.4 for one head: `x` is `T × d_in`, `w` is `d_out × d_in`, `conv` is `d_out × K`
    /// (ignored when `cfg.conv_kernel = 0`); returns `T × d_out`.
    pub fn project(
        x: ArrayView2<f64>,
        w: ArrayView2<f64>,
        conv: ArrayView2<f64>,
        cfg: &ProjectionConfig,
    ) -> Array2<f64> {
        let (t_len, d_in) = x.dim();
        let d_out = w.nrows();
        // z_t = W x_t
        let mut z = Array2::zeros((t_len, d_out));
        for t in 0..t_len {
            for o in 0..d_out {
                z[[t, o]] = (0..d_in).map(|i| w[[o, i]] * x[[t, i]]).sum();
            }
        }
        // c_t[ch] = Σ_j w_{ch,j} z_{t−K+1+j}[ch], zero before the first token
        let kk = cfg.conv_kernel;
        let mut c = z.clone();
        if kk > 0 {
            for t in 0..t_len {
                for o in 0..d_out {
                    let mut acc = 0.0;
                    for j in 0..kk {
                        let src = t as isize - kk as isize + 1 + j as isize;
                        if src >= 0 {
                            acc += conv[[o, j]] * z[[src as usize, o]];
                        }
                    }
                    c[[t, o]] = acc;
                }
            }
        }
        // a_t = SiLU(c_t)
        if cfg.silu {
            c.mapv_inplace(|u| u * sigmoid(u));
        }
        // â_t = a_t / max(‖a_t‖, ε)
        if cfg.l2_normalize {
            for mut row in c.rows_mut() {
                let n = row.iter().map(|u| u * u).sum::<f64>().sqrt().max(cfg.eps);
                row.mapv_inplace(|u| u / n);
            }
        }
        c
    }

    /// The gates of one head: `w` is `3 × d_in` (rows α, η, θ), `b` has 3 entries.
    pub fn gates(
        x: ArrayView2<f64>,
        w: ArrayView2<f64>,
        b: ArrayView1<f64>,
        theta_max: f64,
    ) -> (Array1<f64>, Array1<f64>, Array1<f64>) {
        let t_len = x.nrows();
        let lin = |g: usize, t: usize| (0..x.ncols()).map(|i| w[[g, i]] * x[[t, i]]).sum::<f64>() + b[g];
        let alpha = Array1::from_shape_fn(t_len, |t| sigmoid(lin(0, t)));
        let eta = Array1::from_shape_fn(t_len, |t| sigmoid(lin(1, t)));
        let theta = Array1::from_shape_fn(t_len, |t| theta_max * sigmoid(lin(2, t)));
        (alpha, eta, theta)
    }
}

/// The tch implementation, batched: one matmul for all heads, `conv1d` with `groups = H · d_out`.
pub mod torch {
    use super::ProjectionConfig;
    use tch::Tensor;

    /// `x [B, T, d_in]`, `w [H, d_out, d_in]`, `conv [H, d_out, K]` → `[B, H, T, d_out]`.
    pub fn project(x: &Tensor, w: &Tensor, conv: &Tensor, cfg: &ProjectionConfig) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let (h, d_out) = (w.size()[0], w.size()[1]);
        // z = W x for every head: [B, 1, T, d_in] × [H, d_in, d_out]
        let z = x.unsqueeze(1).matmul(&w.transpose(-1, -2));
        let mut c = if cfg.conv_kernel > 0 {
            let kk = cfg.conv_kernel as i64;
            let channels = z.transpose(-1, -2).reshape([b, h * d_out, t]);
            let padded = channels.constant_pad_nd([kk - 1, 0]);
            let out = padded.conv1d(&conv.reshape([h * d_out, 1, kk]), None::<Tensor>, [1], [0], [1], h * d_out);
            out.reshape([b, h, d_out, t]).transpose(-1, -2)
        } else {
            z
        };
        if cfg.silu {
            c = c.silu();
        }
        if cfg.l2_normalize {
            let norm = c.square().sum_dim_intlist([-1i64].as_slice(), true, c.kind()).sqrt().clamp_min(cfg.eps);
            c = c / norm;
        }
        c
    }

    /// Gates from `x [B, T, d_in]`, `w [H, 3, d_in]` (α, η, θ), `b [H, 3]` → three `[B, H, T]` tensors.
    pub fn gates(x: &Tensor, w: &Tensor, b: &Tensor, theta_max: f64) -> (Tensor, Tensor, Tensor) {
        // [B, 1, T, d_in] × [H, d_in, 3] + [H, 1, 3] → [B, H, T, 3]
        let logits = x.unsqueeze(1).matmul(&w.transpose(-1, -2)) + b.unsqueeze(1);
        let s = logits.sigmoid();
        (s.select(-1, 0), s.select(-1, 1), s.select(-1, 2) * theta_max)
    }
}
