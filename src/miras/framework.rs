//! MIRAS (arXiv 2504.13173 v1) §3–§4: the four design choices of a Miras memory, and the generic
//! Learning–Retaining update that composes them.
//!
//! (Learning–Retaining Viewpoint, §3.3):
//! $$W_t = \arg\min_{W} \tilde\ell_t(W; k_t, v_t) + \mathrm{Ret}_t(W, W_{t-1}),\qquad
//!   \mathrm{Ret}_t = \tfrac{1}{\eta_t}\mathcal{D}_t(W, W_{t-1}) + \tfrac{1}{\alpha_t}\mathcal{G}_t(W)$$
//! with the loss linearised, \(\tilde\ell_t(W) = \langle W - P_t, \nabla\ell(P_t)\rangle\), at the point
//! \(P_t\) the retention names (\(W_{t-1}\), or \(\alpha_t W_{t-1}\) for Eqs. 8–9).
//!
//! Project convention (see `crate::memory`): `W ∈ R^{d_v×d_k}`, read `y = W q`; key-space transitions act
//! from the **right** (the paper's left multiplications in Eq. 9 and Table 1 do not type-check for
//! `d_v ≠ d_k`). α_t is the MIRAS retention multiplier (1 keeps everything), η_t the inner learning rate,
//! δ_t the bias threshold (Huber, Yaad, value shift), μ_t the momentum decay.
//!
//! # YAML names (serde, kebab-case, internally tagged by `kind`)
//!
//! * memory: `{kind: linear}`, `{kind: mlp, depth: 2, expansion: 4}` (§5.3 residual form
//!   `M(x) = x + LN(W_1 σ(W_2 x))`, [`crate::miras::mlp`]).
//! * bias: `{kind: dot-product, scale: c}`, `{kind: l2, scale: c}`, `{kind: lp, p: 3}`, `{kind: l1}`,
//!   `{kind: lp-smooth, p: 3, kappa: κ, eps: 1e-6}` (Remark 5),
//!   `{kind: huber}` (coordinate-wise, Eqs. 13–14), `{kind: huber-norm}` (Eq. 15),
//!   `{kind: l2-l1-switch}` (Eq. 16, Yaad), `{kind: value-shift}` (Eq. 17). Thresholds come from δ_t.
//! * retention: `{kind: none}`, `{kind: l2-decayed}` (‖W − α W_{t−1}‖², Eqs. 8–9),
//!   `{kind: l2-local-global}` (Titans/Yaad, decoupled α_t), `{kind: elastic-net, beta: β, alpha: α}`
//!   (Eq. 22), `{kind: elastic-net-ftrl, alpha: α}` (Eq. 23), `{kind: lq, q: 4, form: mirror|printed}`
//!   (Variant 4 / Eq. 24), `{kind: kl}` (Eq. 21 / Memora, softmax over each row), `{kind: bregman-sigmoid}`
//!   (Variant 5).
//! * algorithm: `{kind: gd}` (Eq. 5), `{kind: momentum}` (Titans), `{kind: implicit-gd}` (Longhorn; ℓ2 only).

//!
//! # Domains (checked by [`Config::validate`])
//!
//! Every number must be finite. ℓ_p and smoothed ℓ_p need `p ≥ 1` (for `p < 1`, `|e|^{p−1}` is infinite at
//! `e = 0`, and `ℓ_p` is not convex), the smoothing `κ > 0`, `ε ≥ 0`; ℓ_q retention needs `q > 1` (the mirror map
//! `A ⊙ |A|^{q−2}/‖A‖_q^{q−2}` is the gradient of the strictly convex `½‖A‖_q²` only for `q > 1`; at `q ≤ 1`
//! it divides by zero at `A = 0`); the elastic-net weights `β, α > 0` (they divide). Biases with a threshold
//! (`huber`, `huber-norm`, `l2-l1-switch`, `value-shift`) read δ_t from an input tensor and momentum reads μ_t,
//! so `repro eval` requires those tensors rather than silently using zeros. Variants without fields take none:
//! [`parse_axis`] refuses `{kind: huber, delta: 0.5}` (serde ignores extra fields on internally tagged unit
//! variants).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Axis 1: the memory architecture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Memory {
    /// `M(W, k) = W k`, `W ∈ R^{d_v×d_k}`.
    Linear,
    /// `M(x) = x + LN(W_1 σ(W_2 x))` with σ = GELU (§5.3), hidden width `expansion·d`; `depth` must be 2
    /// (see [`crate::miras::mlp`]).
    Mlp { depth: usize, expansion: usize },
}

/// Axis 2: the attentional bias ℓ(W; k, v) as a function of `e = W k − v` (dot product: of `W k` and `v`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Bias {
    /// `ℓ = −2c⟨W k, v⟩` (§4 → Eq. 8); gradient `−2c v kᵀ`.
    DotProduct { scale: f64 },
    /// `ℓ = c‖W k − v‖²` (project convention, no hidden ½); gradient `2c e kᵀ`.
    L2 { scale: f64 },
    /// `ℓ = ‖e‖_p^p` (Eq. 10); gradient `p (sign(e) ⊙ |e|^{p−1}) kᵀ` (Eqs. 11, 25).
    Lp { p: f64 },
    /// `ℓ = ‖e‖_1` (Eq. 12); gradient `sign(e) kᵀ`.
    L1,
    /// Remark 5 / §5.4 smoothed ℓ_p step: `ψ = p tanh(κ e) ⊙ (e² + ε)^{(p−1)/2}` (sign ≈ tanh(κ·),
    /// |x| ≈ √(x² + ε)); a surrogate gradient, not the gradient of a loss.
    LpSmooth { p: f64, kappa: f64, eps: f64 },
    /// `ℓ = Σ_j H_δ(e_j)` (Huber approach 1, Eqs. 13–14).
    Huber,
    /// `ℓ = H_δ(‖e‖₂)` (Huber approach 2, Eq. 15).
    HuberNorm,
    /// Yaad's switch (Eq. 16): `½‖e‖²` if `‖e‖₂ ≤ δ`, else `δ‖e‖₁`.
    L2L1Switch,
    /// `ℓ = ½ max_{‖δv‖≤Δ} ‖W k − v − δv‖² = ½‖e‖² + Δ‖e‖ + ½Δ²` (Eq. 17), Δ = δ_t.
    ValueShift,
}

/// How the Moneta / Variant 4 normalisation is written (Eq. 24 ⚠).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LqForm {
    /// `W = A ⊙ |A|^{q−2} / ‖A‖_q^{q−2}` = ∇(½‖A‖_q²), the consistent mirror map.
    #[default]
    Mirror,
    /// `W = A / ‖A‖_q^{q−2}`, as printed in Eq. 24 (homogeneous of degree 3 − q).
    Printed,
}

/// Axis 3: the retention gate and its closed-form step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Retention {
    /// Only the proximal term `(1/(2η))‖W − W_{t−1}‖²` (Eq. 5, unnumbered proximal display); α_t is ignored.
    None,
    /// `(1/(2η))‖W − α W_{t−1}‖²`, loss linearised at `α W_{t−1}` (Eqs. 8–9, consistent form).
    L2Decayed,
    /// `(1/(2θ))‖W − W_{t−1}‖² + (1/β)‖W‖²` with decoupled gates: `W = α W_{t−1} − η ∇ℓ(W_{t−1})` (Titans, Yaad).
    L2LocalGlobal,
    /// Eq. 22: `W = S_γ(λ W_{t−1} − ζ ∇ℓ)`, `γ = ηβ/(α(η+β))`, `λ = β/(β+η)`, `ζ = ηλ`.
    ElasticNet { beta: f64, alpha: f64 },
    /// Eq. 23: `A_t = A_{t−1} − η ∇ℓ(W_{t−1})`, `W_t = S_{η/α}(A_t)`.
    ElasticNetFtrl { alpha: f64 },
    /// Variant 4 / Eq. 24: `A_t = α_t A_{t−1} − η_t ∇ℓ(W_{t−1})`, `W_t = N_q(A_t)`.
    Lq { q: f64, form: LqForm },
    /// Eq. 21 / Eq. 27: `Z_t = α_t Z_{t−1} − η_t ∇ℓ(W_{t−1})`, `W_t = Softmax_row(Z_t)` (each row on the simplex).
    Kl,
    /// Variant 5 with `f'(τ) = logit τ`: `W_t = σ(logit(W_{t−1}) − η ∇ℓ(W_{t−1}))`.
    BregmanSigmoid,
}

impl Bias {
    /// Whether the bias reads the threshold δ_t.
    pub fn uses_delta(self) -> bool {
        matches!(self, Bias::Huber | Bias::HuberNorm | Bias::L2L1Switch | Bias::ValueShift)
    }

    /// Rejects parameters outside the bias's mathematical domain (see the module docs).
    pub fn validate(self) -> anyhow::Result<()> {
        let finite = |name: &str, x: f64| -> anyhow::Result<()> {
            if !x.is_finite() {
                anyhow::bail!("bias {}: {name} = {x} must be finite", self.kind_name());
            }
            Ok(())
        };
        match self {
            Bias::DotProduct { scale } | Bias::L2 { scale } => finite("scale", scale)?,
            Bias::Lp { p } => {
                finite("p", p)?;
                if p < 1.0 {
                    anyhow::bail!(
                        "bias lp: p = {p} is outside its domain: ℓ_p needs p ≥ 1 (|e|^(p−1) is infinite at e = 0 for p < 1)"
                    );
                }
            }
            Bias::LpSmooth { p, kappa, eps } => {
                finite("p", p)?;
                finite("kappa", kappa)?;
                finite("eps", eps)?;
                if p < 1.0 || kappa <= 0.0 || eps < 0.0 {
                    anyhow::bail!(
                        "bias lp-smooth: needs p ≥ 1, kappa > 0 and eps ≥ 0 (got p = {p}, kappa = {kappa}, eps = {eps})"
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn kind_name(self) -> String {
        kind_of(&self)
    }
}

/// The `kind` tag a value serialises with (`lp`, `huber`, ...).
fn kind_of<T: Serialize>(x: &T) -> String {
    serde_yaml::to_value(x)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_string)))
        .unwrap_or_else(|| "?".into())
}

/// Parses one axis (`Bias`, `Retention`, `Algorithm`, `Memory`) from YAML, like serde, but also refuses
/// fields its variant does not have: serde's internally tagged enums ignore extra fields on unit variants, so
/// `{kind: huber, delta: 0.5}` would silently mean `{kind: huber}`. `what` names the source in errors
/// (`--param bias`).
pub fn parse_axis<T: Serialize + DeserializeOwned>(what: &str, text: &str) -> anyhow::Result<T> {
    let given: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("{what}={text}: not YAML: {e}"))?;
    let parsed: T = serde_yaml::from_value(given.clone()).map_err(|e| anyhow::anyhow!("{what}={text}: {e}"))?;
    let canonical = serde_yaml::to_value(&parsed)?;
    if let (Some(g), Some(c)) = (given.as_mapping(), canonical.as_mapping()) {
        let extra: Vec<String> = g
            .keys()
            .filter(|k| !c.contains_key(*k))
            .map(|k| format!("`{}`", k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"))))
            .collect();
        if !extra.is_empty() {
            let fields: Vec<String> =
                c.keys().filter_map(|k| k.as_str()).filter(|k| *k != "kind").map(|k| format!("`{k}`")).collect();
            let has = if fields.is_empty() { "no fields".to_string() } else { format!("only {}", fields.join(", ")) };
            anyhow::bail!(
                "{what}={text}: kind `{}` has {has}, not {} (thresholds δ_t and momentum decays μ_t come from the \
                 input tensors `delta` and `mu`)",
                kind_of(&parsed),
                extra.join(", ")
            );
        }
    }
    Ok(parsed)
}

impl Retention {
    /// Rejects parameters outside the retention's mathematical domain (see the module docs).
    pub fn validate(self) -> anyhow::Result<()> {
        let positive = |name: &str, x: f64| -> anyhow::Result<()> {
            if !(x.is_finite() && x > 0.0) {
                anyhow::bail!("retention {}: {name} = {x} must be a positive number", kind_of(&self));
            }
            Ok(())
        };
        match self {
            Retention::ElasticNet { beta, alpha } => {
                positive("beta", beta)?;
                positive("alpha", alpha)?;
            }
            Retention::ElasticNetFtrl { alpha } => positive("alpha", alpha)?,
            Retention::Lq { q, .. } if !(q.is_finite() && q > 1.0) => {
                anyhow::bail!(
                    "retention lq: q = {q} is outside its domain: ℓ_q retention needs q > 1 (the map \
                     A ⊙ |A|^(q−2)/‖A‖_q^(q−2) divides by zero at A = 0 for q ≤ 1, and ½‖A‖_q² is not strictly convex)"
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the state carried between tokens is a dual variable (A or Z) rather than W itself.
    pub fn has_dual_state(self) -> bool {
        matches!(self, Retention::ElasticNetFtrl { .. } | Retention::Lq { .. } | Retention::Kl)
    }
}

/// Axis 4: the learning algorithm that produces the step direction `D_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Algorithm {
    /// `D_t = −η_t ∇ℓ` (Eq. 5).
    Gd,
    /// `S_t = μ_t S_{t−1} − η_t ∇ℓ`, `D_t = S_t` (Titans Eqs. 10/13).
    Momentum,
    /// Implicit (proximal-point) GD, `W_t = P_t − η_t ∇ℓ(W_t)` solved in closed form (Longhorn; ℓ2 bias only).
    ImplicitGd,
}

/// A full Miras configuration: one choice on each axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub memory: Memory,
    pub bias: Bias,
    pub retention: Retention,
    pub algorithm: Algorithm,
}

impl Config {
    pub fn linear(bias: Bias, retention: Retention, algorithm: Algorithm) -> Self {
        Self { memory: Memory::Linear, bias, retention, algorithm }
    }
    /// Rejects parameters outside their domain and the combinations that have no closed form here.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.bias.validate()?;
        self.retention.validate()?;
        if let Memory::Mlp { depth, .. } = self.memory {
            if depth != 2 {
                anyhow::bail!("the MLP memory is implemented with depth 2 (the paper's M(x) = x + LN(W_1 σ(W_2 x)))");
            }
            if self.algorithm == Algorithm::ImplicitGd {
                anyhow::bail!("implicit-gd has no closed form for the MLP memory");
            }
        }
        if self.algorithm == Algorithm::ImplicitGd {
            let ok_bias = matches!(self.bias, Bias::L2 { .. });
            let ok_ret = matches!(self.retention, Retention::None | Retention::L2Decayed | Retention::L2LocalGlobal);
            if !ok_bias || !ok_ret {
                anyhow::bail!("implicit-gd has a closed form only for the l2 bias with none/l2 retention");
            }
        }
        if self.algorithm == Algorithm::Momentum && matches!(self.retention, Retention::ElasticNet { .. }) {
            anyhow::bail!("elastic-net (Eq. 22) is derived for a plain gradient step");
        }
        Ok(())
    }
}
