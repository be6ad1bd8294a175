//! The registry of checks in code. A check draws seeded random inputs, runs the ndarray reference and the tch
//! implementation on the requested device and dtype, and returns one [`Measurement`] per compared quantity
//! (outputs, final state, gradients), each with its tolerance. `papers/<key>.yaml` names the check that
//! verifies each equation; `crate::registry` makes sure the two lists agree.

use crate::tensor::{errors, Arr, Errors};
use anyhow::Result;
use tch::{Device, Kind};

/// Where and how a check runs. The reference side is always f64 on the host.
#[derive(Debug, Clone)]
pub struct CheckEnv {
    pub device: Device,
    pub kind: Kind,
    pub seeds: Vec<u64>,
}

impl CheckEnv {
    pub fn new(device: Device, kind: Kind, n_seeds: usize) -> Self {
        Self { device, kind, seeds: (0..n_seeds as u64).map(|s| 1000 + 17 * s).collect() }
    }
}

/// One compared quantity of one check.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// What was compared, e.g. `y (T=64, seed 1000)` or `dL/dk`.
    pub quantity: String,
    pub errors: Errors,
    /// Bound on `rel_rmse` (see `crate::tolerance` for the reasons behind each value).
    pub tolerance: f64,
}

impl Measurement {
    pub fn compare(quantity: impl Into<String>, ours: &Arr, reference: &Arr, tolerance: f64) -> Result<Self> {
        let quantity = quantity.into();
        let errors = errors(ours, reference).map_err(|e| anyhow::anyhow!("{quantity}: {e}"))?;
        Ok(Self { quantity, errors, tolerance })
    }
    pub fn pass(&self) -> bool {
        self.errors.rel_rmse <= self.tolerance
    }
}

/// A named check with the function that runs it.
#[derive(Clone, Copy)]
pub struct Check {
    pub name: &'static str,
    /// One line: the two sides compared and why they must agree.
    pub summary: &'static str,
    pub run: fn(&CheckEnv) -> Result<Vec<Measurement>>,
}

/// Every check the code has, across papers.
pub fn all_checks() -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(crate::titans::checks());
    v.extend(crate::miras::checks());
    v.extend(crate::atlas::checks());
    v.extend(crate::tnt::checks());
    v.extend(crate::models::checks::checks());
    v.extend(crate::memories::checks::checks());
    v.extend(crate::nl::checks());
    v
}

pub fn find_check(name: &str) -> Option<Check> {
    all_checks().into_iter().find(|c| c.name == name)
}

/// Central finite differences (inputs in standard layout; the gradient has the same layout) `(f(x + h e_i) − f(x − h e_i)) / 2h` of a scalar function of an array.
pub fn finite_difference<D: ndarray::Dimension>(
    x: &ndarray::Array<f64, D>,
    f: impl Fn(&ndarray::Array<f64, D>) -> f64,
) -> ndarray::Array<f64, D> {
    let h = crate::tolerance::FD_STEP;
    let mut g = ndarray::Array::zeros(x.raw_dim());
    let mut xp = x.clone();
    let n = x.len();
    for i in 0..n {
        let x0 = xp.as_slice_memory_order().unwrap()[i];
        xp.as_slice_memory_order_mut().unwrap()[i] = x0 + h;
        let fp = f(&xp);
        xp.as_slice_memory_order_mut().unwrap()[i] = x0 - h;
        let fm = f(&xp);
        xp.as_slice_memory_order_mut().unwrap()[i] = x0;
        g.as_slice_memory_order_mut().unwrap()[i] = (fp - fm) / (2.0 * h);
    }
    g
}
