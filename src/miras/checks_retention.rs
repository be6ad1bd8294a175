//! Checks for the retention gates (§3.3, §4, §5.2: Eqs. 5, 7–9, 18–24, Variants 4–5): each closed form in tch
//! against the reference, and each closed form against the problem it solves (the objective's finite-difference
//! gradient vanishes at it; subgradient conditions where ℓ1 terms make it non-smooth; KKT with the simplex
//! constraint for KL).

use super::checks::{batched, compare4, to2, torch_forward, Case, Drawn, Ranges};
use super::framework::{Algorithm, Bias, Config, LqForm, Retention};
use super::retention::{reference as r, torch as rt};
use super::update::reference as upd_ref;
use crate::check::{finite_difference, CheckEnv, Measurement};
use crate::tensor::{from_tch, round_to_kind, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{Array2, IxDyn};
use tch::Tensor;

fn zeros_like(a: &Array2<f64>) -> Arr {
    Arr::zeros(IxDyn(a.shape()))
}

fn scalar(x: f64) -> Arr {
    Arr::from_elem(IxDyn(&[]), x)
}

fn gate(x: f64, env: &CheckEnv) -> Tensor {
    Tensor::from(x).to_kind(env.kind).to_device(env.device)
}

/// `(W_{t−1}, G)` rounded to the dtype under test, `5 × 7`.
fn draw_pair(seed: u64, env: &CheckEnv, w_uniform: Option<(f64, f64)>) -> (Array2<f64>, Array2<f64>) {
    let mut d = Draw::new(seed);
    let w = match w_uniform {
        Some((lo, hi)) => d.uniform(&[5, 7], lo, hi),
        None => d.normal(&[5, 7], 1.0),
    };
    let g = d.normal(&[5, 7], 1.0);
    (to2(&round_to_kind(&w, env.kind)), to2(&round_to_kind(&g, env.kind)))
}

fn stationary(
    out: &mut Vec<Measurement>,
    what: String,
    w: &Array2<f64>,
    f: impl Fn(&Array2<f64>) -> f64,
) -> Result<()> {
    let fd = finite_difference(w, f).into_dyn();
    out.push(Measurement::compare(what, &fd, &zeros_like(w), tolerance::FINITE_DIFFERENCE)?);
    Ok(())
}

fn framework_vs_reference(
    out: &mut Vec<Measurement>,
    env: &CheckEnv,
    cfg: &Config,
    ranges: Ranges,
    seed: u64,
    label: &str,
) -> Result<()> {
    for (i, t) in [1usize, 9, 33].into_iter().enumerate() {
        let d = Drawn::new(seed + i as u64, Case::with_len(t), ranges, env.kind);
        let reference = batched(&d, |h| upd_ref::forward(cfg, h));
        let ours = torch_forward(cfg, &d, env)?;
        compare4(
            out,
            &format!("{label}: torch vs reference, T={t}, seed {seed}"),
            &ours,
            &reference,
            tolerance::torch_vs_reference(env.kind),
        )?;
    }
    Ok(())
}

/// Eq. 5 as the proximal step, and Eq. 7: FTRL with linearised losses and constant η gives the GD iterates.
pub fn gd_proximal_ftrl(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let cfg = Config::linear(Bias::L2 { scale: 1.0 }, Retention::None, Algorithm::Gd);
    for &seed in &env.seeds {
        let (w, g) = draw_pair(seed, env, None);
        let eta = 0.37;
        let closed = r::prox_l2(&w, &g, eta);
        stationary(&mut out, format!("∇ objective at W − ηG (proximal display, seed {seed})"), &closed, |x| {
            r::objective_prox(x, &w, &g, eta)
        })?;
        framework_vs_reference(&mut out, env, &cfg, Ranges::default(), seed, "GD, l2")?;
        // Eq. 7: W_0 = 0, W_t = −η Σ_{i≤t} ∇ℓ(W_{i−1}) vs the recursive Eq. 5 iterates
        let mut d = Drawn::new(seed + 5, Case::with_len(17), Ranges::default(), tch::Kind::Double).head(0, 0);
        d.eta.fill(0.11);
        d.m0.fill(0.0);
        let gd = upd_ref::forward(&cfg, &d);
        let mut wf = Array2::<f64>::zeros((5, 7));
        let mut sum = Array2::<f64>::zeros((5, 7));
        for t in 0..17 {
            let (k, v) = (d.k.row(t), d.v.row(t));
            let e = wf.dot(&k) - v;
            sum = sum + Array2::from_shape_fn((5, 7), |(i, j)| 2.0 * e[i] * k[j]);
            wf = &sum * (-0.11);
        }
        out.push(Measurement::compare(
            format!("Eq. 7 FTRL (constant η) vs Eq. 5 iterates, W_17 (seed {seed})"),
            &wf.into_dyn(),
            &gd.w.into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
    }
    Ok(out)
}

/// Eqs. 8–9: the decayed local retention. Eq. 8's argmin is `αM_{t−1} + v kᵀ`; Eq. 9's consistent form is
/// `αW − η∇ℓ(αW)`, the minimiser of `⟨W − αW_{t−1}, G⟩ + ‖W − αW_{t−1}‖²/(2η)`.
pub fn retention_l2_decayed(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let (w, g) = draw_pair(seed, env, None);
        let (alpha, eta) = (0.83, 0.29);
        let closed = r::decayed_l2(&w, &g, alpha, eta);
        stationary(&mut out, format!("∇ objective at αW − ηG (seed {seed})"), &closed, |x| {
            r::objective_decayed(x, &w, &g, alpha, eta)
        })?;
        // Eq. 8: argmin −2⟨Mk, v⟩ + ‖M − αM_{t−1}‖² is αM_{t−1} + v kᵀ
        let mut dr = Draw::new(seed + 3);
        let k = dr.normal(&[7], 1.0).into_dimensionality::<ndarray::Ix1>()?;
        let v = dr.normal(&[5], 1.0).into_dimensionality::<ndarray::Ix1>()?;
        let m8 = &w * alpha + &Array2::from_shape_fn((5, 7), |(i, j)| v[i] * k[j]);
        stationary(
            &mut out,
            format!("Eq. 8: ∇[−2⟨Mk,v⟩ + ‖M − αM_prev‖²] at αM_prev + v kᵀ (seed {seed})"),
            &m8,
            |x| {
                let d = x - &(&w * alpha);
                -2.0 * x.dot(&k).dot(&v) + d.iter().map(|z| z * z).sum::<f64>()
            },
        )?;
        framework_vs_reference(
            &mut out,
            env,
            &Config::linear(Bias::L2 { scale: 0.5 }, Retention::L2Decayed, Algorithm::Gd),
            Ranges::default(),
            seed,
            "l2 bias, decayed",
        )?;
        framework_vs_reference(
            &mut out,
            env,
            &Config::linear(Bias::DotProduct { scale: 1.0 }, Retention::L2Decayed, Algorithm::Gd),
            Ranges::default(),
            seed,
            "dot product, decayed",
        )?;
    }
    Ok(out)
}

/// Yaad's retention `(1/(2θ))‖W − W_{t−1}‖² + (1/β)‖W‖²`: coupled closed form.
pub fn retention_local_global(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let (w, g) = draw_pair(seed, env, None);
        let (theta, beta) = (0.31, 1.7);
        let closed = r::local_global_l2(&w, &g, theta, beta);
        stationary(&mut out, format!("∇ objective at the closed form (seed {seed})"), &closed, |x| {
            r::objective_local_global(x, &w, &g, theta, beta)
        })?;
        let ours = rt::local_global_l2(
            &to_tch(&w.clone().into_dyn(), env.kind, env.device),
            &to_tch(&g.clone().into_dyn(), env.kind, env.device),
            &gate(theta, env),
            &gate(beta, env),
        );
        out.push(Measurement::compare(
            format!("torch vs reference (seed {seed})"),
            &from_tch(&ours)?,
            &closed.into_dyn(),
            tolerance::torch_vs_reference(env.kind),
        )?);
        framework_vs_reference(
            &mut out,
            env,
            &Config::linear(Bias::L2 { scale: 1.0 }, Retention::L2LocalGlobal, Algorithm::Momentum),
            Ranges::default(),
            seed,
            "l2, local+global, momentum",
        )?;
    }
    Ok(out)
}

/// Optimality of a soft-threshold solution: FD gradient of the objective on non-zero entries, and the
/// subgradient condition `|r_jl| ≤ 1/α` on zero entries (`r` the smooth part's gradient).
fn l1_optimality(
    out: &mut Vec<Measurement>,
    tag: &str,
    w: &Array2<f64>,
    l1: f64,
    smooth_grad: &Array2<f64>,
    f: impl Fn(&Array2<f64>) -> f64,
) -> Result<()> {
    let fd = finite_difference(w, f);
    let nz = w.iter().filter(|x| **x != 0.0).count();
    let masked = Array2::from_shape_fn(w.raw_dim(), |(i, j)| if w[[i, j]] != 0.0 { fd[[i, j]] } else { 0.0 });
    out.push(Measurement::compare(
        format!("∇ objective on the {nz} non-zero entries ({tag})"),
        &masked.into_dyn(),
        &zeros_like(w),
        tolerance::FINITE_DIFFERENCE,
    )?);
    let viol = w
        .iter()
        .zip(smooth_grad.iter())
        .filter(|(x, _)| **x == 0.0)
        .fold(0.0f64, |m, (_, r)| m.max(r.abs() - 1.0 / l1));
    out.push(Measurement::compare(
        format!("subgradient violation max(|r| − 1/α, 0) on the {} zero entries ({tag})", w.len() - nz),
        &scalar(viol.max(0.0)),
        &scalar(0.0),
        tolerance::ALGEBRAIC_F64,
    )?);
    Ok(())
}

/// Eq. 22: elastic net, soft thresholding of a decayed gradient step.
pub fn retention_elastic_net(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let (w, g) = draw_pair(seed, env, None);
        let (eta, beta, l1) = (0.3, 2.0, 0.87);
        let closed = r::elastic_net(&w, &g, eta, beta, l1);
        let smooth = &g + &((&closed - &w) / eta) + &(&closed / beta);
        l1_optimality(&mut out, &format!("Eq. 22, seed {seed}"), &closed, l1, &smooth, |x| {
            r::objective_elastic_net(x, &w, &g, eta, beta, l1)
        })?;
        let ours = rt::elastic_net(
            &to_tch(&w.clone().into_dyn(), env.kind, env.device),
            &to_tch(&g.clone().into_dyn(), env.kind, env.device),
            &gate(eta, env),
            beta,
            l1,
        );
        out.push(Measurement::compare(
            format!("torch vs reference (seed {seed})"),
            &from_tch(&ours)?,
            &closed.into_dyn(),
            tolerance::torch_vs_reference(env.kind),
        )?);
        framework_vs_reference(
            &mut out,
            env,
            &Config::linear(Bias::L2 { scale: 0.5 }, Retention::ElasticNet { beta, alpha: 4.0 }, Algorithm::Gd),
            Ranges::default(),
            seed,
            "l2, elastic net",
        )?;
    }
    Ok(out)
}

/// Eq. 23: FTRL elastic net (dual averaging + soft threshold), constant η, `A_0 = 0`.
pub fn retention_elastic_net_ftrl(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let l1 = 2.5;
    let cfg = Config::linear(Bias::L2 { scale: 0.5 }, Retention::ElasticNetFtrl { alpha: l1 }, Algorithm::Gd);
    for &seed in &env.seeds {
        let ranges = Ranges { eta: (0.2, 0.2 + 1e-12), m0: (0.0, 0.0), ..Ranges::default() };
        let d = Drawn::new(seed, Case::with_len(13), ranges, tch::Kind::Double).head(0, 0);
        let o = upd_ref::forward(&cfg, &d);
        let eta = d.eta[12];
        let smooth = (&o.w - &o.state) / eta;
        l1_optimality(&mut out, &format!("Eq. 23 FTRL objective at W_13, seed {seed}"), &o.w, l1, &smooth, |x| {
            r::objective_ftrl(x, &o.state, eta, l1)
        })?;
        framework_vs_reference(&mut out, env, &cfg, ranges, seed, "l2, FTRL elastic net")?;
    }
    Ok(out)
}

/// Variant 4 / Eq. 24: the mirror map is ∇½‖A‖_q² and the argmin of `−⟨W, A⟩ + ½‖W‖_{q*}²`; the printed form
/// is homogeneous of degree 3 − q (⚠), the mirror map of degree 1.
pub fn retention_lq(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for q in [2.5, 3.0, 4.0] {
            let (a, _) = draw_pair(seed + q as u64, env, None);
            let mirror = r::lq_map(&a, q, LqForm::Mirror);
            let fd = finite_difference(&a, |x| r::half_sq_lq(x, q)).into_dyn();
            out.push(Measurement::compare(
                format!("N_q(A) vs FD ∇½‖A‖_q² (q = {q}, seed {seed})"),
                &fd,
                &mirror.clone().into_dyn(),
                tolerance::FINITE_DIFFERENCE,
            )?);
            // argmin of −⟨W, A⟩ + ½‖W‖_{q*}²: the dual map ∇½‖·‖_{q*}² (hand-derived) sends N_q(A) back to A
            let qs = q / (q - 1.0);
            let nw = r::lq_norm(&mirror, qs);
            let back = mirror.mapv(|x| nw.powf(2.0 - qs) * x.signum() * x.abs().powf(qs - 1.0)).into_dyn();
            out.push(Measurement::compare(
                format!("stationarity of −⟨W,A⟩ + ½‖W‖_q*²: ∇½‖N_q(A)‖_q*² vs A (q = {q}, seed {seed})"),
                &back,
                &a.clone().into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            let at = to_tch(&a.clone().into_dyn(), env.kind, env.device);
            for form in [LqForm::Mirror, LqForm::Printed] {
                let ours = from_tch(&rt::lq_map(&at, q, form))?;
                out.push(Measurement::compare(
                    format!("torch vs reference, {form:?} (q = {q}, seed {seed})"),
                    &ours,
                    &r::lq_map(&a, q, form).into_dyn(),
                    tolerance::torch_vs_reference(env.kind),
                )?);
            }
            let s = 10.0;
            let printed_scaled = r::lq_map(&(&a * s), q, LqForm::Printed).into_dyn();
            let printed_expect = (r::lq_map(&a, q, LqForm::Printed) * s.powf(3.0 - q)).into_dyn();
            out.push(Measurement::compare(
                format!("printed N_q(10A) vs 10^(3−q) N_q(A) (q = {q}, seed {seed})"),
                &printed_scaled,
                &printed_expect,
                tolerance::ALGEBRAIC_F64,
            )?);
            let mirror_scaled = r::lq_map(&(&a * s), q, LqForm::Mirror).into_dyn();
            out.push(Measurement::compare(
                format!("mirror N_q(10A) vs 10 N_q(A) (q = {q}, seed {seed})"),
                &mirror_scaled,
                &(mirror * s).into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
        }
    }
    Ok(out)
}

/// Eqs. 19–21: KL retention over the scaled simplex; KKT (gradient constant over entries), mass c, tch vs
/// reference.
pub fn retention_kl(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let (w_raw, g) = draw_pair(seed, env, Some((0.2, 1.0)));
        let c = 1.7;
        let w = &w_raw * (c / w_raw.sum());
        let (eta, alpha) = (0.4, 1.3);
        let closed = r::kl_global(&w, &g, eta, alpha, c);
        let fd = finite_difference(&closed, |x| r::objective_kl(x, &w, &g, eta, alpha));
        let mean = fd.mean().unwrap();
        out.push(Measurement::compare(
            format!("KKT: ∇ objective − its mean at Eq. 21's W (seed {seed})"),
            &(fd - mean).into_dyn(),
            &zeros_like(&closed),
            tolerance::FINITE_DIFFERENCE,
        )?);
        out.push(Measurement::compare(
            format!("Σ W_t vs c (seed {seed})"),
            &scalar(closed.sum()),
            &scalar(c),
            tolerance::ALGEBRAIC_F64,
        )?);
        let ours = rt::kl_global(
            &to_tch(&w.clone().into_dyn(), env.kind, env.device),
            &to_tch(&g.clone().into_dyn(), env.kind, env.device),
            &gate(eta, env),
            &gate(alpha, env),
            c,
        );
        out.push(Measurement::compare(
            format!("torch vs reference (seed {seed})"),
            &from_tch(&ours)?,
            &closed.into_dyn(),
            tolerance::torch_vs_reference(env.kind),
        )?);
        framework_vs_reference(
            &mut out,
            env,
            &Config::linear(Bias::L2 { scale: 1.0 }, Retention::Kl, Algorithm::Gd),
            Ranges::default(),
            seed,
            "l2, KL (rows)",
        )?;
    }
    Ok(out)
}

/// Variant 5: Bregman divergence of the binary entropy; `σ(logit W_{t−1} − ηG)` is the argmin.
pub fn retention_bregman_sigmoid(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        let (w, g) = draw_pair(seed, env, Some((0.1, 0.9)));
        let eta = 0.45;
        let closed = r::bregman_sigmoid(&w, &g, eta);
        stationary(&mut out, format!("∇ objective at σ(logit W − ηG) (seed {seed})"), &closed, |x| {
            r::objective_bregman(x, &w, &g, eta)
        })?;
        let ours = rt::bregman_sigmoid(
            &to_tch(&w.clone().into_dyn(), env.kind, env.device),
            &to_tch(&g.clone().into_dyn(), env.kind, env.device),
            &gate(eta, env),
        );
        out.push(Measurement::compare(
            format!("torch vs reference (seed {seed})"),
            &from_tch(&ours)?,
            &closed.into_dyn(),
            tolerance::torch_vs_reference(env.kind),
        )?);
        let ranges = Ranges { m0: (0.1, 0.9), m0_uniform: true, ..Ranges::default() };
        framework_vs_reference(
            &mut out,
            env,
            &Config::linear(Bias::L2 { scale: 0.5 }, Retention::BregmanSigmoid, Algorithm::Gd),
            ranges,
            seed,
            "l2, Bregman sigmoid",
        )?;
    }
    Ok(out)
}

/// Every valid combination of bias × retention × algorithm: tch vs reference on the full recurrence (T = 9).
pub fn framework_combinations(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let biases = [
        Bias::DotProduct { scale: 0.5 },
        Bias::L2 { scale: 0.5 },
        Bias::Lp { p: 3.0 },
        Bias::L1,
        Bias::LpSmooth { p: 3.0, kappa: 5.0, eps: 1e-6 },
        Bias::Huber,
        Bias::HuberNorm,
        Bias::L2L1Switch,
        Bias::ValueShift,
    ];
    let rets = [
        Retention::None,
        Retention::L2Decayed,
        Retention::L2LocalGlobal,
        Retention::ElasticNet { beta: 2.0, alpha: 4.0 },
        Retention::ElasticNetFtrl { alpha: 4.0 },
        Retention::Lq { q: 4.0, form: LqForm::Mirror },
        Retention::Lq { q: 3.0, form: LqForm::Printed },
        Retention::Kl,
        Retention::BregmanSigmoid,
    ];
    let mut out = vec![];
    let seed = env.seeds[0];
    let ranges = Ranges { m0: (0.2, 0.8), m0_uniform: true, eta: (0.02, 0.1), ..Ranges::default() };
    let d = Drawn::new(seed, Case::with_len(9), ranges, env.kind);
    for bias in biases {
        for ret in rets {
            for alg in [Algorithm::Gd, Algorithm::Momentum, Algorithm::ImplicitGd] {
                let cfg = Config::linear(bias, ret, alg);
                if cfg.validate().is_err() {
                    continue;
                }
                let reference = batched(&d, |h| upd_ref::forward(&cfg, h));
                let ours = torch_forward(&cfg, &d, env)?;
                let tag = format!("{bias:?} × {ret:?} × {alg:?}");
                compare4(&mut out, &tag, &ours, &reference, tolerance::torch_vs_reference(env.kind))?;
            }
        }
    }
    Ok(out)
}

/// Eq. 18: the f-divergence step with ζ_t by bisection is the argmin over the scaled simplex (KKT by FD:
/// the objective's gradient is constant over entries), has mass c, equals Eq. 21 for KL without the global
/// term (α → ∞), and tch agrees with the reference; KL and Burg generators.
pub fn retention_f_divergence(env: &CheckEnv) -> Result<Vec<Measurement>> {
    use super::retention::FDiv;
    let mut out = vec![];
    for &seed in &env.seeds {
        let (w_raw, g) = draw_pair(seed, env, Some((0.2, 1.0)));
        let c = 1.3;
        let w = &w_raw * (c / w_raw.sum());
        let eta = 0.35;
        for f in [FDiv::Kl, FDiv::Burg] {
            let closed = r::f_divergence(&w, &g, eta, c, f);
            let fd = finite_difference(&closed, |x| r::objective_f_divergence(x, &w, &g, eta, f));
            let mean = fd.mean().unwrap();
            out.push(Measurement::compare(
                format!("KKT: ∇ objective − its mean at Eq. 18's W ({f:?}, seed {seed})"),
                &(fd - mean).into_dyn(),
                &zeros_like(&closed),
                tolerance::FINITE_DIFFERENCE,
            )?);
            out.push(Measurement::compare(
                format!("Σ W_t vs c ({f:?}, seed {seed})"),
                &scalar(closed.sum()),
                &scalar(c),
                tolerance::ALGEBRAIC_F64,
            )?);
            let ours = rt::f_divergence(
                &to_tch(&w.clone().into_dyn(), env.kind, env.device),
                &to_tch(&g.clone().into_dyn(), env.kind, env.device),
                &gate(eta, env),
                c,
                f,
            );
            out.push(Measurement::compare(
                format!("torch vs reference ({f:?}, seed {seed})"),
                &from_tch(&ours)?,
                &closed.clone().into_dyn(),
                tolerance::torch_vs_reference(env.kind),
            )?);
            if f == FDiv::Kl {
                let eq21 = r::kl_global(&w, &g, eta, 1e300, c);
                out.push(Measurement::compare(
                    format!("KL: Eq. 18 (bisection) vs Eq. 21 with α → ∞ (seed {seed})"),
                    &closed.into_dyn(),
                    &eq21.into_dyn(),
                    tolerance::ALGEBRAIC_F64,
                )?);
            }
        }
    }
    Ok(out)
}
