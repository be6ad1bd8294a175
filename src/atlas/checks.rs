//! ATLAS' checks beyond backend agreement (the generic tch-vs-reference check of the `omega` / `atlas` memories
//! is `crate::memories::checks`): the polynomial kernel, the Omega rule's reductions (c = 1 → delta rule and
//! Titans; γ = 1 → the unweighted window sum of Eq. 15; a fixed window driven to convergence → the (weighted)
//! ridge / minimum-norm closed form of Eq. 14), and the properties of Newton–Schulz the paper relies on
//! (singular-value band by SVD, oddness, scale invariance, error against the number of steps).

use super::features::{self, PolyFeatures};
use super::omega::{self, Muon, OmegaConfig, ReadMode};
use crate::check::{Check, CheckEnv, Measurement};
use crate::newton_schulz::{self as ns, Kind as NsKind};
use crate::tensor::{from_tch, round_to_kind, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{s, Array1, Array2, Axis, Ix1, Ix2};
use ndarray_linalg::{Solve, QR, SVD};
use tch::{Kind, Tensor};

/// Every ATLAS check, by the name `papers/atlas.yaml` uses.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "atlas_poly_features",
            summary: "Eq. 5/22–23: φ_p(q)ᵀφ_p(k) (reference and tch) = Σ a_j (qᵀk)^j with a_j = 1/j!; width Σ d^j; → exp(qᵀk) as p grows; tch φ vs reference φ",
            run: poly_features,
        },
        Check {
            name: "atlas_omega_delta_rule",
            summary: "Eqs. 9–11: Omega with c = 1, γ = 1, α = 0, φ = id, no momentum (reference and tch) = DeltaNet M(I − βkkᵀ) + βvkᵀ with β = 2θ, written directly",
            run: omega_delta_rule,
        },
        Check {
            name: "atlas_omega_titans",
            summary: "Eqs. 12–13: Omega with c = 1, φ = id, momentum and forgetting (reference and tch) = Titans' linear memory reference",
            run: omega_titans,
        },
        Check {
            name: "atlas_omega_unweighted_sum",
            summary: "Eq. 15: Omega with γ = 1 on a window c = 3, polynomial φ (reference and tch, sequential) = M(1−α) − 2θ(MΦ_Wᵀ − V_Wᵀ)Φ_W over the window matrices, truncated at the start",
            run: omega_unweighted_sum,
        },
        Check {
            name: "atlas_swla_direct",
            summary: "Eqs. 20/51/55: the dot-product bias on the window (reference and tch, sequential) = M_t = (1−α_t)M_{t−1} + θ_t Σ_i γ_i v_i φ_iᵀ written directly: c = 1, φ = id (DLA linear = gated linear attention) and c = 3, p = 2 (SWLA), truncated at the start",
            run: swla_direct,
        },
        Check {
            name: "atlas_omega_ridge",
            summary: "Eq. 14: linear Omega memory on a fixed window repeated to convergence (reference sequential, tch chunkwise) = weighted ridge VᵀΓΦ(ΦᵀΓΦ + α/2θ I)⁻¹ (α > 0, p = 2) and minimum-norm VᵀΓK(KᵀΓK)⁺ (α = 0, φ = id), ndarray-linalg solves",
            run: omega_ridge,
        },
        Check {
            name: "atlas_attention_as_regression",
            summary: "Eqs. 17–18: for every query, the arg min of Σ_i exp(s·q_tᵀk_i)‖v_i − m‖² solved as weighted least squares (ndarray-linalg, f64) = the models' causal softmax attention (tch), global and sliding windows c = 1, 4, 9",
            run: super::regression_views::attention_as_regression,
        },
        Check {
            name: "atlas_unrolled_momentum",
            summary: "Eqs. 38–39: every momentum of a chunk in matrix form, β S_s − (H diag θ) U with the decay mask H_ti = Π η (tch, the chunkwise memories' coefficients) = the token scan S_t = η_t S_{t−1} − θ_t u_t (f64), C = 1, 7, 16",
            run: super::unrolled_momentum::check,
        },
        Check {
            name: "atlas_dot_kernelized",
            summary: "Eqs. 27–31: Dot with a linear memory in kernelized form (slot coefficients a_j of φ*(k_j)), tch vs f64 reference (outputs and coefficients), and the reference vs the Omega rule on φ* truncated at degree 8 (α = 0, no momentum, θ = 1), windows c = 1 and 3",
            run: super::dot::check,
        },
        Check {
            name: "atlas_gated_memory",
            summary: "Eq. 43: Atlas++'s gated memory M(x) = x + W1(SiLU(W2 x) ⊙ W3 x): read tch vs f64 reference, inner ℓ2 gradient tch autograd vs hand-written f64, hand-written vs central differences",
            run: super::gated_memory::check,
        },
        Check {
            name: "atlas_deep_transformer_linear",
            summary: "Eqs. 24–26: linear-memory DeepTransformer (Hebbian writes v φ_p(k)ᵀ, read φ_p(q); reference and tch) at degree 8 = unnormalised causal attention Σ v_i exp(q_tᵀk_i), and with the normaliser z_t = softmax attention, written directly (Taylor remainder ≤ e/9!); tch vs reference",
            run: deep_transformer_linear,
        },
        Check {
            name: "atlas_newton_schulz_band",
            summary: "§5: NS-5 quintic output singular values (SVD) in [0.6, 1.25] for random, tall and ill-conditioned (cond 100) inputs (reference and tch); cubic NS-40 singular values = 1 to 1e-6",
            run: newton_schulz_band,
        },
        Check {
            name: "atlas_newton_schulz_properties",
            summary: "§5/Eq. 32: NS odd, NS(−X) = −NS(X); scale-invariant, NS(cX) = NS(X); cubic error max|σ−1| non-increasing in the step count; quintic band kept for k = 5…12",
            run: newton_schulz_properties,
        },
    ]
}

fn arr2(a: &Arr) -> Array2<f64> {
    a.clone().into_dimensionality::<Ix2>().expect("rank 2")
}
fn arr1(a: &Arr) -> Array1<f64> {
    a.clone().into_dimensionality::<Ix1>().expect("rank 1")
}

/// Draws one head's Omega inputs (rounded to `kind`): unit keys/queries, gates in the given intervals.
#[allow(clippy::too_many_arguments)]
fn draw_inputs(
    seed: u64,
    t: usize,
    d_k: usize,
    d_v: usize,
    cfg: &OmegaConfig,
    gate: [(f64, f64); 4],
    kind: Kind,
) -> omega::reference::Inputs {
    let r = &mut Draw::new(seed);
    let rnd = |a: Arr| round_to_kind(&a, kind);
    let d_in = cfg.features.width(d_k);
    let h = cfg.halo();
    let mut g = gate.iter().map(|&(lo, hi)| arr1(&rnd(r.uniform(&[t], lo, hi.max(lo + 1e-12)))));
    let (alpha, eta, theta, gamma) = (g.next().unwrap(), g.next().unwrap(), g.next().unwrap(), g.next().unwrap());
    omega::reference::Inputs {
        k: arr2(&rnd(r.unit_rows(&[t, d_k]))),
        v: arr2(&rnd(r.normal(&[t, d_v], 1.0))),
        q: arr2(&rnd(r.unit_rows(&[t, d_k]))),
        alpha,
        eta,
        theta,
        gamma,
        lambda: None,
        m0: vec![arr2(&rnd(r.normal(&[d_v, d_in], 0.3)))],
        s0: vec![Array2::zeros((d_v, d_in))],
        halo_k: Array2::zeros((h, d_k)),
        halo_v: Array2::zeros((h, d_v)),
        halo_gamma: Array1::zeros(h),
    }
}

/// The tch implementation on one head's inputs (`[1, 1, …]`): `(y [T, d_v], M_T)`.
fn torch_run(
    env: &CheckEnv,
    cfg: &OmegaConfig,
    x: &omega::reference::Inputs,
    chunk: usize,
) -> Result<(Array2<f64>, Array2<f64>)> {
    let t4 = |a: &Array2<f64>| to_tch(&a.clone().into_dyn(), env.kind, env.device).unsqueeze(0).unsqueeze(0);
    let t3 = |a: &Array1<f64>| to_tch(&a.clone().into_dyn(), env.kind, env.device).unsqueeze(0).unsqueeze(0);
    let (alpha, eta, theta, gamma) = (t3(&x.alpha), t3(&x.eta), t3(&x.theta), t3(&x.gamma));
    let lambda = x.lambda.as_ref().map(t3);
    let g = omega::torch::Gates { alpha: &alpha, eta: &eta, theta: &theta, gamma: &gamma, lambda: lambda.as_ref() };
    let m0: Vec<Tensor> = x.m0.iter().map(t4).collect();
    let s0: Vec<Tensor> = x.s0.iter().map(t4).collect();
    let (hk, hv, hg) = (t4(&x.halo_k), t4(&x.halo_v), t3(&x.halo_gamma));
    let halo = (cfg.halo() > 0).then_some([&hk, &hv, &hg]);
    let o = tch::no_grad(|| {
        omega::torch::forward(cfg, &t4(&x.k), &t4(&x.v), &t4(&x.q), &g, &m0, &s0, halo, chunk, ReadMode::AfterWrite)
    });
    let y = arr2(&from_tch(&o.y.squeeze_dim(0).squeeze_dim(0))?);
    let m = arr2(&from_tch(&o.m[0].squeeze_dim(0).squeeze_dim(0))?);
    Ok((y, m))
}

fn linear(window: usize, degree: usize, muon: Option<Muon>) -> OmegaConfig {
    OmegaConfig { window, features: PolyFeatures { degree }, mlp: None, muon, bias: omega::Bias::L2 }
}

fn poly_features(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let r = &mut Draw::new(seed);
        for (d, p) in [(3usize, 2usize), (4, 3), (5, 1), (2, 4)] {
            let f = PolyFeatures { degree: p };
            let n = 7;
            let q = arr2(&round_to_kind(&r.normal(&[n, d], 0.7), env.kind));
            let k = arr2(&round_to_kind(&r.normal(&[n, d], 0.7), env.kind));
            let pq = features::reference::phi_rows(&f, q.view());
            let pk = features::reference::phi_rows(&f, k.view());
            let want_width = if p == 1 { d } else { (0..=p).map(|j| d.pow(j as u32)).sum() };
            let width_ok = pq.ncols() == want_width && f.width(d) == want_width;
            anyhow::ensure!(width_ok, "feature width {} for d = {d}, p = {p}; expected {want_width}", pq.ncols());
            // kernel Σ a_j (qᵀk)^j, written directly, for every pair
            let direct = Array2::from_shape_fn((n, n), |(i, j)| features::reference::kernel(&f, q.row(i), k.row(j)));
            let via_ref = pq.dot(&pk.t());
            let tag = format!("d = {d}, p = {p}, seed {seed}");
            out.push(Measurement::compare(
                format!("reference φ(q)ᵀφ(k) vs Σ a_j (qᵀk)^j ({tag})"),
                &via_ref.into_dyn(),
                &direct.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            let tq = features::torch::phi(&f, &to_tch(&q.clone().into_dyn(), env.kind, env.device));
            let tk = features::torch::phi(&f, &to_tch(&k.clone().into_dyn(), env.kind, env.device));
            out.push(Measurement::compare(
                format!("tch φ(q) vs reference φ(q) ({tag})"),
                &from_tch(&tq)?,
                &pq.into_dyn(),
                tolerance::torch_vs_reference(env.kind),
            )?);
            out.push(Measurement::compare(
                format!("tch φ(q)ᵀφ(k) vs Σ a_j (qᵀk)^j ({tag})"),
                &from_tch(&tq.matmul(&tk.transpose(0, 1)))?,
                &direct.into_dyn(),
                tolerance::torch_vs_reference(env.kind),
            )?);
        }
        // Eq. 23: the truncation converges to exp(qᵀk) for unit q, k; the Lagrange remainder at p = 8 is at most
        // e/9! = 7.5e-6 (|qᵀk| ≤ 1), so 1e-5 relative bounds it; p = 2 is ~1e-1 away
        let d = 3;
        let q = arr2(&r.unit_rows(&[5, d]));
        let k = arr2(&r.unit_rows(&[5, d]));
        let exact = Array2::from_shape_fn((5, 5), |(i, j)| q.row(i).dot(&k.row(j)).exp());
        let f8 = PolyFeatures { degree: 8 };
        let approx =
            features::reference::phi_rows(&f8, q.view()).dot(&features::reference::phi_rows(&f8, k.view()).t());
        out.push(Measurement::compare(
            format!("φ_8(q)ᵀφ_8(k) vs exp(qᵀk), unit vectors (seed {seed})"),
            &approx.into_dyn(),
            &exact.into_dyn(),
            1e-5,
        )?);
    }
    Ok(out)
}

/// DeltaNet written directly: `M_t = M_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ`, `y_t = M_t q_t`.
fn delta_rule(x: &omega::reference::Inputs, beta: &Array1<f64>) -> (Array2<f64>, Array2<f64>) {
    let mut m = x.m0[0].clone();
    let d_k = x.k.ncols();
    let mut y = Array2::zeros((x.k.nrows(), x.v.ncols()));
    for t in 0..x.k.nrows() {
        let k = x.k.row(t).insert_axis(Axis(1)).to_owned();
        let v = x.v.row(t).insert_axis(Axis(1)).to_owned();
        let proj = Array2::<f64>::eye(d_k) - k.dot(&k.t()) * beta[t];
        m = m.dot(&proj) + v.dot(&k.t()) * beta[t];
        y.row_mut(t).assign(&m.dot(&x.q.row(t)));
    }
    (y, m)
}

fn omega_delta_rule(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let cfg = linear(1, 1, None);
    for &seed in &env.seeds {
        for t in [1usize, 7, 63] {
            let x = draw_inputs(
                seed + t as u64,
                t,
                5,
                3,
                &cfg,
                [(0.0, 0.0), (0.0, 0.0), (0.05, 0.4), (1.0, 1.0)],
                env.kind,
            );
            let (y_d, m_d) = delta_rule(&x, &(&x.theta * 2.0));
            let o = omega::reference::forward(&cfg, &x, 1, ReadMode::AfterWrite);
            let tag = format!("T = {t}, seed {seed}");
            out.push(Measurement::compare(
                format!("reference y vs delta rule ({tag})"),
                &o.y.into_dyn(),
                &y_d.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            out.push(Measurement::compare(
                format!("reference M_T vs delta rule ({tag})"),
                &o.m[0].clone().into_dyn(),
                &m_d.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            let (y, m) = torch_run(env, &cfg, &x, 1)?;
            out.push(Measurement::compare(
                format!("tch y vs delta rule ({tag})"),
                &y.into_dyn(),
                &y_d.into_dyn(),
                tolerance::equivalence(env.kind),
            )?);
            out.push(Measurement::compare(
                format!("tch M_T vs delta rule ({tag})"),
                &m.into_dyn(),
                &m_d.into_dyn(),
                tolerance::equivalence(env.kind),
            )?);
        }
    }
    Ok(out)
}

fn omega_titans(env: &CheckEnv) -> Result<Vec<Measurement>> {
    use crate::titans::linear_memory::reference as titans;
    let mut out = vec![];
    let cfg = linear(1, 1, None);
    for &seed in &env.seeds {
        let t = 63;
        let mut x = draw_inputs(seed, t, 4, 6, &cfg, [(0.0, 0.2), (0.0, 0.9), (0.05, 0.3), (1.0, 1.0)], env.kind);
        x.s0 = vec![arr2(&round_to_kind(&Draw::new(seed + 5).normal(&[6, 4], 0.1), env.kind))];
        let ti = titans::Inputs {
            k: x.k.clone(),
            v: x.v.clone(),
            q: x.q.clone(),
            alpha: x.alpha.clone(),
            eta: x.eta.clone(),
            theta: x.theta.clone(),
            m0: x.m0[0].clone(),
            s0: x.s0[0].clone(),
        };
        let tr = titans::forward(&ti, 1.0, ReadMode::AfterWrite);
        let o = omega::reference::forward(&cfg, &x, 1, ReadMode::AfterWrite);
        let tag = format!("T = {t}, seed {seed}");
        out.push(Measurement::compare(
            format!("reference y vs Titans ({tag})"),
            &o.y.into_dyn(),
            &tr.y.clone().into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
        out.push(Measurement::compare(
            format!("reference S_T vs Titans ({tag})"),
            &o.s[0].clone().into_dyn(),
            &tr.final_surprise().clone().into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
        let (y, m) = torch_run(env, &cfg, &x, 1)?;
        out.push(Measurement::compare(
            format!("tch y vs Titans ({tag})"),
            &y.into_dyn(),
            &tr.y.clone().into_dyn(),
            tolerance::equivalence(env.kind),
        )?);
        out.push(Measurement::compare(
            format!("tch M_T vs Titans ({tag})"),
            &m.into_dyn(),
            &tr.final_memory().clone().into_dyn(),
            tolerance::equivalence(env.kind),
        )?);
    }
    Ok(out)
}

/// Eq. 15 over window matrices: `M_t = (1 − α_t) M_{t−1} − θ_t · 2 (M_{t−1} Φ_Wᵀ − V_Wᵀ) Φ_W`, rows of `Φ_W`, `V_W`
/// the (truncated) window's tokens.
fn eq15(x: &omega::reference::Inputs, f: &PolyFeatures, c: usize) -> (Array2<f64>, Array2<f64>) {
    let phis = features::reference::phi_rows(f, x.k.view());
    let mut m = x.m0[0].clone();
    let mut y = Array2::zeros((x.k.nrows(), x.v.ncols()));
    for t in 0..x.k.nrows() {
        let lo = (t + 1).saturating_sub(c);
        let pw = phis.slice(s![lo..=t, ..]);
        let vw = x.v.slice(s![lo..=t, ..]);
        let grad = (m.dot(&pw.t()) - vw.t()).dot(&pw) * 2.0;
        m = &m * (1.0 - x.alpha[t]) - grad * x.theta[t];
        y.row_mut(t).assign(&m.dot(&features::reference::phi(f, x.q.row(t))));
    }
    (y, m)
}

fn omega_unweighted_sum(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let c = 3;
    let f = PolyFeatures { degree: 2 };
    let cfg = linear(c, 2, None);
    for &seed in &env.seeds {
        for t in [1usize, 7, 40] {
            let x = draw_inputs(
                seed + t as u64,
                t,
                4,
                3,
                &cfg,
                [(0.0, 0.2), (0.0, 0.0), (0.01, 0.05), (1.0, 1.0)],
                env.kind,
            );
            let (y_w, m_w) = eq15(&x, &f, c);
            let o = omega::reference::forward(&cfg, &x, 1, ReadMode::AfterWrite);
            let tag = format!("c = {c}, p = 2, T = {t}, seed {seed}");
            out.push(Measurement::compare(
                format!("reference y vs Eq. 15 window sum ({tag})"),
                &o.y.into_dyn(),
                &y_w.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            out.push(Measurement::compare(
                format!("reference M_T vs Eq. 15 window sum ({tag})"),
                &o.m[0].clone().into_dyn(),
                &m_w.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            let (y, m) = torch_run(env, &cfg, &x, 1)?;
            out.push(Measurement::compare(
                format!("tch y vs Eq. 15 window sum ({tag})"),
                &y.into_dyn(),
                &y_w.into_dyn(),
                tolerance::equivalence(env.kind),
            )?);
            out.push(Measurement::compare(
                format!("tch M_T vs Eq. 15 window sum ({tag})"),
                &m.into_dyn(),
                &m_w.into_dyn(),
                tolerance::equivalence(env.kind),
            )?);
        }
    }
    Ok(out)
}

fn swla_direct(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for (c, degree) in [(1usize, 1usize), (3, 2)] {
            let cfg = OmegaConfig { bias: omega::Bias::Dot, ..linear(c, degree, None) };
            let f = cfg.features;
            let t = 23;
            let x = draw_inputs(
                seed + c as u64,
                t,
                4,
                3,
                &cfg,
                [(0.0, 0.2), (0.0, 0.0), (0.05, 0.3), (0.2, 1.0)],
                env.kind,
            );
            // M_t = (1 − α_t) M_{t−1} + θ_t Σ_{i ∈ W_t} γ_i v_i φ_iᵀ,  y_t = M_t φ(q_t)
            let phis = features::reference::phi_rows(&f, x.k.view());
            let mut m = x.m0[0].clone();
            let mut y_d = Array2::zeros((t, 3));
            for s_ in 0..t {
                let lo = (s_ + 1).saturating_sub(c);
                let gv = &x.v.slice(s![lo..=s_, ..]) * &x.gamma.slice(s![lo..=s_]).insert_axis(Axis(1));
                m = &m * (1.0 - x.alpha[s_]) + gv.t().dot(&phis.slice(s![lo..=s_, ..])) * x.theta[s_];
                y_d.row_mut(s_).assign(&m.dot(&features::reference::phi(&f, x.q.row(s_))));
            }
            let o = omega::reference::forward(&cfg, &x, 1, ReadMode::AfterWrite);
            let tag = format!("c = {c}, p = {degree}, T = {t}, seed {seed}");
            out.push(Measurement::compare(
                format!("reference y vs direct ({tag})"),
                &o.y.into_dyn(),
                &y_d.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            out.push(Measurement::compare(
                format!("reference M_T vs direct ({tag})"),
                &o.m[0].clone().into_dyn(),
                &m.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            let (y, mt) = torch_run(env, &cfg, &x, 1)?;
            out.push(Measurement::compare(
                format!("tch y vs direct ({tag})"),
                &y.into_dyn(),
                &y_d.into_dyn(),
                tolerance::equivalence(env.kind),
            )?);
            out.push(Measurement::compare(
                format!("tch M_T vs direct ({tag})"),
                &mt.into_dyn(),
                &m.into_dyn(),
                tolerance::equivalence(env.kind),
            )?);
        }
    }
    Ok(out)
}

/// Solves `X A = B` for `X` (`X = B A⁻¹`), one row at a time: `Aᵀ xᵢ = bᵢ`.
fn right_solve(a: &Array2<f64>, b: &Array2<f64>) -> Result<Array2<f64>> {
    let mut x = Array2::zeros((b.nrows(), a.nrows()));
    let at = a.t().to_owned();
    for (i, row) in b.rows().into_iter().enumerate() {
        x.row_mut(i).assign(&at.solve(&row.to_owned())?);
    }
    Ok(x)
}

fn omega_ridge(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (c, d_k, d_v, reps) = (4usize, 6usize, 3usize, 300usize);
    for &seed in &env.seeds {
        // (degree, α, θ): weighted ridge with polynomial features; minimum-norm without
        // θ keeps the chunkwise map (tch, chunk 2: two steps at the chunk-start gradient) contractive as well
        for (degree, alpha, theta) in [(2usize, 0.05, 0.03), (1, 0.0, 0.2)] {
            let cfg = linear(c, degree, None);
            let f = cfg.features;
            let base = draw_inputs(
                seed + degree as u64,
                c,
                d_k,
                d_v,
                &cfg,
                [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.5, 1.0)],
                env.kind,
            );
            // the window's c pairs repeated: after the first c − 1 tokens every window holds each pair once
            let t = c * reps;
            let tile2 = |a: &Array2<f64>| ndarray::concatenate(Axis(0), &vec![a.view(); reps]).unwrap();
            let tile1 = |a: &Array1<f64>| ndarray::concatenate(Axis(0), &vec![a.view(); reps]).unwrap();
            let x = omega::reference::Inputs {
                k: tile2(&base.k),
                v: tile2(&base.v),
                q: tile2(&base.q),
                alpha: Array1::from_elem(t, alpha),
                eta: Array1::zeros(t),
                theta: Array1::from_elem(t, theta),
                gamma: tile1(&base.gamma),
                lambda: None,
                m0: vec![Array2::zeros((d_v, f.width(d_k)))],
                s0: vec![Array2::zeros((d_v, f.width(d_k)))],
                halo_k: Array2::zeros((c - 1, d_k)),
                halo_v: Array2::zeros((c - 1, d_v)),
                halo_gamma: Array1::zeros(c - 1),
            };
            let phi = features::reference::phi_rows(&f, base.k.view()); // c × D
            let gphi = &phi * &base.gamma.clone().insert_axis(Axis(1)); // Γ Φ
            let closed = if alpha > 0.0 {
                // M (ΦᵀΓΦ + μI) = VᵀΓΦ,  μ = α / 2θ (the retention is the ridge penalty)
                let mu = alpha / (2.0 * theta);
                let a = phi.t().dot(&gphi) + Array2::<f64>::eye(phi.ncols()) * mu;
                right_solve(&a, &base.v.t().dot(&gphi))?
            } else {
                // from M_0 = 0 GD stays in the row space of Φ (rows φ_i, full row rank as c ≤ d): M = Z Φ, and the
                // fixed point interpolates, M Φᵀ = Vᵀ, so Z (ΦΦᵀ) = Vᵀ — the minimum-norm Vᵀ(Φᵀ)⁺, whatever Γ > 0
                let gram = phi.dot(&phi.t());
                right_solve(&gram, &base.v.t().to_owned())?.dot(&phi)
            };
            let tag = format!("p = {degree}, α = {alpha}, c = {c}, seed {seed}");
            let o = omega::reference::forward(&cfg, &x, 1, ReadMode::AfterWrite);
            out.push(Measurement::compare(
                format!("reference M after {t} tokens vs closed form ({tag})"),
                &o.m[0].clone().into_dyn(),
                &closed.clone().into_dyn(),
                1e-9,
            )?);
            let (_, m) = torch_run(env, &cfg, &x, 2)?;
            out.push(Measurement::compare(
                format!("tch (chunk 2) M after {t} tokens vs closed form ({tag})"),
                &m.into_dyn(),
                &closed.into_dyn(),
                tolerance::equivalence(env.kind).max(1e-9),
            )?);
        }
    }
    Ok(out)
}

fn deep_transformer_linear(env: &CheckEnv) -> Result<Vec<Measurement>> {
    use super::deep_transformers::{reference, torch};
    let mut out = vec![];
    let f = PolyFeatures { degree: 8 };
    let (t, d, d_v) = (9usize, 3usize, 4usize);
    for &seed in &env.seeds {
        let r = &mut Draw::new(seed + 11);
        // unit keys and queries (the paper normalises q, k): |qᵀk| ≤ 1, Taylor remainder ≤ e/9! = 7.5e-6 per term
        let k = arr2(&round_to_kind(&r.unit_rows(&[t, d]), env.kind));
        let q = arr2(&round_to_kind(&r.unit_rows(&[t, d]), env.kind));
        let v = arr2(&round_to_kind(&r.normal(&[t, d_v], 1.0), env.kind));
        let weights = Array2::from_shape_fn((t, t), |(s, i)| if i <= s { q.row(s).dot(&k.row(i)).exp() } else { 0.0 });
        let unnormalised = weights.dot(&v);
        let norm = weights.sum_axis(Axis(1)).insert_axis(Axis(1));
        let softmax = &unnormalised / &norm;
        let t4 = |a: &Array2<f64>| to_tch(&a.clone().into_dyn(), env.kind, env.device).unsqueeze(0).unsqueeze(0);
        for (normalized, direct, what) in
            [(false, &unnormalised, "unnormalised attention"), (true, &softmax, "softmax attention")]
        {
            let y_ref = reference::forward(&f, &k, &v, &q, normalized);
            let tag = format!("p = 8, T = {t}, seed {seed}");
            out.push(Measurement::compare(
                format!("reference y vs {what} ({tag})"),
                &y_ref.clone().into_dyn(),
                &direct.clone().into_dyn(),
                1e-5,
            )?);
            let y = tch::no_grad(|| torch::forward(&f, &t4(&k), &t4(&v), &t4(&q), normalized));
            let y = arr2(&from_tch(&y.squeeze_dim(0).squeeze_dim(0))?);
            out.push(Measurement::compare(
                format!("tch y vs reference ({what}, {tag})"),
                &y.clone().into_dyn(),
                &y_ref.into_dyn(),
                tolerance::torch_vs_reference(env.kind),
            )?);
            out.push(Measurement::compare(
                format!("tch y vs {what} ({tag})"),
                &y.into_dyn(),
                &direct.clone().into_dyn(),
                1e-5,
            )?);
        }
    }
    Ok(out)
}

/// A `rows × cols` matrix with singular values log-spaced from 1 down to `1/cond`.
fn conditioned(r: &mut Draw, rows: usize, cols: usize, cond: f64) -> Result<Array2<f64>> {
    let (u, _) = arr2(&r.normal(&[rows, rows], 1.0)).qr()?;
    let (v, _) = arr2(&r.normal(&[cols, cols], 1.0)).qr()?;
    let n = rows.min(cols);
    let mut sig = Array2::zeros((rows, cols));
    for i in 0..n {
        sig[[i, i]] = cond.powf(-(i as f64) / (n - 1) as f64);
    }
    Ok(u.dot(&sig).dot(&v.t()))
}

fn singular_values(a: &Array2<f64>) -> Result<Array1<f64>> {
    let (_, s, _) = a.svd(false, false)?;
    Ok(s)
}

/// `σ` against `σ` clamped into `[lo, hi]`: zero error exactly when every value lies in the band.
fn band(quantity: String, s: &Array1<f64>, lo: f64, hi: f64) -> Result<Measurement> {
    let clamped = s.mapv(|x| x.clamp(lo, hi));
    Measurement::compare(quantity, &s.clone().into_dyn(), &clamped.into_dyn(), 0.0)
}

fn newton_schulz_band(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let r = &mut Draw::new(seed);
        let inputs = vec![
            ("random 16×16", arr2(&r.normal(&[16, 16], 1.0))),
            ("random tall 16×9", arr2(&r.normal(&[16, 9], 1.0))),
            ("random wide 5×12", arr2(&r.normal(&[5, 12], 1.0))),
            ("ill-conditioned 16×16, cond 100", conditioned(r, 16, 16, 100.0)?),
            ("ill-conditioned 12×7, cond 100", conditioned(r, 12, 7, 100.0)?),
        ];
        for (what, x) in inputs {
            let x = arr2(&round_to_kind(&x.into_dyn(), env.kind));
            // §5: after NS-5 every normalised σ ≥ 2e-3 lands in [0.68, 1.21]; asserted with margin [0.6, 1.25]
            let y = ns::reference::orthogonalize(&x, NsKind::QuinticMuon, ns::DEFAULT_STEPS);
            out.push(band(
                format!("reference quintic NS-5 σ ∈ [0.6, 1.25] ({what}, seed {seed})"),
                &singular_values(&y)?,
                0.6,
                1.25,
            )?);
            let yt =
                ns::torch::orthogonalize(&to_tch(&x.clone().into_dyn(), env.kind, env.device), NsKind::QuinticMuon, 5);
            let yt = arr2(&from_tch(&yt)?);
            out.push(band(
                format!("tch quintic NS-5 σ ∈ [0.6, 1.25] ({what}, seed {seed})"),
                &singular_values(&yt)?,
                0.6,
                1.25,
            )?);
            out.push(Measurement::compare(
                format!("tch vs reference NS-5 ({what}, seed {seed})"),
                &yt.into_dyn(),
                &y.into_dyn(),
                tolerance::torch_vs_reference(env.kind),
            )?);
            // the cubic converges to the polar factor: from σ ≥ 1e-2 about 20 steps, 40 leave rounding only
            let yc = ns::reference::orthogonalize(&x, NsKind::Cubic, 40);
            out.push(band(
                format!("reference cubic NS-40 |σ − 1| ≤ 1e-6 ({what}, seed {seed})"),
                &singular_values(&yc)?,
                1.0 - 1e-6,
                1.0 + 1e-6,
            )?);
        }
    }
    Ok(out)
}

fn newton_schulz_properties(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let r = &mut Draw::new(seed + 3);
        let x = arr2(&round_to_kind(&r.normal(&[7, 11], 1.0), env.kind));
        let xt = to_tch(&x.clone().into_dyn(), env.kind, env.device);
        for kind in [NsKind::QuinticMuon, NsKind::Cubic] {
            let tag = format!("{kind:?}, 7×11, seed {seed}");
            let base = ns::reference::orthogonalize(&x, kind, 5);
            let neg = ns::reference::orthogonalize(&(-&x), kind, 5);
            out.push(Measurement::compare(
                format!("reference NS(−X) vs −NS(X) ({tag})"),
                &neg.into_dyn(),
                &(-&base).into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            let tneg = ns::torch::orthogonalize(&(-&xt), kind, 5);
            let tbase = ns::torch::orthogonalize(&xt, kind, 5);
            out.push(Measurement::compare(
                format!("tch NS(−X) vs −NS(X) ({tag})"),
                &from_tch(&tneg)?,
                &from_tch(&(-&tbase))?,
                tolerance::equivalence(env.kind),
            )?);
            let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            for scale in [0.01f64, 30.0] {
                // NS(cX) = NS(X) up to the guard in X / (‖X‖ + ε): the normalised inputs differ by a relative
                // ε/min(‖X‖, ‖cX‖), and five steps amplify a relative input change by a factor of order 1–10
                let guard = 10.0 * ns::NORM_EPS / (norm * scale.min(1.0));
                let scaled = ns::reference::orthogonalize(&(&x * scale), kind, 5);
                out.push(Measurement::compare(
                    format!("reference NS({scale}·X) vs NS(X) ({tag})"),
                    &scaled.into_dyn(),
                    &base.clone().into_dyn(),
                    guard,
                )?);
                let tscaled = ns::torch::orthogonalize(&(&xt * scale), kind, 5);
                out.push(Measurement::compare(
                    format!("tch NS({scale}·X) vs NS(X) ({tag})"),
                    &from_tch(&tscaled)?,
                    &from_tch(&tbase)?,
                    tolerance::equivalence(env.kind).max(guard),
                )?);
            }
        }
        // error against the step count, on an ill-conditioned input
        let x = conditioned(r, 10, 10, 50.0)?;
        let cubic_err: Vec<f64> = (1..=30)
            .map(|k| {
                let s = singular_values(&ns::reference::orthogonalize(&x, NsKind::Cubic, k)).unwrap();
                s.iter().map(|v| (v - 1.0).abs()).fold(0.0, f64::max)
            })
            .collect();
        let err = Array1::from(cubic_err.clone());
        let running_min = Array1::from(
            cubic_err
                .iter()
                .scan(f64::INFINITY, |m, &e| {
                    *m = m.min(e);
                    Some(*m)
                })
                .collect::<Vec<_>>(),
        );
        // non-increasing: the error sequence equals its running minimum (to rounding once converged)
        out.push(Measurement::compare(
            format!("cubic max|σ − 1| over k = 1…30 vs its running minimum (cond 50, seed {seed})"),
            &(&err + 1.0).into_dyn(),
            &(&running_min + 1.0).into_dyn(),
            1e-12,
        )?);
        out.push(band(
            format!("cubic max|σ − 1| at k = 30 ≤ 1e-8 (cond 50, seed {seed})"),
            &Array1::from(vec![cubic_err[29]]),
            0.0,
            1e-8,
        )?);
        for k in 5..=12 {
            let s = singular_values(&ns::reference::orthogonalize(&x, NsKind::QuinticMuon, k))?;
            out.push(band(format!("quintic NS-{k} σ ∈ [0.6, 1.25] (cond 50, seed {seed})"), &s, 0.6, 1.25)?);
        }
    }
    Ok(out)
}
