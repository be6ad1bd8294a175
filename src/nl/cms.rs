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
//! Blocks are residual MLPs `x + W₂ σ(W₁ x + b₁) + b₂` (the paper leaves widths, activation and norms open; the
//! standalone checks use `tanh` without biases, the models' CMS, `crate::models::cms`, GELU with biases); the task
//! loss `L_t = ‖y_t − z_t‖²` regresses a target (the models use the next-token loss). All periods 1 is online SGD
//! on the stack; periods ≥ T give a static MLP stack. The reference also runs Eq. 74's independent layout
//! (`y = Σ_ℓ a_ℓ MLP_ℓ(x)`).

/// One level's parameters: `W₁ ∈ R^{h×d}`, `b₁ ∈ R^h`, `W₂ ∈ R^{d×h}`, `b₂ ∈ R^d`, and its activation.
pub mod reference {
    use ndarray::{Array1, Array2};

    /// The level's non-linearity `σ`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Activation {
        Tanh,
        /// the exact GELU `x Φ(x)` (the models' CMS levels)
        Gelu,
    }

    impl Activation {
        fn value(self, x: f64) -> f64 {
            match self {
                Activation::Tanh => x.tanh(),
                Activation::Gelu => crate::memory::activation::Activation::Gelu.value(x),
            }
        }
        /// `σ'(x)`: `1 − tanh²x`, or `Φ(x) + x φ(x)` for GELU.
        fn slope(self, x: f64) -> f64 {
            match self {
                Activation::Tanh => 1.0 - x.tanh().powi(2),
                Activation::Gelu => crate::memory::activation::Activation::Gelu.slope(x),
            }
        }
    }

    #[derive(Debug, Clone)]
    pub struct Level {
        pub w1: Array2<f64>,
        pub b1: Array1<f64>,
        pub w2: Array2<f64>,
        pub b2: Array1<f64>,
        pub activation: Activation,
        /// whether `b₁`, `b₂` are parameters (learned in context); false: fixed at their values (zero)
        pub biased: bool,
        /// update period `C_ℓ` in tokens
        pub period: usize,
        /// learning rate `η_ℓ`
        pub lr: f64,
    }

    impl Level {
        /// A level without biases (`b₁ = b₂ = 0`).
        pub fn unbiased(w1: Array2<f64>, w2: Array2<f64>, activation: Activation, period: usize, lr: f64) -> Self {
            let (h, d) = w1.dim();
            Self { w1, b1: Array1::zeros(h), w2, b2: Array1::zeros(d), activation, biased: false, period, lr }
        }
    }

    /// Accumulated `η Σ ∇` of one level: `(W₁, b₁, W₂, b₂)`.
    type Grads = (Array2<f64>, Array1<f64>, Array2<f64>, Array1<f64>);

    /// The outputs `y_t`, the final levels, and for each token which levels were updated at it.
    pub struct Run {
        pub y: Array2<f64>,
        pub levels: Vec<Level>,
        pub updated: Vec<Vec<bool>>,
    }

    /// Eq. 70 (the chain) with Eq. 71's updates; see [`run_with`].
    pub fn run(levels: &[Level], x: &Array2<f64>, z: &Array2<f64>) -> Run {
        run_with(levels, None, x, z)
    }

    /// Eq. 70 forward (`aggregator` absent: the chain) or Eq. 74 (`y = Σ_ℓ a_ℓ MLP_ℓ(x)`, every level on the same
    /// input) and Eq. 71 updates over a sequence `x [T, d]` with targets `z [T, d]`, token by token, gradients by
    /// hand: for a block `a ↦ a + W₂ σ(W₁ a + b₁) + b₂` with pre-activation `p`, `h = σ(p)`, and upstream
    /// `ḡ = ∂L/∂out`: `∂L/∂W₂ = ḡ hᵀ`, `∂L/∂b₂ = ḡ`, `δ = (W₂ᵀ ḡ) ⊙ σ'(p)`, `∂L/∂W₁ = δ aᵀ`, `∂L/∂b₁ = δ`,
    /// `∂L/∂a = ḡ + W₁ᵀ δ`; in Eq. 74 level ℓ's upstream is `a_ℓ ḡ`.
    pub fn run_with(levels: &[Level], aggregator: Option<&[f64]>, x: &Array2<f64>, z: &Array2<f64>) -> Run {
        let mut levels = levels.to_vec();
        let (t_len, d) = x.dim();
        let zeros = |l: &Level| {
            (
                Array2::zeros(l.w1.raw_dim()),
                Array1::zeros(l.b1.raw_dim()),
                Array2::zeros(l.w2.raw_dim()),
                Array1::zeros(d),
            )
        };
        let mut acc: Vec<Grads> = levels.iter().map(zeros).collect();
        let mut y = Array2::<f64>::zeros((t_len, d));
        let mut updated = vec![];
        let outer = |u: &Array1<f64>, v: &Array1<f64>| Array2::from_shape_fn((u.len(), v.len()), |(p, q)| u[p] * v[q]);
        for t in 0..t_len {
            // forward, keeping each block's input, pre-activation and hidden activation
            let xt = x.row(t).to_owned();
            let mut a = xt.clone();
            let (mut inputs, mut pre, mut hidden) = (vec![], vec![], vec![]);
            let mut sum = Array1::<f64>::zeros(d);
            for (j, l) in levels.iter().enumerate() {
                let input = if aggregator.is_some() { xt.clone() } else { a.clone() };
                let p = l.w1.dot(&input) + &l.b1;
                let h = p.mapv(|v| l.activation.value(v));
                let out = &input + &l.w2.dot(&h) + &l.b2;
                if let Some(agg) = aggregator {
                    sum = sum + &out * agg[j];
                }
                inputs.push(input);
                pre.push(p);
                hidden.push(h);
                a = out;
            }
            let yt = if aggregator.is_some() { sum } else { a };
            // L_t = ‖y_t − z_t‖², backward through the levels
            let g_out = (&yt - &z.row(t)) * 2.0;
            y.row_mut(t).assign(&yt);
            let mut g = g_out.clone();
            for (j, l) in levels.iter().enumerate().rev() {
                let upstream = match aggregator {
                    Some(agg) => &g_out * agg[j],
                    None => g.clone(),
                };
                let delta = l.w2.t().dot(&upstream) * pre[j].mapv(|v| l.activation.slope(v));
                acc[j].0 = &acc[j].0 + &(outer(&delta, &inputs[j]) * l.lr);
                acc[j].2 = &acc[j].2 + &(outer(&upstream, &hidden[j]) * l.lr);
                if l.biased {
                    acc[j].1 = &acc[j].1 + &(&delta * l.lr);
                    acc[j].3 = &acc[j].3 + &(&upstream * l.lr);
                }
                g = &upstream + &l.w1.t().dot(&delta);
            }
            // Eq. 71: level ℓ applies its chunk's sum when (t + 1) mod C_ℓ = 0
            let mut flags = vec![];
            for (j, l) in levels.iter_mut().enumerate() {
                let due = (t + 1).is_multiple_of(l.period);
                if due {
                    l.w1 = &l.w1 - &acc[j].0;
                    l.b1 = &l.b1 - &acc[j].1;
                    l.w2 = &l.w2 - &acc[j].2;
                    l.b2 = &l.b2 - &acc[j].3;
                    acc[j] = zeros(l);
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
