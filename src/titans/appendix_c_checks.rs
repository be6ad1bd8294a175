//! Checks for Appendix C (Eqs. 32–35) and the true relation to Gated DeltaNet (catalog §4). Each side of an
//! equivalence is written on its own: Titans by `linear_memory` / `appendix_c::*::channelwise_forward`,
//! DeltaNet / Gated DeltaNet / Longhorn in their printed product forms, Longhorn also as a numerical argmin.

use super::appendix_c::{reference, torch};
use super::checks::{reference_batched as titans_reference, Case, Drawn};
use super::chunkwise_checks::must_differ;
use super::linear_memory::{self, ReadMode};
use crate::check::{CheckEnv, Measurement};
use crate::tensor::{from_tch, head1, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{s, Array2, Ix2};
use tch::Tensor;

fn tt(a: &Arr, env: &CheckEnv) -> Tensor {
    to_tch(a, env.kind, env.device)
}

/// `[B, H, T, d]` gate `(b, h)` slice as `T × d`.
fn gate_rows(a: &Arr, b: usize, h: usize) -> Array2<f64> {
    a.slice(s![b, h, .., ..]).to_owned().into_dimensionality::<Ix2>().expect("rank 4")
}

/// Eqs. 32–33 (corrected, gates on the value rows): tch vs the reference; and gates constant across channels
/// equal the scalar-gate linear memory (Eqs. 13–14).
pub fn channelwise_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &t in &[1usize, 7, 63, 100] {
            let case = Case::with_len(t);
            let d = Drawn::new(seed + 1400 + t as u64, case, env.kind);
            let mut r = Draw::new(seed + 1450 + t as u64);
            let sh = [case.b, case.h, t, case.d_v];
            let alpha = round_to_kind(&r.uniform(&sh, 0.0, 0.3), env.kind);
            let eta = round_to_kind(&r.uniform(&sh, 0.0, 0.9), env.kind);
            let theta = round_to_kind(&r.uniform(&sh, 0.05, 0.4), env.kind);
            let (mut ys, mut ms, mut ss) = (vec![], vec![], vec![]);
            for b in 0..case.b {
                for h in 0..case.h {
                    let (y, m, s_) = reference::channelwise_forward(
                        head2(&d.k, b, h).view(),
                        head2(&d.v, b, h).view(),
                        head2(&d.q, b, h).view(),
                        gate_rows(&alpha, b, h).view(),
                        gate_rows(&eta, b, h).view(),
                        gate_rows(&theta, b, h).view(),
                        &head2(&d.m0, b, h),
                        &head2(&d.s0, b, h),
                        1.0,
                    );
                    ys.push(y);
                    ms.push(m);
                    ss.push(s_);
                }
            }
            let (y, m, s_) = torch::channelwise_forward(
                &tt(&d.k, env),
                &tt(&d.v, env),
                &tt(&d.q, env),
                &tt(&alpha, env),
                &tt(&eta, env),
                &tt(&theta, env),
                &tt(&d.m0, env),
                &tt(&d.s0, env),
                1.0,
            );
            let (nb, nh) = (case.b, case.h);
            out.push(Measurement::compare(
                format!("y (T={t}, seed {seed})"),
                &from_tch(&y)?,
                &stack_heads(&ys, nb, nh),
                tol,
            )?);
            out.push(Measurement::compare(
                format!("M_T (T={t}, seed {seed})"),
                &from_tch(&m)?,
                &stack_heads(&ms, nb, nh),
                tol,
            )?);
            out.push(Measurement::compare(
                format!("S_T (T={t}, seed {seed})"),
                &from_tch(&s_)?,
                &stack_heads(&ss, nb, nh),
                tol,
            )?);
            // scalar gates broadcast to every channel == Eqs. 13–14
            let bc = |g: &Arr| {
                let g4 = g.clone().insert_axis(ndarray::Axis(3));
                g4.broadcast(sh.as_slice()).unwrap().to_owned()
            };
            let (y, m, _) = torch::channelwise_forward(
                &tt(&d.k, env),
                &tt(&d.v, env),
                &tt(&d.q, env),
                &tt(&bc(&d.alpha), env),
                &tt(&bc(&d.eta), env),
                &tt(&bc(&d.theta), env),
                &tt(&d.m0, env),
                &tt(&d.s0, env),
                1.0,
            );
            let (y_ref, m_ref, _) = titans_reference(&d, 1.0, ReadMode::AfterWrite);
            let eq = tolerance::equivalence(env.kind);
            out.push(Measurement::compare(
                format!("constant channels: y vs scalar-gate Titans (T={t}, seed {seed})"),
                &from_tch(&y)?,
                &y_ref,
                eq,
            )?);
            out.push(Measurement::compare(
                format!("constant channels: M_T vs scalar-gate Titans (T={t}, seed {seed})"),
                &from_tch(&m)?,
                &m_ref,
                eq,
            )?);
        }
    }
    Ok(out)
}

/// Runs DeltaNet-family references head by head: `f(k, v, q, gates…, s0) -> (y, S_T)`.
fn per_head(d: &Drawn, f: impl Fn(&Drawn, usize, usize) -> (Array2<f64>, Array2<f64>)) -> (Arr, Arr) {
    let (nb, nh) = d.dims();
    let (mut ys, mut ss) = (vec![], vec![]);
    for b in 0..nb {
        for h in 0..nh {
            let (y, s_) = f(d, b, h);
            ys.push(y);
            ss.push(s_);
        }
    }
    (stack_heads(&ys, nb, nh), stack_heads(&ss, nb, nh))
}

fn titans_torch(d: &Drawn, env: &CheckEnv, loss_scale: f64) -> linear_memory::torch::Outputs {
    let x = d.tensors(env, false);
    linear_memory::torch::forward(
        &x[0],
        &x[1],
        &x[2],
        &x[3],
        &x[4],
        &x[5],
        &x[6],
        &x[7],
        loss_scale,
        ReadMode::AfterWrite,
    )
}

/// Eq. 34: Titans with η = α = 0, S_0 = 0 is DeltaNet with β = 2cθ — c = 1 (Eq. 12, β = 2θ) and c = ½ (the
/// appendix's ½-loss, β = θ); and DeltaNet's tch product form vs its reference.
pub fn deltanet_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let eq = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &t in &[7usize, 63, 100] {
            let mut d = Drawn::new(seed + 1500 + t as u64, Case::with_len(t), env.kind);
            d.alpha.fill(0.0);
            d.eta.fill(0.0);
            d.s0.fill(0.0);
            for c in [1.0, 0.5] {
                let o = titans_torch(&d, env, c);
                let (y_dn, s_dn) = per_head(&d, |d, b, h| {
                    let beta = head1(&d.theta, b, h) * (2.0 * c);
                    reference::deltanet(
                        head2(&d.k, b, h).view(),
                        head2(&d.v, b, h).view(),
                        head2(&d.q, b, h).view(),
                        beta.view(),
                        &head2(&d.m0, b, h),
                    )
                });
                let tag = format!("c={c}, β=2cθ, T={t}, seed {seed}");
                out.push(Measurement::compare(
                    format!("Titans(η=α=0) y vs DeltaNet ({tag})"),
                    &from_tch(&o.y)?,
                    &y_dn,
                    eq,
                )?);
                out.push(Measurement::compare(
                    format!("Titans(η=α=0) M_T vs DeltaNet S_T ({tag})"),
                    &from_tch(&o.m_final)?,
                    &s_dn,
                    eq,
                )?);
            }
            let beta = round_to_kind(&(&d.theta * 2.0), env.kind);
            let (y, s_) =
                torch::deltanet(&tt(&d.k, env), &tt(&d.v, env), &tt(&d.q, env), &tt(&beta, env), &tt(&d.m0, env));
            let (y_dn, s_dn) = per_head(&d, |d, b, h| {
                reference::deltanet(
                    head2(&d.k, b, h).view(),
                    head2(&d.v, b, h).view(),
                    head2(&d.q, b, h).view(),
                    head1(&beta, b, h).view(),
                    &head2(&d.m0, b, h),
                )
            });
            out.push(Measurement::compare(
                format!("DeltaNet tch vs reference y (T={t}, seed {seed})"),
                &from_tch(&y)?,
                &y_dn,
                eq,
            )?);
            out.push(Measurement::compare(
                format!("DeltaNet tch vs reference S_T (T={t}, seed {seed})"),
                &from_tch(&s_)?,
                &s_dn,
                eq,
            )?);
        }
    }
    Ok(out)
}

/// The true relation to Gated DeltaNet (catalog §4), η = 0, S_0 = 0:
/// 1. exact map `a = 1 − α`, `b = 2θ/(1 − α)`, values `(1 − α)v`: Titans (tch) == GDN (reference);
/// 2. converse `α = 1 − a`, `θ = ab/2`, values `v/a`: GDN (tch) == Titans (reference);
/// 3. naive map `a = 1 − α`, `b = 2θ`: one step differs by exactly `2αθ M_{t−1} k kᵀ`, and over a sequence the
///    two are clearly different (the appendix's claim holds only with α = 0);
/// 4. GDN (tch product form) == "decay, then a ½-loss gradient step at the decayed state" (reference).
pub fn gated_deltanet_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let eq = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &t in &[7usize, 63] {
            let mut d = Drawn::new(seed + 1600 + t as u64, Case::with_len(t), env.kind);
            d.eta.fill(0.0);
            d.s0.fill(0.0);
            let tag = format!("T={t}, seed {seed}");
            // 1. Titans == GDN under the exact, value-rescaled map
            let o = titans_torch(&d, env, 1.0);
            let (y_g, s_g) = per_head(&d, |d, b, h| {
                let al = head1(&d.alpha, b, h);
                let a = al.mapv(|x| 1.0 - x);
                let bb = &head1(&d.theta, b, h) * 2.0 / &a;
                let mut v = head2(&d.v, b, h);
                for (mut row, ai) in v.rows_mut().into_iter().zip(a.iter()) {
                    row *= *ai;
                }
                reference::gated_deltanet(
                    head2(&d.k, b, h).view(),
                    v.view(),
                    head2(&d.q, b, h).view(),
                    a.view(),
                    bb.view(),
                    &head2(&d.m0, b, h),
                )
            });
            out.push(Measurement::compare(format!("exact map: Titans y vs GDN ({tag})"), &from_tch(&o.y)?, &y_g, eq)?);
            out.push(Measurement::compare(
                format!("exact map: Titans M_T vs GDN S_T ({tag})"),
                &from_tch(&o.m_final)?,
                &s_g,
                eq,
            )?);
            // 2. GDN(a, b, v) == Titans(α = 1 − a, θ = ab/2, v/a)
            let mut r = Draw::new(seed + 1650 + t as u64);
            let (nb, nh) = d.dims();
            let a = round_to_kind(&r.uniform(&[nb, nh, t], 0.7, 1.0), env.kind);
            let b = round_to_kind(&r.uniform(&[nb, nh, t], 0.1, 0.8), env.kind);
            let (y, s_) = torch::gated_deltanet(
                &tt(&d.k, env),
                &tt(&d.v, env),
                &tt(&d.q, env),
                &tt(&a, env),
                &tt(&b, env),
                &tt(&d.m0, env),
            );
            let mut conv = d.clone();
            conv.alpha = a.mapv(|x| 1.0 - x);
            conv.theta = &a * &b / 2.0;
            let a4 = a.clone().insert_axis(ndarray::Axis(3));
            conv.v = &d.v / &a4;
            let (y_t, m_t, _) = titans_reference(&conv, 1.0, ReadMode::AfterWrite);
            out.push(Measurement::compare(format!("converse map: GDN y vs Titans ({tag})"), &from_tch(&y)?, &y_t, eq)?);
            out.push(Measurement::compare(
                format!("converse map: GDN S_T vs Titans M_T ({tag})"),
                &from_tch(&s_)?,
                &m_t,
                eq,
            )?);
            // 4. GDN == decay then a gradient step at the decayed state
            let s_dec = per_head(&d, |_, bi, hi| {
                let s_ = reference::gated_deltanet_as_decayed_step(
                    head2(&d.k, bi, hi).view(),
                    head2(&d.v, bi, hi).view(),
                    head1(&a, bi, hi).view(),
                    head1(&b, bi, hi).view(),
                    &head2(&d.m0, bi, hi),
                );
                (Array2::zeros((0, 0)), s_)
            })
            .1;
            out.push(Measurement::compare(
                format!("GDN S_T vs decay-then-step at the decayed state ({tag})"),
                &from_tch(&s_)?,
                &s_dec,
                eq,
            )?);
            // 3. naive map a = 1 − α, b = 2θ
            let a_n = d.alpha.mapv(|x| 1.0 - x);
            let b_n = &d.theta * 2.0;
            let (y_n, s_n) = torch::gated_deltanet(
                &tt(&d.k, env),
                &tt(&d.v, env),
                &tt(&d.q, env),
                &tt(&a_n, env),
                &tt(&b_n, env),
                &tt(&d.m0, env),
            );
            out.push(must_differ(format!("naive map: GDN y vs Titans ({tag})"), &from_tch(&y_n)?, &from_tch(&o.y)?)?);
            out.push(must_differ(
                format!("naive map: GDN S_T vs Titans M_T ({tag})"),
                &from_tch(&s_n)?,
                &from_tch(&o.m_final)?,
            )?);
        }
        // 3b. one step of the naive map: GDN − Titans = 2αθ M_{t−1} k kᵀ exactly
        let mut d = Drawn::new(seed + 1700, Case::with_len(1), env.kind);
        d.eta.fill(0.0);
        d.s0.fill(0.0);
        let a_n = d.alpha.mapv(|x| 1.0 - x);
        let b_n = &d.theta * 2.0;
        let (_, s_n) = torch::gated_deltanet(
            &tt(&d.k, env),
            &tt(&d.v, env),
            &tt(&d.q, env),
            &tt(&a_n, env),
            &tt(&b_n, env),
            &tt(&d.m0, env),
        );
        let o = titans_torch(&d, env, 1.0);
        let diff = from_tch(&(s_n - &o.m_final))?;
        let (nb, nh) = d.dims();
        let mut predicted = vec![];
        for bi in 0..nb {
            for hi in 0..nh {
                let (m, k) = (head2(&d.m0, bi, hi), head2(&d.k, bi, hi));
                let (al, th) = (d.alpha[[bi, hi, 0]], d.theta[[bi, hi, 0]]);
                let mk: Vec<f64> =
                    (0..m.nrows()).map(|i| (0..m.ncols()).map(|j| m[[i, j]] * k[[0, j]]).sum()).collect();
                predicted.push(Array2::from_shape_fn(m.dim(), |(i, j)| 2.0 * al * th * mk[i] * k[[0, j]]));
            }
        }
        out.push(Measurement::compare(
            format!("naive map, one step: GDN − Titans vs 2αθ M kkᵀ (seed {seed})"),
            &diff,
            &stack_heads(&predicted, nb, nh),
            eq,
        )?);
    }
    Ok(out)
}

/// Eq. 35 (corrected denominator `kᵀk`): Longhorn's closed form (tch) vs the proximal argmin solved by a linear
/// system (reference), general keys; with unit keys, Longhorn == DeltaNet with β = θ/(1 + θ) (reference).
pub fn longhorn_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let eq = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &t in &[7usize, 63] {
            let case = Case::with_len(t);
            let mut d = Drawn::new(seed + 1800 + t as u64, case, env.kind);
            let tag = format!("T={t}, seed {seed}");
            // unit keys (Drawn's default)
            let (y, s_) =
                torch::longhorn(&tt(&d.k, env), &tt(&d.v, env), &tt(&d.q, env), &tt(&d.theta, env), &tt(&d.m0, env));
            let (y_dn, s_dn) = per_head(&d, |d, b, h| {
                let th = head1(&d.theta, b, h);
                let beta = th.mapv(|x| x / (1.0 + x));
                reference::deltanet(
                    head2(&d.k, b, h).view(),
                    head2(&d.v, b, h).view(),
                    head2(&d.q, b, h).view(),
                    beta.view(),
                    &head2(&d.m0, b, h),
                )
            });
            out.push(Measurement::compare(
                format!("unit keys: Longhorn y vs DeltaNet β=θ/(1+θ) ({tag})"),
                &from_tch(&y)?,
                &y_dn,
                eq,
            )?);
            out.push(Measurement::compare(
                format!("unit keys: Longhorn S_T vs DeltaNet β=θ/(1+θ) ({tag})"),
                &from_tch(&s_)?,
                &s_dn,
                eq,
            )?);
            // general keys (norm ≈ 0.6·√d_k) against the argmin
            let mut r = Draw::new(seed + 1850 + t as u64);
            d.k = round_to_kind(&r.normal(&[case.b, case.h, t, case.d_k], 0.6), env.kind);
            let (y, s_) =
                torch::longhorn(&tt(&d.k, env), &tt(&d.v, env), &tt(&d.q, env), &tt(&d.theta, env), &tt(&d.m0, env));
            let (y_p, s_p) = per_head(&d, |d, b, h| {
                reference::longhorn_proximal(
                    head2(&d.k, b, h).view(),
                    head2(&d.v, b, h).view(),
                    head2(&d.q, b, h).view(),
                    head1(&d.theta, b, h).view(),
                    &head2(&d.m0, b, h),
                )
            });
            out.push(Measurement::compare(
                format!("Longhorn closed form y vs proximal argmin ({tag})"),
                &from_tch(&y)?,
                &y_p,
                eq,
            )?);
            out.push(Measurement::compare(
                format!("Longhorn closed form S_T vs proximal argmin ({tag})"),
                &from_tch(&s_)?,
                &s_p,
                eq,
            )?);
        }
    }
    Ok(out)
}
