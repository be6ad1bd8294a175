//! TNT's hierarchical memory (Eqs. 5–7, 13–15; [`super::hierarchy`]) as one [`MemoryRule`], so that every model,
//! the generic check and `repro eval` can use it (`model.memory: {kind: tnt, …}` in `crate::memories`).
//!
//! Gates (per head and token), Titans' per memory: the global memory's `alpha_g, eta_g, theta_g`, then each local
//! memory's `alpha_i, eta_i, theta_i` (`i = 1 … N`); `momentum: false` / `forgetting: false` pin `η = 0` / `α = 0`
//! for every memory (TNT's printed plain-GD form). States per head, in [`super::hierarchy::Layout`] order:
//! `v, s_v, v_start` (global memory, zeros), `pos` (stream position, not learned), `proj` (Q-K projector, zeros),
//! then per local `w_i, s_i, w_i_start` (zeros; overwritten at the first shard start) and `w_i_init` (the learned
//! reset state `W^{(i)}_init`, carried unchanged so that backprop reaches it through every shard).
//!
//! Retrieval without update (`retrieve`) is Eq. 7 on the carried state: `V_{ξ} q + Σ_i W^{(i)} P q`.

use super::hierarchy::{self, reference as href, TntConfig};
use crate::memory::rule::{as_matrix, GateSpec, HeadInputs, MemoryRule, StateDraw, StateInit, StateSpec};
use crate::memory::ReadMode;
use ndarray::{Array2, ArrayD, ArrayView2};
use tch::Tensor;

/// Names of the local memories' gates (`GateSpec` names are static); at most [`MAX_LOCAL`] local memories.
const LOCAL_GATE_NAMES: [[&str; 3]; 4] = [
    ["alpha_1", "eta_1", "theta_1"],
    ["alpha_2", "eta_2", "theta_2"],
    ["alpha_3", "eta_3", "theta_3"],
    ["alpha_4", "eta_4", "theta_4"],
];
/// The most local memories a rule may have (the paper uses up to 4, Table 2).
pub const MAX_LOCAL: usize = 4;

/// TNT with linear memories at both levels.
#[derive(Debug, Clone, PartialEq)]
pub struct TntLinear {
    pub config: TntConfig,
    pub max_lr: f64,
    pub momentum: bool,
    pub forgetting: bool,
}

impl TntLinear {
    fn memory_gates(&self, names: [&'static str; 3]) -> Vec<GateSpec> {
        vec![
            GateSpec::learned(names[0], "forgetting gate α_t (Titans Eq. 13)", (0.0, 1.0), -4.0, (0.0, 0.3))
                .pinned_if(!self.forgetting, 0.0),
            GateSpec::learned(names[1], "momentum decay η_t (Titans Eq. 14)", (0.0, 1.0), 0.0, (0.0, 0.9))
                .pinned_if(!self.momentum, 0.0),
            GateSpec::learned(
                names[2],
                "learning rate θ_t (TNT's η_t, Eqs. 5–6)",
                (0.0, self.max_lr),
                0.0,
                (0.05, 0.4),
            ),
        ]
    }
    /// The reference's whole trace for one head (outputs, the global and local parts, the final state).
    pub fn reference_trace(&self, x: &HeadInputs, state: &[ArrayD<f64>]) -> href::Trace {
        let lay = self.config.layout();
        let gates = |i: usize| href::Gates {
            alpha: x.gates[i].clone(),
            eta: x.gates[i + 1].clone(),
            theta: x.gates[i + 2].clone(),
        };
        let global = lay.global.then(|| gates(0));
        let locals: Vec<href::Gates> = (0..lay.n_local).map(|i| gates(lay.local_gate(i))).collect();
        let st = self.head_state(state);
        href::forward(&self.config, x.k.view(), x.v.view(), x.q.view(), global.as_ref(), &locals, &st)
    }
    fn head_state(&self, state: &[ArrayD<f64>]) -> href::State {
        let lay = self.config.layout();
        let global = lay.global.then(|| href::GlobalState {
            v: as_matrix(&state[0]),
            s: as_matrix(&state[1]),
            v_start: as_matrix(&state[2]),
        });
        let raw = state[lay.pos()].iter().next().copied().unwrap_or(0.0);
        let pos = (raw.round().max(0.0) as usize) % self.config.period();
        let locals = (0..lay.n_local)
            .map(|i| {
                let j = lay.local_state(i);
                href::LocalState {
                    w: as_matrix(&state[j]),
                    s: as_matrix(&state[j + 1]),
                    w_start: as_matrix(&state[j + 2]),
                    w_init: as_matrix(&state[j + 3]),
                }
            })
            .collect();
        href::State { pos, global, proj: as_matrix(&state[lay.proj()]), locals }
    }
}

impl MemoryRule for TntLinear {
    fn name(&self) -> String {
        let c = &self.config;
        format!(
            "tnt(C_G={}, C_L={:?}, S_L={}{}{})",
            c.global_chunk,
            c.local_chunks,
            c.shard,
            if c.qk_projection { "" } else { ", w/o Q-K projection" },
            if c.global_memory { "" } else { ", w/o global memory" }
        )
    }
    fn gates(&self) -> Vec<GateSpec> {
        let mut g = vec![];
        if self.config.global_memory {
            g.extend(self.memory_gates(["alpha_g", "eta_g", "theta_g"]));
        }
        for names in LOCAL_GATE_NAMES.iter().take(self.config.local_chunks.len()) {
            g.extend(self.memory_gates(*names));
        }
        g
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let mat = |name: String, meaning: String, rows: usize, cols: usize, init, scale| StateSpec {
            name,
            meaning,
            shape: vec![rows, cols],
            dims: vec![if rows == d_v { "d_v".into() } else { "d_k".into() }, "d_k".into()],
            init,
            draw: StateDraw::Normal { scale },
        };
        let mut out = vec![];
        if self.config.global_memory {
            out.push(mat("v".into(), "global memory V (Eq. 5)".into(), d_v, d_k, StateInit::Zeros, 0.5));
            out.push(mat("s_v".into(), "momentum of V".into(), d_v, d_k, StateInit::Zeros, 0.1));
            out.push(mat(
                "v_start".into(),
                "V at the current global chunk's start (read, and gradients taken there)".into(),
                d_v,
                d_k,
                StateInit::Zeros,
                0.5,
            ));
        }
        out.push(StateSpec {
            name: "pos".into(),
            meaning: format!("stream position modulo lcm(C_G, S_L) = {} (rounded; not learned)", self.config.period()),
            shape: vec![1],
            dims: vec!["1".into()],
            init: StateInit::Zeros,
            // the generic checks draw position 0 (a batch must share one position; src/tnt/checks.rs draws others)
            draw: StateDraw::Uniform { lo: 0.0, hi: 0.4 },
        });
        out.push(StateSpec {
            name: "proj".into(),
            meaning: "Q-K projector P = Σ k kᵀ/‖k‖² of the current shard (Eq. 7, Appendix C)".into(),
            shape: vec![d_k, d_k],
            dims: vec!["d_k".into(), "d_k".into()],
            init: StateInit::Zeros,
            draw: StateDraw::Normal { scale: 0.3 },
        });
        for i in 1..=self.config.local_chunks.len() {
            out.push(mat(format!("w{i}"), format!("local memory W^({i}) (Eq. 6)"), d_v, d_k, StateInit::Zeros, 0.5));
            out.push(mat(format!("s{i}"), format!("momentum of W^({i})"), d_v, d_k, StateInit::Zeros, 0.1));
            out.push(mat(
                format!("w{i}_start"),
                format!("W^({i}) at the current local chunk's start"),
                d_v,
                d_k,
                StateInit::Zeros,
                0.5,
            ));
            out.push(mat(
                format!("w{i}_init"),
                format!("learned reset state W^({i})_init (restored at every shard start)"),
                d_v,
                d_k,
                StateInit::Learned { std: 0.1 },
                0.5,
            ));
        }
        out
    }
    fn validate_dims(&self, _d_k: usize, _d_v: usize) -> anyhow::Result<()> {
        self.config.validate()?;
        anyhow::ensure!(
            self.config.local_chunks.len() <= MAX_LOCAL,
            "tnt: at most {MAX_LOCAL} local memories (got {})",
            self.config.local_chunks.len()
        );
        Ok(())
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
        assert_eq!(read, ReadMode::AfterWrite, "tnt reads the local memories after the write");
        let o = hierarchy::torch::forward(&self.config, k, v, q, gates, state);
        (o.y, o.state)
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        let lay = self.config.layout();
        let mut y = q.zeros_like().narrow(-1, 0, 0);
        let mut first = true;
        let mut add = |t: Tensor| {
            if first {
                y = t;
                first = false;
            } else {
                y = &y + t;
            }
        };
        if lay.global {
            add(q.matmul(&state[2].transpose(-1, -2)));
        }
        let p = &state[lay.proj()];
        let qt = if self.config.qk_projection { q.matmul(&p.transpose(-1, -2)) } else { q.shallow_clone() };
        for i in 0..lay.n_local {
            add(qt.matmul(&state[lay.local_state(i)].transpose(-1, -2)));
        }
        y
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        assert_eq!(read, ReadMode::AfterWrite, "tnt reads the local memories after the write");
        let tr = self.reference_trace(x, state);
        let s = tr.state;
        let mut out = vec![];
        if let Some(g) = s.global {
            out.extend([g.v.into_dyn(), g.s.into_dyn(), g.v_start.into_dyn()]);
        }
        out.push(ndarray::arr1(&[s.pos as f64]).into_dyn());
        out.push(s.proj.into_dyn());
        for l in s.locals {
            out.extend([l.w.into_dyn(), l.s.into_dyn(), l.w_start.into_dyn(), l.w_init.into_dyn()]);
        }
        (tr.y, out)
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        let st = self.head_state(state);
        let mut y =
            Array2::zeros((q.nrows(), if let Some(g) = &st.global { g.v.nrows() } else { st.locals[0].w.nrows() }));
        for (t, row) in q.rows().into_iter().enumerate() {
            let mut o = ndarray::Array1::zeros(y.ncols());
            if let Some(g) = &st.global {
                o = o + g.v_start.dot(&row);
            }
            let qt = if self.config.qk_projection { st.proj.dot(&row) } else { row.to_owned() };
            for l in &st.locals {
                o = o + l.w.dot(&qt);
            }
            y.row_mut(t).assign(&o);
        }
        y
    }
}
