//! Multi-stage training inside one run (`training.stages`), for TNT's two-stage recipe (arXiv 2511.07343 §4.2:
//! stage 1 trains with large local chunks, stage 2 fine-tunes from stage 1's weights with smaller ones):
//!
//! ```yaml
//! training:
//!   steps: 80                 # must equal the sum of the stages' steps
//!   stages:
//!     - { steps: 60 }                                          # stage 1: the row's configuration
//!     - { steps: 20, set: { model.memory.local_chunks: [1] } }  # stage 2: the row's configuration + overrides
//! ```
//!
//! Each stage is the row's configuration with that stage's `set` overrides (not cumulative) and
//! `training.steps` = the stage's steps; it is trained by the ordinary loop ([`super::train::train`]) as a
//! run of its own in `<run>/stage-<j>/` — its own checkpoints, resume and learning-rate schedule (warm-up and
//! cosine over the stage's steps). Stage `j > 1` starts from the final parameters of stage `j − 1` with a fresh
//! AdamW (zero moments: stage 2 is a fine-tuning run from stage 1's weights; the paper does not say whether the
//! optimizer state carries over): its folder is seeded with a step-0 checkpoint holding those parameters.
//!
//! Each stage folder records the hash of its configuration and of the stage before it (`stage.json`); a stage
//! whose record differs from the study's current configuration is discarded with every later stage, so
//! changing stage 2 keeps finished stage-1 work. The run's `metrics.jsonl` is the stages' lines end to end
//! (steps numbered across the run), rewritten after every stage, so the report shows one curve.
//!
//! Overrides a stage may not make: `training.stages`, `training.steps` (the stage's `steps` says it), `task`,
//! `seeds`, `device`, `evaluation`, `name`, `paper` (they shape the run, not a stage). A stage that changes the
//! model's parameters (names or shapes) is refused when its checkpoint is loaded, naming the tensor.

use super::spec::{set_path, Experiment};
use super::store::{config_hash, run_identity, RunDir};
use super::tasks::Task;
use super::train::{train, Trained};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::collections::BTreeMap;
use tch::{Device, Tensor};

/// One entry of `training.stages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// optimizer steps of this stage
    pub steps: usize,
    /// overrides of the row's configuration for this stage (`model.memory.local_chunks: [1]`)
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
}

const FORBIDDEN: [&str; 8] =
    ["training.stages", "training.steps", "task", "seeds", "device", "evaluation", "name", "paper"];

fn forbidden(path: &str) -> bool {
    FORBIDDEN.iter().any(|f| path == *f || path.starts_with(&format!("{f}.")) || f.starts_with(&format!("{path}.")))
}

/// The configuration stage `j` (0-based) trains with: the row's configuration without `training.stages`,
/// `training.steps` = the stage's steps, and the stage's overrides.
pub fn stage_config(cfg: &Experiment, j: usize) -> Result<Experiment> {
    let stage = cfg.training.stages.get(j).ok_or_else(|| anyhow!("no stage {}", j + 1))?;
    let mut v = serde_yaml::to_value(cfg)?;
    if let Some(t) = v.get_mut("training").and_then(|t| t.as_mapping_mut()) {
        t.remove("stages");
        t.insert("steps".into(), Value::from(stage.steps as u64));
    }
    for (path, value) in &stage.set {
        if forbidden(path) {
            bail!("stage {}: `{path}` cannot be set per stage (it shapes the whole run)", j + 1);
        }
        set_path(&mut v, path, value.clone()).map_err(|e| anyhow!("stage {}: {e}", j + 1))?;
    }
    serde_yaml::from_value(v).map_err(|e| anyhow!("stage {}: {e}", j + 1))
}

/// Checks the stages of a resolved configuration: `(field path, message)` of the first problem.
pub fn validate(cfg: &Experiment) -> std::result::Result<(), (String, String)> {
    let stages = &cfg.training.stages;
    if stages.is_empty() {
        return Ok(());
    }
    let sum: usize = stages.iter().map(|s| s.steps).sum();
    if let Some(j) = stages.iter().position(|s| s.steps == 0) {
        return Err(("training.stages".into(), format!("stage {} has steps: 0 (every stage needs at least 1)", j + 1)));
    }
    if sum != cfg.training.steps {
        return Err((
            "training.steps".into(),
            format!("must equal the sum of training.stages' steps ({sum}), got {}", cfg.training.steps),
        ));
    }
    for j in 0..stages.len() {
        let c = stage_config(cfg, j).map_err(|e| ("training.stages".to_string(), format!("{e:#}")))?;
        crate::memories::build(&c.model.memory, c.model.dim / c.model.heads)
            .map_err(|e| ("training.stages".to_string(), format!("stage {}: model.memory: {e}", j + 1)))?;
        if c.training.batch_size == 0 || !(c.training.lr.is_finite() && c.training.lr > 0.0) {
            return Err((
                "training.stages".into(),
                format!("stage {}: training.batch_size must be ≥ 1 and training.lr positive", j + 1),
            ));
        }
    }
    Ok(())
}

/// Whether a stored run's configuration differs from `now` only in stages after the first `k` (and in
/// `training.steps`, their sum): then the first differing stage, whose work and every later stage's is redone
/// while the stages before it are kept.
pub fn first_changed_stage(stored: &Value, now: &Value) -> Option<usize> {
    let strip = |v: &Value| {
        let mut v = run_identity(v);
        let stages = v
            .get_mut("training")
            .and_then(|t| t.as_mapping_mut())
            .map(|t| {
                t.remove("steps");
                t.remove("stages")
            })
            .flatten();
        (v, stages.and_then(|s| s.as_sequence().cloned()).unwrap_or_default())
    };
    let (a, sa) = strip(stored);
    let (b, sb) = strip(now);
    if a != b || sa.is_empty() || sb.is_empty() {
        return None;
    }
    let k = sa.iter().zip(&sb).take_while(|(x, y)| x == y).count();
    (k > 0 && k < sa.len().max(sb.len())).then_some(k)
}

/// What a stage folder records about its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StageRecord {
    stage: usize,
    config_hash: String,
    /// the configuration hash of the stage it starts from (empty for the first)
    previous: String,
}

fn stage_dir(run: &RunDir, j: usize) -> RunDir {
    RunDir { path: run.path.join(format!("stage-{}", j + 1)) }
}

fn read_record(dir: &RunDir) -> Option<StageRecord> {
    let text = std::fs::read_to_string(dir.path.join("stage.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Trains every stage of `cfg` in turn (see the module doc); `stop_after` counts steps across the run.
pub fn train_stages(
    cfg: &Experiment,
    task: &Task,
    seed: u64,
    device: Device,
    run: &RunDir,
    bar: &ProgressBar,
    stop_after: Option<usize>,
) -> Result<Trained> {
    let n = cfg.training.stages.len();
    let configs: Vec<Experiment> = (0..n).map(|j| stage_config(cfg, j)).collect::<Result<_>>()?;
    let hashes: Vec<String> =
        configs.iter().map(|c| Ok(config_hash(&serde_yaml::to_value(c)?))).collect::<Result<_>>()?;
    // a stage is kept only while it and every stage before it were trained with today's configuration
    let mut valid = true;
    for j in 0..n {
        let dir = stage_dir(run, j);
        let want = StageRecord {
            stage: j + 1,
            config_hash: hashes[j].clone(),
            previous: if j == 0 { String::new() } else { hashes[j - 1].clone() },
        };
        valid = valid && read_record(&dir).as_ref() == Some(&want);
        if !valid && dir.path.exists() {
            std::fs::remove_dir_all(&dir.path).with_context(|| format!("removing {}", dir.path.display()))?;
        }
    }
    let mut start = 0usize;
    let mut done: Option<Trained> = None;
    for j in 0..n {
        let dir = stage_dir(run, j);
        std::fs::create_dir_all(&dir.path).with_context(|| format!("creating {}", dir.path.display()))?;
        let record = StageRecord {
            stage: j + 1,
            config_hash: hashes[j].clone(),
            previous: if j == 0 { String::new() } else { hashes[j - 1].clone() },
        };
        crate::fsutil::write_atomic(&dir.path.join("stage.json"), serde_json::to_string_pretty(&record)?.as_bytes())?;
        if let Some(prev) = &done {
            if !dir.path.join("checkpoint.json").exists() {
                // stage j starts from stage j − 1's parameters, with zero AdamW moments
                let mut tensors: Vec<(String, Tensor)> = vec![];
                for (name, p) in prev.vs.variables() {
                    tensors.push((format!("param.{name}"), p.detach().copy()));
                    tensors.push((format!("adam_m.{name}"), p.zeros_like()));
                    tensors.push((format!("adam_v.{name}"), p.zeros_like()));
                }
                tensors.sort_by(|a, b| a.0.cmp(&b.0));
                dir.save_checkpoint(0, &hashes[j], &tensors)?;
            }
        }
        let steps = cfg.training.stages[j].steps;
        let stop = stop_after.map(|s| s.saturating_sub(start));
        let result = train(&configs[j], task, seed, device, &dir, bar, stop);
        // the run's curve: every stage's lines so far, numbered across the run
        write_run_metrics(run, n, &cfg.training.stages)?;
        let trained = result.map_err(|e| {
            if format!("{e}").contains("--stop-after") {
                anyhow!("interrupted in stage {} after run step {} (--stop-after)", j + 1, start + stop.unwrap_or(0))
            } else {
                e.context(format!("stage {}", j + 1))
            }
        })?;
        start += steps;
        done = Some(Trained { steps_done: start, ..trained });
    }
    done.ok_or_else(|| anyhow!("training.stages is empty"))
}

/// Rewrites the run's `metrics.jsonl` from the stage folders (steps offset by the stages before).
fn write_run_metrics(run: &RunDir, n: usize, stages: &[StageSpec]) -> Result<()> {
    // whole lines (throughput and memory diagnostics included), only the step offset
    let mut lines: Vec<serde_json::Value> = vec![];
    let mut offset = 0u64;
    for (j, stage) in stages.iter().enumerate().take(n) {
        let dir = stage_dir(run, j);
        if dir.path.exists() {
            for (l, mut v) in dir.metrics()?.into_iter().zip(dir.metric_records::<serde_json::Value>()?) {
                v["step"] = serde_json::json!(l.step + offset);
                lines.push(v);
            }
        }
        offset += stage.steps as u64;
    }
    let mut s = String::new();
    for l in &lines {
        s.push_str(&serde_json::to_string(l)?);
        s.push('\n');
    }
    crate::fsutil::write_atomic(&run.path.join("metrics.jsonl"), s.as_bytes())
}
