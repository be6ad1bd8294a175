//! Nested Learning's inner problems (arXiv 2512.24695 v1, §3.1, §4.1–4.2, §4.5): the optimization steps of §4
//! written as associative memories that solve an inner objective, each as an f64 reference and a tch version
//! computed another way (numeric solve or autograd against a closed form).
//!
//! * momentum as a memory of past gradients (Eqs. 10–13, 33–34): `S_t = argmin_S ⟨S, g_t⟩ + (1/2λ)‖S − β S_{t−1}‖²`
//!   (the decay `β` is the memory's retention: its proximal centre is the decayed state);
//! * backpropagation as a memory of local surprise (Eqs. 8, 29): `∇_{W_ℓ} L = δ_ℓ x̂_{ℓ−1}ᵀ`;
//! * Newton–Schulz as gradient descent on an orthogonality objective (Eqs. 43–44);
//! * delta gradient descent, the exact proximal solution of an l2 inner objective (Eqs. 56–57).

/// f64 references.
pub mod reference {
    use ndarray::{Array1, Array2};
    use ndarray_linalg::Solve;

    /// Eqs. 12–13 / 33–34: the momentum memory's new state as the minimiser of its inner objective
    /// `⟨S, g⟩ + (1/2λ)‖S − β S_prev‖²`, found by solving the stationarity system `(1/λ) I vec(S) = (β/λ) vec(S_prev) − vec(g)`
    /// with a linear solver (the Hessian of the inner objective is `I/λ`).
    pub fn momentum_memory_argmin(s_prev: &Array2<f64>, g: &Array2<f64>, beta: f64, lr: f64) -> Array2<f64> {
        let n = g.len();
        let hess = Array2::<f64>::eye(n) / lr;
        let rhs: Array1<f64> = s_prev.iter().zip(g.iter()).map(|(s, g)| beta / lr * s - g).collect();
        let x = hess.solve_into(rhs).expect("the inner objective is strongly convex");
        Array2::from_shape_vec(g.raw_dim(), x.to_vec()).unwrap()
    }

    /// A two-layer perceptron `ŷ = W₂ φ(W₁ x + b₁) + b₂`, `φ = tanh`, with squared error `L = ‖ŷ − y‖²`.
    pub struct TwoLayer {
        pub w1: Array2<f64>,
        pub b1: Array1<f64>,
        pub w2: Array2<f64>,
        pub b2: Array1<f64>,
    }

    /// Eq. 29 (and Eq. 8 for each layer): backpropagation written as local surprise signals,
    /// `δ₂ = ∂L/∂ŷ = 2(ŷ − y)`, `δ₁ = J_φ(z₁)ᵀ W₂ᵀ δ₂`, `∂L/∂W_ℓ = δ_ℓ x̂_{ℓ−1}ᵀ` (outer products), `∂L/∂b_ℓ = δ_ℓ`.
    /// Returns `(∂W₁, ∂b₁, ∂W₂, ∂b₂)`.
    pub fn backprop(
        n: &TwoLayer,
        x: &Array1<f64>,
        y: &Array1<f64>,
    ) -> (Array2<f64>, Array1<f64>, Array2<f64>, Array1<f64>) {
        let z1 = n.w1.dot(x) + &n.b1;
        let h = z1.mapv(f64::tanh);
        let yhat = n.w2.dot(&h) + &n.b2;
        let d2 = (&yhat - y) * 2.0;
        let d1 = n.w2.t().dot(&d2) * h.mapv(|a| 1.0 - a * a);
        let outer = |d: &Array1<f64>, x: &Array1<f64>| Array2::from_shape_fn((d.len(), x.len()), |(i, j)| d[i] * x[j]);
        (outer(&d1, x), d1.clone(), outer(&d2, &h), d2)
    }

    /// Eq. 44, one gradient step of the inner orthogonalization memory from `O`:
    /// `O − ζ((O − g) + 2 O(OᵀO − I))`, the gradient of `½‖O − g‖² + ½‖OᵀO − I‖²` written out.
    pub fn orthogonalization_step(o: &Array2<f64>, g: &Array2<f64>, zeta: f64) -> Array2<f64> {
        let eye = Array2::<f64>::eye(o.ncols());
        let grad = (o - g) + o.dot(&(o.t().dot(o) - eye)) * 2.0;
        o - &(grad * zeta)
    }

    /// Pure cubic Newton–Schulz as gradient descent: `k` steps of size `½` on `¼‖OᵀO − I‖²` (gradient
    /// `O(OᵀO − I)`) from `O₀ = g`.
    pub fn orthogonality_descent(g: &Array2<f64>, steps: usize) -> Array2<f64> {
        let eye = Array2::<f64>::eye(g.ncols());
        let mut o = g.clone();
        for _ in 0..steps {
            let grad = o.dot(&(o.t().dot(&o) - &eye));
            o = &o - &(grad * 0.5);
        }
        o
    }

    /// Eq. 57 in its general form (Sherman–Morrison, any `‖x‖`): the minimiser of
    /// `½‖W x − u‖² + (1/2η)‖W − W_t‖²` is `W_t(I − η̃ x xᵀ) + η̃ u xᵀ`, `η̃ = η / (1 + η‖x‖²)`; with `‖x‖ = 1`
    /// this is the printed `η' = η/(1 + η)`, and with `u = −∇_y L` it is the printed `W_t(I − η' x xᵀ) − η' ∇_y L ⊗ x`.
    pub fn dgd_step(w: &Array2<f64>, x: &Array1<f64>, u: &Array1<f64>, eta: f64) -> Array2<f64> {
        let eta_t = eta / (1.0 + eta * x.dot(x));
        let xx = Array2::from_shape_fn((x.len(), x.len()), |(i, j)| x[i] * x[j]);
        let ux = Array2::from_shape_fn((u.len(), x.len()), |(i, j)| u[i] * x[j]);
        w.dot(&(Array2::<f64>::eye(x.len()) - xx * eta_t)) + ux * eta_t
    }
}

/// tch versions.
pub mod torch {
    use tch::Tensor;

    /// Eq. 29 by autograd: the gradients of `‖W₂ tanh(W₁ x + b₁) + b₂ − y‖²` (batched over the rows of `x`,
    /// summed), in the order `(W₁, b₁, W₂, b₂)`.
    pub fn backprop(w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor, x: &Tensor, y: &Tensor) -> Vec<Tensor> {
        let leaves: Vec<Tensor> = [w1, b1, w2, b2].iter().map(|t| t.detach().set_requires_grad(true)).collect();
        let h = (x.matmul(&leaves[0].tr()) + &leaves[1]).tanh();
        let yhat = h.matmul(&leaves[2].tr()) + &leaves[3];
        let loss = (yhat - y).square().sum(x.kind());
        Tensor::run_backward(&[loss], &leaves.iter().collect::<Vec<_>>(), false, false)
    }

    /// Eq. 44 by autograd: one step of size `ζ` on `½‖O − g‖² + ½‖OᵀO − I‖²` from `O`.
    pub fn orthogonalization_step(o: &Tensor, g: &Tensor, zeta: f64) -> Tensor {
        let leaf = o.detach().set_requires_grad(true);
        let n = o.size()[1];
        let eye = Tensor::eye(n, (o.kind(), o.device()));
        let obj =
            (&leaf - g).square().sum(o.kind()) * 0.5 + (leaf.tr().matmul(&leaf) - eye).square().sum(o.kind()) * 0.5;
        let grad = Tensor::run_backward(&[obj], &[&leaf], false, false).pop().unwrap();
        o - grad * zeta
    }

    /// Eq. 56 solved numerically: the stationarity condition `W(x xᵀ + η⁻¹ I) = u xᵀ + η⁻¹ W_t` by a linear solve
    /// (batched over a leading dimension: `w [B, r, c]`, `x [B, c]`, `u [B, r]`).
    pub fn dgd_solve(w: &Tensor, x: &Tensor, u: &Tensor, eta: f64) -> Tensor {
        let c = x.size()[1];
        let eye = Tensor::eye(c, (x.kind(), x.device()));
        let a = x.unsqueeze(2).matmul(&x.unsqueeze(1)) + eye / eta; // [B, c, c], symmetric
        let rhs = u.unsqueeze(2).matmul(&x.unsqueeze(1)) + w / eta; // [B, r, c]
                                                                    // W A = R  ⇔  A Wᵀ = Rᵀ (A symmetric)
        Tensor::linalg_solve(&a, &rhs.transpose(1, 2), true).transpose(1, 2)
    }
}
