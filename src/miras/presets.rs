//! MIRAS (arXiv 2504.13173 v1) §4 and Table 1: published recurrences as named points of the framework.
//!
//! Each preset fixes the four axes and maps the model's own gates (`a`, `b`, `c`, per token) to the
//! framework's α_t (retention), η_t (learning rate), μ_t (momentum). In the project orientation
//! (`W ∈ R^{d_v×d_k}`, key-space factors on the right):
//!
//! | preset (YAML name) | published recurrence | axes | gates |
//! |---|---|---|---|
//! | `linear-attention` | $$M_t = M_{t-1} + v_t k_t^\top$$ | dot product, none, GD | α = 1, η = ½ |
//! | `retnet` | $$M_t = \gamma M_{t-1} + v_t k_t^\top$$ | dot product, ℓ2 decayed (Eq. 8), GD | a = γ: α = γ, η = ½ |
//! | `mamba2` | $$H_t = e^{\Delta_t A} H_{t-1} + \Delta_t x_t B_t^\top$$ | dot product, ℓ2 decayed, GD | a = Δ_t, b = A: α = e^{ΔA}, η = Δ/2 |
//! | `deltanet` | $$M_t = M_{t-1}(I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top$$ | ℓ2 (c = ½), none, GD | a = β: η = β |
//! | `gated-deltanet` | $$M_t = \alpha_t M_{t-1}(I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top$$ | ℓ2 (c = ½), ℓ2 decayed (Eq. 9 corrected), GD | a = α, b = β |
//! | `longhorn` | $$M_t = M_{t-1}(I - \epsilon_t k_t k_t^\top) + \epsilon_t v_t k_t^\top,\ \epsilon_t = \tfrac{\beta_t}{1 + \beta_t k_t^\top k_t}$$ | ℓ2 (c = ½), none, implicit GD | a = β: η = β |
//! | `ttt-linear` | $$W_t = W_{t-1} - \eta\nabla_W\lVert W k_t - v_t\rVert^2$$ | ℓ2 (c = 1), none, GD | a = η |
//! | `titans-lmm` | $$S_t = \eta_t S_{t-1} - \theta_t\nabla\ell,\ M_t = (1-\alpha_t)M_{t-1} + S_t$$ | ℓ2 (c = 1), ℓ2 local+global, momentum | a = α^{T}, b = η^{T}, c = θ: α = 1 − a, μ = b, η = c |
//!
//! Reads are `y_t = M_t q_t` (Mamba2: `y_t = H_t C_t`, i.e. q = C, k = B, v = x).

use super::framework::{Algorithm, Bias, Config, Retention};
use crate::tensor::Arr;
use serde::{Deserialize, Serialize};

/// A published recurrence of Table 1 / §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    LinearAttention,
    Retnet,
    Mamba2,
    Deltanet,
    GatedDeltanet,
    Longhorn,
    TttLinear,
    TitansLmm,
}

/// The framework gates a preset produces.
#[derive(Debug, Clone)]
pub struct Gates {
    pub alpha: Arr,
    pub eta: Arr,
    pub mu: Arr,
}

impl Preset {
    pub const ALL: [Preset; 8] = [
        Preset::LinearAttention,
        Preset::Retnet,
        Preset::Mamba2,
        Preset::Deltanet,
        Preset::GatedDeltanet,
        Preset::Longhorn,
        Preset::TttLinear,
        Preset::TitansLmm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::LinearAttention => "linear-attention",
            Preset::Retnet => "retnet",
            Preset::Mamba2 => "mamba2",
            Preset::Deltanet => "deltanet",
            Preset::GatedDeltanet => "gated-deltanet",
            Preset::Longhorn => "longhorn",
            Preset::TttLinear => "ttt-linear",
            Preset::TitansLmm => "titans-lmm",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown preset `{s}` (known: {})", Self::ALL.map(|p| p.name()).join(", ")))
    }

    /// The four axes.
    pub fn config(self) -> Config {
        let dot = Bias::DotProduct { scale: 1.0 };
        let half_l2 = Bias::L2 { scale: 0.5 };
        match self {
            Preset::LinearAttention => Config::linear(dot, Retention::None, Algorithm::Gd),
            Preset::Retnet | Preset::Mamba2 => Config::linear(dot, Retention::L2Decayed, Algorithm::Gd),
            Preset::Deltanet => Config::linear(half_l2, Retention::None, Algorithm::Gd),
            Preset::GatedDeltanet => Config::linear(half_l2, Retention::L2Decayed, Algorithm::Gd),
            Preset::Longhorn => Config::linear(half_l2, Retention::None, Algorithm::ImplicitGd),
            Preset::TttLinear => Config::linear(Bias::L2 { scale: 1.0 }, Retention::None, Algorithm::Gd),
            Preset::TitansLmm => Config::linear(Bias::L2 { scale: 1.0 }, Retention::L2LocalGlobal, Algorithm::Momentum),
        }
    }

    /// What the native gates `a`, `b`, `c` mean (unused ones are ignored).
    pub fn gate_meaning(self) -> &'static str {
        match self {
            Preset::LinearAttention => "none",
            Preset::Retnet => "a = γ (constant decay)",
            Preset::Mamba2 => "a = Δ_t (step), b = A (negative scalar decay rate)",
            Preset::Deltanet | Preset::Longhorn => "a = β_t",
            Preset::GatedDeltanet => "a = α_t (gate), b = β_t",
            Preset::TttLinear => "a = η (inner learning rate)",
            Preset::TitansLmm => "a = α_t (forget), b = η_t (momentum), c = θ_t (learning rate)",
        }
    }

    /// Maps the native gates to the framework's α, η, μ (all arrays of the same shape).
    pub fn gates(self, a: &Arr, b: &Arr, c: &Arr) -> Gates {
        let ones = a.mapv(|_| 1.0);
        let zeros = a.mapv(|_| 0.0);
        let half = a.mapv(|_| 0.5);
        let (alpha, eta, mu) = match self {
            Preset::LinearAttention => (ones, half, zeros),
            Preset::Retnet => (a.clone(), half, zeros),
            Preset::Mamba2 => {
                let alpha = ndarray::Zip::from(a).and(b).map_collect(|&d, &aa| (d * aa).exp());
                (alpha, a * 0.5, zeros)
            }
            Preset::Deltanet | Preset::Longhorn | Preset::TttLinear => (ones, a.clone(), zeros),
            Preset::GatedDeltanet => (a.clone(), b.clone(), zeros),
            Preset::TitansLmm => (a.mapv(|x| 1.0 - x), c.clone(), b.clone()),
        };
        Gates { alpha, eta, mu }
    }
}
