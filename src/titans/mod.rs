//! Titans: Learning to Memorize at Test Time (Behrouz, Zhong, Mirrokni; arXiv 2501.00663 v1).
//!
//! Equation numbers are v1's. The registry `papers/titans.yaml` lists every numbered equation, the code that
//! implements it and the check that verifies it.

pub mod appendix_c;
pub mod appendix_c_checks;
pub mod block_checks;
pub mod checks;
pub mod chunkwise;
pub mod chunkwise_checks;
pub mod chunkwise_mlp;
pub mod chunkwise_mlp_checks;
pub mod linear_memory;
pub mod memory_rules;
pub mod mlp_checks;
pub mod mlp_memory;
pub mod model_checks;

use crate::check::Check;

/// Every Titans check, by the name `papers/titans.yaml` uses.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "titans_l2_inner_gradient",
            summary: "Eq. 12 gradient 2c(Mk−v)kᵀ: hand-derived vs tch autograd vs central finite differences",
            run: checks::l2_inner_gradient,
        },
        Check {
            name: "titans_linear_memory",
            summary: "Eqs. 9–15 forward: tch (batched) vs ndarray reference (token by token); y, M_T, S_T",
            run: checks::linear_memory_forward,
        },
        Check {
            name: "titans_linear_memory_gradients",
            summary: "gradients of a random projection of (y, M_T, S_T) w.r.t. k, v, q, α, η, θ, M_0, S_0: tch autograd vs hand-derived backward",
            run: checks::linear_memory_gradients,
        },
        Check {
            name: "titans_linear_memory_backward_fd",
            summary: "the reference's hand-derived backward pass vs central finite differences of its forward pass",
            run: checks::linear_memory_backward_fd,
        },
        Check {
            name: "titans_online_gradient_descent",
            summary: "Eq. 8: the full rule with η = α = 0, S_0 = 0 equals plain online gradient descent written out",
            run: checks::online_gradient_descent,
        },
        Check {
            name: "titans_momentum_without_forgetting",
            summary: "Eqs. 9–10: the full rule with α = 0 equals M_t = M_{t−1} + S_t with momentum, written out",
            run: checks::momentum_without_forgetting,
        },
        Check {
            name: "titans_decay_only",
            summary: "θ = 0: the memory only decays, M_t = β_t M_0 + Σ_j (β_t/β_j) P_j S_0 in closed form",
            run: checks::decay_only,
        },
        Check {
            name: "titans_mlp_inner_gradient",
            summary: "Eq. 12, MLP memory L_M = 1, 2, 3 (+ residual, identity activation): hand backprop vs tch autograd vs central finite differences; L_M = 1 vs 2c(Mk−v)kᵀ",
            run: mlp_checks::mlp_inner_gradient,
        },
        Check {
            name: "titans_mlp_memory",
            summary: "Eqs. 12–15 with an MLP memory (L_M = 1, 2, 3): tch (autograd inner gradients) vs reference (hand backprop); y, final weights, final momentum; L_M = 1 vs the linear memory",
            run: mlp_checks::mlp_memory_forward,
        },
        Check {
            name: "titans_mlp_memory_gradients",
            summary: "outer gradients through the MLP recurrence (second order): tch autograd vs central finite differences of the f64 reference, w.r.t. k, v, q, α, η, θ, W_0, S_0",
            run: mlp_checks::mlp_memory_gradients,
        },
        Check {
            name: "titans_chunkwise_chunk1_sequential",
            summary: "Eqs. 16–18 with C = 1 (linear closed form, MLP batched form) equal the sequential recurrence (Eqs. 13–15)",
            run: chunkwise_checks::chunk1_equals_sequential,
        },
        Check {
            name: "titans_chunkwise_linear",
            summary: "Eqs. 16–18, linear memory: matrix closed form (tch) vs token-by-token mini-batch reference (gradients frozen at the chunk start), C ∈ {2,4,5,16}, T not a multiple of C",
            run: chunkwise_checks::linear_chunkwise,
        },
        Check {
            name: "titans_chunkwise_mlp",
            summary: "Eqs. 16–18, MLP memory: batched per-token autograd gradients + coefficient mixing (tch) vs token-by-token mini-batch reference with hand backprop",
            run: chunkwise_checks::mlp_chunkwise,
        },
        Check {
            name: "titans_chunkwise_mlp_factored",
            summary: "Eqs. 16–18, MLP memory in factored form (rank-one gradient factors, reads as layer-wise closed forms, no per-token weights) vs the materialised form (outputs, states, every outer gradient) and the f64 reference; autograd vs FD",
            run: chunkwise_mlp_checks::factored_mlp,
        },
        Check {
            name: "titans_chunkwise_state_carry",
            summary: "chunkwise state carries across calls: one call == two chained calls == token-by-token reference; C = 1: one call == T one-token calls",
            run: chunkwise_checks::state_carry,
        },
        Check {
            name: "titans_chunkwise_differs_from_sequential",
            summary: "C > 1 is a different function from the sequential rule (gradients at the chunk start): the relative difference must be clearly non-zero (documented property, not a bug)",
            run: chunkwise_checks::differs_from_sequential,
        },
        Check {
            name: "titans_chunkwise_gradients",
            summary: "outer gradients of the chunkwise forms (linear matrix form; MLP, second order): tch autograd vs central finite differences of the mini-batch reference",
            run: chunkwise_checks::chunkwise_gradients,
        },
        Check {
            name: "titans_projections",
            summary: "Eqs. 1/11 + §4.4: projection → causal depthwise conv → SiLU → ℓ2-norm; tch (conv1d, groups) vs reference (explicit taps)",
            run: block_checks::projections_check,
        },
        Check {
            name: "titans_gates",
            summary: "data-dependent gates α = σ(w·x+b), η = σ(w·x+b), θ = θ_max σ(w·x+b): tch vs reference",
            run: block_checks::gates_check,
        },
        Check {
            name: "titans_block_gradients",
            summary: "outer gradients of Eq. 2 (window + prefix) and of the §4.4 q/k path (conv, SiLU, ℓ2-norm): tch autograd vs central finite differences of the references",
            run: block_checks::block_gradients_check,
        },
        Check {
            name: "titans_persistent_memory",
            summary: "Eq. 19: persistent tokens prepended, tch (expand + cat) vs reference (row copy), shared and per-head",
            run: block_checks::persistent_check,
        },
        Check {
            name: "titans_softmax_attention",
            summary: "Eq. 2: causal softmax attention, full / sliding window / window + always-visible prefix; tch (mask + softmax) vs reference loops",
            run: block_checks::softmax_attention_check,
        },
        Check {
            name: "titans_linear_attention",
            summary: "Eq. 3: normalised linear attention, tch cumulative-state form vs reference pairwise form (φ = elu+1, identity)",
            run: block_checks::linear_attention_check,
        },
        Check {
            name: "titans_linear_attention_state",
            summary: "Eqs. 4–5: Hebbian recurrence M_t = M_{t−1} + v kᵀ, y = M q (reference) vs parallel tril(QKᵀ)V (tch)",
            run: block_checks::linear_attention_state_check,
        },
        Check {
            name: "titans_channelwise_gates",
            summary: "Eqs. 32–33 (corrected M_{t−1}): channel-wise gates, tch vs reference; constant channels == scalar-gate Titans",
            run: appendix_c_checks::channelwise_check,
        },
        Check {
            name: "titans_deltanet",
            summary: "Eq. 34: Titans(η = α = 0, S_0 = 0) == DeltaNet with β = 2cθ (c = 1 and the appendix's c = ½); DeltaNet tch vs reference",
            run: appendix_c_checks::deltanet_check,
        },
        Check {
            name: "titans_gated_deltanet_relation",
            summary: "the true relation to Gated DeltaNet: exact with a = 1−α, b = 2θ/(1−α), values (1−α)v (and converse); naive map differs by 2αθ M kkᵀ per step; GDN == decay then step",
            run: appendix_c_checks::gated_deltanet_check,
        },
        Check {
            name: "titans_longhorn",
            summary: "Eq. 35 (denominator kᵀk): Longhorn closed form (tch) vs proximal argmin by linear solve (reference); unit keys == DeltaNet β = θ/(1+θ)",
            run: appendix_c_checks::longhorn_check,
        },
        Check {
            name: "titans_model_lmm",
            summary: "LMM mixer (Eq. 19 prefix + memory layer): tch model block vs f64 reference with the same weights; outputs and M_T per head",
            run: model_checks::lmm_check,
        },
        Check {
            name: "titans_model_mac",
            summary: "MAC mixer (Eqs. 21–25: read before the segment, attention over p ‖ h ‖ S, write y, gate/add): tch vs f64 reference; outputs and M_T",
            run: model_checks::mac_check,
        },
        Check {
            name: "titans_model_mag",
            summary: "MAG mixer (Eqs. 26–28: SW-Attn* over p ‖ x, memory over p ‖ x, LN(y) ⊙ σ(LN(m))): tch vs f64 reference; outputs and M_T",
            run: model_checks::mag_check,
        },
        Check {
            name: "titans_model_mal",
            summary: "MAL mixer (Eqs. 29–31: memory over p ‖ x, then SW-Attn with the prefix outputs visible): tch vs f64 reference; outputs and M_T",
            run: model_checks::mal_check,
        },
    ]
}
