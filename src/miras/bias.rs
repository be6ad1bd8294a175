//! MIRAS (arXiv 2504.13173 v1) §4–§5.1: attentional biases of a linear memory and their gradients.
//!
//! With `e = W k − v` (project convention `W ∈ R^{d_v×d_k}`), every bias here has `∇_W ℓ = ψ(e) kᵀ`:
//! * dot product (§4): $$\tilde\ell = -2c\langle W k, v\rangle,\quad \nabla = -2c\,v k^\top$$
//! * ℓ2 (§4–5): $$\ell = c\lVert e\rVert_2^2,\quad \nabla = 2c\,e k^\top$$
//! * ℓ_p (Eqs. 10–11, 25 corrected): $$\ell = \lVert e\rVert_p^p,\quad \nabla = p\,(\mathrm{sign}(e)\odot|e|^{p-1})k^\top$$
//! * ℓ1 (Eq. 12): $$\nabla = \mathrm{sign}(e) k^\top$$
//! * smoothed ℓ_p (Remark 5, §5.4): $$\psi = p\,\tanh(\kappa e)\odot(e^2 + \epsilon)^{(p-1)/2}$$ — a surrogate
//!   gradient with no loss behind it: the reference's `loss` is NaN for it, and tch's loss is `⟨stop_grad(ψ), e⟩`,
//!   whose autograd gradient is ψ kᵀ by construction.
//! * Huber per coordinate (Eqs. 13–14): $$\mathcal H_\delta(a) = \begin{cases}\tfrac12 a^2 & |a|\le\delta\\ \delta(|a| - \tfrac12\delta) & |a|>\delta\end{cases},\quad \psi_j = \begin{cases} e_j & |e_j|\le\delta\\ \delta\,\mathrm{sign}(e_j)\end{cases}$$
//! * Huber of the norm (Eq. 15): $$\psi = e \text{ if } \lVert e\rVert\le\delta,\ \text{else } \delta\,e/\lVert e\rVert$$
//! * ℓ2/ℓ1 switch (Eq. 16, Yaad): $$\psi = e \text{ if } \lVert e\rVert_2\le\delta,\ \text{else } \delta\,\mathrm{sign}(e)$$
//!   (the gradient of `½‖e‖²` resp. `δ‖e‖₁`; not continuous at the switch, ⚠ the paper calls it smooth)
//! * value shift (Eq. 17): $$\ell = \tfrac12\lVert e\rVert^2 + \Delta\lVert e\rVert + \tfrac12\Delta^2,\quad \psi = e + \Delta\,e/(\lVert e\rVert + \varepsilon)$$
//!   with ε = [`VALUE_SHIFT_EPS`] (the catalog's note: `e/‖e‖` is undefined at `e = 0`; with ε, ψ(0) = 0 instead
//!   of NaN, and for ‖e‖ ≫ ε it is the gradient to within a relative ε/‖e‖). tch's loss keeps the exact value and
//!   takes this ψ as its gradient (a straight-through form, see [`torch::loss_at`]).
//!
//! [`reference`] computes ψ coordinate by coordinate from the hand derivatives; [`torch`] writes each loss in
//! tensor ops (its gradient by autograd) and, separately, ψ in closed form for the batched recurrences.

pub use super::framework::Bias;

/// ε of the value-shift step `ψ = e + Δ e/(‖e‖ + ε)`, both implementations: small enough to leave the
/// gradient unchanged at every error norm the checks draw (relative change ε/‖e‖), large enough to be a
/// normal f32 number.
pub const VALUE_SHIFT_EPS: f64 = 1e-12;

/// The f64 reference: loops over coordinates, hand-derived derivatives.
pub mod reference {
    use super::Bias;
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    fn norm2(e: &Array1<f64>) -> f64 {
        e.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    fn sign(x: f64) -> f64 {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    }

    /// The bias value ℓ(W; k, v) with threshold δ (ignored by biases without one).
    pub fn loss(bias: Bias, w: ArrayView2<f64>, k: ArrayView1<f64>, v: ArrayView1<f64>, delta: f64) -> f64 {
        loss_at(bias, w.dot(&k).view(), v, delta)
    }

    /// The bias value at a memory output `y`.
    pub fn loss_at(bias: Bias, y: ArrayView1<f64>, v: ArrayView1<f64>, delta: f64) -> f64 {
        let e = &y - &v;
        let n = norm2(&e);
        match bias {
            Bias::DotProduct { scale } => -2.0 * scale * y.dot(&v),
            Bias::L2 { scale } => scale * n * n,
            Bias::Lp { p } => e.iter().map(|x| x.abs().powf(p)).sum(),
            Bias::L1 => e.iter().map(|x| x.abs()).sum(),
            Bias::LpSmooth { .. } => f64::NAN,
            Bias::Huber => {
                e.iter().map(|&a| if a.abs() <= delta { 0.5 * a * a } else { delta * (a.abs() - 0.5 * delta) }).sum()
            }
            Bias::HuberNorm => {
                if n <= delta {
                    0.5 * n * n
                } else {
                    delta * (n - 0.5 * delta)
                }
            }
            Bias::L2L1Switch => {
                if n <= delta {
                    0.5 * n * n
                } else {
                    delta * e.iter().map(|x| x.abs()).sum::<f64>()
                }
            }
            Bias::ValueShift => 0.5 * n * n + delta * n + 0.5 * delta * delta,
        }
    }

    /// ψ(e) = ∂ℓ/∂(W k), coordinate by coordinate (the dot product's is `−2c v`).
    pub fn output_grad(
        bias: Bias,
        w: ArrayView2<f64>,
        k: ArrayView1<f64>,
        v: ArrayView1<f64>,
        delta: f64,
    ) -> Array1<f64> {
        output_grad_at(bias, w.dot(&k).view(), v, delta)
    }

    /// ψ = ∂ℓ/∂y for a memory output `y` (any memory architecture), coordinate by coordinate.
    pub fn output_grad_at(bias: Bias, y: ArrayView1<f64>, v: ArrayView1<f64>, delta: f64) -> Array1<f64> {
        let e = &y - &v;
        let n = norm2(&e);
        let mut psi = Array1::zeros(e.len());
        for j in 0..e.len() {
            let a = e[j];
            psi[j] = match bias {
                // d/dy(−2c⟨y, v⟩) = −2c v
                Bias::DotProduct { scale } => -2.0 * scale * v[j],
                // d/de c Σ e² = 2c e
                Bias::L2 { scale } => 2.0 * scale * a,
                // d/da |a|^p = p sign(a) |a|^{p−1}
                Bias::Lp { p } => p * sign(a) * a.abs().powf(p - 1.0),
                Bias::L1 => sign(a),
                Bias::LpSmooth { p, kappa, eps } => p * (kappa * a).tanh() * (a * a + eps).powf(0.5 * (p - 1.0)),
                // H'(a) = a inside, δ sign(a) outside
                Bias::Huber => {
                    if a.abs() <= delta {
                        a
                    } else {
                        delta * sign(a)
                    }
                }
                // d/de H(‖e‖) = H'(‖e‖) e/‖e‖
                Bias::HuberNorm => {
                    if n <= delta {
                        a
                    } else {
                        delta * a / n
                    }
                }
                Bias::L2L1Switch => {
                    if n <= delta {
                        a
                    } else {
                        delta * sign(a)
                    }
                }
                // d/de (½‖e‖² + Δ‖e‖) = e + Δ e/‖e‖, regularised at e = 0
                Bias::ValueShift => a + delta * a / (n + super::VALUE_SHIFT_EPS),
            };
        }
        psi
    }

    /// The hand-derived gradient `∇_W ℓ = ψ(e) kᵀ`, as an explicit double loop.
    pub fn grad(bias: Bias, w: ArrayView2<f64>, k: ArrayView1<f64>, v: ArrayView1<f64>, delta: f64) -> Array2<f64> {
        let psi = output_grad(bias, w, k, v, delta);
        Array2::from_shape_fn((psi.len(), k.len()), |(i, j)| psi[i] * k[j])
    }
}

/// tch, batched over leading dimensions: `w [.., d_v, d_k]`, `k [.., d_k]`, `v [.., d_v]`, `delta [..]`.
pub mod torch {
    use super::Bias;
    use tch::Tensor;

    fn read(w: &Tensor, k: &Tensor) -> Tensor {
        w.matmul(&k.unsqueeze(-1)).squeeze_dim(-1)
    }

    fn sum_last(x: &Tensor) -> Tensor {
        x.sum_dim_intlist(-1, false, x.kind())
    }

    /// The bias value per batch element, written in tensor ops (its gradient is taken by autograd).
    pub fn loss(bias: Bias, w: &Tensor, k: &Tensor, v: &Tensor, delta: &Tensor) -> Tensor {
        loss_at(bias, &read(w, k), v, delta)
    }

    /// The bias value at a memory output `y [.., d_v]` (any memory architecture).
    pub fn loss_at(bias: Bias, y: &Tensor, v: &Tensor, delta: &Tensor) -> Tensor {
        let e = y - v;
        let sq = sum_last(&e.square());
        let n = sq.sqrt();
        match bias {
            Bias::DotProduct { scale } => sum_last(&(y * v)) * (-2.0 * scale),
            Bias::L2 { scale } => sq * scale,
            Bias::Lp { p } => sum_last(&e.abs().pow_tensor_scalar(p)),
            Bias::L1 => sum_last(&e.abs()),
            // a surrogate: ⟨stop_grad(ψ), e⟩ has gradient ψ with respect to e
            Bias::LpSmooth { p, kappa, eps } => {
                let psi = (&e * kappa).tanh() * (e.square() + eps).pow_tensor_scalar(0.5 * (p - 1.0)) * p;
                sum_last(&(psi.detach() * &e))
            }
            Bias::Huber => {
                let d = delta.unsqueeze(-1);
                let a = e.abs();
                let inside = e.square() * 0.5;
                let outside = &d * (&a - &d * 0.5);
                sum_last(&inside.where_self(&a.le_tensor(&d), &outside))
            }
            Bias::HuberNorm => {
                let inside = &sq * 0.5;
                let outside = delta * (&n - delta * 0.5);
                inside.where_self(&n.le_tensor(delta), &outside)
            }
            Bias::L2L1Switch => {
                let inside = &sq * 0.5;
                let outside = delta * sum_last(&e.abs());
                inside.where_self(&n.le_tensor(delta), &outside)
            }
            // the exact value, with the gradient of ‖e‖ taken as the regularised e/(‖e‖ + ε): the term
            // ⟨u, e⟩ − stop_grad(⟨u, e⟩) is 0 in value and has gradient u = stop_grad(e/(‖e‖ + ε))
            Bias::ValueShift => {
                let u = (&e / (n.unsqueeze(-1) + super::VALUE_SHIFT_EPS)).detach();
                let ue = sum_last(&(&u * &e));
                let norm = n.detach() + &ue - ue.detach();
                &sq * 0.5 + delta * norm + delta.square() * 0.5
            }
        }
    }

    /// `∇_W ℓ` by autograd of [`loss`].
    pub fn grad_autograd(bias: Bias, w: &Tensor, k: &Tensor, v: &Tensor, delta: &Tensor) -> Tensor {
        let w = w.detach().set_requires_grad(true);
        let l = loss(bias, &w, k, v, delta).sum(w.kind());
        Tensor::run_backward(&[l], &[&w], false, false).pop().unwrap()
    }

    /// ψ(e) in closed form (tensor ops), `[.., d_v]`.
    pub fn output_grad(bias: Bias, w: &Tensor, k: &Tensor, v: &Tensor, delta: &Tensor) -> Tensor {
        let e = read(w, k) - v;
        let n = || sum_last(&e.square()).sqrt().unsqueeze(-1);
        let d = delta.unsqueeze(-1);
        match bias {
            Bias::DotProduct { scale } => v * (-2.0 * scale),
            Bias::L2 { scale } => &e * (2.0 * scale),
            Bias::Lp { p } => e.sign() * e.abs().pow_tensor_scalar(p - 1.0) * p,
            Bias::L1 => e.sign(),
            Bias::LpSmooth { p, kappa, eps } => {
                (&e * kappa).tanh() * (e.square() + eps).pow_tensor_scalar(0.5 * (p - 1.0)) * p
            }
            Bias::Huber => e.where_self(&e.abs().le_tensor(&d), &(&d * e.sign())),
            Bias::HuberNorm => {
                let n = n();
                e.where_self(&n.le_tensor(&d), &(&d * &e / &n))
            }
            Bias::L2L1Switch => e.where_self(&n().le_tensor(&d), &(&d * e.sign())),
            Bias::ValueShift => &e + &d * &e / (n() + super::VALUE_SHIFT_EPS),
        }
    }

    /// `∇_W ℓ = ψ kᵀ` in closed form.
    pub fn grad(bias: Bias, w: &Tensor, k: &Tensor, v: &Tensor, delta: &Tensor) -> Tensor {
        output_grad(bias, w, k, v, delta).unsqueeze(-1).matmul(&k.unsqueeze(-2))
    }
}
