//! The catalogue of memory rules: the names a study writes under `model.memory` (and `repro eval` runs),
//! resolved to the [`MemoryRule`] of each paper. The one place that knows every paper's memories; models,
//! checks and `repro eval` see only the trait.
//!
//! `model.memory` (kebab-case `kind`, strict: unknown fields are errors), with the shared layer settings
//! (`momentum`, `forgetting`, `max_lr`, `read`, `conv_kernel`, `chunk_size`) beside the rule's own fields:
//!
//! | kind | rule | fields (defaults) |
//! |---|---|---|
//! | `linear` | Titans' linear memory, Eqs. 12–15 (chunkwise Eqs. 16–18) | `loss_scale: 1` |
//! | `mlp` | Titans' deep memory, `L_M` weight matrices (`max_lr` default 0.02) | `layers: 2`, `expansion: 4`, `activation: silu\|gelu\|identity`, `residual: false`, `loss_scale: 1` |
//! | `framework` | MIRAS, any valid memory × bias × retention × algorithm (token by token) | `memory: {kind: linear}`, `bias: {kind: l2, scale: 1}`, `retention: {kind: l2-decayed}`, `algorithm: {kind: gd}` |
//! | `moneta` | MIRAS Moneta, Eqs. 24–25 (chunkwise Eq. 28–29; `max_lr` default 0.02) | `p: 3`, `q: 4`, `form: mirror\|printed` |
//! | `yaad` | MIRAS Yaad, Eq. 26 | — |
//! | `memora` | MIRAS Memora, Eq. 27 (chunkwise Eqs. 30–32) | `scale: 1` |
//! | `hope` | Nested Learning's self-modifying Titans (Hope's inner system, Eqs. 79–96): key, value and main memories generating their own targets, layer-wise DGD with decay; gates `alpha`, `theta`, no momentum (`crate::nl::self_modifying`) | `memory: mlp\|linear`, `expansion: 4`, `activation: silu\|gelu\|identity`, `objective: l2\|dot` (dot: linear only), `dgd: true`, `self_modifying: true`, `adaptive_k: true`, `adaptive_v: true`, `adaptive_q: false`, `normalize_v: true`, `own_keys: false` |
//! | `tnt` | TNT's hierarchy, Eqs. 5–7 / 13–15: global memory with chunk `C_G` = the layer's `chunk_size`, local memories reset every `shard` tokens, Q-K projection | `local_chunks: [C_L, …]` (required), `shard: S_L` (required, a multiple of every `C_L`), `qk_projection: true`, `global_memory: true`, `loss_scale: 1` |
//! | `preset` | a published recurrence of MIRAS Table 1 | `name: linear-attention\|retnet\|mamba2\|deltanet\|gated-deltanet\|longhorn\|ttt-linear\|titans-lmm` |
//! | `omega` | ATLAS Omega rule with polynomial features, GD with momentum (OmegaNet with `layers: 2`; Eqs. 9–11, 15–16, 56) | `window: 4`, `degree: 2` (1 = no polynomial map), `layers: 1` (linear), `expansion: 4`, `activation: silu\|gelu\|identity`, `residual: false`, `bias: l2\|dot` |
//! | `omega` with `bias: dot` | ATLAS DLA (`window: 1`, Eqs. 19, 50–51) / SWLA (`window > 1`, Eqs. 20, 54–55): the dot-product bias −⟨Mφ(k), v⟩, linear memory | the `omega` fields |
//! | `atlas` | ATLAS Atlas: the Omega rule with Muon (Newton–Schulz momentum; Eqs. 32–33, 40–41, 57–58) | the `omega` fields, `ns_steps: 5`, `ns_kind: quintic_muon\|cubic` |

pub mod checks;
pub mod eval;

use crate::memory::rule::MemoryRule;
use crate::miras::framework::{Algorithm, Bias, Config, LqForm, Memory, Retention};
use crate::miras::memory_rules::{MirasFramework, MirasGates, MirasModel};
use crate::miras::models::Model;
use crate::miras::preset_rules::MirasPreset;
use crate::miras::presets::Preset;
use crate::models::spec::MemorySpec;
use crate::titans::memory_rules::{TitansGates, TitansLinear, TitansMlp};
use crate::titans::mlp_memory::Activation;
use crate::tnt::hierarchy::TntConfig;
use crate::tnt::memory_rules::TntLinear;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The rule part of `model.memory`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RuleChoice {
    Linear {
        #[serde(default = "d_scale")]
        loss_scale: f64,
    },
    Mlp {
        #[serde(default = "d_scale")]
        loss_scale: f64,
        #[serde(default = "d_layers")]
        layers: usize,
        #[serde(default = "d_expansion")]
        expansion: usize,
        #[serde(default)]
        activation: ActivationName,
        #[serde(default)]
        residual: bool,
    },
    Framework {
        #[serde(default = "d_memory")]
        memory: Memory,
        #[serde(default = "d_bias")]
        bias: Bias,
        #[serde(default = "d_retention")]
        retention: Retention,
        #[serde(default = "d_algorithm")]
        algorithm: Algorithm,
    },
    Moneta {
        #[serde(default = "d_p")]
        p: f64,
        #[serde(default = "d_q")]
        q: f64,
        #[serde(default)]
        form: LqForm,
    },
    Yaad {},
    Memora {
        #[serde(default = "d_scale")]
        scale: f64,
    },
    Preset {
        name: Preset,
    },
    Omega {
        #[serde(default = "d_window")]
        window: usize,
        #[serde(default = "d_degree")]
        degree: usize,
        #[serde(default = "d_one")]
        layers: usize,
        #[serde(default = "d_expansion")]
        expansion: usize,
        #[serde(default)]
        activation: ActivationName,
        #[serde(default)]
        residual: bool,
        #[serde(default)]
        bias: OmegaBias,
    },
    Atlas {
        #[serde(default = "d_window")]
        window: usize,
        #[serde(default = "d_degree")]
        degree: usize,
        #[serde(default = "d_one")]
        layers: usize,
        #[serde(default = "d_expansion")]
        expansion: usize,
        #[serde(default)]
        activation: ActivationName,
        #[serde(default)]
        residual: bool,
        #[serde(default = "d_ns_steps")]
        ns_steps: usize,
        #[serde(default)]
        ns_kind: crate::newton_schulz::Kind,
        #[serde(default)]
        bias: OmegaBias,
    },
    /// TNT's hierarchy (arXiv 2511.07343, `crate::tnt`); the layer's `chunk_size` is the global chunk `C_G`
    Tnt {
        local_chunks: Vec<usize>,
        shard: usize,
        #[serde(default = "yes")]
        qk_projection: bool,
        #[serde(default = "yes")]
        global_memory: bool,
        #[serde(default = "d_scale")]
        loss_scale: f64,
    },
    /// Nested Learning's self-modifying Titans (`crate::nl::self_modifying`); the layer's `chunk_size` is C
    Hope {
        #[serde(default)]
        memory: crate::nl::self_modifying::Form,
        #[serde(default = "d_expansion")]
        expansion: usize,
        #[serde(default)]
        activation: ActivationName,
        #[serde(default)]
        objective: crate::nl::self_modifying::Objective,
        #[serde(default = "yes")]
        dgd: bool,
        #[serde(default = "yes")]
        self_modifying: bool,
        #[serde(default = "yes")]
        adaptive_k: bool,
        #[serde(default = "yes")]
        adaptive_v: bool,
        #[serde(default)]
        adaptive_q: bool,
        #[serde(default = "yes")]
        normalize_v: bool,
        #[serde(default)]
        own_keys: bool,
    },
}

fn yes() -> bool {
    true
}

/// The attentional bias of the `omega` / `atlas` window objective, as YAML spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OmegaBias {
    /// `‖M(φ(k)) − v‖²`, the Omega rule
    #[default]
    L2,
    /// `−⟨M φ(k), v⟩` (linear memory): DLA (`window: 1`) / SWLA (`window > 1`)
    Dot,
}

impl From<OmegaBias> for crate::atlas::omega::Bias {
    fn from(b: OmegaBias) -> Self {
        match b {
            OmegaBias::L2 => Self::L2,
            OmegaBias::Dot => Self::Dot,
        }
    }
}

/// The activation inside Titans' deep memory, as YAML spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationName {
    #[default]
    Silu,
    Gelu,
    Identity,
}

impl From<ActivationName> for Activation {
    fn from(a: ActivationName) -> Self {
        match a {
            ActivationName::Silu => Activation::Silu,
            ActivationName::Gelu => Activation::Gelu,
            ActivationName::Identity => Activation::Identity,
        }
    }
}

fn d_layers() -> usize {
    2
}
fn d_expansion() -> usize {
    4
}
fn d_memory() -> Memory {
    Memory::Linear
}
fn d_bias() -> Bias {
    Bias::L2 { scale: 1.0 }
}
fn d_retention() -> Retention {
    Retention::L2Decayed
}
fn d_algorithm() -> Algorithm {
    Algorithm::Gd
}
fn d_p() -> f64 {
    3.0
}
fn d_q() -> f64 {
    4.0
}
fn d_scale() -> f64 {
    1.0
}
fn d_window() -> usize {
    4
}
fn d_degree() -> usize {
    2
}
fn d_one() -> usize {
    1
}
fn d_ns_steps() -> usize {
    crate::newton_schulz::DEFAULT_STEPS
}

/// Every kind (for messages and `--help`).
pub const KINDS: [&str; 11] =
    ["linear", "mlp", "framework", "moneta", "yaad", "memora", "preset", "omega", "atlas", "tnt", "hope"];

/// The rule fields of each kind (besides `kind`), for messages.
fn rule_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "linear" => &["loss_scale"],
        "mlp" => &["loss_scale", "layers", "expansion", "activation", "residual"],
        "framework" => &["memory", "bias", "retention", "algorithm"],
        "moneta" => &["p", "q", "form"],
        "memora" => &["scale"],
        "preset" => &["name"],
        "omega" => &["window", "degree", "layers", "expansion", "activation", "residual", "bias"],
        "atlas" => {
            &["window", "degree", "layers", "expansion", "activation", "residual", "ns_steps", "ns_kind", "bias"]
        }
        "tnt" => &["local_chunks", "shard", "qk_projection", "global_memory", "loss_scale"],
        "hope" => &[
            "memory",
            "expansion",
            "activation",
            "objective",
            "dgd",
            "self_modifying",
            "adaptive_k",
            "adaptive_v",
            "adaptive_q",
            "normalize_v",
            "own_keys",
        ],
        _ => &[],
    }
}

/// Keys of `given` (recursively) that the parsed value does not have: serde ignores extra fields on internally
/// tagged unit variants (`{kind: huber, delta: 0.5}` would silently mean `{kind: huber}`), so the parse is checked
/// by serialising it back.
fn extra_keys(given: &serde_yaml::Value, canonical: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
    if let (Some(g), Some(c)) = (given.as_mapping(), canonical.as_mapping()) {
        for (k, v) in g {
            let name = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
            let at = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            match c.get(k) {
                Some(cv) => extra_keys(v, cv, &at, out),
                None => out.push(at),
            }
        }
    }
}

/// Parses the rule part of `model.memory`. An unknown field is reported with every field that kind accepts
/// (its own and the layer settings) and the closest one; a field given to a variant that has none (an axis
/// `{kind: huber, delta: 0.5}`) is an error too.
pub fn parse(spec: &MemorySpec) -> Result<RuleChoice> {
    let given = spec.rule_value();
    let parsed = parse_strict_serde(spec, &given)?;
    let canonical = serde_yaml::to_value(&parsed)?;
    let mut extra = vec![];
    extra_keys(&given, &canonical, "", &mut extra);
    if let Some(first) = extra.first() {
        let (parent, field) = first.rsplit_once('.').unwrap_or(("", first));
        let owner = if parent.is_empty() { format!("memory kind `{}`", spec.kind()) } else { format!("`{parent}`") };
        bail!(
            "unknown field `{first}`: {owner} has no field `{field}` (thresholds δ_t and momentum decays μ_t are gates, not fields)"
        );
    }
    Ok(parsed)
}

fn parse_strict_serde(spec: &MemorySpec, given: &serde_yaml::Value) -> Result<RuleChoice> {
    serde_yaml::from_value(given.clone()).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("unknown variant") {
            let kind = spec.kind();
            let best = KINDS
                .iter()
                .map(|n| (strsim::jaro_winkler(&kind, n), *n))
                .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
                .filter(|(s, _)| *s > 0.7 && msg.contains(&format!("`{kind}`")))
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return anyhow::anyhow!("{msg}{best}");
        }
        if let Some(bad) = msg.split("unknown field `").nth(1).and_then(|r| r.split('`').next()) {
            let kind = spec.kind();
            let mut known: Vec<&str> = rule_fields(&kind).to_vec();
            known.extend(crate::models::spec::MEMORY_SETTINGS);
            let best = known
                .iter()
                .map(|n| (strsim::jaro_winkler(bad, n), *n))
                .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
                .filter(|(s, _)| *s > 0.7)
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return anyhow::anyhow!(
                "unknown field `{bad}` for memory kind `{kind}`, expected one of {}{best}",
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            );
        }
        anyhow::anyhow!("{msg}")
    })
}

fn positive(what: &str, x: f64) -> Result<()> {
    if !(x.is_finite() && x > 0.0) {
        bail!("{what} must be a positive number (got {x})");
    }
    Ok(())
}

/// The inner learning-rate ceiling when `max_lr` is not given: 0.5 for the linear memories (the step
/// `2θ‖k‖² ≤ 0.5` with unit keys keeps the delta rule contractive); 0.1 for the MIRAS MLP memory, whose steps grow
/// with the hidden activations: at 0.5 its states reach 1e4 within a dozen tokens in the test models
/// (`tests/models.rs`), at 0.1 they stay O(1); 0.02 for Moneta, whose ℓ3 step grows with the squared error: at
/// 0.5 its states reached 1e16 within a dozen tokens, and at 0.1 one batch of the `miras` study's character LM
/// sent the second block's state from 6 to 6.6e9 at step 39 (NaN gradients), while at 0.02 the largest entry
/// stays below 5 over 120 steps; and 0.02 for Titans' deep
/// memory, whose unnormalised MLP feeds its own growth (the gradient of `W^{(2)}` scales with `W^{(1)}k`): in the
/// second block of the `titans_table5` model (C = 8, d = 16, hidden 32) on King James text at initialisation its
/// state reached 1e35 (NaN) at 0.05 without forgetting and 7.5e3 with it; at 0.02 the largest entry over twelve
/// batches is 2.5; and 0.2 for TNT, whose global memory sums `C_G` frozen-gradient steps (the step
/// `2θΣkkᵀ` over a chunk of unit keys has eigenvalues ≈ 2θ·C_G/d): on the `tnt` study's character LM (d = 16 per
/// head, C_G = 64) after 30 steps the loss is 3.01 nats at 0.5 against 2.74 at 0.2, gradient norms 2.9 vs 1.9 at
/// step 10 (Titans' linear memory at C = 64 likewise: 2.95 vs 2.58); for `hope`, 0.02 with MLP memories and 0.2
/// with linear ones (`crate::nl::memory_rules::default_max_lr`: the quickstart LMM with MLP memories reached a
/// non-finite loss at step 40 at 0.1 and trains at 0.02).
pub fn default_max_lr(choice: &RuleChoice) -> f64 {
    match choice {
        RuleChoice::Tnt { .. } => 0.2,
        RuleChoice::Hope { memory, .. } => crate::nl::memory_rules::default_max_lr(*memory),
        RuleChoice::Mlp { .. } => 0.02,
        RuleChoice::Moneta { .. } => 0.02,
        RuleChoice::Framework { memory: Memory::Mlp { .. }, .. } => 0.1,
        RuleChoice::Omega { window, degree, layers, .. } | RuleChoice::Atlas { window, degree, layers, .. } => {
            crate::atlas::memory_rules::default_max_lr(
                *window,
                *degree,
                *layers,
                matches!(choice, RuleChoice::Atlas { .. }),
            )
        }
        _ => 0.5,
    }
}

/// The `model.memory` sub-field an error from [`build`] is about (`.layers`, …), or `""`.
pub fn field_of(msg: &str) -> String {
    for key in ["unknown field `", "missing field `"] {
        if let Some(i) = msg.find(key) {
            let rest = &msg[i + key.len()..];
            if let Some(j) = rest.find('`') {
                if key.starts_with("unknown") {
                    return format!(".{}", &rest[..j]);
                }
                return String::new();
            }
        }
    }
    if msg.contains("unknown variant") {
        return ".kind".into();
    }
    if let Some((head, _)) = msg.split_once(':') {
        if let Some(field) = head.trim().rsplit(' ').next() {
            if [
                "layers",
                "expansion",
                "loss_scale",
                "chunk_size",
                "max_lr",
                "read",
                "p",
                "q",
                "scale",
                "window",
                "degree",
                "ns_steps",
                "local_chunks",
                "shard",
            ]
            .contains(&field)
            {
                return format!(".{field}");
            }
        }
    }
    String::new()
}

/// Builds the rule of `model.memory`, validating its values and its fit with the layer settings; `head_dim`
/// is the models' `d_k = d_v = dim / heads`.
pub fn build(spec: &MemorySpec, head_dim: usize) -> Result<Arc<dyn MemoryRule>> {
    let choice = parse(spec)?;
    let max_lr = spec.max_lr.unwrap_or_else(|| default_max_lr(&choice));
    if !(max_lr.is_finite() && max_lr > 0.0) {
        bail!("max_lr must be a positive number (got {max_lr})");
    }
    if spec.chunk_size == 0 {
        bail!("chunk_size must be at least 1 (1 = sequential)");
    }
    let chunk = spec.chunk_size;
    let titans = TitansGates { max_lr, momentum: spec.momentum, forgetting: spec.forgetting };
    let miras = MirasGates { max_lr, momentum: spec.momentum, forgetting: spec.forgetting };
    let sequential_only = |what: &str| -> Result<()> {
        if chunk > 1 {
            bail!("chunk_size {chunk}: {what} has no chunkwise form here; use chunk_size: 1");
        }
        Ok(())
    };
    let rule: Arc<dyn MemoryRule> = match choice {
        RuleChoice::Linear { loss_scale } => {
            positive("linear: loss_scale", loss_scale)?;
            Arc::new(TitansLinear { gates: titans, chunk, loss_scale })
        }
        RuleChoice::Mlp { loss_scale, layers, expansion, activation, residual } => {
            positive("mlp: loss_scale", loss_scale)?;
            if layers == 0 || expansion == 0 {
                bail!("mlp: layers and expansion must be at least 1 (got layers {layers}, expansion {expansion})");
            }
            let activation = activation.into();
            Arc::new(TitansMlp { gates: titans, chunk, loss_scale, layers, expansion, activation, residual })
        }
        RuleChoice::Framework { memory, bias, retention, algorithm } => {
            sequential_only("the general MIRAS framework")?;
            let config = Config { memory, bias, retention, algorithm };
            config.validate()?;
            Arc::new(MirasFramework { config, settings: miras })
        }
        RuleChoice::Moneta { p, q, form } => {
            if !(p.is_finite() && p >= 1.0) {
                bail!("moneta: p must be at least 1 (the ℓ_p bias; got {p})");
            }
            if !(q.is_finite() && q > 1.0) {
                bail!("moneta: q must be greater than 1 (the ℓ_q retention; got {q})");
            }
            Arc::new(MirasModel { model: Model::Moneta { p, q, form }, chunk, settings: miras })
        }
        RuleChoice::Yaad {} => Arc::new(MirasModel { model: Model::Yaad, chunk, settings: miras }),
        RuleChoice::Memora { scale } => {
            if !(scale.is_finite() && scale > 0.0) {
                bail!("memora: scale must be a positive number (got {scale})");
            }
            Arc::new(MirasModel { model: Model::Memora { scale }, chunk, settings: miras })
        }
        RuleChoice::Preset { name } => {
            sequential_only("a preset")?;
            Arc::new(MirasPreset { preset: name, settings: miras })
        }
        RuleChoice::Omega { window, degree, layers, expansion, activation, residual, bias } => {
            let shape = crate::atlas::memory_rules::Shape {
                window,
                degree,
                layers,
                expansion,
                activation: activation.into(),
                residual,
                bias: bias.into(),
            };
            let gates =
                crate::atlas::memory_rules::OmegaGates { max_lr, momentum: spec.momentum, forgetting: spec.forgetting };
            Arc::new(crate::atlas::memory_rules::OmegaRule::new(shape, None, gates, chunk)?)
        }
        RuleChoice::Atlas { window, degree, layers, expansion, activation, residual, ns_steps, ns_kind, bias } => {
            let shape = crate::atlas::memory_rules::Shape {
                window,
                degree,
                layers,
                expansion,
                activation: activation.into(),
                residual,
                bias: bias.into(),
            };
            let gates =
                crate::atlas::memory_rules::OmegaGates { max_lr, momentum: spec.momentum, forgetting: spec.forgetting };
            if ns_steps == 0 {
                bail!("atlas: ns_steps must be at least 1 (Newton–Schulz steps; the paper's NS-5 is 5)");
            }
            let muon = crate::atlas::omega::Muon { kind: ns_kind, steps: ns_steps };
            Arc::new(crate::atlas::memory_rules::OmegaRule::new(shape, Some(muon), gates, chunk)?)
        }
        RuleChoice::Tnt { local_chunks, shard, qk_projection, global_memory, loss_scale } => {
            let config =
                TntConfig { global_chunk: chunk, local_chunks, shard, qk_projection, global_memory, loss_scale };
            config.validate()?;
            Arc::new(TntLinear { config, max_lr, momentum: spec.momentum, forgetting: spec.forgetting })
        }
        RuleChoice::Hope {
            memory,
            expansion,
            activation,
            objective,
            dgd,
            self_modifying,
            adaptive_k,
            adaptive_v,
            adaptive_q,
            normalize_v,
            own_keys,
        } => {
            let config = crate::nl::self_modifying::HopeConfig {
                form: memory,
                expansion,
                activation: activation.into(),
                objective,
                dgd,
                self_modifying,
                adaptive_k,
                adaptive_v,
                adaptive_q,
                normalize_v,
                own_keys,
                chunk,
            };
            config.validate()?;
            Arc::new(crate::nl::memory_rules::HopeRule { config, max_lr, forgetting: spec.forgetting })
        }
    };
    if spec.read == crate::memory::ReadMode::BeforeWrite && !rule.reads_before_write() {
        bail!("read: before-write is not defined for {} (it reads after the write)", rule.name());
    }
    rule.validate_dims(head_dim, head_dim)?;
    Ok(rule)
}

/// One example of every kind (the presets each), for tests, checks and `--help`.
pub fn examples() -> Vec<(&'static str, &'static str)> {
    vec![
        ("titans-linear", "{kind: linear}"),
        ("titans-mlp", "{kind: mlp, layers: 2, expansion: 2}"),
        ("titans-mlp-gelu", "{kind: mlp, layers: 2, expansion: 1, activation: gelu}"),
        ("miras-framework-huber-momentum", "{kind: framework, bias: {kind: huber}, retention: {kind: l2-local-global}, algorithm: {kind: momentum}}"),
        ("miras-framework-mlp", "{kind: framework, memory: {kind: mlp, depth: 2, expansion: 1}, bias: {kind: l2, scale: 1}, retention: {kind: l2-decayed}}"),
        ("moneta", "{kind: moneta, p: 3, q: 4}"),
        ("yaad", "{kind: yaad}"),
        ("memora", "{kind: memora}"),
        ("preset-linear-attention", "{kind: preset, name: linear-attention}"),
        ("preset-retnet", "{kind: preset, name: retnet}"),
        ("preset-mamba2", "{kind: preset, name: mamba2}"),
        ("preset-deltanet", "{kind: preset, name: deltanet}"),
        ("preset-gated-deltanet", "{kind: preset, name: gated-deltanet}"),
        ("preset-longhorn", "{kind: preset, name: longhorn}"),
        ("preset-ttt-linear", "{kind: preset, name: ttt-linear}"),
        ("preset-titans-lmm", "{kind: preset, name: titans-lmm}"),
        ("atlas-omega-linear", "{kind: omega, window: 3, degree: 2}"),
        ("atlas-omeganet", "{kind: omega, window: 2, degree: 2, layers: 2, expansion: 1}"),
        ("atlas-atlas-linear", "{kind: atlas, window: 3, degree: 2}"),
        ("atlas-atlas-deep", "{kind: atlas, window: 2, degree: 2, layers: 2, expansion: 1}"),
        ("atlas-swla", "{kind: omega, window: 3, degree: 2, bias: dot}"),
        ("atlas-dla-deep", "{kind: omega, window: 1, degree: 2, layers: 2, expansion: 1, bias: dot}"),
        ("tnt", "{kind: tnt, local_chunks: [2, 1], shard: 4}"),
        ("nl-hope", "{kind: hope, expansion: 1, read: before-write}"),
        ("nl-hope-adaptive-q-gd", "{kind: hope, expansion: 1, activation: gelu, dgd: false, self_modifying: false, adaptive_q: true, own_keys: true}"),
        ("nl-hope-linear-dot", "{kind: hope, memory: linear, objective: dot, adaptive_v: false, normalize_v: false}"),
    ]
}
