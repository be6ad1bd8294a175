//! Hope's self-modifying Titans (Nested Learning, arXiv 2512.24695 v1, §8, Eqs. 79–96; the mathematics in
//! [`super::self_modifying`]) as one [`MemoryRule`], `model.memory: {kind: hope, …}` in `crate::memories`.
//!
//! Gates (per head and token): `α_t ∈ (0, 1)` forgetting (NL's `α_t` = `1 − α_t`; starts at σ(−4) ≈ 0.018;
//! `forgetting: false` pins 0, Table 6 "w/o weight decay"), `θ_t ∈ (0, max_lr)` the inner learning rate (NL's
//! `η_t`; starts at `max_lr/2`). There is no momentum gate (Eqs. 83–97 have none), so the layer's `momentum`
//! setting has no effect here, as for the presets without one (DeltaNet, Longhorn, …). State per head, per
//! memory present (`k`, `v`, `q`, then `m` the main memory): `W₁ (d × h)` and `W₂ (h × d)`, or `W (d × d)` for the
//! linear form — every one learned (the meta-learned initial states of Eq. 79), `N(0, 1/fan_in)`. Both read modes
//! are defined: `before-write` is Eq. 94; `after-write` reads the running state after the token's write.

use super::self_modifying::{self, Form, HopeConfig};
use crate::memory::rule::{as_matrix, GateSpec, HeadInputs, MemoryRule, StateDraw, StateInit, StateSpec};
use crate::memory::ReadMode;
use ndarray::{Array2, ArrayD, ArrayView2};
use tch::Tensor;

/// The rule: its configuration and the layer's gate settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HopeRule {
    pub config: HopeConfig,
    pub max_lr: f64,
    pub forgetting: bool,
}

/// The default θ ceiling (`max_lr`): 0.02 with MLP memories, 0.2 with linear ones. The LMM of
/// `experiments/quickstart.yaml` (MQAR, d = 16 per head, expansion 4, read before write, values normalised) trains 60
/// steps at 0.02 (loss 3.48) and reached a non-finite loss at step 40 at 0.1; with linear memories it trains 60 steps
/// at 0.2 (loss 3.51). Without value normalisation (`normalize_v: false`) no ceiling down to 1e-4 kept that model
/// finite (see `super::self_modifying`); at initialisation (4 seeds × 32 sequences of 96 random tokens) 41 of 128
/// sequences reached non-finite values at 0.05 and none at 0.02. Drawn rules (unit keys, unnormalised values
/// `N(0, 1)`, `α ∈ (0, 0.02)`, 8 seeds, d = 3 and 8) stayed below 10 over 100 tokens with θ ≤ 0.05 (MLP) and ≤ 0.2
/// (linear); at 0.1 (MLP) and 0.4 (linear) some reached 1e3 and more: the checks draw θ there.
pub fn default_max_lr(form: Form) -> f64 {
    match form {
        Form::Mlp => 0.02,
        Form::Linear => 0.2,
    }
}

/// The interval checks draw θ from (bounded over 100 drawn tokens, see [`default_max_lr`]).
fn theta_draw(form: Form) -> (f64, f64) {
    match form {
        Form::Mlp => (0.01, 0.05),
        Form::Linear => (0.04, 0.2),
    }
}

impl HopeRule {
    fn main_state<'a, T>(&self, state: &'a [T]) -> &'a [T] {
        let n = self.config.per_memory();
        &state[state.len() - n..]
    }
    fn head_matrices(state: &[ArrayD<f64>]) -> Vec<Array2<f64>> {
        state.iter().map(as_matrix).collect()
    }
}

impl MemoryRule for HopeRule {
    fn name(&self) -> String {
        let c = &self.config;
        let form = match c.form {
            Form::Mlp => format!("mlp ×{} {}", c.expansion, c.activation.name()),
            Form::Linear => "linear".into(),
        };
        let mut flags = vec![];
        if !c.self_modifying {
            flags.push("shared targets");
        }
        if !c.dgd {
            flags.push("w/o DGD");
        }
        if !c.adaptive_k {
            flags.push("fixed k");
        }
        if !c.adaptive_v {
            flags.push("fixed v");
        }
        if c.adaptive_q {
            flags.push("adaptive q");
        }
        if c.own_keys {
            flags.push("own keys");
        }
        if !c.normalize_v {
            flags.push("unnormalised v");
        }
        if c.objective == self_modifying::Objective::Dot {
            flags.push("dot");
        }
        let extra = if flags.is_empty() { String::new() } else { format!(", {}", flags.join(", ")) };
        format!("hope({form}{extra}, chunk={})", c.chunk)
    }
    fn gates(&self) -> Vec<GateSpec> {
        vec![
            GateSpec::learned("alpha", "forgetting α_t (NL's 1 − α_t, Eq. 88)", (0.0, 1.0), -4.0, (0.0, 0.3))
                .pinned_if(!self.forgetting, 0.0),
            GateSpec::learned(
                "theta",
                "inner learning rate θ_t (NL's η_t, Eq. 88)",
                (0.0, self.max_lr),
                0.0,
                theta_draw(self.config.form),
            ),
        ]
    }
    fn state(&self, d_k: usize, _d_v: usize) -> Vec<StateSpec> {
        let d = d_k;
        let shapes = self.config.shapes(d);
        let mut out = vec![];
        for role in self.config.roles() {
            for (l, &(rows, cols)) in shapes.iter().enumerate() {
                let std = 1.0 / (cols as f64).sqrt();
                let (suffix, what, dims) = match (self.config.form, l) {
                    (Form::Linear, _) => ("w", "W", ["d_v", "d_k"]),
                    (Form::Mlp, 0) => ("w1", "W₁ (output layer)", ["d_v", "hidden"]),
                    _ => ("w2", "W₂ (input layer)", ["hidden", "d_k"]),
                };
                let memory = match role {
                    self_modifying::Role::Key => "key memory M_k",
                    self_modifying::Role::Value => "value memory M_v",
                    self_modifying::Role::Query => "query memory M_q",
                    self_modifying::Role::Main => "main memory M_memory",
                };
                out.push(StateSpec {
                    name: format!("{}_{suffix}", role.prefix()),
                    meaning: format!("{what} of the {memory}"),
                    shape: vec![rows, cols],
                    dims: dims.iter().map(|n| n.to_string()).collect(),
                    init: StateInit::Learned { std },
                    draw: StateDraw::Normal { scale: std },
                });
            }
        }
        out
    }
    fn validate_dims(&self, d_k: usize, d_v: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            d_k == d_v,
            "hope needs d_k = d_v (the memories are d → d maps: v̂ = M(v) is a target for M(k)); got {d_k} and {d_v}"
        );
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
        gates: &[Tensor],
        state: &[Tensor],
        read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        self_modifying::torch::forward(&self.config, k, v, q, &gates[0], &gates[1], state, read)
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        self_modifying::torch::apply(&self.config, self.main_state(state), q)
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let (y, fin) = self_modifying::reference::forward(
            &self.config,
            &x.k,
            &x.v,
            &x.q,
            &x.gates[0],
            &x.gates[1],
            &Self::head_matrices(state),
            read,
        );
        (y, fin.into_iter().map(|a| a.into_dyn()).collect())
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        let w = Self::head_matrices(self.main_state(state));
        let mut y = Array2::zeros(q.raw_dim());
        for (t, row) in q.rows().into_iter().enumerate() {
            y.row_mut(t).assign(&self_modifying::reference::apply(&self.config, &w, row));
        }
        y
    }
}
