//! ATLAS (arXiv 2505.23735 v1) §3.1, Eq. 5 (and Eqs. 22–23): the polynomial feature map applied to keys and
//! queries before they reach the memory.
//!
//! Eq. 5 asks for a kernel `φ(q)ᵀφ(k) = Σ_{j=0}^{p} a_j (qᵀk)^j` with `a_j = 1/j!` at initialisation (the
//! degree-`p` Taylor truncation of `exp(qᵀk)`). The paper does not say how `a_j` enters the features (catalog ⚠
//! at Eq. 5); the consistent form, used here, scales the Kronecker blocks by `√a_j`:
//!
//! $$\phi_p(x) = \big[\sqrt{a_0},\ \sqrt{a_1}\,x,\ \sqrt{a_2}\,x^{\otimes 2},\ \dots,\ \sqrt{a_p}\,x^{\otimes p}\big],
//! \qquad x^{\otimes j} = x \otimes x^{\otimes (j-1)},\qquad a_j = 1/j!$$
//!
//! so that `φ_p(q)ᵀφ_p(k) = Σ_j a_j (qᵀk)^j` exactly (Eq. 23 truncated at degree `p`), and the feature width is
//! `D = Σ_{j=0}^{p} d^j` (Kronecker blocks repeat the cross terms; the monomial basis of §3.1 would have
//! `C(d+p, p)` coordinates and the same rank). Project choices, recorded in `papers/atlas.yaml`:
//! * `a_j` are fixed at their initial values `1/j!` (the memory-rule interface has no per-head parameters
//!   outside the gates and states; learnable coefficients are a todo);
//! * degree `p = 1` means **no polynomial mapping**, `φ(x) = x` (the paper's `a_1 = 1, a_{j≠1} = 0`; the
//!   ablation "w/o polynomial mapping"), not `[1, x]`.
//!
//! [`reference`] builds the blocks one coordinate at a time (f64); [`torch`] by broadcast outer products.

/// The feature map of Eq. 5 with fixed coefficients `a_j = 1/j!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolyFeatures {
    /// `p ≥ 1`; 1 = identity map.
    pub degree: usize,
}

impl PolyFeatures {
    /// Whether this is the identity map (`p = 1`).
    pub fn identity(&self) -> bool {
        self.degree <= 1
    }
    /// `a_j = 1/j!` (Eq. 5's initialisation).
    pub fn coefficient(j: usize) -> f64 {
        (1..=j).fold(1.0, |acc, i| acc / i as f64)
    }
    /// The feature width `D(d, p) = Σ_{j=0}^{p} d^j` (`d` for the identity map).
    pub fn width(&self, d: usize) -> usize {
        if self.identity() {
            d
        } else {
            (0..=self.degree).map(|j| d.pow(j as u32)).sum()
        }
    }
    /// `‖φ(x)‖²` of a unit-norm `x`: `Σ_j a_j` (1 for the identity map); sets the contractive step size.
    pub fn unit_norm_sq(&self) -> f64 {
        if self.identity() {
            1.0
        } else {
            (0..=self.degree).map(Self::coefficient).sum()
        }
    }
}

/// f64, one vector at a time.
pub mod reference {
    use super::PolyFeatures;
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    /// `φ_p(x)`: the blocks `√a_j x^{⊗j}`, with `(x^{⊗j})_{i·d + l} = (x^{⊗(j−1)})_i x_l`.
    pub fn phi(f: &PolyFeatures, x: ArrayView1<f64>) -> Array1<f64> {
        if f.identity() {
            return x.to_owned();
        }
        let d = x.len();
        let mut out = Vec::with_capacity(f.width(d));
        let mut block = vec![1.0];
        for j in 0..=f.degree {
            if j > 0 {
                let mut next = Vec::with_capacity(block.len() * d);
                for &b in &block {
                    for l in 0..d {
                        next.push(b * x[l]);
                    }
                }
                block = next;
            }
            let scale = PolyFeatures::coefficient(j).sqrt();
            out.extend(block.iter().map(|b| scale * b));
        }
        Array1::from(out)
    }

    /// `φ_p` of every row.
    pub fn phi_rows(f: &PolyFeatures, x: ArrayView2<f64>) -> Array2<f64> {
        let d_out = f.width(x.ncols());
        let mut out = Array2::zeros((x.nrows(), d_out));
        for (t, row) in x.rows().into_iter().enumerate() {
            out.row_mut(t).assign(&phi(f, row));
        }
        out
    }

    /// Eq. 5's kernel written directly: `Σ_{j=0}^{p} a_j (qᵀk)^j` (`qᵀk` for the identity map).
    pub fn kernel(f: &PolyFeatures, q: ArrayView1<f64>, k: ArrayView1<f64>) -> f64 {
        let s = q.dot(&k);
        if f.identity() {
            return s;
        }
        (0..=f.degree).map(|j| PolyFeatures::coefficient(j) * s.powi(j as i32)).sum()
    }
}

/// tch, batched over every leading dimension.
pub mod torch {
    use super::PolyFeatures;
    use tch::Tensor;

    /// `φ_p(x)` for `x [..., d]` → `[..., D]`, blocks by broadcast outer products (differentiable).
    pub fn phi(f: &PolyFeatures, x: &Tensor) -> Tensor {
        if f.identity() {
            return x.shallow_clone();
        }
        let mut blocks = vec![];
        let mut block = x.ones_like().narrow(-1, 0, 1);
        for j in 0..=f.degree {
            if j > 0 {
                // x^{⊗j} = x^{⊗(j−1)} ⊗ x, flattened row-major
                block = (block.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2, -1);
            }
            blocks.push(&block * PolyFeatures::coefficient(j).sqrt());
        }
        Tensor::cat(&blocks, -1)
    }
}
