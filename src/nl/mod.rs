//! Nested Learning: The Illusion of Deep Learning Architectures (Behrouz, Razaviyayn, Zhong, Mirrokni;
//! arXiv 2512.24695 v1, <https://arxiv.org/abs/2512.24695v1>; equation numbers as v1 prints them, in project form
//! in `papers/nl.yaml`).
//!
//! * [`optimizers`]: the optimizers of §4 as f64 references on quadratics; their tch versions are the
//!   paper-neutral `crate::optim` that `training.optimizer` selects;
//! * [`inner`]: the inner problems (momentum as a memory, backprop as a memory, Newton–Schulz as descent, DGD);
//! * [`cms`]: the Continuum Memory System (Eqs. 70–71);
//! * [`hope`]: the DGD rule of Hope's self-modifying memories for a linear memory (Eqs. 88, 90, 93);
//! * [`self_modifying`]: self-modifying Titans, Hope's inner system (Eqs. 79–96: key, value and main memories with
//!   self-generated targets, residual MLP or linear, layer-wise DGD), and [`memory_rules`] making it the catalogue
//!   rule `kind: hope`;
//! * [`checks`]: every check, registered in `papers/nl.yaml`.

pub mod checks;
pub mod cms;
pub mod hope;
pub mod inner;
pub mod memory_rules;
pub mod optimizers;
pub mod self_modifying;

use crate::check::Check;

/// Every Nested Learning check.
pub fn checks() -> Vec<Check> {
    checks::checks()
}
