//! Small pure statistics for reports: mean, sample standard deviation, per-row summaries over seeds,
//! averaged curves, and the comparison of our ranking of rows with the paper's.

use super::data::RowSummary;
use std::collections::BTreeMap;

/// Arithmetic mean; `None` for an empty slice.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        None
    } else {
        Some(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// Sample standard deviation (divisor n − 1); `None` with fewer than two values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// A row's final metric over its finished runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RowStats {
    /// final metrics of the finished runs (those with a finite `final_metric`), in run order
    pub values: Vec<f64>,
    /// mean over `values` (None when no run finished)
    pub mean: Option<f64>,
    /// sample std over `values` (None with fewer than two finished runs)
    pub std: Option<f64>,
    /// number of runs in the row, finished or not
    pub total_runs: usize,
}

/// Summarises a row's final metric over its finished runs only.
pub fn row_stats(row: &RowSummary) -> RowStats {
    let values: Vec<f64> = row.runs.iter().filter_map(|r| r.final_metric).filter(|v| v.is_finite()).collect();
    RowStats { mean: mean(&values), std: sample_std(&values), total_runs: row.runs.len(), values }
}

/// Mean over the given `(x, y)` series at each x present in any of them (x sorted ascending);
/// non-finite y values are skipped.
pub fn mean_series<K: Ord + Copy>(series: &[Vec<(K, f64)>]) -> Vec<(K, f64)> {
    let mut acc: BTreeMap<K, Vec<f64>> = BTreeMap::new();
    for s in series {
        for &(k, v) in s {
            if v.is_finite() {
                acc.entry(k).or_default().push(v);
            }
        }
    }
    acc.into_iter().filter_map(|(k, vs)| mean(&vs).map(|m| (k, m))).collect()
}

/// Formats a number with four significant figures (scientific notation when very large or small).
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        format!("{x:.3e}")
    } else {
        let decimals = (3 - mag).max(0) as usize;
        format!("{x:.decimals$}")
    }
}

/// Result of comparing our ordering of rows with the paper's.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderingVerdict {
    /// fewer than two rows have both a paper number and a finished run of ours
    CannotJudge { comparable: usize },
    /// every pair of comparable rows is ordered the same way (ties included)
    Matches { comparable: usize },
    /// the pairs `(a, b)` ordered differently: `a` is better than `b` by our numbers but not by the
    /// paper's (or tied in one and not in the other); each unordered pair appears once
    Differs { comparable: usize, pairs: Vec<Discord> },
}

/// One pair of rows that we and the paper order differently.
#[derive(Debug, Clone, PartialEq)]
pub struct Discord {
    pub a: String,
    pub b: String,
    /// how we order them: Greater means `a` is better than `b`
    pub ours: std::cmp::Ordering,
    /// how the paper orders them: Greater means `a` is better than `b`
    pub paper: std::cmp::Ordering,
}

/// Orders `x` relative to `y` by "goodness": Greater when `x` is better.
pub fn better(x: f64, y: f64, higher_is_better: bool) -> std::cmp::Ordering {
    let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
    if higher_is_better {
        o
    } else {
        o.reverse()
    }
}

/// Compares the rankings of rows present in both maps (`row → value`), each with its own direction.
pub fn compare_orderings(
    ours: &BTreeMap<String, f64>,
    ours_higher_is_better: bool,
    paper: &BTreeMap<String, f64>,
    paper_higher_is_better: bool,
) -> OrderingVerdict {
    let common: Vec<(&String, f64, f64)> = ours.iter().filter_map(|(k, &o)| paper.get(k).map(|&p| (k, o, p))).collect();
    let comparable = common.len();
    if comparable < 2 {
        return OrderingVerdict::CannotJudge { comparable };
    }
    let mut pairs = Vec::new();
    for i in 0..common.len() {
        for j in i + 1..common.len() {
            let (a, oa, pa) = common[i];
            let (b, ob, pb) = common[j];
            let o = better(oa, ob, ours_higher_is_better);
            let p = better(pa, pb, paper_higher_is_better);
            if o != p {
                pairs.push(Discord { a: a.clone(), b: b.clone(), ours: o, paper: p });
            }
        }
    }
    if pairs.is_empty() {
        OrderingVerdict::Matches { comparable }
    } else {
        OrderingVerdict::Differs { comparable, pairs }
    }
}

/// Row names sorted best first (stable for ties).
pub fn ranking(values: &BTreeMap<String, f64>, higher_is_better: bool) -> Vec<String> {
    let mut v: Vec<(&String, f64)> = values.iter().map(|(k, &x)| (k, x)).collect();
    v.sort_by(|a, b| better(b.1, a.1, higher_is_better));
    v.into_iter().map(|(k, _)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    fn m(kv: &[(&str, f64)]) -> BTreeMap<String, f64> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn mean_and_std() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[2.0, 4.0]), Some(3.0));
        assert_eq!(sample_std(&[1.0]), None);
        assert!((sample_std(&[2.0, 4.0]).unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert!((sample_std(&[1.0, 2.0, 3.0, 4.0]).unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_num(0.85), "0.8500");
        assert_eq!(fmt_num(0.07071067811865482), "0.07071");
        assert_eq!(fmt_num(93.25), "93.25");
        assert_eq!(fmt_num(1234.4), "1234");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.5e-6), "1.500e-6");
    }

    #[test]
    fn mean_over_series() {
        let s = vec![vec![(1u64, 1.0), (2, 3.0)], vec![(1, 3.0), (3, 5.0), (2, f64::NAN)]];
        assert_eq!(mean_series(&s), vec![(1, 2.0), (2, 3.0), (3, 5.0)]);
    }

    #[test]
    fn orderings() {
        let ours = m(&[("a", 0.9), ("b", 0.8), ("c", 0.7)]);
        // the paper reports perplexity: lower is better; same order
        let paper = m(&[("a", 10.0), ("b", 12.0), ("c", 15.0)]);
        assert_eq!(compare_orderings(&ours, true, &paper, false), OrderingVerdict::Matches { comparable: 3 });
        // swap b and c in the paper
        let paper = m(&[("a", 10.0), ("b", 15.0), ("c", 12.0)]);
        match compare_orderings(&ours, true, &paper, false) {
            OrderingVerdict::Differs { comparable, pairs } => {
                assert_eq!(comparable, 3);
                assert_eq!(pairs, vec![Discord { a: "b".into(), b: "c".into(), ours: Greater, paper: Less }]);
            }
            v => panic!("{v:?}"),
        }
        // a tie on one side counts as a different ordering
        let paper = m(&[("a", 1.0), ("b", 1.0)]);
        assert!(matches!(compare_orderings(&ours, true, &paper, true), OrderingVerdict::Differs { .. }));
        // rows without a paper number are ignored
        let paper = m(&[("a", 1.0), ("z", 2.0)]);
        assert_eq!(compare_orderings(&ours, true, &paper, true), OrderingVerdict::CannotJudge { comparable: 1 });
        assert_eq!(ranking(&ours, false), vec!["c", "b", "a"]);
        assert_eq!(ranking(&ours, true), vec!["a", "b", "c"]);
    }
}
