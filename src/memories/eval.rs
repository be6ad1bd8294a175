//! The rules `repro eval` runs, each a line: a name, its parameters, and the `model.memory` mapping they
//! select. Tensors, shapes, validation and both implementations come from the rule's description
//! ([`crate::eval`]); a new rule costs one entry here.

use super::build;
use crate::memory::rule::MemoryRule;
use crate::memory::ReadMode;
use crate::models::spec::MemorySpec;
use anyhow::{bail, Context, Result};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A parameter of a rule family, passed as `--param name=value` (values are YAML: `3`, `gelu`, `{kind: l1}`).
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// What a family's parameters select: the rule and the read mode.
pub type BuildRule = fn(&BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)>;

/// A rule reachable through `repro eval`: its parameters select the concrete [`MemoryRule`].
#[derive(Clone, Copy)]
pub struct RuleFamily {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    /// the rule for the given parameter values (every parameter present, defaults filled in)
    pub build: BuildRule,
}

const CHUNK: ParamSpec = ParamSpec {
    name: "chunk_size",
    default: "1",
    meaning: "C: gradients of a chunk are taken at its start state (1 = sequential)",
};
const CHUNK_16: ParamSpec = ParamSpec { name: "chunk_size", default: "16", meaning: CHUNK.meaning };
const READ: ParamSpec = ParamSpec {
    name: "read",
    default: "after-write",
    meaning: "after-write (y_t = M_t q_t) or before-write (y_t = M_{t−1} q_t)",
};
const LOSS_SCALE: ParamSpec =
    ParamSpec {
        name: "loss_scale", default: "1", meaning: "c in ℓ = c‖M(k) − v‖² (Titans Eq. 12: 1; Appendix C: ½)"
    };
const MLP: [ParamSpec; 4] = [
    ParamSpec { name: "layers", default: "2", meaning: "L_M, the number of weight matrices (1 = linear memory)" },
    ParamSpec { name: "expansion", default: "4", meaning: "hidden width = expansion · d_k" },
    ParamSpec {
        name: "activation",
        default: "silu",
        meaning: "silu, gelu (exact erf, titans-pytorch's MemoryMLP) or identity",
    },
    ParamSpec { name: "residual", default: "false", meaning: "M(k) = k + MLP(k) (needs d_k = d_v)" },
];
const AXES: [ParamSpec; 3] = [
    ParamSpec {
        name: "bias",
        default: "{kind: l2, scale: 1}",
        meaning: "attentional bias as YAML (names in miras::framework)",
    },
    ParamSpec { name: "retention", default: "{kind: none}", meaning: "retention gate as YAML" },
    ParamSpec {
        name: "algorithm",
        default: "{kind: gd}",
        meaning: "learning algorithm as YAML: gd, momentum, implicit-gd",
    },
];

/// `kind` plus the listed parameters as the rule mapping; `chunk_size` and `read` as the layer settings.
fn spec_of(kind: &str, p: &BTreeMap<String, String>, fields: &[&str]) -> Result<MemorySpec> {
    let mut rule = Mapping::new();
    rule.insert("kind".into(), kind.into());
    for f in fields {
        let v: Value =
            serde_yaml::from_str(&p[*f]).with_context(|| format!("--param {f}={}: not a YAML value", p[*f]))?;
        rule.insert((*f).into(), v);
    }
    let mut spec = MemorySpec { rule, ..MemorySpec::default() };
    if let Some(c) = p.get("chunk_size") {
        match c.parse::<usize>() {
            Ok(n) if n >= 1 => spec.chunk_size = n,
            _ => bail!("--param chunk_size={c}: must be a positive integer"),
        }
    }
    if let Some(r) = p.get("read") {
        spec.read = ReadMode::parse(r)?;
    }
    Ok(spec)
}

/// Builds the rule (which also refuses a read mode the rule does not define); the widths are checked later,
/// against the tensors (`validate_dims`).
fn built(spec: MemorySpec) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    Ok((build(&spec, 1)?, spec.read))
}

fn linear(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("linear", p, &["loss_scale"])?)
}
fn mlp(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("mlp", p, &["loss_scale", "layers", "expansion", "activation", "residual"])?)
}
fn framework(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("framework", p, &["bias", "retention", "algorithm"])?)
}
fn miras_mlp(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    let mut s = spec_of("framework", p, &["bias", "retention", "algorithm"])?;
    let e: usize = p["expansion"].parse().map_err(|_| anyhow::anyhow!("--param expansion: a positive integer"))?;
    let memory: Value = serde_yaml::from_str(&format!("{{kind: mlp, depth: 2, expansion: {e}}}"))?;
    s.rule.insert("memory".into(), memory);
    built(s)
}
fn moneta(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("moneta", p, &["p", "q", "form"])?)
}
fn yaad(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("yaad", p, &[])?)
}
fn memora(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("memora", p, &["scale"])?)
}
const OMEGA: [ParamSpec; 7] = [
    ParamSpec { name: "window", default: "4", meaning: "c, the Omega window (1 = online delta rule)" },
    ParamSpec { name: "degree", default: "2", meaning: "p of the polynomial features φ (a_j = 1/j!); 1 = φ(x) = x" },
    ParamSpec { name: "layers", default: "1", meaning: "1 = linear memory M (d_v × D); ≥ 2 = MLP memory on φ(k)" },
    ParamSpec { name: "expansion", default: "4", meaning: "deep memory: hidden width = expansion · d_k" },
    ParamSpec { name: "activation", default: "silu", meaning: "deep memory: silu, gelu or identity" },
    ParamSpec {
        name: "residual",
        default: "false",
        meaning: "deep memory: M(x) = x + MLP(x) (needs degree 1, d_k = d_v)",
    },
    ParamSpec {
        name: "bias",
        default: "l2",
        meaning: "l2 (the Omega rule) or dot (−⟨Mφ, v⟩: DLA with window 1, SWLA with window > 1; linear memory)",
    },
];
fn omega(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("omega", p, &["window", "degree", "layers", "expansion", "activation", "residual", "bias"])?)
}
fn atlas(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of(
        "atlas",
        p,
        &["window", "degree", "layers", "expansion", "activation", "residual", "ns_steps", "ns_kind"],
    )?)
}
fn tnt(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of("tnt", p, &["local_chunks", "shard", "qk_projection", "global_memory"])?)
}
fn hope(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    built(spec_of(
        "hope",
        p,
        &[
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
    )?)
}
fn preset(p: &BTreeMap<String, String>) -> Result<(Arc<dyn MemoryRule>, ReadMode)> {
    let mut q = p.clone();
    q.insert("name".into(), p["preset"].clone());
    built(spec_of("preset", &q, &["name"])?)
}

/// Every rule `repro eval` knows.
pub fn families() -> Vec<RuleFamily> {
    vec![
        RuleFamily {
            name: "titans.linear_memory",
            summary: "Titans Eqs. 12–15, linear memory (chunkwise Eqs. 16–18 with --param chunk_size=C)",
            params: &[LOSS_SCALE, READ, CHUNK],
            build: linear,
        },
        RuleFamily {
            name: "titans.linear_memory_chunkwise",
            summary: "Titans Eqs. 16–18, linear memory, chunkwise (gradients at the chunk start; matrix form)",
            params: &[LOSS_SCALE, READ, CHUNK_16],
            build: linear,
        },
        RuleFamily {
            name: "titans.mlp_memory",
            summary: "Titans Eqs. 12–15, deep (MLP) memory with L_M weight matrices, one tensor per matrix",
            params: &[LOSS_SCALE, READ, MLP[0], MLP[1], MLP[2], MLP[3], CHUNK],
            build: mlp,
        },
        RuleFamily {
            name: "titans.mlp_memory_chunkwise",
            summary: "Titans Eqs. 16–18, deep memory, chunkwise (per-token gradients at the chunk start)",
            params: &[LOSS_SCALE, READ, MLP[0], MLP[1], MLP[2], MLP[3], CHUNK_16],
            build: mlp,
        },
        RuleFamily {
            name: "miras.framework",
            summary:
                "MIRAS Learning–Retaining recurrence, linear memory, any bias × retention × algorithm (token by token)",
            params: &[AXES[0], AXES[1], AXES[2]],
            build: framework,
        },
        RuleFamily {
            name: "miras.mlp",
            summary: "MIRAS recurrence with the §5.3 MLP memory x + LN(W1 GELU(W2 x)), token by token",
            params: &[
                AXES[0],
                AXES[1],
                AXES[2],
                ParamSpec { name: "expansion", default: "4", meaning: "hidden width = expansion · d" },
            ],
            build: miras_mlp,
        },
        RuleFamily {
            name: "miras.preset",
            summary: "published recurrences as MIRAS presets (Table 1 / Eqs. 8–9), from the model's own gates a, b, c",
            params: &[ParamSpec {
                name: "preset",
                default: "deltanet",
                meaning: "linear-attention, retnet, mamba2, deltanet, gated-deltanet, longhorn, ttt-linear, titans-lmm",
            }],
            build: preset,
        },
        RuleFamily {
            name: "tnt.hierarchy",
            summary: "TNT Eqs. 5–7 / 13–15: global memory (chunk C_G = chunk_size) + local memories reset every S_L tokens, Q-K projection",
            params: &[
                ParamSpec { name: "local_chunks", default: "[8]", meaning: "C_L of each local memory (a YAML list)" },
                ParamSpec { name: "shard", default: "16", meaning: "S_L, the shard length (a multiple of every C_L)" },
                ParamSpec { name: "qk_projection", default: "true", meaning: "project local-read queries onto the shard's keys (Eq. 7)" },
                ParamSpec { name: "global_memory", default: "true", meaning: "include the global memory (Eq. 5)" },
                CHUNK_16,
            ],
            build: tnt,
        },
        RuleFamily {
            name: "miras.moneta",
            summary: "Moneta (Eqs. 24–25, corrected; chunkwise Eqs. 28–29), linear memory",
            params: &[
                ParamSpec { name: "p", default: "3", meaning: "ℓ_p attentional bias, p ≥ 1" },
                ParamSpec { name: "q", default: "4", meaning: "ℓ_q retention, q > 1" },
                ParamSpec {
                    name: "form",
                    default: "mirror",
                    meaning: "mirror (∇½‖A‖_q²) or printed (Eq. 24 as printed)",
                },
                CHUNK,
            ],
            build: moneta,
        },
        RuleFamily {
            name: "miras.yaad",
            summary: "Yaad (Eq. 26; chunkwise Eq. 28), linear memory",
            params: &[CHUNK],
            build: yaad,
        },
        RuleFamily {
            name: "miras.memora",
            summary: "Memora (Eq. 27 in logits; chunkwise with the lag token, Eqs. 30–32), rows on the simplex",
            params: &[ParamSpec { name: "scale", default: "1", meaning: "c of the ℓ2 bias c‖Wk − v‖²" }, CHUNK],
            build: memora,
        },
        RuleFamily {
            name: "atlas.omega",
            summary: "ATLAS Omega rule / OmegaNet (Eqs. 9–11, 15–16, 56): window-c ℓ2 objective on polynomial features, GD with momentum; gates alpha, eta, theta, gamma; state M, S and the window halo. --param bias=dot: DLA (window 1) / SWLA (Eqs. 19–20, 50–55)",
            params: &[OMEGA[0], OMEGA[1], OMEGA[2], OMEGA[3], OMEGA[4], OMEGA[5], OMEGA[6], READ, CHUNK],
            build: omega,
        },
        RuleFamily {
            name: "atlas.atlas",
            summary: "ATLAS Atlas (Eqs. 32–33, 40–41, 57–58): the Omega rule with Muon, M = (1−α)M + λ·NS_k(S); gates alpha, eta, theta, gamma, lambda",
            params: &[
                OMEGA[0],
                OMEGA[1],
                OMEGA[2],
                OMEGA[3],
                OMEGA[4],
                OMEGA[5],
                ParamSpec { name: "ns_steps", default: "5", meaning: "k, the Newton–Schulz steps (the paper's NS-5)" },
                ParamSpec { name: "ns_kind", default: "quintic_muon", meaning: "quintic_muon (Muon's coefficients) or cubic" },
                READ,
                CHUNK,
            ],
            build: atlas,
        },
        RuleFamily {
            name: "nl.hope",
            summary: "Nested Learning self-modifying Titans (Hope's inner system, Eqs. 79–96): key, value and main memories (residual MLP, Eq. 89, or linear) with self-generated targets v̂ = M(v), layer-wise DGD with decay; gates alpha, theta; state k_w1, k_w2, v_w1, v_w2, m_w1, m_w2 (linear: k_w, v_w, m_w)",
            params: &[
                ParamSpec { name: "memory", default: "mlp", meaning: "mlp (Eq. 89: z + W₁σ(W₂z)) or linear (Eqs. 92–93)" },
                ParamSpec { name: "expansion", default: "4", meaning: "MLP memories: hidden width = expansion · d" },
                ParamSpec { name: "activation", default: "silu", meaning: "MLP memories: silu, gelu or identity" },
                ParamSpec { name: "objective", default: "l2", meaning: "l2 (‖M(k) − v̂‖²) or dot (−⟨Mk, v̂⟩, Eq. 92; linear only)" },
                ParamSpec { name: "dgd", default: "true", meaning: "DGD's erase term (false: plain GD with decay, Table 6 w/o DGD)" },
                ParamSpec { name: "self_modifying", default: "true", meaning: "v̂_□ = M_□(v) (false: the shared target v, Eqs. 79–82)" },
                ParamSpec { name: "adaptive_k", default: "true", meaning: "k = normalize(M_k(x_k)) (false: the layer's k)" },
                ParamSpec { name: "adaptive_v", default: "true", meaning: "v = M_v(x_v) (false: the layer's v)" },
                ParamSpec { name: "normalize_v", default: "true", meaning: "l2-normalise the values v (false: the printed form, unstable with self-generated targets)" },
                ParamSpec { name: "adaptive_q", default: "false", meaning: "q = normalize(M_q(x_q)), the printed Eqs. 85/88/96 (default: the layer's q)" },
                ParamSpec { name: "own_keys", default: "false", meaning: "key every memory by its own output (M_v by v, M_q by q; the printed Eq. 80) instead of by k (Eq. 85)" },
                ParamSpec { name: "read", default: "before-write", meaning: "before-write (Eq. 94, y_t from the pre-update state) or after-write" },
                CHUNK,
            ],
            build: hope,
        },
    ]
}
