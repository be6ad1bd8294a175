//! Inner-loop gradients by autograd, shared by every deep memory: a memory's momentary surprise `∇_W ℓ` is
//! itself differentiable (second order) when the outer loss needs gradients through it.

use tch::Tensor;

/// Whether autograd records operations here (false inside `tch::no_grad`).
pub fn grad_mode_enabled() -> bool {
    let probe = Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    (&probe * 1.0).requires_grad()
}

/// Gradients of `Σ loss` w.r.t. `wrt` by autograd; with `create_graph` when the caller records gradients and
/// anything requires one (then the result is differentiable), otherwise on detached leaves. Runs with gradients
/// enabled even inside `no_grad` (where the result is not differentiable and no second-order graph is kept).
pub fn autograd_grads(wrt: &[Tensor], loss_of: impl Fn(&[Tensor]) -> Tensor, upstream: bool) -> Vec<Tensor> {
    let recording = grad_mode_enabled();
    tch::with_grad(|| {
        let graph = recording && (upstream || wrt.iter().any(|p| p.requires_grad()));
        let leaves: Vec<Tensor> = wrt
            .iter()
            .map(|p| if graph && p.requires_grad() { p.shallow_clone() } else { p.detach().set_requires_grad(true) })
            .collect();
        let loss = loss_of(&leaves);
        Tensor::run_backward(&[loss], &leaves, graph, graph)
    })
}
