//! Titans (arXiv 2501.00663 v1) §3.3, Eq. 19: persistent memory tokens prepended to the sequence,
//! $$x_{\text{new}} = [p_1\; p_2\; \dots\; p_{N_p}] \,\|\, x .$$
//!
//! The `N_p` tokens are learned, input-independent and shared by every sequence of the batch. v1 does not give
//! `N_p` (a config field of the models). Eqs. 22, 26 and 29 (MAC/MAG/MAL inputs) reuse this function; since Eqs.
//! 28/30 feed `x̃` to the memory, the memory also writes the persistent tokens (as printed).

/// The f64 reference: rows are tokens.
pub mod reference {
    use ndarray::{Array2, ArrayView2};

    /// `p` is `N_p × d`, `x` is `T × d`; returns `(N_p + T) × d`, row by row.
    pub fn prepend(p: ArrayView2<f64>, x: ArrayView2<f64>) -> Array2<f64> {
        let (n_p, d) = p.dim();
        let t_len = x.nrows();
        assert_eq!(x.ncols(), d, "persistent tokens and inputs need the same width");
        Array2::from_shape_fn((n_p + t_len, d), |(r, c)| if r < n_p { p[[r, c]] } else { x[[r - n_p, c]] })
    }
}

/// The tch implementation: the persistent tokens broadcast over the batch and concatenated on the token axis.
pub mod torch {
    use tch::Tensor;

    /// `p [N_p, d]`, `x [B, T, d]` (or `[B, H, T, d]` with `p [H, N_p, d]`) → `[B, N_p + T, d]` (`[B, H, N_p + T, d]`).
    pub fn prepend(p: &Tensor, x: &Tensor) -> Tensor {
        let mut shape = x.size();
        let rank = shape.len();
        shape[rank - 2] = p.size()[p.dim() - 2];
        Tensor::cat(&[&p.expand(shape.as_slice(), false), x], (rank - 2) as i64)
    }
}
