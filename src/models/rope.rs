//! Rotary position embeddings (RoFormer, Su et al., arXiv 2104.09864, §3.4.2, Eq. 34), the position
//! information of every attention in the models (`model.attention.positions: rope`). Titans does not specify
//! positions for its attention branches; without any, MAC and MAL cannot tell which window position a memory
//! read belongs to (see `crate::models`).
//!
//! A query or key `x ∈ R^d` at position `p` is rotated pair by pair (interleaved pairs `(x_{2i}, x_{2i+1})`,
//! `i < ⌊d/2⌋`; an odd last coordinate is left as it is):
//! $$\begin{pmatrix}x'_{2i}\\x'_{2i+1}\end{pmatrix} = \begin{pmatrix}\cos p\theta_i & -\sin p\theta_i\\
//!   \sin p\theta_i & \cos p\theta_i\end{pmatrix}\begin{pmatrix}x_{2i}\\x_{2i+1}\end{pmatrix},\qquad
//!   \theta_i = b^{-2i/d}$$
//! so that `⟨R_m q, R_n k⟩ = ⟨q, R_{n−m} k⟩` depends on the positions only through `n − m`. Position 0 is the
//! identity: keys that carry no position (persistent tokens, always-visible prefixes) are passed at position 0.
//!
//! [`reference`]: explicit loops, one vector at a time. [`torch`]: batched `[…, T, d]` with positions `[T]`.

/// The f64 reference.
pub mod reference {
    use ndarray::{Array2, ArrayView2};

    /// Rotates every row `x_t` (`T × d`) by its position `positions[t]`.
    pub fn rotate(x: ArrayView2<f64>, positions: &[f64], base: f64) -> Array2<f64> {
        let d = x.ncols();
        let mut out = x.to_owned();
        for (t, &p) in positions.iter().enumerate() {
            for i in 0..d / 2 {
                let theta = base.powf(-2.0 * i as f64 / d as f64);
                let (c, s) = ((p * theta).cos(), (p * theta).sin());
                let (a, b) = (x[[t, 2 * i]], x[[t, 2 * i + 1]]);
                out[[t, 2 * i]] = a * c - b * s;
                out[[t, 2 * i + 1]] = a * s + b * c;
            }
        }
        out
    }
}

/// The tch implementation.
pub mod torch {
    use tch::{Kind, Tensor};

    /// Rotates `x [.., T, d]` by `positions [T]` (any float kind; broadcast over the leading dimensions).
    pub fn rotate(x: &Tensor, positions: &Tensor, base: f64) -> Tensor {
        let d = x.size()[x.dim() - 1];
        let m = d / 2;
        if m == 0 {
            return x.shallow_clone();
        }
        let kind = x.kind();
        // θ_i = b^{−2i/d}, angles [T, m]
        let i = Tensor::arange(m, (Kind::Double, x.device()));
        let inv_freq = (i * (-2.0 / d as f64) * base.ln()).exp();
        let angles = positions.to_kind(Kind::Double).unsqueeze(-1) * inv_freq.unsqueeze(0);
        let (cos, sin) = (angles.cos().to_kind(kind), angles.sin().to_kind(kind));
        let mut shape = x.size();
        let last = shape.len() - 1;
        shape[last] = m;
        shape.push(2);
        let pairs = x.narrow(-1, 0, 2 * m).reshape(shape.as_slice());
        let (a, b) = (pairs.select(-1, 0), pairs.select(-1, 1));
        let rotated = Tensor::stack(&[&a * &cos - &b * &sin, &a * &sin + &b * &cos], -1).flatten(-2, -1);
        if 2 * m == d {
            rotated
        } else {
            Tensor::cat(&[rotated, x.narrow(-1, 2 * m, d - 2 * m)], -1)
        }
    }
}
