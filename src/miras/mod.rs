//! MIRAS — It's All Connected: A Journey Through Test-Time Memorization, Attentional Bias, Retention, and
//! Online Optimization (Behrouz, Razaviyayn, Zhong, Mirrokni; arXiv 2504.13173 v1).
//!
//! Equation numbers are v1's. The registry `papers/miras.yaml` lists every numbered equation, the code that
//! implements it and the check that verifies it. The four design axes are in [`framework`] (serde names
//! listed there), the per-equation primitives in [`bias`] and [`retention`], the generic recurrence in
//! [`update`], Moneta / Yaad / Memora and their chunkwise forms in [`models`], the published recurrences
//! as named presets in [`presets`], and Table 1's channel-gated and multi-step rows in [`table1`].

pub mod bias;
pub mod checks;
pub mod checks_mlp;
pub mod checks_models;
pub mod checks_retention;
pub mod checks_table1;
pub mod framework;
pub mod memory_rules;
pub mod mlp;
pub mod models;
pub mod preset_rules;
pub mod presets;
pub mod retention;
pub mod table1;
pub mod update;

use crate::check::Check;

/// Every MIRAS check, by the name `papers/miras.yaml` uses.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "miras_table1_rows",
            summary: "Table 1's channel-gated and multi-step rows (DFW, GLA, HGRN2, RWKV-7, DeltaProduct n = 3): tch vs f64 reference; DFW(beta = 1) == GLA, RWKV-7(uniform gate) == DeltaProduct(n = 1), GLA(uniform gate) == Mamba2",
            run: checks_table1::table1_rows,
        },
        Check {
            name: "miras_bias_dot_product",
            summary: "§4 dot-product bias −2c⟨Wk,v⟩: hand gradient vs tch autograd vs tch closed form vs central FD",
            run: checks::bias_dot_product,
        },
        Check {
            name: "miras_bias_l2",
            summary: "ℓ2 bias c‖Wk−v‖²: hand gradient vs tch autograd vs tch closed form vs central FD",
            run: checks::bias_l2,
        },
        Check {
            name: "miras_bias_lp",
            summary: "Eqs. 10–11, 25: ℓ_p bias at p = 1.5, 2, 3, 4: hand gradient vs autograd vs closed form vs FD",
            run: checks::bias_lp,
        },
        Check {
            name: "miras_bias_lp_smooth",
            summary: "Remark 5: smoothed ℓ_p step p tanh(κe)(e²+ε)^((p−1)/2) kᵀ: hand vs tch closed form vs autograd of the surrogate; κ→∞, ε→0 limit = exact ℓ_p",
            run: checks::bias_lp_smooth,
        },
        Check {
            name: "miras_bias_l1",
            summary: "Eq. 12: ℓ1 bias: hand gradient sign(e)kᵀ vs autograd vs closed form vs FD",
            run: checks::bias_l1,
        },
        Check {
            name: "miras_bias_huber",
            summary: "Eqs. 13–14: coordinate Huber, all inside / mixed / all outside the threshold: hand vs autograd vs closed form vs FD",
            run: checks::bias_huber,
        },
        Check {
            name: "miras_bias_huber_norm",
            summary: "Eq. 15: Huber of ‖e‖ on both sides of δ: hand vs autograd vs closed form vs FD",
            run: checks::bias_huber_norm,
        },
        Check {
            name: "miras_bias_l2_l1_switch",
            summary: "Eq. 16: Yaad's ℓ2/ℓ1 switch on both sides of δ: hand vs autograd vs closed form vs FD",
            run: checks::bias_l2_l1_switch,
        },
        Check {
            name: "miras_bias_value_shift",
            summary: "Eq. 17: value-shift-robust bias: gradients, worst-case shift attains the closed-form loss, random shifts stay below",
            run: checks::bias_value_shift,
        },
        Check {
            name: "miras_gd_proximal_ftrl",
            summary: "Eq. 5 is the argmin of the proximal display; Eq. 7 FTRL (constant η) reproduces the Eq. 5 iterates; tch vs reference",
            run: checks_retention::gd_proximal_ftrl,
        },
        Check {
            name: "miras_retention_l2_decayed",
            summary: "Eqs. 8–9: αM+vkᵀ and αW−η∇ℓ(αW) are the argmins (FD); tch vs reference on the recurrences",
            run: checks_retention::retention_l2_decayed,
        },
        Check {
            name: "miras_retention_local_global",
            summary: "Yaad/Titans retention (1/2θ)‖W−W'‖²+(1/β)‖W‖²: closed form is the argmin (FD); tch vs reference",
            run: checks_retention::retention_local_global,
        },
        Check {
            name: "miras_retention_elastic_net",
            summary: "Eq. 22: soft-threshold closed form satisfies the subgradient optimality conditions; tch vs reference",
            run: checks_retention::retention_elastic_net,
        },
        Check {
            name: "miras_retention_elastic_net_ftrl",
            summary: "Eq. 23: dual averaging + soft threshold is the FTRL argmin; tch vs reference",
            run: checks_retention::retention_elastic_net_ftrl,
        },
        Check {
            name: "miras_retention_lq",
            summary: "Variant 4 / Eq. 24: mirror map = ∇½‖A‖_q² (FD) = argmin; printed form is (3−q)-homogeneous; tch vs reference",
            run: checks_retention::retention_lq,
        },
        Check {
            name: "miras_retention_kl",
            summary: "Eqs. 19–21: KL softmax closed form satisfies KKT on the scaled simplex; tch vs reference",
            run: checks_retention::retention_kl,
        },
        Check {
            name: "miras_retention_f_divergence",
            summary: "Eq. 18: f-divergence step (ζ by bisection) satisfies KKT on the scaled simplex, equals Eq. 21 for KL without global term; tch vs reference",
            run: checks_retention::retention_f_divergence,
        },
        Check {
            name: "miras_retention_bregman_sigmoid",
            summary: "Variant 5: σ(logit W − ηG) is the Bregman argmin (FD); tch vs reference",
            run: checks_retention::retention_bregman_sigmoid,
        },
        Check {
            name: "miras_framework_combinations",
            summary: "every valid bias × retention × algorithm: tch vs reference on the full recurrence",
            run: checks_retention::framework_combinations,
        },
        Check {
            name: "miras_moneta",
            summary: "Eqs. 24–25, 28–29: Moneta tch vs reference, sequential and chunkwise (matmul vs loop), b = 1 ≡ sequential",
            run: checks_models::moneta,
        },
        Check {
            name: "miras_moneta_reduces_to_l2",
            summary: "Moneta with p = q = 2 equals ℓ2 GD with decay, written out",
            run: checks_models::moneta_reduces_to_l2,
        },
        Check {
            name: "miras_yaad",
            summary: "Eq. 26, 28: Yaad tch vs reference, sequential and chunkwise, b = 1 ≡ sequential",
            run: checks_models::yaad,
        },
        Check {
            name: "miras_yaad_reduces_to_l2",
            summary: "Yaad with a huge threshold equals ℓ2 GD with decay, written out",
            run: checks_models::yaad_reduces_to_l2,
        },
        Check {
            name: "miras_memora",
            summary: "Eqs. 27, 30–32: Memora tch vs reference, sequential and chunkwise with the lag token, b = 1 ≡ sequential",
            run: checks_models::memora,
        },
        Check {
            name: "miras_memora_simplex",
            summary: "Memora rows stay on the simplex; logit recurrence equals Eq. 27 as printed, written out",
            run: checks_models::memora_simplex,
        },
        Check {
            name: "miras_preset_linear_attention",
            summary: "preset `linear-attention`: framework (reference and tch) vs the published recurrence written out: linear attention M_t = M_{t−1} + v kᵀ",
            run: checks_models::preset_linear_attention,
        },
        Check {
            name: "miras_preset_retnet",
            summary: "preset `retnet`: framework (reference and tch) vs the published recurrence written out: RetNet M_t = γM_{t−1} + v kᵀ",
            run: checks_models::preset_retnet,
        },
        Check {
            name: "miras_preset_mamba2",
            summary: "preset `mamba2`: framework (reference and tch) vs the published recurrence written out: Mamba2 H_t = e^{ΔA}H_{t−1} + Δ x Bᵀ",
            run: checks_models::preset_mamba2,
        },
        Check {
            name: "miras_preset_deltanet",
            summary: "preset `deltanet`: framework (reference and tch) vs the published recurrence written out: DeltaNet M(I − βkkᵀ) + βvkᵀ",
            run: checks_models::preset_deltanet,
        },
        Check {
            name: "miras_preset_gated_deltanet",
            summary: "preset `gated-deltanet`: framework (reference and tch) vs the published recurrence written out: Gated DeltaNet αM(I − βkkᵀ) + βvkᵀ",
            run: checks_models::preset_gated_deltanet,
        },
        Check {
            name: "miras_preset_longhorn",
            summary: "preset `longhorn`: framework (reference and tch) vs the published recurrence written out: Longhorn implicit delta rule, ε = β/(1+βkᵀk)",
            run: checks_models::preset_longhorn,
        },
        Check {
            name: "miras_preset_ttt_linear",
            summary: "preset `ttt-linear`: framework (reference and tch) vs the published recurrence written out: TTT-linear W − η∇‖Wk − v‖²",
            run: checks_models::preset_ttt_linear,
        },
        Check {
            name: "miras_preset_titans_lmm",
            summary: "preset `titans-lmm`: framework (reference and tch) vs the published recurrence written out: Titans LMM with momentum and forgetting",
            run: checks_models::preset_titans_lmm,
        },
        Check {
            name: "miras_mlp_inner_gradient",
            summary: "§5.3 MLP memory x + LN(W1 GELU(W2 x)): hand-derived ∇W1, ∇W2 of five biases vs tch autograd vs central FD",
            run: checks_mlp::mlp_inner_gradient,
        },
        Check {
            name: "miras_mlp_memory",
            summary: "MLP memory recurrences (TTT-MLP, Titans LMM, Moneta, Yaad, Memora, gated delta): tch autograd vs hand-derived reference",
            run: checks_mlp::mlp_memory,
        },
        Check {
            name: "miras_preset_ttt_mlp",
            summary: "preset `ttt-mlp`: framework (reference and tch) vs TTT-MLP's SGD on ‖f(k) − v‖² written out with autograd",
            run: checks_mlp::preset_ttt_mlp,
        },
    ]
}
