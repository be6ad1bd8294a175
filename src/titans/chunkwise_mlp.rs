//! Titans (arXiv 2501.00663 v1) §3.2, Eqs. 16–18 for the **deep** memory, in factored form: the same chunked
//! model as [`super::chunkwise::torch::mlp_forward`] without one weight copy per token.
//!
//! Inside a chunk every per-token gradient is taken at the chunk-start weights, and each is rank one per layer
//! (catalog §7.2, with `a_{l−1,i}` the input and `δ_{l,i}` the back-propagated error of layer `l` for key `i`):
//! $$u^{(l)}_i = \nabla_{W^{(l)}}\ell(M_{t'}; k_i, v_i) = \delta_{l,i}\,a_{l-1,i}^\top,\qquad
//!   \delta_{L_M,i} = 2c\,(M_{t'}(k_i) - v_i),\quad \delta_{l-1,i} = (W^{(l)\top}_{t'}\delta_{l,i})\odot\sigma'(h_{l-1,i}).$$
//! So the weights the read at position `τ` uses are the chunk-start weights plus a Γ-weighted sum of rank-one
//! terms, `W^{(l)}_τ = β_τ W^{(l)}_{t'} + ρ_τ S^{(l)}_{t'} − Σ_i Γ_{τi} δ_{l,i} a_{l−1,i}^⊤`, and a layer's
//! pre-activations for all queries of the chunk are the linear memory's closed form, layer by layer (rows are
//! tokens; `X_l` the queries' inputs to layer `l`, `A_l` the keys', `Δ_l` the keys' errors):
//! $$H_l = \mathrm{diag}(\beta)\,X_l W^{(l)\top}_{t'} + \mathrm{diag}(\rho)\,X_l S^{(l)\top}_{t'}
//!   - \big((X_l A_l^\top)\odot\Gamma\big)\,\Delta_l .$$
//! The end-of-chunk state is `β_C W + ρ_C S − Δ_lᵀ diag(Γ_{C·}) A_l` (and `P_C S − Δ_lᵀ diag(θ_i H_{Ci}) A_l`).
//!
//! Cost per layer and chunk: `O(C·in·out + C²·(in + out))` instead of the materialised form's
//! `O(C²·in·out)` (mixing C gradient matrices into C weight matrices) and its `C` weight copies in memory.
//! The inner gradient is written out (the rank-one factors are what make the form fast); it is checked against
//! the materialised autograd form (`titans_chunkwise_mlp_factored`) and the f64 reference.

use super::chunkwise::torch::over_chunks;
use super::mlp_memory::torch::Outputs;
use super::mlp_memory::{Activation, MlpConfig, ReadMode};
use tch::Tensor;

/// `σ'(x)`: SiLU `s(1 + x(1 − s))` with `s = sigmoid(x)`; exact GELU `Φ(x) + x φ(x)`; identity 1.
fn act_derivative(a: Activation, x: &Tensor) -> Tensor {
    match a {
        Activation::Silu => {
            let s = x.sigmoid();
            &s * (x * (s.ones_like() - &s) + 1.0)
        }
        Activation::Gelu => {
            let cdf = ((x / std::f64::consts::SQRT_2).erf() + 1.0) * 0.5;
            let pdf = (x.square() * -0.5).exp() * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
            cdf + x * pdf
        }
        Activation::Identity => x.ones_like(),
    }
}

/// The keys' inputs `A_l` and errors `Δ_l` of every layer at the chunk-start weights: `([B,H,C,in], [B,H,C,out])`.
fn rank_one_factors(
    m: &[Tensor],
    cfg: &MlpConfig,
    k: &Tensor,
    v: &Tensor,
    loss_scale: f64,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let n = m.len();
    let mut inputs = vec![k.shallow_clone()];
    let mut pre = vec![];
    for (l, w) in m.iter().enumerate() {
        // h_l = W^{(l)} a_{l−1} on row vectors
        let h = inputs[l].matmul(&w.transpose(-1, -2));
        if l + 1 < n {
            inputs.push(cfg.activation.apply(&h));
        }
        pre.push(h);
    }
    let out = if cfg.residual { &pre[n - 1] + k } else { pre[n - 1].shallow_clone() };
    // δ_{L_M} = 2c (M(k) − v);  δ_{l−1} = (W^{(l)ᵀ} δ_l) ⊙ σ'(h_{l−1})
    let mut errors = vec![(out - v) * (2.0 * loss_scale)];
    for l in (1..n).rev() {
        let back = errors.last().unwrap().matmul(&m[l]) * act_derivative(cfg.activation, &pre[l - 1]);
        errors.push(back);
    }
    errors.reverse();
    (inputs, errors)
}

/// Eqs. 16–18 for the MLP memory in factored form. Shapes and semantics as
/// [`super::chunkwise::torch::mlp_forward`] (and [`super::mlp_memory::torch::forward`] for `chunk = 1`).
#[allow(clippy::too_many_arguments)]
pub fn mlp_forward(
    k: &Tensor,
    v: &Tensor,
    q: &Tensor,
    alpha: &Tensor,
    eta: &Tensor,
    theta: &Tensor,
    m0: &[Tensor],
    s0: &[Tensor],
    cfg: &MlpConfig,
    chunk: usize,
    loss_scale: f64,
    read: ReadMode,
) -> Outputs {
    let mut m: Vec<Tensor> = m0.iter().map(|p| p.shallow_clone()).collect();
    let mut s: Vec<Tensor> = s0.iter().map(|p| p.shallow_clone()).collect();
    let n = m.len();
    let off = if read == ReadMode::AfterWrite { 1 } else { 0 };
    let y = over_chunks(alpha, eta, theta, chunk, v.size()[3], |start, len, co| {
        let (kc, vc, qc) = (k.narrow(2, start, len), v.narrow(2, start, len), q.narrow(2, start, len));
        // Eq. 18: u_i = δ_{l,i} a_{l−1,i}ᵀ at M_{t'}, kept as its two factors
        let (key_inputs, key_errors) = rank_one_factors(&m, cfg, &kc, &vc, loss_scale);
        let beta_r = co.beta.narrow(-1, off, len).unsqueeze(-1);
        let rho_r = co.rho.narrow(-1, off, len).unsqueeze(-1);
        let gamma_r = co.gamma.narrow(-2, off, len);
        let g_end = co.gamma.select(-2, len).unsqueeze(-1);
        let sg_end = co.s_gamma.select(-2, len).unsqueeze(-1);
        let scalar = |x: &Tensor| x.select(-1, len).unsqueeze(-1).unsqueeze(-1);
        let mut x = qc.shallow_clone();
        let (mut m_new, mut s_new) = (vec![], vec![]);
        for l in 0..n {
            let (a_l, d_l) = (&key_inputs[l], &key_errors[l]);
            // H_l = diag(β) X W_{t'}ᵀ + diag(ρ) X S_{t'}ᵀ − ((X A_lᵀ) ⊙ Γ) Δ_l
            let h = &beta_r * x.matmul(&m[l].transpose(-1, -2)) + &rho_r * x.matmul(&s[l].transpose(-1, -2))
                - (x.matmul(&a_l.transpose(-1, -2)) * &gamma_r).matmul(d_l);
            x = if l + 1 < n { cfg.activation.apply(&h) } else { h };
            // end of chunk: β_C W + ρ_C S − Δ_lᵀ diag(Γ_{C·}) A_l,   P_C S − Δ_lᵀ diag(θ_i H_{Ci}) A_l
            m_new.push(
                scalar(&co.beta) * &m[l] + scalar(&co.rho) * &s[l] - (d_l * &g_end).transpose(-1, -2).matmul(a_l),
            );
            s_new.push(scalar(&co.p) * &s[l] - (d_l * &sg_end).transpose(-1, -2).matmul(a_l));
        }
        m = m_new;
        s = s_new;
        // Eq. 15 (residual: M(q) = q + MLP(q))
        if cfg.residual {
            x + &qc
        } else {
            x
        }
    });
    Outputs { y, m_final: m, s_final: s }
}
