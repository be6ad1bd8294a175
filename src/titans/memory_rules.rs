//! Titans' neural memory (arXiv 2501.00663 v1, §3.1–3.2, Eqs. 12–18) as [`MemoryRule`]s: the linear memory and
//! the deep (MLP) memory, each sequential (`chunk = 1`, Eqs. 12–15) or chunkwise (Eqs. 16–18). The mathematics
//! lives in [`super::linear_memory`], [`super::mlp_memory`] and [`super::chunkwise`]; this file only describes
//! each rule once (gates, state, both implementations) for the layer, the generic check and `repro eval`.
//!
//! Gates (per head and token): `α_t ∈ (0, 1)` forgetting (starts at σ(−4) ≈ 0.018), `η_t ∈ (0, 1)` momentum
//! decay (starts at ½), `θ_t ∈ (0, θ_max)` learning rate (starts at θ_max/2); "w/o momentum" pins η = 0,
//! "w/o weight decay" pins α = 0. State: `M` and `S` (`d_v × d_k` each), or per layer `W^{(l)}` and `S^{(l)}`.
//! The linear memory starts at `M_0 = S_0 = 0`; the deep memory's `W^{(l)}_0` are learned (from zeros every
//! inner gradient of a deep memory vanishes), its `S_0 = 0`.

use super::linear_memory::{self, ReadMode};
use super::mlp_memory::{self, MlpConfig};
use super::{chunkwise, chunkwise_mlp};
use crate::memory::rule::{as_matrix, GateSpec, HeadInputs, MemoryRule, StateDraw, StateInit, StateSpec};
use ndarray::{Array2, ArrayD, ArrayView2};
use tch::Tensor;

/// The gate settings a Titans rule is built with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TitansGates {
    pub max_lr: f64,
    pub momentum: bool,
    pub forgetting: bool,
}

impl TitansGates {
    fn specs(&self) -> Vec<GateSpec> {
        vec![
            GateSpec::learned("alpha", "forgetting gate α_t (Eq. 13)", (0.0, 1.0), -4.0, (0.0, 0.3))
                .pinned_if(!self.forgetting, 0.0),
            GateSpec::learned("eta", "momentum decay η_t (Eq. 14)", (0.0, 1.0), 0.0, (0.0, 0.9))
                .pinned_if(!self.momentum, 0.0),
            GateSpec::learned("theta", "learning rate θ_t (Eq. 14)", (0.0, self.max_lr), 0.0, (0.05, 0.4)),
        ]
    }
}

/// The linear memory `M ∈ R^{d_v×d_k}` (Eqs. 12–15; chunkwise Eqs. 16–18 when `chunk > 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct TitansLinear {
    pub gates: TitansGates,
    pub chunk: usize,
    /// Eq. 12's `c` in `ℓ = c‖Mk − v‖²` (1 in the paper; ½ for Appendix C's form)
    pub loss_scale: f64,
}

impl MemoryRule for TitansLinear {
    fn name(&self) -> String {
        format!("titans-linear(chunk={})", self.chunk)
    }
    fn gates(&self) -> Vec<GateSpec> {
        self.gates.specs()
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let spec = |name: &str, meaning: &str, scale| StateSpec {
            name: name.into(),
            meaning: meaning.into(),
            shape: vec![d_v, d_k],
            dims: vec!["d_v".into(), "d_k".into()],
            init: StateInit::Zeros,
            draw: StateDraw::Normal { scale },
        };
        vec![spec("m", "memory M", 0.5), spec("s", "surprise S (momentum)", 0.1)]
    }
    fn reads_before_write(&self) -> bool {
        true
    }
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &[Tensor],
        state: &[Tensor],
        read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let (m0, s0) = (&state[0], &state[1]);
        let o = if self.chunk <= 1 {
            linear_memory::torch::forward(k, v, q, &g[0], &g[1], &g[2], m0, s0, self.loss_scale, read)
        } else {
            chunkwise::torch::linear_forward(k, v, q, &g[0], &g[1], &g[2], m0, s0, self.chunk, self.loss_scale, read)
        };
        (o.y, vec![o.m_final, o.s_final])
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        // y_t = M q_t on row vectors: q Mᵀ
        q.matmul(&state[0].transpose(-2, -1))
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let inputs = linear_memory::reference::Inputs {
            k: x.k.clone(),
            v: x.v.clone(),
            q: x.q.clone(),
            alpha: x.gates[0].clone(),
            eta: x.gates[1].clone(),
            theta: x.gates[2].clone(),
            m0: as_matrix(&state[0]),
            s0: as_matrix(&state[1]),
        };
        let (y, m, s) = if self.chunk <= 1 {
            let tr = linear_memory::reference::forward(&inputs, self.loss_scale, read);
            let (m, s) = (tr.final_memory().clone(), tr.final_surprise().clone());
            (tr.y, m, s)
        } else {
            chunkwise::reference::linear_forward(&inputs, self.chunk, self.loss_scale, read)
        };
        (y, vec![m.into_dyn(), s.into_dyn()])
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        q.dot(&as_matrix(&state[0]).t())
    }
}

/// The deep memory: an MLP with `L_M` weight matrices (Eqs. 12–15 per matrix; chunkwise when `chunk > 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct TitansMlp {
    pub gates: TitansGates,
    pub chunk: usize,
    /// Eq. 12's `c` in `ℓ = c‖M(k) − v‖²`
    pub loss_scale: f64,
    /// `L_M`, the activation and the residual; `hidden = expansion · d_k` is set by [`TitansMlp::config`]
    pub layers: usize,
    pub expansion: usize,
    pub activation: mlp_memory::Activation,
    pub residual: bool,
}

impl TitansMlp {
    /// The MLP shape for keys of width `d_k`.
    pub fn config(&self, d_k: usize) -> MlpConfig {
        MlpConfig {
            layers: self.layers,
            hidden: self.expansion * d_k,
            activation: self.activation,
            residual: self.residual,
        }
    }
    fn split<'a, T>(&self, state: &'a [T]) -> (&'a [T], &'a [T]) {
        state.split_at(self.layers)
    }
}

impl MemoryRule for TitansMlp {
    fn name(&self) -> String {
        format!(
            "titans-mlp(L_M={}, expansion={}, {}, chunk={})",
            self.layers,
            self.expansion,
            self.activation.name(),
            self.chunk
        )
    }
    fn gates(&self) -> Vec<GateSpec> {
        self.gates.specs()
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let shapes = self.config(d_k).shapes(d_k, d_v);
        let n = shapes.len();
        // weights W^(l) (learned, N(0, 1/fan_in): M(k) = O(1) at initialisation), then their surprises S^(l)
        let spec = |l: usize, weights: bool| {
            let (rows, cols) = shapes[l];
            let std = 1.0 / (cols as f64).sqrt();
            let (name, meaning) = if weights { ("w", "weights W^(l)") } else { ("s", "surprise S^(l) of W^(l)") };
            StateSpec {
                name: format!("{name}{}", l + 1),
                meaning: format!("{meaning}, l = {}", l + 1),
                shape: vec![rows, cols],
                dims: vec![
                    if l + 1 == n { "d_v".into() } else { "hidden".into() },
                    if l == 0 { "d_k".into() } else { "hidden".into() },
                ],
                init: if weights { StateInit::Learned { std } } else { StateInit::Zeros },
                draw: StateDraw::Normal { scale: if weights { std } else { 0.1 } },
            }
        };
        (0..n).map(|l| spec(l, true)).chain((0..n).map(|l| spec(l, false))).collect()
    }
    fn validate_dims(&self, d_k: usize, d_v: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.layers >= 1, "an MLP memory needs layers >= 1");
        anyhow::ensure!(self.expansion >= 1, "an MLP memory needs expansion >= 1");
        anyhow::ensure!(!self.residual || d_k == d_v, "a residual MLP memory needs d_k = d_v (got {d_k} and {d_v})");
        Ok(())
    }
    fn reads_before_write(&self) -> bool {
        true
    }
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &[Tensor],
        state: &[Tensor],
        read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let cfg = self.config(k.size()[3] as usize);
        let (m0, s0) = self.split(state);
        let o = if self.chunk <= 1 {
            mlp_memory::torch::forward(k, v, q, &g[0], &g[1], &g[2], m0, s0, &cfg, self.loss_scale, read)
        } else {
            chunkwise_mlp::mlp_forward(k, v, q, &g[0], &g[1], &g[2], m0, s0, &cfg, self.chunk, self.loss_scale, read)
        };
        let mut st = o.m_final;
        st.extend(o.s_final);
        (o.y, st)
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        let cfg = self.config(q.size()[3] as usize);
        mlp_memory::torch::apply(self.split(state).0, &cfg, q)
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let cfg = self.config(x.k.ncols());
        let (m0, s0) = self.split(state);
        let inputs = mlp_memory::reference::Inputs {
            k: x.k.clone(),
            v: x.v.clone(),
            q: x.q.clone(),
            alpha: x.gates[0].clone(),
            eta: x.gates[1].clone(),
            theta: x.gates[2].clone(),
            m0: m0.iter().map(as_matrix).collect(),
            s0: s0.iter().map(as_matrix).collect(),
        };
        let tr = if self.chunk <= 1 {
            mlp_memory::reference::forward(&inputs, &cfg, self.loss_scale, read)
        } else {
            chunkwise::reference::mlp_forward(&inputs, &cfg, self.chunk, self.loss_scale, read)
        };
        let st = tr.m_final.into_iter().chain(tr.s_final).map(|a| a.into_dyn()).collect();
        (tr.y, st)
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        let cfg = self.config(q.ncols());
        let w: Vec<Array2<f64>> = self.split(state).0.iter().map(as_matrix).collect();
        let mut y = Array2::zeros((q.nrows(), 0));
        for (t, row) in q.rows().into_iter().enumerate() {
            let r = mlp_memory::reference::apply(&w, &cfg, row);
            if t == 0 {
                y = Array2::zeros((q.nrows(), r.len()));
            }
            y.row_mut(t).assign(&r);
        }
        y
    }
}
