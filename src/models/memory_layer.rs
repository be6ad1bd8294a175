//! The test-time memory as a layer of a model (Titans §3.1 and §4.4), for any [`MemoryRule`]: projections
//! (Titans Eq. 11), the rule's data-dependent gates, the rule's update and retrieval, the output projection.
//!
//! Choices where the papers are silent (config fields in `model.memory`):
//! * §4.4's order, read as projection → short causal depthwise convolution (kernel `conv_kernel`, 4 as in
//!   MIRAS; 0 = "w/o convolution") → SiLU → ℓ2 norm (q and k only):
//!   `k_t = ℓ2norm(SiLU(conv(W_K x)_t))`, `q_t` alike, `v_t = SiLU(conv(W_V x)_t)`, split into heads.
//! * Gates from the token, one scalar per head and token, in the rule's order ([`GateSpec`]):
//!   `g_t = lo + (hi − lo)·σ(w_g·x_t + b_g)` with `b_g` initialised to the rule's `init_logit`, or the rule's
//!   pinned constant (Titans: α ≈ 0.018, η = ½, θ = max_lr/2 at initialisation; `momentum: false` pins η = 0,
//!   `forgetting: false` pins α = 0). The gate layer is one linear map `D → G·H` (rows gate-major).
//! * Initial states: zeros, or learned per head where the rule says so ([`StateInit`]), broadcast over the
//!   batch; the state carries across calls together with the convolution tails.

use super::blocks::{l2_normalize, merge_heads, split_heads};
use super::spec::MemorySpec;
use crate::memory::rule::{GateSpec, MemoryRule, StateInit};
use crate::memory::ReadMode;
use std::sync::Arc;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The state of one layer: the rule's state tensors `[B, H, …]`, and the last `conv_kernel − 1` inputs of the
/// write stream (`tail`) and of MAC's separate read stream (`read_tail`), so chained calls convolve across the
/// boundary exactly as one call would.
#[derive(Debug)]
pub struct MemoryState {
    pub tensors: Vec<Tensor>,
    pub tail: Option<Tensor>,
    pub read_tail: Option<Tensor>,
}

/// Causal depthwise convolution along time of `x [B, T, D]` with weights `w [D, 1, K]`, continuing from the
/// previous call's last `K − 1` inputs `tail [B, K−1, D]` (zeros when absent).
pub fn causal_depthwise_conv(x: &Tensor, w: &Tensor, tail: Option<&Tensor>) -> Tensor {
    let (b, d) = (x.size()[0], x.size()[2]);
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
    /// `D → G·H` pre-activations of the rule's gates (absent when the rule has none)
    gates: Option<nn::Linear>,
    /// depthwise kernels `[D, 1, K]` for q, k, v (absent when `conv_kernel` is 0)
    conv: Option<[Tensor; 3]>,
    /// learned initial states `[H, …]`, `None` where the rule starts from zeros or a constant
    init: Vec<Option<Tensor>>,
    heads: i64,
    conv_kernel: usize,
    rule: Arc<dyn MemoryRule>,
    gate_specs: Vec<GateSpec>,
    /// name and update granularity for the memory diagnostics (`super::diagnostics`)
    probe: super::diagnostics::Probe,
}

/// Projected inputs of the memory: `k, v, q [B, H, T, d]`, gates `[B, H, T]` each.
struct Projected {
    k: Tensor,
    v: Tensor,
    q: Tensor,
    gates: Vec<Tensor>,
}

impl MemoryLayer {
    pub fn new(p: &nn::Path, dim: i64, heads: i64, spec: &MemorySpec, rule: Arc<dyn MemoryRule>) -> Self {
        let c = nn::LinearConfig { bias: false, ..Default::default() };
        let gate_specs = rule.gates();
        let g = gate_specs.len() as i64;
        let gates = (g > 0).then(|| {
            let gates = nn::linear(p / "gates", dim, g * heads, Default::default());
            tch::no_grad(|| {
                let b = gates.bs.as_ref().expect("gates have a bias");
                for (i, spec) in gate_specs.iter().enumerate() {
                    let _ = b.narrow(0, i as i64 * heads, heads).fill_(spec.init_logit);
                }
            });
            gates
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
        let d = (dim / heads) as usize;
        let init = rule
            .state(d, d)
            .iter()
            .map(|s| match s.init {
                StateInit::Learned { std } => {
                    let mut shape = vec![heads];
                    shape.extend(s.shape.iter().map(|&n| n as i64));
                    Some(p.var(&format!("init_{}", s.name), &shape, nn::Init::Randn { mean: 0.0, stdev: std }))
                }
                StateInit::Zeros | StateInit::Constant { .. } => None,
            })
            .collect();
        Self {
            conv,
            wq: nn::linear(p / "wq", dim, dim, c),
            wk: nn::linear(p / "wk", dim, dim, c),
            wv: nn::linear(p / "wv", dim, dim, c),
            wo: nn::linear(p / "wo", dim, dim, c),
            gates,
            init,
            heads,
            conv_kernel: spec.conv_kernel,
            rule,
            gate_specs,
            probe: super::diagnostics::Probe {
                label: p.components().collect::<Vec<_>>().join("."),
                chunk: spec.chunk_size,
            },
        }
    }

    pub fn head_dim(&self, dim: i64) -> i64 {
        dim / self.heads
    }

    pub fn heads(&self) -> i64 {
        self.heads
    }

    pub fn rule(&self) -> &Arc<dyn MemoryRule> {
        &self.rule
    }

    /// The initial state for a batch of `b`: learned states broadcast over the batch, zeros or constants.
    pub fn initial_state(&self, b: i64, dim: i64, kind: Kind, device: tch::Device) -> MemoryState {
        let d = self.head_dim(dim) as usize;
        let tensors = self
            .rule
            .state(d, d)
            .iter()
            .zip(&self.init)
            .map(|(s, learned)| {
                let mut shape = vec![b, self.heads];
                shape.extend(s.shape.iter().map(|&n| n as i64));
                match (learned, s.init) {
                    (Some(w), _) => w.to_kind(kind).unsqueeze(0).expand(shape.as_slice(), false),
                    (None, StateInit::Constant { value }) => Tensor::full(shape.as_slice(), value, (kind, device)),
                    (None, _) => Tensor::zeros(shape.as_slice(), (kind, device)),
                }
            })
            .collect();
        MemoryState { tensors, tail: None, read_tail: None }
    }

    /// The weights and settings as f64 arrays for the reference: projections `[out, in]`, convolution kernels
    /// `[D, K]` (from `[D, 1, K]`), gates `[G·H, D]` and `[G·H]`, learned initial states `[H, …]`.
    pub fn weights(&self) -> anyhow::Result<super::reference::MemoryWeights> {
        use super::blocks::{matrix, vector};
        let conv = match &self.conv {
            Some(c) => {
                let k = |w: &Tensor| matrix(&w.squeeze_dim(1));
                Some([k(&c[0])?, k(&c[1])?, k(&c[2])?])
            }
            None => None,
        };
        let dim = self.wq.ws.size()[1];
        let (gates_w, gates_b) = match &self.gates {
            Some(g) => (matrix(&g.ws)?, vector(g.bs.as_ref().expect("gates have a bias"))?),
            None => (ndarray::Array2::zeros((0, dim as usize)), ndarray::Array1::zeros(0)),
        };
        let init =
            self.init.iter().map(|w| w.as_ref().map(crate::tensor::from_tch).transpose()).collect::<Result<_, _>>()?;
        Ok(super::reference::MemoryWeights {
            wq: matrix(&self.wq.ws)?,
            wk: matrix(&self.wk.ws)?,
            wv: matrix(&self.wv.ws)?,
            wo: matrix(&self.wo.ws)?,
            conv,
            gates_w,
            gates_b,
            gate_specs: self.gate_specs.clone(),
            init,
            heads: self.heads as usize,
            rule: self.rule.clone(),
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
        let k = self.conv_kernel as i64;
        if k <= 1 {
            return None;
        }
        let (b, d) = (x.size()[0], x.size()[2]);
        let past =
            tail.map(|t| t.shallow_clone()).unwrap_or_else(|| Tensor::zeros([b, k - 1, d], (x.kind(), x.device())));
        let full = Tensor::cat(&[past, x.shallow_clone()], 1);
        let n = full.size()[1];
        Some(full.narrow(1, n - (k - 1), k - 1))
    }

    /// Eq. 11 with §4.4's convolution, SiLU and ℓ2 norm of q and k, and the rule's gates.
    fn project(&self, x: &Tensor, tail: Option<&Tensor>) -> Projected {
        let h = self.heads;
        let q = l2_normalize(&split_heads(&self.projected_stream(0, x, tail), h));
        let k = l2_normalize(&split_heads(&self.projected_stream(1, x, tail), h));
        let v = split_heads(&self.projected_stream(2, x, tail), h);
        let gates = match &self.gates {
            Some(layer) => {
                // pre-activations [B, T, G·H] → [B, G·H, T], one [B, H, T] block per gate
                let pre = layer.forward(x).transpose(1, 2);
                self.gate_specs.iter().enumerate().map(|(i, s)| s.value_tch(&pre.narrow(1, i as i64 * h, h))).collect()
            }
            None => vec![],
        };
        Projected { k, v, q, gates }
    }

    /// Writes the tokens of `x [B, T, D]` into the memory and reads each token's query with the rule.
    /// Returns the layer output `[B, T, D]` and the state after the last token.
    pub fn forward(&self, x: &Tensor, state: Option<MemoryState>, read: ReadMode) -> (Tensor, MemoryState) {
        let (b, dim) = (x.size()[0], x.size()[2]);
        let st = state.unwrap_or_else(|| self.initial_state(b, dim, x.kind(), x.device()));
        let p = self.project(x, st.tail.as_ref());
        let (y, tensors) = self.rule.forward(&p.k, &p.v, &p.q, &p.gates, &st.tensors, read);
        if super::diagnostics::recording() {
            let r = self.rule.as_ref();
            super::diagnostics::observe(
                &self.probe,
                r,
                &self.gate_specs,
                &p.k,
                &p.v,
                &p.gates,
                &st.tensors,
                &tensors,
                read,
            );
        }
        let tail = self.next_tail(x, st.tail.as_ref());
        (self.wo.forward(&merge_heads(&y)), MemoryState { tensors, tail, read_tail: st.read_tail })
    }

    /// Retrieval without update, `y_t = M*(q_t)` with the given state (Titans Eqs. 15 and 21); the queries'
    /// stream convolution continues from `state.read_tail`, which is advanced.
    pub fn read(&self, x: &Tensor, state: &mut MemoryState) -> Tensor {
        let q = l2_normalize(&split_heads(&self.projected_stream(0, x, state.read_tail.as_ref()), self.heads));
        state.read_tail = self.next_tail(x, state.read_tail.as_ref());
        let y = self.rule.retrieve(&q, &state.tensors);
        self.wo.forward(&merge_heads(&y))
    }
}
