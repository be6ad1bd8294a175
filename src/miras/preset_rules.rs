//! MIRAS (arXiv 2504.13173 v1) §4, Table 1: the published recurrences as [`MemoryRule`]s with their own gates
//! (`a`, `b`, `c`), mapped to the framework's α, η, μ by [`Preset::gates`] (reference) and the same formulas in
//! tch here; the recurrence itself is [`update`]'s, token by token. RetNet's γ and Mamba2's `A` are fixed
//! ([`RETNET_GAMMA`], [`MAMBA2_A`]); Δ_t, β_t, α_t and Titans' gates are learned.

use super::framework::Algorithm;
use super::memory_rules::{matrix_state, MirasGates};
use super::presets::Preset;
use super::update;
use crate::memory::rule::{as_matrix, GateSpec, HeadInputs, MemoryRule, StateDraw, StateInit, StateSpec};
use crate::memory::ReadMode;
use ndarray::{Array1, Array2, ArrayD, ArrayView2};
use tch::Tensor;

/// A published recurrence of Table 1 with its own gates (`a`, `b`, `c`), mapped to the framework's by
/// [`Preset::gates`] (reference) and the same formulas in tch here.
#[derive(Debug, Clone, PartialEq)]
pub struct MirasPreset {
    pub preset: Preset,
    pub settings: MirasGates,
}

/// RetNet's fixed decay γ (RetNet's first head, `1 − 2^{−5}`).
pub const RETNET_GAMMA: f64 = 1.0 - 1.0 / 32.0;
/// Mamba2's decay rate `A` (one scalar; `Δ_t` is learned, so only the product `Δ_t A` matters).
pub const MAMBA2_A: f64 = -1.0;

impl MirasPreset {
    /// The native gates, in the order `a, b, c`, with their fixed values where the preset fixes them.
    fn native(&self) -> Vec<GateSpec> {
        let s = &self.settings;
        let beta = || GateSpec::learned("b", "β_t, the delta-rule step", (0.0, 1.0), 0.0, (0.05, 0.9));
        match self.preset {
            Preset::LinearAttention => vec![],
            Preset::Retnet => {
                vec![GateSpec::learned("a", "γ, the constant decay", (0.0, 1.0), 0.0, (0.7, 1.0))
                    .pinned_if(true, RETNET_GAMMA)]
            }
            Preset::Mamba2 => vec![
                GateSpec::learned("a", "Δ_t, the step", (0.0, 1.0), 0.0, (0.05, 0.9)),
                GateSpec::learned("b", "A, the (negative) decay rate", (-1.0, 0.0), 0.0, (-1.0, -0.2))
                    .pinned_if(true, MAMBA2_A),
            ],
            Preset::Deltanet | Preset::Longhorn => {
                let mut g = beta();
                g.name = "a";
                vec![g]
            }
            Preset::GatedDeltanet => vec![
                GateSpec::learned("a", "α_t, the gate", (0.0, 1.0), 4.0, (0.7, 1.0)).pinned_if(!s.forgetting, 1.0),
                beta(),
            ],
            Preset::TttLinear => {
                vec![GateSpec::learned("a", "η, the inner learning rate", (0.0, s.max_lr), 0.0, (0.05, 0.4))]
            }
            Preset::TitansLmm => vec![
                GateSpec::learned("a", "α_t, forgetting", (0.0, 1.0), -4.0, (0.0, 0.3)).pinned_if(!s.forgetting, 0.0),
                GateSpec::learned("b", "η_t, momentum decay", (0.0, 1.0), 0.0, (0.0, 0.9)).pinned_if(!s.momentum, 0.0),
                GateSpec::learned("c", "θ_t, learning rate", (0.0, s.max_lr), 0.0, (0.05, 0.4)),
            ],
        }
    }

    /// The framework's `(α, η, μ)` from the native gates (same formulas as [`Preset::gates`]).
    fn framework_tch(&self, g: &[Tensor], like: &Tensor) -> (Tensor, Tensor, Tensor) {
        let c = |x: f64| like.zeros_like() + x;
        match self.preset {
            Preset::LinearAttention => (c(1.0), c(0.5), c(0.0)),
            Preset::Retnet => (g[0].shallow_clone(), c(0.5), c(0.0)),
            Preset::Mamba2 => ((&g[0] * &g[1]).exp(), &g[0] * 0.5, c(0.0)),
            Preset::Deltanet | Preset::Longhorn | Preset::TttLinear => (c(1.0), g[0].shallow_clone(), c(0.0)),
            Preset::GatedDeltanet => (g[0].shallow_clone(), g[1].shallow_clone(), c(0.0)),
            Preset::TitansLmm => (1.0 - &g[0], g[2].shallow_clone(), g[1].shallow_clone()),
        }
    }
}

impl MemoryRule for MirasPreset {
    fn name(&self) -> String {
        format!("preset:{}", self.preset.name())
    }
    fn gates(&self) -> Vec<GateSpec> {
        self.native()
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let mut s = vec![matrix_state("m", "memory M", (d_v, "d_v"), (d_k, "d_k"), StateInit::Zeros)];
        if self.preset.config().algorithm == Algorithm::Momentum {
            let mut spec = matrix_state("s", "momentum S", (d_v, "d_v"), (d_k, "d_k"), StateInit::Zeros);
            spec.draw = StateDraw::Normal { scale: 0.1 };
            s.push(spec);
        }
        s
    }
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &[Tensor],
        state: &[Tensor],
        _read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let cfg = self.preset.config();
        let like = k.select(3, 0);
        let (alpha, eta, mu) = self.framework_tch(g, &like);
        let delta = like.zeros_like();
        let s0 = if state.len() > 1 { state[1].shallow_clone() } else { state[0].zeros_like() };
        let o = update::torch::forward_from(&cfg, k, v, q, &alpha, &eta, &delta, &mu, &state[0], &state[0], &s0);
        let mut st = vec![o.state];
        if state.len() > 1 {
            st.push(o.s);
        }
        (o.y, st)
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        q.matmul(&state[0].transpose(-2, -1))
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        _read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let cfg = self.preset.config();
        let t = x.k.nrows();
        let native = |i: usize| x.gates.get(i).cloned().unwrap_or_else(|| Array1::zeros(t)).into_dyn();
        let g = self.preset.gates(&native(0), &native(1), &native(2));
        let one = |a: ndarray::ArrayD<f64>| a.into_dimensionality::<ndarray::Ix1>().expect("gates are per token");
        let inp = update::reference::Inputs {
            k: x.k.clone(),
            v: x.v.clone(),
            q: x.q.clone(),
            alpha: one(g.alpha),
            eta: one(g.eta),
            delta: Array1::zeros(t),
            mu: one(g.mu),
            m0: as_matrix(&state[0]),
        };
        let s0 = if state.len() > 1 { as_matrix(&state[1]) } else { Array2::zeros(inp.m0.raw_dim()) };
        let o = update::reference::forward_from(&cfg, &inp, inp.m0.clone(), s0);
        let mut st = vec![o.state.into_dyn()];
        if state.len() > 1 {
            st.push(o.s.into_dyn());
        }
        (o.y, st)
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        q.dot(&as_matrix(&state[0]).t())
    }
}
