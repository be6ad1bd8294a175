//! Titans (arXiv 2501.00663 v1) §3.1, Eqs. 8–15: the long-term neural memory with a **linear** memory.
//!
//! Convention (see [`crate::memory`]): `M ∈ R^{d_v×d_k}` is read as `y = M q`; the attentional bias carries
//! an explicit `loss_scale` `c` and no hidden ½.
//!
//! * Eq. 12, the associative-memory loss and its gradient:
//!   $$\ell(M; k_t, v_t) = c\,\lVert M k_t - v_t\rVert_2^2,\qquad \nabla_M \ell = 2c\,(M k_t - v_t)\,k_t^\top$$
//! * Eqs. 10/14, surprise with momentum: $$S_t = \eta_t S_{t-1} - \theta_t \nabla\ell(M_{t-1}; k_t, v_t)$$
//! * Eq. 13, forgetting: $$M_t = (1-\alpha_t) M_{t-1} + S_t$$
//! * Eq. 15, retrieval: $$y_t = M_t q_t$$ (read after write, the project default) or $$y_t = M_{t-1} q_t$$
//!   ([`ReadMode::BeforeWrite`], MAC's Eq. 21).
//! * Eq. 8 (plain online gradient descent) is the special case `α = η = 0`; Eqs. 9–10 are `α = 0`.
//!
//! α_t, η_t, θ_t are per token and per head (scalars), given as inputs: how the paper computes them from
//! x_t is not specified in v1 (Titans issue).
//!
//! [`reference`] is the f64 ndarray reference, one head, token by token, with a hand-derived backward pass
//! (catalog §7.1). [`torch`] is the tch implementation batched over batch × heads, differentiated by autograd.

pub use crate::memory::{LossScale, ReadMode};

/// The f64 ndarray reference: one head, token by token, hand-derived gradients.
pub mod reference {
    use super::ReadMode;
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    /// Inputs of one head. Rows of `k`, `v`, `q` are tokens.
    #[derive(Debug, Clone)]
    pub struct Inputs {
        /// keys, `T × d_k`
        pub k: Array2<f64>,
        /// values, `T × d_v`
        pub v: Array2<f64>,
        /// queries, `T × d_k`
        pub q: Array2<f64>,
        /// forgetting gate α_t, `T`
        pub alpha: Array1<f64>,
        /// momentum decay η_t, `T`
        pub eta: Array1<f64>,
        /// learning rate θ_t, `T`
        pub theta: Array1<f64>,
        /// initial memory `M_0`, `d_v × d_k`
        pub m0: Array2<f64>,
        /// initial surprise `S_0`, `d_v × d_k`
        pub s0: Array2<f64>,
    }

    /// Everything the forward pass computed; the backward pass reads it.
    #[derive(Debug, Clone)]
    pub struct Trace {
        /// outputs `y_t`, `T × d_v`
        pub y: Array2<f64>,
        /// `M_0 … M_T`
        pub m: Vec<Array2<f64>>,
        /// `S_0 … S_T`
        pub s: Vec<Array2<f64>>,
        /// inner gradients `∇ℓ(M_{t−1}; k_t, v_t)`, `t = 1 … T`
        pub grad: Vec<Array2<f64>>,
    }

    impl Trace {
        pub fn final_memory(&self) -> &Array2<f64> {
            self.m.last().unwrap()
        }
        pub fn final_surprise(&self) -> &Array2<f64> {
            self.s.last().unwrap()
        }
    }

    /// Gradients of an outer loss with respect to every input.
    #[derive(Debug, Clone)]
    pub struct Grads {
        pub k: Array2<f64>,
        pub v: Array2<f64>,
        pub q: Array2<f64>,
        pub alpha: Array1<f64>,
        pub eta: Array1<f64>,
        pub theta: Array1<f64>,
        pub m0: Array2<f64>,
        pub s0: Array2<f64>,
    }

    /// `e k^⊤` as an explicit double loop (outer product).
    fn outer(e: ArrayView1<f64>, k: ArrayView1<f64>) -> Array2<f64> {
        Array2::from_shape_fn((e.len(), k.len()), |(i, j)| e[i] * k[j])
    }

    /// Eq. 12: `ℓ(M; k, v) = c‖Mk − v‖²`.
    pub fn l2_loss(m: ArrayView2<f64>, k: ArrayView1<f64>, v: ArrayView1<f64>, loss_scale: f64) -> f64 {
        let e = m.dot(&k) - v;
        loss_scale * e.dot(&e)
    }

    /// Eq. 12, the hand-derived gradient: `∇_M ℓ = 2c (Mk − v) k^⊤`.
    pub fn l2_grad(m: ArrayView2<f64>, k: ArrayView1<f64>, v: ArrayView1<f64>, loss_scale: f64) -> Array2<f64> {
        let e = m.dot(&k) - v;
        outer(e.view(), k) * (2.0 * loss_scale)
    }

    /// One token of Eqs. 14 and 13: returns `(M_t, S_t, ∇ℓ(M_{t−1}))`.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        m_prev: &Array2<f64>,
        s_prev: &Array2<f64>,
        k: ArrayView1<f64>,
        v: ArrayView1<f64>,
        alpha: f64,
        eta: f64,
        theta: f64,
        loss_scale: f64,
    ) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        // Eq. 12: momentary surprise ∇ℓ(M_{t−1}; x_t) = 2c (M_{t−1}k_t − v_t) k_tᵀ
        let grad = l2_grad(m_prev.view(), k, v, loss_scale);
        // Eq. 14: S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t−1}; x_t)
        let s = s_prev * eta - &grad * theta;
        // Eq. 13: M_t = (1 − α_t) M_{t−1} + S_t
        let m = m_prev * (1.0 - alpha) + &s;
        (m, s, grad)
    }

    /// The whole sequence, token by token (Eqs. 12–15).
    pub fn forward(inp: &Inputs, loss_scale: f64, read: ReadMode) -> Trace {
        let t_len = inp.k.nrows();
        let d_v = inp.m0.nrows();
        let mut y = Array2::zeros((t_len, d_v));
        let mut m = vec![inp.m0.clone()];
        let mut s = vec![inp.s0.clone()];
        let mut grad = Vec::with_capacity(t_len);
        for t in 0..t_len {
            let (m_t, s_t, g_t) =
                step(&m[t], &s[t], inp.k.row(t), inp.v.row(t), inp.alpha[t], inp.eta[t], inp.theta[t], loss_scale);
            // Eq. 15: y_t = M*(q_t), reading M_t (after write) or M_{t−1} (before write)
            let read_from = match read {
                ReadMode::AfterWrite => &m_t,
                ReadMode::BeforeWrite => &m[t],
            };
            y.row_mut(t).assign(&read_from.dot(&inp.q.row(t)));
            m.push(m_t);
            s.push(s_t);
            grad.push(g_t);
        }
        Trace { y, m, s, grad }
    }

    /// Hand-derived backward pass (catalog §7.1) of an outer loss `L` given its adjoints `ȳ = ∂L/∂y`,
    /// `M̄_T = ∂L/∂M_T`, `S̄_T = ∂L/∂S_T`.
    ///
    /// Per token, from t = T down to 1, with `e = M_{t−1}k − v`, `G = 2c e kᵀ`:
    /// `M̄ += ȳ_t q_tᵀ`, `q̄_t = M_tᵀ ȳ_t` (after write); `S̄ += M̄`; `ᾱ_t = −⟨M̄, M_{t−1}⟩`;
    /// `η̄_t = ⟨S̄, S_{t−1}⟩`; `θ̄_t = −⟨S̄, G⟩`; `Ḡ = −θ_t S̄`; `ē = 2c Ḡ k`; `k̄ = 2c Ḡᵀ e + M_{t−1}ᵀ ē`;
    /// `v̄ = −ē`; `M̄ ← (1 − α_t) M̄ + ē kᵀ`; `S̄ ← η_t S̄`.
    pub fn backward(
        inp: &Inputs,
        trace: &Trace,
        loss_scale: f64,
        read: ReadMode,
        y_bar: &Array2<f64>,
        m_bar_final: &Array2<f64>,
        s_bar_final: &Array2<f64>,
    ) -> Grads {
        let t_len = inp.k.nrows();
        let c = loss_scale;
        let mut g = Grads {
            k: Array2::zeros(inp.k.raw_dim()),
            v: Array2::zeros(inp.v.raw_dim()),
            q: Array2::zeros(inp.q.raw_dim()),
            alpha: Array1::zeros(t_len),
            eta: Array1::zeros(t_len),
            theta: Array1::zeros(t_len),
            m0: Array2::zeros(inp.m0.raw_dim()),
            s0: Array2::zeros(inp.s0.raw_dim()),
        };
        // adjoints of M_t and S_t flowing back from step t+1
        let mut m_bar = m_bar_final.clone();
        let mut s_bar = s_bar_final.clone();
        for t in (0..t_len).rev() {
            let (k, v, q) = (inp.k.row(t), inp.v.row(t), inp.q.row(t));
            let (m_prev, s_prev, m_t) = (&trace.m[t], &trace.s[t], &trace.m[t + 1]);
            let y_bar_t = y_bar.row(t);
            if read == ReadMode::AfterWrite {
                m_bar = m_bar + outer(y_bar_t, q);
                g.q.row_mut(t).assign(&m_t.t().dot(&y_bar_t));
            }
            // M_t = (1 − α) M_{t−1} + S_t  ⇒  S̄_t gets M̄_t
            s_bar = s_bar + &m_bar;
            g.alpha[t] = -(&m_bar * m_prev).sum();
            g.eta[t] = (&s_bar * s_prev).sum();
            g.theta[t] = -(&s_bar * &trace.grad[t]).sum();
            // S_t = η S_{t−1} − θ G  ⇒  Ḡ = −θ S̄
            let g_bar = &s_bar * (-inp.theta[t]);
            let e = m_prev.dot(&k) - v;
            let e_bar = g_bar.dot(&k) * (2.0 * c);
            let k_bar = g_bar.t().dot(&e) * (2.0 * c) + m_prev.t().dot(&e_bar);
            g.k.row_mut(t).assign(&k_bar);
            g.v.row_mut(t).assign(&(-&e_bar));
            m_bar = m_bar * (1.0 - inp.alpha[t]) + outer(e_bar.view(), k);
            s_bar = s_bar * inp.eta[t];
            if read == ReadMode::BeforeWrite {
                m_bar = m_bar + outer(y_bar_t, q);
                g.q.row_mut(t).assign(&m_prev.t().dot(&y_bar_t));
            }
        }
        g.m0 = m_bar;
        g.s0 = s_bar;
        g
    }
}

/// The tch implementation: batched over batch × heads, differentiable by autograd with respect to every
/// input (k, v, q, α, η, θ, M_0, S_0).
pub mod torch {
    use super::ReadMode;
    use tch::Tensor;

    /// Outputs of a call: `y` is `[B, H, T, d_v]`, the states `[B, H, d_v, d_k]`.
    #[derive(Debug)]
    pub struct Outputs {
        pub y: Tensor,
        pub m_final: Tensor,
        pub s_final: Tensor,
    }

    /// Eq. 12 gradient in closed form, batched: `2c (M k − v) kᵀ` for `M [.., d_v, d_k]`, `k [.., d_k]`,
    /// `v [.., d_v]`.
    pub fn l2_grad(m: &Tensor, k: &Tensor, v: &Tensor, loss_scale: f64) -> Tensor {
        let e = m.matmul(&k.unsqueeze(-1)).squeeze_dim(-1) - v;
        e.unsqueeze(-1).matmul(&k.unsqueeze(-2)) * (2.0 * loss_scale)
    }

    /// Eq. 12 gradient by autograd of `c‖M k − v‖²` (used to check [`l2_grad`] and the reference).
    pub fn l2_grad_autograd(m: &Tensor, k: &Tensor, v: &Tensor, loss_scale: f64) -> Tensor {
        let m = m.detach().set_requires_grad(true);
        let e = m.matmul(&k.unsqueeze(-1)).squeeze_dim(-1) - v;
        let loss = (e.square() * loss_scale).sum(e.kind());
        Tensor::run_backward(&[loss], &[&m], false, false).pop().unwrap()
    }

    /// Eqs. 12–15 over the sequence. Shapes: `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`,
    /// `alpha, eta, theta [B, H, T]`, `m0, s0 [B, H, d_v, d_k]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        m0: &Tensor,
        s0: &Tensor,
        loss_scale: f64,
        read: ReadMode,
    ) -> Outputs {
        let t_len = k.size()[2];
        let mut m = m0.shallow_clone();
        let mut s = s0.shallow_clone();
        let mut ys = Vec::with_capacity(t_len as usize);
        let gate = |g: &Tensor, t: i64| g.select(2, t).unsqueeze(-1).unsqueeze(-1);
        for t in 0..t_len {
            let (k_t, v_t, q_t) = (k.select(2, t), v.select(2, t), q.select(2, t));
            // Eq. 12: ∇ℓ(M_{t−1}; x_t) = 2c (M_{t−1}k_t − v_t) k_tᵀ
            let grad = l2_grad(&m, &k_t, &v_t, loss_scale);
            // Eq. 14: S_t = η_t S_{t−1} − θ_t ∇ℓ
            s = gate(eta, t) * &s - gate(theta, t) * grad;
            // Eq. 13: M_t = (1 − α_t) M_{t−1} + S_t
            let m_new = (1.0 - gate(alpha, t)) * &m + &s;
            // Eq. 15: y_t = M q_t
            let read_from = if read == ReadMode::AfterWrite { &m_new } else { &m };
            ys.push(read_from.matmul(&q_t.unsqueeze(-1)).squeeze_dim(-1));
            m = m_new;
        }
        let y = if ys.is_empty() {
            Tensor::zeros([k.size()[0], k.size()[1], 0, v.size()[3]], (k.kind(), k.device()))
        } else {
            Tensor::stack(&ys, 2)
        };
        Outputs { y, m_final: m, s_final: s }
    }
}
