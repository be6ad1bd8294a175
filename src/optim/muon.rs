//! Muon (Nested Learning v1, Eq. 42): momentum whose output passes through Newton–Schulz,
//! `S_t = β S_{t−1} − g_t`, `W_t = W_{t−1} + λ s NS_k(S_t)` (NS is odd and scale-free, so the sign and the
//! scale of `S` are those of ordinary momentum and the step size `λ` sits outside). Parameters with ≥ 2
//! dimensions are orthogonalized (higher ranks as a batch of matrices); vectors take AdamW's step, as in Muon
//! practice (the paper does not discuss them).
//!
//! `s = 0.2·√max(rows, cols)` when `rms_match` (Moonlight's scaling: the update's RMS matches AdamW's ≈ 0.2, so
//! `training.lr` means about the same step for both); `s = 1` otherwise (the printed form).

use super::{adam_step, Optimizer, Params};
use crate::newton_schulz::{torch::orthogonalize, Kind as NsKind};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::Tensor;

#[derive(Debug, Clone, Copy)]
pub struct MuonConfig {
    pub beta: f64,
    pub ns: NsKind,
    pub ns_steps: usize,
    pub rms_match: bool,
}

pub struct Muon {
    pub p: Params,
    cfg: MuonConfig,
}

/// The step multiplier `s` for a matrix of shape `[…, rows, cols]`.
pub fn rms_scale(size: &[i64], rms_match: bool) -> f64 {
    if !rms_match {
        return 1.0;
    }
    let n = size.len();
    0.2 * (size[n - 2].max(size[n - 1]) as f64).sqrt()
}

impl Muon {
    pub fn new(mut p: Params, cfg: MuonConfig) -> Self {
        for i in 0..p.params.len() {
            let z = p.params[i].zeros_like();
            if p.params[i].dim() >= 2 {
                p.slots[i].push(("muon_momentum", z));
            } else {
                p.slots[i].push(("adam_m", z.zeros_like()));
                p.slots[i].push(("adam_v", z));
            }
        }
        Self { p, cfg }
    }
}

impl Optimizer for Muon {
    fn clip(&self, clip: f64) -> f64 {
        self.p.clip(clip)
    }

    fn update(&mut self, lr: f64, weight_decay: f64) {
        let c = self.cfg;
        self.p.each(lr, weight_decay, |p, i, g| {
            if p.params[i].dim() >= 2 {
                // S_t = β S_{t−1} − g_t;  W_t = W_{t−1} + λ s NS_k(S_t)
                let s = p.slot(i, "muon_momentum") * c.beta - g;
                let o = orthogonalize(&s, c.ns, c.ns_steps);
                let scale = rms_scale(&p.params[i].size(), c.rms_match);
                let _ = p.params[i].g_add_(&(o * (lr * scale)));
                p.set_slot(i, "muon_momentum", s);
            } else {
                let t = p.step;
                let (m, v) = (p.slot(i, "adam_m").shallow_clone(), p.slot(i, "adam_v").shallow_clone());
                let (m, v) = adam_step(&mut p.params[i], &m, &v, g, lr, t);
                p.set_slot(i, "adam_m", m);
                p.set_slot(i, "adam_v", v);
            }
        });
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.p.state()
    }

    fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()> {
        self.p.load(tensors, step)
    }
}
