//! ATLAS (arXiv 2505.23735 v1) §5, Eq. 43: the gated MLP memory of Atlas++,
//!
//! $$\mathcal M(x) = x + W_1\big(\sigma(W_2 x)\odot W_3 x\big)$$
//!
//! with `σ` = SiLU (the SwiGLU form; ⚠ the printed `⊗` is the element-wise product, catalog), `W_2, W_3` of
//! shape `h × d` and `W_1` of shape `d × h`. Its inner ℓ2 gradient (`ℓ = ‖M(k) − v‖²`, no hidden ½), by hand:
//! with `g = W_2 k`, `b = W_3 k`, `z = σ(g) ⊙ b`, `e = 2(M(k) − v)`:
//! $$\nabla_{W_1}\ell = e z^\top,\quad \delta_z = W_1^\top e,\quad \nabla_{W_2}\ell = (\delta_z\odot b\odot\sigma'(g))\,k^\top,
//!   \quad \nabla_{W_3}\ell = (\delta_z\odot\sigma(g))\,k^\top .$$
//! [`reference`] is that, in f64; [`torch`] the batched read and autograd. Check `atlas_gated_memory`. The Omega
//! and Atlas memories of the catalogue use Titans' MLP memory; this architecture is not yet selectable there.

/// f64, one token at a time.
pub mod reference {
    use ndarray::{Array1, Array2, ArrayView1};

    fn silu(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }
    fn silu_derivative(x: f64) -> f64 {
        let s = 1.0 / (1.0 + (-x).exp());
        s * (1.0 + x * (1.0 - s))
    }

    /// `[W_1, W_2, W_3]`.
    pub type Params = [Array2<f64>; 3];

    /// `M(x) = x + W_1(σ(W_2 x) ⊙ W_3 x)`.
    pub fn apply(p: &Params, x: ArrayView1<f64>) -> Array1<f64> {
        let z = p[1].dot(&x).mapv(silu) * p[2].dot(&x);
        &x + &p[0].dot(&z)
    }

    /// `‖M(k) − v‖²`.
    pub fn loss(p: &Params, k: ArrayView1<f64>, v: ArrayView1<f64>) -> f64 {
        (apply(p, k) - v).mapv(|e| e * e).sum()
    }

    /// `[∇_{W_1}ℓ, ∇_{W_2}ℓ, ∇_{W_3}ℓ]`, by hand.
    pub fn inner_grad(p: &Params, k: ArrayView1<f64>, v: ArrayView1<f64>) -> Params {
        let outer =
            |a: &Array1<f64>, b: ArrayView1<f64>| Array2::from_shape_fn((a.len(), b.len()), |(i, j)| a[i] * b[j]);
        let g = p[1].dot(&k);
        let b = p[2].dot(&k);
        let z = g.mapv(silu) * &b;
        let e = (&k + &p[0].dot(&z) - v) * 2.0;
        let dz = p[0].t().dot(&e);
        let dg = &dz * &b * g.mapv(silu_derivative);
        let db = &dz * g.mapv(silu);
        [outer(&e, z.view()), outer(&dg, k), outer(&db, k)]
    }
}

/// tch, rows are tokens: `x [.., N, d]`, weights `[.., rows, cols]`.
pub mod torch {
    use tch::Tensor;

    /// `M(x) = x + W_1(σ(W_2 x) ⊙ W_3 x)` on row vectors.
    pub fn apply(p: &[Tensor], x: &Tensor) -> Tensor {
        let z = x.matmul(&p[1].transpose(-1, -2)).silu() * x.matmul(&p[2].transpose(-1, -2));
        x + z.matmul(&p[0].transpose(-1, -2))
    }

    /// `Σ_n ‖M(k_n) − v_n‖²`'s gradients by autograd, one per weight.
    pub fn inner_grad(p: &[Tensor], k: &Tensor, v: &Tensor) -> Vec<Tensor> {
        crate::memory::autograd::autograd_grads(p, |w| (apply(w, k) - v).square().sum(k.kind()), false)
    }
}

/// Eq. 43: the read (tch vs reference), the inner gradient of one token (hand-written f64 vs tch autograd) and
/// the hand-written gradient vs central finite differences, for d = 5, h = 7 and several tokens.
pub fn check(env: &crate::check::CheckEnv) -> anyhow::Result<Vec<crate::check::Measurement>> {
    use crate::check::{finite_difference, Measurement};
    use crate::tensor::{from_tch, round_to_kind, to_tch, Draw};
    use ndarray::{Ix1, Ix2};
    let (d, h) = (5usize, 7usize);
    let mut out = vec![];
    for &seed in &env.seeds {
        let r = &mut Draw::new(seed ^ 0x6A7E);
        let mut w = |rows: usize, cols: usize| -> anyhow::Result<ndarray::Array2<f64>> {
            Ok(round_to_kind(&r.normal(&[rows, cols], 1.0 / (cols as f64).sqrt()), env.kind)
                .into_dimensionality::<Ix2>()?)
        };
        let p: reference::Params = [w(d, h)?, w(h, d)?, w(h, d)?];
        for n in 0..3 {
            let k = round_to_kind(&r.normal(&[d], 1.0), env.kind).into_dimensionality::<Ix1>()?;
            let v = round_to_kind(&r.normal(&[d], 1.0), env.kind).into_dimensionality::<Ix1>()?;
            let tag = format!("token {n}, seed {seed}");
            let tp: Vec<tch::Tensor> = p.iter().map(|a| to_tch(&a.clone().into_dyn(), env.kind, env.device)).collect();
            let tk = to_tch(&k.clone().into_dyn(), env.kind, env.device).unsqueeze(0);
            let tv = to_tch(&v.clone().into_dyn(), env.kind, env.device).unsqueeze(0);
            out.push(Measurement::compare(
                format!("M(k), tch vs reference ({tag})"),
                &from_tch(&torch::apply(&tp, &tk).squeeze_dim(0))?,
                &reference::apply(&p, k.view()).into_dyn(),
                crate::tolerance::torch_vs_reference(env.kind),
            )?);
            let hand = reference::inner_grad(&p, k.view(), v.view());
            let auto = torch::inner_grad(&tp, &tk, &tv);
            for (l, (hl, al)) in hand.iter().zip(&auto).enumerate() {
                let name = ["W_1", "W_2", "W_3"][l];
                out.push(Measurement::compare(
                    format!("∇_{name}ℓ, tch autograd vs hand-written f64 ({tag})"),
                    &from_tch(al)?,
                    &hl.clone().into_dyn(),
                    crate::tolerance::gradient_vs_reference(env.kind),
                )?);
                let fd = finite_difference(&p[l], |x| {
                    let mut q = p.clone();
                    q[l] = x.clone();
                    reference::loss(&q, k.view(), v.view())
                });
                out.push(Measurement::compare(
                    format!("∇_{name}ℓ, hand-written vs central differences ({tag})"),
                    &hl.clone().into_dyn(),
                    &fd.into_dyn(),
                    crate::tolerance::FINITE_DIFFERENCE_CHAIN,
                )?);
            }
        }
    }
    Ok(out)
}
