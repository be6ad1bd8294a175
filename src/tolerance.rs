//! Tolerances, stated once with their reasons. Every bound is on the relative RMSE `‖a − b‖ / ‖b‖`.

use tch::Kind;

/// tch in f64 against the f64 ndarray reference. Both evaluate the same real-number function in double
/// precision but in a different order (batched matmuls vs token-by-token loops); rounding differences of
/// ~1e-16 per operation, amplified by at most a few hundred sequential steps, stay far below 1e-10.
pub const TORCH_F64_VS_REFERENCE: f64 = 1e-10;

/// tch in f32 against the f64 reference, on inputs rounded to f32 first (so only arithmetic differs).
/// f32 has a unit roundoff of 6e-8; recurrences of up to 100 steps with contractive gates accumulate
/// errors of order 1e-7..1e-6 relative. 1e-5 leaves one order of magnitude of head-room.
pub const TORCH_F32_VS_REFERENCE: f64 = 1e-5;

/// Gradients through a whole recurrence in f32: the backward pass sums T products of Jacobians and the
/// gate gradients are inner products like ⟨S̄, S_{t−1}⟩ that can cancel, so they may lose a few more bits
/// than the forward pass. Measured worst case for Titans' linear memory at T = 100 is 2e-7 (`repro verify
/// --dtype f32`); the bound is the same 1e-5 as for outputs.
pub const TORCH_F32_GRADIENT_VS_REFERENCE: f64 = 1e-5;

/// tch in f32 against the f64 reference for a configuration whose **own f64 reference** is ill-conditioned, so
/// that f32 cannot do better however it is computed. Used only for MIRAS's Moneta with the MLP memory (ℓ3 bias,
/// q = 4 mirror map per weight tensor, LayerNorm output) over T ≤ 3 tokens: there a random relative perturbation
/// of 1e-7 of the initial weights alone moves W_T by up to 4e-6 relative at T = 3 (1.5e-6 at T = 1; measured in
/// f64), and f32 rounds every input and intermediate at 6e-8, so errors up to ~1e-5 are the conditioning, not a
/// bug. The same code agrees with the reference to 5e-13 in f64. 1e-4 keeps one order of head-room. Also used
/// for every f32 comparison of `memory_miras_framework_mlp` (the same LayerNorm-ended MLP memory, standalone at
/// d = 3 and inside a MAC mixer at d = 5): there rounding only the weights to f32 moves the f64 final state by up
/// to 6.4e-6 relative (30 draws), and f32 runs land at 4.7e-7 to 2.4e-5 depending on the BLAS summation order.
pub const TORCH_F32_ILL_CONDITIONED: f64 = 1e-4;

/// Outer gradients through Newton–Schulz (ATLAS' Atlas memories, `NS-5` with Muon's quintic) in f32 against the
/// f64 reference. The quintic lifts small singular values with a gain up to a⁵ ≈ 484 (a = 3.4445) and gate
/// gradients such as ∂L/∂η_t = ⟨∂L/∂S_t, S_{t−1}⟩ cancel, so the function itself is ill-conditioned: measured in
/// f64 on the generic check's draws (20 seeds, T = 5), rounding every input to f32 (relative 6e-8) alone moves
/// the deep Atlas memory's outer gradients by up to 4.4e-5 relative (the linear one's by 6e-6; without NS,
/// OmegaNet's by 7e-7 and Titans' deep memory's by 5e-7), and f32 runs reach 9.6e-5 (∂L/∂η, deep memory). The
/// same code agrees with the reference to 5e-7 (the finite-difference bound) in f64. 1e-3 keeps one order of
/// head-room over the measured worst case.
pub const TORCH_F32_NEWTON_SCHULZ_GRADIENT: f64 = 1e-3;

/// Central finite differences in f64 with step h = 1e-6 on smooth (polynomial) functions: truncation
/// O(h²)·|f'''| ≈ 1e-12 and cancellation ε·|f|/h ≈ 1e-10, so agreement to 1e-7 is expected.
pub const FINITE_DIFFERENCE: f64 = 1e-7;
pub const FD_STEP: f64 = 1e-6;

/// Central finite differences (h = 1e-6) of a whole f64 recurrence (a few tokens through normalisations,
/// softmaxes, powers and thresholds) against an exact gradient: the cancellation error ε·|L|/h ≈ 1e-16·10/1e-6
/// is ~1e-9 absolute on gradients of norm O(1)–O(10), and the truncation term grows with the third derivatives
/// of the non-polynomial maps; 1e-6 relative keeps an order of magnitude above the worst measured case.
pub const FINITE_DIFFERENCE_CHAIN: f64 = 1e-6;

/// Two f64 evaluations of algebraically identical expressions (an equivalence or reduction written
/// independently): only rounding separates them.
pub const ALGEBRAIC_F64: f64 = 1e-11;

/// The tolerance for tch-vs-reference outputs and states at a given tch dtype.
pub fn torch_vs_reference(kind: Kind) -> f64 {
    match kind {
        Kind::Double => TORCH_F64_VS_REFERENCE,
        _ => TORCH_F32_VS_REFERENCE,
    }
}

/// The tolerance for tch-autograd-vs-hand-derived gradients at a given tch dtype.
pub fn gradient_vs_reference(kind: Kind) -> f64 {
    match kind {
        Kind::Double => TORCH_F64_VS_REFERENCE,
        _ => TORCH_F32_GRADIENT_VS_REFERENCE,
    }
}

/// An equivalence evaluated with tch on one side: as tight as the dtype allows.
pub fn equivalence(kind: Kind) -> f64 {
    match kind {
        Kind::Double => ALGEBRAIC_F64.max(TORCH_F64_VS_REFERENCE),
        _ => TORCH_F32_VS_REFERENCE,
    }
}

/// Not a tolerance but its mirror image: the smallest relative difference `‖a − b‖/‖b‖` that counts as "clearly
/// different" when a check asserts that two functions are *not* the same (e.g. Titans' chunked model with
/// C > 1 against the sequential one, or Gated DeltaNet under the appendix's naive map against Titans). The
/// differences such checks expect are O(1e-2 … 1); rounding (≤ 1e-5 in f32) can never produce 1e-3.
pub const MIN_RELATIVE_DIFFERENCE: f64 = 1e-3;
