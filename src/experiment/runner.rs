//! Runs a study: every (ablation row, seed) is trained and evaluated into its run folder, finished runs are
//! skipped, interrupted ones resume from their last checkpoint, and the report is written at the end.

use super::lock::{RunLock, StudyLock};
use super::select::Selection;
use super::spec::{Experiment, Study, TaskKind};
use super::store::{config_differences, git_revision, run_identity, Manifest, RunDir, RunResult};
use super::tasks::{loss_and_accuracy, Split, Task};
use super::train::train;
use crate::device::{cpu_threads, device_name, parse_device, THREADS_VAR};
use crate::memory::rule::StateInit;
use crate::memory::ReadMode;
use crate::models::LanguageModel;
use crate::report::data::{MetricInfo, PaperReference, RowSummary, RunData, StudySummary};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Options of `repro run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scale: String,
    pub sets: Vec<String>,
    /// reports go to `<out>/<experiment name>/`
    pub out: PathBuf,
    pub quiet: bool,
    /// discard stored runs whose configuration differs instead of refusing, and retry failed runs
    pub fresh: bool,
    /// stop every run after this many steps (simulates an interruption; for tests)
    pub stop_after: Option<usize>,
    /// overrides the file's `device`
    pub device: Option<String>,
}

pub struct Outcome {
    pub dir: PathBuf,
    pub failed: Vec<String>,
    pub files: Vec<PathBuf>,
    /// runs skipped because another process holds their lock (a shard elsewhere)
    pub busy: Vec<String>,
}

/// Runs one run's work, turning a panic (a tch shape error the validation did not foresee: a bug) into this
/// run's error, so that the study goes on, the report is written, and the run says why it failed.
fn contain_panics<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        let first = msg.lines().next().unwrap_or("").to_string();
        Err(anyhow::anyhow!("internal error (a bug in repro; please report it with the study file): {first}"))
    })
}

/// The metric a task reports.
pub fn metric_info(kind: TaskKind) -> MetricInfo {
    match kind {
        TaskKind::LmChar => {
            MetricInfo { name: "validation bits per character".into(), higher_is_better: false, unit: "bpc".into() }
        }
        TaskKind::Capacity => MetricInfo { name: "recall".into(), higher_is_better: true, unit: "%".into() },
        TaskKind::Niah => MetricInfo { name: "accuracy".into(), higher_is_better: true, unit: "%".into() },
        _ => MetricInfo { name: "accuracy".into(), higher_is_better: true, unit: "%".into() },
    }
}

/// Evaluates a trained model on the eval split: `(metric, by_length)`.
pub fn evaluate(
    cfg: &Experiment,
    task: &Task,
    model: &dyn LanguageModel,
    seed: u64,
    device: Device,
) -> Result<(f64, Vec<(usize, f64)>)> {
    let e = &cfg.evaluation;
    tch::no_grad(|| {
        let score = |len: usize| -> (f64, f64) {
            let (mut loss, mut acc) = (0.0, 0.0);
            for i in 0..e.batches {
                let b = task.batch(seed, Split::Eval, i as u64, e.batch_size, len, device);
                let (l, a) = loss_and_accuracy(&model.forward(&b.inputs), &b.targets);
                loss += l.double_value(&[]);
                acc += a;
            }
            (loss / e.batches as f64, 100.0 * acc / e.batches as f64)
        };
        Ok(match cfg.task.kind {
            TaskKind::LmChar => (score(cfg.task.seq_len).0 / std::f64::consts::LN_2, vec![]),
            TaskKind::Niah => {
                let by: Vec<(usize, f64)> = cfg.task.lengths.iter().map(|&l| (l, score(l).1)).collect();
                (by.iter().map(|x| x.1).sum::<f64>() / by.len() as f64, by)
            }
            _ => (score(cfg.task.seq_len).1, vec![]),
        })
    })
}

/// The capacity task: store N random unit-norm key–value pairs in one pass (or `task.passes`) with the rule of `model.memory`
/// (one head of width `task.width`), every gate at the value a freshly built layer starts from (Titans: α ≈
/// 0.018, η = ½, θ = max_lr/2; a pinned gate at its pin), the initial state at its initialisation; then read
/// every key back. Recall is the share of keys whose read-out is closest (cosine) to its own value among the N
/// values.
pub fn capacity(cfg: &Experiment, seed: u64, device: Device) -> Result<Vec<(usize, f64)>> {
    let d = cfg.task.width as i64;
    let rule =
        crate::memories::build(&cfg.model.memory, cfg.task.width).map_err(|e| anyhow::anyhow!("model.memory: {e}"))?;
    let mut out = vec![];
    // the pairs come from libtorch's generator, seeded and drawn under the process-wide lock
    crate::tensor::with_torch_seed(seed, || {
        for &n in &cfg.task.pairs {
            let n = n as i64;
            let unit = |t: Tensor| &t / t.norm_scalaropt_dim(2.0, [-1], true);
            let k = unit(Tensor::randn([1, 1, n, d], (Kind::Double, device)));
            let v = unit(Tensor::randn([1, 1, n, d], (Kind::Double, device)));
            let gates: Vec<Tensor> = rule
                .gates()
                .iter()
                .map(|g| Tensor::full([1, 1, n], g.value(g.init_logit), (Kind::Double, device)))
                .collect();
            let state: Vec<Tensor> = rule
                .state(d as usize, d as usize)
                .iter()
                .map(|s| {
                    let mut shape = vec![1i64, 1];
                    shape.extend(s.shape.iter().map(|&x| x as i64));
                    match s.init {
                        StateInit::Zeros => Tensor::zeros(shape.as_slice(), (Kind::Double, device)),
                        StateInit::Constant { value } => Tensor::full(shape.as_slice(), value, (Kind::Double, device)),
                        StateInit::Learned { std } => Tensor::randn(shape.as_slice(), (Kind::Double, device)) * std,
                    }
                })
                .collect();
            // `task.passes` writes of the whole list (1 = one pass)
            let passes = cfg.task.passes.max(1) as i64;
            let (kw, vw) = (k.repeat([1, 1, passes, 1]), v.repeat([1, 1, passes, 1]));
            let gates: Vec<Tensor> = gates.iter().map(|g| g.repeat([1, 1, passes])).collect();
            let (_, fin) = tch::no_grad(|| rule.forward(&kw, &vw, &kw, &gates, &state, ReadMode::AfterWrite));
            // read every key from the final memory and match against all values
            let read = tch::no_grad(|| rule.retrieve(&k, &fin)).squeeze_dim(0).squeeze_dim(0);
            let sims = unit(read).matmul(&v.squeeze_dim(0).squeeze_dim(0).transpose(0, 1));
            let hits = sims.argmax(-1, false).eq_tensor(&Tensor::arange(n, (Kind::Int64, device)));
            out.push((n as usize, 100.0 * hits.to_kind(Kind::Double).mean(Kind::Double).double_value(&[])));
        }
    });
    Ok(out)
}

fn bar_for(quiet: bool, prefix: String) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{prefix:24} {bar:28} {pos:>5}/{len} {msg} ETA {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// Runs every row and seed of a study, then writes the report.
pub fn run_study(file: &Path, opts: &RunOptions) -> Result<Outcome> {
    run_study_selected(file, opts, &Selection::all())
}

/// Runs the (row, seed) runs that `sel` selects (see [`super::select`]), then writes the report of every
/// stored run of the study.
pub fn run_study_selected(file: &Path, opts: &RunOptions, sel: &Selection) -> Result<Outcome> {
    let study = Study::load(file, &opts.scale, &opts.sets)?;
    let grid = sel.grid(&study)?;
    let base = study.base_config()?;
    // the models are small: one intra-op thread is faster than two contending ones, and deterministic
    let threads = cpu_threads(std::env::var_os(THREADS_VAR).map(|v| v.to_string_lossy().into_owned()).as_deref())?;
    let device_spec = opts.device.clone().unwrap_or_else(|| base.device.clone());
    let device = parse_device(&device_spec)?;
    if device == Device::Cpu {
        tch::set_num_threads(threads);
    }
    if opts.out.exists() && !opts.out.is_dir() {
        bail!("--out {}: is a file, not a folder (reports go to <out>/<study name>/)", opts.out.display());
    }
    let dir = opts.out.join(&base.name);
    if dir.exists() && !dir.is_dir() {
        bail!("{}: is a file, not a folder; the study `{}` writes its report there", dir.display(), base.name);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // one whole-grid `repro run` per study folder at a time, or any number of partial ones (each run then
    // locked on its own); held until this function returns
    let _lock = if sel.is_all() { StudyLock::acquire(&dir)? } else { StudyLock::acquire_shared(&dir)? };
    let skeleton = summary_skeleton(&study, &base, device)?;
    crate::fsutil::write_atomic(&dir.join("study.json"), serde_json::to_string_pretty(&skeleton)?.as_bytes())?;
    let quiet = opts.quiet || std::env::var_os("CI").is_some();
    let mut failed = vec![];
    let mut busy = vec![];
    for row in &study.spec.ablations {
        if !grid.iter().any(|g| g.0 == row.name) {
            continue;
        }
        let cfg = study.row_config(&row.name)?;
        let config_value = serde_yaml::to_value(&cfg)?;
        let task = Task::new(&cfg.task)?;
        for &seed in &cfg.seeds {
            if !grid.iter().any(|g| g.0 == row.name && g.1 == seed) {
                continue;
            }
            let rd = RunDir::new(&dir, &row.name, seed);
            let label = format!("{} seed {seed}", row.name);
            // held until this run's result is written
            let _run_lock = match RunLock::try_acquire(&rd.path)? {
                Ok(l) => l,
                Err(who) => {
                    eprintln!("{label}: being run by {who} — skipped");
                    busy.push(label);
                    continue;
                }
            };
            let discard = |why: &str| -> Result<()> {
                eprintln!("{label}: {why} — discarded (--fresh)");
                std::fs::remove_dir_all(&rd.path).with_context(|| format!("removing {}", rd.path.display()))
            };
            let mut manifest = match rd.manifest() {
                Ok(m) => m,
                Err(e) if opts.fresh => {
                    discard(&format!("{e:#}"))?;
                    None
                }
                Err(e) => bail!("{e:#}; pass --fresh to discard this run"),
            };
            if let Some(m) = &manifest {
                // only the keys that change what the run computes count (not description, log_every, ...)
                let diffs = config_differences(&run_identity(&m.config), &run_identity(&config_value));
                if let Some(k) = super::stages::first_changed_stage(&m.config, &config_value) {
                    // only later stages changed: keep stages 1..k, redo the rest (`super::stages`)
                    eprintln!("{label}: training.stages changed from stage {}; stages before it are kept", k + 1);
                    rd.write_manifest(&Manifest { config: config_value.clone(), ..m.clone() })?;
                    let _ = std::fs::remove_file(rd.path.join("result.json"));
                } else if !diffs.is_empty() {
                    if opts.fresh {
                        discard("its configuration differs")?;
                        manifest = None;
                    } else {
                        bail!(
                            "{}: stored run `{label}` used a different configuration ({}); pass --fresh to discard it, or another --out",
                            rd.path.display(),
                            diffs.join(", ")
                        );
                    }
                }
            }
            let stored = match rd.result() {
                Ok(r) => r,
                Err(e) if opts.fresh => {
                    discard(&format!("{e:#}"))?;
                    manifest = None;
                    None
                }
                Err(e) => bail!("{e:#}; pass --fresh to discard this run"),
            };
            if let Some(r) = stored {
                if r.status == "done" {
                    eprintln!("{label}: already done — skipped");
                    continue;
                }
                if opts.fresh {
                    discard(&format!("it {}", r.status))?;
                    manifest = None;
                } else {
                    eprintln!(
                        "{label}: already {} — skipped (pass --fresh to retry it; it deletes {})",
                        r.status,
                        rd.path.display()
                    );
                    failed.push(format!("{label}: {}", r.status));
                    continue;
                }
            }
            if manifest.is_none() {
                rd.write_manifest(&Manifest {
                    experiment: cfg.name.clone(),
                    row: row.name.clone(),
                    seed,
                    scale: study.scale.clone(),
                    config: config_value.clone(),
                    git_revision: git_revision(),
                    crate_version: env!("CARGO_PKG_VERSION").into(),
                    libtorch: "2.11.0 (PyPI torch wheel), tch 0.24".into(),
                    device: device_name(device),
                    started: format!("{:?}", std::time::SystemTime::now()),
                })?;
            }
            let started = std::time::Instant::now();
            let result = if cfg.task.kind == TaskKind::Capacity {
                let by_pairs = capacity(&cfg, seed, device)?;
                let mean = by_pairs.iter().map(|x| x.1).sum::<f64>() / by_pairs.len() as f64;
                RunResult {
                    status: "done".into(),
                    final_metric: Some(mean),
                    by_length: vec![],
                    by_pairs,
                    steps: 0,
                    seconds: 0.0,
                    tokens_per_s: None,
                }
            } else {
                let bar = bar_for(quiet, label.clone());
                let outcome = contain_panics(|| {
                    let tr = train(&cfg, &task, seed, device, &rd, &bar, opts.stop_after)?;
                    let (metric, by_length) = evaluate(&cfg, &task, tr.model.as_ref(), seed, device)?;
                    Ok((tr.steps_done, metric, by_length, tr.tokens_per_s))
                });
                bar.finish_and_clear();
                match outcome {
                    Ok((steps, metric, by_length, tokens_per_s)) => RunResult {
                        status: "done".into(),
                        final_metric: Some(metric),
                        by_length,
                        by_pairs: vec![],
                        steps,
                        seconds: started.elapsed().as_secs_f64(),
                        tokens_per_s,
                    },
                    Err(e) if format!("{e}").contains("--stop-after") => {
                        return Err(e.context(format!("{label}: run interrupted; rerun the same command to resume")));
                    }
                    Err(e) => RunResult {
                        status: format!("failed: {e:#}"),
                        final_metric: None,
                        by_length: vec![],
                        by_pairs: vec![],
                        steps: 0,
                        seconds: started.elapsed().as_secs_f64(),
                        tokens_per_s: None,
                    },
                }
            };
            match result.final_metric {
                Some(m) => eprintln!("{label}: {m:.3} {} ({:.1} s)", metric_info(cfg.task.kind).unit, result.seconds),
                None => {
                    eprintln!("{label}: {}", result.status);
                    failed.push(format!("{label}: {}", result.status));
                }
            }
            rd.write_result(&result)?;
        }
    }
    let files = write_report(&dir)?;
    Ok(Outcome { dir, failed, files, busy })
}

fn summary_skeleton(study: &Study, base: &Experiment, device: Device) -> Result<StudySummary> {
    let rows = study
        .spec
        .ablations
        .iter()
        .map(|r| RowSummary {
            name: r.name.clone(),
            overrides: r
                .set
                .iter()
                .map(|(k, v)| (k.clone(), serde_yaml::to_string(v).unwrap_or_default().trim().to_string()))
                .collect(),
            runs: vec![],
        })
        .collect();
    Ok(StudySummary {
        name: base.name.clone(),
        paper: base.paper.clone(),
        description: base.description.clone(),
        metric: metric_info(base.task.kind),
        paper_reference: base.reference.as_ref().map(|r| PaperReference {
            source: r.source.clone(),
            note: r.note.clone(),
            values: r.values.clone(),
            higher_is_better: r.higher_is_better,
        }),
        rows,
        config_yaml: serde_yaml::to_string(base)?,
        scale: study.scale.clone(),
        device: device_name(device),
        plots: base.plots.clone(),
    })
}

/// Rebuilds the summary from `study.json` and the stored runs, and writes the report (`repro report`).
pub fn write_report(dir: &Path) -> Result<Vec<PathBuf>> {
    let p = dir.join("study.json");
    if !p.exists() {
        let below = studies_below(dir);
        if below.is_empty() {
            bail!("{}: no stored study here (run `repro run` first)", p.display());
        }
        let list: Vec<String> = below.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "{}: no stored study here, but there are studies below it: {} (pass one of them to `repro report`)",
            dir.display(),
            list.join(", ")
        );
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("{}: unreadable", p.display()))?;
    let mut summary: StudySummary =
        serde_json::from_str(&text).with_context(|| format!("{}: unreadable", p.display()))?;
    let seeds_of = |row: &str| -> Result<Vec<u64>> {
        let rdir = dir.join("runs").join(super::store::slug(row));
        let mut seeds = vec![];
        if rdir.exists() {
            for e in std::fs::read_dir(&rdir)? {
                let name = e?.file_name().to_string_lossy().into_owned();
                if let Some(s) = name.strip_prefix("seed-").and_then(|s| s.parse::<u64>().ok()) {
                    seeds.push(s);
                }
            }
        }
        seeds.sort();
        Ok(seeds)
    };
    for row in &mut summary.rows {
        // a run whose files cannot be read is shown as such (with the file and why); the others still render
        row.runs = seeds_of(&row.name)?
            .into_iter()
            .map(|s| {
                RunDir::new(dir, &row.name, s).run_data(s).unwrap_or_else(|e| {
                    eprintln!("warning: {} seed {s}: {e:#}", row.name);
                    RunData {
                        seed: s,
                        curve: vec![],
                        final_metric: None,
                        by_length: vec![],
                        by_pairs: vec![],
                        status: format!("unreadable: {e:#}"),
                        tokens_per_s: None,
                        memory: vec![],
                    }
                })
            })
            .collect();
    }
    crate::fsutil::write_atomic(&dir.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    let mut files = crate::report::write_report(dir, &summary)?;
    files.push(dir.join("summary.json"));
    Ok(files)
}

/// Study folders (holding `study.json`) up to two levels below `dir`, sorted.
fn studies_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..2 {
        let mut next = vec![];
        for d in &level {
            let Ok(entries) = std::fs::read_dir(d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    if p.join("study.json").is_file() {
                        found.push(p);
                    } else {
                        next.push(p);
                    }
                }
            }
        }
        level = next;
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::contain_panics;

    #[test]
    fn a_panic_inside_a_run_becomes_its_error() {
        let r: anyhow::Result<()> = contain_panics(|| panic!("shape mismatch in a model"));
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("internal error") && e.contains("shape mismatch in a model"), "{e}");
        assert_eq!(contain_panics(|| Ok(3)).unwrap(), 3);
    }
}
