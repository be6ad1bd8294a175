//! Gradient descent, momentum and delta momentum (Nested Learning v1, Eqs. 1, 33, 48–49), in the project's
//! momentum convention `S_t = β S_{t−1} − λ_t ∇L(W_{t−1})`, `W_t = W_{t−1} + S_t` (NL's `α` = `β`, NL's `η` = `λ`).

use super::{matrix_view, Optimizer, Params};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::Tensor;

/// Which recurrence the momentum memory follows.
#[derive(Debug, Clone, Copy)]
pub enum Variant {
    /// `W ← W − λ g` (no memory)
    Sgd,
    /// `S ← β S − λ g` (Eq. 33: the memory's dot-product objective `⟨S, g⟩` plus a decay of the memory)
    Plain { beta: f64 },
    /// `S ← S(β I − 2λ gᵀg) − 2λ g` (Eqs. 48–49, consistent form with `P = I`: one GD step of size λ on the
    /// l2 objective `‖S gᵀ + I‖²` with weight decay `β`, so the memory erases along the gradient's row space
    /// before writing). Vectors are one-row matrices; higher ranks are batches of matrices.
    Delta { beta: f64 },
}

pub struct Momentum {
    pub p: Params,
    variant: Variant,
}

impl Momentum {
    pub fn new(mut p: Params, variant: Variant) -> Self {
        if !matches!(variant, Variant::Sgd) {
            for i in 0..p.params.len() {
                let z = p.params[i].zeros_like();
                p.slots[i].push(("momentum", z));
            }
        }
        Self { p, variant }
    }
}

impl Optimizer for Momentum {
    fn clip(&self, clip: f64) -> f64 {
        self.p.clip(clip)
    }

    fn update(&mut self, lr: f64, weight_decay: f64) {
        let variant = self.variant;
        self.p.each(lr, weight_decay, |p, i, g| match variant {
            Variant::Sgd => {
                let _ = p.params[i].g_sub_(&(g * lr));
            }
            Variant::Plain { beta } => {
                // S_t = β S_{t−1} − λ g_t;  W_t = W_{t−1} + S_t
                let s = p.slot(i, "momentum") * beta - g * lr;
                let _ = p.params[i].g_add_(&s);
                p.set_slot(i, "momentum", s);
            }
            Variant::Delta { beta } => {
                // S_t = S_{t−1}(β I − 2λ g_tᵀ g_t) − 2λ g_t;  W_t = W_{t−1} + S_t
                let (s0, gm) = (matrix_view(p.slot(i, "momentum")), matrix_view(g));
                let gram = gm.transpose(-2, -1).matmul(&gm);
                let s = &s0 * beta - s0.matmul(&gram) * (2.0 * lr) - &gm * (2.0 * lr);
                let s = s.reshape(p.params[i].size());
                let _ = p.params[i].g_add_(&s);
                p.set_slot(i, "momentum", s);
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
