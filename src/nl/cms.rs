//! The Continuum Memory System (Nested Learning v1, §7.1, Eqs. 70–71): a chain of MLP blocks
//! `y_t = MLP^{(f_k)}(… MLP^{(f_1)}(x_t))` (Eq. 70) in which level `ℓ` changes only every `C_ℓ` tokens, by the
//! sum of its gradients over the chunk (Eq. 71).
//!
//! Project form (catalog §5, Eq. 71 ⚠): level `ℓ` has period `C_ℓ` and learning rate `η_ℓ`; at token `i`
//! (1-based), after the token's output is computed with the current parameters (the update needs that token's
//! loss), every level accumulates `η_ℓ ∇_{θ_ℓ} L_i` at the current parameters, and a level with `i mod C_ℓ = 0`
//! applies its accumulated sum `θ_ℓ ← θ_ℓ − Σ_{t=i−C_ℓ+1}^{i} η_ℓ ∇_{θ_ℓ} L_t` (the printed sum has `C_ℓ + 1`
//! terms, overlapping the previous chunk by one token; the consistent range has `C_ℓ`). Inside a chunk `θ_ℓ` is
//! frozen, so all its gradients are taken at the same value (other, faster levels may move in between).
//! Blocks are residual MLPs `x + W₂ tanh(W₁ x)` (the paper leaves widths, activation and norms open); the task
//! loss `L_t = ‖y_t − z_t‖²` regresses a target (the LM uses the next-token loss). All periods 1 is online SGD
//! on the stack; periods ≥ T give a static MLP stack.

/// One level's parameters: `W₁ ∈ R^{h×d}`, `W₂ ∈ R^{d×h}`.
pub mod reference {
    use ndarray::{Array1, Array2};

    #[derive(Debug, Clone)]
    pub struct Level {
        pub w1: Array2<f64>,
        pub w2: Array2<f64>,
        /// update period `C_ℓ` in tokens
        pub period: usize,
        /// learning rate `η_ℓ`
        pub lr: f64,
    }

    /// The outputs `y_t`, the final levels, and for each token which levels were updated at it.
    pub struct Run {
        pub y: Array2<f64>,
        pub levels: Vec<Level>,
        pub updated: Vec<Vec<bool>>,
    }

    /// Eq. 70 forward and Eq. 71 updates over a sequence `x [T, d]` with targets `z [T, d]`, token by token,
    /// gradients by hand: for block `a ↦ a + W₂ tanh(W₁ a)`, with upstream `ḡ = ∂L/∂out`:
    /// `∂L/∂W₂ = ḡ hᵀ`, `δ = (W₂ᵀ ḡ) ⊙ (1 − h²)`, `∂L/∂W₁ = δ aᵀ`, `∂L/∂a = ḡ + W₁ᵀ δ`.
    pub fn run(levels: &[Level], x: &Array2<f64>, z: &Array2<f64>) -> Run {
        let mut levels = levels.to_vec();
        let (t_len, d) = x.dim();
        let mut acc: Vec<(Array2<f64>, Array2<f64>)> =
            levels.iter().map(|l| (Array2::zeros(l.w1.raw_dim()), Array2::zeros(l.w2.raw_dim()))).collect();
        let mut y = Array2::<f64>::zeros((t_len, d));
        let mut updated = vec![];
        for t in 0..t_len {
            // forward, keeping each block's input and hidden activation
            let mut a = x.row(t).to_owned();
            let mut inputs: Vec<Array1<f64>> = vec![];
            let mut hidden: Vec<Array1<f64>> = vec![];
            for l in &levels {
                let h = l.w1.dot(&a).mapv(f64::tanh);
                let out = &a + &l.w2.dot(&h);
                inputs.push(a);
                hidden.push(h);
                a = out;
            }
            y.row_mut(t).assign(&a);
            // L_t = ‖y_t − z_t‖², backward through the chain
            let mut g = (&a - &z.row(t)) * 2.0;
            for (j, l) in levels.iter().enumerate().rev() {
                let (ai, h) = (&inputs[j], &hidden[j]);
                let outer =
                    |u: &Array1<f64>, v: &Array1<f64>| Array2::from_shape_fn((u.len(), v.len()), |(p, q)| u[p] * v[q]);
                let gw2 = outer(&g, h);
                let delta = l.w2.t().dot(&g) * h.mapv(|v| 1.0 - v * v);
                let gw1 = outer(&delta, ai);
                acc[j].0 = &acc[j].0 + &(gw1 * l.lr);
                acc[j].1 = &acc[j].1 + &(gw2 * l.lr);
                g = &g + &l.w1.t().dot(&delta);
            }
            // Eq. 71: level ℓ applies its chunk's sum when (t + 1) mod C_ℓ = 0
            let mut flags = vec![];
            for (j, l) in levels.iter_mut().enumerate() {
                let due = (t + 1).is_multiple_of(l.period);
                if due {
                    l.w1 = &l.w1 - &acc[j].0;
                    l.w2 = &l.w2 - &acc[j].1;
                    acc[j].0.fill(0.0);
                    acc[j].1.fill(0.0);
                }
                flags.push(due);
            }
            updated.push(flags);
        }
        Run { y, levels, updated }
    }
}

/// tch, batched over `B` independent sequences (each with its own copy of the levels, `[B, h, d]`), gradients by
/// autograd.
pub mod torch {
    use tch::Tensor;

    pub struct Level {
        pub w1: Tensor,
        pub w2: Tensor,
        pub period: usize,
        pub lr: f64,
    }

    /// Outputs `y [B, T, d]`, final levels, and the tokens at which each level's parameters changed (observed by
    /// comparing the parameters before and after each token, not from the schedule).
    pub fn run(levels: Vec<Level>, x: &Tensor, z: &Tensor) -> (Tensor, Vec<Level>, Vec<Vec<bool>>) {
        let mut levels = levels;
        let t_len = x.size()[1];
        let mut acc: Vec<(Tensor, Tensor)> = levels.iter().map(|l| (l.w1.zeros_like(), l.w2.zeros_like())).collect();
        let mut ys = vec![];
        let mut changed = vec![];
        for t in 0..t_len {
            let leaves: Vec<(Tensor, Tensor)> = levels
                .iter()
                .map(|l| (l.w1.detach().set_requires_grad(true), l.w2.detach().set_requires_grad(true)))
                .collect();
            let (y, grads) = tch::with_grad(|| {
                let mut a = x.select(1, t).unsqueeze(2); // [B, d, 1]
                for (w1, w2) in &leaves {
                    a = &a + w2.matmul(&w1.matmul(&a).tanh());
                }
                let y = a.squeeze_dim(2);
                let loss = (&y - z.select(1, t)).square().sum(y.kind());
                let inputs: Vec<&Tensor> = leaves.iter().flat_map(|(a, b)| [a, b]).collect();
                (y.detach(), Tensor::run_backward(&[loss], &inputs, false, false))
            });
            ys.push(y);
            let mut flags = vec![];
            for (j, l) in levels.iter_mut().enumerate() {
                acc[j].0 = &acc[j].0 + &grads[2 * j] * l.lr;
                acc[j].1 = &acc[j].1 + &grads[2 * j + 1] * l.lr;
                let before = l.w1.copy();
                if (t as usize + 1).is_multiple_of(l.period) {
                    l.w1 = &l.w1 - &acc[j].0;
                    l.w2 = &l.w2 - &acc[j].1;
                    acc[j] = (acc[j].0.zeros_like(), acc[j].1.zeros_like());
                }
                flags.push(!l.w1.equal(&before));
            }
            changed.push(flags);
        }
        (Tensor::stack(&ys, 1), levels, changed)
    }
}
