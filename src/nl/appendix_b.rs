//! Appendix B's consequences (Nested Learning v1, Eqs. 103–105): an optimizer whose momentum is the element-wise
//! associative memory of Eq. 101,
//!
//! $$m^* = \arg\min_m \sum_{i\le t}\|m\odot g_i - P\|_2^2 + \lambda\|m\|_F^2,\qquad W_{t+1} = W_t - \eta\, m^*\quad(103)$$
//!
//! with two choices of the value `P` (λ → 0), written with the running sums `M̃_t = β₁ Σ_i g_i`,
//! `H_t = β₂ Σ_i g_i²` of Eq. 102 (`β₁ = β₂ = β`, the case in which Eq. 102's optimum holds as printed):
//!
//! $$P = \textstyle\sum_i g_i^2:\quad W_{t+1} = W_t - \frac{\eta}{\beta_2}\tilde M_t\quad(104),\qquad
//!   P = \sqrt{\textstyle\sum_i g_i^2}:\quad W_{t+1} = W_t - \frac{\eta}{\sqrt{\beta_2}}\,\frac{\tilde M_t}{\sqrt{H_t}}\quad(105)$$
//!
//! Corrections (catalog §5, Appendix B ⚠): Eq. 104 prints `η β₂ M̃` where the algebra gives `η/β₂`; the memory is
//! a **sum** (AdaGrad-style with a momentum sum), not Adam's EMAs; and with the printed `g = −∇L` the step
//! `W − η m*` ascends, so `g = +∇L` here. Eq. 105's `ε` is 0 (it only guards `H = 0`).
//!
//! The reference solves Eq. 101 afresh at every step from the list of past gradients (its closed optimum
//! `crate::nl::inner::reference::elementwise_memory_optimum`, verified against a Newton solve by `nl_adam_as_memory`);
//! the tch side runs the printed closed forms with running sums, gradients by autograd.

/// Which value `P` the memory regresses onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Eq. 104: `P = Σ g²`
    SumOfSquares,
    /// Eq. 105: `P = √(Σ g²)`
    RootSumOfSquares,
}

/// f64: the argmin of Eq. 101 at every step.
pub mod reference {
    use super::Value;
    use crate::nl::inner::reference::elementwise_memory_optimum;
    use crate::nl::optimizers::reference::Quadratic;
    use ndarray::Array2;

    /// Iterates `W_1 … W_T` of Eq. 103 with `m*` the exact minimiser of Eq. 101 (λ = 0) over all gradients so far.
    pub fn memory_optimizer(q: &Quadratic, w0: &Array2<f64>, value: Value, lrs: &[f64]) -> Vec<Array2<f64>> {
        let mut w = w0.clone();
        let mut grads: Vec<Array2<f64>> = vec![];
        let mut out = vec![];
        for &lr in lrs {
            grads.push(q.grad(&w)); // g_i = +∇L(W_i)
            let sum_sq = grads.iter().fold(Array2::<f64>::zeros(w.raw_dim()), |acc, g| acc + g.mapv(|x| x * x));
            let p = match value {
                Value::SumOfSquares => sum_sq,
                Value::RootSumOfSquares => sum_sq.mapv(f64::sqrt),
            };
            // m* = argmin_m Σ_i ‖m ⊙ g_i − P‖²  (λ → 0)
            let m_star = elementwise_memory_optimum(&grads, &p, 0.0);
            // W_{t+1} = W_t − η m*
            w = &w - &(m_star * lr);
            out.push(w.clone());
        }
        out
    }
}

/// tch: the closed forms with running sums `M̃ ← M̃ + β₁ g`, `H ← H + β₂ g²`.
pub mod torch {
    use super::Value;
    use crate::nl::optimizers::torch::quadratic_grad;
    use tch::Tensor;

    /// Iterates of Eq. 104 (`W ← W − (η/β₂) M̃`) or Eq. 105 (`W ← W − (η/√β₂) M̃/√H`) on
    /// `½⟨(W − W*)H, W − W*⟩` from `w0`; `printed_beta: true` uses Eq. 104's printed factor `η β₂` instead.
    pub fn closed_form(
        w0: &Tensor,
        h: &Tensor,
        w_star: &Tensor,
        beta: f64,
        value: Value,
        lrs: &[f64],
        printed_beta: bool,
    ) -> Vec<Tensor> {
        let mut w = w0.detach().copy();
        let mut m_tilde = w0.zeros_like();
        let mut h_sum = w0.zeros_like();
        let mut out = vec![];
        for &lr in lrs {
            let g = quadratic_grad(&w, h, w_star);
            m_tilde += &g * beta;
            h_sum += g.square() * beta;
            w = match value {
                Value::SumOfSquares if printed_beta => &w - &m_tilde * (lr * beta),
                Value::SumOfSquares => &w - &m_tilde * (lr / beta),
                Value::RootSumOfSquares => &w - (&m_tilde / h_sum.sqrt()) * (lr / beta.sqrt()),
            };
            out.push(w.copy());
        }
        out
    }
}
