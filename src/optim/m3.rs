//! M3, multi-scale momentum Muon (Nested Learning v1, §7.2, Algorithm 1; Eq. 75 is the looser statement, the
//! algorithm is the authority). Per matrix parameter, at step `t = 1, 2, …` with gradient `g_t = ∇L(Θ_{t−1})`:
//!
//! ```text
//! if t > 1 and (t − 1) mod f = 0:          # a slow step: fold in the previous block's f gradients
//!     M2 ← M2 + β3 Σ_block g    (sum)      |  M2 ← β3 M2 + Σ_block g    (ema)
//!     O2 ← NS_k(M2);  block ← 0
//! M1 ← M1 + β1 g_t              (sum)      |  M1 ← β1 M1 + g_t          (ema)
//! V  ← V + β2 g_t²              (sum)      |  V  ← β2 V + (1 − β2) g_t² (ema)
//! Θ  ← Θ − λ (NS_k(M1) + α O2) / (√V + ε)
//! block ← block + g_t
//! ```
//!
//! Readings of the printed algorithm (recorded in `papers/nl.yaml`): the gradient is taken at `Θ_{t−1}`; the slow
//! sum covers exactly the previous block's `f` gradients (the printed range has `f + 1` terms and negative indices
//! for `k = 0`, where `M2 = O2 = 0`); the printed moments are pure sums (`moments: sum`), under which NS makes `β1`,
//! `β3` no-ops — `moments: ema` (default) is the reading with decays; no bias correction (none is printed); the
//! element-wise division by `√V` is kept as printed. Vectors (biases, gains) take AdamW's step.

use super::{adam_step, Moments, Optimizer, Params};
use crate::newton_schulz::{torch::orthogonalize, Kind as NsKind};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::Tensor;

#[derive(Debug, Clone, Copy)]
pub struct M3Config {
    pub beta1: f64,
    pub beta2: f64,
    pub beta3: f64,
    pub alpha: f64,
    pub eps: f64,
    pub frequency: usize,
    pub moments: Moments,
    pub ns: NsKind,
    pub ns_steps: usize,
}

pub struct M3 {
    pub p: Params,
    cfg: M3Config,
}

impl M3 {
    pub fn new(mut p: Params, cfg: M3Config) -> Self {
        for i in 0..p.params.len() {
            let z = p.params[i].zeros_like();
            if p.params[i].dim() >= 2 {
                for s in ["m3_m1", "m3_m2", "m3_v", "m3_o2", "m3_block"] {
                    p.slots[i].push((s, z.zeros_like()));
                }
            } else {
                p.slots[i].push(("adam_m", z.zeros_like()));
                p.slots[i].push(("adam_v", z));
            }
        }
        Self { p, cfg }
    }
}

impl Optimizer for M3 {
    fn clip(&self, clip: f64) -> f64 {
        self.p.clip(clip)
    }

    fn update(&mut self, lr: f64, weight_decay: f64) {
        let c = self.cfg;
        self.p.each(lr, weight_decay, |p, i, g| {
            let t = p.step;
            if p.params[i].dim() < 2 {
                let (m, v) = (p.slot(i, "adam_m").shallow_clone(), p.slot(i, "adam_v").shallow_clone());
                let (m, v) = adam_step(&mut p.params[i], &m, &v, g, lr, t);
                p.set_slot(i, "adam_m", m);
                p.set_slot(i, "adam_v", v);
                return;
            }
            if t > 1 && (t - 1).is_multiple_of(c.frequency) {
                // slow memory: M2 ← M2 + β3 Σ_block g  (ema: β3 M2 + Σ_block g);  O2 = NS(M2)
                let block = p.slot(i, "m3_block");
                let m2 = match c.moments {
                    Moments::Sum => p.slot(i, "m3_m2") + block * c.beta3,
                    Moments::Ema => p.slot(i, "m3_m2") * c.beta3 + block,
                };
                let o2 = orthogonalize(&m2, c.ns, c.ns_steps);
                let zero = block.zeros_like();
                p.set_slot(i, "m3_m2", m2);
                p.set_slot(i, "m3_o2", o2);
                p.set_slot(i, "m3_block", zero);
            }
            // fast memory and second moment
            let (m1, v) = match c.moments {
                Moments::Sum => (p.slot(i, "m3_m1") + g * c.beta1, p.slot(i, "m3_v") + g.square() * c.beta2),
                Moments::Ema => {
                    (p.slot(i, "m3_m1") * c.beta1 + g, p.slot(i, "m3_v") * c.beta2 + g.square() * (1.0 - c.beta2))
                }
            };
            let o1 = orthogonalize(&m1, c.ns, c.ns_steps);
            // Θ ← Θ − λ (O1 + α O2) / (√V + ε)
            let upd = (o1 + p.slot(i, "m3_o2") * c.alpha) / (v.sqrt() + c.eps) * lr;
            let _ = p.params[i].g_sub_(&upd);
            let block = p.slot(i, "m3_block") + g;
            p.set_slot(i, "m3_m1", m1);
            p.set_slot(i, "m3_v", v);
            p.set_slot(i, "m3_block", block);
        });
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.p.state()
    }

    fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()> {
        self.p.load(tensors, step)
    }
}
