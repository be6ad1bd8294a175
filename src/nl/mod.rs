//! Nested Learning: The Illusion of Deep Learning Architectures (Behrouz, Razaviyayn, Zhong, Mirrokni;
//! arXiv 2512.24695 v1; equation numbers as v1 prints them, catalog `../shared/papers/nl.md`).

use crate::check::Check;

/// Every Nested Learning check.
pub fn checks() -> Vec<Check> {
    vec![]
}
