//! Nested Learning: The Illusion of Deep Learning Architectures (Behrouz, Razaviyayn, Zhong, Mirrokni;
//! arXiv 2512.24695 v1, <https://arxiv.org/abs/2512.24695v1>; equation numbers as v1 prints them, in project form
//! in `papers/nl.yaml`).
//!
//! * [`optimizers`]: the optimizers of §4 as f64 references on quadratics; their tch versions are the
//!   paper-neutral `crate::optim` that `training.optimizer` selects;
//! * [`inner`]: the inner problems (momentum as a memory, backprop as a memory, Newton–Schulz as descent, DGD);
//! * [`cms`]: the Continuum Memory System (Eqs. 70–71, 74); inside the models (`crate::models::cms`, Eqs. 70–74
//!   and Hope's output chain, Eq. 97) checked by [`cms_model_checks`];
//! * [`hope`]: the DGD rule of Hope's self-modifying memories for a linear memory (Eqs. 88, 90, 93);
//! * [`self_modifying`]: self-modifying Titans, Hope's inner system (Eqs. 79–96: key, value and main memories with
//!   self-generated targets, residual MLP or linear, layer-wise DGD), and [`memory_rules`] making it the catalogue
//!   rule `kind: hope`;
//! * [`preconditioned`]: preconditioned GD and momentum with concrete preconditioners (Eqs. 38, 46–47);
//! * [`appendix_b`]: Appendix B's optimizers whose momentum is an element-wise memory (Eqs. 103–105);
//! * [`ada_transformer`]: AdaTransformer's in-context feed-forward weight (Eqs. 21, 69);
//! * [`oja`]: OjaNet, Oja's rule as GD on its objective (Eqs. 66–67);
//! * [`checks`], [`checks_preconditioning`], [`checks_architectures`]: every check, registered in `papers/nl.yaml`.

pub mod ada_transformer;
pub mod appendix_b;
pub mod checks;
pub mod checks_architectures;
pub mod checks_preconditioning;
pub mod cms;
pub mod cms_model_checks;
pub mod hope;
pub mod inner;
pub mod memory_rules;
pub mod oja;
pub mod optimizers;
pub mod preconditioned;
pub mod self_modifying;

use crate::check::Check;

/// Every Nested Learning check.
pub fn checks() -> Vec<Check> {
    let mut all = checks::checks();
    all.extend(checks_preconditioning::checks());
    all.extend(checks_architectures::checks());
    all
}
