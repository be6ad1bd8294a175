//! ATLAS (arXiv 2505.23735 v1) §3.2–3.3 and §5: the **Omega rule** — the memory fits the last `c` tokens, each
//! weighted by its own gate — with gradient descent and momentum (OmegaNet, Eqs. 9–11, 15–16, 56) or with the
//! momentum orthogonalised by Newton–Schulz (Atlas, Eqs. 32–33, 34–41, 57–58); linear memory (Eq. 11) or deep
//! memory (an MLP, Eq. 42 without the residual). Project letters (catalog §0): `α` forgetting, `η` momentum decay,
//! `θ` learning rate, `γ_i` window weight of token `i`, `λ` the step after Newton–Schulz.
//!
//! With `φ_i = φ(k_i)` the polynomial features of [`super::features`] and the window `W_t = {t−c+1, …, t}`:
//!
//! * Eq. 9, the window objective and its gradient (factor 2 written out, no hidden ½):
//!   $$J_t(\mathcal M) = \sum_{i\in W_t}\gamma_i\,\lVert \mathcal M(\phi_i) - v_i\rVert_2^2,\qquad
//!   \nabla J_t(M) = 2\sum_{i\in W_t}\gamma_i\,(M\phi_i - v_i)\,\phi_i^\top\ \ \text{(linear memory)}$$
//! * Eqs. 10/13/56 (OmegaNet; GD with momentum, `η = 0` is plain GD):
//!   $$S_t = \eta_t S_{t-1} - \theta_t\,\nabla J_t(\mathcal M_{t-1}),\qquad \mathcal M_t = (1-\alpha_t)\mathcal M_{t-1} + S_t$$
//!   (with `η = 0` and a linear memory this is Eq. 11's closed form
//!   `M_t = M_{t−1}((1−α_t)I − 2θ_tΣγ_iφ_iφ_iᵀ) + 2θ_tΣγ_i v_iφ_iᵀ`, corrected: write added, projector on the right).
//! * Eqs. 32–33/57–58 (Atlas; Muon):
//!   $$S_t = \eta_t S_{t-1} - \theta_t\,\nabla J_t(\mathcal M_{t-1}),\qquad
//!   \mathcal M_t = (1-\alpha_t)\mathcal M_{t-1} + \lambda_t\,\mathrm{NS}_k(S_t)$$
//!   Newton–Schulz ([`crate::newton_schulz`], Muon's quintic, `k = 5`) acts on each weight matrix of the memory
//!   separately. The step `λ_t` sits **outside** NS: NS normalises its input, so a step inside (Eq. 58's `η_i`)
//!   could never set the size of the update (catalog ⚠ at Eq. 32). NS is odd, so Eq. 32's `−η NS(+S)` and
//!   Eq. 57's `+NS(−S)` are the same descent.
//! * Eq. 16/34–41, chunkwise (chunk size `b`, counted from the call's first token): every window gradient of a chunk
//!   is taken at the chunk's start state `M_s`; momentum, NS and forgetting still run token by token (NS of the
//!   whole chunk's momenta in one batched call, Eq. 40). `b = 1` is the sequential rule.
//! * The window at the start: the paper does not say what happens for `i < 1`; here the state carries a **halo**
//!   of the last `c − 1` raw keys, values and weights `γ`. A fresh sequence starts with a zero halo, and `γ = 0`
//!   drops those terms (the truncated window, catalog §0); across calls the halo makes one call equal two chained
//!   calls, and at chunk starts the halo tokens' terms are evaluated at `M_s` like every other term (catalog ⚠ at
//!   Eq. 16: cross-chunk windows unspecified).
//! * Reads: `y_t = M_t(φ(q_t))` (after write, default) or `y_t = M_{t−1}(φ(q_t))`.
//!
//! [`reference`]: f64 ndarray, one head, token by token, window gradients by hand (the deep memory's per-token
//! gradient is Titans' hand-written backprop, [`crate::titans::mlp_memory::reference::inner_grad`]).
//! [`torch`]: tch batched over `[B, H]`, window gradients as a banded mask times per-token terms (one einsum for
//! the linear memory; autograd per-token gradients for the deep memory), NS batched over the chunk.

use super::features::PolyFeatures;
use crate::newton_schulz;
use crate::titans::mlp_memory::MlpConfig;

pub use crate::memory::ReadMode;

/// Muon's part of Atlas: which Newton–Schulz polynomial and how many steps (`NS-5` = quintic, 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Muon {
    pub kind: newton_schulz::Kind,
    pub steps: usize,
}

/// The attentional bias of the window objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bias {
    /// `‖M(φ_i) − v_i‖²`: the Omega rule (OmegaNet, Atlas)
    #[default]
    L2,
    /// `−⟨M(φ_i), v_i⟩`: DLA with `c = 1` (Eqs. 19, 50–51; with a linear memory gated linear attention) and SWLA
    /// with `c > 1` (Eqs. 20, 54–55); for a linear memory the gradient `−Σ γ_i v_i φ_iᵀ` does not depend on `M`. The sign is the
    /// one that makes the printed `+v φᵀ` write a descent step (catalog ⚠ at Eqs. 19, 45, 55).
    Dot,
}

/// One Omega-rule memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OmegaConfig {
    /// `c ≥ 1`, the window length (1 = the online delta rule / Titans)
    pub window: usize,
    pub features: PolyFeatures,
    /// `None`: linear memory `M ∈ R^{d_v×D}`; `Some`: deep memory (an MLP on `φ(k)`, `hidden` set by the caller)
    pub mlp: Option<MlpConfig>,
    /// `None`: OmegaNet (GD with momentum); `Some`: Atlas
    pub muon: Option<Muon>,
    pub bias: Bias,
}

impl OmegaConfig {
    /// `(rows, cols)` of every weight matrix for keys of width `d_k` and values of width `d_v`.
    pub fn shapes(&self, d_k: usize, d_v: usize) -> Vec<(usize, usize)> {
        let d_in = self.features.width(d_k);
        match &self.mlp {
            None => vec![(d_v, d_in)],
            Some(cfg) => cfg.shapes(d_in, d_v),
        }
    }
    pub fn halo(&self) -> usize {
        self.window.saturating_sub(1)
    }
}

/// The f64 reference: one head, token by token.
pub mod reference {
    use super::{OmegaConfig, ReadMode};
    use crate::atlas::features::reference::{phi, phi_rows};
    use crate::newton_schulz::reference::orthogonalize;
    use crate::titans::mlp_memory::reference::{apply, inner_grad};
    use ndarray::{concatenate, s, Array1, Array2, ArrayView1, ArrayView2, Axis};

    /// Weight matrices of the memory (one for the linear memory), or their momenta.
    pub type Params = Vec<Array2<f64>>;

    /// One head's inputs; rows are tokens. `lambda` only for Atlas. The halo holds the `c − 1` tokens before
    /// the first one (raw keys, values, weights); zeros (γ = 0) at the start of a sequence.
    #[derive(Debug, Clone)]
    pub struct Inputs {
        pub k: Array2<f64>,
        pub v: Array2<f64>,
        pub q: Array2<f64>,
        pub alpha: Array1<f64>,
        pub eta: Array1<f64>,
        pub theta: Array1<f64>,
        pub gamma: Array1<f64>,
        pub lambda: Option<Array1<f64>>,
        pub m0: Params,
        pub s0: Params,
        pub halo_k: Array2<f64>,
        pub halo_v: Array2<f64>,
        pub halo_gamma: Array1<f64>,
    }

    /// Outputs `y [T, d_v]`, final memory and momentum, and the halo the next call starts from.
    #[derive(Debug, Clone)]
    pub struct Output {
        pub y: Array2<f64>,
        pub m: Params,
        pub s: Params,
        pub halo_k: Array2<f64>,
        pub halo_v: Array2<f64>,
        pub halo_gamma: Array1<f64>,
    }

    /// The memory's read `M(φ)` of one feature vector.
    pub fn read(cfg: &OmegaConfig, m: &Params, phi_x: ArrayView1<f64>) -> Array1<f64> {
        match &cfg.mlp {
            None => m[0].dot(&phi_x),
            Some(mlp) => apply(m, mlp, phi_x),
        }
    }

    /// Eq. 9's gradient `∇J(M) = Σ_i γ_i ∇‖M(φ_i) − v_i‖²` over the rows of `phis`, `vs`. Linear memory:
    /// `2 Σ_i γ_i (M φ_i − v_i) φ_iᵀ`, one outer product per token; deep memory: Titans' hand backprop per token.
    pub fn window_grad(
        cfg: &OmegaConfig,
        m: &Params,
        phis: ArrayView2<f64>,
        vs: ArrayView2<f64>,
        gammas: ArrayView1<f64>,
    ) -> Params {
        let mut g: Params = m.iter().map(|w| Array2::zeros(w.raw_dim())).collect();
        for i in 0..phis.nrows() {
            let (p, v, gam) = (phis.row(i), vs.row(i), gammas[i]);
            match &cfg.mlp {
                None if cfg.bias == super::Bias::Dot => {
                    // ∇(−⟨Mφ, v⟩) = −v φᵀ
                    for r in 0..v.len() {
                        for c in 0..p.len() {
                            g[0][[r, c]] -= gam * v[r] * p[c];
                        }
                    }
                }
                None => {
                    let e = m[0].dot(&p) - v;
                    for r in 0..e.len() {
                        for c in 0..p.len() {
                            g[0][[r, c]] += 2.0 * gam * e[r] * p[c];
                        }
                    }
                }
                Some(mlp) => {
                    // ℓ2: Titans' hand backprop of ‖M(φ) − v‖². Dot (deep DLA, Eqs. 19/50): the same backward pass
                    // from the output error −v, obtained as the ℓ2 gradient with scale ½ and target M(φ) + v, whose
                    // output error 2·½·(M(φ) − M(φ) − v) is exactly −v = ∂(−⟨M(φ), v⟩)/∂M(φ)
                    let (target, scale) = match cfg.bias {
                        super::Bias::L2 => (v.to_owned(), 1.0),
                        super::Bias::Dot => (apply(m, mlp, p) + v, 0.5),
                    };
                    for (gl, ul) in g.iter_mut().zip(inner_grad(m, mlp, p, target.view(), scale)) {
                        *gl = &*gl + &(ul * gam);
                    }
                }
            }
        }
        g
    }

    /// The whole call, chunk size `chunk` (1 = sequential Eqs. 10/32; > 1 = Eq. 16's gradients at the chunk start).
    pub fn forward(cfg: &OmegaConfig, inp: &Inputs, chunk: usize, read_mode: ReadMode) -> Output {
        let t_len = inp.k.nrows();
        let c = cfg.window;
        let h = cfg.halo();
        // the halo, then this call's tokens: token t sits at position t + h, its window is [t, t + h]
        let k_all = concatenate(Axis(0), &[inp.halo_k.view(), inp.k.view()]).expect("halo keys and keys");
        let v_all = concatenate(Axis(0), &[inp.halo_v.view(), inp.v.view()]).expect("halo values and values");
        let g_all = concatenate(Axis(0), &[inp.halo_gamma.view(), inp.gamma.view()]).expect("halo and gates");
        let phi_all = phi_rows(&cfg.features, k_all.view());
        let mut m = inp.m0.clone();
        let mut s = inp.s0.clone();
        let mut m_start = m.clone();
        let mut y = Array2::zeros((t_len, inp.v.ncols()));
        for t in 0..t_len {
            if t % chunk.max(1) == 0 {
                m_start = m.clone();
            }
            // ∇J_t at the chunk's start state (= M_{t−1} when chunk = 1), window W_t = [t − c + 1, t]
            let win = s![t..t + c, ..];
            let grad = window_grad(cfg, &m_start, phi_all.slice(win), v_all.slice(win), g_all.slice(s![t..t + c]));
            let m_prev = m.clone();
            for l in 0..m.len() {
                // S_t = η_t S_{t−1} − θ_t ∇J_t
                s[l] = &s[l] * inp.eta[t] - &grad[l] * inp.theta[t];
                // M_t = (1 − α_t) M_{t−1} + S_t            (OmegaNet)
                // M_t = (1 − α_t) M_{t−1} + λ_t NS_k(S_t)  (Atlas)
                let step = match (&cfg.muon, &inp.lambda) {
                    (Some(mu), Some(lam)) => orthogonalize(&s[l], mu.kind, mu.steps) * lam[t],
                    (None, _) => s[l].clone(),
                    (Some(_), None) => panic!("Atlas needs the step gate λ"),
                };
                m[l] = &m[l] * (1.0 - inp.alpha[t]) + step;
            }
            let phi_q = phi(&cfg.features, inp.q.row(t));
            let from = if read_mode == ReadMode::AfterWrite { &m } else { &m_prev };
            y.row_mut(t).assign(&read(cfg, from, phi_q.view()));
        }
        let n = k_all.nrows();
        Output {
            y,
            m,
            s,
            halo_k: k_all.slice(s![n - h.., ..]).to_owned(),
            halo_v: v_all.slice(s![n - h.., ..]).to_owned(),
            halo_gamma: g_all.slice(s![n - h..]).to_owned(),
        }
    }
}

/// tch, batched over `[B, H]`, differentiable by autograd (second order through the deep memory's gradients).
pub mod torch {
    use super::{OmegaConfig, ReadMode};
    use crate::atlas::features::torch::phi;
    use crate::newton_schulz::torch::orthogonalize;
    use crate::titans::chunkwise::torch::per_token_grads;
    use crate::titans::mlp_memory::torch::apply;
    use tch::{Kind, Tensor};

    /// `y [B, H, T, d_v]`, final weights and momenta (`[B, H, rows, cols]` each), and the next halo
    /// (`[B, H, c−1, d_k]`, `[B, H, c−1, d_v]`, `[B, H, c−1]`; absent when `c = 1`).
    #[derive(Debug)]
    pub struct Outputs {
        pub y: Tensor,
        pub m: Vec<Tensor>,
        pub s: Vec<Tensor>,
        pub halo: Option<[Tensor; 3]>,
    }

    /// The gates in the order of the rule: `α, η, θ, γ` and `λ` for Atlas, each `[B, H, T]`.
    pub struct Gates<'a> {
        pub alpha: &'a Tensor,
        pub eta: &'a Tensor,
        pub theta: &'a Tensor,
        pub gamma: &'a Tensor,
        pub lambda: Option<&'a Tensor>,
    }

    /// The memory's read of feature rows `x [B, H, N, D]` with shared weights.
    pub fn read(cfg: &OmegaConfig, m: &[Tensor], x: &Tensor) -> Tensor {
        match &cfg.mlp {
            None => x.matmul(&m[0].transpose(-2, -1)),
            Some(mlp) => apply(m, mlp, x),
        }
    }

    /// The band mask of a chunk of `len` tokens over its `len + c − 1` window tokens: row `n` covers columns
    /// `n … n + c − 1` (the paper's sliding-window mask, identity plus `c − 1` diagonals).
    fn band(len: i64, c: i64, like: &Tensor) -> Tensor {
        let rows = Tensor::arange(len, (Kind::Int64, like.device())).unsqueeze(-1);
        let cols = Tensor::arange(len + c - 1, (Kind::Int64, like.device())).unsqueeze(0);
        let d = cols - rows;
        (d.ge(0).logical_and(&d.le(c - 1))).to_kind(like.kind())
    }

    /// Every `∇J_n(M_s)` of one chunk: `w [B, H, len, N]` window weights (mask times γ), `phis [B, H, N, D]`,
    /// `vs [B, H, N, d_v]`; returns per layer `[B, H, len, rows, cols]`.
    fn chunk_grads(cfg: &OmegaConfig, m: &[Tensor], w: &Tensor, phis: &Tensor, vs: &Tensor) -> Vec<Tensor> {
        match &cfg.mlp {
            None if cfg.bias == super::Bias::Dot => {
                // ∇J_n = −Σ_i w_{ni} v_i φ_iᵀ (independent of M)
                vec![-Tensor::einsum("bhni,bhiv,bhid->bhnvd", &[w, vs, phis], None::<i64>)]
            }
            None => {
                // ∇J_n = 2 Σ_i w_{ni} (M_s φ_i − v_i) φ_iᵀ, as one einsum (Eq. 16's mask applied to the errors)
                let e = read(cfg, m, phis) - vs;
                vec![Tensor::einsum("bhni,bhiv,bhid->bhnvd", &[w, &e, phis], None::<i64>) * 2.0]
            }
            Some(mlp) => {
                // per-token gradients at the shared start weights (autograd), mixed by the window weights; the
                // dot bias as the ℓ2 loss with scale ½ and target M_s(φ_i) + v_i (output error −v_i, see reference)
                let u = match cfg.bias {
                    super::Bias::L2 => per_token_grads(m, mlp, phis, vs, 1.0),
                    super::Bias::Dot => per_token_grads(m, mlp, phis, &(read(cfg, m, phis) + vs), 0.5),
                };
                u.iter()
                    .map(|ul| {
                        let sz = ul.size();
                        let (b, h, n, r, c) = (sz[0], sz[1], sz[2], sz[3], sz[4]);
                        let len = w.size()[2];
                        w.matmul(&ul.reshape([b, h, n, r * c])).reshape([b, h, len, r, c])
                    })
                    .collect()
            }
        }
    }

    /// The whole call. `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, `m0, s0` per layer `[B, H, rows, cols]`,
    /// `halo` = (keys, values, γ) of the `c − 1` tokens before (required when `c > 1`).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        cfg: &OmegaConfig,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        g: &Gates,
        m0: &[Tensor],
        s0: &[Tensor],
        halo: Option<[&Tensor; 3]>,
        chunk: usize,
        read_mode: ReadMode,
    ) -> Outputs {
        let t_len = k.size()[2];
        let c = cfg.window as i64;
        let (k_all, v_all, g_all) = match halo {
            Some([hk, hv, hg]) if c > 1 => {
                (Tensor::cat(&[hk, k], 2), Tensor::cat(&[hv, v], 2), Tensor::cat(&[hg, g.gamma], 2))
            }
            _ => (k.shallow_clone(), v.shallow_clone(), g.gamma.shallow_clone()),
        };
        assert_eq!(k_all.size()[2], t_len + c - 1, "the Omega rule with c > 1 needs a halo of c − 1 tokens");
        let phi_all = phi(&cfg.features, &k_all);
        let phi_q = phi(&cfg.features, q);
        let mut m: Vec<Tensor> = m0.iter().map(|x| x.shallow_clone()).collect();
        let mut s: Vec<Tensor> = s0.iter().map(|x| x.shallow_clone()).collect();
        let mut ys = Vec::with_capacity(t_len as usize);
        let b = chunk.max(1) as i64;
        let mut start = 0;
        while start < t_len {
            let len = b.min(t_len - start);
            let n_win = len + c - 1;
            // window weights of the chunk: w_{ni} = γ_i on the band, 0 elsewhere
            let w = band(len, c, &g_all) * g_all.narrow(2, start, n_win).unsqueeze(2);
            let grads = chunk_grads(cfg, &m, &w, &phi_all.narrow(2, start, n_win), &v_all.narrow(2, start, n_win));
            // momentum token by token (Eqs. 38–39), then NS of every momentum of the chunk at once (Eq. 40)
            let mut moms: Vec<Vec<Tensor>> = (0..m.len()).map(|_| vec![]).collect();
            for n in 0..len {
                let t = start + n;
                let eta = g.eta.select(2, t).unsqueeze(-1).unsqueeze(-1);
                let theta = g.theta.select(2, t).unsqueeze(-1).unsqueeze(-1);
                for l in 0..m.len() {
                    // S_t = η_t S_{t−1} − θ_t ∇J_t(M_s)
                    s[l] = &s[l] * &eta - grads[l].select(2, n) * &theta;
                    moms[l].push(s[l].shallow_clone());
                }
            }
            let steps: Vec<Tensor> = moms
                .iter()
                .map(|ml| {
                    let stacked = Tensor::stack(ml, 2);
                    match (&cfg.muon, g.lambda) {
                        (Some(mu), Some(lam)) => {
                            orthogonalize(&stacked, mu.kind, mu.steps)
                                * lam.narrow(2, start, len).unsqueeze(-1).unsqueeze(-1)
                        }
                        (None, _) => stacked,
                        (Some(_), None) => panic!("Atlas needs the step gate λ"),
                    }
                })
                .collect();
            for n in 0..len {
                let t = start + n;
                let keep = (g.alpha.select(2, t).unsqueeze(-1).unsqueeze(-1) * -1.0) + 1.0;
                let m_prev: Vec<Tensor> = m.iter().map(|x| x.shallow_clone()).collect();
                for l in 0..m.len() {
                    // M_t = (1 − α_t) M_{t−1} + S_t   or   + λ_t NS_k(S_t)
                    m[l] = &m[l] * &keep + steps[l].select(2, n);
                }
                let from = if read_mode == ReadMode::AfterWrite { &m } else { &m_prev };
                ys.push(read(cfg, from, &phi_q.narrow(2, t, 1)));
            }
            start += len;
        }
        let n_all = k_all.size()[2];
        let halo = (c > 1).then(|| {
            [
                k_all.narrow(2, n_all - (c - 1), c - 1),
                v_all.narrow(2, n_all - (c - 1), c - 1),
                g_all.narrow(2, n_all - (c - 1), c - 1),
            ]
        });
        Outputs { y: Tensor::cat(&ys, 2), m, s, halo }
    }
}
