//! The optimizers of Nested Learning §4 (arXiv 2512.24695 v1) as f64 references: each one iterates on a
//! quadratic `L(W) = ½⟨(W − W*) H, W − W*⟩` (`H` symmetric positive definite, gradient `(W − W*) H`, written
//! out, not differentiated) with its memories as plain ndarray state, independently of the tch optimizers in
//! `crate::optim` that train the models. The checks (`crate::nl::checks`) run both from the same start and
//! compare every iterate.
//!
//! Convention (catalog §0): NL's `W_{i+1} = W_i + m_{i+1}`, `m_{i+1} = α m_i − η ∇L` is the project's
//! `S_t = β S_{t−1} − λ_t g_t`, `W_t = W_{t−1} + S_t` with `g_t = ∇L(W_{t−1})`.

/// f64 references, one step at a time.
pub mod reference {
    use crate::newton_schulz::{reference::orthogonalize, Kind as NsKind};
    use ndarray::{Array1, Array2, Zip};

    /// `L(W) = ½⟨(W − W*) H, W − W*⟩` on `W ∈ R^{r×c}`, `H ∈ R^{c×c}` symmetric positive definite.
    #[derive(Debug, Clone)]
    pub struct Quadratic {
        pub h: Array2<f64>,
        pub w_star: Array2<f64>,
    }

    impl Quadratic {
        /// `∇L(W) = (W − W*) H`
        pub fn grad(&self, w: &Array2<f64>) -> Array2<f64> {
            (w - &self.w_star).dot(&self.h)
        }
        pub fn loss(&self, w: &Array2<f64>) -> f64 {
            let d = w - &self.w_star;
            0.5 * (d.dot(&self.h) * &d).sum()
        }
    }

    /// A vector parameter's quadratic `½‖z − z*‖²` (gradient `z − z*`), for the parameters Muon and M3 leave to
    /// Adam.
    pub fn vector_grad(z: &Array1<f64>, z_star: &Array1<f64>) -> Array1<f64> {
        z - z_star
    }

    /// Decoupled weight decay `W ← (1 − λ·wd) W` (matrices only), as every tch optimizer applies it first.
    fn decay(w: &mut Array2<f64>, lr: f64, wd: f64) {
        if wd > 0.0 {
            w.mapv_inplace(|x| x * (1.0 - lr * wd));
        }
    }

    /// Eq. 1: `W_t = W_{t−1} − λ_t ∇L(W_{t−1})`, written as its closed form on the quadratic,
    /// `W_t − W* = (W_{t−1} − W*)(I − λ_t H)` (no weight decay: `W*` would move), every iterate.
    pub fn sgd_closed_form(q: &Quadratic, w0: &Array2<f64>, lrs: &[f64]) -> Vec<Array2<f64>> {
        let c = q.h.nrows();
        let mut prod = Array2::<f64>::eye(c);
        lrs.iter()
            .map(|&lr| {
                prod = prod.dot(&(Array2::<f64>::eye(c) - &q.h * lr));
                &q.w_star + (w0 - &q.w_star).dot(&prod)
            })
            .collect()
    }

    /// Eq. 33: `S_t = β S_{t−1} − λ_t g_t`, `W_t = W_{t−1} + S_t`.
    pub fn momentum(q: &Quadratic, w0: &Array2<f64>, beta: f64, lrs: &[f64], wd: f64) -> Vec<Array2<f64>> {
        let mut w = w0.clone();
        let mut s = Array2::<f64>::zeros(w0.raw_dim());
        let mut out = vec![];
        for &lr in lrs {
            let g = q.grad(&w);
            decay(&mut w, lr, wd);
            s = &s * beta - &g * lr;
            w += &s;
            out.push(w.clone());
        }
        out
    }

    /// Eq. 45's argument: momentum `S ← β S − λ g` fed one gradient per orthogonal task holds the last `n` of
    /// `total` tasks with the share `Σ_{i<n} βⁱ / Σ_{i<total} βⁱ = (1 − βⁿ)/(1 − β^total)`.
    pub fn momentum_task_share(beta: f64, n: usize, total: usize) -> f64 {
        (1.0 - beta.powi(n as i32)) / (1.0 - beta.powi(total as i32))
    }

    /// Eqs. 48–49 (consistent form, `P = I`): `S_t = S_{t−1}(β I − 2λ_t g_tᵀ g_t) − 2λ_t g_t`, `W_t = W_{t−1} + S_t`.
    pub fn delta_momentum(q: &Quadratic, w0: &Array2<f64>, beta: f64, lrs: &[f64], wd: f64) -> Vec<Array2<f64>> {
        let c = w0.ncols();
        let mut w = w0.clone();
        let mut s = Array2::<f64>::zeros(w0.raw_dim());
        let mut out = vec![];
        for &lr in lrs {
            let g = q.grad(&w);
            decay(&mut w, lr, wd);
            let erase = Array2::<f64>::eye(c) * beta - g.t().dot(&g) * (2.0 * lr);
            s = s.dot(&erase) - &g * (2.0 * lr);
            w += &s;
            out.push(w.clone());
        }
        out
    }

    /// Adam's step for a vector, β = (0.9, 0.95), ε = 1e-8, bias-corrected; `t` 1-based.
    fn adam(z: &mut Array1<f64>, m: &mut Array1<f64>, v: &mut Array1<f64>, g: &Array1<f64>, lr: f64, t: usize) {
        let (b1, b2) = (0.9f64, 0.95f64);
        *m = &*m * b1 + g * (1.0 - b1);
        *v = &*v * b2 + g.mapv(|x| x * x) * (1.0 - b2);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        Zip::from(z).and(&*m).and(&*v).for_each(|z, &m, &v| *z -= lr * (m / c1) / ((v / c2).sqrt() + 1e-8));
    }

    /// Muon's settings.
    #[derive(Debug, Clone, Copy)]
    pub struct Muon {
        pub beta: f64,
        pub ns: NsKind,
        pub ns_steps: usize,
        pub rms_match: bool,
    }

    /// Eq. 42 (and Eq. 52 with a linear value-less memory and `σ = NS_k`): `S_t = β S_{t−1} − g_t`,
    /// `W_t = W_{t−1} + λ_t s NS_k(S_t)`, `s = 0.2√max(r, c)` when `rms_match`; the vector `z` takes Adam's step.
    /// Returns the matrix and vector iterates.
    pub fn muon(
        q: &Quadratic,
        w0: &Array2<f64>,
        z: (&Array1<f64>, &Array1<f64>),
        cfg: Muon,
        lrs: &[f64],
        wd: f64,
    ) -> (Vec<Array2<f64>>, Vec<Array1<f64>>) {
        let (mut w, mut s) = (w0.clone(), Array2::<f64>::zeros(w0.raw_dim()));
        let (mut zv, z_star) = (z.0.clone(), z.1);
        let (mut am, mut av) = (Array1::zeros(zv.len()), Array1::zeros(zv.len()));
        let scale = if cfg.rms_match { 0.2 * (w0.nrows().max(w0.ncols()) as f64).sqrt() } else { 1.0 };
        let (mut ws, mut zs) = (vec![], vec![]);
        for (k, &lr) in lrs.iter().enumerate() {
            let g = q.grad(&w);
            decay(&mut w, lr, wd);
            s = &s * cfg.beta - &g;
            w += &(orthogonalize(&s, cfg.ns, cfg.ns_steps) * (lr * scale));
            let gz = vector_grad(&zv, z_star);
            adam(&mut zv, &mut am, &mut av, &gz, lr, k + 1);
            ws.push(w.clone());
            zs.push(zv.clone());
        }
        (ws, zs)
    }

    /// M3's settings (Algorithm 1); `ema` selects the decayed moments, otherwise the printed sums.
    #[derive(Debug, Clone, Copy)]
    pub struct M3 {
        pub beta1: f64,
        pub beta2: f64,
        pub beta3: f64,
        pub alpha: f64,
        pub eps: f64,
        pub frequency: usize,
        pub ema: bool,
        pub ns: NsKind,
        pub ns_steps: usize,
    }

    /// Algorithm 1 written as its two loops: the slow loop over blocks `k = 0, 1, …` of `f` steps updates `M2`
    /// from the previous block's gradients and orthogonalizes it once; the fast loop inside the block updates
    /// `M1`, `V` and the weights. The vector `z` takes Adam's step. Returns the matrix and vector iterates.
    pub fn m3(
        q: &Quadratic,
        w0: &Array2<f64>,
        z: (&Array1<f64>, &Array1<f64>),
        cfg: M3,
        lrs: &[f64],
        wd: f64,
    ) -> (Vec<Array2<f64>>, Vec<Array1<f64>>) {
        let zeros = || Array2::<f64>::zeros(w0.raw_dim());
        let (mut w, mut m1, mut m2, mut v) = (w0.clone(), zeros(), zeros(), zeros());
        let mut o2 = zeros();
        let mut previous_block: Vec<Array2<f64>> = vec![];
        let (mut zv, z_star) = (z.0.clone(), z.1);
        let (mut am, mut av) = (Array1::zeros(zv.len()), Array1::zeros(zv.len()));
        let (mut ws, mut zs) = (vec![], vec![]);
        let mut t = 0usize;
        let blocks = lrs.len().div_ceil(cfg.frequency);
        for k in 0..blocks {
            // slow memory: M2 ← M2 + β3 Σ_{previous block} g  (EMA: β3 M2 + Σ g);  O2 = NS(M2); block k = 0: O2 = 0
            if k > 0 {
                let sum = previous_block.iter().fold(zeros(), |acc, g| acc + g);
                m2 = if cfg.ema { &m2 * cfg.beta3 + &sum } else { &m2 + &(sum * cfg.beta3) };
                o2 = orthogonalize(&m2, cfg.ns, cfg.ns_steps);
            }
            previous_block.clear();
            for _ in 0..cfg.frequency {
                if t == lrs.len() {
                    break;
                }
                let lr = lrs[t];
                t += 1;
                let g = q.grad(&w);
                decay(&mut w, lr, wd);
                let g2 = g.mapv(|x| x * x);
                if cfg.ema {
                    m1 = &m1 * cfg.beta1 + &g;
                    v = &v * cfg.beta2 + &g2 * (1.0 - cfg.beta2);
                } else {
                    m1 = &m1 + &(&g * cfg.beta1);
                    v = &v + &(&g2 * cfg.beta2);
                }
                let o1 = orthogonalize(&m1, cfg.ns, cfg.ns_steps);
                // Θ_t = Θ_{t−1} − η (O1_t + α O2) / (√V_t + ε)
                let num = &o1 + &(&o2 * cfg.alpha);
                Zip::from(&mut w).and(&num).and(&v).for_each(|w, &n, &v| *w -= lr * n / (v.sqrt() + cfg.eps));
                previous_block.push(g);
                let gz = vector_grad(&zv, z_star);
                adam(&mut zv, &mut am, &mut av, &gz, lr, t);
                ws.push(w.clone());
                zs.push(zv.clone());
            }
        }
        (ws, zs)
    }

    /// DMGD's memory `ψ = (B, W₁, W₂)`: `m_ψ(u) = B_j + W₂ tanh(W₁ u)` on each row `u = u_j`.
    #[derive(Debug, Clone)]
    pub struct DeepMomentum {
        pub b: Array2<f64>,
        pub w1: Array2<f64>,
        pub w2: Array2<f64>,
    }

    impl DeepMomentum {
        /// `m_ψ(U)` for the rows of `U`: `B + tanh(U W₁ᵀ) W₂ᵀ`.
        pub fn output(&self, u: &Array2<f64>) -> Array2<f64> {
            &self.b + &u.dot(&self.w1.t()).mapv(f64::tanh).dot(&self.w2.t())
        }

        /// `∇_ψ L⁽²⁾` of `L⁽²⁾(ψ; U) = Σ_j ⟨m_ψ(u_j), u_j⟩`, by hand: with `Z = U W₁ᵀ`, `A = tanh Z`,
        /// `∂/∂B = U`, `∂/∂W₂ = Uᵀ A`, `∂/∂W₁ = ((U W₂) ⊙ (1 − A²))ᵀ U`.
        pub fn inner_grad(&self, u: &Array2<f64>) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
            let a = u.dot(&self.w1.t()).mapv(f64::tanh);
            let dz = u.dot(&self.w2) * a.mapv(|x| 1.0 - x * x);
            (u.clone(), dz.t().dot(u), u.t().dot(&a))
        }
    }

    /// Eq. 50: `ψ_t = β ψ_{t−1} − η ∇_ψ L⁽²⁾(ψ_{t−1}; g_t)`, `W_t = W_{t−1} + λ_t m_{ψ_t}(g_t)`.
    pub fn dmgd(
        q: &Quadratic,
        w0: &Array2<f64>,
        psi0: &DeepMomentum,
        beta: f64,
        inner_lr: f64,
        lrs: &[f64],
        wd: f64,
    ) -> Vec<Array2<f64>> {
        let (mut w, mut psi) = (w0.clone(), psi0.clone());
        let mut out = vec![];
        for &lr in lrs {
            let g = q.grad(&w);
            decay(&mut w, lr, wd);
            let (gb, gw1, gw2) = psi.inner_grad(&g);
            psi = DeepMomentum {
                b: &psi.b * beta - &gb * inner_lr,
                w1: &psi.w1 * beta - &gw1 * inner_lr,
                w2: &psi.w2 * beta - &gw2 * inner_lr,
            };
            w += &(psi.output(&g) * lr);
            out.push(w.clone());
        }
        out
    }
}

/// The quadratic's gradient on the tch side, for the tch loops of `super::preconditioned` and `super::appendix_b`.
pub mod torch {
    use tch::Tensor;

    /// `∇L(W)` of `L(W) = ½⟨(W − W*)H, W − W*⟩` at `w`, by autograd (works under `no_grad` too).
    pub fn quadratic_grad(w: &Tensor, h: &Tensor, w_star: &Tensor) -> Tensor {
        let leaf = w.detach().set_requires_grad(true);
        tch::with_grad(|| {
            let d = &leaf - w_star;
            let loss = (d.matmul(h) * &d).sum(d.kind()) * 0.5;
            Tensor::run_backward(&[loss], &[&leaf], false, false).pop().expect("one gradient")
        })
    }
}
