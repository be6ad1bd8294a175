//! MIRAS (arXiv 2504.13173 v1) §3.3, §4, §5.2: closed-form Learning–Retaining steps, i.e. the argmin of
//! `⟨W − P, G⟩ + Ret(W)` for a given (linearised) gradient `G = ∇ℓ(P)`.
//!
//! * proximal GD (unnumbered display before Eq. 7 → Eq. 5): $$W_t = W_{t-1} - \eta_t G$$
//! * decayed local ℓ2 (Eqs. 8–9, ⚠ Eq. 9 corrected): $$\arg\min_W \langle W - \alpha W_{t-1}, G\rangle + \tfrac{1}{2\eta}\lVert W - \alpha W_{t-1}\rVert_F^2 = \alpha W_{t-1} - \eta G$$
//! * local + global ℓ2 (Yaad's Ret, §5.3; Titans): $$\arg\min_W \langle W - W_{t-1}, G\rangle + \tfrac{1}{2\theta}\lVert W - W_{t-1}\rVert^2 + \tfrac1\beta\lVert W\rVert^2 = \tfrac{\beta}{\beta+2\theta}W_{t-1} - \tfrac{\theta\beta}{\beta+2\theta}G$$
//! * elastic net (Eq. 22): $$W_t = \mathcal S_\gamma(\lambda W_{t-1} - \zeta G),\ \gamma = \tfrac{\eta\beta}{\alpha(\eta+\beta)},\ \lambda = \tfrac{\beta}{\beta+\eta},\ \zeta = \eta\lambda$$
//! * FTRL elastic net (Eq. 23): $$A_t = A_{t-1} - \eta G,\quad W_t = \mathcal S_{\eta/\alpha}(A_t)$$
//! * ℓ_q (Variant 4 / Eq. 24): $$N_q(A) = \frac{A\odot|A|^{q-2}}{\lVert A\rVert_q^{q-2}} = \nabla\tfrac12\lVert A\rVert_q^2 = \arg\min_W -\langle W, A\rangle + \tfrac12\lVert W\rVert_{q^*}^2,\ q^* = \tfrac{q}{q-1}$$
//!   and the printed $$A/\lVert A\rVert_q^{q-2}$$ behind [`LqForm::Printed`].
//! * KL over the scaled simplex (Eqs. 19–21, ⚠ `(W_t)_{jl}` → `(W_{t−1})_{jl}`): $$W_t = c\,\mathrm{Softmax}\big((1-\lambda_t)\log W_{t-1} - \eta'_t G\big),\ \lambda_t = \tfrac{1/\alpha_t}{1/\alpha_t + 1/\eta_t},\ \eta'_t = \tfrac{1}{1/\alpha_t + 1/\eta_t}$$
//! * f-divergence over the scaled simplex (Eq. 18): $$W_t = W_{t-1}\odot g\left(-\zeta_t - \eta_t\nabla\ell(W_{t-1})\right),\ g = (f')^{-1},\ \textstyle\sum W_t = c$$
//!   with ζ_t found by bisection, for [`FDiv::Kl`] `f(τ) = τ log τ` (g = exp; = Eq. 21 without the global term) and
//!   [`FDiv::Burg`] `f(τ) = τ − 1 − log τ` (g(x) = 1/(1 − x)).
//! * Bregman divergence of `F(W) = Σ W log W + (1−W) log(1−W)` (Variant 5, sigmoid example): $$W_t = \sigma(\mathrm{logit}(W_{t-1}) - \eta G)$$

pub use super::framework::LqForm;

/// The divergence generator f of Eq. 18 (strictly convex, f(1) = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FDiv {
    /// `f(τ) = τ log τ`, `f'(τ) = 1 + log τ`, `g(x) = e^{x − 1}`.
    Kl,
    /// `f(τ) = τ − 1 − log τ`, `f'(τ) = 1 − 1/τ`, `g(x) = 1/(1 − x)` (x < 1).
    Burg,
}

impl FDiv {
    pub fn f(self, t: f64) -> f64 {
        match self {
            FDiv::Kl => t * t.ln(),
            FDiv::Burg => t - 1.0 - t.ln(),
        }
    }
    /// `(f')^{-1}`.
    pub fn g(self, x: f64) -> f64 {
        match self {
            FDiv::Kl => (x - 1.0).exp(),
            FDiv::Burg => 1.0 / (1.0 - x),
        }
    }
}

/// The f64 reference: closed forms written entry by entry, and the objectives they minimise.
pub mod reference {
    use super::LqForm;
    use ndarray::Array2;

    /// Eq. 5 as a proximal step.
    pub fn prox_l2(w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64) -> Array2<f64> {
        w_prev - &(g * eta)
    }

    /// Eqs. 8–9 (consistent): `α W_{t−1} − η G`, with `G` taken at `α W_{t−1}` by the caller.
    pub fn decayed_l2(w_prev: &Array2<f64>, g: &Array2<f64>, alpha: f64, eta: f64) -> Array2<f64> {
        w_prev * alpha - &(g * eta)
    }

    /// Yaad's / Titans' retention, coupled form: `(β/(β+2θ)) W_{t−1} − (θβ/(β+2θ)) G`.
    pub fn local_global_l2(w_prev: &Array2<f64>, g: &Array2<f64>, theta: f64, beta: f64) -> Array2<f64> {
        let a = beta / (beta + 2.0 * theta);
        w_prev * a - &(g * (theta * a))
    }

    /// `S_γ(z) = sign(z) max(0, |z| − γ)`, entry by entry.
    pub fn soft_threshold(z: &Array2<f64>, gamma: f64) -> Array2<f64> {
        z.mapv(|x| {
            if x > gamma {
                x - gamma
            } else if x < -gamma {
                x + gamma
            } else {
                0.0
            }
        })
    }

    /// Eq. 22.
    pub fn elastic_net(w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64, beta: f64, alpha: f64) -> Array2<f64> {
        let lambda = beta / (beta + eta);
        let zeta = eta * lambda;
        let gamma = eta * beta / (alpha * (eta + beta));
        soft_threshold(&(w_prev * lambda - &(g * zeta)), gamma)
    }

    /// Eq. 23: returns `(A_t, W_t)`.
    pub fn elastic_net_ftrl(a_prev: &Array2<f64>, g: &Array2<f64>, eta: f64, alpha: f64) -> (Array2<f64>, Array2<f64>) {
        let a = a_prev - &(g * eta);
        let w = soft_threshold(&a, eta / alpha);
        (a, w)
    }

    /// `‖A‖_q` over all entries.
    pub fn lq_norm(a: &Array2<f64>, q: f64) -> f64 {
        a.iter().map(|x| x.abs().powf(q)).sum::<f64>().powf(1.0 / q)
    }

    /// Eq. 24's normalisation `N_q(A)`.
    pub fn lq_map(a: &Array2<f64>, q: f64, form: LqForm) -> Array2<f64> {
        let n = lq_norm(a, q);
        if n == 0.0 {
            return a.clone();
        }
        let denom = n.powf(q - 2.0);
        match form {
            LqForm::Mirror => a.mapv(|x| x * x.abs().powf(q - 2.0) / denom),
            LqForm::Printed => a.mapv(|x| x / denom),
        }
    }

    /// Eq. 21: `c · Softmax` over **all** entries jointly.
    pub fn kl_global(w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64, alpha: f64, c: f64) -> Array2<f64> {
        let lambda = (1.0 / alpha) / (1.0 / alpha + 1.0 / eta);
        let eta_p = 1.0 / (1.0 / alpha + 1.0 / eta);
        let z =
            Array2::from_shape_fn(w_prev.raw_dim(), |(i, j)| (1.0 - lambda) * w_prev[[i, j]].ln() - eta_p * g[[i, j]]);
        let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ex = z.mapv(|x| (x - mx).exp());
        let s: f64 = ex.sum();
        ex.mapv(|x| c * x / s)
    }

    /// Eq. 18: `W_{t−1} ⊙ g(−ζ − ηG)` with ζ found by bisection so that `Σ W_t = c` (the sum is decreasing in ζ).
    pub fn f_divergence(w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64, c: f64, f: super::FDiv) -> Array2<f64> {
        let x: Vec<f64> = g.iter().map(|gi| -eta * gi).collect();
        let mass = |zeta: f64| -> f64 { w_prev.iter().zip(&x).map(|(w, xi)| w * f.g(xi - zeta)).sum() };
        // ζ must keep every argument in g's domain: x − ζ < 1 for Burg
        let xmax = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (mut lo, mut hi) = match f {
            super::FDiv::Kl => (xmax - 60.0, xmax + 60.0),
            super::FDiv::Burg => (xmax - 1.0, xmax - 1.0 + 1.0),
        };
        while mass(hi) > c {
            hi = lo + 2.0 * (hi - lo);
        }
        if f == super::FDiv::Kl {
            while mass(lo) < c {
                lo -= 60.0;
            }
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            // Burg: at ζ = lo the mass is +∞, so the bracket [lo, hi] always holds the root
            if mass(mid) > c {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let zeta = 0.5 * (lo + hi);
        Array2::from_shape_fn(w_prev.raw_dim(), |(i, j)| w_prev[[i, j]] * f.g(-zeta - eta * g[[i, j]]))
    }

    /// Eq. 18's objective: `⟨W − W_{t−1}, G⟩ + (1/η) Σ W_{t−1} f(W/W_{t−1})`.
    pub fn objective_f_divergence(
        w: &Array2<f64>,
        w_prev: &Array2<f64>,
        g: &Array2<f64>,
        eta: f64,
        f: super::FDiv,
    ) -> f64 {
        let d: f64 = w.iter().zip(w_prev.iter()).map(|(a, b)| b * f.f(a / b)).sum();
        lin(w, w_prev, g) + d / eta
    }

    /// Softmax over each row (the project's slice for Memora, Eq. 27).
    pub fn softmax_rows(z: &Array2<f64>) -> Array2<f64> {
        let mut out = z.clone();
        for mut row in out.rows_mut() {
            let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            row.mapv_inplace(|x| (x - mx).exp());
            let s: f64 = row.sum();
            row.mapv_inplace(|x| x / s);
        }
        out
    }

    /// Variant 5, sigmoid example (⚠ `W_t` → `W_{t−1}` inside the logit).
    pub fn bregman_sigmoid(w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64) -> Array2<f64> {
        Array2::from_shape_fn(w_prev.raw_dim(), |(i, j)| {
            let w = w_prev[[i, j]];
            let z = (w / (1.0 - w)).ln() - eta * g[[i, j]];
            1.0 / (1.0 + (-z).exp())
        })
    }

    fn lin(w: &Array2<f64>, p: &Array2<f64>, g: &Array2<f64>) -> f64 {
        ((w - p) * g).sum()
    }
    fn sq(a: &Array2<f64>) -> f64 {
        a.iter().map(|x| x * x).sum()
    }

    /// The objectives the closed forms minimise (for argmin checks).
    pub fn objective_prox(w: &Array2<f64>, w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64) -> f64 {
        lin(w, w_prev, g) + sq(&(w - w_prev)) / (2.0 * eta)
    }
    pub fn objective_decayed(w: &Array2<f64>, w_prev: &Array2<f64>, g: &Array2<f64>, alpha: f64, eta: f64) -> f64 {
        let p = w_prev * alpha;
        lin(w, &p, g) + sq(&(w - &p)) / (2.0 * eta)
    }
    pub fn objective_local_global(
        w: &Array2<f64>,
        w_prev: &Array2<f64>,
        g: &Array2<f64>,
        theta: f64,
        beta: f64,
    ) -> f64 {
        lin(w, w_prev, g) + sq(&(w - w_prev)) / (2.0 * theta) + sq(w) / beta
    }
    /// Eq. 22's objective: `⟨W − W_{t−1}, G⟩ + (1/η)·½‖W − W_{t−1}‖² + (1/(2β))‖W‖² + (1/α)‖W‖₁`.
    pub fn objective_elastic_net(
        w: &Array2<f64>,
        w_prev: &Array2<f64>,
        g: &Array2<f64>,
        eta: f64,
        beta: f64,
        alpha: f64,
    ) -> f64 {
        lin(w, w_prev, g)
            + sq(&(w - w_prev)) / (2.0 * eta)
            + sq(w) / (2.0 * beta)
            + w.iter().map(|x| x.abs()).sum::<f64>() / alpha
    }
    /// Eq. 23's FTRL objective at step t: `⟨W, −A_t/η⟩ + (1/(2η))‖W‖² + (1/α)‖W‖₁` (A_t = −η Σ G_i).
    pub fn objective_ftrl(w: &Array2<f64>, a: &Array2<f64>, eta: f64, alpha: f64) -> f64 {
        -(w * a).sum() / eta + sq(w) / (2.0 * eta) + w.iter().map(|x| x.abs()).sum::<f64>() / alpha
    }
    /// `−⟨W, A⟩ + ½‖W‖_{q*}²`, minimised by the mirror map.
    pub fn objective_lq(w: &Array2<f64>, a: &Array2<f64>, q: f64) -> f64 {
        let qs = q / (q - 1.0);
        -(w * a).sum() + 0.5 * lq_norm(w, qs).powi(2)
    }
    /// `½‖A‖_q²`, whose gradient is the mirror map.
    pub fn half_sq_lq(a: &Array2<f64>, q: f64) -> f64 {
        0.5 * lq_norm(a, q).powi(2)
    }
    /// Eq. 19 (corrected): `⟨W − W_{t−1}, G⟩ + (1/η) Σ W log(W/W_{t−1}) + (1/α) Σ W log W`.
    pub fn objective_kl(w: &Array2<f64>, w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64, alpha: f64) -> f64 {
        let kl: f64 = w.iter().zip(w_prev.iter()).map(|(a, b)| a * (a / b).ln()).sum();
        let ent: f64 = w.iter().map(|a| a * a.ln()).sum();
        lin(w, w_prev, g) + kl / eta + ent / alpha
    }
    /// Variant 5: `⟨W − W_{t−1}, G⟩ + (1/η) D_F(W, W_{t−1})` with the proper Bregman divergence.
    pub fn objective_bregman(w: &Array2<f64>, w_prev: &Array2<f64>, g: &Array2<f64>, eta: f64) -> f64 {
        let f = |x: f64| x * x.ln() + (1.0 - x) * (1.0 - x).ln();
        let fp = |x: f64| (x / (1.0 - x)).ln();
        let d: f64 = w.iter().zip(w_prev.iter()).map(|(&a, &b)| f(a) - f(b) - fp(b) * (a - b)).sum();
        lin(w, w_prev, g) + d / eta
    }
}

/// tch closed forms, batched over leading dimensions (`[.., d_v, d_k]`; gates broadcast as `[.., 1, 1]`).
pub mod torch {
    use super::LqForm;
    use tch::Tensor;

    pub fn soft_threshold(z: &Tensor, gamma: &Tensor) -> Tensor {
        z.sign() * (z.abs() - gamma).clamp_min(0.0)
    }

    /// Eq. 22 with per-element η (`[.., 1, 1]`) and constants β, α.
    pub fn elastic_net(w_prev: &Tensor, g: &Tensor, eta: &Tensor, beta: f64, alpha: f64) -> Tensor {
        let lambda = (eta + beta).reciprocal() * beta;
        let gamma = eta * beta / ((eta + beta) * alpha);
        soft_threshold(&(&lambda * w_prev - &lambda * eta * g), &gamma)
    }

    /// Yaad's / Titans' coupled local + global ℓ2 retention.
    pub fn local_global_l2(w_prev: &Tensor, g: &Tensor, theta: &Tensor, beta: &Tensor) -> Tensor {
        let a = beta / (beta + theta * 2.0);
        &a * w_prev - &a * theta * g
    }

    /// Eq. 24's `N_q`, the ℓ_q norm over the last two dimensions.
    pub fn lq_map(a: &Tensor, q: f64, form: LqForm) -> Tensor {
        let n =
            a.abs().pow_tensor_scalar(q).sum_dim_intlist(&[-2i64, -1][..], true, a.kind()).pow_tensor_scalar(1.0 / q);
        // ‖A‖ = 0 maps to W = 0 (as in the reference), not 0/0
        let denom = n.pow_tensor_scalar(q - 2.0);
        let denom = denom.where_self(&n.ne(0.0), &denom.ones_like());
        match form {
            LqForm::Mirror => a * a.abs().pow_tensor_scalar(q - 2.0) / denom,
            LqForm::Printed => a / denom,
        }
    }

    /// Eq. 21, softmax over all entries of the last two dimensions jointly, scaled by c.
    pub fn kl_global(w_prev: &Tensor, g: &Tensor, eta: &Tensor, alpha: &Tensor, c: f64) -> Tensor {
        let s = alpha.reciprocal() + eta.reciprocal();
        let lambda = alpha.reciprocal() / &s;
        let eta_p = s.reciprocal();
        let z: Tensor = (1.0 - lambda) * w_prev.log() - eta_p * g;
        let shape = z.size();
        let flat = z.flatten(-2, -1).softmax(-1, z.kind());
        flat.reshape(shape.as_slice()) * c
    }

    /// Eq. 18 batched over leading dimensions: ζ per matrix by bisection (fixed 200 halvings) in tensor ops.
    pub fn f_divergence(w_prev: &Tensor, g: &Tensor, eta: &Tensor, c: f64, f: super::FDiv) -> Tensor {
        let x = -(eta * g);
        let gfun = |z: &Tensor| -> Tensor {
            match f {
                super::FDiv::Kl => (z - 1.0).exp(),
                super::FDiv::Burg => (z.neg() + 1.0).reciprocal(),
            }
        };
        let mass = |zeta: &Tensor| (w_prev * gfun(&(&x - zeta))).sum_dim_intlist(&[-2i64, -1][..], true, x.kind());
        let xmax = x.amax(&[-2i64, -1][..], true);
        let (mut lo, mut hi) = match f {
            super::FDiv::Kl => (&xmax - 60.0, &xmax + 60.0),
            super::FDiv::Burg => (&xmax - 1.0, xmax.shallow_clone()),
        };
        // widen the bracket until the mass at hi is below c (and, for KL, above c at lo)
        for _ in 0..64 {
            let over = mass(&hi).gt(c);
            hi = (&hi + (&hi - &lo)).where_self(&over, &hi);
            if f == super::FDiv::Kl {
                let under = mass(&lo).lt(c);
                lo = (&lo - 60.0).where_self(&under, &lo);
            }
        }
        for _ in 0..200 {
            let mid = (&lo + &hi) * 0.5;
            let above = mass(&mid).gt(c);
            lo = mid.where_self(&above, &lo);
            hi = hi.where_self(&above, &mid);
        }
        let zeta = (&lo + &hi) * 0.5;
        w_prev * gfun(&(-zeta - eta * g))
    }

    /// Variant 5 sigmoid example.
    pub fn bregman_sigmoid(w_prev: &Tensor, g: &Tensor, eta: &Tensor) -> Tensor {
        (w_prev.logit(None::<f64>) - eta * g).sigmoid()
    }
}
