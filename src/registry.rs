//! The equation registry: `papers/<key>.yaml`, one entry per numbered equation of each paper, and its
//! agreement with the checks that exist in code. The YAML files are compiled into the binary so that
//! `repro equations` and `repro verify` work from any directory and on a GPU host without the source tree.

use crate::check::all_checks;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The papers, in the order the project treats them, with their registry files; `models` holds the models'
/// building blocks that none of the five papers numbers (RoPE).
pub const PAPERS: [(&str, &str); 6] = [
    ("titans", include_str!("../papers/titans.yaml")),
    ("miras", include_str!("../papers/miras.yaml")),
    ("atlas", include_str!("../papers/atlas.yaml")),
    ("tnt", include_str!("../papers/tnt.yaml")),
    ("nl", include_str!("../papers/nl.yaml")),
    ("models", include_str!("../papers/models.yaml")),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    pub key: String,
    pub title: String,
    pub arxiv: String,
    pub version: String,
    /// the paper's URL (`https://arxiv.org/abs/<arxiv><version>`): users' clones have nothing outside the repository
    #[serde(default)]
    pub catalog: Option<String>,
    #[serde(default)]
    pub equations: Vec<Equation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Verified,
    Todo,
    NotComputational,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Todo => "todo",
            Status::NotComputational => "not-computational",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    pub reference: String,
    pub torch: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Equation {
    /// `<paper>.<number>`, e.g. `titans.13`
    pub id: String,
    /// the number as printed in the paper
    pub number: String,
    pub latex: String,
    pub meaning: String,
    #[serde(default)]
    pub code: Option<Code>,
    /// checks that verify this equation (one or more names from `crate::check::all_checks`)
    #[serde(default)]
    pub checks: Vec<String>,
    pub status: Status,
    /// why an equation is not computational, or what a `todo` waits for
    #[serde(default)]
    pub reason: Option<String>,
    /// choices made where the paper is silent, corrections of typos
    #[serde(default)]
    pub notes: Option<String>,
    /// the `repro eval` rule that runs this equation on user tensors, if any
    #[serde(default)]
    pub eval: Option<String>,
}

/// Parses one registry file; errors name the file and, from serde_yaml, the line and column.
pub fn parse_paper(file: &str, text: &str) -> Result<Paper> {
    serde_yaml::from_str(text).with_context(|| format!("{file}: invalid registry file"))
}

/// All five registry files.
pub fn load_all() -> Result<Vec<Paper>> {
    PAPERS.iter().map(|(key, text)| parse_paper(&format!("papers/{key}.yaml"), text)).collect()
}

/// One paper by key, with a helpful error for an unknown key.
pub fn load(key: &str) -> Result<Paper> {
    match PAPERS.iter().find(|(k, _)| *k == key) {
        Some((k, text)) => parse_paper(&format!("papers/{k}.yaml"), text),
        None => anyhow::bail!(
            "unknown paper `{key}` (known: {})",
            PAPERS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Every way the registry and the code disagree, as readable lines (empty = consistent).
/// `source_root`, when given, is the crate's `src/` and lets the code paths be resolved too.
pub fn problems(papers: &[Paper], source_root: Option<&Path>) -> Vec<String> {
    let code_checks: BTreeSet<&str> = all_checks().iter().map(|c| c.name).collect();
    let rules: BTreeSet<String> = crate::eval::all_rules().iter().map(|r| r.name.to_string()).collect();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = vec![];
    for p in papers {
        for e in &p.equations {
            let at = format!("papers/{}.yaml: {}", p.key, e.id);
            *ids.entry(e.id.clone()).or_default() += 1;
            if !e.id.starts_with(&format!("{}.", p.key)) {
                out.push(format!("{at}: id must start with `{}.`", p.key));
            }
            for c in &e.checks {
                named.insert(c.clone());
                if !code_checks.contains(c.as_str()) {
                    out.push(format!("{at}: names check `{c}`, which does not exist in code"));
                }
            }
            match e.status {
                Status::Verified => {
                    if e.checks.is_empty() {
                        out.push(format!("{at}: status verified but no check"));
                    }
                    if e.code.is_none() {
                        out.push(format!("{at}: status verified but no code paths"));
                    }
                }
                Status::NotComputational | Status::Todo => {
                    if e.reason.as_deref().unwrap_or("").trim().is_empty() {
                        out.push(format!("{at}: status {} needs a `reason`", e.status.name()));
                    }
                }
            }
            if let Some(rule) = &e.eval {
                if !rules.contains(rule) {
                    out.push(format!("{at}: names eval rule `{rule}`, which does not exist"));
                }
            }
            if let (Some(code), Some(root)) = (&e.code, source_root) {
                for path in [&code.reference, &code.torch] {
                    if let Err(why) = resolve_code_path(root, path) {
                        out.push(format!("{at}: code path `{path}`: {why}"));
                    }
                }
            }
        }
    }
    for (id, n) in ids {
        if n > 1 {
            out.push(format!("equation id `{id}` appears {n} times"));
        }
    }
    for c in code_checks {
        if !named.contains(c) {
            out.push(format!("check `{c}` exists in code but no registry entry lists it"));
        }
    }
    out
}

/// Resolves `a::b::c::f` against the source tree: the longest module prefix that is a file
/// (`src/a/b.rs` or `src/a/b/mod.rs`), then inline `mod` items and finally `fn f` (or a type) inside it.
pub fn resolve_code_path(src: &Path, path: &str) -> std::result::Result<(), String> {
    let segs: Vec<&str> = path.split("::").collect();
    if segs.len() < 2 {
        return Err("expected module::item".into());
    }
    for split in (1..segs.len()).rev() {
        let rel = segs[..split].join("/");
        for file in [src.join(format!("{rel}.rs")), src.join(&rel).join("mod.rs")] {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let rest = &segs[split..];
                let (mods, item) = rest.split_at(rest.len() - 1);
                for m in mods {
                    if !text.contains(&format!("mod {m} ")) && !text.contains(&format!("mod {m}{{")) {
                        return Err(format!("no inline `mod {m}` in {}", file.display()));
                    }
                }
                let item = item[0];
                let found = ["fn", "struct", "enum", "const", "type"].iter().any(|kw| {
                    text.contains(&format!("{kw} {item}("))
                        || text.contains(&format!("{kw} {item} "))
                        || text.contains(&format!("{kw} {item}<"))
                        || text.contains(&format!("{kw} {item}:"))
                });
                return if found { Ok(()) } else { Err(format!("no item `{item}` in {}", file.display())) };
            }
        }
    }
    Err("no module file found under src/".into())
}
