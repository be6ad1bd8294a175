//! Conventions shared by every memory in the project, written down once.
//!
//! * Vectors are columns. A linear memory `M` is `d_v × d_k` and is read as `y = M q`. Projections are
//!   `k = W_K x`, `v = W_V x`, `q = W_Q x` (the papers write row vectors; our weights are their transposes).
//! * The ℓ2 attentional bias is `ℓ(M; k, v) = c ‖M k − v‖²` with an explicit `loss_scale` `c` (default 1)
//!   and no hidden ½: its gradient is `2c (M k − v) kᵀ`, the factor written out.
//! * Titans' update: `S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t−1}; k_t, v_t)`, `M_t = (1 − α_t) M_{t−1} + S_t`,
//!   `S_0 = 0` unless given. α, η, θ are per token (and per head).
//! * Reads are after the write (`y_t = M_t q_t`) by default; [`ReadMode::BeforeWrite`] (`y_t = M_{t−1} q_t`,
//!   MAC's form) is an option with a name.
//! * Chunkwise (mini-batch) form with chunk size C: inside a chunk every gradient is taken at the state at the
//!   chunk's start, while momentum and forgetting still run token by token; C = 1 is the sequential rule.
//!
//! [`rule`] is the seam every paper's memory plugs into ([`rule::MemoryRule`]: gates, state, tch forward, f64
//! reference); [`batched`] runs any rule over `[B, H, …]` arrays for the checks and `repro eval`; [`autograd`]
//! takes a deep memory's inner gradient (second order when the outer loss needs it). This module names no paper:
//! the rules live with their papers (`titans::memory_rules`, `miras::memory_rules`) and `crate::memories` lists
//! them under their `model.memory` names.

pub mod activation;
pub mod autograd;
pub mod batched;
pub mod rule;

use serde::{Deserialize, Serialize};

/// The explicit factor `c` in `ℓ = c‖Mk − v‖²` (1 for Titans' Eq. 12; ½ for the appendix's form).
pub type LossScale = f64;

/// Which memory state a token reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// `y_t = M_t q_t`: the token's own write is visible (the project default; Titans Eq. 15 / Eq. 5).
    #[default]
    AfterWrite,
    /// `y_t = M_{t−1} q_t`: read the state left by earlier tokens (Titans Eq. 21, MAC).
    BeforeWrite,
}

impl ReadMode {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "after" | "after-write" => Ok(Self::AfterWrite),
            "before" | "before-write" => Ok(Self::BeforeWrite),
            other => anyhow::bail!("unknown read mode `{other}` (expected after-write or before-write)"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterWrite => "after-write",
            Self::BeforeWrite => "before-write",
        }
    }
}
