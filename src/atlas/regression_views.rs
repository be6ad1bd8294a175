//! ATLAS (arXiv 2505.23735 v1) §3.1, Eqs. 17–18: softmax attention is the solution of a weighted regression.
//! For a query `q_t` and similarity `s(k, q) = exp(s_c · qᵀk)` (`s_c` the attention scale):
//!
//! * Eq. 17 (global, causal): $$\mathcal M^*_t = \arg\min_{m}\sum_{i\le t} s(k_i, q_t)\,\lVert v_i - m\rVert_2^2
//!   = \sum_{i\le t}\frac{s(k_i,q_t)}{\sum_{j\le t}s(k_j,q_t)}\,v_i$$
//! * Eq. 18 (sliding window of `c` tokens): the same with `t − c < i ≤ t`. ⚠ The printed objective weighs token
//!   `i` by `s(k_i, q_i)` while its solution uses `s(k_i, q)`; only the current query `q_t` makes the two sides
//!   agree (and makes the solution sliding-window attention), so both use `s(k_i, q_t)`.
//!
//! [`reference`] solves each arg min as a weighted least-squares problem with ndarray-linalg (never forming the
//! weighted mean); the tch side is the models' attention ([`crate::models::attention::torch::softmax_attention`])
//! with the matching mask. Their agreement is check `atlas_attention_as_regression`.

use crate::check::{CheckEnv, Measurement};
use crate::models::attention::{torch as attention, Mask};
use crate::tensor::{from_tch, round_to_kind, to_tch, Draw};
use crate::tolerance;
use anyhow::Result;
use ndarray::Ix2;

/// f64, one head, one least-squares solve per query.
pub mod reference {
    use ndarray::{Array1, Array2, ArrayView2};
    use ndarray_linalg::LeastSquaresSvd;

    /// `q, k` are `T × d_k`, `v` is `T × d_v`; `window = None` is Eq. 17 (every earlier token), `Some(c)` Eq. 18.
    /// Row `t` of the result is the arg min over `m ∈ R^{d_v}` of `Σ_i s(k_i, q_t)‖v_i − m‖²`, solved as the
    /// stacked system `√s_i · I · m ≈ √s_i · v_i` (the similarities divided by their largest, which leaves the
    /// arg min unchanged and keeps `exp` finite).
    pub fn regression_readout(
        q: ArrayView2<f64>,
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        scale: f64,
        window: Option<usize>,
    ) -> Array2<f64> {
        let (t_len, d_v) = (q.nrows(), v.ncols());
        let mut out = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            let first = window.map_or(0, |c| (t + 1).saturating_sub(c));
            let logits: Vec<f64> = (first..=t).map(|i| scale * q.row(t).dot(&k.row(i))).collect();
            let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let n = logits.len();
            let mut design = Array2::zeros((n * d_v, d_v));
            let mut target = Array1::zeros(n * d_v);
            for (r, (i, logit)) in (first..=t).zip(&logits).enumerate() {
                let w = (logit - top).exp().sqrt();
                for c in 0..d_v {
                    design[[r * d_v + c, c]] = w;
                    target[r * d_v + c] = w * v[[i, c]];
                }
            }
            let solved = design.least_squares(&target).expect("a full-rank weighted least-squares system");
            out.row_mut(t).assign(&solved.solution);
        }
        out
    }
}

/// Eqs. 17–18: the least-squares arg min of every query (f64) equals the models' causal softmax attention (tch),
/// globally and over sliding windows c = 1, 4, 9, for T = 1, 13, 40 and d_k ≠ d_v.
pub fn attention_as_regression(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (n, &t) in [1usize, 13, 40].iter().enumerate() {
            let (d_k, d_v) = (5, 3);
            let scale = 1.0 / (d_k as f64).sqrt();
            let mut draw = Draw::new(seed * 31 + n as u64);
            let q = round_to_kind(&draw.normal(&[1, 1, t, d_k], 1.0), env.kind);
            let k = round_to_kind(&draw.normal(&[1, 1, t, d_k], 1.0), env.kind);
            let v = round_to_kind(&draw.normal(&[1, 1, t, d_v], 1.0), env.kind);
            let head = |a: &crate::tensor::Arr| {
                a.index_axis(ndarray::Axis(0), 0)
                    .index_axis(ndarray::Axis(0), 0)
                    .to_owned()
                    .into_dimensionality::<Ix2>()
            };
            let (qh, kh, vh) = (head(&q)?, head(&k)?, head(&v)?);
            for window in [None, Some(1), Some(4), Some(9)] {
                let want = reference::regression_readout(qh.view(), kh.view(), vh.view(), scale, window);
                let got = attention::softmax_attention(
                    &to_tch(&q, env.kind, env.device),
                    &to_tch(&k, env.kind, env.device),
                    &to_tch(&v, env.kind, env.device),
                    scale,
                    Mask { window, prefix: 0 },
                );
                let name = window.map_or("Eq. 17, causal".to_string(), |c| format!("Eq. 18, window c = {c}"));
                out.push(Measurement::compare(
                    format!(
                        "softmax attention (tch) vs weighted least-squares arg min (f64), {name}, T = {t}, seed {seed}"
                    ),
                    &from_tch(&got)?,
                    &want.into_shape_with_order((1, 1, t, d_v))?.into_dyn(),
                    tol,
                )?);
            }
        }
    }
    Ok(out)
}
