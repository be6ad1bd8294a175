//! Self-modifying Titans, the inner system of Hope (Nested Learning, arXiv 2512.24695 v1, §8, Eqs. 79–96), per
//! head: memories for the keys, the values and the main memory, each generating its own target values and each
//! trained in context by DGD with weight decay. [`reference`]: f64, one head, token by token, backprop by hand.
//! [`torch`]: tch, batched `[B, H, …]`, per chunk every read, target and error in batched products, the inner
//! backprop through the activation by autograd, then the erase factors token by token; differentiable by
//! autograd in every input, gate and initial state. `crate::nl::memory_rules` makes it the catalogue rule
//! `kind: hope`.
//!
//! **Memories** `□ ∈ {k, v, memory}` (and `q`, see below; Eq. 89, the residual MLP; `memory: linear` = Eqs. 92–93):
//! $$\mathcal M_\square(z) = z + W_{\square,1}\,\sigma(W_{\square,2} z),\qquad W_{\square,2}\in\mathbb R^{h\times d},\ W_{\square,1}\in\mathbb R^{d\times h},\ h = \text{expansion}\cdot d$$
//! or `M_□(z) = W_□ z` (`d × d`); `σ` = SiLU (default) or exact GELU. Initial states are the layer's learned
//! (meta-learned, outer-loop) parameters. `d_k = d_v = d` is required (`v̂ = M_□(v)` feeds values to memories keyed
//! by `k`).
//!
//! **Inputs from the layer**: the per-head key and value projections `x^k_t, x^v_t` are the token views the
//! adaptive projection memories read (with Eq. 89's residual, a memory at its initial state is the layer's
//! projection plus its MLP); `q_t` is the layer's by default (the only non-adaptive projection, as §8's text says —
//! the printed Eqs. 85/88/96 list `q` among the adaptive memories, ⚠: `adaptive_q: true`); the inner learning
//! rate `θ_t` (NL's `η_t`) and forgetting `α_t` (NL's `α_t` = project `1 − α_t`) are the layer's scalar gates per
//! head and token, i.e.
//! Eq. 76's projections squashed by a sigmoid — the paper's memories `M_η, M_α` (Eq. 83) output `d`-vectors and
//! it leaves open how they become scalar gates, so they are not built.
//!
//! **Token t** with `s` the state the chunk reads (`C = 1`: `s = t − 1`; `C > 1`: the state after the previous
//! chunk — the consistent reading of Eq. 90's acausal index `C⌈t/C⌉`, which names the *end* of the current chunk):
//! $$k_t = \frac{\mathcal M_{k,s}(x^k_t)}{\|\mathcal M_{k,s}(x^k_t)\|},\quad v_t = \frac{\mathcal M_{v,s}(x^v_t)}{\|\mathcal M_{v,s}(x^v_t)\|},\quad \hat v_{\square,t} = \mathcal M_{\square,s}(v_t),\quad y_t = \mathcal M_{{\rm memory},s}(q_t)\quad(83\text{–}84, 94\text{–}95)$$
//! (`adaptive_k: false` / `adaptive_v: false`: `k_t = x^k_t` / `v_t = x^v_t`, no `M_k` / `M_v`; `adaptive_q: true`
//! adds the query memory of the printed Eqs. 85/88/96, `q_t = normalize(M_{q,s}(q^{layer}_t))`, trained like the
//! others;
//! `self_modifying: false`: `v̂_{□,t} = v_t` for every memory, Eqs. 79–82 — with the key `k_t` for every memory as in
//! Eq. 85, where the printed Eq. 80 keys `M_□` by `□_t`). The l2 norm divides by `max(‖·‖, 1e-6)` as the layer does.
//! **Values are l2-normalised** too (`normalize_v: true`, a project decision; `false` is the printed form, whose
//! §8 says normalisations are omitted from Eqs. 94–97 and names only q and k): with a self-generated target
//! `v̂ = M_s(v)` the linear update is `W ← W((1 − α_t)I − 3θ_t kkᵀ + 2θ_t v kᵀ)`, which expands `W` along `k` whenever
//! `kᵀv > 3/2 + α_t/(2θ_t)` — routine for the layer's unnormalised values (entries up to 6 in the tiny MQAR model).
//! Without it the LMM of `experiments/quickstart.yaml` reached non-finite memories within 40 training steps at
//! every `max_lr` tried down to 1e-4 (the value memory's `W₂` at 1e11 by token 28); with unit values
//! `|kᵀv| ≤ 1` and the factor's eigenvalues (`1 − α_t`, and `1 − α_t − 3θ_t + 2θ_t kᵀv` along `k`) stay inside
//! `(−1, 1)` for `θ_t < 2/5`.
//! `read: before-write` is Eq. 94 (`y_t` from state `s`); `read: after-write` reads the running state after token
//! `t`'s write, `y_t = M_{memory,t}(q_t)`.
//!
//! **Update** (Eqs. 88/96, chunkwise Eq. 90) with `L_□ = ‖M_□(k_t) − v̂_{□,t}‖²` (factor 2 explicit, `v̂` a
//! constant of the inner step; the outer loop differentiates through everything). For the MLP memories the
//! right factor `(αI − ηkkᵀ)` is defined per layer (⚠ the paper's is only defined for a layer whose input is `k`):
//! **layer-wise DGD**, every weight matrix `W` with its layer input `a` and the error `δ` of its output, both at
//! state `s`:
//! $$W \leftarrow W\big((1-\alpha_t)I - \tilde\eta_t\,a a^\top\big) - \tilde\eta_t\,\delta a^\top,\qquad \tilde\eta_t = \frac{\theta_t}{1+\theta_t\|a\|^2}\quad(\text{Eq. 57, general norm})$$
//! with `a = h = σ(W₂k)`, `δ = 2(M(k) − v̂)` for `W₁` and `a = k`, `δ = (W₁ᵀ 2(M(k) − v̂)) ⊙ σ'(W₂k)` for `W₂`; the
//! erase factor runs token by token on the running `W`. `dgd: false` is plain GD with the same decay,
//! `W ← (1 − α_t)W − θ_t δ aᵀ` (Table 6 "w/o DGD"). The linear memory follows Eq. 93 as printed (step `θ_t`, factor 2
//! written out): `W ← W((1 − α_t)I − θ_t kkᵀ) − 2θ_t(W_s k − v̂)kᵀ` (= [`super::hope`]); `objective: dot` is Eq. 92,
//! `L = −⟨Wk, v̂⟩`, `δ = −v̂`: `W ← W((1 − α_t)I − θ_t kkᵀ) + θ_t v̂ kᵀ` (⚠ sign corrected: descending `−⟨Wk, v̂⟩`
//! adds `θ v̂ kᵀ`). NL Eqs. 83–97 have no momentum (Table 6 ablates one that the equations do not show): the rule
//! has no momentum gate.

use crate::memory::activation::Activation;
use serde::{Deserialize, Serialize};

/// The shape of every memory (Eq. 89's residual MLP, or the linear memory of Eqs. 92–93).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    #[default]
    Mlp,
    Linear,
}

/// The inner objective: `‖M(k) − v̂‖²` (Eqs. 88, 93) or `−⟨Mk, v̂⟩` (Eq. 92, linear memory only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    #[default]
    L2,
    Dot,
}

/// Which memory: the key memory `M_k`, the value memory `M_v` or the main memory `M_memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Key,
    Value,
    Query,
    Main,
}

impl Role {
    /// The state-name prefix (`k_w1`, `v_w`, `m_w2`).
    pub fn prefix(self) -> &'static str {
        match self {
            Role::Key => "k",
            Role::Value => "v",
            Role::Query => "q",
            Role::Main => "m",
        }
    }
}

/// One configuration of the rule (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct HopeConfig {
    pub form: Form,
    /// `h = expansion · d` (MLP memories)
    pub expansion: usize,
    pub activation: Activation,
    pub objective: Objective,
    /// DGD's erase term (false: plain GD with the same decay)
    pub dgd: bool,
    /// `v̂_□ = M_□(v)` (false: `v̂_□ = v`)
    pub self_modifying: bool,
    pub adaptive_k: bool,
    pub adaptive_v: bool,
    /// `v = normalize(M_v(x^v))` (or `normalize(x^v)`); false: values as they come (see the module doc)
    pub normalize_v: bool,
    /// `q = normalize(M_q(x^q))` (the printed Eqs. 85/88/96; off by default: the text fixes `q`)
    pub adaptive_q: bool,
    /// every memory keyed by its own output, `L(M_□; □_t, v̂_{□,t})` (the printed Eq. 80: `M_v` by `v_t`, `M_q` by
    /// `q_t`; `M_k` and the main memory by `k_t`); false: every memory keyed by `k_t` (Eq. 85)
    pub own_keys: bool,
    /// C ≥ 1 (1 = token by token)
    pub chunk: usize,
}

impl HopeConfig {
    /// Checks the values that the types admit but the rule does not.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.chunk >= 1, "chunk_size must be at least 1 (1 = sequential)");
        if self.form == Form::Mlp {
            anyhow::ensure!(self.expansion >= 1, "hope: expansion must be at least 1 (got {})", self.expansion);
        }
        anyhow::ensure!(
            !(self.objective == Objective::Dot && self.form == Form::Mlp),
            "hope: objective: dot is Eq. 92's linear-memory objective; use it with memory: linear"
        );
        Ok(())
    }
    /// The memories present, in state order.
    pub fn roles(&self) -> Vec<Role> {
        let mut r = vec![];
        if self.adaptive_k {
            r.push(Role::Key);
        }
        if self.adaptive_v {
            r.push(Role::Value);
        }
        if self.adaptive_q {
            r.push(Role::Query);
        }
        r.push(Role::Main);
        r
    }
    /// `(rows, cols)` of one memory's matrices in state order: `[W₁ (d × h), W₂ (h × d)]`, or `[W (d × d)]`.
    pub fn shapes(&self, d: usize) -> Vec<(usize, usize)> {
        match self.form {
            Form::Mlp => vec![(d, self.expansion * d), (self.expansion * d, d)],
            Form::Linear => vec![(d, d)],
        }
    }
    /// The key memory `role` regresses from: `k_t`, or with `own_keys` its own output (`v_t` for `M_v`, `q_t` for
    /// `M_q`).
    pub fn key_of<'a, T>(&self, role: Role, k: &'a T, v: &'a T, q: &'a T) -> &'a T {
        match (self.own_keys, role) {
            (true, Role::Value) => v,
            (true, Role::Query) => q,
            _ => k,
        }
    }
    /// Matrices per memory.
    pub fn per_memory(&self) -> usize {
        match self.form {
            Form::Mlp => 2,
            Form::Linear => 1,
        }
    }
}

/// f64 ndarray, one head, token by token, backprop by hand.
pub mod reference {
    use super::{Form, HopeConfig, Objective, Role};
    use crate::memory::ReadMode;
    use ndarray::{Array1, Array2, ArrayView1};

    /// One memory's matrices, in state order (`[W₁, W₂]` or `[W]`).
    pub type Weights = Vec<Array2<f64>>;

    /// `M(z)`: `z + W₁σ(W₂z)` or `Wz`.
    pub fn apply(cfg: &HopeConfig, w: &Weights, z: ArrayView1<f64>) -> Array1<f64> {
        match cfg.form {
            Form::Linear => w[0].dot(&z),
            Form::Mlp => {
                let hidden = w[1].dot(&z).mapv(|u| cfg.activation.value(u));
                &z + &w[0].dot(&hidden)
            }
        }
    }

    /// `z / max(‖z‖, 1e-6)`, the layer's normalisation.
    fn l2_normalize(z: Array1<f64>) -> Array1<f64> {
        let norm = z.dot(&z).sqrt().max(crate::models::reference::L2_EPS);
        z / norm
    }

    /// `(a, δ)` of every matrix (state order): its input and the gradient of `L` with respect to its output, at
    /// the weights `w`, for key `k` and target `v̂`.
    pub fn layer_signals(
        cfg: &HopeConfig,
        w: &Weights,
        k: ArrayView1<f64>,
        v_hat: ArrayView1<f64>,
    ) -> Vec<(Array1<f64>, Array1<f64>)> {
        match cfg.form {
            Form::Linear => {
                let delta = match cfg.objective {
                    // ∂/∂(Wk) ‖Wk − v̂‖² = 2(Wk − v̂)
                    Objective::L2 => (w[0].dot(&k) - v_hat) * 2.0,
                    // ∂/∂(Wk) (−⟨Wk, v̂⟩) = −v̂
                    Objective::Dot => -v_hat.to_owned(),
                };
                vec![(k.to_owned(), delta)]
            }
            Form::Mlp => {
                let pre = w[1].dot(&k);
                let hidden = pre.mapv(|u| cfg.activation.value(u));
                // e = k + W₁h − v̂;  δ₁ = 2e;  δ₂ = (W₁ᵀδ₁) ⊙ σ'(W₂k)
                let error = &k + &w[0].dot(&hidden) - v_hat;
                let delta_1 = error * 2.0;
                let delta_2 = w[0].t().dot(&delta_1) * pre.mapv(|u| cfg.activation.slope(u));
                vec![(hidden, delta_1), (k.to_owned(), delta_2)]
            }
        }
    }

    /// One matrix's step: DGD `W((1 − α)I − η̃aaᵀ) − η̃δaᵀ` (`η̃ = θ/(1 + θ‖a‖²)`, or `θ` for the linear memory,
    /// Eq. 93), or GD `(1 − α)W − θδaᵀ`.
    pub fn step(
        cfg: &HopeConfig,
        w: &Array2<f64>,
        a: &Array1<f64>,
        delta: &Array1<f64>,
        alpha: f64,
        theta: f64,
    ) -> Array2<f64> {
        let mut next = w * (1.0 - alpha);
        let (rows, cols) = w.dim();
        if cfg.dgd {
            let rate = match cfg.form {
                Form::Linear => theta,
                Form::Mlp => theta / (1.0 + theta * a.dot(a)),
            };
            let wa = w.dot(a);
            for i in 0..rows {
                for j in 0..cols {
                    next[[i, j]] -= rate * (wa[i] + delta[i]) * a[j];
                }
            }
        } else {
            for i in 0..rows {
                for j in 0..cols {
                    next[[i, j]] -= theta * delta[i] * a[j];
                }
            }
        }
        next
    }

    /// One head: `x_k, x_v, q [T, d]`, `α, θ [T]`, the memories' matrices in state order; returns `(y [T, d],
    /// final matrices)`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        cfg: &HopeConfig,
        x_k: &Array2<f64>,
        x_v: &Array2<f64>,
        q: &Array2<f64>,
        alpha: &Array1<f64>,
        theta: &Array1<f64>,
        state: &[Array2<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<Array2<f64>>) {
        let roles = cfg.roles();
        let n = cfg.per_memory();
        let mut running: Vec<Weights> = (0..roles.len()).map(|j| state[j * n..(j + 1) * n].to_vec()).collect();
        let mut at_s = running.clone();
        let of = |role: Role| roles.iter().position(|r| *r == role);
        let main = of(Role::Main).expect("the main memory");
        let (t_len, d) = q.dim();
        let mut y = Array2::<f64>::zeros((t_len, d));
        for t in 0..t_len {
            if t % cfg.chunk == 0 {
                at_s = running.clone(); // the state after the previous chunk (C = 1: after token t − 1)
            }
            // k_t = normalize(M_{k,s}(x^k_t)),  v_t = M_{v,s}(x^v_t)
            let k_t = match of(Role::Key) {
                Some(j) => l2_normalize(apply(cfg, &at_s[j], x_k.row(t))),
                None => x_k.row(t).to_owned(),
            };
            let v_t = match of(Role::Value) {
                Some(j) => apply(cfg, &at_s[j], x_v.row(t)),
                None => x_v.row(t).to_owned(),
            };
            let v_t = if cfg.normalize_v { l2_normalize(v_t) } else { v_t };
            let q_t = match of(Role::Query) {
                Some(j) => l2_normalize(apply(cfg, &at_s[j], q.row(t))),
                None => q.row(t).to_owned(),
            };
            if read == ReadMode::BeforeWrite {
                y.row_mut(t).assign(&apply(cfg, &at_s[main], q_t.view())); // y_t = M_{memory,s}(q_t)
            }
            for j in 0..roles.len() {
                // v̂_{□,t} = M_{□,s}(v_t)
                let v_hat = if cfg.self_modifying { apply(cfg, &at_s[j], v_t.view()) } else { v_t.clone() };
                let key = cfg.key_of(roles[j], &k_t, &v_t, &q_t);
                let signals = layer_signals(cfg, &at_s[j], key.view(), v_hat.view());
                for (l, (a, delta)) in signals.iter().enumerate() {
                    running[j][l] = step(cfg, &running[j][l], a, delta, alpha[t], theta[t]);
                }
            }
            if read == ReadMode::AfterWrite {
                y.row_mut(t).assign(&apply(cfg, &running[main], q_t.view())); // y_t = M_{memory,t}(q_t)
            }
        }
        (y, running.into_iter().flatten().collect())
    }
}

/// tch, batched `[B, H, …]`: per chunk the keys, values, targets, reads and layer signals of all its tokens at the
/// chunk's state, the inner backprop through `σ` by autograd, then the steps token by token.
pub mod torch {
    use super::{Form, HopeConfig, Objective, Role};
    use crate::memory::autograd::autograd_grads;
    use crate::memory::ReadMode;
    use crate::models::blocks::l2_normalize;
    use tch::Tensor;

    fn t(w: &Tensor) -> Tensor {
        w.transpose(-1, -2)
    }

    /// `M(z)` on rows `z [B, H, N, d]` with one memory's matrices `[B, H, rows, cols]`.
    pub fn apply(cfg: &HopeConfig, w: &[Tensor], z: &Tensor) -> Tensor {
        match cfg.form {
            Form::Linear => z.matmul(&t(&w[0])),
            Form::Mlp => z + cfg.activation.apply(&z.matmul(&t(&w[1]))).matmul(&t(&w[0])),
        }
    }

    /// Per token `(a [B, H, N, cols], δ [B, H, N, rows])` of every matrix, at the weights `w`.
    fn layer_signals(cfg: &HopeConfig, w: &[Tensor], k: &Tensor, v_hat: &Tensor) -> Vec<(Tensor, Tensor)> {
        match cfg.form {
            Form::Linear => {
                let delta = match cfg.objective {
                    Objective::L2 => (k.matmul(&t(&w[0])) - v_hat) * 2.0,
                    Objective::Dot => -v_hat,
                };
                vec![(k.shallow_clone(), delta)]
            }
            Form::Mlp => {
                let pre = k.matmul(&t(&w[1]));
                let hidden = cfg.activation.apply(&pre);
                let delta_1 = (k + hidden.matmul(&t(&w[0])) - v_hat) * 2.0;
                // δ₂ = ∂L/∂(W₂k) by autograd (tokens are independent, so the gradient of the sum is per token)
                let upstream = k.requires_grad() || v_hat.requires_grad() || w[0].requires_grad();
                let delta_2 = autograd_grads(
                    &[pre],
                    |p| {
                        let e = k + cfg.activation.apply(&p[0]).matmul(&t(&w[0])) - v_hat;
                        e.square().sum(e.kind())
                    },
                    upstream,
                )
                .remove(0);
                vec![(hidden, delta_1), (k.shallow_clone(), delta_2)]
            }
        }
    }

    /// `x_k, x_v, q [B, H, T, d]`, `alpha, theta [B, H, T]`, `state[i] [B, H, rows, cols]`; returns
    /// `(y [B, H, T, d], final matrices)`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        cfg: &HopeConfig,
        x_k: &Tensor,
        x_v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        theta: &Tensor,
        state: &[Tensor],
        read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let roles = cfg.roles();
        let n = cfg.per_memory();
        let mut running: Vec<Vec<Tensor>> =
            (0..roles.len()).map(|j| state[j * n..(j + 1) * n].iter().map(|w| w.shallow_clone()).collect()).collect();
        let of = |role: Role| roles.iter().position(|r| *r == role);
        let main = of(Role::Main).expect("the main memory");
        let t_len = q.size()[2];
        let mut ys = vec![];
        let mut start = 0i64;
        while start < t_len {
            let len = (cfg.chunk as i64).min(t_len - start);
            let at_s: Vec<Vec<Tensor>> =
                running.iter().map(|ws| ws.iter().map(|w| w.shallow_clone()).collect()).collect();
            let x_kc = x_k.narrow(2, start, len);
            let x_vc = x_v.narrow(2, start, len);
            let qc = match of(Role::Query) {
                Some(j) => l2_normalize(&apply(cfg, &at_s[j], &q.narrow(2, start, len))),
                None => q.narrow(2, start, len),
            };
            let k = match of(Role::Key) {
                Some(j) => l2_normalize(&apply(cfg, &at_s[j], &x_kc)),
                None => x_kc,
            };
            let v = match of(Role::Value) {
                Some(j) => apply(cfg, &at_s[j], &x_vc),
                None => x_vc,
            };
            let v = if cfg.normalize_v { l2_normalize(&v) } else { v };
            if read == ReadMode::BeforeWrite {
                ys.push(apply(cfg, &at_s[main], &qc));
            }
            let signals: Vec<Vec<(Tensor, Tensor)>> = at_s
                .iter()
                .zip(&roles)
                .map(|(w, &role)| {
                    let v_hat = if cfg.self_modifying { apply(cfg, w, &v) } else { v.shallow_clone() };
                    layer_signals(cfg, w, cfg.key_of(role, &k, &v, &qc), &v_hat)
                })
                .collect();
            for i in 0..len {
                let keep = (-alpha.select(2, start + i) + 1.0).unsqueeze(-1).unsqueeze(-1); // [B, H, 1, 1]
                let th = theta.select(2, start + i).unsqueeze(-1).unsqueeze(-1);
                for (ws, sig) in running.iter_mut().zip(&signals) {
                    for (w, (a, delta)) in ws.iter_mut().zip(sig) {
                        let a_i = a.select(2, i).unsqueeze(-1); // [B, H, cols, 1]
                        let d_i = delta.select(2, i).unsqueeze(-1); // [B, H, rows, 1]
                        *w = if cfg.dgd {
                            let rate = match cfg.form {
                                Form::Linear => th.shallow_clone(),
                                Form::Mlp => &th / (&th * a_i.square().sum_dim_intlist(-2, true, a_i.kind()) + 1.0),
                            };
                            &*w * &keep - (w.matmul(&a_i) + d_i).matmul(&t(&a_i)) * rate
                        } else {
                            &*w * &keep - d_i.matmul(&t(&a_i)) * &th
                        };
                    }
                }
                if read == ReadMode::AfterWrite {
                    ys.push(apply(cfg, &running[main], &qc.narrow(2, i, 1)));
                }
            }
            start += len;
        }
        (Tensor::cat(&ys, 2), running.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ReadMode;
    use crate::tensor::Draw;
    use ndarray::{Array1, Array2, Ix1, Ix2};

    /// `own_keys` (the printed Eq. 80) changes what the value and query memories learn, hence the reads.
    #[test]
    fn own_keys_change_the_value_and_query_memories() {
        let (t_len, d) = (7, 3);
        let mut draw = Draw::new(11);
        let m = |a: crate::tensor::Arr| a.into_dimensionality::<Ix2>().unwrap();
        let (x_k, x_v, q) =
            (m(draw.unit_rows(&[t_len, d])), m(draw.normal(&[t_len, d], 1.0)), m(draw.unit_rows(&[t_len, d])));
        let alpha: Array1<f64> = draw.uniform(&[t_len], 0.0, 0.1).into_dimensionality::<Ix1>().unwrap();
        let theta: Array1<f64> = draw.uniform(&[t_len], 0.1, 0.3).into_dimensionality::<Ix1>().unwrap();
        let cfg = |own_keys| HopeConfig {
            form: Form::Linear,
            expansion: 1,
            activation: Activation::Silu,
            objective: Objective::L2,
            dgd: true,
            self_modifying: false,
            adaptive_k: true,
            adaptive_v: true,
            adaptive_q: true,
            normalize_v: true,
            own_keys,
            chunk: 1,
        };
        let state: Vec<Array2<f64>> = (0..4).map(|_| m(draw.normal(&[d, d], 0.5)) + Array2::<f64>::eye(d)).collect();
        let run = |own| reference::forward(&cfg(own), &x_k, &x_v, &q, &alpha, &theta, &state, ReadMode::AfterWrite);
        let ((y_shared, w_shared), (y_own, w_own)) = (run(false), run(true));
        let diff = |a: &Array2<f64>, b: &Array2<f64>| (a - b).mapv(f64::abs).sum() / b.mapv(f64::abs).sum();
        // state order k, v, q, main: M_k and the main memory are keyed by k either way, M_v and M_q are not
        assert!(diff(&w_own[0], &w_shared[0]) > 1e-3, "M_k differs through the other memories' keys and values");
        assert!(diff(&w_own[1], &w_shared[1]) > 1e-3 && diff(&w_own[2], &w_shared[2]) > 1e-3);
        assert!(diff(&y_own, &y_shared) > 1e-3);
    }
}
