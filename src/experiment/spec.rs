//! Experiment files: one YAML file is one study. Parsing is strict (unknown fields are errors), values are
//! validated, and every error names the file, the line and the field, with the closest valid name.
//!
//! Configuration order: the file's base config → `scales.<scale>` overrides → the ablation row's `set`
//! overrides → command-line `--set path=value` (the user's word wins).

use crate::report::data::PlotKind;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// A whole study as written in `experiments/<name>.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// also the report folder: `reports/<name>/`
    pub name: String,
    /// paper key (titans, miras, atlas, tnt, nl)
    pub paper: String,
    #[serde(default)]
    pub description: String,
    /// the paper's numbers for the table or figure being reproduced
    #[serde(default)]
    pub reference: Option<ReferenceSpec>,
    pub task: TaskSpec,
    pub model: ModelSpec,
    pub training: TrainingSpec,
    #[serde(default)]
    pub evaluation: EvalSpec,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// cpu, cuda, cuda:N or auto
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default)]
    pub ablations: Vec<AblationRow>,
    /// a grid of values that expands into rows (`sweep: {training.lr: [1e-3, 3e-3]}`, see `sweep.rs`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<serde_yaml::Mapping>,
    #[serde(default)]
    pub plots: Vec<PlotKind>,
    /// named override sets: `tiny`, `small`, `paper`
    #[serde(default)]
    pub scales: BTreeMap<String, BTreeMap<String, Value>>,
}

fn default_device() -> String {
    "cpu".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    /// e.g. "Table 5"
    pub source: String,
    #[serde(default)]
    pub note: String,
    /// whether a higher paper number is better
    pub higher_is_better: bool,
    /// ablation row name → the paper's number
    pub values: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblationRow {
    pub name: String,
    /// overrides of the base config: `model.memory.momentum: false`
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
}

/// The synthetic or text task. Fields not used by a task keep their defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub kind: TaskKind,
    /// vocabulary size of synthetic tasks (lm-char uses bytes: 256)
    #[serde(default = "d_vocab")]
    pub vocab: usize,
    /// training sequence length
    #[serde(default = "d_seq_len")]
    pub seq_len: usize,
    /// key-value pairs per sequence (mqar)
    #[serde(default = "d_pairs")]
    pub num_pairs: usize,
    /// data tokens to copy (selective-copy)
    #[serde(default = "d_copy")]
    pub num_tokens: usize,
    /// evaluation haystack lengths (niah)
    #[serde(default)]
    pub lengths: Vec<usize>,
    /// numbers of stored pairs (capacity)
    #[serde(default)]
    pub pairs: Vec<usize>,
    /// key/value width of the memory probed by the capacity task
    #[serde(default = "d_width")]
    pub width: usize,
    /// capacity: how many times the pairs are written in sequence before the read-out (1 = one pass; many
    /// passes drive a memory toward the least-squares fit of the pairs, the capacity ATLAS' Prop. 1–2 bound)
    #[serde(default = "d_passes")]
    pub passes: usize,
}
fn d_passes() -> usize {
    1
}
fn d_vocab() -> usize {
    64
}
fn d_seq_len() -> usize {
    64
}
fn d_pairs() -> usize {
    8
}
fn d_copy() -> usize {
    8
}
fn d_width() -> usize {
    32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// multi-query associative recall
    Mqar,
    /// single needle in a haystack, evaluated at several lengths
    Niah,
    /// selective copying
    SelectiveCopy,
    /// key-value memorization capacity, no outer training
    Capacity,
    /// character-level language modelling on the King James Bible
    LmChar,
}

pub use crate::models::spec::{AttentionSpec, MacCombine, MemorySpec, ModelKind, ModelSpec, Positions};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    pub steps: usize,
    pub batch_size: usize,
    /// peak learning rate of AdamW
    pub lr: f64,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    /// linear warm-up steps before the cosine decay
    #[serde(default)]
    pub warmup: usize,
    /// global gradient-norm clip (0 disables)
    #[serde(default = "d_clip")]
    pub clip: f64,
    /// save a checkpoint every this many steps (resume point)
    #[serde(default = "d_ckpt")]
    pub checkpoint_every: usize,
    /// log the loss every this many steps
    #[serde(default = "d_log")]
    pub log_every: usize,
    /// training in stages inside one run, each with its own overrides and steps (TNT §4.2; `super::stages`)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<super::stages::StageSpec>,
    /// `adamw` (default), `sgd`, `momentum`, `delta-momentum`, `muon`, `m3`, `dmgd` (see `crate::optim`);
    /// left out of the written configuration when it is the default, so AdamW runs keep their hashes
    #[serde(default, skip_serializing_if = "crate::optim::OptimizerSpec::is_default")]
    pub optimizer: crate::optim::OptimizerSpec,
}
fn d_wd() -> f64 {
    0.1
}
fn d_clip() -> f64 {
    1.0
}
fn d_ckpt() -> usize {
    50
}
fn d_log() -> usize {
    10
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// evaluation batches at the end of training
    #[serde(default = "d_eval_batches")]
    pub batches: usize,
    #[serde(default = "d_eval_bs")]
    pub batch_size: usize,
    /// also evaluate every this many steps (0: only at the end)
    #[serde(default)]
    pub every: usize,
}
fn d_eval_batches() -> usize {
    4
}
fn d_eval_bs() -> usize {
    32
}
impl Default for EvalSpec {
    fn default() -> Self {
        Self { batches: d_eval_batches(), batch_size: d_eval_bs(), every: 0 }
    }
}

/// A configuration error, located in its file.
pub(crate) fn located(file: &Path, text: &str, path: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    match locate(text, path) {
        Some(line) => anyhow!("{}:{line}: {path}: {msg}", file.display()),
        None => anyhow!("{}: {path}: {msg}", file.display()),
    }
}

/// The 1-based line of a dotted path (`training.lr`) in a YAML text, following indentation.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let mut start = 0usize;
    let mut min_indent: Option<usize> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    for seg in path.split('.') {
        found = None;
        for (i, l) in lines.iter().enumerate().skip(start) {
            let indent = l.len() - l.trim_start().len();
            let t = l.trim_start().trim_start_matches("- ");
            if min_indent.is_some_and(|m| indent <= m) && !t.is_empty() && i > start {
                break;
            }
            if t.starts_with(&format!("{seg}:")) {
                found = Some(i);
                min_indent = Some(indent);
                start = i + 1;
                break;
            }
        }
        found?;
    }
    found.map(|i| i + 1)
}

/// Adds "did you mean" to serde's unknown-field / unknown-variant messages.
fn suggest(msg: &str) -> String {
    let grab = |s: &str| -> Option<(String, Vec<String>)> {
        let (head, tail) = s.split_once("expected one of ")?;
        let bad = head.split('`').nth(1)?.to_string();
        let names: Vec<String> = tail.split('`').skip(1).step_by(2).map(|x| x.to_string()).collect();
        Some((bad, names))
    };
    if let Some((bad, names)) = grab(msg) {
        if let Some(best) = names
            .iter()
            .map(|n| (strsim::jaro_winkler(&bad, n), n))
            .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
            .filter(|(s, _)| *s > 0.7)
        {
            return format!("{msg} (did you mean `{}`?)", best.1);
        }
    }
    msg.to_string()
}

/// [`suggest`] for the sweep's field errors.
pub(crate) fn suggest_field(msg: &str) -> String {
    suggest(msg)
}

fn yaml_error(file: &Path, context: &str, e: serde_yaml::Error) -> anyhow::Error {
    let msg = suggest(&e.to_string());
    match e.location() {
        Some(loc) => anyhow!("{}:{}: {context}{msg}", file.display(), loc.line()),
        None => anyhow!("{}: {context}{msg}", file.display()),
    }
}

/// Sets `a.b.c = value` inside a YAML mapping, creating intermediate mappings.
pub fn set_path(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        bail!("bad override path `{path}`");
    }
    let mut cur = root;
    for (i, seg) in segs.iter().enumerate() {
        let map = cur.as_mapping_mut().ok_or_else(|| anyhow!("`{}` is not a mapping", segs[..i].join(".")))?;
        let key = Value::String(seg.to_string());
        if i == segs.len() - 1 {
            map.insert(key, value);
            return Ok(());
        }
        if !map.contains_key(&key) {
            map.insert(key.clone(), Value::Mapping(Default::default()));
        }
        cur = map.get_mut(&key).unwrap();
    }
    Ok(())
}

/// Parses `path=value` from the command line (the value is YAML: `128`, `false`, `mac`).
pub fn parse_set(s: &str) -> Result<(String, Value)> {
    let (k, v) = s.split_once('=').ok_or_else(|| anyhow!("bad --set `{s}` (expected path=value)"))?;
    let v: Value = serde_yaml::from_str(v).map_err(|e| anyhow!("--set {k}: bad value `{v}`: {e}"))?;
    Ok((k.trim().to_string(), v))
}

/// A study loaded from disk: the experiment as written, the raw YAML, and the file's text for locating errors.
#[derive(Debug, Clone)]
pub struct Study {
    pub file: std::path::PathBuf,
    pub text: String,
    pub spec: Experiment,
    raw: Value,
    pub scale: String,
    /// `--set` overrides: (path, value, the argument as typed)
    cli_sets: Vec<(String, Value, String)>,
}

/// Where an overridden value of a resolved configuration came from, so that an error blames the override
/// (the scale preset, the row's `set`, or `--set`) rather than a line of the base config that it replaced.
#[derive(Debug, Clone)]
enum Origin {
    Scale { scale: String, path: String },
    Row { row: String, path: String },
    Cli { arg: String },
}

/// Whether an override of `set` covers the configuration value at `path` (the same key, a mapping above
/// it, or a key below it).
pub(crate) fn covers(set: &str, path: &str) -> bool {
    set == path || path.starts_with(&format!("{set}.")) || set.starts_with(&format!("{path}."))
}

/// The folder a study writes to is `<out>/<name>/`: the name must be one plain path component.
pub fn check_study_name(name: &str) -> std::result::Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    if name.is_empty() {
        return Err("is empty; it names the report folder <out>/<name>/".into());
    }
    if name.starts_with('.') || !name.chars().all(ok_char) {
        return Err(format!(
            "`{name}` is not a plain folder name: use letters, digits, `-`, `_` and `.`, not starting with `.` \
             (it names the report folder <out>/<name>/)"
        ));
    }
    Ok(())
}

/// The 1-based line of an ablation row's `name:` (block or flow style), if it can be found.
fn row_line(text: &str, row: &str) -> Option<usize> {
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
    let exact = text.lines().position(|l| {
        l.split("name:").skip(1).any(|rest| {
            let value = rest.split([',', '}']).next().unwrap_or("");
            unquote(value) == row
        })
    });
    exact.or_else(|| text.lines().position(|l| l.contains("name:") && l.contains(row))).map(|i| i + 1)
}

/// The keys that a row or `--set` may not override (they shape the study itself).
const STUDY_KEYS: [&str; 6] = ["name", "ablations", "scales", "reference", "plots", "sweep"];

impl Study {
    /// Reads and validates an experiment file, applying a scale preset and command-line overrides. Every
    /// scale preset the file declares is validated too (with every row), not only the one selected.
    pub fn load(file: &Path, scale: &str, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| anyhow!("{}: cannot read: {e}", file.display()))?;
        let raw: Value = serde_yaml::from_str(&text).map_err(|e| yaml_error(file, "", e))?;
        // the scale first: a wrong --scale is the user's word, whatever else the file has
        let declared: Vec<&str> = match raw.get("scales").and_then(|s| s.as_mapping()) {
            Some(m) => m.keys().filter_map(|k| k.as_str()).collect(),
            None => vec![],
        };
        if !(declared.contains(&scale) || scale == "tiny") {
            let known = if declared.is_empty() {
                "it declares no `scales:`, so only the default `tiny` (its base configuration) exists".to_string()
            } else {
                let tiny = if declared.contains(&"tiny") { "" } else { ", and tiny (its base configuration)" };
                format!("known scales: {}{tiny}", declared.join(", "))
            };
            bail!("{}: unknown --scale `{scale}` ({known})", file.display());
        }
        let mut spec: Experiment = serde_yaml::from_str(&text).map_err(|e| yaml_error(file, "", e))?;
        super::sweep::expand(&mut spec, file, &text, &raw)?;
        check_study_name(&spec.name).map_err(|m| located(file, &text, "name", m))?;
        if spec.ablations.is_empty() {
            return Err(located(file, &text, "ablations", "needs at least one row"));
        }
        let at_row = |row: &str, msg: String| match row_line(&text, row) {
            Some(l) => anyhow!("{}:{l}: ablations: {msg}", file.display()),
            None => located(file, &text, "ablations", msg),
        };
        let mut names = std::collections::BTreeSet::new();
        // run folders are `runs/<slug>/`: two rows must not share one (compared without case, for file
        // systems that ignore it)
        let mut folders: BTreeMap<String, String> = BTreeMap::new();
        for r in &spec.ablations {
            if r.name.trim().is_empty() {
                return Err(located(file, &text, "ablations", "a row has an empty name"));
            }
            if !names.insert(r.name.clone()) {
                return Err(at_row(&r.name, format!("row name `{}` appears twice", r.name)));
            }
            let folder = super::store::slug(&r.name);
            if let Some(first) = folders.insert(folder.to_lowercase(), r.name.clone()) {
                return Err(at_row(
                    &r.name,
                    format!(
                        "rows `{first}` and `{}` would share the run folder runs/{folder}/ (folder names keep \
                         letters, digits, `-` and `_`, and ignore case); rename one of them",
                        r.name
                    ),
                ));
            }
        }
        if let Some(re) = &spec.reference {
            for k in re.values.keys() {
                if !names.contains(k) {
                    return Err(located(file, &text, "reference.values", format!("`{k}` is not an ablation row name")));
                }
            }
        }
        let cli_sets = sets.iter().map(|s| parse_set(s).map(|(p, v)| (p, v, s.clone()))).collect::<Result<Vec<_>>>()?;
        let study = Self { file: file.to_path_buf(), text, spec, raw, scale: scale.to_string(), cli_sets };
        // the base, then every row, must resolve to a valid configuration before anything trains
        study.check_all_rows()?;
        // every other declared preset too (without --set, which is meant for the selected scale)
        for other in study.spec.scales.keys().filter(|s| *s != scale) {
            let s = Self { scale: other.clone(), cli_sets: vec![], ..study.clone() };
            s.check_all_rows().map_err(|e| anyhow!("with --scale {other}: {e:#}"))?;
        }
        Ok(study)
    }

    fn check_all_rows(&self) -> Result<()> {
        self.base_config()?;
        for r in &self.spec.ablations {
            self.row_config(&r.name)?;
        }
        Ok(())
    }

    /// The base configuration after the scale preset and `--set` (no row overrides).
    pub fn base_config(&self) -> Result<Experiment> {
        self.resolve(None)
    }

    /// The configuration of one ablation row.
    pub fn row_config(&self, row: &str) -> Result<Experiment> {
        self.resolve(Some(row))
    }

    /// The overrides that apply to a row (or to the base when `row` is None), in the order they apply.
    fn overrides(&self, row: Option<&str>) -> Result<Vec<(String, Value, Origin)>> {
        let mut out = vec![];
        if let Some(over) = self.spec.scales.get(&self.scale) {
            for (p, val) in over {
                out.push((p.clone(), val.clone(), Origin::Scale { scale: self.scale.clone(), path: p.clone() }));
            }
        }
        if let Some(name) = row {
            let r = self.spec.ablations.iter().find(|r| r.name == name).ok_or_else(|| anyhow!("no row `{name}`"))?;
            for (p, val) in &r.set {
                out.push((p.clone(), val.clone(), Origin::Row { row: name.to_string(), path: p.clone() }));
            }
        }
        for (p, val, arg) in &self.cli_sets {
            out.push((p.clone(), val.clone(), Origin::Cli { arg: arg.clone() }));
        }
        for (p, _, origin) in &out {
            if STUDY_KEYS.contains(&p.split('.').next().unwrap_or("")) {
                return Err(self.blame(origin, &format!("`{p}` cannot be overridden")));
            }
        }
        Ok(out)
    }

    /// An error caused by an override, located at the override itself.
    fn blame(&self, origin: &Origin, msg: &str) -> anyhow::Error {
        let file = self.file.display();
        match origin {
            Origin::Cli { arg } => anyhow!("--set {arg}: {msg}"),
            Origin::Row { row, path } => match row_line(&self.text, row) {
                Some(l) => anyhow!("{file}:{l}: ablation row `{row}`, set `{path}`: {msg}"),
                None => anyhow!("{file}: ablation row `{row}`, set `{path}`: {msg}"),
            },
            Origin::Scale { scale, path } => {
                let start = locate(&self.text, &format!("scales.{scale}"));
                let line = start.map(|s| {
                    self.text
                        .lines()
                        .enumerate()
                        .skip(s - 1)
                        .find(|(_, l)| l.contains(&format!("{path}:")))
                        .map_or(s, |x| x.0 + 1)
                });
                match line {
                    Some(l) => anyhow!("{file}:{l}: scales.{scale}, `{path}`: {msg}"),
                    None => anyhow!("{file}: scales.{scale}, `{path}`: {msg}"),
                }
            }
        }
    }

    fn resolve(&self, row: Option<&str>) -> Result<Experiment> {
        let overrides = self.overrides(row)?;
        let apply = |v: &mut Value, (path, value, origin): &(String, Value, Origin)| -> Result<()> {
            set_path(v, path, value.clone()).map_err(|e| self.blame(origin, &e.to_string()))
        };
        let mut v = self.raw.clone();
        for o in &overrides {
            apply(&mut v, o)?;
        }
        let context = match row {
            Some(r) => format!("ablation row `{r}`: "),
            None => String::new(),
        };
        let e: Experiment = match serde_yaml::from_value(v) {
            Ok(e) => e,
            Err(err) => {
                let msg = suggest(&err.to_string());
                // overrides lose line numbers: blame the last override that is wrong on its own (the base
                // config parsed, so the override is), else point at the row
                for o in overrides.iter().rev() {
                    let mut single = self.raw.clone();
                    apply(&mut single, o)?;
                    if let Err(e1) = serde_yaml::from_value::<Experiment>(single) {
                        return Err(self.blame(&o.2, &suggest(&e1.to_string())));
                    }
                }
                return Err(match row.and_then(|r| row_line(&self.text, r)) {
                    Some(l) => anyhow!("{}:{l}: {context}{msg}", self.file.display()),
                    None => anyhow!("{}: {context}{msg}", self.file.display()),
                });
            }
        };
        self.validate(&e, &context, &overrides)?;
        Ok(e)
    }

    /// Value checks serde cannot express.
    fn validate(&self, e: &Experiment, context: &str, overrides: &[(String, Value, Origin)]) -> Result<()> {
        // blame the last override that set one of `paths`, else the base file's line of the first
        let blame = |paths: &[&str], msg: &str| -> anyhow::Error {
            for (set, _, origin) in overrides.iter().rev() {
                if let Some(p) = paths.iter().find(|p| covers(set, p)) {
                    return self.blame(origin, &format!("{p}: {msg}"));
                }
            }
            located(&self.file, &self.text, paths[0], format!("{context}{msg}"))
        };
        let f = |path: &str, msg: &str| blame(&[path], msg);
        let t = &e.training;
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(f("training.lr", &format!("must be a positive number, got {}", t.lr)));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(f("training.weight_decay", "must be >= 0"));
        }
        if !(t.clip.is_finite() && t.clip >= 0.0) {
            return Err(f("training.clip", "must be >= 0 (0 disables clipping)"));
        }
        if t.batch_size == 0 {
            return Err(f("training.batch_size", "must be at least 1"));
        }
        if t.checkpoint_every == 0 {
            return Err(f("training.checkpoint_every", "must be at least 1"));
        }
        if t.log_every == 0 {
            return Err(f("training.log_every", "must be at least 1"));
        }
        if let Err((field, msg)) = t.optimizer.validate() {
            return Err(f(&format!("training.optimizer.{field}"), &format!("{}: {msg}", t.optimizer.name())));
        }
        if e.task.kind != TaskKind::Capacity && t.steps == 0 {
            return Err(f("training.steps", "must be at least 1"));
        }
        super::stages::validate(e).map_err(|(path, msg)| f(&path, &msg))?;
        let m = &e.model;
        if m.dim == 0 || m.heads == 0 || !m.dim.is_multiple_of(m.heads) {
            return Err(blame(
                &["model.heads", "model.dim"],
                &format!("dim {} must be a positive multiple of heads {}", m.dim, m.heads),
            ));
        }
        if m.layers == 0 {
            return Err(f("model.layers", "must be at least 1"));
        }
        if m.segment_len == 0 {
            return Err(f("model.segment_len", "must be at least 1"));
        }
        if m.window == 0 {
            return Err(f("model.window", "must be at least 1"));
        }
        if m.memory.chunk_size == 0 {
            return Err(f("model.memory.chunk_size", "must be at least 1 (1 = sequential)"));
        }
        if m.memory.max_lr.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
            return Err(f("model.memory.max_lr", "must be a positive number"));
        }
        if let Some(c) = &m.cms {
            if let Err((field, msg)) = c.validate() {
                return Err(f(&format!("model.cms.{field}"), &msg));
            }
            if m.kind == ModelKind::Mac && !(c.chunk() as usize).is_multiple_of(m.segment_len) {
                return Err(blame(
                    &["model.cms.periods", "model.segment_len"],
                    &format!(
                        "with mac, the smallest CMS period (the in-context chunk, {}) must be a multiple of segment_len \
                         ({}) so that chunks cut no segment",
                        c.chunk(),
                        m.segment_len
                    ),
                ));
            }
        }
        if let Err(err) = crate::memories::build(&m.memory, m.dim / m.heads) {
            let field = crate::memories::field_of(&err.to_string());
            return Err(f(&format!("model.memory{field}"), &err.to_string()));
        }
        let k = &e.task;
        match k.kind {
            TaskKind::Mqar => {
                if k.vocab < 4 || 2 * k.num_pairs + 1 > k.seq_len || k.num_pairs == 0 {
                    return Err(blame(
                        &["task.num_pairs", "task.seq_len", "task.vocab"],
                        "mqar needs num_pairs >= 1, 2·num_pairs < seq_len and vocab >= 4",
                    ));
                }
            }
            TaskKind::Niah => {
                if k.lengths.is_empty() || k.lengths.iter().any(|&l| l < 8) {
                    return Err(f("task.lengths", "niah needs a non-empty list of evaluation lengths >= 8"));
                }
                if k.vocab < 8 {
                    return Err(f("task.vocab", "niah needs vocab >= 8"));
                }
                if k.seq_len < 8 {
                    return Err(f("task.seq_len", "niah trains at seq_len, which must be at least 8"));
                }
            }
            TaskKind::SelectiveCopy => {
                if k.num_tokens == 0 || 2 * k.num_tokens + 1 > k.seq_len || k.vocab < 4 {
                    return Err(blame(
                        &["task.num_tokens", "task.seq_len", "task.vocab"],
                        "selective-copy needs num_tokens >= 1, 2·num_tokens < seq_len and vocab >= 4",
                    ));
                }
            }
            TaskKind::Capacity => {
                if k.pairs.is_empty() || k.pairs.contains(&0) {
                    return Err(f("task.pairs", "capacity needs a non-empty list of positive pair counts"));
                }
                if k.width == 0 {
                    return Err(f("task.width", "must be at least 1 (the key/value width of the probed memory)"));
                }
                if k.passes == 0 {
                    return Err(f("task.passes", "must be at least 1 (how many times the pairs are written)"));
                }
            }
            TaskKind::LmChar => {
                if k.seq_len < 2 {
                    return Err(f("task.seq_len", "must be at least 2"));
                }
            }
        }
        if k.kind != TaskKind::Capacity {
            // the capacity task has no evaluation batches; every other metric is a mean over them
            if e.evaluation.batches == 0 {
                return Err(f("evaluation.batches", "must be at least 1 (the metric is a mean over them)"));
            }
            if e.evaluation.batch_size == 0 {
                return Err(f("evaluation.batch_size", "must be at least 1"));
            }
        }
        if e.seeds.is_empty() {
            return Err(f("seeds", "needs at least one seed"));
        }
        crate::device::parse_device_name(&e.device).map_err(|err| f("device", &err.to_string()))?;
        Ok(())
    }
}
