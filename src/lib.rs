//! # repro
//!
//! An equation-by-equation reproduction harness for Google Research's test-time-memorization papers:
//! Titans, MIRAS, ATLAS, TNT and Nested Learning. Every equation exists twice — an f64 ndarray reference
//! (token by token, hand-derived gradients) and a tch implementation (batched, autograd, CPU or CUDA) — and
//! `papers/<key>.yaml` records which check verifies it. Conventions are fixed once in [`memory`].

pub mod atlas;
pub mod bench;
pub mod bench_peers;
pub mod check;
pub mod cli;
pub mod device;
pub mod eval;
pub mod experiment;
pub mod fsutil;
pub mod memories;
pub mod memory;
pub mod miras;
pub mod models;
pub mod newton_schulz;
pub mod nl;
pub mod optim;
pub mod registry;
pub mod report;
pub mod tensor;
pub mod titans;
pub mod tnt;
pub mod tolerance;
pub mod verify;

// ndarray's BLAS-backed products need OpenBLAS linked; ndarray-linalg (openblas-system) brings it.
extern crate ndarray_linalg;
