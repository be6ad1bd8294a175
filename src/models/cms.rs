//! A feed-forward sub-layer that learns in context: the Continuum Memory System of Nested Learning (arXiv
//! 2512.24695 v1, §7.1, Eqs. 70–74; Hope's output chain, §8 Eq. 97), as the models use it when `model.cms` is
//! set. This module names no paper's code; `crate::nl::cms` holds the f64 reference it is checked against.
//!
//! Levels are residual MLPs with biases, `MLP_ℓ(u) = u + W₂ GELU(W₁ u + b₁) + b₂` (width `expansion · dim`,
//! exact GELU). With `layout: chain` (Eq. 70; Eq. 97 puts the same chain on the mixer's output) the levels are
//! applied one after the other, first written first applied:
//! $$y = \mathrm{MLP}_k(\cdots \mathrm{MLP}_1(u))$$
//! With `layout: independent` (Eq. 74) every level sees the same input and a learned aggregator combines them:
//! $$y = \sum_\ell a_\ell\,\mathrm{MLP}_\ell(u),\qquad a_\ell = 1/k \text{ at initialisation}$$
//! The block adds the increment `y − u` to the residual stream (`x ← x + (y − LN₂x)` with `u = LN₂x`), so one
//! level that never changes is exactly the ordinary feed-forward `W₂ GELU(W₁ u + b₁) + b₂`.
//!
//! In context (Eq. 71 with the task loss, teacher forcing on the model's input): the model processes its input in
//! chunks of `C_min = min_ℓ C_ℓ` tokens. After a chunk it takes the inner loss
//! $$\mathcal L_{\text{chunk}} = \sum_{t \in \text{chunk},\ t+1 < T} \mathrm{CE}(\text{logits}_t,\ x_{t+1})$$
//! (summed over positions and over the batch; every sequence has its own fast weights `[B, …]`, so the sum over
//! the batch gives each sequence its own gradient), and every level accumulates `η ∇_{θ_ℓ} 𝓛_chunk` at its
//! current fast weights `θ_ℓ`. Level ℓ applies its accumulated sum when the number of tokens processed reaches a
//! multiple of `C_ℓ`:
//! $$\theta_\ell \leftarrow \theta_\ell - \sum_{t=i-C_\ell+1}^{i} \eta\, \nabla_{\theta_\ell} \mathcal L_t
//!   \quad\text{if } i \equiv 0 \pmod{C_\ell}$$
//! Inside a chunk every level is frozen (every period is a multiple of `C_min`), so all gradients of a level's
//! period are taken at the same value, as in the project form of Eq. 71. The gradient is that of the chunk's loss
//! with respect to the fast weights as this chunk uses them: a level that holds the same value as in earlier
//! chunks gets no gradient through those chunks' activations (which later positions see through the mixers'
//! states); each chunk starts from a new graph node of every fast weight ([`Cms::new_chunk`]). The last position of a call has no
//! target yet: its logits wait in the state and enter the next call's first inner loss (so chained calls equal
//! one call). Fast weights start from the learned parameters, the initial states that the outer loop learns
//! (Eq. 73, sequential CMS). `second_order` says whether the outer gradient differentiates through the inner
//! gradients (`create_graph`) or treats them as constants (first order, the default: cheaper, and the initial
//! states still get the gradient of every chunk that used them).
//!
//! Project decisions (NL leaves them open, catalog §8): one learning rate `η` for every level, default
//! [`DEFAULT_LR`]; residual GELU levels with biases and width `4·dim`; the chain order as written; a token's
//! output uses the weights before its own update.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

/// `η = 0.01`: a level's update is `η` times the sum of up to `C_ℓ` per-token gradients of a cross-entropy whose
/// per-token gradient norm is O(1) at initialisation, so with periods of a few to tens of tokens a level moves by a
/// few percent of its norm per update: large enough to matter inside a sequence, small enough not to diverge
/// before the outer loop has shaped the initial states. Long periods (hundreds of tokens) call for a smaller η.
pub const DEFAULT_LR: f64 = 0.01;

/// How the levels are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CmsLayout {
    /// Eq. 70 / 97: `MLP_k(… MLP_1(u))`
    #[default]
    Chain,
    /// Eq. 74: `Σ_ℓ a_ℓ MLP_ℓ(u)` with learned `a_ℓ` (initialised `1/k`)
    Independent,
}

/// `model.cms`: the feed-forward of every block becomes a CMS that learns in context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsSpec {
    /// update period `C_ℓ` of each level in tokens, in chain order (first applied first); each a multiple of the
    /// smallest, which is the chunk length of the in-context loop
    pub periods: Vec<usize>,
    /// hidden width = expansion · dim
    #[serde(default = "d_expansion")]
    pub expansion: usize,
    /// inner learning rate η (every level); 0 = static MLPs
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// differentiate the outer loss through the inner updates (true) or treat inner gradients as constants
    #[serde(default)]
    pub second_order: bool,
    #[serde(default)]
    pub layout: CmsLayout,
}

fn d_expansion() -> usize {
    4
}
fn d_lr() -> f64 {
    DEFAULT_LR
}

impl CmsSpec {
    /// A spec with the defaults and the given periods.
    pub fn with_periods(periods: &[usize]) -> Self {
        Self {
            periods: periods.to_vec(),
            expansion: d_expansion(),
            lr: d_lr(),
            second_order: false,
            layout: CmsLayout::Chain,
        }
    }

    /// Value checks serde cannot express: `(field, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let Some(&c_min) = self.periods.iter().min() else {
            return Err(("periods", "needs at least one level (a list of periods in tokens)".into()));
        };
        if c_min == 0 {
            return Err(("periods", format!("every period must be at least 1 token, got {:?}", self.periods)));
        }
        if let Some(p) = self.periods.iter().find(|p| !p.is_multiple_of(c_min)) {
            return Err((
                "periods",
                format!("every period must be a multiple of the smallest ({c_min}); {p} is not ({:?})", self.periods),
            ));
        }
        if self.expansion == 0 {
            return Err(("expansion", "must be at least 1".into()));
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(("lr", format!("must be a finite number >= 0, got {}", self.lr)));
        }
        Ok(())
    }

    /// The chunk length of the in-context loop, `C_min`.
    pub fn chunk(&self) -> i64 {
        self.periods.iter().copied().min().unwrap_or(1) as i64
    }

    /// One line for `describe()`.
    pub fn describe(&self) -> String {
        let layout = match self.layout {
            CmsLayout::Chain => "chain",
            CmsLayout::Independent => "independent",
        };
        let order = if self.second_order { "second-order" } else { "first-order" };
        format!("CMS feed-forward ({layout}, periods {:?}, lr {}, {order})", self.periods, self.lr)
    }
}

/// One level's learned initial state: `W₁ [h, d]`, `b₁ [h]`, `W₂ [d, h]`, `b₂ [d]` (as `nn::Linear` stores them).
#[derive(Debug)]
struct LevelParams {
    w1: nn::Linear,
    w2: nn::Linear,
}

/// One level's weights (fast or accumulated), each with a leading batch axis: `[W₁, b₁, W₂, b₂]`.
pub type LevelWeights = [Tensor; 4];

/// What one block's CMS carries between chunks and calls.
#[derive(Debug)]
pub struct CmsState {
    /// every level's current fast weights `[B, …]`
    pub fast: Vec<LevelWeights>,
    /// every level's `η Σ ∇` since its last update
    pub acc: Vec<LevelWeights>,
    /// tokens processed so far (a level is due when this reaches a multiple of its period)
    pub tokens: i64,
    /// the logits `[B, V]` of the call's last position, whose target is the next call's first token (kept in the
    /// last block's state only)
    pub awaiting_target: Option<Tensor>,
}

/// The CMS of one block: its levels' learned initial states, the aggregator (independent layout) and the schedule.
#[derive(Debug)]
pub struct Cms {
    levels: Vec<LevelParams>,
    /// `a_ℓ [k]` (independent layout only)
    aggregator: Option<Tensor>,
    periods: Vec<i64>,
    lr: f64,
}

impl Cms {
    pub fn new(p: &nn::Path, dim: i64, spec: &CmsSpec) -> Self {
        let hidden = spec.expansion as i64 * dim;
        let levels = (0..spec.periods.len())
            .map(|i| {
                let lp = p / format!("level{i}");
                LevelParams {
                    w1: nn::linear(&lp / "w1", dim, hidden, Default::default()),
                    w2: nn::linear(&lp / "w2", hidden, dim, Default::default()),
                }
            })
            .collect::<Vec<_>>();
        let k = levels.len() as i64;
        let aggregator =
            (spec.layout == CmsLayout::Independent).then(|| p.var("aggregator", &[k], nn::Init::Const(1.0 / k as f64)));
        Self { levels, aggregator, periods: spec.periods.iter().map(|&c| c as i64).collect(), lr: spec.lr }
    }

    pub fn periods(&self) -> &[i64] {
        &self.periods
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The learned initial states `[W₁, b₁, W₂, b₂]` of every level (unbatched), e.g. for the reference.
    pub fn initial_weights(&self) -> Vec<[&Tensor; 4]> {
        self.levels
            .iter()
            .map(|l| [&l.w1.ws, l.w1.bs.as_ref().expect("bias"), &l.w2.ws, l.w2.bs.as_ref().expect("bias")])
            .collect()
    }

    /// The aggregator weights `a_ℓ` (independent layout).
    pub fn aggregator(&self) -> Option<&Tensor> {
        self.aggregator.as_ref()
    }

    /// A fresh state for `batch` sequences: fast weights = the learned initial states, broadcast over the batch
    /// (Eq. 73: the outer loop learns them through this broadcast); accumulators zero. Where the parameters do not
    /// require grad (frozen, or created under `no_grad`) the fast weights are leaves that do, so that the inner
    /// gradient exists.
    pub fn initial_state(&self, batch: i64) -> CmsState {
        let fast: Vec<LevelWeights> = self
            .initial_weights()
            .into_iter()
            .map(|ws| {
                ws.map(|w| {
                    let mut shape = vec![batch];
                    shape.extend(w.size());
                    let b = w.unsqueeze(0).expand(&shape, false);
                    if b.requires_grad() {
                        b
                    } else {
                        b.contiguous().detach().set_requires_grad(true)
                    }
                })
            })
            .collect();
        let acc = fast.iter().map(|w| w.each_ref().map(|t| t.zeros_like().detach())).collect();
        CmsState { fast, acc, tokens: 0, awaiting_target: None }
    }

    /// `y` for `u [B, c, D]` with the fast weights of `state` (Eq. 70 or Eq. 74).
    pub fn forward(&self, u: &Tensor, state: &CmsState) -> Tensor {
        let level = |w: &LevelWeights, a: &Tensor| -> Tensor {
            let [w1, b1, w2, b2] = w;
            // h = GELU(W₁ a + b₁),  MLP(a) = a + W₂ h + b₂   (batched over B, tokens along the middle axis)
            let h = (a.matmul(&w1.transpose(1, 2)) + b1.unsqueeze(1)).gelu("none");
            a + h.matmul(&w2.transpose(1, 2)) + b2.unsqueeze(1)
        };
        match &self.aggregator {
            // Eq. 70: y = MLP_k(… MLP_1(u))
            None => state.fast.iter().fold(u.shallow_clone(), |a, w| level(w, &a)),
            // Eq. 74: y = Σ_ℓ a_ℓ MLP_ℓ(u)
            Some(agg) => state
                .fast
                .iter()
                .enumerate()
                .map(|(i, w)| level(w, u) * agg.get(i as i64))
                .reduce(|a, b| a + b)
                .unwrap(),
        }
    }

    /// Starts a chunk: every fast weight becomes a new graph node (an alias, same values), so that the chunk's
    /// inner gradient is taken through this chunk's uses only. Without it, a level that kept its value since an
    /// earlier chunk would also collect the gradient through that chunk's activations (carried in the mixers'
    /// states), and the result would depend on where the graph happens to be cut.
    pub fn new_chunk(state: &mut CmsState) {
        for w in state.fast.iter_mut().flatten() {
            *w = w.alias();
        }
    }

    /// The fast weights of `state` whose inner gradient [`accumulate`] takes.
    pub fn inputs(state: &CmsState) -> impl Iterator<Item = &Tensor> {
        state.fast.iter().flatten()
    }

    /// Adds `η · g` to the accumulators, `grads` in the order of [`Self::inputs`].
    pub fn add_gradients(&self, state: &mut CmsState, grads: &[Tensor]) {
        for (acc, g) in state.acc.iter_mut().zip(grads.chunks(4)) {
            for (a, g) in acc.iter_mut().zip(g) {
                if g.defined() {
                    *a = &*a + g * self.lr;
                }
            }
        }
    }

    /// Eq. 71: counts `n` more tokens; when `complete` (the inner loss of every counted token is in the
    /// accumulators), every level whose period divides the count applies `θ ← θ − acc` and resets `acc`.
    /// `leaves`: make the new fast weights fresh leaves (the caller runs without grad).
    pub fn advance(&self, state: &mut CmsState, n: i64, complete: bool, leaves: bool) {
        state.tokens += n;
        if !complete || state.tokens == 0 {
            return;
        }
        for ((fast, acc), &period) in state.fast.iter_mut().zip(state.acc.iter_mut()).zip(&self.periods) {
            if state.tokens % period != 0 {
                continue;
            }
            for (w, a) in fast.iter_mut().zip(acc.iter_mut()) {
                let updated = &*w - &*a;
                *w = if leaves { updated.detach().set_requires_grad(true) } else { updated };
                *a = a.zeros_like().detach();
            }
        }
    }
}

/// The inner gradient of `loss` with respect to the fast weights of every state in `states`, each CMS adding its
/// `η · g` to its accumulators. `create_graph`: the gradients stay differentiable (second order).
pub fn accumulate(cmses: &[&Cms], states: &mut [&mut CmsState], loss: &Tensor, create_graph: bool) {
    let inputs: Vec<Tensor> = states.iter().flat_map(|s| Cms::inputs(s).map(Tensor::shallow_clone)).collect();
    let grads = Tensor::run_backward(&[loss], &inputs, true, create_graph);
    let mut offset = 0;
    for (cms, state) in cmses.iter().zip(states.iter_mut()) {
        let n = state.fast.len() * 4;
        cms.add_gradients(state, &grads[offset..offset + n]);
        offset += n;
    }
}

/// `Σ CE(logits_t, target_t)` over `logits [B, n, V]` and `targets [B, n]` (sum over positions and batch).
pub fn summed_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    let v = logits.size()[2];
    logits.reshape([-1, v]).cross_entropy_loss::<Tensor>(&targets.reshape([-1]), None, tch::Reduction::Sum, -100, 0.0)
}
