//! MIRAS (arXiv 2504.13173 v1) §5.3–§5.4: Moneta, Yaad, Memora with a linear memory, token by token (through
//! [`super::update`]) and in the chunkwise forms of Eqs. 28–32.
//!
//! * Moneta (Eqs. 24–25, ⚠ corrected): $$A_t = \alpha_t A_{t-1} - \eta_t\nabla\ell_p(W_{t-1}; k_t, v_t),\quad W_t = N_q(A_t),\quad \nabla\ell_p = p\,(\mathrm{sign}(e)\odot|e|^{p-1})k^\top$$
//!   `N_q` is the mirror map `A ⊙ |A|^{q−2}/‖A‖_q^{q−2}` (default) or the printed `A/‖A‖_q^{q−2}` ([`LqForm`]).
//! * Yaad (Eq. 26): $$W_t = \alpha_t W_{t-1} - \eta_t\begin{cases}(W_{t-1}k_t - v_t)k_t^\top & \lVert W_{t-1}k_t - v_t\rVert_2\le\delta_t\\ \delta_t\,\mathrm{sign}(W_{t-1}k_t - v_t)k_t^\top & \text{otherwise}\end{cases}$$
//! * Memora (Eq. 27, via the logit identity of Eq. 21): $$Z_t = \alpha_t Z_{t-1} - \eta_t\nabla\ell_2(W_{t-1}; k_t, v_t),\quad W_t = \mathrm{Softmax}_{\text{row}}(Z_t)$$
//!   (`= Softmax(α_t log W_{t−1} − η_t ∇ℓ2)` row by row), `ℓ2 = c‖Wk − v‖²`.
//! * Chunkwise (Eq. 28, consistent form, and Eq. 29): inside a chunk starting after token `t'` the gradients are
//!   taken at the chunk-start memory, $$X_t = \tfrac{\beta_t}{\beta_{t'}}X_{t'} - \sum_{i=t'+1}^{t}\eta_i\tfrac{\beta_t}{\beta_i}\nabla\ell(W_{t'}; k_i, v_i),\quad \beta_i = \prod_{j\le i}\alpha_j$$
//!   with `X` the carried state (`W`, `A` or `Z`) and reads `y_t = N(X_t) q_t`. The tch form computes the
//!   ratios `β_t/β_i` as products over ranges ([`torch::decay_products`]), so a zero `α_t` (full erase) is
//!   exact. Memora (Eqs. 30–32): the first token of each chunk is the exact lag step, and the rest of the chunk
//!   takes gradients at the lag state.

use super::framework::{Algorithm, Bias, Config, LqForm, Retention};
use serde::{Deserialize, Serialize};

/// The paper's three models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Model {
    /// ℓ_p bias, ℓ_q retention; the paper uses (p, q) = (3, 4).
    Moneta { p: f64, q: f64, form: LqForm },
    /// Huber-type ℓ2/ℓ1 switch, local + global ℓ2 retention.
    Yaad,
    /// ℓ2 bias `c‖Wk − v‖²`, KL retention (softmax rows).
    Memora { scale: f64 },
}

impl Model {
    pub fn config(&self) -> Config {
        match *self {
            Model::Moneta { p, q, form } => Config::linear(Bias::Lp { p }, Retention::Lq { q, form }, Algorithm::Gd),
            Model::Yaad => Config::linear(Bias::L2L1Switch, Retention::L2LocalGlobal, Algorithm::Gd),
            Model::Memora { scale } => Config::linear(Bias::L2 { scale }, Retention::Kl, Algorithm::Gd),
        }
    }
    /// Whether the chunkwise form starts each chunk with an exact lag token (Memora, Eq. 30).
    pub fn lag_token(&self) -> bool {
        matches!(self, Model::Memora { .. })
    }
}

/// The f64 reference of the chunkwise forms: a token loop with the gradient frozen at the chunk start.
pub mod reference {
    use super::Model;
    use crate::miras::bias::reference as bias;
    use crate::miras::update::reference::{primal, step, Inputs, Outputs};
    use ndarray::Array2;

    /// Chunk size `b` (≥ 1); a short final chunk is allowed.
    pub fn chunkwise(model: &Model, inp: &Inputs, b: usize) -> Outputs {
        assert!(b >= 1);
        let cfg = model.config();
        let t_len = inp.k.nrows();
        let mut state = inp.m0.clone();
        let mut w = primal(&cfg, &state);
        let zeros = Array2::zeros(w.raw_dim());
        let mut y = Array2::zeros((t_len, w.nrows()));
        let mut t0 = 0;
        while t0 < t_len {
            let end = (t0 + b).min(t_len);
            let mut start = t0;
            if model.lag_token() {
                // Eq. 30: the lag token takes the exact (non-linear) step
                let (a, ww, _) = step(&cfg, &state, &w, &zeros, inp, t0);
                state = a;
                w = ww;
                y.row_mut(t0).assign(&w.dot(&inp.q.row(t0)));
                start += 1;
            }
            // Eq. 28 / 31: every gradient of the chunk at the chunk-start (or lag) memory
            let frozen = w.clone();
            for i in start..end {
                let g = bias::grad(cfg.bias, frozen.view(), inp.k.row(i), inp.v.row(i), inp.delta[i]);
                state = &state * inp.alpha[i] - &(g * inp.eta[i]);
                w = primal(&cfg, &state);
                y.row_mut(i).assign(&w.dot(&inp.q.row(i)));
            }
            t0 = end;
        }
        Outputs { y, w, s: zeros, state }
    }
}

/// tch chunkwise forms in matmul form (Eq. 29, Eq. 32 with the column weighting corrected).
pub mod torch {
    use super::Model;
    use crate::miras::bias::torch as bias;
    use crate::miras::update::torch::{primal, Outputs};
    use tch::{Kind, Tensor};

    /// The decay products of a chunk's retention gates `alpha [.., n]`: `(ratio, from_start)` with
    /// `ratio[.., t, i] = Π_{m=i+1}^{t} α_m` for `i ≤ t` (0 above the diagonal) and `from_start[.., t] =
    /// Π_{m≤t} α_m`. Computed as running products down the rows of a matrix holding `α_r` below the diagonal
    /// and 1 elsewhere (as [`crate::titans::chunkwise::torch::coefficients`] does): never a ratio of small
    /// products and never `exp(log α)`, so `α_t = 0` gives exact zeros instead of `−inf − (−inf) = NaN`.
    pub fn decay_products(alpha: &Tensor) -> (Tensor, Tensor) {
        let (kind, device) = (alpha.kind(), alpha.device());
        let n = *alpha.size().last().expect("gates have a time axis");
        let idx = Tensor::arange(n, (Kind::Int64, device));
        let strict = idx.unsqueeze(1).gt_tensor(&idx.unsqueeze(0)); // r > j
        let lower = idx.unsqueeze(1).ge_tensor(&idx.unsqueeze(0)).to_kind(kind); // r ≥ j
        let mut full = alpha.size();
        full.push(n);
        let ones = Tensor::ones(full.as_slice(), (kind, device));
        let below = alpha.unsqueeze(-1).expand(full.as_slice(), false).where_self(&strict, &ones);
        let ratio = below.cumprod(-2, kind) * lower;
        (ratio, alpha.cumprod(-1, kind))
    }

    /// Shapes as in [`crate::miras::update::torch::forward`]; `b` is the chunk size.
    #[allow(clippy::too_many_arguments)]
    pub fn chunkwise(
        model: &Model,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        delta: &Tensor,
        m0: &Tensor,
        b: i64,
    ) -> Outputs {
        let cfg = model.config();
        let t_len = k.size()[2];
        let mut state = m0.shallow_clone();
        let mut w = primal(&cfg, &state);
        let mut ys = vec![];
        let mut t0 = 0;
        while t0 < t_len {
            let end = (t0 + b).min(t_len);
            let mut start = t0;
            if model.lag_token() {
                // Eq. 30: Z = α Z − η ∇ℓ2(W_prev; k, v), W = Softmax_row(Z)
                let (k1, v1) = (k.select(2, t0), v.select(2, t0));
                let g = bias::grad(cfg.bias, &w, &k1, &v1, &delta.select(2, t0));
                let a = alpha.select(2, t0).unsqueeze(-1).unsqueeze(-1);
                let e = eta.select(2, t0).unsqueeze(-1).unsqueeze(-1);
                state = a * &state - e * g;
                w = primal(&cfg, &state);
                ys.push(w.matmul(&q.select(2, t0).unsqueeze(-1)).squeeze_dim(-1).unsqueeze(2));
                start += 1;
            }
            let n = end - start;
            if n > 0 {
                let (kc, vc, qc) = (k.narrow(2, start, n), v.narrow(2, start, n), q.narrow(2, start, n));
                let (ac, ec, dc) = (alpha.narrow(2, start, n), eta.narrow(2, start, n), delta.narrow(2, start, n));
                // ψ_i = ∂ℓ/∂y at the frozen memory, all chunk tokens at once: [B, H, n, d_v]
                let psi = bias::output_grad(cfg.bias, &w.unsqueeze(2), &kc, &vc, &dc);
                // β_t/β_i = Π_{m=i+1}^{t} α_m as products over ranges (no logs: a zero α, a full erase, stays
                // exact and its gradients finite); weights η_i β_t/β_i for i ≤ t
                let (ratio, from_start) = decay_products(&ac);
                let wts = ratio * ec.unsqueeze(-2);
                // Σ_i wts[t, i] ψ_i k_iᵀ: [B, H, n, d_v, d_k]
                let weighted = (wts.unsqueeze(-1) * psi.unsqueeze(2)).transpose(-1, -2);
                let sum = weighted.matmul(&kc.unsqueeze(2));
                let x = from_start.unsqueeze(-1).unsqueeze(-1) * state.unsqueeze(2) - sum;
                let w_all = primal(&cfg, &x);
                ys.push(w_all.matmul(&qc.unsqueeze(-1)).squeeze_dim(-1));
                state = x.select(2, n - 1);
                w = w_all.select(2, n - 1);
            }
            t0 = end;
        }
        let s = w.zeros_like();
        Outputs { y: Tensor::cat(&ys, 2), w, state, s }
    }
}
