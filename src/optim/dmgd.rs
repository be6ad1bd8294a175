//! Deep momentum gradient descent (Nested Learning v1, Eq. 50): the momentum is an MLP trained online, by
//! gradient descent with decay, on an internal objective of the gradients, and the weight update is its output.
//!
//! The paper leaves the instantiation open (catalog §5, Eq. 50 ⚠); the project's, for a parameter viewed as a
//! matrix `W ∈ R^{r×c}` (vectors: one row; higher ranks: rows of the last dimension) with gradient rows `u_j`:
//!
//! * memory `m_ψ(u) = B_j + W₂ tanh(W₁ u)` applied to each row `j`, `ψ = (B ∈ R^{r×c}, W₁ ∈ R^{h×c},
//!   W₂ ∈ R^{c×h})`: a bias part `B` (a linear, value-less memory, i.e. ordinary momentum) plus a deep part
//!   shared by the rows;
//! * internal objective `L⁽²⁾(ψ; U) = Σ_j ⟨m_ψ(u_j), u_j⟩` (dot-product objective with the gradient as its own
//!   value; the printed `⟨m(u), 1⟩` drives every output negative whatever `u` is);
//! * `ψ_t = β ψ_{t−1} − η ∇_ψ L⁽²⁾(ψ_{t−1}; U_t)`, then `W_t = W_{t−1} + λ m_{ψ_t}(U_t)`.
//!
//! With the deep part absent this is Eq. 33 exactly (`B` is the momentum, `η = 1`); `W₁` starts as a seeded
//! random draw scaled `1/√c` and `W₂ = 0`, so DMGD starts as momentum and learns its deep correction. The tch
//! side takes `∇_ψ L⁽²⁾` by autograd; the f64 reference (`crate::nl::optimizers::reference`) by hand.

use super::{Optimizer, Params};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct DmgdConfig {
    pub beta: f64,
    pub inner_lr: f64,
    pub hidden: usize,
}

pub struct Dmgd {
    pub p: Params,
    cfg: DmgdConfig,
}

/// The seed of parameter `i`'s initial `W₁` (fixed: the optimizer's initial state is part of its definition).
pub fn w1_seed(i: usize) -> u64 {
    0xD36D_0000 + i as u64
}

/// Columns of the matrix view: the last dimension.
fn cols(t: &Tensor) -> i64 {
    *t.size().last().unwrap()
}

/// `m_ψ(U) = B + tanh(U W₁ᵀ) W₂ᵀ` (rows of `U`).
pub fn memory_output(b: &Tensor, w1: &Tensor, w2: &Tensor, u: &Tensor) -> Tensor {
    b + u.matmul(&w1.transpose(0, 1)).tanh().matmul(&w2.transpose(0, 1))
}

impl Dmgd {
    pub fn new(mut p: Params, cfg: DmgdConfig) -> Self {
        for i in 0..p.params.len() {
            let x = &p.params[i];
            let (c, h) = (cols(x), cfg.hidden as i64);
            let opts = (x.kind(), x.device());
            let w1 =
                crate::tensor::with_torch_seed(w1_seed(i), || Tensor::randn([h, c], (Kind::Double, tch::Device::Cpu)))
                    / (c as f64).sqrt();
            let w1 = w1.to_kind(opts.0).to_device(opts.1);
            let b = x.zeros_like();
            p.slots[i].push(("dmgd_b", b));
            p.slots[i].push(("dmgd_w1", w1));
            p.slots[i].push(("dmgd_w2", Tensor::zeros([c, h], opts)));
        }
        Self { p, cfg }
    }
}

impl Optimizer for Dmgd {
    fn clip(&self, clip: f64) -> f64 {
        self.p.clip(clip)
    }

    fn update(&mut self, lr: f64, weight_decay: f64) {
        let c = self.cfg;
        self.p.each(lr, weight_decay, |p, i, g| {
            let shape = p.params[i].size();
            let u = g.reshape([-1, cols(g)]);
            let leaf = |s: &str| p.slot(i, s).reshape([-1, cols(p.slot(i, s))]).detach().set_requires_grad(true);
            let (b, w1, w2) = (leaf("dmgd_b"), leaf("dmgd_w1"), leaf("dmgd_w2"));
            // L⁽²⁾(ψ; U) = Σ_j ⟨m_ψ(u_j), u_j⟩, differentiated by autograd
            let grads = tch::with_grad(|| {
                let l2 = (memory_output(&b, &w1, &w2, &u) * &u).sum(u.kind());
                Tensor::run_backward(&[l2], &[&b, &w1, &w2], false, false)
            });
            // ψ_t = β ψ_{t−1} − η ∇_ψ L⁽²⁾
            let step = |x: &Tensor, gx: &Tensor| x.detach() * c.beta - gx * c.inner_lr;
            let (b, w1, w2) = (step(&b, &grads[0]), step(&w1, &grads[1]), step(&w2, &grads[2]));
            // W_t = W_{t−1} + λ m_{ψ_t}(U_t)
            let out = memory_output(&b, &w1, &w2, &u).reshape(&shape);
            let _ = p.params[i].g_add_(&(out * lr));
            p.set_slot(i, "dmgd_b", b.reshape(&shape));
            p.set_slot(i, "dmgd_w1", w1);
            p.set_slot(i, "dmgd_w2", w2);
        });
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.p.state()
    }

    fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()> {
        self.p.load(tensors, step)
    }
}
