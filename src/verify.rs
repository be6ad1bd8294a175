//! `repro verify`: runs the checks that the registry lists for the chosen papers on one device and dtype,
//! prints a table (one row per check, its worst quantity) and writes a markdown report with every quantity.

use crate::check::{find_check, CheckEnv, Measurement};
use crate::device::device_name;
use crate::registry::Paper;
use crate::tensor::kind_name;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The outcome of one check on one device/dtype.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub equations: Vec<String>,
    pub check: String,
    pub measurements: Vec<Measurement>,
    /// set when the check itself failed to run (an error, not a numerical mismatch)
    pub error: Option<String>,
}

impl CheckRow {
    pub fn pass(&self) -> bool {
        self.error.is_none() && !self.measurements.is_empty() && self.measurements.iter().all(Measurement::pass)
    }
    /// The measurement closest to (or furthest over) its tolerance.
    pub fn worst(&self) -> Option<&Measurement> {
        self.measurements.iter().max_by(|a, b| {
            let ra = a.errors.rel_rmse / a.tolerance;
            let rb = b.errors.rel_rmse / b.tolerance;
            ra.partial_cmp(&rb).unwrap_or(std::cmp::Ordering::Greater)
        })
    }
}

/// The checks the given papers list, each with the equations that name it, in registry order.
pub fn planned_checks(papers: &[Paper], only: Option<&str>) -> Vec<(String, Vec<String>)> {
    let mut plan: Vec<(String, Vec<String>)> = vec![];
    for p in papers {
        for e in &p.equations {
            for c in &e.checks {
                if only.is_some_and(|o| o != c) {
                    continue;
                }
                match plan.iter_mut().find(|(name, _)| name == c) {
                    Some((_, eqs)) => eqs.push(e.id.clone()),
                    None => plan.push((c.clone(), vec![e.id.clone()])),
                }
            }
        }
    }
    plan
}

/// Runs the planned checks with a progress bar (hidden when `quiet`).
pub fn run(papers: &[Paper], env: &CheckEnv, only: Option<&str>, quiet: bool) -> Result<Vec<CheckRow>> {
    let plan = planned_checks(papers, only);
    if plan.is_empty() {
        anyhow::bail!("no checks to run (is the check name or paper right?)");
    }
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(plan.len() as u64) };
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]").unwrap());
    let mut rows = vec![];
    for (name, equations) in plan {
        bar.set_message(name.clone());
        let check = find_check(&name).with_context(|| format!("registry names unknown check `{name}`"))?;
        let (measurements, error) = match (check.run)(env) {
            Ok(m) => (m, None),
            Err(e) => (vec![], Some(format!("{e:#}"))),
        };
        rows.push(CheckRow { equations, check: name, measurements, error });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(rows)
}

fn sci(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1e}")
    } else {
        "inf".into()
    }
}

/// The console table: `equation check device dtype max_abs rel_rmse tolerance pass`.
pub fn table(rows: &[CheckRow], env: &CheckEnv) -> String {
    let dev = device_name(env.device);
    let dt = kind_name(env.kind);
    let eq_w = rows.iter().map(|r| r.equations.join(",").len()).max().unwrap_or(8).max(8);
    let ck_w = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:eq_w$}  {:ck_w$}  {:6} {:5}  {:>8}  {:>8}  {:>9}  pass",
        "equation", "check", "device", "dtype", "max_abs", "rel_rmse", "tolerance"
    );
    for r in rows {
        let (ma, rr, tol) = match r.worst() {
            Some(m) => (sci(m.errors.max_abs), sci(m.errors.rel_rmse), sci(m.tolerance)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let pass = if r.pass() { "yes" } else { "NO" };
        let _ = writeln!(
            s,
            "{:eq_w$}  {:ck_w$}  {:6} {:5}  {:>8}  {:>8}  {:>9}  {}",
            r.equations.join(","),
            r.check,
            dev,
            dt,
            ma,
            rr,
            tol,
            pass
        );
        if let Some(e) = &r.error {
            let _ = writeln!(s, "    error: {e}");
        }
    }
    s
}

/// The markdown report: the summary table, then every measurement of every check.
pub fn markdown(rows: &[CheckRow], env: &CheckEnv) -> String {
    let dev = device_name(env.device);
    let dt = kind_name(env.kind);
    let mut s = String::new();
    let _ = writeln!(s, "# repro verify — device {dev}, dtype {dt}\n");
    let _ = writeln!(
        s,
        "Seeds: {:?}. Reference: ndarray f64 on the host. Errors: max-abs and relative RMSE ‖a − b‖/‖b‖ \
         against the reference; each tolerance bounds the relative RMSE (reasons in `src/tolerance.rs`).\n",
        env.seeds
    );
    let passed = rows.iter().filter(|r| r.pass()).count();
    let _ = writeln!(s, "**{passed} of {} checks pass.**\n", rows.len());
    let _ = writeln!(s, "| equation | check | worst quantity | max_abs | rel_rmse | tolerance | pass |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let (q, ma, rr, tol) = match r.worst() {
            Some(m) => (m.quantity.clone(), sci(m.errors.max_abs), sci(m.errors.rel_rmse), sci(m.tolerance)),
            None => (r.error.clone().unwrap_or_default(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} |",
            r.equations.join(", "),
            r.check,
            q,
            ma,
            rr,
            tol,
            if r.pass() { "yes" } else { "**no**" }
        );
    }
    for r in rows {
        let _ = writeln!(s, "\n## `{}` ({})\n", r.check, r.equations.join(", "));
        if let Some(c) = find_check(&r.check) {
            let _ = writeln!(s, "{}\n", c.summary);
        }
        if let Some(e) = &r.error {
            let _ = writeln!(s, "Error: {e}\n");
        }
        let _ = writeln!(s, "| quantity | max_abs | rel_rmse | tolerance | pass |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for m in &r.measurements {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                m.quantity,
                sci(m.errors.max_abs),
                sci(m.errors.rel_rmse),
                sci(m.tolerance),
                if m.pass() { "yes" } else { "**no**" }
            );
        }
    }
    s
}

/// Writes `<dir>/<device>-<dtype>.md` atomically and returns its path.
pub fn write_report(dir: &Path, rows: &[CheckRow], env: &CheckEnv) -> Result<PathBuf> {
    let path = dir.join(format!("{}-{}.md", device_name(env.device), kind_name(env.kind)));
    crate::fsutil::write_atomic(&path, markdown(rows, env).as_bytes())?;
    Ok(path)
}
