//! The seam every test-time memory plugs into: a [`MemoryRule`] is one update rule (Titans' linear or deep
//! memory, a MIRAS configuration, Moneta, Yaad, Memora, a published preset, …) described once — its gates,
//! its state tensors, its batched tch forward and its f64 per-head reference. From that one description derive
//!
//! * the memory layer of every model (`crate::models::memory_layer`): it projects `k, v, q`, produces the
//!   rule's gates from the token (`lo + (hi − lo)·σ(w·x + b)`, or a pinned constant), owns the learned
//!   initial states, and carries the state across calls;
//! * the generic check (`crate::memories::checks`): tch against the reference on drawn inputs — outputs, every
//!   final state, and the outer gradients of a random projection against central finite differences of the
//!   reference;
//! * the `repro eval` rule (`crate::memories::eval`): tensor names and symbolic shapes from [`GateSpec`] and
//!   [`StateSpec`], inputs drawn or supplied, either implementation run.
//!
//! Shapes: tch tensors are batched `[B, H, …]` — `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, each gate
//! `[B, H, T]`, each state `[B, H, …StateSpec::shape]`; the reference sees one head: rows are tokens.

use super::ReadMode;
use ndarray::{Array1, Array2, ArrayD, ArrayView2};
use tch::Tensor;

/// One scalar gate per head and token, produced by the layer from the token.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSpec {
    /// tensor name in `repro eval` (`alpha`, `eta`, `theta`, …)
    pub name: &'static str,
    pub meaning: &'static str,
    /// the learned gate is `lo + (hi − lo)·σ(w·x + b)`
    pub lo: f64,
    pub hi: f64,
    /// the bias `b` at initialisation (the gate starts at `lo + (hi − lo)σ(b)`)
    pub init_logit: f64,
    /// `Some(c)`: the gate is the constant `c` (an ablation such as "w/o momentum", or a preset's fixed value)
    pub pinned: Option<f64>,
    /// the interval checks and `repro eval --draw` draw this gate from: values for which the recurrence stays
    /// bounded over a hundred tokens with unit-norm keys
    pub draw: (f64, f64),
}

impl GateSpec {
    /// A learned gate on `(lo, hi)` starting at `lo + (hi − lo)σ(init_logit)`, drawn on `draw`.
    pub fn learned(
        name: &'static str,
        meaning: &'static str,
        (lo, hi): (f64, f64),
        init_logit: f64,
        draw: (f64, f64),
    ) -> Self {
        Self { name, meaning, lo, hi, init_logit, pinned: None, draw }
    }
    /// The same gate pinned to `value` when `pin` holds.
    pub fn pinned_if(mut self, pin: bool, value: f64) -> Self {
        if pin {
            self.pinned = Some(value);
            self.draw = (value, value);
        }
        self
    }
    /// The gate's value for a pre-activation `u` (f64 side of the layer).
    pub fn value(&self, u: f64) -> f64 {
        match self.pinned {
            Some(c) => c,
            None => self.lo + (self.hi - self.lo) / (1.0 + (-u).exp()),
        }
    }
    /// The same on a tensor of pre-activations (tch side of the layer).
    pub fn value_tch(&self, u: &Tensor) -> Tensor {
        match self.pinned {
            Some(c) => u.zeros_like() + c,
            None => u.sigmoid() * (self.hi - self.lo) + self.lo,
        }
    }
}

/// How a state tensor starts in a model (the checks and `repro eval` draw or take it instead).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StateInit {
    /// zeros, not learned (Titans' `M_0 = 0`, `S_0 = 0`)
    Zeros,
    /// a learned parameter per head, initialised `N(0, std²)` (a deep memory's `M_0`: from zeros its gradient
    /// would vanish)
    Learned { std: f64 },
    /// every entry `value`, not learned (a memory that must start inside an interval)
    Constant { value: f64 },
}

/// One state tensor of a rule, per head.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSpec {
    /// `m`, `s`, `w1`, …: the `repro eval` names are `<name>0` (input) and `<name>_final` (output)
    pub name: String,
    pub meaning: String,
    /// per-head shape (`[d_v, d_k]` for a linear memory)
    pub shape: Vec<usize>,
    /// symbolic per-head shape for `--describe` (`["d_v", "d_k"]`, `["hidden", "d_k"]`)
    pub dims: Vec<String>,
    pub init: StateInit,
    /// how checks and `repro eval` draw the state
    pub draw: StateDraw,
}

/// The distribution a check draws a state from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StateDraw {
    /// `N(0, scale²)` entries
    Normal { scale: f64 },
    /// uniform entries on `[lo, hi)` (a memory confined to an interval, e.g. Variant 5's `(0, 1)`)
    Uniform { lo: f64, hi: f64 },
}

/// One head's inputs for the reference: rows are tokens; `gates[g][t]` in the order of [`MemoryRule::gates`].
#[derive(Debug, Clone)]
pub struct HeadInputs {
    pub k: Array2<f64>,
    pub v: Array2<f64>,
    pub q: Array2<f64>,
    pub gates: Vec<Array1<f64>>,
}

/// A test-time memory update rule (see the module doc). Rules are configurations: stateless, shareable.
pub trait MemoryRule: std::fmt::Debug + Send + Sync {
    /// A short name for logs and reports (`titans-linear`, `moneta(p=3, q=4)`, …).
    fn name(&self) -> String;
    /// The gates the layer must produce, in order.
    fn gates(&self) -> Vec<GateSpec>;
    /// The state tensors, per head, for keys of width `d_k` and values of width `d_v`.
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec>;
    /// Checks the widths (a residual memory needs `d_k = d_v`, …).
    fn validate_dims(&self, _d_k: usize, _d_v: usize) -> anyhow::Result<()> {
        Ok(())
    }
    /// Whether the rule's own f64 function is so ill-conditioned that f32 cannot match it to 1e-5 however it is
    /// computed (then checks compare f32 with `tolerance::TORCH_F32_ILL_CONDITIONED`, and say why there).
    fn ill_conditioned_in_f32(&self) -> bool {
        false
    }
    /// A rule whose **outer gradients** are so ill-conditioned that f32 cannot meet the ordinary gradient bound
    /// states its own f32 bound here (with its reason in `crate::tolerance`); `None` = the ordinary bound.
    fn f32_gradient_tolerance(&self) -> Option<f64> {
        None
    }
    /// Whether `read = before-write` (`y_t = M_{t−1}(q_t)`) is defined for this rule.
    fn reads_before_write(&self) -> bool {
        false
    }
    /// Writes every token of the sequence and reads each token's query; returns `y [B, H, T, d_v]` and the
    /// state after the last token. Differentiable (autograd) in every input, gate and initial state.
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        gates: &[Tensor],
        state: &[Tensor],
        read: ReadMode,
    ) -> (Tensor, Vec<Tensor>);
    /// Retrieval without update, `y_t = M*(q_t)` for `q [B, H, T, d_k]` (Titans Eq. 21).
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor;
    /// The f64 reference of [`forward`](Self::forward) for one head: `(y [T, d_v], final state)`.
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>);
    /// The f64 reference of [`retrieve`](Self::retrieve) for one head: `q [T, d_k]` → `[T, d_v]`.
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64>;
}

/// A rank-2 view of a per-head state (every rule's matrices are stored as `ArrayD`).
pub fn as_matrix(a: &ArrayD<f64>) -> Array2<f64> {
    a.clone().into_dimensionality::<ndarray::Ix2>().expect("a rank-2 state")
}
