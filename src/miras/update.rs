//! MIRAS (arXiv 2504.13173 v1) §3.3–§4: the generic Learning–Retaining recurrence of a linear memory for any
//! [`Config`] (bias × retention × algorithm), token by token.
//!
//! Per token, with `P_t = α_t W_{t−1}` for [`Retention::L2Decayed`] (Eq. 9 corrected) and `P_t = W_{t−1}`
//! otherwise: $$G_t = \nabla\ell(P_t; k_t, v_t),\qquad D_t = -\eta_t G_t \ \text{(GD, Eq. 5)}\ \text{ or }\ S_t = \mu_t S_{t-1} - \eta_t G_t,\ D_t = S_t\ \text{(momentum)}$$
//! then the retention's closed form (see [`super::retention`]): `W_t = W_{t−1} + D_t` (none),
//! `α_t W_{t−1} + D_t` (ℓ2), `S_γ(λ(W_{t−1} + D_t))` (Eq. 22), `A_t = A_{t−1} + D_t, W_t = S_{η/α}(A_t)` (Eq. 23),
//! `A_t = α_t A_{t−1} + D_t, W_t = N_q(A_t)` (Eq. 24), `Z_t = α_t Z_{t−1} + D_t, W_t = Softmax_row(Z_t)` (Eqs. 21, 27),
//! `W_t = σ(logit W_{t−1} + D_t)` (Variant 5). Implicit GD (Longhorn) with the ℓ2 bias `c‖Wk − v‖²`:
//! $$W_t = P_t - \frac{2c\eta_t}{1 + 2c\eta_t\lVert k_t\rVert^2}(P_t k_t - v_t)k_t^\top$$
//! Read after the write: $$y_t = W_t q_t$$
//! For dual-state retentions `m0` is `A_0` / `Z_0` and `W_0` is its image (`N_q(A_0)`, `Softmax_row(Z_0)`, `A_0`).

pub use super::framework::{Algorithm, Bias, Config, Retention};

/// The f64 reference, one head.
pub mod reference {
    use super::{Algorithm, Bias, Config, Retention};
    use crate::miras::{bias, retention::reference as ret};
    use ndarray::{Array1, Array2};

    /// Inputs of one head; rows of `k, v, q` are tokens.
    #[derive(Debug, Clone)]
    pub struct Inputs {
        pub k: Array2<f64>,
        pub v: Array2<f64>,
        pub q: Array2<f64>,
        /// retention multiplier α_t
        pub alpha: Array1<f64>,
        /// learning rate η_t
        pub eta: Array1<f64>,
        /// bias threshold δ_t
        pub delta: Array1<f64>,
        /// momentum decay μ_t
        pub mu: Array1<f64>,
        /// initial state (W_0, or A_0 / Z_0 for dual-state retentions)
        pub m0: Array2<f64>,
    }

    #[derive(Debug, Clone)]
    pub struct Outputs {
        pub y: Array2<f64>,
        /// final memory W_T
        pub w: Array2<f64>,
        /// final carried state (A_T / Z_T, or W_T)
        pub state: Array2<f64>,
        /// final momentum S_T
        pub s: Array2<f64>,
    }

    /// The primal memory of a carried state.
    pub fn primal(cfg: &Config, state: &Array2<f64>) -> Array2<f64> {
        match cfg.retention {
            Retention::Lq { q, form } => ret::lq_map(state, q, form),
            Retention::Kl => ret::softmax_rows(state),
            _ => state.clone(),
        }
    }

    /// One token: `(state, W, S)` → `(state', W', S')`.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        cfg: &Config,
        state: &Array2<f64>,
        w: &Array2<f64>,
        s: &Array2<f64>,
        inp: &Inputs,
        t: usize,
    ) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        let (k, v) = (inp.k.row(t), inp.v.row(t));
        let (alpha, eta, delta, mu) = (inp.alpha[t], inp.eta[t], inp.delta[t], inp.mu[t]);
        let decayed = matches!(cfg.retention, Retention::L2Decayed);
        // the linearisation point P_t
        let p = if decayed { w * alpha } else { w.clone() };
        if cfg.algorithm == Algorithm::ImplicitGd {
            let Bias::L2 { scale: c } = cfg.bias else { panic!("implicit-gd needs the l2 bias (Config::validate)") };
            let p = if matches!(cfg.retention, Retention::None) { w.clone() } else { w * alpha };
            // W_t = P − (2cη / (1 + 2cη‖k‖²)) (P k − v) kᵀ
            let coef = 2.0 * c * eta / (1.0 + 2.0 * c * eta * k.dot(&k));
            let r = p.dot(&k) - v;
            let w_new = Array2::from_shape_fn(p.raw_dim(), |(i, j)| p[[i, j]] - coef * r[i] * k[j]);
            return (w_new.clone(), w_new, s.clone());
        }
        // G_t = ∇ℓ(P_t; k_t, v_t)
        let g = bias::reference::grad(cfg.bias, p.view(), k, v, delta);
        // D_t = −η G (Eq. 5) or S_t = μ S_{t−1} − η G (momentum)
        let (d, s_new) = match cfg.algorithm {
            Algorithm::Momentum => {
                let s_new = s * mu - &(&g * eta);
                (s_new.clone(), s_new)
            }
            _ => (&g * (-eta), s.clone()),
        };
        let (state_new, w_new) = retain(cfg, state, w, &d, &g, alpha, eta);
        (state_new, w_new, s_new)
    }

    /// The retention's closed form for one parameter tensor: `(state, W, D_t, G_t)` → `(state', W')`.
    #[allow(clippy::too_many_arguments)]
    pub fn retain(
        cfg: &Config,
        state: &Array2<f64>,
        w: &Array2<f64>,
        d: &Array2<f64>,
        g: &Array2<f64>,
        alpha: f64,
        eta: f64,
    ) -> (Array2<f64>, Array2<f64>) {
        let (d, g) = (d.clone(), g.clone());
        match cfg.retention {
            Retention::None => {
                let w_new = w + &d;
                (w_new.clone(), w_new)
            }
            Retention::L2Decayed | Retention::L2LocalGlobal => {
                let w_new = w * alpha + &d;
                (w_new.clone(), w_new)
            }
            Retention::ElasticNet { beta, alpha: a1 } => {
                // Eq. 22 with the gradient step: S_γ(λ W − ζ G)
                let w_new = ret::elastic_net(w, &g, eta, beta, a1);
                (w_new.clone(), w_new)
            }
            Retention::ElasticNetFtrl { alpha: a1 } => {
                let a = state + &d;
                let w_new = ret::soft_threshold(&a, eta / a1);
                (a, w_new)
            }
            Retention::Lq { q, form } => {
                let a = state * alpha + &d;
                let w_new = ret::lq_map(&a, q, form);
                (a, w_new)
            }
            Retention::Kl => {
                let z = state * alpha + &d;
                let w_new = ret::softmax_rows(&z);
                (z, w_new)
            }
            Retention::BregmanSigmoid => {
                let w_new = w.mapv(|x| (x / (1.0 - x)).ln()) + &d;
                let w_new = w_new.mapv(|z| 1.0 / (1.0 + (-z).exp()));
                (w_new.clone(), w_new)
            }
        }
    }

    /// The whole sequence from `W_0 = primal(m0)` and `S_0 = 0`.
    pub fn forward(cfg: &Config, inp: &Inputs) -> Outputs {
        let w0 = primal(cfg, &inp.m0);
        let s0 = Array2::zeros(w0.raw_dim());
        forward_from(cfg, inp, w0, s0)
    }

    /// The whole sequence continuing a carried state: `inp.m0` is the carried state (`W`, or `A` / `Z`), `w0` the
    /// memory it stands for (`primal(m0)` except after Eq. 23, whose `W = S_{η/α}(A)` depends on the last η),
    /// `s0` the momentum. Chained calls equal one call.
    pub fn forward_from(cfg: &Config, inp: &Inputs, w0: Array2<f64>, s0: Array2<f64>) -> Outputs {
        let t_len = inp.k.nrows();
        let mut state = inp.m0.clone();
        let mut w = w0;
        let mut s = s0;
        let mut y = Array2::zeros((t_len, w.nrows()));
        for t in 0..t_len {
            let (a, b, c) = step(cfg, &state, &w, &s, inp, t);
            state = a;
            w = b;
            s = c;
            // y_t = W_t q_t
            y.row_mut(t).assign(&w.dot(&inp.q.row(t)));
        }
        Outputs { y, w, state, s }
    }
}

/// tch, batched over `[B, H]`: `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, gates `[B, H, T]`,
/// `m0 [B, H, d_v, d_k]`.
pub mod torch {
    use super::{Algorithm, Bias, Config, Retention};
    use crate::miras::{bias::torch as bias, retention::torch as ret};
    use tch::Tensor;

    #[derive(Debug)]
    pub struct Outputs {
        pub y: Tensor,
        pub w: Tensor,
        pub state: Tensor,
        pub s: Tensor,
    }

    pub fn primal(cfg: &Config, state: &Tensor) -> Tensor {
        match cfg.retention {
            Retention::Lq { q, form } => ret::lq_map(state, q, form),
            Retention::Kl => state.softmax(-1, state.kind()),
            _ => state.shallow_clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        cfg: &Config,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        delta: &Tensor,
        mu: &Tensor,
        m0: &Tensor,
    ) -> Outputs {
        let w0 = primal(cfg, m0);
        let s0 = w0.zeros_like();
        forward_from(cfg, k, v, q, alpha, eta, delta, mu, m0, &w0, &s0)
    }

    /// [`forward`] continuing a carried state `(m0, w0, s0)` (see the reference's `forward_from`).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_from(
        cfg: &Config,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        delta: &Tensor,
        mu: &Tensor,
        m0: &Tensor,
        w0: &Tensor,
        s0: &Tensor,
    ) -> Outputs {
        let t_len = k.size()[2];
        let gate = |g: &Tensor, t: i64| g.select(2, t).unsqueeze(-1).unsqueeze(-1);
        let mut state = m0.shallow_clone();
        let mut w = w0.shallow_clone();
        let mut s = s0.shallow_clone();
        let mut ys = vec![];
        for t in 0..t_len {
            let (k_t, v_t, q_t) = (k.select(2, t), v.select(2, t), q.select(2, t));
            let (a, e, m) = (gate(alpha, t), gate(eta, t), gate(mu, t));
            let d_t = delta.select(2, t);
            if cfg.algorithm == Algorithm::ImplicitGd {
                let Bias::L2 { scale: c } = cfg.bias else { panic!("implicit-gd needs the l2 bias") };
                let p = if matches!(cfg.retention, Retention::None) { w.shallow_clone() } else { &a * &w };
                // Longhorn's closed form: P − (2cη/(1 + 2cη‖k‖²)) (P k − v) kᵀ
                let kk = k_t.square().sum_dim_intlist(-1, false, k.kind()).unsqueeze(-1).unsqueeze(-1);
                let coef = &e * (2.0 * c) / (&e * (2.0 * c) * kk + 1.0);
                let r = p.matmul(&k_t.unsqueeze(-1)) - v_t.unsqueeze(-1);
                w = &p - coef * r.matmul(&k_t.unsqueeze(-2));
                state = w.shallow_clone();
            } else {
                let p = if matches!(cfg.retention, Retention::L2Decayed) { &a * &w } else { w.shallow_clone() };
                let g = bias::grad(cfg.bias, &p, &k_t, &v_t, &d_t);
                let d = if cfg.algorithm == Algorithm::Momentum {
                    s = &m * &s - &e * &g;
                    s.shallow_clone()
                } else {
                    -(&e * &g)
                };
                let (st, ww) = retain(cfg, &state, &w, &d, &g, &a, &e);
                state = st;
                w = ww;
            }
            ys.push(w.matmul(&q_t.unsqueeze(-1)).squeeze_dim(-1));
        }
        let y = Tensor::stack(&ys, 2);
        Outputs { y, w, state, s }
    }

    /// The retention's closed form for one parameter tensor (gates `[.., 1, 1]`): returns `(state', W')`.
    pub fn retain(
        cfg: &Config,
        state: &Tensor,
        w: &Tensor,
        d: &Tensor,
        g: &Tensor,
        a: &Tensor,
        e: &Tensor,
    ) -> (Tensor, Tensor) {
        let (mut state, mut w) = (state.shallow_clone(), w.shallow_clone());
        match cfg.retention {
            Retention::None => w = &w + d,
            Retention::L2Decayed | Retention::L2LocalGlobal => w = a * &w + d,
            Retention::ElasticNet { beta, alpha: a1 } => w = ret::elastic_net(&w, g, e, beta, a1),
            Retention::ElasticNetFtrl { alpha: a1 } => {
                state = &state + d;
                w = ret::soft_threshold(&state, &(e / a1));
            }
            Retention::Lq { .. } | Retention::Kl => {
                state = a * &state + d;
                w = primal(cfg, &state);
            }
            Retention::BregmanSigmoid => w = (w.logit(None::<f64>) + d).sigmoid(),
        }
        if !cfg.retention.has_dual_state() {
            state = w.shallow_clone();
        }
        (state, w)
    }
}
