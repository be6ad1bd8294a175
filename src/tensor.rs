//! Shared plumbing between the two implementations of every equation: conversions between the ndarray
//! reference (ndarray 0.17, f64) and tch tensors (which bring their own ndarray 0.16, so conversion goes
//! through slices), seeded random inputs, and the error metrics every check reports.
//!
//! Metrics, as `repro verify` prints them:
//! * `max_abs  = max_i |a_i − b_i|`
//! * `rel_rmse = ‖a − b‖₂ / ‖b‖₂` (the reference `b` in the denominator; when `‖b‖₂ = 0` the metric falls back
//!   to `max_abs`, so an all-zero reference is compared in absolute terms).

use anyhow::{bail, Context, Result};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

/// An f64 ndarray of any rank: the reference side's currency.
pub type Arr = ArrayD<f64>;

/// Converts a reference array to a tch tensor of the given kind on the given device.
pub fn to_tch(a: &Arr, kind: Kind, device: Device) -> Tensor {
    let a = a.as_standard_layout();
    let shape: Vec<i64> = a.shape().iter().map(|&s| s as i64).collect();
    let flat = a.as_slice().expect("standard layout is contiguous");
    Tensor::from_slice(flat).reshape(shape.as_slice()).to_kind(kind).to_device(device)
}

/// Converts a tch tensor (any float kind, any device) to an f64 reference array.
pub fn from_tch(t: &Tensor) -> Result<Arr> {
    let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
    let n: usize = shape.iter().product();
    let mut data = vec![0.0f64; n];
    t.f_copy_data(&mut data, n).context("copying tensor data to the host")?;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), data)?)
}

/// Rounds an f64 array to the values representable in `kind`, so that both implementations of a check see
/// exactly the same inputs and the only difference left is arithmetic precision.
pub fn round_to_kind(a: &Arr, kind: Kind) -> Arr {
    match kind {
        Kind::Float => a.mapv(|x| x as f32 as f64),
        Kind::Half | Kind::BFloat16 => from_tch(&to_tch(a, kind, Device::Cpu)).expect("host tensor"),
        _ => a.clone(),
    }
}

/// libtorch's random generator is global to the process: two threads that seed it and draw (as `cargo test`
/// runs checks, trainings and tests side by side) interleave their draws and get different numbers on every run.
/// Everything that seeds libtorch and draws from it (model initialisation, the capacity task's pairs) does it
/// inside this lock, so what it draws depends on the seed alone.
pub fn with_torch_seed<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed as i64);
    f()
}

/// The seeded random source every check draws from (ChaCha8: the same seed gives the same inputs everywhere).
pub struct Draw {
    rng: ChaCha8Rng,
}

impl Draw {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }
    /// Standard normal entries scaled by `scale`.
    pub fn normal(&mut self, shape: &[usize], scale: f64) -> Arr {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            let z: f64 = StandardNormal.sample(&mut self.rng);
            scale * z
        })
    }
    /// Uniform entries on `[lo, hi)`.
    pub fn uniform(&mut self, shape: &[usize], lo: f64, hi: f64) -> Arr {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.rng.random_range(lo..hi))
    }
    /// Rows of unit ℓ2 norm along the last axis (normalised Gaussian rows).
    pub fn unit_rows(&mut self, shape: &[usize]) -> Arr {
        let mut a = self.normal(shape, 1.0);
        let last = *shape.last().expect("unit_rows needs rank >= 1");
        let data = a.as_slice_mut().unwrap();
        for row in data.chunks_mut(last) {
            let n = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= n);
        }
        a
    }
    pub fn usize_in(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..=hi)
    }
}

/// Errors of `ours` against the reference `reference` (shapes must agree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Errors {
    pub max_abs: f64,
    pub rel_rmse: f64,
}

pub fn errors(ours: &Arr, reference: &Arr) -> Result<Errors> {
    if ours.shape() != reference.shape() {
        bail!("shape mismatch: {:?} against reference {:?}", ours.shape(), reference.shape());
    }
    let mut max_abs = 0.0f64;
    let mut diff2 = 0.0f64;
    let mut ref2 = 0.0f64;
    for (a, b) in ours.iter().zip(reference.iter()) {
        let d = a - b;
        if !d.is_finite() {
            return Ok(Errors { max_abs: f64::INFINITY, rel_rmse: f64::INFINITY });
        }
        max_abs = max_abs.max(d.abs());
        diff2 += d * d;
        ref2 += b * b;
    }
    let rel_rmse = if ref2 > 0.0 { (diff2 / ref2).sqrt() } else { max_abs };
    Ok(Errors { max_abs, rel_rmse })
}

/// Frobenius inner product ⟨A, B⟩ = Σ A⊙B.
pub fn inner(a: &Arr, b: &Arr) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

/// Parses a dtype name as the CLI spells it.
pub fn parse_kind(s: &str) -> Result<Kind> {
    match s {
        "f32" | "float32" => Ok(Kind::Float),
        "f64" | "float64" => Ok(Kind::Double),
        other => bail!("unknown dtype `{other}` (expected f32 or f64)"),
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "f32",
        Kind::Double => "f64",
        Kind::Half => "f16",
        Kind::BFloat16 => "bf16",
        _ => "other",
    }
}

/// The `(b, h)` slice of a `[B, H, ...]` array as a rank-2 array (`[B, H, T, d]` → `T × d`).
pub fn head2(a: &Arr, b: usize, h: usize) -> ndarray::Array2<f64> {
    use ndarray::{s, Ix2};
    a.slice(s![b, h, .., ..]).to_owned().into_dimensionality::<Ix2>().expect("rank-4 input")
}

/// The `(b, h)` slice of a `[B, H, T]` array as a rank-1 array.
pub fn head1(a: &Arr, b: usize, h: usize) -> ndarray::Array1<f64> {
    use ndarray::{s, Ix1};
    a.slice(s![b, h, ..]).to_owned().into_dimensionality::<Ix1>().expect("rank-3 input")
}

/// Stacks per-head arrays, given in `(b, h)` row-major order, into one `[B, H, ...]` array.
pub fn stack_heads<D: ndarray::Dimension>(heads: &[ndarray::Array<f64, D>], b: usize, h: usize) -> Arr {
    assert_eq!(heads.len(), b * h, "stack_heads: {} heads for B={b}, H={h}", heads.len());
    let inner: Vec<usize> = heads[0].shape().to_vec();
    let mut shape = vec![b, h];
    shape.extend(&inner);
    let mut data = Vec::with_capacity(shape.iter().product());
    for a in heads {
        data.extend(a.as_standard_layout().iter().copied());
    }
    ArrayD::from_shape_vec(IxDyn(&shape), data).expect("consistent head shapes")
}
