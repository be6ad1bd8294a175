//! The element-wise non-linearity inside a deep memory (and the CMS levels), once: its name in configurations,
//! its f64 value and slope for the hand-written references, and its tch form.

use tch::Tensor;

/// The activation between a memory's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// `σ(x) = x · sigmoid(x)` (the project default; Titans §4.4 uses SiLU throughout).
    #[default]
    Silu,
    /// `σ(x) = x Φ(x) = ½x(1 + erf(x/√2))`, the exact GELU (not the tanh approximation).
    Gelu,
    /// no non-linearity: a deep linear memory (useful for reductions).
    Identity,
}

impl Activation {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "silu" => Ok(Self::Silu),
            "gelu" => Ok(Self::Gelu),
            "identity" | "none" => Ok(Self::Identity),
            other => anyhow::bail!("unknown activation `{other}` (expected silu, gelu or identity)"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Silu => "silu",
            Self::Gelu => "gelu",
            Self::Identity => "identity",
        }
    }

    /// `σ(x)` in f64 (the references).
    pub fn value(self, x: f64) -> f64 {
        match self {
            Self::Silu => x / (1.0 + (-x).exp()),
            Self::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            Self::Identity => x,
        }
    }

    /// `σ'(x)` in f64: SiLU `s(x)(1 + x(1 − s(x)))` with `s` the logistic sigmoid; GELU
    /// `d/dx xΦ(x) = Φ(x) + x φ(x)`; identity 1.
    pub fn slope(self, x: f64) -> f64 {
        match self {
            Self::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
            Self::Gelu => {
                let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                cdf + x * pdf
            }
            Self::Identity => 1.0,
        }
    }

    /// `σ` on a tensor (the tch implementations; autograd differentiates it).
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::Silu => x.silu(),
            Self::Gelu => x.gelu("none"),
            Self::Identity => x.shallow_clone(),
        }
    }
}
