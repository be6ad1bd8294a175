//! The long-term memory as a layer of a model (Titans §3.1 and §4.4): projections (Eq. 11), data-dependent
//! gates, the memory update (Eqs. 12–14, through [`crate::titans::linear_memory::torch::forward`]) and
//! retrieval (Eqs. 15 and 21).
//!
//! Choices where v1 is silent (each a config field in `model.memory`):
//! * §4.4's order, which v1 does not fix, read as projection → short causal depthwise convolution (kernel
//!   `conv_kernel`, 4 as in MIRAS; 0 = "w/o convolution") → SiLU → ℓ2 norm (q and k only):
//!   `k_t = ℓ2norm(SiLU(conv(W_K x)_t))`, `q_t` alike, `v_t = SiLU(conv(W_V x)_t)`, split into heads.
//!   The convolution makes each key and value see the previous tokens, which associative recall needs.
//! * Gates from the token: `α_t = σ(w_α·x_t + b_α)`, `η_t = σ(w_η·x_t + b_η)`, `θ_t = max_lr·σ(w_θ·x_t + b_θ)`,
//!   one scalar per head and token, biases initialised to −4 (α ≈ 0.02), 0 (η = 0.5) and 0 (θ = max_lr/2).
//!   `momentum: false` pins η = 0 ("w/o momentum"), `forgetting: false` pins α = 0 ("w/o weight decay").
//! * `M_0 = 0`, `S_0 = 0` (not learned); the loss scale is Eq. 12's c = 1.
//! * `chunk_size` 1 runs the sequential rule; C > 1 the chunkwise form (Eqs. 16–18, gradients at each chunk's
//!   start): a different, faster model, as the paper trains it.

use super::blocks::{l2_normalize, merge_heads, split_heads};
use crate::experiment::spec::MemorySpec;
use crate::memory::ReadMode;
use crate::titans::linear_memory::torch as lm;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The memory state of one layer: `M` and `S` `[B, H, d, d]`, and the last `conv_kernel − 1` inputs of the
/// write stream (`tail`) and of MAC's separate read stream (`read_tail`), so chained calls convolve across
/// the boundary exactly as one call would.
#[derive(Debug)]
pub struct MemoryState {
    pub m: Tensor,
    pub s: Tensor,
    pub tail: Option<Tensor>,
    pub read_tail: Option<Tensor>,
}

impl MemoryState {
    pub fn zeros(b: i64, heads: i64, d: i64, kind: Kind, device: tch::Device) -> Self {
        Self {
            m: Tensor::zeros([b, heads, d, d], (kind, device)),
            s: Tensor::zeros([b, heads, d, d], (kind, device)),
            tail: None,
            read_tail: None,
        }
    }
}

/// Causal depthwise convolution along time of `x [B, T, D]` with weights `w [D, 1, K]`, continuing from the
/// previous call's last `K − 1` inputs `tail [B, K−1, D]` (zeros when absent).
pub fn causal_depthwise_conv(x: &Tensor, w: &Tensor, tail: Option<&Tensor>) -> Tensor {
    let (b, _, d) = x.size3().unwrap();
    let k = w.size()[2];
    let past = match tail {
        Some(p) => p.shallow_clone(),
        None => Tensor::zeros([b, k - 1, d], (x.kind(), x.device())),
    };
    let full = Tensor::cat(&[past, x.shallow_clone()], 1);
    full.transpose(1, 2).conv1d(w, None::<Tensor>, [1], [0], [1], d).transpose(1, 2)
}

#[derive(Debug)]
pub struct MemoryLayer {
    wq: nn::Linear,
    wk: nn::Linear,
    wv: nn::Linear,
    wo: nn::Linear,
    gates: nn::Linear,
    /// depthwise kernels `[D, 1, K]` for q, k, v (absent when `conv_kernel` is 0)
    conv: Option<[Tensor; 3]>,
    heads: i64,
    spec: MemorySpec,
}

/// Projected inputs of the memory: `k, v, q [B, H, T, d]`, gates `[B, H, T]`.
struct Projected {
    k: Tensor,
    v: Tensor,
    q: Tensor,
    alpha: Tensor,
    eta: Tensor,
    theta: Tensor,
}

impl MemoryLayer {
    pub fn new(p: &nn::Path, dim: i64, heads: i64, spec: &MemorySpec) -> Self {
        let c = nn::LinearConfig { bias: false, ..Default::default() };
        let gates = nn::linear(p / "gates", dim, 3 * heads, Default::default());
        tch::no_grad(|| {
            let b = gates.bs.as_ref().unwrap();
            let _ = b.narrow(0, 0, heads).fill_(-4.0);
            let _ = b.narrow(0, heads, 2 * heads).fill_(0.0);
        });
        let kernel = spec.conv_kernel as i64;
        // initialised as the identity (weight 1 on the current token) plus small noise
        let conv_init = |name: &str| {
            let w = p.var(name, &[dim, 1, kernel], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
            tch::no_grad(|| {
                let _ = w.narrow(2, kernel - 1, 1).fill_(1.0);
            });
            w
        };
        let conv = (kernel > 0).then(|| [conv_init("conv_q"), conv_init("conv_k"), conv_init("conv_v")]);
        Self {
            conv,
            wq: nn::linear(p / "wq", dim, dim, c),
            wk: nn::linear(p / "wk", dim, dim, c),
            wv: nn::linear(p / "wv", dim, dim, c),
            wo: nn::linear(p / "wo", dim, dim, c),
            gates,
            heads,
            spec: spec.clone(),
        }
    }

    pub fn head_dim(&self, dim: i64) -> i64 {
        dim / self.heads
    }

    pub fn heads(&self) -> i64 {
        self.heads
    }

    /// The weights and settings as f64 arrays for the reference: projections `[out, in]`, convolution kernels
    /// `[D, K]` (from `[D, 1, K]`), gates `[3H, D]` and `[3H]` (rows α₀…α_{H−1}, η₀…, θ₀…).
    pub fn weights(&self) -> anyhow::Result<super::reference::MemoryWeights> {
        use super::blocks::{matrix, vector};
        let conv = match &self.conv {
            Some(c) => {
                let k = |w: &Tensor| matrix(&w.squeeze_dim(1));
                Some([k(&c[0])?, k(&c[1])?, k(&c[2])?])
            }
            None => None,
        };
        Ok(super::reference::MemoryWeights {
            wq: matrix(&self.wq.ws)?,
            wk: matrix(&self.wk.ws)?,
            wv: matrix(&self.wv.ws)?,
            wo: matrix(&self.wo.ws)?,
            conv,
            gates_w: matrix(&self.gates.ws)?,
            gates_b: vector(self.gates.bs.as_ref().expect("gates have a bias"))?,
            heads: self.heads as usize,
            max_lr: self.spec.max_lr,
            momentum: self.spec.momentum,
            forgetting: self.spec.forgetting,
            read: self.spec.read,
            chunk: self.spec.chunk_size,
        })
    }

    /// `SiLU(conv(W x))` for one of q (0), k (1), v (2), continuing the stream's convolution from `tail`.
    fn conv_path(&self, which: usize, wx: Tensor, tail: Option<&Tensor>) -> Tensor {
        match &self.conv {
            Some(w) => causal_depthwise_conv(&wx, &w[which], tail).silu(),
            None => wx.silu(),
        }
    }

    /// The tail of the raw projections is what the convolution needs; all three streams share one input, so
    /// one tail of `x` serves q, k and v: the projections of the tail are recomputed (cheap, K − 1 tokens).
    fn projected_stream(&self, which: usize, x: &Tensor, tail: Option<&Tensor>) -> Tensor {
        let w = match which {
            0 => &self.wq,
            1 => &self.wk,
            _ => &self.wv,
        };
        let projected_tail = tail.map(|t| w.forward(t));
        self.conv_path(which, w.forward(x), projected_tail.as_ref())
    }

    /// The new input tail after consuming `x` (last `K − 1` inputs, across calls).
    fn next_tail(&self, x: &Tensor, tail: Option<&Tensor>) -> Option<Tensor> {
        let k = self.spec.conv_kernel as i64;
        if k <= 1 {
            return None;
        }
        let (b, _, d) = x.size3().unwrap();
        let past =
            tail.map(|t| t.shallow_clone()).unwrap_or_else(|| Tensor::zeros([b, k - 1, d], (x.kind(), x.device())));
        let full = Tensor::cat(&[past, x.shallow_clone()], 1);
        let n = full.size()[1];
        Some(full.narrow(1, n - (k - 1), k - 1))
    }

    /// Eq. 11 with §4.4's convolution, SiLU and ℓ2 norm of q and k, and the gates.
    fn project(&self, x: &Tensor, tail: Option<&Tensor>) -> Projected {
        let h = self.heads;
        let q = l2_normalize(&split_heads(&self.projected_stream(0, x, tail), h));
        let k = l2_normalize(&split_heads(&self.projected_stream(1, x, tail), h));
        let v = split_heads(&self.projected_stream(2, x, tail), h);
        // gates [B, T, 3H] → three [B, H, T]
        let g = self.gates.forward(x).transpose(1, 2);
        let alpha_raw = g.narrow(1, 0, h).sigmoid();
        let eta_raw = g.narrow(1, h, h).sigmoid();
        let theta = g.narrow(1, 2 * h, h).sigmoid() * self.spec.max_lr;
        let alpha = if self.spec.forgetting { alpha_raw } else { alpha_raw.zeros_like() };
        let eta = if self.spec.momentum { eta_raw } else { eta_raw.zeros_like() };
        Projected { k, v, q, alpha, eta, theta }
    }

    /// Writes the tokens of `x [B, T, D]` into the memory token by token and reads each token's query
    /// (Eqs. 12–15). Returns the layer output `[B, T, D]` and the state after the last token.
    pub fn forward(&self, x: &Tensor, state: Option<MemoryState>, read: ReadMode) -> (Tensor, MemoryState) {
        let (b, _, dim) = x.size3().unwrap();
        let d = self.head_dim(dim);
        let st = state.unwrap_or_else(|| MemoryState::zeros(b, self.heads, d, x.kind(), x.device()));
        let p = self.project(x, st.tail.as_ref());
        // Eqs. 12–15 token by token, or Eqs. 16–18 with gradients frozen at each chunk's start
        let o = match self.spec.chunk_size {
            0 | 1 => lm::forward(&p.k, &p.v, &p.q, &p.alpha, &p.eta, &p.theta, &st.m, &st.s, 1.0, read),
            c => crate::titans::chunkwise::torch::linear_forward(
                &p.k, &p.v, &p.q, &p.alpha, &p.eta, &p.theta, &st.m, &st.s, c, 1.0, read,
            ),
        };
        let tail = self.next_tail(x, st.tail.as_ref());
        (self.wo.forward(&merge_heads(&o.y)), MemoryState { m: o.m_final, s: o.s_final, tail, read_tail: st.read_tail })
    }

    /// Retrieval without update, `y_t = M*(q_t)` with the given state (Eqs. 15 and 21); the queries' stream
    /// convolution continues from `state.read_tail`, which is advanced.
    pub fn read(&self, x: &Tensor, state: &mut MemoryState) -> Tensor {
        let q = l2_normalize(&split_heads(&self.projected_stream(0, x, state.read_tail.as_ref()), self.heads));
        state.read_tail = self.next_tail(x, state.read_tail.as_ref());
        // M [B,H,d,d] applied to every query [B,H,T,d]: y = q Mᵀ
        let y = q.matmul(&state.m.transpose(-2, -1));
        self.wo.forward(&merge_heads(&y))
    }
}
