//! MIRAS (arXiv 2504.13173 v1) memories as [`MemoryRule`]s: any valid bias × retention × algorithm of the
//! framework (linear or §5.3 MLP memory, token by token), Moneta, Yaad and Memora (sequential, or chunkwise by
//! Eqs. 28–32); the published recurrences of Table 1 are in [`super::preset_rules`]. The mathematics lives in
//! [`super::update`], [`super::mlp`], [`super::models`] and [`super::presets`]; each rule here is described once.
//!
//! Framework gates (only those the configuration uses): `α_t ∈ (0, 1)` the retention multiplier (1 keeps
//! everything; starts at σ(4) ≈ 0.982; "w/o forgetting" pins it to 1), `η_t ∈ (0, η_max)` the inner learning
//! rate (starts at η_max/2), `δ_t ∈ (0, 2)` the bias threshold of Huber / Yaad / value shift (starts at 1),
//! `μ_t ∈ (0, 1)` the momentum decay (starts at ½; "w/o momentum" pins 0). State: the carried memory (`W`, or
//! the dual `A` / `Z` of Eqs. 21–24), the momentum `S`, and after Eq. 23 also `W` (it depends on the last η).
//! Reads are after the write (`y_t = W_t q_t`); read-before-write is not defined for these rules.

use super::framework::{Algorithm, Bias, Config, Memory, Retention};
use super::models::Model;
use super::{mlp, models, update};
use crate::memory::rule::{as_matrix, GateSpec, HeadInputs, MemoryRule, StateDraw, StateInit, StateSpec};
use crate::memory::ReadMode;
use ndarray::{Array1, Array2, ArrayD, ArrayView2};
use tch::Tensor;

/// The layer settings a MIRAS rule is built with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MirasGates {
    pub max_lr: f64,
    pub momentum: bool,
    pub forgetting: bool,
}

/// Which framework gates a configuration reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Uses {
    alpha: bool,
    delta: bool,
    mu: bool,
}

fn uses(cfg: &Config) -> Uses {
    let alpha = match cfg.retention {
        Retention::L2Decayed | Retention::L2LocalGlobal | Retention::Lq { .. } | Retention::Kl => true,
        Retention::None
        | Retention::ElasticNet { .. }
        | Retention::ElasticNetFtrl { .. }
        | Retention::BregmanSigmoid => false,
    };
    let delta = matches!(cfg.bias, Bias::Huber | Bias::HuberNorm | Bias::L2L1Switch | Bias::ValueShift);
    Uses { alpha, delta, mu: cfg.algorithm == Algorithm::Momentum }
}

fn framework_gates(cfg: &Config, s: &MirasGates) -> Vec<GateSpec> {
    let u = uses(cfg);
    let mut g = vec![];
    if u.alpha {
        g.push(
            GateSpec::learned("alpha", "retention multiplier α_t (1 keeps everything)", (0.0, 1.0), 4.0, (0.7, 1.0))
                .pinned_if(!s.forgetting, 1.0),
        );
    }
    g.push(GateSpec::learned("eta", "inner learning rate η_t", (0.0, s.max_lr), 0.0, (0.05, 0.4)));
    if u.delta {
        g.push(GateSpec::learned(
            "delta",
            "bias threshold δ_t (Huber, Yaad, value shift)",
            (0.0, 2.0),
            0.0,
            (0.1, 1.5),
        ));
    }
    if u.mu {
        g.push(GateSpec::learned("mu", "momentum decay μ_t", (0.0, 1.0), 0.0, (0.0, 0.9)).pinned_if(!s.momentum, 0.0));
    }
    g
}

/// `(α, η, δ, μ)` from the declared gates, constants for the ones the configuration does not read.
fn expand_tch(cfg: &Config, g: &[Tensor]) -> [Tensor; 4] {
    let u = uses(cfg);
    let mut it = g.iter();
    let mut next = |used: bool, fill: f64, like: &Tensor| match used {
        true => it.next().expect("declared gate").shallow_clone(),
        false => like.zeros_like() + fill,
    };
    let like = g[0].shallow_clone();
    let alpha = next(u.alpha, 1.0, &like);
    let eta = next(true, 0.0, &like);
    let delta = next(u.delta, 0.0, &like);
    let mu = next(u.mu, 0.0, &like);
    [alpha, eta, delta, mu]
}

fn expand_ref(cfg: &Config, g: &[Array1<f64>]) -> [Array1<f64>; 4] {
    let u = uses(cfg);
    let mut it = g.iter();
    let t = g[0].len();
    let mut next = |used: bool, fill: f64| match used {
        true => it.next().expect("declared gate").clone(),
        false => Array1::from_elem(t, fill),
    };
    let alpha = next(u.alpha, 1.0);
    let eta = next(true, 0.0);
    let delta = next(u.delta, 0.0);
    let mu = next(u.mu, 0.0);
    [alpha, eta, delta, mu]
}

pub(crate) fn matrix_state(
    name: &str,
    meaning: &str,
    rows: (usize, &str),
    cols: (usize, &str),
    init: StateInit,
) -> StateSpec {
    let draw = match init {
        StateInit::Constant { .. } => StateDraw::Uniform { lo: 0.2, hi: 0.8 },
        _ => StateDraw::Normal { scale: 0.5 },
    };
    StateSpec {
        name: name.into(),
        meaning: meaning.into(),
        shape: vec![rows.0, cols.0],
        dims: vec![rows.1.into(), cols.1.into()],
        init,
        draw,
    }
}

/// How a configuration's carried state starts in a model.
fn carried_init(cfg: &Config, fan_in: usize) -> StateInit {
    match cfg.retention {
        // N_q(0) = 0 has an infinite derivative: start from a learned non-zero A_0
        Retention::Lq { .. } => StateInit::Learned { std: 1.0 / (fan_in as f64).sqrt() },
        // σ(logit W) needs W inside (0, 1)
        Retention::BregmanSigmoid => StateInit::Constant { value: 0.5 },
        _ => match cfg.memory {
            Memory::Mlp { .. } => StateInit::Learned { std: 1.0 / (fan_in as f64).sqrt() },
            Memory::Linear => StateInit::Zeros,
        },
    }
}

/// Any valid framework configuration, token by token (linear memory: [`update`]; MLP memory: [`mlp`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MirasFramework {
    pub config: Config,
    pub settings: MirasGates,
}

impl MirasFramework {
    fn ftrl(&self) -> bool {
        matches!(self.config.retention, Retention::ElasticNetFtrl { .. })
    }
}

impl MemoryRule for MirasFramework {
    fn name(&self) -> String {
        let c = &self.config;
        format!("miras({:?}, {:?}, {:?}, {:?})", c.memory, c.bias, c.retention, c.algorithm)
    }
    fn gates(&self) -> Vec<GateSpec> {
        framework_gates(&self.config, &self.settings)
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let cfg = &self.config;
        let mut out = vec![];
        type Dim<'a> = (usize, &'a str);
        let shapes: Vec<(Dim, Dim)> = match cfg.memory {
            Memory::Linear => vec![((d_v, "d_v"), (d_k, "d_k"))],
            Memory::Mlp { expansion, .. } => {
                vec![((d_v, "d"), (expansion * d_k, "hidden")), ((expansion * d_k, "hidden"), (d_k, "d"))]
            }
        };
        let n = shapes.len();
        for (i, &(r, c)) in shapes.iter().enumerate() {
            let name = if n == 1 { "m".to_string() } else { format!("a{}", i + 1) };
            let meaning = if cfg.retention.has_dual_state() { "carried dual state (A or Z)" } else { "memory W" };
            out.push(matrix_state(&name, meaning, r, c, carried_init(cfg, c.0)));
        }
        for (i, &(r, c)) in shapes.iter().enumerate() {
            let name = if n == 1 { "s".to_string() } else { format!("s{}", i + 1) };
            let mut spec = matrix_state(&name, "momentum S", r, c, StateInit::Zeros);
            spec.draw = StateDraw::Normal { scale: 0.1 };
            out.push(spec);
        }
        if self.ftrl() {
            for (i, &(r, c)) in shapes.iter().enumerate() {
                let name = if n == 1 { "w".to_string() } else { format!("w{}", i + 1) };
                out.push(matrix_state(&name, "memory W = S_{η/α}(A) (Eq. 23)", r, c, StateInit::Zeros));
            }
        }
        out
    }
    /// The §5.3 MLP memory ends in a LayerNorm over `d` coordinates: inside a MAC mixer (d = 5), rounding only
    /// the weights to f32 (relative perturbations ≤ 6e-8) moves the f64 final state by up to 6.4e-6 (30 draws),
    /// an amplification of ~100, so f32 errors of 1–3e-5 are the function's conditioning.
    fn ill_conditioned_in_f32(&self) -> bool {
        matches!(self.config.memory, Memory::Mlp { .. })
    }
    fn validate_dims(&self, d_k: usize, d_v: usize) -> anyhow::Result<()> {
        self.config.validate()?;
        if let Memory::Mlp { .. } = self.config.memory {
            anyhow::ensure!(d_k == d_v, "the MIRAS MLP memory x + LN(W1 σ(W2 x)) needs d_k = d_v (got {d_k}, {d_v})");
        }
        Ok(())
    }
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &[Tensor],
        state: &[Tensor],
        _read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let cfg = &self.config;
        let [alpha, eta, delta, mu] = expand_tch(cfg, g);
        match cfg.memory {
            Memory::Linear => {
                let w0 = if self.ftrl() { state[2].shallow_clone() } else { update::torch::primal(cfg, &state[0]) };
                let o = update::torch::forward_from(cfg, k, v, q, &alpha, &eta, &delta, &mu, &state[0], &w0, &state[1]);
                let mut st = vec![o.state, o.s];
                if self.ftrl() {
                    st.push(o.w);
                }
                (o.y, st)
            }
            Memory::Mlp { .. } => {
                let w0 = if self.ftrl() {
                    [state[4].shallow_clone(), state[5].shallow_clone()]
                } else {
                    [update::torch::primal(cfg, &state[0]), update::torch::primal(cfg, &state[1])]
                };
                let o = mlp::torch::forward_from(
                    cfg,
                    k,
                    v,
                    q,
                    &alpha,
                    &eta,
                    &delta,
                    &mu,
                    [&state[0], &state[1]],
                    [&w0[0], &w0[1]],
                    [&state[2], &state[3]],
                );
                let mut st = vec![o.a1, o.a2, o.s1, o.s2];
                if self.ftrl() {
                    st.extend([o.w1, o.w2]);
                }
                (o.y, st)
            }
        }
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        let cfg = &self.config;
        match cfg.memory {
            Memory::Linear => {
                let w = if self.ftrl() { state[2].shallow_clone() } else { update::torch::primal(cfg, &state[0]) };
                q.matmul(&w.transpose(-2, -1))
            }
            Memory::Mlp { .. } => {
                let (w1, w2) = if self.ftrl() {
                    (state[4].shallow_clone(), state[5].shallow_clone())
                } else {
                    (update::torch::primal(cfg, &state[0]), update::torch::primal(cfg, &state[1]))
                };
                // per token: M(q) = q + LN(W1 σ(W2 q)) with W [B, H, ·, ·] broadcast over T
                mlp::torch::read(&w1.unsqueeze(2), &w2.unsqueeze(2), q)
            }
        }
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        _read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let cfg = &self.config;
        let [alpha, eta, delta, mu] = expand_ref(cfg, &x.gates);
        match cfg.memory {
            Memory::Linear => {
                let inp = update::reference::Inputs {
                    k: x.k.clone(),
                    v: x.v.clone(),
                    q: x.q.clone(),
                    alpha,
                    eta,
                    delta,
                    mu,
                    m0: as_matrix(&state[0]),
                };
                let w0 = if self.ftrl() { as_matrix(&state[2]) } else { update::reference::primal(cfg, &inp.m0) };
                let o = update::reference::forward_from(cfg, &inp, w0, as_matrix(&state[1]));
                let mut st = vec![o.state.into_dyn(), o.s.into_dyn()];
                if self.ftrl() {
                    st.push(o.w.into_dyn());
                }
                (o.y, st)
            }
            Memory::Mlp { .. } => {
                let inp = mlp::reference::Inputs {
                    k: x.k.clone(),
                    v: x.v.clone(),
                    q: x.q.clone(),
                    alpha,
                    eta,
                    delta,
                    mu,
                    a1_0: as_matrix(&state[0]),
                    a2_0: as_matrix(&state[1]),
                };
                let w0 = if self.ftrl() {
                    [as_matrix(&state[4]), as_matrix(&state[5])]
                } else {
                    [update::reference::primal(cfg, &inp.a1_0), update::reference::primal(cfg, &inp.a2_0)]
                };
                let o = mlp::reference::forward_from(cfg, &inp, w0, [as_matrix(&state[2]), as_matrix(&state[3])]);
                let mut st = vec![o.a1.into_dyn(), o.a2.into_dyn(), o.s1.into_dyn(), o.s2.into_dyn()];
                if self.ftrl() {
                    st.extend([o.w1.into_dyn(), o.w2.into_dyn()]);
                }
                (o.y, st)
            }
        }
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        let cfg = &self.config;
        match cfg.memory {
            Memory::Linear => {
                let w = if self.ftrl() {
                    as_matrix(&state[2])
                } else {
                    update::reference::primal(cfg, &as_matrix(&state[0]))
                };
                q.dot(&w.t())
            }
            Memory::Mlp { .. } => {
                let (w1, w2) = if self.ftrl() {
                    (as_matrix(&state[4]), as_matrix(&state[5]))
                } else {
                    (
                        update::reference::primal(cfg, &as_matrix(&state[0])),
                        update::reference::primal(cfg, &as_matrix(&state[1])),
                    )
                };
                let mut y = Array2::zeros(q.raw_dim());
                for (t, row) in q.rows().into_iter().enumerate() {
                    y.row_mut(t).assign(&mlp::reference::read(&w1, &w2, row));
                }
                y
            }
        }
    }
}

/// Moneta, Yaad or Memora (§5.3), token by token (`chunk = 1`) or chunkwise (Eqs. 28–32).
#[derive(Debug, Clone, PartialEq)]
pub struct MirasModel {
    pub model: Model,
    pub chunk: usize,
    pub settings: MirasGates,
}

impl MemoryRule for MirasModel {
    fn name(&self) -> String {
        format!("{:?}(chunk={})", self.model, self.chunk)
    }
    fn gates(&self) -> Vec<GateSpec> {
        framework_gates(&self.model.config(), &self.settings)
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let cfg = self.model.config();
        let meaning = if cfg.retention.has_dual_state() { "carried dual state (A or Z)" } else { "memory W" };
        vec![matrix_state("m", meaning, (d_v, "d_v"), (d_k, "d_k"), carried_init(&cfg, d_k))]
    }
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &[Tensor],
        state: &[Tensor],
        _read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let cfg = self.model.config();
        let [alpha, eta, delta, mu] = expand_tch(&cfg, g);
        let o = if self.chunk <= 1 {
            let w0 = update::torch::primal(&cfg, &state[0]);
            let s0 = w0.zeros_like();
            update::torch::forward_from(&cfg, k, v, q, &alpha, &eta, &delta, &mu, &state[0], &w0, &s0)
        } else {
            models::torch::chunkwise(&self.model, k, v, q, &alpha, &eta, &delta, &state[0], self.chunk as i64)
        };
        (o.y, vec![o.state])
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        let w = update::torch::primal(&self.model.config(), &state[0]);
        q.matmul(&w.transpose(-2, -1))
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        _read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let cfg = self.model.config();
        let [alpha, eta, delta, mu] = expand_ref(&cfg, &x.gates);
        let inp = update::reference::Inputs {
            k: x.k.clone(),
            v: x.v.clone(),
            q: x.q.clone(),
            alpha,
            eta,
            delta,
            mu,
            m0: as_matrix(&state[0]),
        };
        let o = if self.chunk <= 1 {
            update::reference::forward(&cfg, &inp)
        } else {
            models::reference::chunkwise(&self.model, &inp, self.chunk)
        };
        (o.y, vec![o.state.into_dyn()])
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        let w = update::reference::primal(&self.model.config(), &as_matrix(&state[0]));
        q.dot(&w.t())
    }
}
