//! `repro slurm FILE`: runs a study on a Slurm cluster. Slurm schedules; this module only writes two sbatch
//! scripts and submits them:
//!
//! * `<out>/<study>/slurm/array.sbatch`: one array job over the (row, seed) runs not yet done; task `i` runs
//!   `repro run FILE --only ROW_i --seeds SEED_i` into the shared study folder (the runs' own locks keep two
//!   tasks off one run, the study lock is shared by partial runs, finished runs are skipped);
//! * `<out>/<study>/slurm/report.sbatch`: `repro report <out>/<study>`, submitted with
//!   `--dependency=afterany:<array>` so that it runs when every task has ended, failed ones included (with
//!   `afterok` a failed task would leave it pending forever); the report shows each run's status.
//!
//! Resubmitting after failures or a cancellation submits only the runs that are not done. Logs go to
//! `<out>/<study>/slurm/logs/<job name>_<array id>_<task>.out`; `submitted.json` records the job ids. The
//! binary, the study file and `--out` are given to the jobs as absolute paths: they must be on storage the
//! compute nodes share.

use super::select::{GridRun, Selection};
use super::spec::Study;
use super::store::RunDir;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `repro slurm`.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub scale: String,
    pub sets: Vec<String>,
    pub out: PathBuf,
    pub device: Option<String>,
    pub partition: Option<String>,
    pub gpus_per_task: Option<u32>,
    /// Slurm's `--time` (`MM`, `HH:MM:SS`, `D-HH:MM`, …), passed as given
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// at most this many array tasks at once (`--array=…%K`)
    pub max_parallel: Option<u32>,
    pub dry_run: bool,
    /// tasks pass `--fresh` (retry failed runs, discard runs of another configuration)
    pub fresh: bool,
    /// wait for both jobs to end, then say how the runs ended
    pub wait: bool,
    /// the `repro` binary the jobs run (default: this one)
    pub binary: Option<PathBuf>,
}

/// What `repro slurm` did.
#[derive(Debug, Clone)]
pub struct Submission {
    /// runs the array covers, in task order
    pub tasks: Vec<GridRun>,
    /// runs already done (skipped)
    pub done: usize,
    pub array_script: String,
    pub report_script: String,
    /// `(array id, report id)` when submitted
    pub jobs: Option<(String, String)>,
    pub dir: PathBuf,
}

/// Quotes a string for bash (single quotes; `'` as `'\''`).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(p))
}

/// Checks values that go into `#SBATCH` lines (one line each: no newline; Slurm parses the rest).
fn sbatch_value(flag: &str, v: &str) -> Result<String> {
    if v.trim().is_empty() || v.contains(['\n', '\r']) || v.contains(char::is_whitespace) {
        bail!("{flag} `{v}`: expected one word without spaces (it becomes `#SBATCH {flag}={v}`)");
    }
    Ok(v.to_string())
}

/// The `#SBATCH` resource lines shared by both scripts.
fn resource_lines(o: &SlurmOptions, array: bool) -> Result<String> {
    let mut s = String::new();
    if let Some(p) = &o.partition {
        s += &format!("#SBATCH --partition={}\n", sbatch_value("--partition", p)?);
    }
    if let Some(t) = &o.time {
        s += &format!("#SBATCH --time={}\n", sbatch_value("--time", t)?);
    }
    // GPUs and CPUs for the training tasks only (the report job draws plots)
    if array {
        if let Some(g) = o.gpus_per_task {
            s += &format!("#SBATCH --gpus-per-task={g}\n");
        }
        if let Some(c) = o.cpus_per_task {
            s += &format!("#SBATCH --cpus-per-task={c}\n");
        }
    }
    Ok(s)
}

/// Writes (or, with `dry_run`, only renders) the scripts and submits them.
pub fn submit(file: &Path, o: &SlurmOptions) -> Result<Submission> {
    let study = Study::load(file, &o.scale, &o.sets)?;
    let base = study.base_config()?;
    if o.gpus_per_task == Some(0) {
        bail!("--gpus-per-task must be at least 1 (leave it out for CPU jobs)");
    }
    if o.cpus_per_task == Some(0) || o.max_parallel == Some(0) {
        bail!("--cpus-per-task and --max-parallel must be at least 1");
    }
    let out = absolute(&o.out)?;
    let dir = out.join(&base.name);
    let sdir = dir.join("slurm");
    let grid = Selection::full_grid(&study)?;
    let mut tasks = vec![];
    for (row, seed) in &grid {
        let done = RunDir::new(&dir, row, *seed).result().ok().flatten().is_some_and(|r| r.status == "done");
        if !done {
            tasks.push((row.clone(), *seed));
        }
    }
    let done = grid.len() - tasks.len();
    let binary = match &o.binary {
        Some(b) => absolute(b)?,
        None => std::env::current_exe().context("locating the repro binary")?,
    };
    let file_abs = absolute(file)?;
    let cwd = std::env::current_dir()?;
    let name = format!("repro-{}", base.name);
    let logs = sdir.join("logs");
    let q = |p: &Path| sh_quote(&p.display().to_string());

    // the `repro run` arguments every task shares
    let mut common = vec!["run".to_string(), q(&file_abs), "--scale".into(), sh_quote(&o.scale)];
    for s in &o.sets {
        common.push("--set".into());
        common.push(sh_quote(s));
    }
    if let Some(d) = &o.device {
        common.push("--device".into());
        common.push(sh_quote(d));
    }
    common.extend(["--out".into(), q(&out), "-q".into()]);
    if o.fresh {
        common.push("--fresh".into());
    }
    let rows: Vec<String> = tasks.iter().map(|t| sh_quote(&t.0)).collect();
    let seeds: Vec<String> = tasks.iter().map(|t| t.1.to_string()).collect();
    let throttle = o.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    let array_script = format!(
        "#!/usr/bin/env bash\n\
         # written by `repro slurm` for study `{study}` ({n} of {total} runs; {done} already done)\n\
         #SBATCH --job-name={name}\n\
         #SBATCH --array=0-{last}{throttle}\n\
         #SBATCH --ntasks=1\n\
         #SBATCH --chdir={cwd}\n\
         #SBATCH --output={logs}/%x_%A_%a.out\n\
         {resources}\
         set -euo pipefail\n\
         ROWS=({rows})\n\
         SEEDS=({seeds})\n\
         i=${{SLURM_ARRAY_TASK_ID:?not an array task}}\n\
         echo \"task $i: row ${{ROWS[$i]}}, seed ${{SEEDS[$i]}}, on $(hostname)\"\n\
         exec {bin} {common} --only \"${{ROWS[$i]}}\" --seeds \"${{SEEDS[$i]}}\"\n",
        study = base.name,
        n = tasks.len(),
        total = grid.len(),
        last = tasks.len().saturating_sub(1),
        cwd = q(&cwd),
        logs = q(&logs),
        resources = resource_lines(o, true)?,
        rows = rows.join(" "),
        seeds = seeds.join(" "),
        bin = q(&binary),
        common = common.join(" "),
    );
    let report_script = format!(
        "#!/usr/bin/env bash\n\
         # written by `repro slurm`: the report of study `{study}`, after every array task has ended\n\
         #SBATCH --job-name={name}-report\n\
         #SBATCH --ntasks=1\n\
         #SBATCH --chdir={cwd}\n\
         #SBATCH --output={logs}/%x_%j.out\n\
         {resources}\
         set -euo pipefail\n\
         exec {bin} report {dir}\n",
        study = base.name,
        cwd = q(&cwd),
        logs = q(&logs),
        resources = resource_lines(o, false)?,
        bin = q(&binary),
        dir = q(&dir),
    );
    let mut sub = Submission { tasks, done, array_script, report_script, jobs: None, dir: dir.clone() };
    if o.dry_run || sub.tasks.is_empty() {
        return Ok(sub);
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let array_path = sdir.join("array.sbatch");
    let report_path = sdir.join("report.sbatch");
    crate::fsutil::write_atomic(&array_path, sub.array_script.as_bytes())?;
    crate::fsutil::write_atomic(&report_path, sub.report_script.as_bytes())?;
    let array_id = sbatch(&[array_path.display().to_string()])?;
    let report_id = sbatch(&[format!("--dependency=afterany:{array_id}"), report_path.display().to_string()])
        .with_context(|| format!("the array job {array_id} was submitted; cancel it with `scancel {array_id}`"))?;
    let record = serde_json::json!({
        "array_job": array_id,
        "report_job": report_id,
        "tasks": sub.tasks.iter().map(|(r, s)| serde_json::json!({"row": r, "seed": s})).collect::<Vec<_>>(),
        "submitted": format!("{:?}", std::time::SystemTime::now()),
    });
    crate::fsutil::write_atomic(&sdir.join("submitted.json"), serde_json::to_string_pretty(&record)?.as_bytes())?;
    sub.jobs = Some((array_id, report_id));
    Ok(sub)
}

/// Runs `sbatch --parsable ARGS` and returns the job id.
fn sbatch(args: &[String]) -> Result<String> {
    let o = Command::new("sbatch").arg("--parsable").args(args).output().map_err(|e| {
        anyhow!("cannot run `sbatch` ({e}): is Slurm installed here? (`scripts/slurm-local.sh start` starts a one-node cluster on this machine)")
    })?;
    if !o.status.success() {
        bail!("sbatch {} failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    }
    // `JOBID` or `JOBID;CLUSTER`
    let text = String::from_utf8_lossy(&o.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed `{}`, not a job id", text.trim());
    }
    Ok(id)
}

/// Waits until neither job is known to `squeue` any more (polling every 2 s; transient errors are retried,
/// for at most `timeout`).
pub fn wait(jobs: &(String, String), timeout: std::time::Duration) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let o = Command::new("squeue").args(["-h", "-j", &format!("{},{}", jobs.0, jobs.1), "-o", "%i %T"]).output()?;
        let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        if o.status.success() && out.is_empty() {
            return Ok(());
        }
        // both ids purged after MinJobAge: gone, so ended
        if !o.status.success() && err.contains("Invalid job id") {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("jobs {} and {} still queued or running after {:?}: {out}{err}", jobs.0, jobs.1, timeout);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting_for_bash() {
        assert_eq!(sh_quote("LMM"), "LMM");
        assert_eq!(sh_quote("LMM w/o momentum"), "'LMM w/o momentum'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$(rm -rf x)"), "'$(rm -rf x)'");
    }
}
