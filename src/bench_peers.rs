//! `repro bench memory --peers` (issue 14): the same throughput table with titans-pytorch 0.5.5's
//! `NeuralMemory` beside this crate's memories, measured in the same run on the same machine.
//!
//! The peer runs in its own venv (`benches/peers/setup.sh`: the full PyPI torch and titans-pytorch; not part of
//! the README's set-up, not in CI) through `benches/peers/titans_pytorch_bench.py`, which prints JSON. Two rows
//! per chunk size `C`: **default** (`NeuralMemory(dim, chunk_size=C)`: one memory update per chunk) and
//! **paper** (`chunk_size=1, batch_size=C`: per-token gates and surprise with gradients at the chunk start,
//! Titans' Eqs. 16–18, the semantics of this crate's chunkwise `mlp`).
//!
//! What differs between the rows, stated in the report: the peer's module also projects its input to q, k, v
//! and normalises (RMSNorm), its backward reaches its parameters and input; ours times the memory rule on
//! given q, k, v, gates and initial state, backward to all of them.

use crate::bench::{fmt_rate, BenchOptions, BenchResult, Cell, MemoryResult, Timing};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the peer's set-up script, venv and runner live, relative to the repository root.
pub const PEER_DIR: &str = "benches/peers";
/// The two peer semantics, as `(json key, row name)`.
pub const SEMANTICS: [(&str, &str); 2] =
    [("default", "titans-pytorch default"), ("paper", "titans-pytorch paper semantics")];

#[derive(Debug, Deserialize)]
struct PeerRow {
    semantics: String,
    chunk: usize,
    fwd: f64,
    fwd_bwd: f64,
}

#[derive(Debug, Deserialize)]
struct PeerRun {
    version: String,
    torch: String,
    rows: Vec<PeerRow>,
}

/// The peer venv's interpreter, or an error saying how to create it.
pub fn peer_python(root: &Path) -> Result<PathBuf> {
    let python = root.join(PEER_DIR).join(".venv/bin/python");
    if !python.exists() {
        bail!(
            "--peers needs titans-pytorch in its own venv, and {} does not exist: run `bash {PEER_DIR}/setup.sh` \
             first (it downloads the full PyPI torch and titans-pytorch 0.5.5, several GB)",
            python.display()
        );
    }
    Ok(python)
}

/// Whether the peer can run with these options; called before any timing so that a missing venv fails fast.
pub fn preflight(opts: &BenchOptions, root: &Path) -> Result<PathBuf> {
    if opts.device != tch::Device::Cpu {
        bail!("--peers runs on the CPU only (the peer venv is set up for it); drop --device or --peers");
    }
    peer_python(root)
}

/// Runs the peer on the shapes of `opts` and returns its rows as two memory groups, plus `version` text.
pub fn run(opts: &BenchOptions, root: &Path) -> Result<(Vec<MemoryResult>, String)> {
    let python = preflight(opts, root)?;
    let script = root.join(PEER_DIR).join("titans_pytorch_bench.py");
    let chunks = opts.chunks.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let output = Command::new(&python)
        .arg(&script)
        .args(["--dim", &opts.dim.to_string(), "--seq", &opts.seq.to_string(), "--chunks", &chunks])
        .args(["--threads", &opts.threads.to_string(), "--repeats", &opts.repeats.to_string()])
        .args(["--warmup", &opts.warmup.to_string()])
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!("the peer benchmark failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().context("the peer benchmark printed nothing")?;
    let parsed: PeerRun = serde_json::from_str(last).with_context(|| format!("the peer's output `{last}`"))?;
    let groups = SEMANTICS
        .iter()
        .map(|(key, name)| MemoryResult {
            name: name.to_string(),
            yaml: format!("titans-pytorch {} NeuralMemory({}, {})", parsed.version, opts.dim, describe(key)),
            cells: opts
                .chunks
                .iter()
                .map(|&chunk| Cell {
                    chunk,
                    timing: parsed.rows.iter().find(|r| r.semantics == *key && r.chunk == chunk).map(|r| Timing {
                        fwd: r.fwd,
                        fwd_bwd: r.fwd_bwd,
                        fwd_flops: None,
                        fwd_seconds: opts.seq as f64 / r.fwd,
                    }),
                })
                .collect(),
        })
        .collect();
    Ok((groups, format!("titans-pytorch {} on torch {}", parsed.version, parsed.torch)))
}

fn describe(key: &str) -> &'static str {
    if key == "default" {
        "chunk_size=C"
    } else {
        "chunk_size=1, batch_size=C"
    }
}

/// The ratios of this crate's chunkwise `mlp` (fwd+bwd) to each peer row, per chunk size, as markdown.
pub fn comparison(res: &BenchResult, peer: &str) -> String {
    let find = |name: &str| res.memories.iter().find(|m| m.name == name);
    let Some(ours) = find("mlp") else {
        return format!("Peer: {peer}. (Add `mlp` to `--memories` for the ratios.)\n\n");
    };
    let mut s = format!(
        "## Beside titans-pytorch\n\nPeer: {peer}, same machine, same run, same thread count. Ratio = this crate's \
`mlp` fwd+bwd tokens/s ÷ the peer's. The peer's module also projects its input to q, k, v and applies RMSNorms \
(more work per token than the memory rule alone); its backward reaches its parameters and input.\n\n\
| chunk | ours `mlp` fwd+bwd | peer default | ours ÷ default | peer paper semantics | ours ÷ paper semantics |\n\
|---:|---:|---:|---:|---:|---:|\n"
    );
    let rate = |m: Option<&MemoryResult>, chunk: usize| {
        m.and_then(|m| m.cells.iter().find(|c| c.chunk == chunk)).and_then(|c| c.timing).map(|t| t.fwd_bwd)
    };
    for cell in &ours.cells {
        let Some(t) = cell.timing else { continue };
        let d = rate(find(SEMANTICS[0].1), cell.chunk);
        let p = rate(find(SEMANTICS[1].1), cell.chunk);
        let show = |x: Option<f64>| x.map(fmt_rate).unwrap_or_else(|| "—".into());
        let ratio = |x: Option<f64>| x.map(|x| format!("{:.2}×", t.fwd_bwd / x)).unwrap_or_else(|| "—".into());
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell.chunk,
            fmt_rate(t.fwd_bwd),
            show(d),
            ratio(d),
            show(p),
            ratio(p)
        ));
    }
    s.push('\n');
    s
}
