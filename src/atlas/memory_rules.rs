//! ATLAS' memories as [`MemoryRule`]s: the Omega rule with polynomial features and GD with momentum (OmegaNet,
//! Eqs. 9–11, 56; linear or deep memory), and the same with the momentum orthogonalised by Newton–Schulz (Atlas,
//! Eqs. 32–33, 57–58). The mathematics is in [`super::omega`] and [`super::features`]; this file describes each
//! rule once (gates, state, both implementations) for the layer, the generic check and `repro eval`.
//!
//! Gates (per head and token): `α ∈ (0, 1)` forgetting (starts at σ(−4) ≈ 0.018), `η ∈ (0, 1)` momentum decay
//! (starts at ½; pinned 0 without momentum, OmegaNet's plain GD), `θ ∈ (0, max_lr)` learning rate, `γ ∈ (0, 1)`
//! the window weight of token `i` (starts at σ(2) ≈ 0.88; it depends on token `i` only, which keeps Eq. 16's
//! mask form exact — the paper leaves the parametrisation open, catalog ⚠ at Eq. 9), and for Atlas `λ ∈ (0,
//! max_lr)` the step after Newton–Schulz. State: the memory `M` (or `W^{(l)}`) and its momentum `S` on the
//! feature width `D`, then — when `c > 1` — the halo of the last `c − 1` raw keys, values and weights `γ`.

use super::features::PolyFeatures;
use super::omega::{self, OmegaConfig, ReadMode};
use crate::memory::rule::{as_matrix, GateSpec, HeadInputs, MemoryRule, StateDraw, StateInit, StateSpec};
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Ix1};
use tch::Tensor;

/// The gate settings shared by the layer's other memories.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OmegaGates {
    pub max_lr: f64,
    pub momentum: bool,
    pub forgetting: bool,
}

/// OmegaNet (`muon = None`) or Atlas (`muon = Some`), linear or deep, sequential or chunkwise.
#[derive(Debug, Clone, PartialEq)]
pub struct OmegaRule {
    pub config: OmegaConfig,
    pub gates: OmegaGates,
    pub chunk: usize,
    /// the deep memory's hidden width is `expansion · d_k`
    pub expansion: usize,
}

/// The shape fields of `model.memory` for `omega` / `atlas`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub window: usize,
    pub degree: usize,
    pub layers: usize,
    pub expansion: usize,
    pub activation: crate::titans::mlp_memory::Activation,
    pub residual: bool,
    /// `l2` (the Omega rule) or `dot` (DLA / SWLA; deep memories included)
    pub bias: omega::Bias,
}

/// The ceiling of `θ` (and of Atlas' `λ`) when `max_lr` is not given.
///
/// * Omega, linear memory: `0.5 / (c · Σ_j a_j)`. With unit keys `‖φ(k)‖² = Σ_{j≤p} 1/j!` (2.5 at `p = 2`), so
///   the window's Hessian `2θ Σ_i γ_i φ_iφ_iᵀ` has norm at most `2θ c Σ_j a_j`; at the initial `θ = max_lr/2` this
///   is 0.5, the same contraction as the linear memory's 0.5 (`2θ‖k‖²` at `θ = 0.25`).
/// * Omega, deep memory: the same division of Titans' deep-memory ceiling 0.02 (measured there).
/// * Atlas: `θ` only weighs a token against the momentum (NS normalises); `λ` is the spectral size of every
///   step, at most ≈ 1.2λ whatever the gradient (NS's band), so the growth that set Titans' deep ceiling (its
///   gradient scales with the weights) cannot happen; with forgetting the memory stays below ≈ 1.2λ/α. 0.1 for
///   the linear and the deep memory: at 0.02 (λ = 0.01) the deep Atlas memory was inert in the `atlas` study's
///   model — 20 training steps gave the same loss to 2e-4 bpc for windows c = 1, 2, 4, 8.
pub fn default_max_lr(window: usize, degree: usize, layers: usize, atlas: bool) -> f64 {
    let norm = PolyFeatures { degree }.unit_norm_sq() * window.max(1) as f64;
    match (atlas, layers > 1) {
        (false, false) => 0.5 / norm,
        (false, true) => 0.02 / norm,
        (true, _) => 0.1,
    }
}

impl OmegaRule {
    /// Checks the fields and builds the rule (`muon = None`: OmegaNet/Omega; `Some`: Atlas).
    pub fn new(shape: Shape, muon: Option<omega::Muon>, gates: OmegaGates, chunk: usize) -> anyhow::Result<Self> {
        let kind = if muon.is_some() { "atlas" } else { "omega" };
        anyhow::ensure!(shape.window >= 1, "{kind}: window must be at least 1 (c = 1 is the online delta rule)");
        anyhow::ensure!(shape.degree >= 1, "{kind}: degree must be at least 1 (1 = no polynomial mapping)");
        anyhow::ensure!(shape.degree <= 4, "{kind}: degree must be at most 4 (the feature width grows as d^degree)");
        anyhow::ensure!(shape.layers >= 1, "{kind}: layers must be at least 1 (1 = linear memory)");
        anyhow::ensure!(shape.expansion >= 1, "{kind}: expansion must be at least 1");
        anyhow::ensure!(!shape.residual || shape.layers > 1, "{kind}: residual needs a deep memory (layers >= 2)");
        let mlp = (shape.layers > 1).then(|| crate::titans::mlp_memory::MlpConfig {
            layers: shape.layers,
            hidden: 0,
            activation: shape.activation,
            residual: shape.residual,
        });
        let config = OmegaConfig {
            window: shape.window,
            features: PolyFeatures { degree: shape.degree },
            mlp,
            muon,
            bias: shape.bias,
        };
        Ok(Self { config, gates, chunk: chunk.max(1), expansion: shape.expansion })
    }
    /// The configuration with the deep memory's hidden width set for keys of width `d_k`.
    pub fn config(&self, d_k: usize) -> OmegaConfig {
        let mut c = self.config;
        if let Some(mlp) = c.mlp.as_mut() {
            mlp.hidden = self.expansion * d_k;
        }
        c
    }
    fn n_layers(&self) -> usize {
        self.config.mlp.map_or(1, |m| m.layers)
    }
    fn features(&self) -> PolyFeatures {
        self.config.features
    }
}

impl MemoryRule for OmegaRule {
    fn name(&self) -> String {
        let which = match (self.config.muon.is_some(), self.config.bias) {
            (true, _) => "atlas",
            (false, omega::Bias::L2) => "omega",
            (false, omega::Bias::Dot) => "omega-dot (DLA/SWLA)",
        };
        let mem = match &self.config.mlp {
            None => "linear".to_string(),
            Some(m) => format!("mlp L_M={} x{} {}", m.layers, self.expansion, m.activation.name()),
        };
        format!("{which}(c={}, p={}, {mem}, chunk={})", self.config.window, self.config.features.degree, self.chunk)
    }
    fn gates(&self) -> Vec<GateSpec> {
        let g = &self.gates;
        let mut v = vec![
            GateSpec::learned("alpha", "forgetting α_t (ATLAS' α^A = 1 − α)", (0.0, 1.0), -4.0, (0.0, 0.3))
                .pinned_if(!g.forgetting, 0.0),
            GateSpec::learned("eta", "momentum decay η_t (ATLAS' θ^A)", (0.0, 1.0), 0.0, (0.0, 0.9))
                .pinned_if(!g.momentum, 0.0),
            GateSpec::learned("theta", "learning rate θ_t (ATLAS' η^A)", (0.0, g.max_lr), 0.0, (0.02, 0.12)),
            GateSpec::learned("gamma", "window weight γ_i of token i (Eq. 9)", (0.0, 1.0), 2.0, (0.2, 1.0)),
        ];
        if self.config.muon.is_some() {
            v.push(GateSpec::learned(
                "lambda",
                "step λ_t after Newton–Schulz (ATLAS' η^A of Eq. 32)",
                (0.0, g.max_lr),
                0.0,
                (0.02, 0.2),
            ));
        }
        v
    }
    fn state(&self, d_k: usize, d_v: usize) -> Vec<StateSpec> {
        let cfg = self.config(d_k);
        let shapes = cfg.shapes(d_k, d_v);
        let n = shapes.len();
        let deep = cfg.mlp.is_some();
        let spec = |l: usize, weights: bool| {
            let (rows, cols) = shapes[l];
            let std = 1.0 / (cols as f64).sqrt();
            let (name, meaning) = if !deep {
                if weights {
                    ("m".to_string(), "memory M on the features φ(k) (d_v × D)".to_string())
                } else {
                    ("s".to_string(), "momentum S of M".to_string())
                }
            } else if weights {
                (format!("w{}", l + 1), format!("weights W^({}) of the deep memory", l + 1))
            } else {
                (format!("s{}", l + 1), format!("momentum S^({})", l + 1))
            };
            StateSpec {
                name,
                meaning,
                shape: vec![rows, cols],
                dims: vec![
                    if l + 1 == n { "d_v".into() } else { "hidden".into() },
                    if l == 0 { "D".into() } else { "hidden".into() },
                ],
                init: if weights && deep { StateInit::Learned { std } } else { StateInit::Zeros },
                draw: StateDraw::Normal { scale: if weights { std.max(0.3) } else { 0.1 } },
            }
        };
        let mut v: Vec<StateSpec> = (0..n).map(|l| spec(l, true)).chain((0..n).map(|l| spec(l, false))).collect();
        let h = cfg.halo();
        if h > 0 {
            let halo = |name: &str, meaning: &str, shape: Vec<usize>, dims: Vec<String>, draw| StateSpec {
                name: name.into(),
                meaning: meaning.into(),
                shape,
                dims,
                init: StateInit::Zeros,
                draw,
            };
            v.push(halo(
                "halo_k",
                "raw keys of the c − 1 tokens before (the window's halo)",
                vec![h, d_k],
                vec!["c-1".into(), "d_k".into()],
                StateDraw::Normal { scale: 0.5 },
            ));
            v.push(halo(
                "halo_v",
                "values of the c − 1 tokens before",
                vec![h, d_v],
                vec!["c-1".into(), "d_v".into()],
                StateDraw::Normal { scale: 1.0 },
            ));
            v.push(halo(
                "halo_gamma",
                "window weights γ of the c − 1 tokens before (0 = no token: a fresh sequence)",
                vec![h],
                vec!["c-1".into()],
                StateDraw::Uniform { lo: 0.0, hi: 1.0 },
            ));
        }
        v
    }
    fn validate_dims(&self, d_k: usize, d_v: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.config.window >= 1, "window must be at least 1 (got 0)");
        anyhow::ensure!(self.config.features.degree >= 1, "degree must be at least 1 (1 = no polynomial mapping)");
        if let Some(mlp) = &self.config.mlp {
            anyhow::ensure!(mlp.layers >= 1 && self.expansion >= 1, "layers and expansion must be at least 1");
            anyhow::ensure!(
                !mlp.residual || (self.config.features.identity() && d_k == d_v),
                "residual: the memory's input φ(k) has width {} and its output d_v = {d_v}; a residual memory \
                 needs degree 1 (no polynomial mapping) and d_k = d_v",
                self.config.features.width(d_k)
            );
        }
        Ok(())
    }
    /// Atlas only: the f32 bound of its outer gradients (`tolerance::TORCH_F32_NEWTON_SCHULZ_GRADIENT`, reasons
    /// there); its forward pass keeps the ordinary f32 bound.
    fn f32_gradient_tolerance(&self) -> Option<f64> {
        self.config.muon.is_some().then_some(crate::tolerance::TORCH_F32_NEWTON_SCHULZ_GRADIENT)
    }
    fn reads_before_write(&self) -> bool {
        true
    }
    fn forward(
        &self,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &[Tensor],
        state: &[Tensor],
        read: ReadMode,
    ) -> (Tensor, Vec<Tensor>) {
        let cfg = self.config(k.size()[3] as usize);
        let n = self.n_layers();
        let gates = omega::torch::Gates { alpha: &g[0], eta: &g[1], theta: &g[2], gamma: &g[3], lambda: g.get(4) };
        let halo = (cfg.halo() > 0).then(|| [&state[2 * n], &state[2 * n + 1], &state[2 * n + 2]]);
        let o = omega::torch::forward(&cfg, k, v, q, &gates, &state[..n], &state[n..2 * n], halo, self.chunk, read);
        let mut st = o.m;
        st.extend(o.s);
        if let Some(h) = o.halo {
            st.extend(h);
        }
        (o.y, st)
    }
    fn retrieve(&self, q: &Tensor, state: &[Tensor]) -> Tensor {
        let cfg = self.config(q.size()[3] as usize);
        omega::torch::read(&cfg, &state[..self.n_layers()], &super::features::torch::phi(&self.features(), q))
    }
    fn reference_forward(
        &self,
        x: &HeadInputs,
        state: &[ArrayD<f64>],
        read: ReadMode,
    ) -> (Array2<f64>, Vec<ArrayD<f64>>) {
        let cfg = self.config(x.k.ncols());
        let n = self.n_layers();
        let h = cfg.halo();
        let (halo_k, halo_v, halo_gamma) = if h > 0 {
            (
                as_matrix(&state[2 * n]),
                as_matrix(&state[2 * n + 1]),
                state[2 * n + 2].clone().into_dimensionality::<Ix1>().expect("rank-1 halo γ"),
            )
        } else {
            (Array2::zeros((0, x.k.ncols())), Array2::zeros((0, x.v.ncols())), Array1::zeros(0))
        };
        let inputs = omega::reference::Inputs {
            k: x.k.clone(),
            v: x.v.clone(),
            q: x.q.clone(),
            alpha: x.gates[0].clone(),
            eta: x.gates[1].clone(),
            theta: x.gates[2].clone(),
            gamma: x.gates[3].clone(),
            lambda: x.gates.get(4).cloned(),
            m0: state[..n].iter().map(as_matrix).collect(),
            s0: state[n..2 * n].iter().map(as_matrix).collect(),
            halo_k,
            halo_v,
            halo_gamma,
        };
        let o = omega::reference::forward(&cfg, &inputs, self.chunk, read);
        let mut st: Vec<ArrayD<f64>> = o.m.into_iter().chain(o.s).map(|a| a.into_dyn()).collect();
        if h > 0 {
            st.extend([o.halo_k.into_dyn(), o.halo_v.into_dyn(), o.halo_gamma.into_dyn()]);
        }
        (o.y, st)
    }
    fn reference_retrieve(&self, q: ArrayView2<f64>, state: &[ArrayD<f64>]) -> Array2<f64> {
        let cfg = self.config(q.ncols());
        let m: Vec<Array2<f64>> = state[..self.n_layers()].iter().map(as_matrix).collect();
        let phis = super::features::reference::phi_rows(&self.features(), q);
        let rows: Vec<Array1<f64>> = phis.rows().into_iter().map(|p| omega::reference::read(&cfg, &m, p)).collect();
        let d_v = rows.first().map_or(0, |r| r.len());
        Array2::from_shape_fn((q.nrows(), d_v), |(t, j)| rows[t][j])
    }
}
