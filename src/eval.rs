//! `repro eval`: runs one memory rule on tensors a user supplies in a safetensors file and writes every output
//! and final state, so that an outside (PyTorch, JAX, …) implementation can be checked against ours.
//!
//! Nothing here is written per rule: a rule family (`crate::memories::eval`) turns `--param`s into a
//! [`MemoryRule`], and the rule's own description gives the tensors — `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`,
//! one `[B, H, T]` tensor per gate, one `[B, H, …]` tensor per state (`<state>0` or `<state>_0` in, `<state>_final`
//! out) — their symbolic shapes for `--describe`, the validation of the inputs, and both implementations.

use crate::device::device_name;
pub use crate::memories::eval::{BuildRule, ParamSpec, RuleFamily};
use crate::memory::rule::{MemoryRule, StateInit};
use crate::memory::ReadMode;
use crate::tensor::{from_tch, kind_name, to_tch, Arr};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Which implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Impl {
    /// the f64 ndarray reference, token by token
    Reference,
    /// the tch implementation on the chosen device and dtype
    Torch,
}

/// A declared tensor: name, symbolic shape, whether it may be omitted (then it is zeros), meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<String>,
    pub optional: bool,
    pub meaning: String,
}

/// A family with its parameters resolved: the concrete rule and its tensors.
pub struct Rule {
    pub family: RuleFamily,
    pub params: BTreeMap<String, String>,
    pub rule: Arc<dyn MemoryRule>,
    pub read: ReadMode,
}

pub fn all_rules() -> Vec<RuleFamily> {
    crate::memories::eval::families()
}

/// The family named `name`.
pub fn find_family(name: &str) -> Result<RuleFamily> {
    let rules = all_rules();
    let known = rules.iter().map(|r| r.name).collect::<Vec<_>>().join(", ");
    rules.into_iter().find(|r| r.name == name).with_context(|| format!("unknown rule `{name}` (known rules: {known})"))
}

/// The rule `name` with the given `--param`s (unknown names are errors; defaults fill the rest).
pub fn find_rule(name: &str, params: &[(String, String)]) -> Result<Rule> {
    let family = find_family(name)?;
    let mut values: BTreeMap<String, String> =
        family.params.iter().map(|p| (p.name.to_string(), p.default.to_string())).collect();
    for (k, v) in params {
        if !values.contains_key(k) {
            let known: Vec<&str> = family.params.iter().map(|p| p.name).collect();
            bail!("unknown parameter `{k}` for rule {} (known: {})", family.name, known.join(", "));
        }
        values.insert(k.clone(), v.clone());
    }
    let given = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let (rule, read) = (family.build)(&values).with_context(|| format!("rule {} with --param {given}", family.name))?;
    Ok(Rule { family, params: values, rule, read })
}

/// `m` → `m0`, `w1` → `w1_0`.
fn input_name(state: &str) -> String {
    if state.len() == 1 {
        format!("{state}0")
    } else {
        format!("{state}_0")
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Rule {
    /// The input tensors (states of learned or constant initialisation are required; zero-initialised ones
    /// are optional).
    pub fn inputs(&self) -> Vec<TensorSpec> {
        let mut v = vec![
            TensorSpec {
                name: "k".into(),
                dims: strings(&["B", "H", "T", "d_k"]),
                optional: false,
                meaning: "keys k_t".into(),
            },
            TensorSpec {
                name: "v".into(),
                dims: strings(&["B", "H", "T", "d_v"]),
                optional: false,
                meaning: "values v_t".into(),
            },
            TensorSpec {
                name: "q".into(),
                dims: strings(&["B", "H", "T", "d_k"]),
                optional: false,
                meaning: "queries q_t".into(),
            },
        ];
        for g in self.rule.gates() {
            let pinned = g.pinned.map(|c| format!("; the models pin it to {c}")).unwrap_or_default();
            v.push(TensorSpec {
                name: g.name.into(),
                dims: strings(&["B", "H", "T"]),
                optional: false,
                meaning: format!("{} (models: in ({}, {}){pinned})", g.meaning, g.lo, g.hi),
            });
        }
        for s in self.rule.state(0, 0) {
            let mut dims = strings(&["B", "H"]);
            dims.extend(s.dims.iter().cloned());
            v.push(TensorSpec {
                name: input_name(&s.name),
                dims,
                optional: s.init == StateInit::Zeros,
                meaning: format!("initial {}", s.meaning),
            });
        }
        v
    }
    /// The output tensors: `y` and every final state.
    pub fn outputs(&self) -> Vec<TensorSpec> {
        let mut v = vec![TensorSpec {
            name: "y".into(),
            dims: strings(&["B", "H", "T", "d_v"]),
            optional: false,
            meaning: format!("retrieved y_t ({})", self.read.name()),
        }];
        for s in self.rule.state(0, 0) {
            let mut dims = strings(&["B", "H"]);
            dims.extend(s.dims.iter().cloned());
            v.push(TensorSpec {
                name: format!("{}_final", s.name),
                dims,
                optional: false,
                meaning: format!("final {}", s.meaning),
            });
        }
        v
    }
}

fn shape_text(dims: &[String]) -> String {
    format!("[{}]", dims.join(", "))
}

/// The `--describe` text: tensors with shapes, parameters with their values, outputs.
pub fn describe(rule: &Rule) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {}\nrule: {}\n\ninputs (safetensors, f32 or f64):",
        rule.family.name,
        rule.family.summary,
        rule.rule.name()
    );
    for t in rule.inputs() {
        let opt = if t.optional { " (optional; zeros if absent)" } else { "" };
        let _ = writeln!(s, "  {:8} {:22} {}{}", t.name, shape_text(&t.dims), t.meaning, opt);
    }
    let _ = writeln!(s, "\nparameters (--param name=value; values are YAML):");
    for p in rule.family.params {
        let _ = writeln!(s, "  {:12} default {:24} {} (now {})", p.name, p.default, p.meaning, rule.params[p.name]);
    }
    let _ = writeln!(s, "\noutputs:");
    for t in rule.outputs() {
        let _ = writeln!(s, "  {:8} {:22} {}", t.name, shape_text(&t.dims), t.meaning);
    }
    s
}

/// Validated inputs: every tensor as an f64 array (omitted optional ones as zeros) in the order of
/// [`Rule::inputs`], and the bound sizes.
pub struct RuleInputs {
    pub arrays: Vec<Arr>,
    pub sizes: HashMap<String, usize>,
}

/// Checks names, dtypes and shapes of the given tensors against the rule and binds the size symbols; every
/// state must have the shape the rule gives for the bound `d_k`, `d_v`.
pub fn validate(rule: &Rule, tensors: Vec<(String, Tensor)>) -> Result<RuleInputs> {
    let specs = rule.inputs();
    let mut given: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, t) in tensors {
        if !specs.iter().any(|s| s.name == name) {
            let expected: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!("unexpected tensor `{name}` for rule {} (expected: {})", rule.family.name, expected.join(", "));
        }
        match t.kind() {
            Kind::Float | Kind::Double => {}
            k => bail!("tensor `{name}` has dtype {k:?}; expected f32 or f64"),
        }
        given.insert(name, t);
    }
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let mut arrays: BTreeMap<String, Arr> = BTreeMap::new();
    for spec in &specs {
        let Some(t) = given.get(&spec.name) else {
            if spec.optional {
                continue;
            }
            bail!("missing tensor `{}` {} ({})", spec.name, shape_text(&spec.dims), spec.meaning);
        };
        let got: Vec<i64> = t.size();
        if got.len() != spec.dims.len() {
            bail!(
                "tensor `{}` has shape {:?}; expected {} (rank {})",
                spec.name,
                got,
                shape_text(&spec.dims),
                spec.dims.len()
            );
        }
        for (d, (sym, &n)) in spec.dims.iter().zip(got.iter()).enumerate() {
            let n = n as usize;
            if n == 0 {
                // an empty batch, head, sequence or width: nothing to compute, and index arithmetic on it panics
                bail!(
                    "tensor `{}` has shape {:?}: dimension {d} ({sym}) is 0; every size must be at least 1",
                    spec.name,
                    got
                );
            }
            match sizes.get(sym) {
                Some(&bound) if bound != n => bail!(
                    "tensor `{}` has shape {:?}; dimension {d} ({sym}) is {n} but other tensors give {sym} = {bound}",
                    spec.name,
                    got
                ),
                _ => {
                    sizes.insert(sym.clone(), n);
                }
            }
        }
        arrays.insert(spec.name.clone(), from_tch(t)?);
    }
    let (d_k, d_v) = (sizes["d_k"], sizes["d_v"]);
    rule.rule.validate_dims(d_k, d_v).with_context(|| format!("rule {}", rule.family.name))?;
    let (b, h) = (sizes["B"], sizes["H"]);
    let states = rule.rule.state(d_k, d_v);
    let mut out = vec![];
    for spec in &specs {
        let state = states.iter().find(|s| input_name(&s.name) == spec.name);
        let expected: Option<Vec<usize>> = state.map(|s| [vec![b, h], s.shape.clone()].concat());
        match arrays.remove(&spec.name) {
            Some(a) => {
                if let Some(e) = expected {
                    if a.shape() != e.as_slice() {
                        bail!(
                            "tensor `{}` has shape {:?}; this rule needs {:?} for d_k = {d_k}, d_v = {d_v}",
                            spec.name,
                            a.shape(),
                            e
                        );
                    }
                }
                out.push(a);
            }
            None => out.push(Arr::zeros(expected.expect("only states are optional"))),
        }
    }
    Ok(RuleInputs { arrays: out, sizes })
}

/// Parses `name=value`.
pub fn parse_param(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => bail!("bad --param `{s}` (expected name=value)"),
    }
}

/// Runs the rule on validated inputs: `y` and the final states, as f64 arrays (order of [`Rule::outputs`]).
pub fn run(rule: &Rule, x: &RuleInputs, imp: Impl, device: Device, kind: Kind) -> Result<Vec<Arr>> {
    let n_gates = rule.rule.gates().len();
    let a = &x.arrays;
    match imp {
        Impl::Reference => {
            let inputs = crate::memory::batched::RuleInputs {
                k: a[0].clone(),
                v: a[1].clone(),
                q: a[2].clone(),
                gates: a[3..3 + n_gates].to_vec(),
                state: a[3 + n_gates..].to_vec(),
            };
            let (y, st) = crate::memory::batched::reference_batched(rule.rule.as_ref(), &inputs, rule.read);
            Ok([vec![y], st].concat())
        }
        Impl::Torch => {
            let t: Vec<Tensor> = a.iter().map(|x| to_tch(x, kind, device)).collect();
            let (y, st) =
                tch::no_grad(|| crate::memory::batched::torch_forward(rule.rule.as_ref(), &t, n_gates, rule.read));
            let mut out = vec![from_tch(&y)?];
            for s in &st {
                out.push(from_tch(s)?);
            }
            Ok(out)
        }
    }
}

/// Reads inputs, runs the rule, writes the outputs (in `out_kind`). Returns a one-line summary.
pub fn run_file(rule: &Rule, inputs: &Path, out: &Path, imp: Impl, device: Device, kind: Kind) -> Result<String> {
    if !inputs.exists() {
        bail!("input file {} does not exist", inputs.display());
    }
    if out.is_dir() {
        bail!(
            "--out {}: is a folder; name the output file, e.g. {}",
            out.display(),
            out.join("outputs.safetensors").display()
        );
    }
    let tensors = Tensor::read_safetensors(inputs)
        .map_err(|e| anyhow::anyhow!("{}: not a readable safetensors file: {e}", inputs.display()))?;
    let ri = validate(rule, tensors)?;
    let outs = run(rule, &ri, imp, device, kind)?;
    let named: Vec<(String, Tensor)> =
        rule.outputs().iter().zip(outs.iter()).map(|(s, a)| (s.name.clone(), to_tch(a, kind, Device::Cpu))).collect();
    if let Some(dir) = out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let tmp = out.with_extension("safetensors.tmp");
    Tensor::write_safetensors(&named, &tmp).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    std::fs::rename(&tmp, out)?;
    let where_ = match imp {
        Impl::Reference => "reference (ndarray f64)".to_string(),
        Impl::Torch => format!("torch on {} in {}", device_name(device), kind_name(kind)),
    };
    Ok(format!(
        "{}: ran the {where_}; wrote {} to {}",
        rule.family.name,
        named.iter().map(|o| o.0.as_str()).collect::<Vec<_>>().join(", "),
        out.display()
    ))
}
