//! TNT: Improving Chunkwise Training for Test-Time Memorization (Li, Behrouz, Deng, Zhong, Kacham, Karami,
//! Razaviyayn, Mirrokni; arXiv 2511.07343 v1).
//!
//! Equation numbers are v1's (<https://arxiv.org/abs/2511.07343v1>); `papers/tnt.yaml` lists every numbered
//! equation in project form with the corrections (⚠ Eqs. 5, 6, 14; the Q-K projector's range), the code
//! implementing it and the check verifying it.
//!
//! * [`hierarchy`]: the global memory (large chunks `C_G`) and `N` local memories (small chunks `C_{L_i}`, reset
//!   to a learned `W_init` every `S_L` tokens), Eqs. 5–6, 13–14, read as Eq. 7 / 15;
//! * [`qk_projection`]: the per-shard projector `P_t = Σ k kᵀ/‖k‖²` (Eqs. 7–10, Appendix C);
//! * [`memory_rules`]: the hierarchy as a `MemoryRule` (`model.memory: {kind: tnt, …}`);
//! * [`checks`]: tch vs reference, the equivalences.
//!
//! Two-stage training (§4.2) is a study feature (`stages:` in `crate::experiment`), not an equation.

pub mod checks;
pub mod hierarchy;
pub mod memory_rules;
pub mod qk_projection;

use crate::check::Check;

/// Every TNT check, by the name `papers/tnt.yaml` uses.
pub fn checks() -> Vec<Check> {
    checks::checks()
}
