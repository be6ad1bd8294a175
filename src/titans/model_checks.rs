//! Checks of the Titans models (Eqs. 19, 21–31): the mixer of every block of a built tch model
//! ([`MemoryLm::mixer_forward`], Titans' linear memory as the rule) against the f64 reference
//! ([`reference::mixer`]) fed with the same weights ([`MemoryLm::mixer_weights`]) and inputs. Sizes are odd on purpose: T not a multiple of MAC's segment, the
//! window smaller than T, N_p > 0, H ≥ 2 heads splitting D. LayerNorm gains/biases, persistent tokens, gate
//! biases and convolution taps are moved away from their initial values so that each of them matters. One case
//! per model runs the memory chunkwise (C = 3, Eqs. 16–18), the others token by token; attention uses RoPE except
//! in the alternative case, which runs without positions.

use super::memory_rules::{TitansGates, TitansLinear};
use crate::check::{CheckEnv, Measurement};
use crate::memory::ReadMode;
use crate::models::reference;
use crate::models::spec::{AttentionSpec, MacCombine, MemorySpec, ModelKind, ModelSpec, Positions};
use crate::models::MemoryLm;
use crate::tensor::{from_tch, round_to_kind, stack_heads, to_tch, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{s, Axis, Ix2};
use tch::nn;

/// One configuration of one model kind.
struct Case {
    name: &'static str,
    spec: ModelSpec,
    t: usize,
}

fn base(kind: ModelKind) -> ModelSpec {
    ModelSpec {
        kind,
        dim: 12,
        heads: 3,
        layers: 2,
        persistent_tokens: 3,
        segment_len: 5,
        window: 4,
        memory: MemorySpec::default(),
        mac_combine: MacCombine::Gate,
        attention: AttentionSpec::default(),
        cms: None,
    }
}

fn cases(kind: ModelKind) -> Vec<Case> {
    let mut v = vec![Case { name: "D=12, H=3, N_p=3, conv 4", spec: base(kind), t: 13 }];
    let mut chunked = base(kind);
    chunked.memory.chunk_size = 3;
    v.push(Case { name: "D=12, H=3, N_p=3, conv 4, chunkwise C=3", spec: chunked, t: 13 });
    let mut alt = base(kind);
    alt.dim = 10;
    alt.heads = 2;
    alt.persistent_tokens = 2;
    alt.memory.conv_kernel = 2;
    alt.segment_len = 4;
    alt.window = 3;
    alt.attention.positions = Positions::None;
    match kind {
        ModelKind::Lmm => {
            alt.memory.read = ReadMode::BeforeWrite;
            alt.memory.forgetting = false;
            v.push(Case {
                name: "D=10, H=2, N_p=2, conv 2, read before write, no forgetting, no positions",
                spec: alt,
                t: 11,
            });
        }
        ModelKind::Mac => {
            alt.mac_combine = MacCombine::Add;
            alt.memory.momentum = false;
            alt.memory.conv_kernel = 0;
            v.push(Case {
                name: "D=10, H=2, N_p=2, no conv, combine add, no momentum, no positions",
                spec: alt,
                t: 11,
            });
        }
        ModelKind::Mag => {
            alt.window = 1;
            alt.memory.read = ReadMode::BeforeWrite;
            v.push(Case {
                name: "D=10, H=2, N_p=2, conv 2, window 1, read before write, no positions",
                spec: alt,
                t: 11,
            });
        }
        ModelKind::Mal => {
            alt.persistent_tokens = 0;
            v.push(Case { name: "D=10, H=2, N_p=0, conv 2, window 3, no positions", spec: alt, t: 11 });
        }
    }
    v
}

/// Moves the LayerNorms, persistent tokens, gate biases and convolution taps away from their initialisation.
fn perturb(vs: &nn::VarStore, env: &CheckEnv, seed: u64) {
    let mut r = Draw::new(seed + 3000);
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let scale = if name.contains("ln_y") || name.contains("ln_m") || name.contains("persistent") {
            0.5
        } else if name.contains("gates.bias") {
            1.0
        } else if name.contains("conv_") {
            0.3
        } else {
            continue;
        };
        let shape: Vec<usize> = var.size().iter().map(|&s| s as usize).collect();
        let noise = to_tch(&r.normal(&shape, scale), env.kind, env.device);
        tch::no_grad(|| {
            let mut v = var.shallow_clone();
            let _ = v.f_add_(&noise).expect("in-place add");
        });
    }
}

/// Every layer's mixer of a model of `kind`: tch vs reference, outputs and final memories.
fn model_check(env: &CheckEnv, kind: ModelKind) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (ci, case) in cases(kind).into_iter().enumerate() {
            let seed = seed + 10 * ci as u64;
            let m = &case.spec.memory;
            let rule = TitansLinear {
                gates: TitansGates { max_lr: m.max_lr.unwrap_or(0.5), momentum: m.momentum, forgetting: m.forgetting },
                chunk: m.chunk_size,
                loss_scale: 1.0,
            };
            let (vs, model) = crate::tensor::with_torch_seed(seed, || {
                let mut vs = nn::VarStore::new(env.device);
                let model = MemoryLm::new(&vs.root(), &case.spec, 7, std::sync::Arc::new(rule));
                vs.set_kind(env.kind);
                (vs, model)
            });
            perturb(&vs, env, seed);
            let (b, t, dim, heads) = (2usize, case.t, case.spec.dim, case.spec.heads);
            let mut r = Draw::new(seed + 3100);
            let x = round_to_kind(&r.normal(&[b, t, dim], 1.0), env.kind);
            let xt = to_tch(&x, env.kind, env.device);
            for layer in 0..case.spec.layers {
                let (o, st) = tch::no_grad(|| model.mixer_forward(layer, &xt));
                let w = model.mixer_weights(layer)?;
                let (mut outs, mut mems) = (vec![], vec![]);
                for bi in 0..b {
                    let xb = x.slice(s![bi, .., ..]).to_owned().into_dimensionality::<Ix2>()?;
                    let res = reference::mixer(&w, xb.view());
                    outs.push(res.o);
                    mems.extend(res.memory.into_iter().map(|h| h[0].clone()));
                }
                let tag = format!("{}, T={t}, layer {layer}, seed {seed}", case.name);
                out.push(Measurement::compare(
                    format!("o ({tag})"),
                    &from_tch(&o)?,
                    &stack_heads(&outs, b, 1).index_axis_move(Axis(1), 0),
                    tol,
                )?);
                out.push(Measurement::compare(
                    format!("M_T ({tag})"),
                    &from_tch(&st[0])?,
                    &stack_heads(&mems, b, heads),
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// LMM: Eq. 19's prefix and the memory layer (Eqs. 11–15 with §4.4).
pub fn lmm_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    model_check(env, ModelKind::Lmm)
}

/// MAC (Eqs. 21–25).
pub fn mac_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    model_check(env, ModelKind::Mac)
}

/// MAG (Eqs. 26–28).
pub fn mag_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    model_check(env, ModelKind::Mag)
}

/// MAL (Eqs. 29–31).
pub fn mal_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    model_check(env, ModelKind::Mal)
}
