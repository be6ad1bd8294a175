//! Run selection and sharding (`repro run --only ROW[,ROW…] --seeds 0,2 --shard i/n`).
//!
//! A study is a grid of runs: every ablation row (in file order, sweep rows included) times every seed of that
//! row's configuration (in its order). `--only` keeps some rows, `--seeds` some seeds, and `--shard i/n` keeps
//! every n-th run of what is left, starting at the i-th (0-based): run j of the selected grid belongs to shard
//! `j mod n`. The partition depends only on the study file, the scale, `--set`, `--only` and `--seeds`, so n
//! processes (machines, Slurm tasks) given the same arguments and `--shard 0/n` … `--shard n−1/n` run every
//! selected run exactly once between them. Round robin, not blocks, so that every shard gets a mix of rows
//! (rows differ in cost far more than seeds do).

use super::spec::Study;
use anyhow::{anyhow, bail, Result};

/// Which runs of a study's grid one `repro run` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// row names (None: every row)
    pub only: Option<Vec<String>>,
    /// seeds (None: every seed of each row)
    pub seeds: Option<Vec<u64>>,
    /// `(i, n)`: the i-th of n shards (0-based)
    pub shard: Option<(usize, usize)>,
}

/// One run of the grid: a row name and a seed.
pub type GridRun = (String, u64);

/// `i/n` with `0 <= i < n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = |why: &str| anyhow!("--shard `{s}`: {why} (expected i/n with 0 <= i < n, e.g. --shard 0/4)");
    let (i, n) = s.split_once('/').ok_or_else(|| bad("no `/`"))?;
    let i: usize = i.trim().parse().map_err(|_| bad("i is not a whole number"))?;
    let n: usize = n.trim().parse().map_err(|_| bad("n is not a whole number"))?;
    if n == 0 {
        return Err(bad("n must be at least 1"));
    }
    if i >= n {
        return Err(bad("i must be less than n (shards are numbered from 0)"));
    }
    Ok((i, n))
}

/// `0,2,5`: distinct non-negative whole numbers.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let mut out = vec![];
    for part in s.split(',') {
        let p = part.trim();
        let seed: u64 =
            p.parse().map_err(|_| anyhow!("--seeds `{s}`: `{p}` is not a seed (expected whole numbers, e.g. 0,2)"))?;
        if out.contains(&seed) {
            bail!("--seeds `{s}`: seed {seed} appears twice");
        }
        out.push(seed);
    }
    Ok(out)
}

/// The rows of `--only` values: each value is one row name when a row has exactly that name (names may hold
/// commas), else a comma-separated list of names.
pub fn split_only(values: &[String], rows: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for v in values {
        let parts: Vec<String> = if rows.contains(v) {
            vec![v.clone()]
        } else {
            v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
        };
        for p in parts {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

impl Selection {
    /// Every run of the grid.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses the command-line values (`--only` may repeat; `None` where a flag is absent).
    pub fn parse(only: &[String], seeds: Option<&str>, shard: Option<&str>) -> Result<Self> {
        if only.iter().any(|o| o.trim().is_empty()) {
            bail!("--only: empty row name (expected ROW[,ROW…], the names of the study's `ablations`)");
        }
        Ok(Self {
            only: (!only.is_empty()).then(|| only.to_vec()),
            seeds: seeds.map(parse_seeds).transpose()?,
            shard: shard.map(parse_shard).transpose()?,
        })
    }

    /// Whether this selects the whole grid.
    pub fn is_all(&self) -> bool {
        self.only.is_none() && self.seeds.is_none() && self.shard.is_none_or(|(_, n)| n == 1)
    }

    /// The whole grid of a study: every row (file order) × that row's seeds.
    pub fn full_grid(study: &Study) -> Result<Vec<GridRun>> {
        let mut grid = vec![];
        for r in &study.spec.ablations {
            for s in study.row_config(&r.name)?.seeds {
                grid.push((r.name.clone(), s));
            }
        }
        Ok(grid)
    }

    /// The runs this selection keeps, in grid order; unknown rows or seeds are errors that list the study's.
    pub fn grid(&self, study: &Study) -> Result<Vec<GridRun>> {
        let file = study.file.display();
        let names: Vec<String> = study.spec.ablations.iter().map(|r| r.name.clone()).collect();
        let mut grid = Self::full_grid(study)?;
        if let Some(only) = &self.only {
            let wanted = split_only(only, &names);
            for w in &wanted {
                if !names.contains(w) {
                    let near = names
                        .iter()
                        .map(|n| (strsim::jaro_winkler(w, n), n))
                        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
                        .filter(|(s, _)| *s > 0.7)
                        .map(|(_, n)| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    bail!("--only: {file} has no row `{w}` (rows: {}){near}", names.join(", "));
                }
            }
            grid.retain(|(r, _)| wanted.contains(r));
        }
        if let Some(seeds) = &self.seeds {
            let mut known: Vec<u64> = grid.iter().map(|g| g.1).collect();
            known.sort();
            known.dedup();
            for s in seeds {
                if !known.contains(s) {
                    let list: Vec<String> = known.iter().map(|k| k.to_string()).collect();
                    bail!(
                        "--seeds: seed {s} is not a seed of the selected rows of {file} (seeds: {}); to add seeds, \
                         --set 'seeds=[…]'",
                        list.join(", ")
                    );
                }
            }
            grid.retain(|(_, s)| seeds.contains(s));
        }
        if let Some((i, n)) = self.shard {
            grid = shard(&grid, i, n);
        }
        Ok(grid)
    }
}

/// The i-th of n shards of `grid`: the items at positions `j` with `j mod n = i`.
pub fn shard<T: Clone>(grid: &[T], i: usize, n: usize) -> Vec<T> {
    grid.iter().enumerate().filter(|(j, _)| j % n == i).map(|(_, g)| g.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_complete() {
        for len in [0usize, 1, 5, 12, 13] {
            let grid: Vec<usize> = (0..len).collect();
            for n in 1..=7 {
                let mut seen = vec![0usize; len];
                for i in 0..n {
                    let part = shard(&grid, i, n);
                    // balanced: sizes differ by at most one
                    assert!(part.len() == len / n || part.len() == len / n + 1, "{len} {n} {i}");
                    for g in part {
                        seen[g] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "len {len}, n {n}: {seen:?}");
            }
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (s, want) in [("3/3", "less than n"), ("1/0", "at least 1"), ("x/2", "whole number"), ("2", "no `/`")] {
            let e = parse_shard(s).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("--shard"), "{s}: {e}");
        }
        assert_eq!(parse_shard(" 2/5").unwrap(), (2, 5));
        assert!(parse_seeds("0,a").unwrap_err().to_string().contains("`a` is not a seed"));
        assert!(parse_seeds("1,1").unwrap_err().to_string().contains("twice"));
        assert_eq!(parse_seeds("3, 0").unwrap(), vec![3, 0]);
        assert!(Selection::parse(&["".into()], None, None).is_err());
    }

    #[test]
    fn only_keeps_names_with_commas_whole() {
        let rows = vec!["a,b".to_string(), "c".to_string(), "d".to_string()];
        assert_eq!(split_only(&["a,b".into()], &rows), vec!["a,b"]);
        assert_eq!(split_only(&["c,d".into(), "c".into()], &rows), vec!["c", "d"]);
    }
}
