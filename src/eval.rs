//! `repro eval`: runs one implemented update rule on tensors a user supplies in a safetensors file and
//! writes every output and the final state, so that an outside (PyTorch, JAX, …) implementation can be
//! checked against ours. Each rule declares its tensors with symbolic shapes (`[B, H, T, d_k]`); the inputs
//! are validated against them before anything runs.

use crate::device::device_name;
use crate::tensor::{from_tch, kind_name, to_tch, Arr};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
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
#[derive(Debug, Clone, Copy)]
pub struct TensorSpec {
    pub name: &'static str,
    pub dims: &'static [&'static str],
    pub optional: bool,
    pub meaning: &'static str,
}

/// A scalar option of a rule, passed as `--param name=value`.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Validated inputs: tensors as f64 arrays (missing optional ones filled with zeros), the bound sizes,
/// and the parameters.
pub struct RuleInputs {
    pub arrays: BTreeMap<String, Arr>,
    /// the tensors the file supplied (the others in `arrays` are zeros standing in for omitted ones)
    pub given: BTreeSet<String>,
    pub sizes: HashMap<String, usize>,
    pub params: BTreeMap<String, String>,
}

impl RuleInputs {
    pub fn get(&self, name: &str) -> &Arr {
        &self.arrays[name]
    }
    /// Whether the input file supplied this tensor (rather than it defaulting to zeros).
    pub fn has(&self, name: &str) -> bool {
        self.given.contains(name)
    }
    /// Requires an optional tensor that the chosen parameters read, instead of its silent zeros.
    pub fn require(&self, name: &str, why: &str) -> Result<()> {
        if !self.has(name) {
            bail!("missing tensor `{name}`: {why} (omitted, it would silently be zeros)");
        }
        Ok(())
    }
    pub fn param_f64(&self, name: &str) -> Result<f64> {
        let s = &self.params[name];
        let x: f64 = s.parse().map_err(|_| anyhow::anyhow!("--param {name}={s}: not a number"))?;
        if !x.is_finite() {
            bail!("--param {name}={s}: must be finite");
        }
        Ok(x)
    }
    pub fn param_str(&self, name: &str) -> &str {
        &self.params[name]
    }
}

/// An update rule reachable through `repro eval`.
pub struct Rule {
    pub name: &'static str,
    pub summary: &'static str,
    pub inputs: &'static [TensorSpec],
    pub outputs: &'static [TensorSpec],
    pub params: &'static [ParamSpec],
    /// runs the rule; returns the outputs in the order of `outputs`, as f64 arrays
    pub run: fn(&RuleInputs, Impl, Device, Kind) -> Result<Vec<Arr>>,
}

pub fn all_rules() -> Vec<Rule> {
    let mut v = vec![];
    v.extend(crate::titans::eval_rules());
    v.extend(crate::miras::eval_rules());
    v
}

pub fn find_rule(name: &str) -> Result<Rule> {
    let rules = all_rules();
    let names: Vec<&str> = rules.iter().map(|r| r.name).collect();
    let known = names.join(", ");
    rules.into_iter().find(|r| r.name == name).with_context(|| format!("unknown rule `{name}` (known rules: {known})"))
}

fn shape_text(dims: &[&str]) -> String {
    format!("[{}]", dims.join(", "))
}

/// The `--describe` text: tensors with shapes, parameters with defaults, outputs.
pub fn describe(rule: &Rule) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}\n\ninputs (safetensors, f32 or f64):", rule.name, rule.summary);
    for t in rule.inputs {
        let opt = if t.optional { " (optional; zeros if absent)" } else { "" };
        let _ = writeln!(s, "  {:8} {:18} {}{}", t.name, shape_text(t.dims), t.meaning, opt);
    }
    let _ = writeln!(s, "\nparameters (--param name=value):");
    for p in rule.params {
        let _ = writeln!(s, "  {:12} default {:12} {}", p.name, p.default, p.meaning);
    }
    let _ = writeln!(s, "\noutputs:");
    for t in rule.outputs {
        let _ = writeln!(s, "  {:8} {:18} {}", t.name, shape_text(t.dims), t.meaning);
    }
    s
}

/// Checks names, dtypes and shapes of the given tensors against the rule and binds the size symbols.
pub fn validate(rule: &Rule, tensors: Vec<(String, Tensor)>, params: &[(String, String)]) -> Result<RuleInputs> {
    let mut given: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, t) in tensors {
        if !rule.inputs.iter().any(|s| s.name == name) {
            let expected: Vec<&str> = rule.inputs.iter().map(|s| s.name).collect();
            bail!("unexpected tensor `{name}` for rule {} (expected: {})", rule.name, expected.join(", "));
        }
        match t.kind() {
            Kind::Float | Kind::Double => {}
            k => bail!("tensor `{name}` has dtype {k:?}; expected f32 or f64"),
        }
        given.insert(name, t);
    }
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let mut arrays = BTreeMap::new();
    for spec in rule.inputs {
        let Some(t) = given.get(spec.name) else {
            if spec.optional {
                continue;
            }
            bail!("missing tensor `{}` {} ({})", spec.name, shape_text(spec.dims), spec.meaning);
        };
        let got: Vec<i64> = t.size();
        if got.len() != spec.dims.len() {
            bail!(
                "tensor `{}` has shape {:?}; expected {} (rank {})",
                spec.name,
                got,
                shape_text(spec.dims),
                spec.dims.len()
            );
        }
        for (d, (&sym, &n)) in spec.dims.iter().zip(got.iter()).enumerate() {
            if n == 0 {
                // an empty batch, head or sequence: nothing to compute, and index arithmetic on it panics
                bail!(
                    "tensor `{}` has shape {:?}: dimension {d} ({sym}) is 0; every size must be at least 1",
                    spec.name,
                    got
                );
            }
            let n = n as usize;
            match sizes.get(sym) {
                Some(&bound) if bound != n => bail!(
                    "tensor `{}` has shape {:?}; dimension {d} ({sym}) is {n} but other tensors give {sym} = {bound}",
                    spec.name,
                    got
                ),
                _ => {
                    sizes.insert(sym.to_string(), n);
                }
            }
        }
        arrays.insert(spec.name.to_string(), from_tch(t)?);
    }
    let given_names: BTreeSet<String> = arrays.keys().cloned().collect();
    let omitted: Vec<&TensorSpec> = rule.inputs.iter().filter(|s| s.optional && !arrays.contains_key(s.name)).collect();
    for spec in omitted {
        let mut shape = vec![];
        for sym in spec.dims {
            let n = sizes.get(*sym).with_context(|| format!("cannot infer size {sym} for omitted `{}`", spec.name))?;
            shape.push(*n);
        }
        arrays.insert(spec.name.to_string(), Arr::zeros(shape));
    }
    let mut values: BTreeMap<String, String> =
        rule.params.iter().map(|p| (p.name.to_string(), p.default.to_string())).collect();
    for (k, v) in params {
        if !values.contains_key(k) {
            let known: Vec<&str> = rule.params.iter().map(|p| p.name).collect();
            bail!("unknown parameter `{k}` for rule {} (known: {})", rule.name, known.join(", "));
        }
        values.insert(k.clone(), v.clone());
    }
    Ok(RuleInputs { arrays, given: given_names, sizes, params: values })
}

/// Parses `name=value`.
pub fn parse_param(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => bail!("bad --param `{s}` (expected name=value)"),
    }
}

/// Reads inputs, runs the rule, writes the outputs (in `out_kind`). Returns a one-line summary.
pub fn run_file(
    rule: &Rule,
    inputs: &Path,
    out: &Path,
    imp: Impl,
    device: Device,
    kind: Kind,
    params: &[(String, String)],
) -> Result<String> {
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
    let ri = validate(rule, tensors, params)?;
    let outs = (rule.run)(&ri, imp, device, kind)?;
    let named: Vec<(String, Tensor)> =
        rule.outputs.iter().zip(outs.iter()).map(|(s, a)| (s.name.to_string(), to_tch(a, kind, Device::Cpu))).collect();
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
        rule.name,
        rule.outputs.iter().map(|o| o.name).collect::<Vec<_>>().join(", "),
        out.display()
    ))
}
