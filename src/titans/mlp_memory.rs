//! Titans (arXiv 2501.00663 v1) §3.1 "Memory architecture" and §4.4: the **deep** neural memory, an MLP with
//! `L_M ≥ 1` layers updated at test time by Eqs. 12–15 (`L_M = 1` is the linear memory of
//! [`super::linear_memory`]).
//!
//! The memory is a parameter set `M = (W^{(1)}, …, W^{(L_M)})`, layers numbered in the order they are
//! applied (`W^{(1)}` sees the key). With `a_0 = k`:
//! $$h_l = W^{(l)} a_{l-1},\quad a_l = \sigma(h_l)\ (l < L_M),\qquad M(k) = W^{(L_M)} a_{L_M-1}\ \big(+\,k \text{ if residual}\big)$$
//! * Eq. 12: $$\ell(M; k, v) = c\,\lVert M(k) - v\rVert_2^2$$ with the explicit `loss_scale` `c` (no hidden ½).
//!   Hand-derived gradient (catalog §7.2): $$\bar g_{L_M} = 2c\,(M(k) - v),\quad
//!   \nabla_{W^{(l)}}\ell = \bar g_l\,a_{l-1}^\top,\quad \bar g_{l-1} = (W^{(l)\top}\bar g_l)\odot\sigma'(h_{l-1})$$
//! * Eqs. 13–14, applied to every weight matrix with the same scalar gates:
//!   $$S^{(l)}_t = \eta_t S^{(l)}_{t-1} - \theta_t \nabla_{W^{(l)}}\ell(M_{t-1}; k_t, v_t),\qquad
//!   W^{(l)}_t = (1-\alpha_t) W^{(l)}_{t-1} + S^{(l)}_t$$
//! * Eq. 15: $$y_t = M_t(q_t)$$ (read after write, default) or $$y_t = M_{t-1}(q_t)$$ ([`ReadMode::BeforeWrite`]).
//!
//! **What v1 leaves open, and what this module chooses** (all fields of [`MlpConfig`]):
//! * activation σ: §4.4 says SiLU is used for q/k/v; the paper names no activation *inside* the memory. We use
//!   SiLU ([`Activation::Silu`]); [`Activation::Gelu`] (exact, `x Φ(x)` with the error function — what
//!   titans-pytorch's `MemoryMLP` uses) and [`Activation::Identity`] (a deep linear memory) are the alternatives.
//! * hidden width: not stated (peers use 4× the key width); `hidden` is a config field, default `4·d_k` in the
//!   models; the checks use odd widths.
//! * residual connection / normalisation inside the memory: not stated. `residual = true` adds the key to the
//!   output (`M(k) = k + MLP(k)`, needs `d_k = d_v`); no LayerNorm (MIRAS adds one; Titans does not say).
//! * bias terms: none (the paper writes the memory as matrices).
//! * initial weights `M_0` and surprise `S_0` are inputs (zero, random or learned is the model's choice).
//!
//! [`reference`]: f64 ndarray, one head, token by token, hand-written backprop for the inner gradient.
//! [`torch`]: tch batched over `[B, H]`, inner gradient by autograd with `create_graph` so that outer gradients
//! (of the gates, keys, values, `M_0`, …) include the second-order terms through `∇ℓ`.

pub use crate::memory::{LossScale, ReadMode};

pub use crate::memory::activation::Activation;

/// Shape of the deep memory (see the module doc for what v1 leaves open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpConfig {
    /// `L_M ≥ 1`, the number of weight matrices; 1 is the linear memory.
    pub layers: usize,
    /// width of the hidden layers (unused when `layers = 1`).
    pub hidden: usize,
    pub activation: Activation,
    /// `M(k) = k + MLP(k)` (requires `d_k = d_v`).
    pub residual: bool,
}

impl MlpConfig {
    pub fn new(layers: usize, hidden: usize) -> Self {
        Self { layers, hidden, activation: Activation::Silu, residual: false }
    }

    /// `(rows, cols)` of `W^{(1)} … W^{(L_M)}` for keys of width `d_k` and values of width `d_v`.
    pub fn shapes(&self, d_k: usize, d_v: usize) -> Vec<(usize, usize)> {
        assert!(self.layers >= 1, "an MLP memory needs L_M >= 1 layers");
        assert!(!self.residual || d_k == d_v, "a residual memory needs d_k = d_v");
        (0..self.layers)
            .map(|l| {
                let rows = if l + 1 == self.layers { d_v } else { self.hidden };
                let cols = if l == 0 { d_k } else { self.hidden };
                (rows, cols)
            })
            .collect()
    }

    /// Total number of memory parameters.
    pub fn n_params(&self, d_k: usize, d_v: usize) -> usize {
        self.shapes(d_k, d_v).iter().map(|(r, c)| r * c).sum()
    }
}

/// The f64 ndarray reference: one head, token by token, hand-written backprop.
pub mod reference {
    use super::{MlpConfig, ReadMode};
    use ndarray::{Array1, Array2, ArrayView1};

    /// `W^{(1)} … W^{(L_M)}` (or the matching surprise tensors), in the order they are applied.
    pub type Params = Vec<Array2<f64>>;

    /// Inputs of one head. Rows of `k`, `v`, `q` are tokens.
    #[derive(Debug, Clone)]
    pub struct Inputs {
        pub k: Array2<f64>,
        pub v: Array2<f64>,
        pub q: Array2<f64>,
        pub alpha: Array1<f64>,
        pub eta: Array1<f64>,
        pub theta: Array1<f64>,
        pub m0: Params,
        pub s0: Params,
    }

    /// Outputs `y` (`T × d_v`) and the final memory and surprise.
    #[derive(Debug, Clone)]
    pub struct Trace {
        pub y: Array2<f64>,
        pub m_final: Params,
        pub s_final: Params,
    }

    /// The forward pass keeping what backprop needs: the inputs `a_{l−1}` and pre-activations `h_l` of
    /// every layer.
    fn forward_cached(
        p: &Params,
        cfg: &MlpConfig,
        x: ArrayView1<f64>,
    ) -> (Array1<f64>, Vec<Array1<f64>>, Vec<Array1<f64>>) {
        let mut inputs = vec![];
        let mut pre = vec![];
        let mut a = x.to_owned();
        for (l, w) in p.iter().enumerate() {
            // h_l = W^{(l)} a_{l−1}
            let h = w.dot(&a);
            inputs.push(a);
            // a_l = σ(h_l) between layers; the last layer is linear
            a = if l + 1 < p.len() { h.mapv(|z| cfg.activation.value(z)) } else { h.clone() };
            pre.push(h);
        }
        if cfg.residual {
            a = a + x;
        }
        (a, inputs, pre)
    }

    /// Eq. 15's read `M(x)`: a forward pass without any update.
    pub fn apply(p: &Params, cfg: &MlpConfig, x: ArrayView1<f64>) -> Array1<f64> {
        forward_cached(p, cfg, x).0
    }

    /// Eq. 12: `ℓ = c‖M(k) − v‖²`.
    pub fn inner_loss(p: &Params, cfg: &MlpConfig, k: ArrayView1<f64>, v: ArrayView1<f64>, loss_scale: f64) -> f64 {
        let e = apply(p, cfg, k) - v;
        loss_scale * e.dot(&e)
    }

    /// Eq. 12's gradient by hand-written backprop:
    /// `ḡ_L = 2c(M(k) − v)`, `∇W^{(l)} = ḡ_l a_{l−1}ᵀ`, `ḡ_{l−1} = (W^{(l)ᵀ} ḡ_l) ⊙ σ'(h_{l−1})`.
    pub fn inner_grad(p: &Params, cfg: &MlpConfig, k: ArrayView1<f64>, v: ArrayView1<f64>, loss_scale: f64) -> Params {
        let (out, inputs, pre) = forward_cached(p, cfg, k);
        let n = p.len();
        let mut grads: Vec<Array2<f64>> = vec![Array2::zeros((0, 0)); n];
        let mut g_bar = (out - v) * (2.0 * loss_scale);
        for l in (0..n).rev() {
            let a_prev = &inputs[l];
            grads[l] = Array2::from_shape_fn((g_bar.len(), a_prev.len()), |(i, j)| g_bar[i] * a_prev[j]);
            if l > 0 {
                let back = p[l].t().dot(&g_bar);
                g_bar = Array1::from_shape_fn(back.len(), |i| back[i] * cfg.activation.slope(pre[l - 1][i]));
            }
        }
        grads
    }

    /// One token of Eqs. 14 and 13 on every weight matrix: returns `(M_t, S_t)`.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        m_prev: &Params,
        s_prev: &Params,
        cfg: &MlpConfig,
        k: ArrayView1<f64>,
        v: ArrayView1<f64>,
        alpha: f64,
        eta: f64,
        theta: f64,
        loss_scale: f64,
    ) -> (Params, Params) {
        // Eq. 12: momentary surprise ∇ℓ(M_{t−1}; k_t, v_t), by hand backprop
        let grad = inner_grad(m_prev, cfg, k, v, loss_scale);
        let mut m = vec![];
        let mut s = vec![];
        for l in 0..m_prev.len() {
            // Eq. 14: S_t = η_t S_{t−1} − θ_t ∇ℓ
            let s_l = &s_prev[l] * eta - &grad[l] * theta;
            // Eq. 13: M_t = (1 − α_t) M_{t−1} + S_t
            m.push(&m_prev[l] * (1.0 - alpha) + &s_l);
            s.push(s_l);
        }
        (m, s)
    }

    /// The whole sequence, token by token.
    pub fn forward(inp: &Inputs, cfg: &MlpConfig, loss_scale: f64, read: ReadMode) -> Trace {
        let t_len = inp.k.nrows();
        let d_v = inp.v.ncols();
        let mut y = Array2::zeros((t_len, d_v));
        let mut m = inp.m0.clone();
        let mut s = inp.s0.clone();
        for t in 0..t_len {
            let (m_t, s_t) =
                step(&m, &s, cfg, inp.k.row(t), inp.v.row(t), inp.alpha[t], inp.eta[t], inp.theta[t], loss_scale);
            // Eq. 15: y_t = M_t(q_t) after write, M_{t−1}(q_t) before
            let read_from = if read == ReadMode::AfterWrite { &m_t } else { &m };
            y.row_mut(t).assign(&apply(read_from, cfg, inp.q.row(t)));
            m = m_t;
            s = s_t;
        }
        Trace { y, m_final: m, s_final: s }
    }
}

/// The tch implementation: batched over `[B, H]`; the inner gradient is autograd's, built with
/// `create_graph` whenever anything upstream requires a gradient (second-order outer gradients).
pub mod torch {
    use super::{MlpConfig, ReadMode};
    pub use crate::memory::autograd::autograd_grads;
    use tch::Tensor;

    /// Outputs: `y [B, H, T, d_v]`, final weights and surprise, each `[B, H, rows, cols]` per layer.
    #[derive(Debug)]
    pub struct Outputs {
        pub y: Tensor,
        pub m_final: Vec<Tensor>,
        pub s_final: Vec<Tensor>,
    }

    /// Eq. 15's read with weights shared by every token: `params[l]` is `[B, H, rows, cols]`, `x` is
    /// `[B, H, N, d_k]` (rows are tokens); returns `[B, H, N, d_v]`.
    pub fn apply(params: &[Tensor], cfg: &MlpConfig, x: &Tensor) -> Tensor {
        let n = params.len();
        let mut a = x.shallow_clone();
        for (l, w) in params.iter().enumerate() {
            // h = a W^{(l)ᵀ} on row vectors
            let h = a.matmul(&w.transpose(-1, -2));
            a = if l + 1 < n { cfg.activation.apply(&h) } else { h };
        }
        if cfg.residual {
            a + x
        } else {
            a
        }
    }

    /// The read with one weight set per token: `params[l]` is `[B, H, N, rows, cols]`, `x` is `[B, H, N, d_k]`.
    pub fn apply_per_token(params: &[Tensor], cfg: &MlpConfig, x: &Tensor) -> Tensor {
        let n = params.len();
        let mut a = x.shallow_clone();
        for (l, w) in params.iter().enumerate() {
            let h = w.matmul(&a.unsqueeze(-1)).squeeze_dim(-1);
            a = if l + 1 < n { cfg.activation.apply(&h) } else { h };
        }
        if cfg.residual {
            a + x
        } else {
            a
        }
    }

    /// Eq. 12's gradient `∇_{W^{(l)}} c‖M(k) − v‖²` by autograd: `k [B, H, d_k]`, `v [B, H, d_v]`; one
    /// gradient per layer, `[B, H, rows, cols]` (heads are independent, so the sum over `B, H` separates).
    pub fn inner_grad(params: &[Tensor], cfg: &MlpConfig, k: &Tensor, v: &Tensor, loss_scale: f64) -> Vec<Tensor> {
        let upstream = k.requires_grad() || v.requires_grad();
        autograd_grads(
            params,
            |p| {
                let e = apply(p, cfg, &k.unsqueeze(-2)).squeeze_dim(-2) - v;
                (e.square() * loss_scale).sum(e.kind())
            },
            upstream,
        )
    }

    /// Eqs. 12–15 over the sequence. `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, gates `[B, H, T]`,
    /// `m0[l], s0[l] [B, H, rows, cols]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        m0: &[Tensor],
        s0: &[Tensor],
        cfg: &MlpConfig,
        loss_scale: f64,
        read: ReadMode,
    ) -> Outputs {
        let t_len = k.size()[2];
        let mut m: Vec<Tensor> = m0.iter().map(|p| p.shallow_clone()).collect();
        let mut s: Vec<Tensor> = s0.iter().map(|p| p.shallow_clone()).collect();
        let mut ys = Vec::with_capacity(t_len as usize);
        let gate = |g: &Tensor, t: i64| g.select(2, t).unsqueeze(-1).unsqueeze(-1);
        for t in 0..t_len {
            let (k_t, v_t, q_t) = (k.select(2, t), v.select(2, t), q.select(2, t));
            // Eq. 12: ∇ℓ(M_{t−1}; k_t, v_t) by autograd (differentiable when an outer gradient is wanted)
            let grad = inner_grad(&m, cfg, &k_t, &v_t, loss_scale);
            let mut m_new = vec![];
            for l in 0..m.len() {
                // Eq. 14: S_t = η_t S_{t−1} − θ_t ∇ℓ
                s[l] = gate(eta, t) * &s[l] - gate(theta, t) * &grad[l];
                // Eq. 13: M_t = (1 − α_t) M_{t−1} + S_t
                m_new.push((1.0 - gate(alpha, t)) * &m[l] + &s[l]);
            }
            // Eq. 15: y_t = M(q_t)
            let read_from = if read == ReadMode::AfterWrite { &m_new } else { &m };
            ys.push(apply(read_from, cfg, &q_t.unsqueeze(-2)).squeeze_dim(-2));
            m = m_new;
        }
        let y = if ys.is_empty() {
            tch::Tensor::zeros([k.size()[0], k.size()[1], 0, v.size()[3]], (k.kind(), k.device()))
        } else {
            Tensor::stack(&ys, 2)
        };
        Outputs { y, m_final: m, s_final: s }
    }
}
