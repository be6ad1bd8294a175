//! ATLAS (arXiv 2505.23735 v1) §4, Eqs. 38–39: inside a chunk the momentum is a decayed prefix sum of
//! gradients that can all be computed up front (they are taken at the chunk-start state), so every momentum of
//! the chunk is one matrix product instead of a scan. Project letters (η momentum decay, θ step; the paper's
//! text swaps the names Θ and E, catalog ⚠):
//!
//! $$S_t = \Big(\prod_{j=s+1}^{t}\eta_j\Big)S_s - \sum_{i=s+1}^{t}\Big(\prod_{j=i+1}^{t}\eta_j\Big)\theta_i\,u_i
//!   \qquad\text{(Eq. 38)},\qquad S = \beta\,S_s - (H\,\mathrm{diag}(\theta))\,U \qquad\text{(Eq. 39)}$$
//!
//! with `β_t = Π_{j≤t} η_j` and the lower-triangular decay mask `H_{ti} = Π_{j=i+1}^{t} η_j`, `U` the stacked
//! gradients. [`reference`] is the token scan `S_t = η_t S_{t−1} − θ_t u_t` in f64; [`torch`] the matrix form,
//! built from the chunk coefficients the chunkwise memories share (`titans::chunkwise::torch::coefficients`).

/// f64: the scan, token by token.
pub mod reference {
    use ndarray::{Array1, Array2, Array3};

    /// `s0` is `d_v × d_k`, `u` is `C × d_v × d_k`, `eta`, `theta` have `C` entries; returns the `C` momenta.
    pub fn momentum_scan(s0: &Array2<f64>, u: &Array3<f64>, eta: &Array1<f64>, theta: &Array1<f64>) -> Array3<f64> {
        let mut out = Array3::zeros(u.raw_dim());
        let mut s = s0.clone();
        for t in 0..u.shape()[0] {
            // S_t = η_t S_{t−1} − θ_t u_t
            s = &s * eta[t] - &u.index_axis(ndarray::Axis(0), t) * theta[t];
            out.index_axis_mut(ndarray::Axis(0), t).assign(&s);
        }
        out
    }
}

/// tch: every momentum of the chunk at once, `[.., C, d_v, d_k]`.
pub mod torch {
    use crate::titans::chunkwise::torch::coefficients;
    use tch::Tensor;

    /// `s0 [.., d_v, d_k]`, `u [.., C, d_v, d_k]`, gates `[.., C]`.
    pub fn momentum_unrolled(s0: &Tensor, u: &Tensor, eta: &Tensor, theta: &Tensor) -> Tensor {
        let c = u.size()[u.dim() - 3];
        // no forgetting enters the momentum: α = 0 leaves P_r = Π η and θ_i H_{ri} (rows r = 1 … C)
        let co = coefficients(&eta.zeros_like(), eta, theta);
        let beta = co.p.narrow(-1, 1, c).unsqueeze(-1).unsqueeze(-1);
        let weights = co.s_gamma.narrow(-2, 1, c);
        let (rows, cols) = (u.size()[u.dim() - 2], u.size()[u.dim() - 1]);
        let mut flat = u.size();
        flat.truncate(u.dim() - 2);
        flat.push(rows * cols);
        let mixed = weights.matmul(&u.reshape(flat.as_slice())).reshape(u.size().as_slice());
        // S = β S_s − (H diag θ) U
        beta * s0.unsqueeze(-3) - mixed
    }
}

/// Eqs. 38–39: the matrix form (tch) equals the token scan (f64) for every momentum of chunks of C = 1, 7, 16
/// tokens, with a nonzero carried `S_s`, η ∈ [0.5, 1), θ ∈ [0.01, 0.5).
pub fn check(env: &crate::check::CheckEnv) -> anyhow::Result<Vec<crate::check::Measurement>> {
    use crate::tensor::{from_tch, round_to_kind, to_tch, Draw};
    use ndarray::{Ix1, Ix2, Ix3};
    let tol = crate::tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &c in &[1usize, 7, 16] {
            let mut draw = Draw::new(seed * 17 + c as u64);
            let s0 = round_to_kind(&draw.normal(&[3, 5], 1.0), env.kind);
            let u = round_to_kind(&draw.normal(&[c, 3, 5], 1.0), env.kind);
            let eta = round_to_kind(&draw.uniform(&[c], 0.5, 1.0), env.kind);
            let theta = round_to_kind(&draw.uniform(&[c], 0.01, 0.5), env.kind);
            let want = reference::momentum_scan(
                &s0.clone().into_dimensionality::<Ix2>()?,
                &u.clone().into_dimensionality::<Ix3>()?,
                &eta.clone().into_dimensionality::<Ix1>()?,
                &theta.clone().into_dimensionality::<Ix1>()?,
            );
            let t = |a: &crate::tensor::Arr| to_tch(a, env.kind, env.device);
            let got = torch::momentum_unrolled(&t(&s0), &t(&u), &t(&eta), &t(&theta));
            out.push(crate::check::Measurement::compare(
                format!("S_1 … S_C, matrix form (tch) vs scan (f64), C = {c}, seed {seed}"),
                &from_tch(&got)?,
                &want.into_dyn(),
                tol,
            )?);
        }
    }
    Ok(out)
}
