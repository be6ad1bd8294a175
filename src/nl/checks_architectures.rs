//! Checks for the architectures Nested Learning rewrites as associative memories and the project does not
//! otherwise build (AdaTransformer, Eqs. 21/69; OjaNet, Eqs. 66–67). f64 reference vs tch:
//! `tolerance::torch_vs_reference` (1e-10 in f64, 1e-5 in f32: short recurrences on O(1) inputs, so f32 adds
//! only its rounding).

use super::checks::stack2;
use super::{ada_transformer, oja};
use crate::check::{CheckEnv, Measurement};
use crate::tensor::{errors, from_tch, head1, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::{ensure, Result};
use ndarray::Array2;

/// Eqs. 66–67: the tch memory stepping by the autograd gradient of Eq. 67 == the f64 update of Eq. 66 written
/// out; and the erase term `−2θ v vᵀ M` acts (the memory differs from the Hebbian rule of Eq. 64 without it).
fn ojanet(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (k, dev) = (env.kind, env.device);
    let (b, h, t_len, d_k, d_v) = (2, 3, 11, 5, 3);
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut dr = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, k);
        let (key, q) = (r(dr.unit_rows(&[b, h, t_len, d_k])), r(dr.unit_rows(&[b, h, t_len, d_k])));
        let v = r(dr.unit_rows(&[b, h, t_len, d_v]));
        let (alpha, theta) = (r(dr.uniform(&[b, h, t_len], 0.0, 0.2)), r(dr.uniform(&[b, h, t_len], 0.05, 0.3)));
        let m0 = r(dr.normal(&[b, h, d_v, d_k], 0.5));
        let t = |a: &Arr| to_tch(a, k, dev);
        let (y, m) = oja::torch::forward(&t(&key), &t(&v), &t(&q), &t(&alpha), &t(&theta), &t(&m0));
        let (mut ys, mut ms, mut hebbian) = (vec![], vec![], vec![]);
        for bi in 0..b {
            for hi in 0..h {
                let (k2, v2, q2) = (head2(&key, bi, hi), head2(&v, bi, hi), head2(&q, bi, hi));
                let (a1, th1) = (head1(&alpha, bi, hi), head1(&theta, bi, hi));
                let (yr, mr) = oja::reference::forward(&k2, &v2, &q2, &a1, &th1, &head2(&m0, bi, hi));
                ys.push(yr);
                ms.push(mr);
                // Eq. 64 (Hebbian, no erase term) from the same start
                let mut mh = head2(&m0, bi, hi);
                for s in 0..t_len {
                    let outer = Array2::from_shape_fn((d_v, d_k), |(i, j)| v2[[s, i]] * k2[[s, j]]);
                    mh = mh * (1.0 - a1[s]) + outer * (2.0 * th1[s]);
                }
                hebbian.push(mh);
            }
        }
        let tol = tolerance::torch_vs_reference(k);
        let my = stack_heads(&ms, b, h);
        out.push(Measurement::compare(format!("y_t (seed {seed})"), &from_tch(&y)?, &stack_heads(&ys, b, h), tol)?);
        out.push(Measurement::compare(format!("M_T (seed {seed})"), &from_tch(&m)?, &my, tol)?);
        let e = errors(&stack_heads(&hebbian, b, h), &my)?;
        ensure!(e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE, "Oja's erase term did nothing ({:.1e})", e.rel_rmse);
    }
    Ok(out)
}

/// Eqs. 21/69: the tch parallel form (static layer plus causal linear attention) == the f64 recurrence (y, M_T);
/// with no writes the block is the static linear layer `y = W u`.
fn ada_transformer(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (kind, dev) = (env.kind, env.device);
    let (b, t_len, d_in, d_out) = (3, 9, 5, 4);
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut dr = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, kind);
        let (u, k) = (r(dr.normal(&[b, t_len, d_in], 1.0)), r(dr.normal(&[b, t_len, d_in], 0.5)));
        let v = r(dr.normal(&[b, t_len, d_out], 0.5));
        let w = r(dr.normal(&[d_out, d_in], 0.5));
        let t = |a: &Arr| to_tch(a, kind, dev);
        let w2 = w.clone().into_dimensionality::<ndarray::Ix2>()?;
        let per_sequence = |v: &Arr| -> Result<(Arr, Arr)> {
            let (mut ys, mut ms) = (vec![], vec![]);
            for i in 0..b {
                let row = |a: &Arr| a.index_axis(ndarray::Axis(0), i).to_owned().into_dimensionality::<ndarray::Ix2>();
                let (y, m) = ada_transformer::reference::forward(&row(&u)?, &row(&k)?, &row(v)?, &w2);
                ys.push(y);
                ms.push(m);
            }
            Ok((stack2(&ys), stack2(&ms)))
        };
        let tol = tolerance::torch_vs_reference(kind);
        let (y, m) = ada_transformer::torch::forward(&t(&u), &t(&k), &t(&v), &t(&w));
        let (yr, mr) = per_sequence(&v)?;
        out.push(Measurement::compare(format!("y_t (seed {seed})"), &from_tch(&y)?, &yr, tol)?);
        out.push(Measurement::compare(format!("M_T (seed {seed})"), &from_tch(&m)?, &mr, tol)?);
        // no writes: the static linear layer y = W u
        let zeros = v.mapv(|_| 0.0);
        let (y0, _) = ada_transformer::torch::forward(&t(&u), &t(&k), &t(&zeros), &t(&w));
        let static_layer = u.clone().into_shape_with_order((b * t_len, d_in))?.dot(&w2.t());
        out.push(Measurement::compare(
            format!("no writes == static layer W u (seed {seed})"),
            &from_tch(&y0)?,
            &static_layer.into_shape_with_order(ndarray::IxDyn(&[b, t_len, d_out]))?,
            tol,
        )?);
    }
    Ok(out)
}

pub fn checks() -> Vec<crate::check::Check> {
    use crate::check::Check;
    vec![
        Check {
            name: "nl_ojanet",
            summary: "Eqs. 66-67: tch memory stepping by the autograd gradient of -2<Mk, v> + |M^T v|^2 == f64 Oja update written out (y, M_T); the erase term acts",
            run: ojanet,
        },
        Check {
            name: "nl_ada_transformer",
            summary: "Eqs. 21/69: AdaTransformer's in-context weight, tch parallel form (W u + causal linear attention) == f64 recurrence M_t = M_{t-1} + v k^T, y = M_t u; no writes == static layer",
            run: ada_transformer,
        },
    ]
}
