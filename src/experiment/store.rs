//! The run store: `reports/<experiment>/runs/<row>/seed-<s>/` holds
//! * `manifest.json` — the configuration after overrides, seed, git revision, crate and libtorch versions, device;
//! * `metrics.jsonl` — one line per logged step, appended (a resumed run first truncates it to its
//!   checkpoint's step, so no step is listed twice; a torn last line from a crash is dropped);
//! * `checkpoint-<step>.safetensors` + `checkpoint.json` — model and optimizer state, and the record that
//!   commits them: step, configuration hash, tensor file name, size and content hash, and the name and shape of
//!   every tensor. `checkpoint.json` is written last (atomically) and names its tensor file, so a crash at any
//!   point leaves the previous checkpoint whole; a resume verifies every field before loading;
//! * `result.json` — the final metrics and the status (`done` or `failed: …`).
//!
//! Every other file is written atomically (temporary file + rename), so an interruption leaves the previous
//! complete version.

use crate::fsutil::write_atomic;
use crate::report::data::{CurvePoint, RunData};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricLine {
    pub step: u64,
    pub loss: f64,
    /// training-batch accuracy at the scored positions
    pub accuracy: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// the evaluation metric, when evaluated at this step
    pub metric: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub experiment: String,
    pub row: String,
    pub seed: u64,
    pub scale: String,
    pub config: serde_yaml::Value,
    pub git_revision: String,
    pub crate_version: String,
    pub libtorch: String,
    pub device: String,
    pub started: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// `done` or `failed: <why>`
    pub status: String,
    pub final_metric: Option<f64>,
    #[serde(default)]
    pub by_length: Vec<(usize, f64)>,
    #[serde(default)]
    pub by_pairs: Vec<(usize, f64)>,
    pub steps: usize,
    pub seconds: f64,
    /// training tokens per second (excluding evaluation, checkpoints and diagnostics) of the process that
    /// finished the run
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
}

/// Top-level configuration keys that do not change what a run computes: changing them neither invalidates
/// stored runs nor their checkpoints (`ablations`, `scales`, `reference`, `plots` describe the study; a row's
/// own overrides are already applied to its configuration).
pub const NOT_RUN_IDENTITY: [&str; 6] = ["description", "reference", "plots", "ablations", "scales", "sweep"];

/// The part of a run's configuration that decides its numbers: the configuration without
/// [`NOT_RUN_IDENTITY`] and `training.log_every` (which only spaces the metric lines).
pub fn run_identity(config: &serde_yaml::Value) -> serde_yaml::Value {
    let mut v = config.clone();
    if let Some(m) = v.as_mapping_mut() {
        for k in NOT_RUN_IDENTITY {
            m.remove(k);
        }
        if let Some(t) = m.get_mut("training").and_then(|t| t.as_mapping_mut()) {
            t.remove("log_every");
        }
    }
    v
}

/// The dotted keys where two configurations differ, with both values (`training.steps: 6 → 8`).
pub fn config_differences(stored: &serde_yaml::Value, now: &serde_yaml::Value) -> Vec<String> {
    fn walk(prefix: &str, a: Option<&serde_yaml::Value>, b: Option<&serde_yaml::Value>, out: &mut Vec<String>) {
        use serde_yaml::Value;
        match (a, b) {
            (Some(Value::Mapping(x)), Some(Value::Mapping(y))) => {
                let mut keys: Vec<&Value> = x.keys().collect();
                keys.extend(y.keys().filter(|k| !x.contains_key(*k)));
                for k in keys {
                    let name = k.as_str().map(str::to_string).unwrap_or_else(|| show(Some(k)));
                    let path = if prefix.is_empty() { name } else { format!("{prefix}.{name}") };
                    walk(&path, x.get(k), y.get(k), out);
                }
            }
            (a, b) if a != b => out.push(format!("{prefix}: {} → {}", show(a), show(b))),
            _ => {}
        }
    }
    fn show(v: Option<&serde_yaml::Value>) -> String {
        match v {
            None => "(absent)".into(),
            Some(v) => serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}")),
        }
    }
    let mut out = vec![];
    walk("", Some(stored), Some(now), &mut out);
    out
}

/// FNV-1a, 64 bit: a content hash for integrity checks (not for security), stable across platforms.
pub fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The hash of a run's configuration that its checkpoints record ([`run_identity`], as JSON).
pub fn config_hash(config: &serde_yaml::Value) -> String {
    fnv1a(serde_json::to_string(&run_identity(config)).unwrap_or_default().as_bytes())
}

/// One tensor of a checkpoint: its name and shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<i64>,
}

/// `checkpoint.json`: the record that commits a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_FORMAT`]
    pub format: u32,
    /// optimizer steps done
    pub step: usize,
    /// [`config_hash`] of the run that wrote it
    pub config_hash: String,
    /// the tensor file in the run folder
    pub tensors: String,
    /// its size and [`fnv1a`] hash
    pub bytes: u64,
    pub content_hash: String,
    /// every tensor, sorted by name
    pub params: Vec<TensorInfo>,
}

/// The checkpoint layout this version writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 2;

/// Folder names: row names with anything but letters, digits, `-` and `_` replaced by `_`.
pub fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(study_dir: &Path, row: &str, seed: u64) -> Self {
        Self { path: study_dir.join("runs").join(slug(row)).join(format!("seed-{seed}")) }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn manifest(&self) -> Result<Option<Manifest>> {
        read_json(&self.file("manifest.json"))
    }

    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        write_atomic(&self.file("manifest.json"), serde_json::to_string_pretty(m)?.as_bytes())
    }

    pub fn result(&self) -> Result<Option<RunResult>> {
        read_json(&self.file("result.json"))
    }

    pub fn write_result(&self, r: &RunResult) -> Result<()> {
        write_atomic(&self.file("result.json"), serde_json::to_string_pretty(r)?.as_bytes())
    }

    /// The logged metric lines. A last line without its newline that does not parse is a write torn by a
    /// crash and is dropped; any other bad line is an error naming the file and line.
    pub fn metrics(&self) -> Result<Vec<MetricLine>> {
        self.metric_records()
    }

    /// The logged lines read as `T` (a [`MetricLine`], or the extra fields of [`super::monitor::LoggedLine`]),
    /// with the raw text of each line.
    pub fn metric_records<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        Ok(self.metric_records_raw()?.into_iter().map(|(t, _)| t).collect())
    }

    fn metric_records_raw<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<(T, String)>> {
        let p = self.file("metrics.jsonl");
        if !p.exists() {
            return Ok(vec![]);
        }
        let text = std::fs::read_to_string(&p).with_context(|| format!("{}: unreadable", p.display()))?;
        let torn_tail = !text.is_empty() && !text.ends_with('\n');
        let n_lines = text.lines().count();
        let mut out = vec![];
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(l) {
                Ok(m) => out.push((m, l.to_string())),
                Err(_) if torn_tail && i + 1 == n_lines => {}
                Err(e) => bail!("{}:{}: bad metrics line: {e}", p.display(), i + 1),
            }
        }
        Ok(out)
    }

    fn write_metrics(&self, lines: &[String]) -> Result<()> {
        let mut s = String::new();
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        write_atomic(&self.file("metrics.jsonl"), s.as_bytes())
    }

    /// Appends one line to `metrics.jsonl` (one `write` of the whole line).
    pub fn append_metric(&self, line: &MetricLine) -> Result<()> {
        self.append_record(line)
    }

    /// Appends any record that holds a [`MetricLine`]'s fields (and possibly more) as one line.
    pub fn append_record<T: Serialize>(&self, line: &T) -> Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.path).with_context(|| format!("creating {}", self.path.display()))?;
        let p = self.file("metrics.jsonl");
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        f.write_all(text.as_bytes()).with_context(|| format!("appending to {}", p.display()))
    }

    /// Drops metric lines logged after `step` (they belong to work the resumed run will redo) and a torn last
    /// line; rewrites the file (atomically) only when something is dropped.
    pub fn truncate_metrics(&self, step: usize) -> Result<()> {
        let p = self.file("metrics.jsonl");
        if !p.exists() {
            return Ok(());
        }
        // the raw lines are kept, so that fields beyond `MetricLine`'s (throughput, diagnostics) survive
        let all = self.metric_records_raw::<MetricLine>()?;
        let kept: Vec<String> = all.iter().filter(|(l, _)| l.step <= step as u64).map(|(_, raw)| raw.clone()).collect();
        let text = std::fs::read_to_string(&p)?;
        if kept.len() != all.len() || kept.len() != text.lines().filter(|l| !l.trim().is_empty()).count() {
            self.write_metrics(&kept)?;
        }
        Ok(())
    }

    /// Writes a checkpoint: the tensors to `checkpoint-<step>.safetensors` (temporary file + rename), then
    /// `checkpoint.json` naming it (the commit point), then removes older tensor files.
    pub fn save_checkpoint(&self, step: usize, config_hash: &str, tensors: &[(String, Tensor)]) -> Result<()> {
        std::fs::create_dir_all(&self.path)?;
        let name = format!("checkpoint-{step}.safetensors");
        let tmp = self.file(&format!(".{name}.tmp{}", std::process::id()));
        Tensor::write_safetensors(tensors, &tmp).map_err(|e| anyhow!("writing checkpoint {}: {e}", tmp.display()))?;
        let bytes = std::fs::read(&tmp).with_context(|| format!("reading back {}", tmp.display()))?;
        std::fs::rename(&tmp, self.file(&name))?;
        let mut params: Vec<TensorInfo> =
            tensors.iter().map(|(n, t)| TensorInfo { name: n.clone(), shape: t.size() }).collect();
        params.sort_by(|a, b| a.name.cmp(&b.name));
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT,
            step,
            config_hash: config_hash.to_string(),
            tensors: name.clone(),
            bytes: bytes.len() as u64,
            content_hash: fnv1a(&bytes),
            params,
        };
        write_atomic(&self.file("checkpoint.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;
        // older tensor files (and the single file of format 1) are no longer referenced
        for e in std::fs::read_dir(&self.path)? {
            let f = e?.file_name().to_string_lossy().into_owned();
            let stale = (f.starts_with("checkpoint-") && f.ends_with(".safetensors") && f != name)
                || f == "checkpoint.safetensors";
            if stale {
                let _ = std::fs::remove_file(self.file(&f));
            }
        }
        Ok(())
    }

    /// The last checkpoint, if any: its step and tensors (on the CPU), after verifying that it is whole (size
    /// and content hash of the tensor file), that it belongs to this configuration (`config_hash`), and that its
    /// tensors are exactly `expected` (names and shapes). Any mismatch is an error that says what differs and
    /// that `--fresh` discards the run.
    pub fn load_checkpoint(
        &self,
        config_hash: &str,
        expected: &[TensorInfo],
    ) -> Result<Option<(usize, BTreeMap<String, Tensor>)>> {
        let meta_path = self.file("checkpoint.json");
        if !meta_path.exists() {
            return Ok(None);
        }
        let bad = |what: String| anyhow!("{}: {what}; pass --fresh to discard this run", meta_path.display());
        let text = std::fs::read_to_string(&meta_path).map_err(|e| bad(format!("unreadable: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if value.get("format").is_none() {
            return Err(bad("a checkpoint in the format of an older repro (no config hash or tensor list)".into()));
        }
        let meta: CheckpointMeta =
            serde_json::from_value(value).map_err(|e| bad(format!("not a checkpoint record: {e}")))?;
        if meta.format != CHECKPOINT_FORMAT {
            return Err(bad(format!("checkpoint format {} (this repro reads {CHECKPOINT_FORMAT})", meta.format)));
        }
        if meta.config_hash != config_hash {
            return Err(bad(format!(
                "the checkpoint was written for another configuration (hash {}, this run's is {config_hash})",
                meta.config_hash
            )));
        }
        if meta.tensors.contains('/') || meta.tensors.contains('\\') || meta.tensors.starts_with('.') {
            return Err(bad(format!("bad tensor file name `{}`", meta.tensors)));
        }
        let tensor_path = self.file(&meta.tensors);
        let bytes =
            std::fs::read(&tensor_path).map_err(|e| bad(format!("{}: cannot read: {e}", tensor_path.display())))?;
        if bytes.len() as u64 != meta.bytes || fnv1a(&bytes) != meta.content_hash {
            return Err(bad(format!(
                "{} is corrupt ({} bytes, hash {}; the record says {} bytes, hash {})",
                tensor_path.display(),
                bytes.len(),
                fnv1a(&bytes),
                meta.bytes,
                meta.content_hash
            )));
        }
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&tensor_path)
            .map_err(|e| bad(format!("{}: unreadable checkpoint: {e}", tensor_path.display())))?
            .into_iter()
            .collect();
        let stored: Vec<TensorInfo> =
            tensors.iter().map(|(n, t)| TensorInfo { name: n.clone(), shape: t.size() }).collect();
        if stored != meta.params {
            return Err(bad(format!("{} does not hold the tensors its record lists", tensor_path.display())));
        }
        let mut want = expected.to_vec();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        if stored != want {
            let names =
                |v: &[TensorInfo]| v.iter().map(|t| (t.name.clone(), t.shape.clone())).collect::<BTreeMap<_, _>>();
            let (have, need) = (names(&stored), names(&want));
            let mut diffs = vec![];
            for (n, s) in &need {
                match have.get(n) {
                    None => diffs.push(format!("lacks `{n}`")),
                    Some(h) if h != s => diffs.push(format!("`{n}` has shape {h:?}, the model needs {s:?}")),
                    _ => {}
                }
            }
            diffs.extend(have.keys().filter(|n| !need.contains_key(*n)).map(|n| format!("has an unknown `{n}`")));
            let more = if diffs.len() > 3 { format!(" (and {} more)", diffs.len() - 3) } else { String::new() };
            diffs.truncate(3);
            return Err(bad(format!("the checkpoint is not of this model: it {}{more}", diffs.join(", "))));
        }
        Ok(Some((meta.step, tensors)))
    }

    /// What the report needs from this run.
    pub fn run_data(&self, seed: u64) -> Result<RunData> {
        let curve =
            self.metrics()?.iter().map(|l| CurvePoint { step: l.step, loss: l.loss, metric: l.metric }).collect();
        let (memory, logged_rate) = super::monitor::memory_points(self)?;
        Ok(match self.result()? {
            Some(r) => RunData {
                seed,
                curve,
                final_metric: r.final_metric,
                by_length: r.by_length,
                by_pairs: r.by_pairs,
                status: r.status,
                tokens_per_s: r.tokens_per_s.or(logged_rate),
                memory,
            },
            None => RunData {
                seed,
                curve,
                final_metric: None,
                by_length: vec![],
                by_pairs: vec![],
                status: "not finished".into(),
                tokens_per_s: logged_rate,
                memory,
            },
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>> {
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(p)?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: unreadable", p.display()))?))
}

/// The git revision of the working tree, or `unknown` outside a checkout.
pub fn git_revision() -> String {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
    let rev = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => return "unknown".into(),
    };
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{rev}-dirty")
    } else {
        rev
    }
}
