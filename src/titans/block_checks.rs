//! Checks for the building blocks around the memory: projections with the causal depthwise convolution, SiLU
//! and ℓ2-norm (Eqs. 1/11, §4.4), the data-dependent gates, persistent tokens (Eq. 19) and attention (Eqs.
//! 2–5). Each compares the tch implementation with the f64 reference written with explicit loops.

use crate::check::{CheckEnv, Measurement};
use crate::models::attention::{self, FeatureMap, Mask};
use crate::models::persistent;
use crate::models::projections::{self, ProjectionConfig};
use crate::tensor::{from_tch, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{s, Array1, Array2, Ix1, Ix2};
use tch::Kind;

fn draw(r: &mut Draw, shape: &[usize], scale: f64, kind: Kind) -> Arr {
    round_to_kind(&r.normal(shape, scale), kind)
}

/// `a[i, ..]` of a rank-3 array as a matrix.
fn row_block(a: &Arr, i: usize) -> Array2<f64> {
    a.slice(s![i, .., ..]).to_owned().into_dimensionality::<Ix2>().expect("rank 3")
}

/// Eqs. 1/11 + §4.4: projection → causal depthwise conv (kernel 4, 2, or none) → SiLU → ℓ2-norm (q, k) or
/// not (v); tch (`conv1d` with groups) vs the reference's explicit tap loop.
pub fn projections_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    let (b, h, d_in) = (2usize, 3usize, 6usize);
    let mut cfgs = vec![("q/k", ProjectionConfig::query_key()), ("v", ProjectionConfig::value())];
    cfgs.push(("q/k, kernel 2", ProjectionConfig { conv_kernel: 2, ..ProjectionConfig::query_key() }));
    cfgs.push(("v, no conv", ProjectionConfig { conv_kernel: 0, ..ProjectionConfig::value() }));
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63] {
            for (ci, (name, cfg)) in cfgs.iter().enumerate() {
                let d_out = if ci % 2 == 0 { 5 } else { 4 };
                let mut r = Draw::new(seed + 900 + t as u64 + ci as u64);
                let x = draw(&mut r, &[b, t, d_in], 1.0, env.kind);
                let w = draw(&mut r, &[h, d_out, d_in], 1.0 / (d_in as f64).sqrt(), env.kind);
                let kk = cfg.conv_kernel.max(1);
                let conv = draw(&mut r, &[h, d_out, kk], 0.6, env.kind);
                let mut heads = vec![];
                for bi in 0..b {
                    for hi in 0..h {
                        heads.push(projections::reference::project(
                            row_block(&x, bi).view(),
                            row_block(&w, hi).view(),
                            row_block(&conv, hi).view(),
                            cfg,
                        ));
                    }
                }
                let reference = stack_heads(&heads, b, h);
                let tt = |a: &Arr| to_tch(a, env.kind, env.device);
                let ours = projections::torch::project(&tt(&x), &tt(&w), &tt(&conv), cfg);
                out.push(Measurement::compare(
                    format!("{name} (T={t}, seed {seed})"),
                    &from_tch(&ours)?,
                    &reference,
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// The gates α = sigmoid(w_αᵀx + b_α), η = sigmoid(w_ηᵀx + b_η), θ = θ_max·sigmoid(w_θᵀx + b_θ), per head.
pub fn gates_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    let (b, h, d_in) = (2usize, 3usize, 6usize);
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63] {
            let mut r = Draw::new(seed + 950 + t as u64);
            let x = draw(&mut r, &[b, t, d_in], 1.0, env.kind);
            let w = draw(&mut r, &[h, 3, d_in], 0.7, env.kind);
            let bias = draw(&mut r, &[h, 3], 1.0, env.kind);
            let theta_max = 0.3;
            let (mut al, mut et, mut th) = (vec![], vec![], vec![]);
            for bi in 0..b {
                for hi in 0..h {
                    let bias_h: Array1<f64> = bias.slice(s![hi, ..]).to_owned().into_dimensionality::<Ix1>()?;
                    let (a, e, t_) = projections::reference::gates(
                        row_block(&x, bi).view(),
                        row_block(&w, hi).view(),
                        bias_h.view(),
                        theta_max,
                    );
                    al.push(a);
                    et.push(e);
                    th.push(t_);
                }
            }
            let tt = |a: &Arr| to_tch(a, env.kind, env.device);
            let (a, e, t_) = projections::torch::gates(&tt(&x), &tt(&w), &tt(&bias), theta_max);
            for (name, ours, theirs) in [("alpha", a, al), ("eta", e, et), ("theta", t_, th)] {
                out.push(Measurement::compare(
                    format!("{name} (T={t}, seed {seed})"),
                    &from_tch(&ours)?,
                    &stack_heads(&theirs, b, h),
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// Eq. 19: `[p_1 … p_{N_p}] ‖ x`, for `x [B, T, d]` with shared `p [N_p, d]` and for `x [B, H, T, d]` with
/// per-head `p [H, N_p, d]`.
pub fn persistent_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63] {
            let (b, h, n_p, d) = (2usize, 3usize, 4usize, 5usize);
            let mut r = Draw::new(seed + 990 + t as u64);
            let p = draw(&mut r, &[n_p, d], 1.0, env.kind);
            let x = draw(&mut r, &[b, t, d], 1.0, env.kind);
            let p2: Array2<f64> = p.clone().into_dimensionality()?;
            let rows: Vec<Array2<f64>> =
                (0..b).map(|bi| persistent::reference::prepend(p2.view(), row_block(&x, bi).view())).collect();
            let reference = stack_heads(&rows, b, 1).index_axis_move(ndarray::Axis(1), 0);
            let ours = persistent::torch::prepend(&to_tch(&p, env.kind, env.device), &to_tch(&x, env.kind, env.device));
            out.push(Measurement::compare(
                format!("[B, N_p+T, d] (T={t}, seed {seed})"),
                &from_tch(&ours)?,
                &reference,
                tol,
            )?);
            let ph = draw(&mut r, &[h, n_p, d], 1.0, env.kind);
            let xh = draw(&mut r, &[b, h, t, d], 1.0, env.kind);
            let mut heads = vec![];
            for bi in 0..b {
                for hi in 0..h {
                    heads.push(persistent::reference::prepend(row_block(&ph, hi).view(), head2(&xh, bi, hi).view()));
                }
            }
            let ours =
                persistent::torch::prepend(&to_tch(&ph, env.kind, env.device), &to_tch(&xh, env.kind, env.device));
            out.push(Measurement::compare(
                format!("[B, H, N_p+T, d] (T={t}, seed {seed})"),
                &from_tch(&ours)?,
                &stack_heads(&heads, b, h),
                tol,
            )?);
        }
    }
    Ok(out)
}

/// Eq. 2: causal softmax attention, full, sliding window, window + always-visible prefix; tch (boolean mask,
/// `softmax`) vs the reference (per-query loops over the visible keys).
pub fn softmax_attention_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    let (b, h, d_k, d_v) = (2usize, 3usize, 7usize, 5usize);
    let masks = [
        ("full causal", Mask::default()),
        ("window 5", Mask { window: Some(5), prefix: 0 }),
        ("window 5 + prefix 3", Mask { window: Some(5), prefix: 3 }),
        ("window 1 + prefix 2", Mask { window: Some(1), prefix: 2 }),
    ];
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63] {
            for (mi, (name, mask)) in masks.iter().enumerate() {
                let mut r = Draw::new(seed + 1100 + t as u64 + mi as u64);
                let q = draw(&mut r, &[b, h, t, d_k], 1.0, env.kind);
                let k = draw(&mut r, &[b, h, t, d_k], 1.0, env.kind);
                let v = draw(&mut r, &[b, h, t, d_v], 1.0, env.kind);
                let scale = 1.0 / (d_k as f64).sqrt();
                let mut heads = vec![];
                for bi in 0..b {
                    for hi in 0..h {
                        heads.push(attention::reference::softmax_attention(
                            head2(&q, bi, hi).view(),
                            head2(&k, bi, hi).view(),
                            head2(&v, bi, hi).view(),
                            scale,
                            *mask,
                        ));
                    }
                }
                let tt = |a: &Arr| to_tch(a, env.kind, env.device);
                let ours = attention::torch::softmax_attention(&tt(&q), &tt(&k), &tt(&v), scale, *mask);
                out.push(Measurement::compare(
                    format!("{name} (T={t}, seed {seed})"),
                    &from_tch(&ours)?,
                    &stack_heads(&heads, b, h),
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// Eq. 3: normalised linear attention; tch's cumulative-state (right-hand) form vs the reference's pairwise
/// (left-hand) form, with φ = elu + 1 and with φ = identity on positive inputs.
pub fn linear_attention_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    let (b, h, d_k, d_v) = (2usize, 3usize, 7usize, 5usize);
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63] {
            for f in [FeatureMap::EluPlusOne, FeatureMap::Identity] {
                let mut r = Draw::new(seed + 1200 + t as u64);
                let (q, k) = if f == FeatureMap::Identity {
                    (
                        round_to_kind(&r.uniform(&[b, h, t, d_k], 0.1, 1.0), env.kind),
                        round_to_kind(&r.uniform(&[b, h, t, d_k], 0.1, 1.0), env.kind),
                    )
                } else {
                    (draw(&mut r, &[b, h, t, d_k], 1.0, env.kind), draw(&mut r, &[b, h, t, d_k], 1.0, env.kind))
                };
                let v = draw(&mut r, &[b, h, t, d_v], 1.0, env.kind);
                let mut heads = vec![];
                for bi in 0..b {
                    for hi in 0..h {
                        heads.push(attention::reference::linear_attention(
                            head2(&q, bi, hi).view(),
                            head2(&k, bi, hi).view(),
                            head2(&v, bi, hi).view(),
                            f,
                        ));
                    }
                }
                let tt = |a: &Arr| to_tch(a, env.kind, env.device);
                let ours = attention::torch::linear_attention(&tt(&q), &tt(&k), &tt(&v), f);
                out.push(Measurement::compare(
                    format!("{f:?} (T={t}, seed {seed})"),
                    &from_tch(&ours)?,
                    &stack_heads(&heads, b, h),
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}

/// Eqs. 4–5: the Hebbian recurrence `M_t = M_{t−1} + v_t k_tᵀ`, `y_t = M_t q_t` (reference) vs the parallel
/// form `tril(QKᵀ)V`, `M_T = VᵀK` (tch) — Eq. 3 with φ = identity and no denominator.
pub fn linear_attention_state_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    let (b, h, d_k, d_v) = (2usize, 3usize, 7usize, 5usize);
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63, 100] {
            let mut r = Draw::new(seed + 1300 + t as u64);
            let q = draw(&mut r, &[b, h, t, d_k], 1.0, env.kind);
            let k = draw(&mut r, &[b, h, t, d_k], 1.0, env.kind);
            let v = draw(&mut r, &[b, h, t, d_v], 1.0, env.kind);
            let (mut ys, mut ms) = (vec![], vec![]);
            for bi in 0..b {
                for hi in 0..h {
                    let (y, m) = attention::reference::linear_attention_state(
                        head2(&q, bi, hi).view(),
                        head2(&k, bi, hi).view(),
                        head2(&v, bi, hi).view(),
                    );
                    ys.push(y);
                    ms.push(m);
                }
            }
            let tt = |a: &Arr| to_tch(a, env.kind, env.device);
            let (y, m) = attention::torch::linear_attention_state(&tt(&q), &tt(&k), &tt(&v));
            out.push(Measurement::compare(
                format!("y (T={t}, seed {seed})"),
                &from_tch(&y)?,
                &stack_heads(&ys, b, h),
                tol,
            )?);
            out.push(Measurement::compare(
                format!("M_T (T={t}, seed {seed})"),
                &from_tch(&m)?,
                &stack_heads(&ms, b, h),
                tol,
            )?);
        }
    }
    Ok(out)
}

/// Gradients of a random projection of the outputs w.r.t. every input: tch autograd vs central finite
/// differences of the f64 reference (what outer-loop training differentiates).
fn autograd_vs_fd(
    env: &CheckEnv,
    tag: &str,
    inputs: &[(&str, Arr)],
    torch_loss: impl Fn(&[tch::Tensor]) -> tch::Tensor,
    reference_loss: impl Fn(&[Arr]) -> f64,
) -> Result<Vec<Measurement>> {
    let xs: Vec<tch::Tensor> =
        inputs.iter().map(|(_, a)| to_tch(a, env.kind, env.device).set_requires_grad(true)).collect();
    let grads = tch::Tensor::run_backward(&[torch_loss(&xs)], &xs, false, false);
    let base: Vec<Arr> = inputs.iter().map(|(_, a)| a.clone()).collect();
    let tol = tolerance::FINITE_DIFFERENCE.max(tolerance::gradient_vs_reference(env.kind));
    let mut out = vec![];
    for (i, (name, a)) in inputs.iter().enumerate() {
        let fd = crate::check::finite_difference(a, |x| {
            let mut p = base.clone();
            p[i] = x.clone();
            reference_loss(&p)
        });
        out.push(Measurement::compare(
            format!("dL/d{name}: autograd vs FD of reference ({tag})"),
            &from_tch(&grads[i])?,
            &fd,
            tol,
        )?);
    }
    Ok(out)
}

/// Outer gradients of Eq. 2 (window + prefix mask) and of Eqs. 1/11 + §4.4 (conv, SiLU, ℓ2-norm) w.r.t. all
/// their inputs and weights: tch autograd vs central finite differences of the references.
pub fn block_gradients_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let (b, h, t) = (1usize, 2usize, 7usize);
    for &seed in &env.seeds {
        let mut r = Draw::new(seed + 1900);
        let (d_k, d_v) = (4usize, 3usize);
        let mask = Mask { window: Some(3), prefix: 2 };
        let scale = 1.0 / (d_k as f64).sqrt();
        let q = draw(&mut r, &[b, h, t, d_k], 1.0, env.kind);
        let k = draw(&mut r, &[b, h, t, d_k], 1.0, env.kind);
        let v = draw(&mut r, &[b, h, t, d_v], 1.0, env.kind);
        let ry = r.normal(&[b, h, t, d_v], 1.0);
        let ry_t = to_tch(&ry, env.kind, env.device);
        out.extend(autograd_vs_fd(
            env,
            &format!("softmax attention, window 3 + prefix 2, T={t}, seed {seed}"),
            &[("q", q), ("k", k), ("v", v)],
            |x| (attention::torch::softmax_attention(&x[0], &x[1], &x[2], scale, mask) * &ry_t).sum(env.kind),
            |x| {
                let mut heads = vec![];
                for bi in 0..b {
                    for hi in 0..h {
                        heads.push(attention::reference::softmax_attention(
                            head2(&x[0], bi, hi).view(),
                            head2(&x[1], bi, hi).view(),
                            head2(&x[2], bi, hi).view(),
                            scale,
                            mask,
                        ));
                    }
                }
                stack_heads(&heads, b, h).iter().zip(ry.iter()).map(|(a, c)| a * c).sum()
            },
        )?);
        let (d_in, d_out) = (5usize, 4usize);
        let cfg = ProjectionConfig::query_key();
        let x = draw(&mut r, &[b, t, d_in], 1.0, env.kind);
        let w = draw(&mut r, &[h, d_out, d_in], 0.5, env.kind);
        let conv = draw(&mut r, &[h, d_out, cfg.conv_kernel], 0.6, env.kind);
        let rp = r.normal(&[b, h, t, d_out], 1.0);
        let rp_t = to_tch(&rp, env.kind, env.device);
        out.extend(autograd_vs_fd(
            env,
            &format!("q/k projection, conv 4 + SiLU + l2-norm, T={t}, seed {seed}"),
            &[("x", x), ("W", w), ("conv", conv)],
            |a| (projections::torch::project(&a[0], &a[1], &a[2], &cfg) * &rp_t).sum(env.kind),
            |a| {
                let mut heads = vec![];
                for bi in 0..b {
                    for hi in 0..h {
                        heads.push(projections::reference::project(
                            row_block(&a[0], bi).view(),
                            row_block(&a[1], hi).view(),
                            row_block(&a[2], hi).view(),
                            &cfg,
                        ));
                    }
                }
                stack_heads(&heads, b, h).iter().zip(rp.iter()).map(|(p, c)| p * c).sum()
            },
        )?);
    }
    Ok(out)
}
