//! Checks for the architectures Nested Learning §5 rewrites as associative memories and the project does not
//! otherwise build (OjaNet, Eqs. 66–67). f64 reference vs tch: `tolerance::torch_vs_reference` (1e-10 in f64,
//! 1e-5 in f32: a short recurrence of contractive steps, so f32 adds only its rounding).

use super::oja;
use crate::check::{CheckEnv, Measurement};
use crate::tensor::{errors, from_tch, head1, head2, round_to_kind, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::{ensure, Result};
use ndarray::Array2;

fn stack(xs: &[Array2<f64>], shape: &[usize]) -> Result<Arr> {
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    Ok(ndarray::stack(ndarray::Axis(0), &views)?.into_shape_with_order(ndarray::IxDyn(shape))?)
}

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
        let my = stack(&ms, &[b, h, d_v, d_k])?;
        out.push(Measurement::compare(
            format!("y_t (seed {seed})"),
            &from_tch(&y)?,
            &stack(&ys, &[b, h, t_len, d_v])?,
            tol,
        )?);
        out.push(Measurement::compare(format!("M_T (seed {seed})"), &from_tch(&m)?, &my, tol)?);
        let e = errors(&stack(&hebbian, &[b, h, d_v, d_k])?, &my)?;
        ensure!(e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE, "Oja's erase term did nothing ({:.1e})", e.rel_rmse);
    }
    Ok(out)
}

pub fn checks() -> Vec<crate::check::Check> {
    use crate::check::Check;
    vec![Check {
        name: "nl_ojanet",
        summary: "Eqs. 66-67: tch memory stepping by the autograd gradient of -2<Mk, v> + |M^T v|^2 == f64 Oja update written out (y, M_T); the erase term acts",
        run: ojanet,
    }]
}
