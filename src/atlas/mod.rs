//! ATLAS: Learning to Optimally Memorize the Context at Test Time (Behrouz, Li, Kacham, Daliri, Deng, Zhong,
//! Razaviyayn, Mirrokni; arXiv 2505.23735 v1).
//!
//! Equation numbers are v1's (<https://arxiv.org/abs/2505.23735v1>); `papers/atlas.yaml` lists every numbered
//! equation in the project convention with its corrections (⚠), the code and the check. Topics:
//! [`features`] (Eq. 5's polynomial map), [`omega`] (the Omega rule, OmegaNet and Atlas, sequential and
//! chunkwise, linear and deep), [`deep_transformers`] (the linear-memory DeepTransformer of Eqs. 24–26 with a
//! truncated φ*), [`dot`] (Eqs. 27–31, Dot kernelized), [`gated_memory`] (Eq. 43, Atlas++'s gated memory), [`regression_views`] (Eqs. 17–18: attention as a weighted regression), [`unrolled_momentum`] (Eqs. 38–39), [`memory_rules`] (the catalogue's `omega` and `atlas` memories), [`checks`]
//! (equivalences, the Newton–Schulz properties, the polynomial kernel, capacity).
//! Newton–Schulz itself is the paper-neutral [`crate::newton_schulz`].

pub mod checks;
pub mod deep_transformers;
pub mod dot;
pub mod features;
pub mod gated_memory;
pub mod memory_rules;
pub mod omega;
pub mod regression_views;
pub mod unrolled_momentum;

pub use checks::checks;
