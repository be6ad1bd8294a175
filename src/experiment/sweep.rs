//! Sweeps: a study may declare a grid of configuration values that expands into ablation rows.
//!
//! ```yaml
//! sweep:
//!   training.lr: [0.001, 0.003]
//!   model.memory.chunk_size: [1, 16]
//! ```
//!
//! Every ablation row (or, without `ablations:`, one unnamed row) is crossed with every point of the grid, in
//! the order written: the first key varies slowest, then each row's points follow that row. A row is named
//! `<row> <key>=<value> …` with each key's last segment (`lr=0.001 chunk_size=16`), or its whole path where two
//! keys share a last segment, so that the same file always gives the same names (and run folders). Every key
//! and value is checked before anything runs: a key the configuration does not have is an error naming the
//! field (`sweep.training.lrr: unknown field …, did you mean `lr`?`), and so are an empty or non-list value, a
//! value listed twice, a key that shapes the study (`name`, `seeds`, …), and a key a row also sets.

use super::spec::{located, set_path, suggest_field, AblationRow, Experiment};
use anyhow::{anyhow, Result};
use serde_yaml::Value;
use std::path::Path;

/// Keys a sweep may not vary: they shape the study, not a run (`seeds` has its own list and `--seeds`).
const NOT_SWEPT: [&str; 7] = ["name", "ablations", "scales", "reference", "plots", "sweep", "seeds"];

/// A value as it appears in a row name: plain scalars as written, anything else as compact JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

/// Replaces `spec.ablations` by the sweep's rows (nothing happens without `sweep:`). `raw` is the file's YAML,
/// `text` its text (for line numbers).
pub fn expand(spec: &mut Experiment, file: &Path, text: &str, raw: &Value) -> Result<()> {
    let Some(sweep) = spec.sweep.clone() else { return Ok(()) };
    let at = |key: &str, msg: String| -> anyhow::Error {
        // the line of the key inside `sweep:` (keys are dotted, so `locate` cannot follow them)
        let line = super::spec::locate(text, "sweep").map(|s| {
            text.lines()
                .enumerate()
                .skip(s)
                .find(|(_, l)| l.trim_start().starts_with(&format!("{key}:")))
                .map_or(s, |x| x.0 + 1)
        });
        match line {
            Some(l) => anyhow!("{}:{l}: sweep.{key}: {msg}", file.display()),
            None => anyhow!("{}: sweep.{key}: {msg}", file.display()),
        }
    };
    if sweep.is_empty() {
        return Err(located(file, text, "sweep", "is empty (give at least one key with a list of values)"));
    }
    let mut axes: Vec<(String, Vec<Value>)> = vec![];
    for (k, vals) in &sweep {
        let key =
            k.as_str().ok_or_else(|| located(file, text, "sweep", format!("key {} is not a dotted path", show(k))))?;
        let head = key.split('.').next().unwrap_or("");
        if NOT_SWEPT.contains(&head) {
            return Err(at(key, format!("`{head}` cannot be swept (sweep the configuration: task.*, model.*, training.*, evaluation.*, device)")));
        }
        let list = match vals {
            Value::Sequence(s) if !s.is_empty() => s.clone(),
            Value::Sequence(_) => return Err(at(key, "needs at least one value".into())),
            other => return Err(at(key, format!("needs a list of values, got {}", show(other)))),
        };
        for (i, v) in list.iter().enumerate() {
            if list[..i].contains(v) {
                return Err(at(key, format!("value {} is listed twice", show(v))));
            }
            // the field must exist and take this value (the base configuration parsed, so any error is this key's)
            let mut one = raw.clone();
            if let Some(m) = one.as_mapping_mut() {
                m.remove("sweep");
            }
            set_path(&mut one, key, v.clone()).map_err(|e| at(key, e.to_string()))?;
            if let Err(e) = serde_yaml::from_value::<Experiment>(one) {
                return Err(at(key, format!("value {}: {}", show(v), suggest_field(&e.to_string()))));
            }
        }
        axes.push((key.to_string(), list));
    }
    // short names: the last segment unless two keys share it
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let short: Vec<String> = axes
        .iter()
        .map(|(k, _)| if axes.iter().filter(|(o, _)| last(o) == last(k)).count() > 1 { k.clone() } else { last(k) })
        .collect();
    // the grid, first key slowest
    let mut points: Vec<Vec<(usize, Value)>> = vec![vec![]];
    for (a, (_, vals)) in axes.iter().enumerate() {
        points = points
            .into_iter()
            .flat_map(|p| vals.iter().map(move |v| [p.clone(), vec![(a, v.clone())]].concat()))
            .collect();
    }
    let base: Vec<AblationRow> = if spec.ablations.is_empty() {
        vec![AblationRow { name: String::new(), set: Default::default() }]
    } else {
        spec.ablations.clone()
    };
    let mut rows = vec![];
    for b in &base {
        for (k, _) in &axes {
            if let Some(set) = b.set.keys().find(|s| super::spec::covers(s, k)) {
                return Err(at(
                    k,
                    format!("row `{}` sets `{set}` too; a swept key cannot also be set by a row", b.name),
                ));
            }
        }
        for p in &points {
            let label: Vec<String> = p.iter().map(|(a, v)| format!("{}={}", short[*a], show(v))).collect();
            let name = if b.name.is_empty() { label.join(" ") } else { format!("{} {}", b.name, label.join(" ")) };
            let mut set = b.set.clone();
            for (a, v) in p {
                set.insert(axes[*a].0.clone(), v.clone());
            }
            rows.push(AblationRow { name, set });
        }
    }
    spec.ablations = rows;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::show;
    use serde_yaml::Value;

    #[test]
    fn values_show_as_written() {
        let v: Value = serde_yaml::from_str("[0.001, 16, true, mac, {kind: mlp}]").unwrap();
        let shown: Vec<String> = v.as_sequence().unwrap().iter().map(show).collect();
        assert_eq!(shown, vec!["0.001", "16", "true", "mac", r#"{"kind":"mlp"}"#]);
    }
}
