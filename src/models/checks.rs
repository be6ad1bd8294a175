//! Checks of the models' own building blocks (those no paper numbers): rotary positions.

use super::rope;
use crate::check::{Check, CheckEnv, Measurement};
use crate::tensor::{from_tch, round_to_kind, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::{Array2, Ix2};
use tch::{Kind, Tensor};

/// The models' checks, by the names `papers/models.yaml` uses.
pub fn checks() -> Vec<Check> {
    vec![Check {
        name: "models_rope",
        summary: "RoPE: tch vs reference (odd and even head widths, random positions); ⟨R_m q, R_n k⟩ depends only on n − m (shifted positions give the same scores); position 0 is the identity",
        run: rope_check,
    }]
}

/// RoPE: (1) tch against the loop reference; (2) the score matrix of rotated queries and keys is unchanged when
/// every position is shifted by the same offset (relative positions only); (3) rotation preserves norms and
/// position 0 is the identity.
pub fn rope_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (i, &(t, d)) in [(7usize, 8usize), (5, 5), (12, 16)].iter().enumerate() {
            let mut r = Draw::new(seed + 31 * i as u64);
            let base = [10_000.0, 100.0, 500.0][i];
            let x = round_to_kind(&r.normal(&[2, 3, t, d], 1.0), env.kind);
            let pos: Vec<f64> = (0..t).map(|j| (j * 3 + r.usize_in(0, 2)) as f64).collect();
            let pos_t = Tensor::from_slice(&pos).to_device(env.device);
            let ours = from_tch(&rope::torch::rotate(&to_tch(&x, env.kind, env.device), &pos_t, base))?;
            let mut refr = Arr::zeros(x.raw_dim());
            for b in 0..2 {
                for h in 0..3 {
                    let xs = x.slice(ndarray::s![b, h, .., ..]).into_dimensionality::<Ix2>()?;
                    refr.slice_mut(ndarray::s![b, h, .., ..]).assign(&rope::reference::rotate(xs, &pos, base));
                }
            }
            let tag = format!("T={t}, d={d}, base {base}, seed {seed}");
            out.push(Measurement::compare(format!("rotated x ({tag})"), &ours, &refr, tol)?);
            // relative positions only: scores of (q at m + s, k at n + s) equal those at (m, n)
            let q = r.normal(&[t, d], 1.0);
            let k = r.normal(&[t, d], 1.0);
            let scores = |shift: f64| -> Array2<f64> {
                let p: Vec<f64> = pos.iter().map(|p| p + shift).collect();
                let (qr, kr) = (
                    rope::reference::rotate(q.view().into_dimensionality::<Ix2>().unwrap(), &p, base),
                    rope::reference::rotate(k.view().into_dimensionality::<Ix2>().unwrap(), &p, base),
                );
                qr.dot(&kr.t())
            };
            let shift = r.uniform(&[1], 1.0, 50.0)[0].round();
            out.push(Measurement::compare(
                format!("scores at positions + {shift} vs at positions ({tag})"),
                &scores(shift).into_dyn(),
                &scores(0.0).into_dyn(),
                tolerance::ALGEBRAIC_F64,
            )?);
            // position 0 leaves x unchanged; every rotation preserves the norm of each row
            let zeros = Tensor::zeros([t as i64], (Kind::Double, env.device));
            let ident = from_tch(&rope::torch::rotate(&to_tch(&x, env.kind, env.device), &zeros, base))?;
            out.push(Measurement::compare(format!("position 0 = identity ({tag})"), &ident, &x, tol)?);
            let norms = |a: &Arr| a.mapv(|u| u * u).sum_axis(ndarray::Axis(3));
            out.push(Measurement::compare(format!("row norms kept ({tag})"), &norms(&ours), &norms(&x), tol)?);
        }
    }
    Ok(out)
}
