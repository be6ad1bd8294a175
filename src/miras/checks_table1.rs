//! Checks for the remaining rows of MIRAS Table 1 (`super::table1`): tch (batched, broadcast products) against the
//! f64 reference (entry-by-entry loops) for DFW, GLA, HGRN2, RWKV-7 and DeltaProduct — outputs and final memories,
//! tolerance `tolerance::torch_vs_reference` (1e-10 in f64; 1e-5 in f32: contractive gates on unit keys keep the
//! recurrence well conditioned) — and the reductions the table implies, in f64 between references
//! (`tolerance::ALGEBRAIC_F64`): DFW with β = 1 is GLA; RWKV-7 with a uniform gate is Gated DeltaNet, which is
//! DeltaProduct with one step; GLA with a uniform gate is Mamba2's scalar-gated recurrence.

use super::table1::{reference, torch};
use crate::check::{CheckEnv, Measurement};
use crate::tensor::{from_tch, head1, head2, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{Array2, Array3, Axis};

/// One head's `(y [T, d_v], M_T)`.
type Head = (Array2<f64>, Array2<f64>);

const B: usize = 2;
const H: usize = 2;
const T: usize = 9;
const DK: usize = 5;
const DV: usize = 3;
const STEPS: usize = 3;

/// `[B, H, T, n, d]` → head `(b, h)` as `[T, n, d]`.
fn head3(a: &Arr, b: usize, h: usize) -> Array3<f64> {
    a.index_axis(Axis(0), b).index_axis(Axis(0), h).to_owned().into_dimensionality().expect("rank 3")
}

/// Runs a reference per head and stacks `(y, M_T)` as `[B, H, T, d_v]`, `[B, H, d_v, d_k]`.
fn per_head(f: impl Fn(usize, usize) -> (Array2<f64>, Array2<f64>)) -> Result<(Arr, Arr)> {
    let (mut ys, mut ms) = (vec![], vec![]);
    for b in 0..B {
        for h in 0..H {
            let (y, m) = f(b, h);
            ys.push(y);
            ms.push(m);
        }
    }
    Ok((stack_heads(&ys, B, H), stack_heads(&ms, B, H)))
}

fn compare(
    out: &mut Vec<Measurement>,
    row: &str,
    seed: u64,
    ours: (tch::Tensor, tch::Tensor),
    reference: (Arr, Arr),
    tol: f64,
) -> Result<()> {
    out.push(Measurement::compare(format!("{row}: y_t (seed {seed})"), &from_tch(&ours.0)?, &reference.0, tol)?);
    out.push(Measurement::compare(format!("{row}: M_T (seed {seed})"), &from_tch(&ours.1)?, &reference.1, tol)?);
    Ok(())
}

pub fn table1_rows(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (kind, dev) = (env.kind, env.device);
    let tol = tolerance::torch_vs_reference(kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut d = Draw::new(seed);
        let r = |a: Arr| round_to_kind(&a, kind);
        let (k, q) = (r(d.unit_rows(&[B, H, T, DK])), r(d.unit_rows(&[B, H, T, DK])));
        let v = r(d.normal(&[B, H, T, DV], 1.0));
        let alpha_k = r(d.uniform(&[B, H, T, DK], 0.7, 1.0));
        let beta_v = r(d.uniform(&[B, H, T, DV], 0.7, 1.0));
        let beta = r(d.uniform(&[B, H, T], 0.1, 0.9));
        let alpha = r(d.uniform(&[B, H, T], 0.7, 1.0));
        let kn = r(d.unit_rows(&[B, H, T, STEPS, DK]));
        let vn = r(d.normal(&[B, H, T, STEPS, DV], 1.0));
        let betan = r(d.uniform(&[B, H, T, STEPS], 0.1, 0.9));
        let m0 = r(d.normal(&[B, H, DV, DK], 0.5));
        let t = |a: &Arr| to_tch(a, kind, dev);
        let hgrn2_keys = alpha_k.mapv(|a| 1.0 - a);

        let dfw_ref = per_head(|b, h| {
            reference::dfw(
                &head2(&k, b, h),
                &head2(&v, b, h),
                &head2(&q, b, h),
                &head2(&alpha_k, b, h),
                &head2(&beta_v, b, h),
                &head2(&m0, b, h),
            )
        })?;
        compare(
            &mut out,
            "DFW",
            seed,
            torch::dfw(&t(&k), &t(&v), &t(&q), &t(&alpha_k), &t(&beta_v), &t(&m0)),
            dfw_ref,
            tol,
        )?;

        let gla_ref = per_head(|b, h| {
            reference::gated_key_channels(
                &head2(&k, b, h),
                &head2(&v, b, h),
                &head2(&q, b, h),
                &head2(&alpha_k, b, h),
                &head2(&m0, b, h),
            )
        })?;
        compare(
            &mut out,
            "GLA",
            seed,
            torch::gated_key_channels(&t(&k), &t(&v), &t(&q), &t(&alpha_k), &t(&m0)),
            gla_ref.clone(),
            tol,
        )?;

        let hgrn2_ref = per_head(|b, h| {
            let keys = reference::hgrn2_keys(&head2(&alpha_k, b, h));
            reference::gated_key_channels(
                &keys,
                &head2(&v, b, h),
                &head2(&q, b, h),
                &head2(&alpha_k, b, h),
                &head2(&m0, b, h),
            )
        })?;
        compare(
            &mut out,
            "HGRN2",
            seed,
            torch::gated_key_channels(&t(&hgrn2_keys), &t(&v), &t(&q), &t(&alpha_k), &t(&m0)),
            hgrn2_ref,
            tol,
        )?;

        let rwkv_ref = per_head(|b, h| {
            reference::rwkv7(
                &head2(&k, b, h),
                &head2(&v, b, h),
                &head2(&q, b, h),
                &head2(&alpha_k, b, h),
                &head1(&beta, b, h),
                &head2(&m0, b, h),
            )
        })?;
        compare(
            &mut out,
            "RWKV-7",
            seed,
            torch::rwkv7(&t(&k), &t(&v), &t(&q), &t(&alpha_k), &t(&beta), &t(&m0)),
            rwkv_ref,
            tol,
        )?;

        let dp_ref = per_head(|b, h| {
            reference::delta_product(
                &head3(&kn, b, h),
                &head3(&vn, b, h),
                &head2(&q, b, h),
                &head1(&alpha, b, h),
                &head2(&betan, b, h),
                &head2(&m0, b, h),
            )
        })?;
        compare(
            &mut out,
            "DeltaProduct (n = 3)",
            seed,
            torch::delta_product(&t(&kn), &t(&vn), &t(&q), &t(&alpha), &t(&betan), &t(&m0)),
            dp_ref,
            tol,
        )?;

        // reductions, f64 reference against f64 reference (one head)
        let (k2, v2, q2, m2) = (head2(&k, 0, 1), head2(&v, 0, 1), head2(&q, 0, 1), head2(&m0, 0, 1));
        let (a_k, a1, b1) = (head2(&alpha_k, 0, 1), head1(&alpha, 0, 1), head1(&beta, 0, 1));
        let exact = tolerance::ALGEBRAIC_F64;
        let ones_v = Array2::<f64>::ones((T, DV));
        let reduction = |out: &mut Vec<Measurement>, name: &str, a: Head, b: Head| -> Result<()> {
            out.push(Measurement::compare(
                format!("{name}: y_t (seed {seed})"),
                &a.0.into_dyn(),
                &b.0.into_dyn(),
                exact,
            )?);
            out.push(Measurement::compare(
                format!("{name}: M_T (seed {seed})"),
                &a.1.into_dyn(),
                &b.1.into_dyn(),
                exact,
            )?);
            Ok(())
        };
        reduction(
            &mut out,
            "DFW with beta = 1 == GLA",
            reference::dfw(&k2, &v2, &q2, &a_k, &ones_v, &m2),
            reference::gated_key_channels(&k2, &v2, &q2, &a_k, &m2),
        )?;
        let uniform = Array2::from_shape_fn((T, DK), |(s, _)| a1[s]);
        let (one_k, one_v, one_b) =
            (k2.clone().insert_axis(Axis(1)), v2.clone().insert_axis(Axis(1)), b1.clone().insert_axis(Axis(1)));
        reduction(
            &mut out,
            "RWKV-7 with a uniform gate == DeltaProduct with n = 1 (Gated DeltaNet)",
            reference::rwkv7(&k2, &v2, &q2, &uniform, &b1, &m2),
            reference::delta_product(&one_k, &one_v, &q2, &a1, &one_b, &m2),
        )?;
        // GLA with a uniform gate == Mamba2's M_t = α_t M_{t−1} + v_t k_tᵀ, written out
        let mut m = m2.clone();
        let mut ys = Array2::<f64>::zeros((T, DV));
        for s in 0..T {
            let kv = Array2::from_shape_fn((DV, DK), |(a, b)| v2[[s, a]] * k2[[s, b]]);
            m = &m * a1[s] + kv;
            ys.row_mut(s).assign(&m.dot(&q2.row(s)));
        }
        reduction(
            &mut out,
            "GLA with a uniform gate == scalar-gated (Mamba2) recurrence",
            reference::gated_key_channels(&k2, &v2, &q2, &uniform, &m2),
            (ys, m),
        )?;
    }
    Ok(out)
}
