//! Newton–Schulz orthogonalization, the building block that ATLAS (arXiv 2505.23735 v1, Eqs. 32–33, 40–41) and
//! Nested Learning (arXiv 2512.24695 v1, Eqs. 42–44, M3's Algorithm 1) both take from Muon (Jordan et al. 2024).
//! It lives once, here, and names no paper's symbols.
//!
//! Neither paper prints coefficients; they defer to Muon's public iteration. With
//! $X_0 = S / (\lVert S\rVert_F + \epsilon)$, worked on in its wide orientation (transposed when rows > cols):
//!
//! $$A_n = X_n X_n^\top,\qquad X_{n+1} = a X_n + (b A_n + c A_n^2) X_n$$
//!
//! * [`Kind::QuinticMuon`]: $(a, b, c) = (3.4445, -4.7750, 2.0315)$, Muon's choice. Its scalar map has
//!   $p(1) \approx 0.70$, so singular values do **not** converge to 1: after 5 steps every normalized singular
//!   value in $[2\cdot10^{-3}, 1]$ lands in about $[0.68, 1.21]$ (see the ATLAS catalog, §5).
//! * [`Kind::Cubic`]: $(a, b, c) = (1.5, -0.5, 0)$, the classical iteration $X \leftarrow 1.5X - 0.5XX^\top X$,
//!   which converges to the nearest semi-orthogonal matrix (slowly from small singular values).
//!
//! `reference` is f64 ndarray with a hand-derived backward; `torch` is batched over leading dimensions and
//! differentiable by autograd. The default is [`Kind::QuinticMuon`] with [`DEFAULT_STEPS`] = 5 ("NS-5").

use serde::{Deserialize, Serialize};

/// The guard added to the Frobenius norm before dividing (Muon's 1e-7).
pub const NORM_EPS: f64 = 1e-7;
/// "NS-5": the step count both papers print.
pub const DEFAULT_STEPS: usize = 5;

/// Which polynomial the iteration applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Muon's quintic, (3.4445, −4.7750, 2.0315): fast, singular values end in a band around 1.
    #[default]
    QuinticMuon,
    /// The classical cubic, (1.5, −0.5, 0): converges to the polar factor.
    Cubic,
}

impl Kind {
    /// `(a, b, c)` of `X ← a X + (b A + c A²) X`.
    pub fn coefficients(self) -> (f64, f64, f64) {
        match self {
            Kind::QuinticMuon => (3.4445, -4.7750, 2.0315),
            Kind::Cubic => (1.5, -0.5, 0.0),
        }
    }
}

/// f64, one matrix at a time, with the backward written out.
pub mod reference {
    use super::{Kind, NORM_EPS};
    use ndarray::Array2;

    /// Every iterate `X_0 … X_k` in the wide orientation, and whether the input was transposed.
    fn iterates(s: &Array2<f64>, kind: Kind, steps: usize) -> (Vec<Array2<f64>>, bool) {
        let transposed = s.nrows() > s.ncols();
        let s = if transposed { s.t().to_owned() } else { s.clone() };
        let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt();
        let (a, b, c) = kind.coefficients();
        let mut xs = vec![&s / (norm + NORM_EPS)];
        for _ in 0..steps {
            let x = xs.last().unwrap();
            // A_n = X_n X_nᵀ;  X_{n+1} = a X_n + (b A_n + c A_n²) X_n
            let gram = x.dot(&x.t());
            let poly = &gram * b + gram.dot(&gram) * c;
            xs.push(x * a + poly.dot(x));
        }
        (xs, transposed)
    }

    /// `NS_k(S)`.
    pub fn orthogonalize(s: &Array2<f64>, kind: Kind, steps: usize) -> Array2<f64> {
        let (xs, transposed) = iterates(s, kind, steps);
        let out = xs.into_iter().last().unwrap();
        if transposed {
            out.t().to_owned()
        } else {
            out
        }
    }

    /// `∂⟨G, NS_k(S)⟩ / ∂S`: each step's map `X ↦ aX + bXXᵀX + cXXᵀXXᵀX` reversed product by product, then the
    /// normalization `X_0 = S / (‖S‖ + ε)`.
    pub fn orthogonalize_backward(s: &Array2<f64>, upstream: &Array2<f64>, kind: Kind, steps: usize) -> Array2<f64> {
        let (xs, transposed) = iterates(s, kind, steps);
        let (a, b, c) = kind.coefficients();
        let mut g = if transposed { upstream.t().to_owned() } else { upstream.clone() };
        for x in xs[..steps].iter().rev() {
            let xt = x.t();
            let xtx = xt.dot(x);
            let xxt = x.dot(&xt);
            // ⟨G, X Xᵀ X⟩:      G XᵀX + X Gᵀ X + X Xᵀ G
            let cubic = g.dot(&xtx) + x.dot(&g.t()).dot(x) + xxt.dot(&g);
            // ⟨G, X Xᵀ X Xᵀ X⟩: one term per factor, ⟨G, L dX R⟩ → Lᵀ G Rᵀ and ⟨G, L dXᵀ R⟩ → R Gᵀ L
            let xxtx = xxt.dot(x);
            let quintic = g.dot(&xtx.dot(&xtx))
                + xxtx.dot(&g.t()).dot(x)
                + xxt.dot(&g).dot(&xtx)
                + x.dot(&g.t()).dot(&xxtx)
                + xxt.dot(&xxt).dot(&g);
            g = &g * a + cubic * b + quintic * c;
        }
        let s_wide = if transposed { s.t().to_owned() } else { s.clone() };
        let norm = s_wide.iter().map(|x| x * x).sum::<f64>().sqrt();
        let denom = norm + NORM_EPS;
        // X_0 = S / (‖S‖ + ε):  ∂/∂S = G/(‖S‖+ε) − ⟨G, S⟩ S / (‖S‖ (‖S‖+ε)²)
        let inner: f64 = (&g * &s_wide).sum();
        let grad = &g / denom - &s_wide * (inner / (norm * denom * denom));
        if transposed {
            grad.t().to_owned()
        } else {
            grad
        }
    }
}

/// tch, batched over every leading dimension (`[…, rows, cols]`), differentiable by autograd.
pub mod torch {
    use super::{Kind, NORM_EPS};
    use tch::Tensor;

    /// `NS_k(S)` for each matrix of the last two dimensions.
    pub fn orthogonalize(s: &Tensor, kind: Kind, steps: usize) -> Tensor {
        let size = s.size();
        assert!(size.len() >= 2, "Newton–Schulz needs a matrix, got shape {size:?}");
        let transposed = size[size.len() - 2] > size[size.len() - 1];
        let wide = if transposed { s.transpose(-2, -1) } else { s.shallow_clone() };
        let norm = wide.square().sum_dim_intlist(&[-2i64, -1][..], true, None).sqrt();
        let (a, b, c) = kind.coefficients();
        let mut x = &wide / (norm + NORM_EPS);
        for _ in 0..steps {
            let gram = x.matmul(&x.transpose(-2, -1));
            let poly = &gram * b + gram.matmul(&gram) * c;
            x = &x * a + poly.matmul(&x);
        }
        if transposed {
            x.transpose(-2, -1)
        } else {
            x
        }
    }
}
