//! The model section of a study (`model:` in `experiments/*.yaml`): the architecture (LMM, MAC, MAG, MAL),
//! its sizes, attention positions, and the memory layer. The memory *rule* under `model.memory` (its `kind` and
//! the rule's own fields) is kept as written and resolved by `crate::memories`, so that this module names no
//! paper; the layer settings every rule shares are typed here.

pub use super::cms::{CmsLayout, CmsSpec};
use crate::memory::ReadMode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::{Mapping, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// the long-term memory module alone (Titans §4.3, "LMM")
    Lmm,
    /// memory as a context (Titans §4.1)
    Mac,
    /// memory as a gate (Titans §4.2)
    Mag,
    /// memory as a layer (Titans §4.3)
    Mal,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lmm => "lmm",
            ModelKind::Mac => "mac",
            ModelKind::Mag => "mag",
            ModelKind::Mal => "mal",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub kind: ModelKind,
    #[serde(default = "d_dim")]
    pub dim: usize,
    #[serde(default = "d_heads")]
    pub heads: usize,
    #[serde(default = "d_layers")]
    pub layers: usize,
    /// N_p learnable persistent tokens (Titans Eq. 19); 0 disables them
    #[serde(default = "d_persistent")]
    pub persistent_tokens: usize,
    /// MAC segment length C
    #[serde(default = "d_segment")]
    pub segment_len: usize,
    /// sliding-window size of MAG/MAL attention
    #[serde(default = "d_window")]
    pub window: usize,
    #[serde(default)]
    pub memory: MemorySpec,
    /// MAC's Eq. 25 `o = y ⊗ M*(y)`: `gate` (`y ⊙ σ(M*(y))`) or `add` (`y + M*(y)`); v1 leaves ⊗ open
    #[serde(default)]
    pub mac_combine: MacCombine,
    /// position information of every attention in the model
    #[serde(default)]
    pub attention: AttentionSpec,
    /// a Continuum Memory System in place of every block's feed-forward, learning in context (absent: the
    /// ordinary feed-forward); see [`super::cms`]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cms: Option<CmsSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MacCombine {
    #[default]
    Gate,
    Add,
}

/// How attention sees positions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionSpec {
    #[serde(default)]
    pub positions: Positions,
    /// RoPE's base `b` (angles `p · b^{−2i/d}`)
    #[serde(default = "d_rope_base")]
    pub rope_base: f64,
}

impl Default for AttentionSpec {
    fn default() -> Self {
        Self { positions: Positions::Rope, rope_base: d_rope_base() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// rotary position embeddings on queries and keys (RoFormer, arXiv 2104.09864, Eq. 34); persistent tokens
    /// and other always-visible prefix keys are not rotated
    #[default]
    Rope,
    /// no position information (attention is permutation-invariant within its mask)
    None,
}

fn d_rope_base() -> f64 {
    10_000.0
}
fn d_dim() -> usize {
    32
}
fn d_heads() -> usize {
    2
}
fn d_layers() -> usize {
    1
}
fn d_persistent() -> usize {
    4
}
fn d_segment() -> usize {
    16
}
fn d_window() -> usize {
    16
}

/// `model.memory`: the layer settings every memory shares, and the rule (`kind` plus the rule's own fields,
/// e.g. `{kind: mlp, layers: 2, expansion: 4}`, `{kind: moneta, p: 3, q: 4}`, `{kind: preset, name:
/// gated-deltanet}`), which `crate::memories::build` resolves strictly (unknown fields are errors).
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySpec {
    /// the rule as written: `kind` (default `linear`) and its fields
    pub rule: Mapping,
    /// learned momentum gate (true) or pinned at 0 (false): the "w/o momentum" ablation
    pub momentum: bool,
    /// learned forgetting gate (true) or pinned at "keep everything" (false): the "w/o weight decay" ablation
    pub forgetting: bool,
    /// the largest inner learning rate: θ_t (η_t in MIRAS) = max_lr · σ(·); absent = the rule's default
    /// (`crate::memories::default_max_lr`: 0.5 for linear memories, 0.1 for the MIRAS MLP, 0.02 for Moneta and
    /// Titans' deep memory)
    pub max_lr: Option<f64>,
    /// which state LMM/MAG/MAL read (MAC's retrieval always reads before the segment's writes)
    pub read: ReadMode,
    /// kernel of the short causal depthwise convolution on q, k, v (Titans §4.4); 0 = "w/o convolution"
    pub conv_kernel: usize,
    /// 1 = the sequential rule; C > 1 = chunkwise training (gradients at each chunk's start)
    pub chunk_size: usize,
}

/// The typed layer settings of [`MemorySpec`] (strict: a misspelt setting that is no rule field either is
/// reported by the rule's own parser, which sees every key that is not a setting).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerSettings {
    #[serde(default = "yes")]
    momentum: bool,
    #[serde(default = "yes")]
    forgetting: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_lr: Option<f64>,
    #[serde(default)]
    read: ReadMode,
    #[serde(default = "d_conv")]
    conv_kernel: usize,
    #[serde(default = "d_chunk")]
    chunk_size: usize,
}

/// The layer settings of `model.memory` (every other key belongs to the rule).
pub const MEMORY_SETTINGS: [&str; 6] = ["momentum", "forgetting", "max_lr", "read", "conv_kernel", "chunk_size"];

fn d_chunk() -> usize {
    1
}
fn d_conv() -> usize {
    4
}
fn yes() -> bool {
    true
}

impl MemorySpec {
    /// The rule's `kind` (`linear` when absent).
    pub fn kind(&self) -> String {
        match self.rule.get("kind") {
            Some(Value::String(s)) => s.clone(),
            _ => "linear".into(),
        }
    }
    /// The rule mapping with `kind` filled in.
    pub fn rule_value(&self) -> Value {
        let mut m = self.rule.clone();
        if !m.contains_key("kind") {
            m.insert("kind".into(), "linear".into());
        }
        Value::Mapping(m)
    }
    /// A spec from a YAML mapping text such as `{kind: mlp, layers: 2, max_lr: 0.1}` (rule fields and settings
    /// together, as `model.memory` is written); panics on text that is not such a mapping (for tests and
    /// built-in examples).
    pub fn with_rule(yaml: &str) -> Self {
        serde_yaml::from_str(yaml).expect("a model.memory mapping")
    }
}

impl Default for MemorySpec {
    fn default() -> Self {
        let mut rule = Mapping::new();
        rule.insert("kind".into(), "linear".into());
        Self {
            rule,
            momentum: true,
            forgetting: true,
            max_lr: None,
            read: ReadMode::AfterWrite,
            conv_kernel: d_conv(),
            chunk_size: d_chunk(),
        }
    }
}

impl<'de> Deserialize<'de> for MemorySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let all = Mapping::deserialize(d)?;
        let (mut settings, mut rule) = (Mapping::new(), Mapping::new());
        for (k, v) in all {
            match k.as_str() {
                Some(name) if MEMORY_SETTINGS.contains(&name) => settings.insert(k, v),
                _ => rule.insert(k, v),
            };
        }
        if !rule.contains_key("kind") {
            rule.insert("kind".into(), "linear".into());
        }
        let s: LayerSettings = serde_yaml::from_value(Value::Mapping(settings)).map_err(D::Error::custom)?;
        Ok(Self {
            rule,
            momentum: s.momentum,
            forgetting: s.forgetting,
            max_lr: s.max_lr,
            read: s.read,
            conv_kernel: s.conv_kernel,
            chunk_size: s.chunk_size,
        })
    }
}

impl Serialize for MemorySpec {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let settings = LayerSettings {
            momentum: self.momentum,
            forgetting: self.forgetting,
            max_lr: self.max_lr,
            read: self.read,
            conv_kernel: self.conv_kernel,
            chunk_size: self.chunk_size,
        };
        let mut all = self.rule.clone();
        if let Value::Mapping(m) = serde_yaml::to_value(&settings).map_err(S::Error::custom)? {
            all.extend(m);
        }
        all.serialize(ser)
    }
}
