//! Titans update rules reachable through `repro eval`: the linear memory (Eqs. 12–15) sequential and
//! chunkwise (Eqs. 16–18), and the MLP memory sequential and chunkwise. The MLP's weights travel flattened as
//! one `[B, H, P]` tensor: `W^{(1)}` (first applied, `hidden × d_k`) then the middle layers then `W^{(L_M)}`
//! (`d_v × hidden`), each row-major.

use super::checks::{reference_batched, Drawn};
use super::linear_memory::{torch, ReadMode};
use super::mlp_checks::{reference_batched as mlp_reference_batched, MlpDrawn};
use super::mlp_memory::{Activation, MlpConfig};
use super::{chunkwise, mlp_memory};
use crate::eval::{Impl, ParamSpec, Rule, RuleInputs, TensorSpec};
use crate::tensor::{from_tch, to_tch, Arr};
use anyhow::Result;
use tch::{Device, Kind};

const GATE: &[&str] = &["B", "H", "T"];
const KEYS: &[&str] = &["B", "H", "T", "d_k"];
const VALUES: &[&str] = &["B", "H", "T", "d_v"];
const STATE: &[&str] = &["B", "H", "d_v", "d_k"];

const LINEAR_INPUTS: &[TensorSpec] = &[
    TensorSpec { name: "k", dims: KEYS, optional: false, meaning: "keys k_t" },
    TensorSpec { name: "v", dims: VALUES, optional: false, meaning: "values v_t" },
    TensorSpec { name: "q", dims: KEYS, optional: false, meaning: "queries q_t" },
    TensorSpec { name: "alpha", dims: GATE, optional: false, meaning: "forgetting gate α_t (Eq. 13)" },
    TensorSpec { name: "eta", dims: GATE, optional: false, meaning: "momentum decay η_t (Eq. 14)" },
    TensorSpec { name: "theta", dims: GATE, optional: false, meaning: "learning rate θ_t (Eq. 14)" },
    TensorSpec { name: "m0", dims: STATE, optional: true, meaning: "initial memory M_0" },
    TensorSpec { name: "s0", dims: STATE, optional: true, meaning: "initial surprise S_0" },
];

const LINEAR_OUTPUTS: &[TensorSpec] = &[
    TensorSpec { name: "y", dims: VALUES, optional: false, meaning: "retrieved y_t (Eq. 15)" },
    TensorSpec { name: "m_final", dims: STATE, optional: false, meaning: "final memory M_T" },
    TensorSpec { name: "s_final", dims: STATE, optional: false, meaning: "final surprise S_T" },
];

const LINEAR_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "loss_scale",
        default: "1",
        meaning: "c in ℓ = c‖Mk − v‖² (Eq. 12 has c = 1; ½ for App. C's form)",
    },
    ParamSpec {
        name: "read",
        default: "after-write",
        meaning: "after-write (y_t = M_t q_t) or before-write (y_t = M_{t−1} q_t)",
    },
];

const CHUNK_PARAM: ParamSpec = ParamSpec {
    name: "chunk_size",
    default: "16",
    meaning: "C: gradients of a chunk are taken at its start state (1 = sequential)",
};

const LINEAR_CHUNK_PARAMS: &[ParamSpec] = &[LINEAR_PARAMS[0], LINEAR_PARAMS[1], CHUNK_PARAM];

const FLAT: &[&str] = &["B", "H", "P"];

const MLP_INPUTS: &[TensorSpec] = &[
    LINEAR_INPUTS[0],
    LINEAR_INPUTS[1],
    LINEAR_INPUTS[2],
    LINEAR_INPUTS[3],
    LINEAR_INPUTS[4],
    LINEAR_INPUTS[5],
    TensorSpec {
        name: "m0",
        dims: FLAT,
        optional: false,
        meaning: "initial MLP weights W^(1..L_M), flattened (see rule doc)",
    },
    TensorSpec { name: "s0", dims: FLAT, optional: true, meaning: "initial surprise of every weight, same layout" },
];

const MLP_OUTPUTS: &[TensorSpec] = &[
    LINEAR_OUTPUTS[0],
    TensorSpec { name: "m_final", dims: FLAT, optional: false, meaning: "final MLP weights, flattened" },
    TensorSpec { name: "s_final", dims: FLAT, optional: false, meaning: "final surprise, flattened" },
];

const MLP_PARAMS: &[ParamSpec] = &[
    LINEAR_PARAMS[0],
    LINEAR_PARAMS[1],
    ParamSpec { name: "layers", default: "2", meaning: "L_M, the number of weight matrices (1 = linear memory)" },
    ParamSpec { name: "hidden", default: "0", meaning: "hidden width (0 = 4·d_k)" },
    ParamSpec { name: "activation", default: "silu", meaning: "silu or identity, between layers" },
    ParamSpec { name: "residual", default: "false", meaning: "M(k) = k + MLP(k) (needs d_k = d_v)" },
];

const MLP_CHUNK_PARAMS: &[ParamSpec] =
    &[MLP_PARAMS[0], MLP_PARAMS[1], MLP_PARAMS[2], MLP_PARAMS[3], MLP_PARAMS[4], MLP_PARAMS[5], CHUNK_PARAM];

fn chunk_size(inp: &RuleInputs) -> Result<usize> {
    let c = inp.param_f64("chunk_size")?;
    if c < 1.0 || c.fract() != 0.0 {
        anyhow::bail!("--param chunk_size={c}: must be a positive integer");
    }
    Ok(c as usize)
}

fn run_linear(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    run_linear_any(inp, imp, device, kind, None)
}

fn run_linear_chunkwise(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    run_linear_any(inp, imp, device, kind, Some(chunk_size(inp)?))
}

fn run_linear_any(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind, chunk: Option<usize>) -> Result<Vec<Arr>> {
    let loss_scale = inp.param_f64("loss_scale")?;
    let read = ReadMode::parse(inp.param_str("read"))?;
    let d = Drawn {
        k: inp.get("k").clone(),
        v: inp.get("v").clone(),
        q: inp.get("q").clone(),
        alpha: inp.get("alpha").clone(),
        eta: inp.get("eta").clone(),
        theta: inp.get("theta").clone(),
        m0: inp.get("m0").clone(),
        s0: inp.get("s0").clone(),
    };
    match (imp, chunk) {
        (Impl::Reference, None) => {
            let (y, m, s) = reference_batched(&d, loss_scale, read);
            Ok(vec![y, m, s])
        }
        (Impl::Reference, Some(c)) => {
            let (y, m, s) = super::chunkwise_checks::linear_chunked_reference_with(&d, c, loss_scale, read);
            Ok(vec![y, m, s])
        }
        (Impl::Torch, _) => {
            let x: Vec<tch::Tensor> = d.all().iter().map(|(_, a)| to_tch(a, kind, device)).collect();
            let o = tch::no_grad(|| match chunk {
                None => torch::forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], loss_scale, read),
                Some(c) => chunkwise::torch::linear_forward(
                    &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], c, loss_scale, read,
                ),
            });
            Ok(vec![from_tch(&o.y)?, from_tch(&o.m_final)?, from_tch(&o.s_final)?])
        }
    }
}

fn mlp_config(inp: &RuleInputs) -> Result<MlpConfig> {
    let layers = inp.param_f64("layers")?;
    if layers < 1.0 || layers.fract() != 0.0 {
        anyhow::bail!("--param layers={layers}: must be a positive integer");
    }
    let d_k = inp.sizes["d_k"];
    let hidden = inp.param_f64("hidden")?;
    if hidden < 0.0 || hidden.fract() != 0.0 {
        anyhow::bail!("--param hidden={hidden}: must be a non-negative integer");
    }
    let residual = match inp.param_str("residual") {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        other => anyhow::bail!("--param residual={other}: expected true or false"),
    };
    if residual && d_k != inp.sizes["d_v"] {
        anyhow::bail!("--param residual=true needs d_k = d_v (got d_k = {d_k}, d_v = {})", inp.sizes["d_v"]);
    }
    Ok(MlpConfig {
        layers: layers as usize,
        hidden: if hidden == 0.0 { 4 * d_k } else { hidden as usize },
        activation: Activation::parse(inp.param_str("activation"))?,
        residual,
    })
}

/// `[B, H, P]` → per-layer `[B, H, rows, cols]`.
fn unflatten(a: &Arr, shapes: &[(usize, usize)]) -> Result<Vec<Arr>> {
    let (b, h, p) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    let need: usize = shapes.iter().map(|(r, c)| r * c).sum();
    if p != need {
        anyhow::bail!("flattened weights have P = {p} but layers {shapes:?} need {need}");
    }
    let mut out = vec![];
    let mut off = 0;
    for &(r, c) in shapes {
        let part = a.slice(ndarray::s![.., .., off..off + r * c]).to_owned();
        out.push(part.into_shape_with_order(ndarray::IxDyn(&[b, h, r, c]))?);
        off += r * c;
    }
    Ok(out)
}

/// Per-layer `[B, H, rows, cols]` → `[B, H, P]`.
fn flatten(layers: &[Arr]) -> Result<Arr> {
    let (b, h) = (layers[0].shape()[0], layers[0].shape()[1]);
    let parts: Vec<Arr> = layers
        .iter()
        .map(|a| {
            let n = a.shape()[2] * a.shape()[3];
            a.as_standard_layout().to_owned().into_shape_with_order(ndarray::IxDyn(&[b, h, n]))
        })
        .collect::<std::result::Result<_, _>>()?;
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(ndarray::Axis(2), &views)?)
}

fn run_mlp(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    run_mlp_any(inp, imp, device, kind, None)
}

fn run_mlp_chunkwise(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    run_mlp_any(inp, imp, device, kind, Some(chunk_size(inp)?))
}

fn run_mlp_any(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind, chunk: Option<usize>) -> Result<Vec<Arr>> {
    let loss_scale = inp.param_f64("loss_scale")?;
    let read = ReadMode::parse(inp.param_str("read"))?;
    let cfg = mlp_config(inp)?;
    let shapes = cfg.shapes(inp.sizes["d_k"], inp.sizes["d_v"]);
    let m0 = unflatten(inp.get("m0"), &shapes)?;
    let s0 = unflatten(inp.get("s0"), &shapes)?;
    let zeros = Arr::zeros(ndarray::IxDyn(&[0]));
    let base = Drawn {
        k: inp.get("k").clone(),
        v: inp.get("v").clone(),
        q: inp.get("q").clone(),
        alpha: inp.get("alpha").clone(),
        eta: inp.get("eta").clone(),
        theta: inp.get("theta").clone(),
        m0: zeros.clone(),
        s0: zeros,
    };
    let d = MlpDrawn { base, cfg, m0, s0 };
    let (y, m, s) = match imp {
        Impl::Reference => match chunk {
            None => mlp_reference_batched(&d, |h| mlp_memory::reference::forward(h, &cfg, loss_scale, read)),
            Some(c) => mlp_reference_batched(&d, |h| chunkwise::reference::mlp_forward(h, &cfg, c, loss_scale, read)),
        },
        Impl::Torch => {
            let t = |a: &Arr| to_tch(a, kind, device);
            let x: Vec<tch::Tensor> = [&d.base.k, &d.base.v, &d.base.q, &d.base.alpha, &d.base.eta, &d.base.theta]
                .iter()
                .map(|a| t(a))
                .collect();
            let m0: Vec<tch::Tensor> = d.m0.iter().map(t).collect();
            let s0: Vec<tch::Tensor> = d.s0.iter().map(t).collect();
            let o = tch::no_grad(|| match chunk {
                None => mlp_memory::torch::forward(
                    &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &m0, &s0, &cfg, loss_scale, read,
                ),
                Some(c) => chunkwise::torch::mlp_forward(
                    &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &m0, &s0, &cfg, c, loss_scale, read,
                ),
            });
            (
                from_tch(&o.y)?,
                o.m_final.iter().map(from_tch).collect::<Result<Vec<_>>>()?,
                o.s_final.iter().map(from_tch).collect::<Result<Vec<_>>>()?,
            )
        }
    };
    Ok(vec![y, flatten(&m)?, flatten(&s)?])
}

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "titans.linear_memory",
            summary: "Titans Eqs. 12–15, linear memory, sequential (token by token)",
            inputs: LINEAR_INPUTS,
            outputs: LINEAR_OUTPUTS,
            params: LINEAR_PARAMS,
            run: run_linear,
        },
        Rule {
            name: "titans.linear_memory_chunkwise",
            summary: "Titans Eqs. 16–18, linear memory, chunkwise (gradients at the chunk start; matrix form)",
            inputs: LINEAR_INPUTS,
            outputs: LINEAR_OUTPUTS,
            params: LINEAR_CHUNK_PARAMS,
            run: run_linear_chunkwise,
        },
        Rule {
            name: "titans.mlp_memory",
            summary: "Titans Eqs. 12–15, MLP memory with L_M layers (SiLU), sequential; weights flattened [B, H, P]",
            inputs: MLP_INPUTS,
            outputs: MLP_OUTPUTS,
            params: MLP_PARAMS,
            run: run_mlp,
        },
        Rule {
            name: "titans.mlp_memory_chunkwise",
            summary: "Titans Eqs. 16–18, MLP memory, chunkwise (per-token gradients at the chunk start, batched)",
            inputs: MLP_INPUTS,
            outputs: MLP_OUTPUTS,
            params: MLP_CHUNK_PARAMS,
            run: run_mlp_chunkwise,
        },
    ]
}
