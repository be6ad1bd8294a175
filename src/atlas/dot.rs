//! ATLAS (arXiv 2505.23735 v1) §3.3, Eqs. 27–31: **Dot**, the Omega rule with the exponential kernel's feature
//! map φ* (no retention, no momentum, unit step), for a linear memory, in kernelized form.
//!
//! φ* cannot be materialised, but a linear memory that starts empty stays a combination of the seen keys'
//! features, `M_t = Σ_j a_j φ*(k_j)ᵀ`, so `M φ*(x) = Σ_j a_j exp(k_jᵀx)`. Eq. 27's step
//! `M_t = M_{t−1} − ∇ Σ_{i∈W_t} γ_i ‖M φ*(k_i) − v_i‖²` (corrected as Eq. 11: write added, projector on the
//! right, factor 2 written; catalog ⚠ at Eqs. 28–29, 31) becomes, with every window term at `M_{t−1}`:
//!
//! $$a_i \leftarrow a_i + 2\gamma_i\Big(v_i - \sum_j a_j \exp(k_j^\top k_i)\Big)\quad(i\in W_t = \{t-c+1,\dots,t\}),
//!   \qquad y_t = \sum_j a_j\exp(k_j^\top q_t)$$
//!
//! `c = 1` is Eqs. 30–31, "delta-rule attention": `y_t = M_{t−1}φ*(q_t) − 2γ_t exp(k_tᵀq_t)(M_{t−1}φ*(k_t) − v_t)`.
//! The window starts truncated (tokens before the first are absent). [`reference`] loops over slots in f64;
//! [`torch`] keeps the slots as a `[B, H, T, d_v]` tensor. Check `atlas_dot_kernelized`: tch vs reference, and the
//! reference against the Omega rule ([`super::omega`]) on the degree-8 truncation of φ* (Eq. 5's map with
//! `a_j = 1/j!`) for small keys, where the truncation error is below 1e-11.

/// f64, one head: the slot coefficients token by token.
pub mod reference {
    use ndarray::{Array2, ArrayView1, ArrayView2};

    /// `k, q` are `T × d_k`, `v` is `T × d_v`, `gamma` the `T` window weights; returns `y` (read after write)
    /// and the slot coefficients `a` (`T × d_v`, row `j` the coefficient of `φ*(k_j)`).
    pub fn dot_kernelized(
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        q: ArrayView2<f64>,
        gamma: ArrayView1<f64>,
        window: usize,
    ) -> (Array2<f64>, Array2<f64>) {
        let (t_len, d_v) = (k.nrows(), v.ncols());
        let mut a = Array2::<f64>::zeros((t_len, d_v));
        let mut y = Array2::zeros((t_len, d_v));
        let kernel = |x: ArrayView1<f64>, z: ArrayView1<f64>| x.dot(&z).exp();
        for t in 0..t_len {
            let first = (t + 1).saturating_sub(window);
            // predictions M_{t−1} φ*(k_i) of every window key, all from the old coefficients
            let preds: Vec<_> = (first..=t)
                .map(|i| {
                    (0..t)
                        .fold(ndarray::Array1::<f64>::zeros(d_v), |acc, j| acc + &a.row(j) * kernel(k.row(j), k.row(i)))
                })
                .collect();
            for (i, pred) in (first..=t).zip(preds) {
                let step = (&v.row(i) - &pred) * (2.0 * gamma[i]);
                let updated = &a.row(i) + &step;
                a.row_mut(i).assign(&updated);
            }
            for j in 0..=t {
                let w = kernel(k.row(j), q.row(t));
                let row = &y.row(t) + &(&a.row(j) * w);
                y.row_mut(t).assign(&row);
            }
        }
        (y, a)
    }
}

/// tch, batched over `[B, H]`.
pub mod torch {
    use tch::Tensor;

    /// `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, `gamma [B, H, T]`; returns `(y, a)`, both `[B, H, T, d_v]`.
    pub fn dot_kernelized(k: &Tensor, v: &Tensor, q: &Tensor, gamma: &Tensor, window: usize) -> (Tensor, Tensor) {
        let size = v.size();
        let (b, h, t_len, d_v) = (size[0], size[1], size[2], size[3]);
        let zeros = |n: i64| Tensor::zeros([b, h, n, d_v], (v.kind(), v.device()));
        let mut a = zeros(t_len);
        let mut ys = vec![];
        for t in 0..t_len {
            let first = (t + 1 - window as i64).max(0);
            let w = t + 1 - first;
            let (kw, vw) = (k.narrow(2, first, w), v.narrow(2, first, w));
            // Σ_j a_j exp(k_jᵀ k_i) for the window keys (slots after t are still zero)
            let preds = kw.matmul(&k.transpose(-1, -2)).exp().matmul(&a);
            let step = (vw - preds) * gamma.narrow(2, first, w).unsqueeze(-1) * 2.0;
            a = a + Tensor::cat(&[zeros(first), step, zeros(t_len - t - 1)], 2);
            // y_t = Σ_j a_j exp(k_jᵀ q_t)
            ys.push(q.narrow(2, t, 1).matmul(&k.transpose(-1, -2)).exp().matmul(&a));
        }
        let y = if ys.is_empty() { zeros(0) } else { Tensor::cat(&ys, 2) };
        (y, a)
    }
}

/// The degree-8 truncation of φ* against the exponential kernel for keys and queries of norm 0.5: every kernel
/// entry `exp(x)`, `|x| ≤ 0.25`, is approximated with remainder `≤ 0.25⁹/9! · e^{0.25} ≈ 1.4e-11` relative; the
/// recurrence over 13 tokens with steps `2γ ≤ 0.3` keeps the accumulated difference near that, so 1e-9 leaves
/// two orders of magnitude.
pub const TRUNCATED_KERNEL: f64 = 1e-9;

/// Eqs. 27–31: tch vs reference (outputs and slot coefficients), and the kernelized reference vs the Omega rule
/// on the degree-8 truncation of φ* (α = 0, no momentum, θ = 1), windows c = 1 (Eqs. 30–31) and 3.
pub fn check(env: &crate::check::CheckEnv) -> anyhow::Result<Vec<crate::check::Measurement>> {
    use super::features::PolyFeatures;
    use super::omega::{self, Bias, OmegaConfig, ReadMode};
    use crate::check::Measurement;
    use crate::tensor::{from_tch, round_to_kind, to_tch, Arr, Draw};
    use ndarray::{Array1, Array2, Ix1, Ix2};
    let tol = crate::tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &(c, t) in &[(1usize, 9usize), (3, 13), (3, 1)] {
            let (d_k, d_v) = (3, 2);
            let r = &mut Draw::new(seed * 7 + c as u64 * 100 + t as u64);
            let rnd = |a: Arr| round_to_kind(&a, env.kind);
            let k = rnd(r.unit_rows(&[1, 1, t, d_k]).mapv(|x| 0.5 * x));
            let q = rnd(r.unit_rows(&[1, 1, t, d_k]).mapv(|x| 0.5 * x));
            let v = rnd(r.normal(&[1, 1, t, d_v], 1.0));
            let gamma = rnd(r.uniform(&[1, 1, t], 0.02, 0.15));
            let head2 = |a: &Arr| a.index_axis(ndarray::Axis(0), 0).index_axis(ndarray::Axis(0), 0).to_owned();
            let (kh, qh, vh) = (
                head2(&k).into_dimensionality::<Ix2>()?,
                head2(&q).into_dimensionality::<Ix2>()?,
                head2(&v).into_dimensionality::<Ix2>()?,
            );
            let gh = head2(&gamma).into_dimensionality::<Ix1>()?;
            let (y_ref, a_ref) = reference::dot_kernelized(kh.view(), vh.view(), qh.view(), gh.view(), c);
            let tt = |a: &Arr| to_tch(a, env.kind, env.device);
            let (y, a) = torch::dot_kernelized(&tt(&k), &tt(&v), &tt(&q), &tt(&gamma), c);
            let tag = format!("c = {c}, T = {t}, seed {seed}");
            let as4 = |x: &Array2<f64>| x.clone().into_shape_with_order((1, 1, t, d_v)).map(|x| x.into_dyn());
            out.push(Measurement::compare(format!("y, tch vs reference ({tag})"), &from_tch(&y)?, &as4(&y_ref)?, tol)?);
            out.push(Measurement::compare(
                format!("slot coefficients a, tch vs reference ({tag})"),
                &from_tch(&a)?,
                &as4(&a_ref)?,
                tol,
            )?);
            // the Omega rule on φ*'s degree-8 truncation: α = 0, η = 0 (no momentum), θ = 1, M_0 = 0
            let cfg =
                OmegaConfig { window: c, features: PolyFeatures { degree: 8 }, mlp: None, muon: None, bias: Bias::L2 };
            let width = cfg.features.width(d_k);
            let inputs = omega::reference::Inputs {
                k: kh.clone(),
                v: vh.clone(),
                q: qh.clone(),
                alpha: Array1::zeros(t),
                eta: Array1::zeros(t),
                theta: Array1::ones(t),
                gamma: gh.clone(),
                lambda: None,
                m0: vec![Array2::zeros((d_v, width))],
                s0: vec![Array2::zeros((d_v, width))],
                halo_k: Array2::zeros((c - 1, d_k)),
                halo_v: Array2::zeros((c - 1, d_v)),
                halo_gamma: Array1::zeros(c - 1),
            };
            let omega_y = omega::reference::forward(&cfg, &inputs, 1, ReadMode::AfterWrite).y;
            out.push(Measurement::compare(
                format!("y, kernelized Dot vs Omega rule on φ* truncated at degree 8 (f64, {tag})"),
                &y_ref.into_dyn(),
                &omega_y.into_dyn(),
                TRUNCATED_KERNEL,
            )?);
        }
    }
    Ok(out)
}
