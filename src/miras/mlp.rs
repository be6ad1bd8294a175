//! MIRAS (arXiv 2504.13173 v1) §5.3: the deep memory of Moneta, Yaad and Memora (and TTT-MLP, Titans' LMM),
//! $$\mathcal M(x) = x + \mathrm{LN}(W_1\,\sigma(W_2 x)),\qquad W_2\in\mathbb R^{h\times d},\ W_1\in\mathbb R^{d\times h},\ h = 4d$$
//! with σ = GELU (tanh approximation here; the paper does not say which) and LayerNorm without affine
//! parameters (ε = 1e−5; whether LN parameters are fast weights is unspecified, so there are none). The
//! residual needs `d_k = d_v = d`.
//!
//! The Learning–Retaining step is applied to each weight tensor separately (norms of Moneta's `N_q` and
//! Memora's row softmax per tensor): $$G_i = \nabla_{W_i}\ell(\mathcal M_{W}(k_t), v_t),\quad (A_i, W_i) \leftarrow \mathrm{Ret}(A_i, W_i, -\eta_t G_i)$$
//! Hand-derived backward (reference), with `h = W_2k`, `a = σ(h)`, `z = W_1a`, `u = (z − μ)/s`,
//! `s = \sqrt{\mathrm{var}(z) + ε}`, ψ = ∂ℓ/∂M(k):
//! $$\bar z = \tfrac1s\big(\psi - \overline{\psi} - u\,\overline{\psi\odot u}\big),\quad G_1 = \bar z a^\top,\quad G_2 = \big((W_1^\top\bar z)\odot\sigma'(h)\big)k^\top$$
//! (bars over ψ are means over the d coordinates). tch takes the gradient by autograd.

pub const LN_EPS: f64 = 1e-5;

/// The f64 reference with the hand-derived backward pass.
pub mod reference {
    use super::LN_EPS;
    use crate::miras::bias::reference::{loss_at, output_grad_at};
    use crate::miras::framework::{Algorithm, Bias, Config, Retention};
    use crate::miras::update::reference::{primal, retain};
    use ndarray::{Array1, Array2, ArrayView1};

    const C: f64 = 0.797_884_560_802_865_4; // sqrt(2/π)

    /// GELU, tanh approximation.
    pub fn gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
    }
    /// Its derivative.
    pub fn gelu_grad(x: f64) -> f64 {
        let t = (C * (x + 0.044715 * x * x * x)).tanh();
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * 0.044715 * x * x)
    }

    struct Fwd {
        h: Array1<f64>,
        a: Array1<f64>,
        u: Array1<f64>,
        s: f64,
        out: Array1<f64>,
    }

    fn fwd(w1: &Array2<f64>, w2: &Array2<f64>, x: ArrayView1<f64>) -> Fwd {
        let h = w2.dot(&x);
        let a = h.mapv(gelu);
        let z = w1.dot(&a);
        let n = z.len() as f64;
        let mu = z.sum() / n;
        let var = z.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
        let s = (var + LN_EPS).sqrt();
        let u = z.mapv(|v| (v - mu) / s);
        let out = &x + &u;
        Fwd { h, a, u, s, out }
    }

    /// `M(x) = x + LN(W_1 σ(W_2 x))`.
    pub fn read(w1: &Array2<f64>, w2: &Array2<f64>, x: ArrayView1<f64>) -> Array1<f64> {
        fwd(w1, w2, x).out
    }

    pub fn loss(
        bias: Bias,
        w1: &Array2<f64>,
        w2: &Array2<f64>,
        k: ArrayView1<f64>,
        v: ArrayView1<f64>,
        delta: f64,
    ) -> f64 {
        loss_at(bias, read(w1, w2, k).view(), v, delta)
    }

    /// Hand-derived `(∇_{W_1} ℓ, ∇_{W_2} ℓ)`.
    pub fn grads(
        bias: Bias,
        w1: &Array2<f64>,
        w2: &Array2<f64>,
        k: ArrayView1<f64>,
        v: ArrayView1<f64>,
        delta: f64,
    ) -> (Array2<f64>, Array2<f64>) {
        let f = fwd(w1, w2, k);
        let psi = output_grad_at(bias, f.out.view(), v, delta);
        let n = psi.len() as f64;
        let m_psi = psi.sum() / n;
        let m_pu = psi.dot(&f.u) / n;
        // LayerNorm backward
        let zb = Array1::from_shape_fn(psi.len(), |i| (psi[i] - m_psi - f.u[i] * m_pu) / f.s);
        let g1 = Array2::from_shape_fn(w1.raw_dim(), |(i, j)| zb[i] * f.a[j]);
        let ab = w1.t().dot(&zb);
        let hb = Array1::from_shape_fn(ab.len(), |j| ab[j] * gelu_grad(f.h[j]));
        let g2 = Array2::from_shape_fn(w2.raw_dim(), |(j, l)| hb[j] * k[l]);
        (g1, g2)
    }

    /// Inputs of one head (`d_k = d_v`); `a1_0`, `a2_0` are the initial states of `W_1`, `W_2` (dual for lq/kl).
    #[derive(Debug, Clone)]
    pub struct Inputs {
        pub k: Array2<f64>,
        pub v: Array2<f64>,
        pub q: Array2<f64>,
        pub alpha: Array1<f64>,
        pub eta: Array1<f64>,
        pub delta: Array1<f64>,
        pub mu: Array1<f64>,
        pub a1_0: Array2<f64>,
        pub a2_0: Array2<f64>,
    }

    #[derive(Debug, Clone)]
    pub struct Outputs {
        pub y: Array2<f64>,
        pub w1: Array2<f64>,
        pub w2: Array2<f64>,
        /// final carried states (A or Z for dual retentions, else W) and momenta
        pub a1: Array2<f64>,
        pub a2: Array2<f64>,
        pub s1: Array2<f64>,
        pub s2: Array2<f64>,
    }

    /// The whole sequence, token by token (GD or momentum; any retention applied per tensor), from
    /// `W_i = primal(A_i)` and zero momentum.
    pub fn forward(cfg: &Config, inp: &Inputs) -> Outputs {
        let (w1, w2) = (primal(cfg, &inp.a1_0), primal(cfg, &inp.a2_0));
        let (s1, s2) = (Array2::zeros(w1.raw_dim()), Array2::zeros(w2.raw_dim()));
        forward_from(cfg, inp, [w1, w2], [s1, s2])
    }

    /// [`forward`] continuing a carried state: `inp.a*_0` the carried states, `w0` the memories they stand
    /// for, `s0` the momenta. Chained calls equal one call.
    pub fn forward_from(cfg: &Config, inp: &Inputs, w0: [Array2<f64>; 2], s0: [Array2<f64>; 2]) -> Outputs {
        assert!(cfg.algorithm != Algorithm::ImplicitGd, "implicit GD has no closed form for the MLP memory");
        let t_len = inp.k.nrows();
        let (mut st1, mut st2) = (inp.a1_0.clone(), inp.a2_0.clone());
        let [mut w1, mut w2] = w0;
        let [mut s1, mut s2] = s0;
        let mut y = Array2::zeros((t_len, inp.v.ncols()));
        for t in 0..t_len {
            let (alpha, eta, mu) = (inp.alpha[t], inp.eta[t], inp.mu[t]);
            let decayed = matches!(cfg.retention, Retention::L2Decayed);
            let (p1, p2) = if decayed { (&w1 * alpha, &w2 * alpha) } else { (w1.clone(), w2.clone()) };
            let (g1, g2) = grads(cfg.bias, &p1, &p2, inp.k.row(t), inp.v.row(t), inp.delta[t]);
            let (d1, d2) = if cfg.algorithm == Algorithm::Momentum {
                s1 = &s1 * mu - &(&g1 * eta);
                s2 = &s2 * mu - &(&g2 * eta);
                (s1.clone(), s2.clone())
            } else {
                (&g1 * (-eta), &g2 * (-eta))
            };
            let (a, b) = retain(cfg, &st1, &w1, &d1, &g1, alpha, eta);
            st1 = a;
            w1 = b;
            let (a, b) = retain(cfg, &st2, &w2, &d2, &g2, alpha, eta);
            st2 = a;
            w2 = b;
            y.row_mut(t).assign(&read(&w1, &w2, inp.q.row(t)));
        }
        Outputs { y, w1, w2, a1: st1, a2: st2, s1, s2 }
    }
}

/// tch, batched over `[B, H]`, gradients by autograd.
pub mod torch {
    use super::LN_EPS;
    use crate::miras::bias::torch::loss_at;
    use crate::miras::framework::{Algorithm, Bias, Config, Retention};
    use crate::miras::update::torch::{primal, retain};
    use tch::Tensor;

    fn mv(m: &Tensor, x: &Tensor) -> Tensor {
        m.matmul(&x.unsqueeze(-1)).squeeze_dim(-1)
    }

    /// `M(x) = x + LN(W_1 GELU(W_2 x))`, `w1 [.., d, h]`, `w2 [.., h, d]`, `x [.., d]`.
    pub fn read(w1: &Tensor, w2: &Tensor, x: &Tensor) -> Tensor {
        let z = mv(w1, &mv(w2, x).gelu("tanh"));
        let c = &z - z.mean_dim(-1, true, z.kind());
        let var = c.square().mean_dim(-1, true, z.kind());
        x + c / (var + LN_EPS).sqrt()
    }

    /// `(∇_{W_1} ℓ, ∇_{W_2} ℓ)` by autograd, with `create_graph` when anything upstream requires a gradient (then
    /// the result is differentiable and the memory trains inside a model), on detached leaves otherwise.
    pub fn grads(bias: Bias, w1: &Tensor, w2: &Tensor, k: &Tensor, v: &Tensor, delta: &Tensor) -> (Tensor, Tensor) {
        let upstream = k.requires_grad() || v.requires_grad() || delta.requires_grad();
        let mut g = crate::memory::autograd::autograd_grads(
            &[w1.shallow_clone(), w2.shallow_clone()],
            |w| loss_at(bias, &read(&w[0], &w[1], k), v, delta).sum(w[0].kind()),
            upstream,
        );
        let g2 = g.pop().unwrap();
        let g1 = g.pop().unwrap();
        (g1, g2)
    }

    #[derive(Debug)]
    pub struct Outputs {
        pub y: Tensor,
        pub w1: Tensor,
        pub w2: Tensor,
        /// final carried states and momenta
        pub a1: Tensor,
        pub a2: Tensor,
        pub s1: Tensor,
        pub s2: Tensor,
    }

    /// Shapes: `k, v, q [B, H, T, d]`, gates `[B, H, T]`, `a1_0 [B, H, d, h]`, `a2_0 [B, H, h, d]`.
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
        a1_0: &Tensor,
        a2_0: &Tensor,
    ) -> Outputs {
        let (w1, w2) = (primal(cfg, a1_0), primal(cfg, a2_0));
        let (s1, s2) = (w1.zeros_like(), w2.zeros_like());
        forward_from(cfg, k, v, q, alpha, eta, delta, mu, [a1_0, a2_0], [&w1, &w2], [&s1, &s2])
    }

    /// [`forward`] continuing a carried state (see the reference's `forward_from`).
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
        a0: [&Tensor; 2],
        w0: [&Tensor; 2],
        s0: [&Tensor; 2],
    ) -> Outputs {
        let t_len = k.size()[2];
        let gate = |g: &Tensor, t: i64| g.select(2, t).unsqueeze(-1).unsqueeze(-1);
        let (mut st1, mut st2) = (a0[0].shallow_clone(), a0[1].shallow_clone());
        let (mut w1, mut w2) = (w0[0].shallow_clone(), w0[1].shallow_clone());
        let (mut s1, mut s2) = (s0[0].shallow_clone(), s0[1].shallow_clone());
        let mut ys = vec![];
        for t in 0..t_len {
            let (a, e, m) = (gate(alpha, t), gate(eta, t), gate(mu, t));
            let (p1, p2) = if matches!(cfg.retention, Retention::L2Decayed) {
                (&a * &w1, &a * &w2)
            } else {
                (w1.shallow_clone(), w2.shallow_clone())
            };
            let (g1, g2) = grads(cfg.bias, &p1, &p2, &k.select(2, t), &v.select(2, t), &delta.select(2, t));
            let (d1, d2) = if cfg.algorithm == Algorithm::Momentum {
                s1 = &m * &s1 - &e * &g1;
                s2 = &m * &s2 - &e * &g2;
                (s1.shallow_clone(), s2.shallow_clone())
            } else {
                (-(&e * &g1), -(&e * &g2))
            };
            let (x, y) = retain(cfg, &st1, &w1, &d1, &g1, &a, &e);
            st1 = x;
            w1 = y;
            let (x, y) = retain(cfg, &st2, &w2, &d2, &g2, &a, &e);
            st2 = x;
            w2 = y;
            ys.push(read(&w1, &w2, &q.select(2, t)));
        }
        let y = if ys.is_empty() {
            Tensor::zeros([k.size()[0], k.size()[1], 0, v.size()[3]], (k.kind(), k.device()))
        } else {
            Tensor::stack(&ys, 2)
        };
        Outputs { y, w1, w2, a1: st1, a2: st2, s1, s2 }
    }
}
