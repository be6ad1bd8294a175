//! Optimizers that train the models, selected by `training.optimizer` in a study (paper-neutral: the models
//! and the runner see only [`Optimizer`]). AdamW, the default, stays in `experiment::train` unchanged; the
//! others are the optimizers Nested Learning (arXiv 2512.24695 v1) writes as associative memories, each in
//! its own file, and verified against f64 references iterating on quadratics in `crate::nl::optimizers`.
//!
//! `training.optimizer` (kebab-case `kind`, strict: unknown fields are errors):
//!
//! | kind | update (matrix `W`, gradient `g`, step `λ` = `training.lr` after warm-up/cosine) | fields (defaults) |
//! |---|---|---|
//! | `adamw` | AdamW, β = (0.9, 0.95) (the default; absent from the configuration hash when chosen by default) | — |
//! | `sgd` | `W ← W − λ g` (NL Eq. 1) | — |
//! | `momentum` | `S ← β S − λ g`, `W ← W + S` (NL Eq. 33) | `beta: 0.9` |
//! | `delta-momentum` | `S ← S(β I − 2λ gᵀg) − 2λ g`, `W ← W + S` (NL Eqs. 48–49, consistent form, `P = I`) | `beta: 0.9` |
//! | `muon` | `S ← β S − g`, `W ← W + λ s NS_k(S)`; vectors: AdamW (NL Eq. 42) | `beta: 0.95`, `ns: quintic_muon`, `ns_steps: 5`, `rms_match: true` |
//! | `m3` | NL Algorithm 1 (two momenta, Newton–Schulz, `√V` denominator); vectors: AdamW | `beta1: 0.9`, `beta2: 0.999`, `beta3: 0.9`, `alpha: 0.5`, `eps: 1e-8`, `frequency: 8`, `moments: ema`, `ns`, `ns_steps` |
//! | `dmgd` | deep momentum (NL Eq. 50): an MLP momentum `m_ψ(u) = B + W₂ tanh(W₁ u)` per row, trained online | `beta: 0.9`, `inner_lr: 1`, `hidden: 8` |
//!
//! Weight decay (`training.weight_decay`) is decoupled, `W ← (1 − λ·wd) W` on parameters with ≥ 2 dimensions,
//! for every optimizer, as in AdamW. Every optimizer's state (its memories) is saved in the checkpoint under
//! `<slot>.<parameter name>` and restored bit for bit.

pub mod dmgd;
pub mod m3;
pub mod momentum;
pub mod muon;

use crate::newton_schulz::Kind as NsKind;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn, Kind, Tensor};

/// What the training loop needs of an optimizer.
pub trait Optimizer {
    /// Clips the global gradient norm to `clip` (0 = off); returns the norm before clipping.
    fn clip(&self, clip: f64) -> f64;
    /// One step with learning rate `lr` and decoupled weight decay `weight_decay`; zeroes the gradients.
    fn update(&mut self, lr: f64, weight_decay: f64);
    /// Model and optimizer tensors for a checkpoint.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores from checkpoint tensors written by [`Optimizer::state`] at step `step`.
    fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()>;
}

/// Newton–Schulz as a study names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NsName {
    #[default]
    QuinticMuon,
    Cubic,
}

impl From<NsName> for NsKind {
    fn from(n: NsName) -> Self {
        match n {
            NsName::QuinticMuon => NsKind::QuinticMuon,
            NsName::Cubic => NsKind::Cubic,
        }
    }
}

/// M3's moments: pure sums as Algorithm 1 prints them, or exponential moving averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Moments {
    /// `M1 ← M1 + β1 g`, `V ← V + β2 g²`, `M2 ← M2 + β3 Σ_block g` (as printed)
    Sum,
    /// `M1 ← β1 M1 + g`, `V ← β2 V + (1 − β2) g²`, `M2 ← β3 M2 + Σ_block g`
    #[default]
    Ema,
}

/// `training.optimizer`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerSpec {
    #[default]
    Adamw,
    Sgd,
    Momentum {
        #[serde(default = "d_beta")]
        beta: f64,
    },
    DeltaMomentum {
        #[serde(default = "d_beta")]
        beta: f64,
    },
    Muon {
        #[serde(default = "d_muon_beta")]
        beta: f64,
        #[serde(default)]
        ns: NsName,
        #[serde(default = "d_ns_steps")]
        ns_steps: usize,
        #[serde(default = "d_true")]
        rms_match: bool,
    },
    M3 {
        #[serde(default = "d_beta")]
        beta1: f64,
        #[serde(default = "d_beta2")]
        beta2: f64,
        #[serde(default = "d_beta")]
        beta3: f64,
        #[serde(default = "d_alpha")]
        alpha: f64,
        #[serde(default = "d_eps")]
        eps: f64,
        #[serde(default = "d_frequency")]
        frequency: usize,
        #[serde(default)]
        moments: Moments,
        #[serde(default)]
        ns: NsName,
        #[serde(default = "d_ns_steps")]
        ns_steps: usize,
    },
    Dmgd {
        #[serde(default = "d_beta")]
        beta: f64,
        #[serde(default = "d_inner_lr")]
        inner_lr: f64,
        #[serde(default = "d_hidden")]
        hidden: usize,
    },
}

fn d_beta() -> f64 {
    0.9
}
fn d_muon_beta() -> f64 {
    0.95
}
fn d_beta2() -> f64 {
    0.999
}
fn d_alpha() -> f64 {
    0.5
}
fn d_eps() -> f64 {
    1e-8
}
fn d_frequency() -> usize {
    8
}
fn d_ns_steps() -> usize {
    crate::newton_schulz::DEFAULT_STEPS
}
fn d_true() -> bool {
    true
}
fn d_inner_lr() -> f64 {
    1.0
}
fn d_hidden() -> usize {
    8
}

impl OptimizerSpec {
    pub fn is_default(&self) -> bool {
        *self == OptimizerSpec::Adamw
    }

    /// The kebab-case name (`adamw`, `delta-momentum`, …).
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerSpec::Adamw => "adamw",
            OptimizerSpec::Sgd => "sgd",
            OptimizerSpec::Momentum { .. } => "momentum",
            OptimizerSpec::DeltaMomentum { .. } => "delta-momentum",
            OptimizerSpec::Muon { .. } => "muon",
            OptimizerSpec::M3 { .. } => "m3",
            OptimizerSpec::Dmgd { .. } => "dmgd",
        }
    }

    /// Checks the values; an error is `(field under training.optimizer, message)`.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        let unit = |field: &'static str, x: f64| {
            if x.is_finite() && (0.0..1.0).contains(&x) {
                Ok(())
            } else {
                Err((field, format!("must be in [0, 1), got {x}")))
            }
        };
        let steps = |n: usize| if n == 0 { Err(("ns_steps", "must be at least 1".to_string())) } else { Ok(()) };
        match *self {
            OptimizerSpec::Adamw | OptimizerSpec::Sgd => Ok(()),
            OptimizerSpec::Momentum { beta } | OptimizerSpec::DeltaMomentum { beta } => unit("beta", beta),
            OptimizerSpec::Muon { beta, ns_steps, .. } => {
                unit("beta", beta)?;
                steps(ns_steps)
            }
            OptimizerSpec::M3 { beta1, beta2, beta3, alpha, eps, frequency, ns_steps, .. } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                unit("beta3", beta3)?;
                if !(alpha.is_finite() && alpha >= 0.0) {
                    return Err(("alpha", format!("must be >= 0, got {alpha}")));
                }
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(("eps", format!("must be > 0, got {eps}")));
                }
                if frequency == 0 {
                    return Err(("frequency", "must be at least 1 (the slow momentum's period in steps)".into()));
                }
                steps(ns_steps)
            }
            OptimizerSpec::Dmgd { beta, inner_lr, hidden } => {
                unit("beta", beta)?;
                if !(inner_lr.is_finite() && inner_lr > 0.0) {
                    return Err(("inner_lr", format!("must be a positive number, got {inner_lr}")));
                }
                if hidden == 0 {
                    return Err(("hidden", "must be at least 1".into()));
                }
                Ok(())
            }
        }
    }
}

/// Builds the optimizer for a spec other than AdamW (which `experiment::train` owns).
pub fn build(spec: &OptimizerSpec, vs: &nn::VarStore) -> Result<Box<dyn Optimizer>> {
    let base = Params::new(vs);
    Ok(match *spec {
        OptimizerSpec::Adamw => bail!("AdamW is built by experiment::train"),
        OptimizerSpec::Sgd => Box::new(momentum::Momentum::new(base, momentum::Variant::Sgd)),
        OptimizerSpec::Momentum { beta } => Box::new(momentum::Momentum::new(base, momentum::Variant::Plain { beta })),
        OptimizerSpec::DeltaMomentum { beta } => {
            Box::new(momentum::Momentum::new(base, momentum::Variant::Delta { beta }))
        }
        OptimizerSpec::Muon { beta, ns, ns_steps, rms_match } => {
            Box::new(muon::Muon::new(base, muon::MuonConfig { beta, ns: ns.into(), ns_steps, rms_match }))
        }
        OptimizerSpec::M3 { beta1, beta2, beta3, alpha, eps, frequency, moments, ns, ns_steps } => {
            Box::new(m3::M3::new(
                base,
                m3::M3Config { beta1, beta2, beta3, alpha, eps, frequency, moments, ns: ns.into(), ns_steps },
            ))
        }
        OptimizerSpec::Dmgd { beta, inner_lr, hidden } => {
            Box::new(dmgd::Dmgd::new(base, dmgd::DmgdConfig { beta, inner_lr, hidden }))
        }
    })
}

/// The parameters of a model in name order, with each one's optimizer state (`slots[i]`: named tensors).
pub struct Params {
    pub names: Vec<String>,
    pub params: Vec<Tensor>,
    pub slots: Vec<Vec<(&'static str, Tensor)>>,
    /// completed steps
    pub step: usize,
}

impl Params {
    pub fn new(vs: &nn::VarStore) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<_>, Vec<_>) = named.into_iter().unzip();
        let slots = params.iter().map(|_| vec![]).collect();
        Self { names, params, slots, step: 0 }
    }

    /// The state tensor `slot` of parameter `i`.
    pub fn slot(&self, i: usize, slot: &str) -> &Tensor {
        &self.slots[i].iter().find(|(n, _)| *n == slot).unwrap_or_else(|| panic!("no slot {slot}")).1
    }

    pub fn set_slot(&mut self, i: usize, slot: &str, value: Tensor) {
        let entry = self.slots[i].iter_mut().find(|(n, _)| *n == slot).unwrap_or_else(|| panic!("no slot {slot}"));
        entry.1 = value;
    }

    /// Global gradient-norm clipping, the same computation as AdamW's.
    pub fn clip(&self, clip: f64) -> f64 {
        let grads: Vec<Tensor> = self.params.iter().filter(|p| p.grad().defined()).map(|p| p.grad()).collect();
        let norm = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        if clip > 0.0 && norm > clip {
            tch::no_grad(|| {
                for g in &grads {
                    let _ = g.shallow_clone().g_mul_scalar_(clip / norm);
                }
            });
        }
        norm
    }

    /// Runs `step(self, i, g)` for every parameter with a gradient, after decoupled weight decay on matrices,
    /// then zeroes the gradient; counts the step.
    pub fn each(&mut self, lr: f64, weight_decay: f64, mut step: impl FnMut(&mut Self, usize, &Tensor)) {
        self.step += 1;
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let g = self.params[i].grad();
                if !g.defined() {
                    continue;
                }
                let g = g.detach().copy();
                if self.params[i].dim() >= 2 && weight_decay > 0.0 {
                    let _ = self.params[i].g_mul_scalar_(1.0 - lr * weight_decay);
                }
                step(self, i, &g);
                self.params[i].zero_grad();
            }
        });
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("param.{n}"), self.params[i].shallow_clone()));
            for (s, t) in &self.slots[i] {
                out.push((format!("{s}.{n}"), t.shallow_clone()));
            }
        }
        out
    }

    pub fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (i, n) in self.names.iter().enumerate() {
                let get = |prefix: &str| {
                    tensors.get(&format!("{prefix}.{n}")).with_context(|| format!("checkpoint lacks {prefix}.{n}"))
                };
                let mut wanted = vec![("param", self.params[i].size())];
                wanted.extend(self.slots[i].iter().map(|(s, t)| (*s, t.size())));
                for (prefix, shape) in &wanted {
                    let got = get(prefix)?.size();
                    if &got != shape {
                        bail!("checkpoint tensor {prefix}.{n} has shape {got:?}; the optimizer needs {shape:?}");
                    }
                }
                self.params[i].f_copy_(get("param")?).with_context(|| format!("restoring {n}"))?;
                let device = self.params[i].device();
                for k in 0..self.slots[i].len() {
                    let s = self.slots[i][k].0;
                    let kind = self.slots[i][k].1.kind();
                    self.slots[i][k].1 = get(s)?.to_device(device).to_kind(kind);
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

/// The matrix view of a parameter: vectors as one row `[1, n]`, matrices as they are, higher ranks as a
/// batch of matrices over the leading dimensions.
pub fn matrix_view(t: &Tensor) -> Tensor {
    if t.dim() == 1 {
        t.unsqueeze(0)
    } else {
        t.shallow_clone()
    }
}

/// AdamW's step (β = (0.9, 0.95), ε = 1e-8, bias-corrected) for the parameters Muon and M3 leave to Adam
/// (vectors: biases, norm gains); slots `adam_m`, `adam_v`; `t` is the 1-based step.
pub(crate) fn adam_step(p: &mut Tensor, m: &Tensor, v: &Tensor, g: &Tensor, lr: f64, t: usize) -> (Tensor, Tensor) {
    const B1: f64 = 0.9;
    const B2: f64 = 0.95;
    let (c1, c2) = (1.0 - B1.powi(t as i32), 1.0 - B2.powi(t as i32));
    let m = m * B1 + g * (1.0 - B1);
    let v = v * B2 + g.square() * (1.0 - B2);
    let upd = (&m / c1) / ((&v / c2).sqrt() + 1e-8) * lr;
    let _ = p.g_sub_(&upd);
    (m, v)
}
