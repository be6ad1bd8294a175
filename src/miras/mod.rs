//! MIRAS — It's All Connected: A Journey Through Test-Time Memorization, Attentional Bias, Retention, and
//! Online Optimization (Behrouz, Razaviyayn, Zhong, Mirrokni; arXiv 2504.13173 v1).

use crate::check::Check;

/// Every MIRAS check, by the name `papers/miras.yaml` uses.
pub fn checks() -> Vec<Check> {
    vec![]
}

/// MIRAS rules for `repro eval`.
pub fn eval_rules() -> Vec<crate::eval::Rule> {
    vec![]
}
