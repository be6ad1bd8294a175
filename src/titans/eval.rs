//! Titans update rules reachable through `repro eval`.

use super::checks::{reference_batched, Drawn};
use super::linear_memory::{torch, ReadMode};
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
    ParamSpec { name: "loss_scale", default: "1", meaning: "c in ℓ = c‖Mk − v‖² (Eq. 12 has c = 1; ½ for App. C's form)" },
    ParamSpec { name: "read", default: "after-write", meaning: "after-write (y_t = M_t q_t) or before-write (y_t = M_{t−1} q_t)" },
];

fn run_linear(inp: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
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
    match imp {
        Impl::Reference => {
            let (y, m, s) = reference_batched(&d, loss_scale, read);
            Ok(vec![y, m, s])
        }
        Impl::Torch => {
            let x: Vec<tch::Tensor> = d.all().iter().map(|(_, a)| to_tch(a, kind, device)).collect();
            let o = tch::no_grad(|| {
                torch::forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], loss_scale, read)
            });
            Ok(vec![from_tch(&o.y)?, from_tch(&o.m_final)?, from_tch(&o.s_final)?])
        }
    }
}

pub fn rules() -> Vec<Rule> {
    vec![Rule {
        name: "titans.linear_memory",
        summary: "Titans Eqs. 12–15, linear memory, sequential (token by token)",
        inputs: LINEAR_INPUTS,
        outputs: LINEAR_OUTPUTS,
        params: LINEAR_PARAMS,
        run: run_linear,
    }]
}
