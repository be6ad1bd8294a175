//! Titans: Learning to Memorize at Test Time (Behrouz, Zhong, Mirrokni; arXiv 2501.00663 v1).
//!
//! Equation numbers are v1's. The registry `papers/titans.yaml` lists every numbered equation, the code that
//! implements it and the check that verifies it.

pub mod checks;
pub mod eval;
pub mod linear_memory;
pub mod models;

use crate::check::Check;

/// Titans rules for `repro eval`.
pub fn eval_rules() -> Vec<crate::eval::Rule> {
    eval::rules()
}

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
    ]
}
