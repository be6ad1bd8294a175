//! MIRAS update rules reachable through `repro eval`: the generic framework (any bias × retention ×
//! algorithm, given as YAML in `--param`), every preset of Table 1 / §4, and Moneta, Yaad, Memora
//! (sequential or chunkwise).

use super::checks::{batched, Drawn};
use super::framework::{parse_axis, Algorithm, Config, LqForm, Memory};
use super::mlp::{reference as mlp_ref, torch as mlp_torch};
use super::models::{reference as mref, torch as mtorch, Model};
use super::presets::Preset;
use super::update::{reference as upd_ref, torch as upd_torch};
use crate::eval::{Impl, ParamSpec, Rule, RuleInputs, TensorSpec};
use crate::tensor::{from_tch, to_tch, Arr};
use crate::tensor::{head1, head2, stack_heads};
use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

const GATE: &[&str] = &["B", "H", "T"];
const KEYS: &[&str] = &["B", "H", "T", "d_k"];
const VALUES: &[&str] = &["B", "H", "T", "d_v"];
const STATE: &[&str] = &["B", "H", "d_v", "d_k"];

const K: TensorSpec = TensorSpec { name: "k", dims: KEYS, optional: false, meaning: "keys k_t" };
const V: TensorSpec = TensorSpec { name: "v", dims: VALUES, optional: false, meaning: "values v_t" };
const Q: TensorSpec =
    TensorSpec { name: "q", dims: KEYS, optional: false, meaning: "queries q_t (read y_t = W_t q_t)" };
const ALPHA: TensorSpec =
    TensorSpec {
        name: "alpha", dims: GATE, optional: false, meaning: "retention multiplier α_t (1 keeps everything)"
    };
const ETA: TensorSpec = TensorSpec { name: "eta", dims: GATE, optional: false, meaning: "inner learning rate η_t" };

const FRAMEWORK_INPUTS: &[TensorSpec] = &[
    K,
    V,
    Q,
    ALPHA,
    ETA,
    TensorSpec {
        name: "delta",
        dims: GATE,
        optional: true,
        meaning: "bias threshold δ_t (huber, huber-norm, l2-l1-switch, value-shift)",
    },
    TensorSpec { name: "mu", dims: GATE, optional: true, meaning: "momentum decay μ_t (algorithm momentum)" },
    TensorSpec {
        name: "m0",
        dims: STATE,
        optional: true,
        meaning: "initial state: W_0, or A_0 / Z_0 for lq, kl, elastic-net-ftrl",
    },
];
const FRAMEWORK_OUTPUTS: &[TensorSpec] = &[
    TensorSpec { name: "y", dims: VALUES, optional: false, meaning: "y_t = W_t q_t" },
    TensorSpec { name: "w_final", dims: STATE, optional: false, meaning: "final memory W_T" },
    TensorSpec {
        name: "state_final",
        dims: STATE,
        optional: false,
        meaning: "final carried state (A_T / Z_T, or W_T)",
    },
    TensorSpec {
        name: "s_final",
        dims: STATE,
        optional: false,
        meaning: "final momentum S_T (zeros without momentum)",
    },
];
const FRAMEWORK_PARAMS: &[ParamSpec] = &[
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

fn drawn(inp: &RuleInputs, alpha: Arr, eta: Arr, delta: Arr, mu: Arr, m0: &str) -> Drawn {
    Drawn {
        k: inp.get("k").clone(),
        v: inp.get("v").clone(),
        q: inp.get("q").clone(),
        alpha,
        eta,
        delta,
        mu,
        m0: inp.get(m0).clone(),
    }
}

fn run_config(cfg: &Config, d: &Drawn, imp: Impl, device: Device, kind: Kind) -> Result<[Arr; 4]> {
    cfg.validate()?;
    match imp {
        Impl::Reference => Ok(batched(d, |h| upd_ref::forward(cfg, h))),
        Impl::Torch => {
            let x: Vec<Tensor> = [&d.k, &d.v, &d.q, &d.alpha, &d.eta, &d.delta, &d.mu, &d.m0]
                .iter()
                .map(|a| to_tch(a, kind, device))
                .collect();
            let o = tch::no_grad(|| upd_torch::forward(cfg, &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7]));
            Ok([from_tch(&o.y)?, from_tch(&o.w)?, from_tch(&o.state)?, from_tch(&o.s)?])
        }
    }
}

/// Requires the tensors the configuration reads but `repro eval` would otherwise fill with zeros: δ_t for
/// the threshold biases (δ = 0 would freeze Huber-type memories), μ_t for momentum (μ = 0 is plain gd).
fn require_gates(cfg: &Config, inp: &RuleInputs) -> Result<()> {
    if cfg.bias.uses_delta() {
        let kind = serde_yaml::to_value(cfg.bias)?.get("kind").and_then(|k| k.as_str().map(str::to_string));
        inp.require(
            "delta",
            &format!("bias `{}` reads its threshold δ_t from it, [B, H, T]", kind.unwrap_or_default()),
        )?;
    }
    if cfg.algorithm == Algorithm::Momentum {
        inp.require("mu", "algorithm `momentum` reads its decay μ_t from it, [B, H, T]")?;
    }
    Ok(())
}

fn run_framework(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    let bias = parse_axis("--param bias", inp.param_str("bias"))?;
    let retention = parse_axis("--param retention", inp.param_str("retention"))?;
    let algorithm = parse_axis("--param algorithm", inp.param_str("algorithm"))?;
    let cfg = Config::linear(bias, retention, algorithm);
    cfg.validate()?;
    require_gates(&cfg, inp)?;
    let d = drawn(
        inp,
        inp.get("alpha").clone(),
        inp.get("eta").clone(),
        inp.get("delta").clone(),
        inp.get("mu").clone(),
        "m0",
    );
    Ok(run_config(&cfg, &d, imp, device, kind)?.to_vec())
}

const PRESET_INPUTS: &[TensorSpec] = &[
    K,
    V,
    Q,
    TensorSpec {
        name: "a",
        dims: GATE,
        optional: true,
        meaning: "first native gate (see --param preset; e.g. β_t for deltanet)",
    },
    TensorSpec { name: "b", dims: GATE, optional: true, meaning: "second native gate" },
    TensorSpec { name: "c", dims: GATE, optional: true, meaning: "third native gate" },
    TensorSpec { name: "m0", dims: STATE, optional: true, meaning: "initial memory M_0" },
];
const PRESET_OUTPUTS: &[TensorSpec] = &[
    TensorSpec { name: "y", dims: VALUES, optional: false, meaning: "y_t = M_t q_t" },
    TensorSpec { name: "m_final", dims: STATE, optional: false, meaning: "final memory M_T" },
];
const PRESET_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "preset",
    default: "deltanet",
    meaning: "linear-attention | retnet (a=γ) | mamba2 (a=Δ, b=A) | deltanet (a=β) | gated-deltanet (a=α, b=β) | longhorn (a=β) | ttt-linear (a=η) | titans-lmm (a=α, b=η, c=θ); ttt-mlp is rule miras.mlp",
}];

fn run_preset(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    let p = Preset::parse(inp.param_str("preset"))?;
    let g = p.gates(inp.get("a"), inp.get("b"), inp.get("c"));
    let zeros = inp.get("a").mapv(|_| 0.0);
    let d = drawn(inp, g.alpha, g.eta, zeros, g.mu, "m0");
    let o = run_config(&p.config(), &d, imp, device, kind)?;
    Ok(vec![o[0].clone(), o[1].clone()])
}

const MONETA_INPUTS: &[TensorSpec] = &[
    K,
    V,
    Q,
    ALPHA,
    ETA,
    TensorSpec { name: "a0", dims: STATE, optional: true, meaning: "initial A_0 (W_0 = N_q(A_0))" },
];
const YAAD_INPUTS: &[TensorSpec] = &[
    K,
    V,
    Q,
    ALPHA,
    ETA,
    TensorSpec { name: "delta", dims: GATE, optional: false, meaning: "switch threshold δ_t (Eq. 26)" },
    TensorSpec { name: "w0", dims: STATE, optional: true, meaning: "initial memory W_0" },
];
const MEMORA_INPUTS: &[TensorSpec] = &[
    K,
    V,
    Q,
    ALPHA,
    ETA,
    TensorSpec {
        name: "z0",
        dims: STATE,
        optional: true,
        meaning: "initial logits Z_0 (W_0 = Softmax_row(Z_0); zeros = uniform rows)",
    },
];

const MODEL_OUTPUTS: &[TensorSpec] = &[
    TensorSpec { name: "y", dims: VALUES, optional: false, meaning: "y_t = W_t q_t" },
    TensorSpec { name: "w_final", dims: STATE, optional: false, meaning: "final memory W_T" },
    TensorSpec {
        name: "state_final",
        dims: STATE,
        optional: false,
        meaning: "final carried state (Moneta A_T, Memora Z_T, Yaad W_T)",
    },
];

/// `--param chunk`: 0 (token by token) or a positive integer.
fn chunk_param(inp: &RuleInputs) -> Result<usize> {
    let raw = inp.param_str("chunk");
    let c = inp.param_f64("chunk")?;
    if c < 0.0 || c.fract() != 0.0 {
        bail!("--param chunk={raw}: must be 0 (token by token) or a positive integer (the chunk size)");
    }
    Ok(c as usize)
}

fn run_model(model: Model, m0: &str, inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    let chunk = chunk_param(inp)?;
    model.config().validate()?;
    let zeros = inp.get("alpha").mapv(|_| 0.0);
    let delta = if inp.arrays.contains_key("delta") { inp.get("delta").clone() } else { zeros.clone() };
    let d = drawn(inp, inp.get("alpha").clone(), inp.get("eta").clone(), delta, zeros, m0);
    if chunk == 0 {
        let o = run_config(&model.config(), &d, imp, device, kind)?;
        return Ok(vec![o[0].clone(), o[1].clone(), o[2].clone()]);
    }
    match imp {
        Impl::Reference => {
            let o = batched(&d, |h| mref::chunkwise(&model, h, chunk));
            Ok(vec![o[0].clone(), o[1].clone(), o[2].clone()])
        }
        Impl::Torch => {
            let x: Vec<Tensor> =
                [&d.k, &d.v, &d.q, &d.alpha, &d.eta, &d.delta, &d.m0].iter().map(|a| to_tch(a, kind, device)).collect();
            let o = tch::no_grad(|| {
                mtorch::chunkwise(&model, &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], chunk as i64)
            });
            Ok(vec![from_tch(&o.y)?, from_tch(&o.w)?, from_tch(&o.state)?])
        }
    }
}

const CHUNK: ParamSpec = ParamSpec {
    name: "chunk",
    default: "0",
    meaning: "0 = token by token; b ≥ 1 = chunkwise form with chunk size b (Eqs. 28–32)",
};
const MONETA_PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "p", default: "3", meaning: "ℓ_p attentional bias exponent" },
    ParamSpec { name: "q", default: "4", meaning: "ℓ_q retention exponent" },
    ParamSpec {
        name: "form",
        default: "mirror",
        meaning: "mirror (A⊙|A|^{q−2}/‖A‖_q^{q−2}, consistent) or printed (A/‖A‖_q^{q−2}, Eq. 24 as printed)",
    },
    CHUNK,
];
const MEMORA_PARAMS: &[ParamSpec] =
    &[ParamSpec { name: "loss_scale", default: "1", meaning: "c in ℓ2 = c‖Wk − v‖² (Eq. 31 uses ½)" }, CHUNK];

fn run_moneta(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    let form: LqForm = serde_yaml::from_str(inp.param_str("form"))
        .with_context(|| format!("--param form={}: expected mirror or printed", inp.param_str("form")))?;
    let (p, q) = (inp.param_f64("p")?, inp.param_f64("q")?);
    let model = Model::Moneta { p, q, form };
    model.config().validate().with_context(|| format!("miras.moneta --param p={p} --param q={q}"))?;
    run_model(model, "a0", inp, imp, device, kind)
}
fn run_yaad(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    run_model(Model::Yaad, "w0", inp, imp, device, kind)
}
fn run_memora(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    run_model(Model::Memora { scale: inp.param_f64("loss_scale")? }, "z0", inp, imp, device, kind)
}

const MLP_SEQ: &[&str] = &["B", "H", "T", "d"];
const MLP_W1: &[&str] = &["B", "H", "d", "hidden"];
const MLP_W2: &[&str] = &["B", "H", "hidden", "d"];
const MLP_INPUTS: &[TensorSpec] = &[
    TensorSpec { name: "k", dims: MLP_SEQ, optional: false, meaning: "keys k_t (d_k = d_v = d for the residual)" },
    TensorSpec { name: "v", dims: MLP_SEQ, optional: false, meaning: "values v_t" },
    TensorSpec { name: "q", dims: MLP_SEQ, optional: false, meaning: "queries q_t (read y_t = M_t(q_t))" },
    ALPHA,
    ETA,
    TensorSpec { name: "delta", dims: GATE, optional: true, meaning: "bias threshold δ_t" },
    TensorSpec { name: "mu", dims: GATE, optional: true, meaning: "momentum decay μ_t" },
    TensorSpec { name: "w1_0", dims: MLP_W1, optional: false, meaning: "initial state of W_1 (A/Z for lq/kl)" },
    TensorSpec { name: "w2_0", dims: MLP_W2, optional: false, meaning: "initial state of W_2 (A/Z for lq/kl)" },
];
const MLP_OUTPUTS: &[TensorSpec] = &[
    TensorSpec { name: "y", dims: MLP_SEQ, optional: false, meaning: "y_t = M_t(q_t) = q_t + LN(W_1 GELU(W_2 q_t))" },
    TensorSpec { name: "w1_final", dims: MLP_W1, optional: false, meaning: "final W_1" },
    TensorSpec { name: "w2_final", dims: MLP_W2, optional: false, meaning: "final W_2" },
];
const MLP_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "bias",
        default: "{kind: l2, scale: 1}",
        meaning: "attentional bias as YAML (TTT-MLP: l2; Moneta: lp p 3; Yaad: l2-l1-switch)",
    },
    ParamSpec {
        name: "retention",
        default: "{kind: none}",
        meaning: "retention as YAML (Moneta: lq q 4; Yaad/Titans: l2-local-global; Memora: kl)",
    },
    ParamSpec { name: "algorithm", default: "{kind: gd}", meaning: "gd or momentum (Titans LMM)" },
];

fn run_mlp(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    let cfg = Config {
        memory: Memory::Mlp { depth: 2, expansion: inp.sizes["hidden"] / inp.sizes["d"].max(1) },
        bias: parse_axis("--param bias", inp.param_str("bias"))?,
        retention: parse_axis("--param retention", inp.param_str("retention"))?,
        algorithm: parse_axis("--param algorithm", inp.param_str("algorithm"))?,
    };
    cfg.validate()?;
    require_gates(&cfg, inp)?;
    let g = |n: &str| inp.get(n);
    match imp {
        Impl::Reference => {
            let (nb, nh) = (inp.sizes["B"], inp.sizes["H"]);
            let (mut y, mut w1, mut w2) = (vec![], vec![], vec![]);
            for b in 0..nb {
                for h in 0..nh {
                    let x = mlp_ref::Inputs {
                        k: head2(g("k"), b, h),
                        v: head2(g("v"), b, h),
                        q: head2(g("q"), b, h),
                        alpha: head1(g("alpha"), b, h),
                        eta: head1(g("eta"), b, h),
                        delta: head1(g("delta"), b, h),
                        mu: head1(g("mu"), b, h),
                        a1_0: head2(g("w1_0"), b, h),
                        a2_0: head2(g("w2_0"), b, h),
                    };
                    let o = mlp_ref::forward(&cfg, &x);
                    y.push(o.y);
                    w1.push(o.w1);
                    w2.push(o.w2);
                }
            }
            Ok(vec![stack_heads(&y, nb, nh), stack_heads(&w1, nb, nh), stack_heads(&w2, nb, nh)])
        }
        Impl::Torch => {
            let t = |n: &str| to_tch(g(n), kind, device);
            let o = mlp_torch::forward(
                &cfg,
                &t("k"),
                &t("v"),
                &t("q"),
                &t("alpha"),
                &t("eta"),
                &t("delta"),
                &t("mu"),
                &t("w1_0"),
                &t("w2_0"),
            );
            Ok(vec![from_tch(&o.y)?, from_tch(&o.w1)?, from_tch(&o.w2)?])
        }
    }
}

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "miras.mlp",
            summary: "MIRAS recurrence with the §5.3 MLP memory x + LN(W1 GELU(W2 x)) (TTT-MLP, Titans LMM, Moneta/Yaad/Memora), token by token",
            inputs: MLP_INPUTS,
            outputs: MLP_OUTPUTS,
            params: MLP_PARAMS,
            run: run_mlp,
        },
        Rule {
            name: "miras.framework",
            summary: "MIRAS Learning–Retaining recurrence, linear memory, any bias × retention × algorithm (token by token)",
            inputs: FRAMEWORK_INPUTS,
            outputs: FRAMEWORK_OUTPUTS,
            params: FRAMEWORK_PARAMS,
            run: run_framework,
        },
        Rule {
            name: "miras.preset",
            summary: "published recurrences as MIRAS presets (Table 1 / Eqs. 8–9), from the model's own gates",
            inputs: PRESET_INPUTS,
            outputs: PRESET_OUTPUTS,
            params: PRESET_PARAMS,
            run: run_preset,
        },
        Rule {
            name: "miras.moneta",
            summary: "Moneta (Eqs. 24–25, corrected; chunkwise Eqs. 28–29), linear memory",
            inputs: MONETA_INPUTS,
            outputs: MODEL_OUTPUTS,
            params: MONETA_PARAMS,
            run: run_moneta,
        },
        Rule {
            name: "miras.yaad",
            summary: "Yaad (Eq. 26; chunkwise Eq. 28), linear memory",
            inputs: YAAD_INPUTS,
            outputs: MODEL_OUTPUTS,
            params: &[CHUNK],
            run: run_yaad,
        },
        Rule {
            name: "miras.memora",
            summary: "Memora (Eq. 27 in logits; chunkwise with the lag token, Eqs. 30–32), rows on the simplex",
            inputs: MEMORA_INPUTS,
            outputs: MODEL_OUTPUTS,
            params: MEMORA_PARAMS,
            run: run_memora,
        },
    ]
}
