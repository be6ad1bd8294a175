//! `repro bench tnt` (issue 13): the training throughput (forward + backward tokens/s) of the sequential
//! memory, Titans' plain chunkwise memory and TNT's hierarchy (arXiv 2511.07343) over chunk sizes, at a fixed
//! size — TNT's speed claim (Table 1: up to 17.37× faster training than Titans at C = 8; 5.1× per step at the
//! same chunk size) measured on this machine.
//!
//! Rows: `sequential` (Titans' linear memory, chunk 1, Eqs. 12–15), `chunkwise` (the same memory at chunk C,
//! Eqs. 16–18), `tnt` (a global memory at `C_G` = [`DEFAULT_SIZES`], one local memory at `C_L = C` reset every
//! `S_L` tokens, Q-K projection) and, to show where TNT's time goes, `tnt w/o global` and
//! `tnt w/o Q-K`. All linear, `B = 1`, `H = 1`, `d_k = d_v = --dim`, f32, Titans' momentum and forgetting gates,
//! inputs drawn by `memory::batched::draw` (seed 0); timing, GEMM rate and plot are `crate::bench`'s.
//!
//! Why TNT is faster here: the chunkwise memory runs `T / C` dependent chunk steps one after another; TNT runs
//! `T / C_G` global steps plus `S_L / C_L` local steps, because the `T / S_L` shards (independent after their
//! reset) run as one batch. At `C = 1` that is `T` vs `T / C_G + S_L` sequential steps.
//!
//! Writes `<out>/bench/tnt.md` and `<out>/bench/tnt.png` (fwd+bwd tokens/s against chunk size, log y).

use crate::bench::{gemm_gflops, median_seconds, synchronizer, BenchOptions, BenchResult, Cell, MemoryResult, Timing};
use crate::fsutil::write_atomic;
use crate::memories;
use crate::memory::batched::{draw, torch_forward};
use crate::memory::ReadMode;
use crate::models::spec::MemorySpec;
use crate::tensor::to_tch;
use anyhow::{Context, Result};
use std::path::PathBuf;
use tch::{Kind, Tensor};

/// The sizes `repro bench tnt` uses: `C_G = S_L = 256` (the paper's speed runs use `C_G = S_L = 2048` at
/// 2K–32K context; a 2048-token sequence here holds 8 shards).
pub const DEFAULT_SIZES: TntSizes = TntSizes { global_chunk: 256, shard: 256 };

/// TNT's sizes for the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct TntSizes {
    pub global_chunk: usize,
    pub shard: usize,
}

/// The rows: name and `model.memory` rule (chunk sizes filled in per cell).
fn rows(s: TntSizes) -> Vec<(String, String, bool)> {
    let (g, sh) = (s.global_chunk, s.shard);
    vec![
        ("sequential".into(), "{kind: linear}".into(), false),
        ("chunkwise".into(), "{kind: linear}".into(), true),
        ("tnt".into(), format!("{{kind: tnt, chunk_size: {g}, local_chunks: [C], shard: {sh}}}"), true),
        (
            "tnt w/o global".into(),
            format!("{{kind: tnt, chunk_size: {g}, local_chunks: [C], shard: {sh}, global_memory: false}}"),
            true,
        ),
        (
            "tnt w/o Q-K".into(),
            format!("{{kind: tnt, chunk_size: {g}, local_chunks: [C], shard: {sh}, qk_projection: false}}"),
            true,
        ),
    ]
}

/// The memory spec of one cell: `C` replaced by the chunk (TNT's local chunk) or `chunk_size` set.
fn spec_of(name: &str, yaml: &str, chunk: usize) -> MemorySpec {
    if name.starts_with("tnt") {
        MemorySpec::with_rule(&yaml.replace("[C]", &format!("[{chunk}]")))
    } else {
        let mut spec = MemorySpec::with_rule(yaml);
        spec.chunk_size = if name == "sequential" { 1 } else { chunk };
        spec
    }
}

fn time_cell(name: &str, spec: &MemorySpec, opts: &BenchOptions) -> Result<Timing> {
    let rule = memories::build(spec, opts.dim).with_context(|| format!("`{name}`"))?;
    let (d, t) = (opts.dim, opts.seq);
    let drawn = draw(rule.as_ref(), 0, (1, 1, t, d, d), Kind::Float);
    let inputs: Vec<Tensor> = drawn.all().iter().map(|a| to_tch(a, Kind::Float, opts.device)).collect();
    let n_gates = rule.gates().len();
    let read = ReadMode::AfterWrite;
    let sync = synchronizer(opts.device);
    let fwd_seconds = median_seconds(opts.warmup, opts.repeats, &sync, || {
        let _ = tch::no_grad(|| torch_forward(rule.as_ref(), &inputs, n_gates, read));
    });
    tch::manual_seed(1);
    let weight = Tensor::randn([1, 1, t as i64, d as i64], (Kind::Float, opts.device));
    let fwd_bwd_seconds = median_seconds(opts.warmup, opts.repeats, &sync, || {
        let leaves: Vec<Tensor> = inputs.iter().map(|x| x.detach().set_requires_grad(true)).collect();
        let (y, _) = torch_forward(rule.as_ref(), &leaves, n_gates, read);
        let loss = (y * &weight).sum(Kind::Float);
        let _ = Tensor::run_backward(&[loss], &leaves, false, false);
    });
    Ok(Timing { fwd: t as f64 / fwd_seconds, fwd_bwd: t as f64 / fwd_bwd_seconds, fwd_flops: None, fwd_seconds })
}

/// Runs the benchmark; returns the report's path.
pub fn run_tnt(opts: &BenchOptions, sizes: TntSizes) -> Result<PathBuf> {
    if opts.device == tch::Device::Cpu {
        tch::set_num_threads(opts.threads as i32);
    }
    for &c in &opts.chunks {
        anyhow::ensure!(
            sizes.shard % c == 0,
            "--chunks {c}: the TNT shard S_L = {} must be a multiple of every local chunk",
            sizes.shard
        );
    }
    let gemm = gemm_gflops(opts.device, opts.warmup, opts.repeats);
    let mut memories = vec![];
    let mut seq_timing: Option<Timing> = None;
    for (name, yaml, chunked) in rows(sizes) {
        let mut result = MemoryResult { name: name.clone(), yaml: yaml.clone(), cells: vec![] };
        for &chunk in &opts.chunks {
            let timing = if !chunked {
                // the sequential rule does not depend on C: measured once, drawn as a flat line
                if seq_timing.is_none() {
                    seq_timing = Some(time_cell(&name, &spec_of(&name, &yaml, 1), opts)?);
                }
                seq_timing
            } else {
                Some(time_cell(&name, &spec_of(&name, &yaml, chunk), opts)?)
            };
            if !opts.quiet {
                eprintln!("{name} C = {chunk}: {:.0} tok/s fwd+bwd", timing.map(|t| t.fwd_bwd).unwrap_or(0.0));
            }
            result.cells.push(Cell { chunk, timing });
        }
        memories.push(result);
    }
    let res = BenchResult { gemm_gflops: gemm, memories };
    let table = speed_table(&res, opts);
    print!("{table}");
    let dir = opts.out.join("bench");
    let md = dir.join("tnt.md");
    write_atomic(&md, report(&res, opts, sizes, &table).as_bytes())?;
    if let Some(bytes) = crate::bench::plot(&res, opts)? {
        write_atomic(&dir.join("tnt.png"), &bytes)?;
    }
    println!("report: {}", md.display());
    Ok(md)
}

fn rate(res: &BenchResult, name: &str, chunk: usize) -> Option<f64> {
    res.memories
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.cells.iter().find(|c| c.chunk == chunk))
        .and_then(|c| c.timing.map(|t| t.fwd_bwd))
}

/// One row per chunk size: fwd+bwd tokens/s of every row, and TNT's speedups.
pub fn speed_table(res: &BenchResult, opts: &BenchOptions) -> String {
    let names: Vec<&str> = res.memories.iter().map(|m| m.name.as_str()).collect();
    let mut s = format!(
        "| C (chunkwise C / TNT C_L) | {} | TNT ÷ chunkwise at the same C | TNT ÷ chunkwise C = 8 | TNT ÷ sequential |\n",
        names.iter().map(|n| format!("{n} fwd+bwd tok/s")).collect::<Vec<_>>().join(" | ")
    );
    s.push_str(&format!("|---:|{}---:|---:|---:|\n", "---:|".repeat(names.len())));
    for &c in &opts.chunks {
        let cells: Vec<String> =
            names.iter().map(|n| rate(res, n, c).map(crate::bench::fmt_rate).unwrap_or("—".into())).collect();
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".into(),
        };
        let tnt = rate(res, "tnt", c);
        s.push_str(&format!(
            "| {c} | {} | {} | {} | {} |\n",
            cells.join(" | "),
            ratio(tnt, rate(res, "chunkwise", c)),
            ratio(tnt, rate(res, "chunkwise", 8)),
            ratio(tnt, rate(res, "sequential", c)),
        ));
    }
    s
}

/// Shares of TNT's fwd+bwd time spent in the global memory and in the Q-K projection, from the rows without
/// them: `1 − rate(tnt) / rate(tnt without the part)` (time per token with the part minus without, over with).
fn where_the_time_goes(res: &BenchResult, opts: &BenchOptions) -> String {
    let mut lines = vec![];
    for &c in &opts.chunks {
        let share = |without: &str| match (rate(res, "tnt", c), rate(res, without, c)) {
            (Some(a), Some(b)) => format!("{:.0} %", 100.0 * (1.0 - a / b)),
            _ => "—".into(),
        };
        let steps = opts.seq / DEFAULT_SIZES.global_chunk + DEFAULT_SIZES.shard / c;
        lines.push(format!(
            "| {c} | {} | {} | {} | {steps} |",
            share("tnt w/o global"),
            share("tnt w/o Q-K"),
            opts.seq / c
        ));
    }
    format!(
        "Where TNT's time goes (shares of its fwd+bwd time, `1 − rate(tnt) / rate(tnt without the part)`; negative = \
within the noise) and the sequential steps per call:\n\n| C | global memory | Q-K projection | chunkwise steps T/C | TNT steps T/C_G + S_L/C_L |\n|---:|---:|---:|---:|---:|\n{}\n\n",
        lines.join("\n")
    )
}

fn report(res: &BenchResult, opts: &BenchOptions, sizes: TntSizes, table: &str) -> String {
    let mut s = String::from("# TNT training throughput (`repro bench tnt`)\n\n");
    s.push_str(&format!("Command: `{}`\n\n", opts.command));
    s.push_str(&format!(
        "Machine: {} ({} libtorch CPU threads), device {}. GEMM rate: {:.1} GFLOP/s (1024² f32 matmul).\n\n",
        crate::bench::cpu_model(),
        opts.threads,
        crate::device::device_name(opts.device),
        res.gemm_gflops
    ));
    s.push_str(&format!(
        "Setup: B = H = 1, d_k = d_v = {d}, T = {t} tokens, f32, linear memories with Titans' momentum and forgetting \
gates, read after write; TNT: global chunk C_G = {g}, shard S_L = {sh}, one local memory at C_L = C, Q-K projection. \
fwd+bwd = forward, loss Σ y ⊙ W, backward to every input, gate and initial state; tokens/s = T / the median of {r} \
runs after {w} warm-up runs.\n\n",
        d = opts.dim,
        t = opts.seq,
        g = sizes.global_chunk,
        sh = sizes.shard,
        r = opts.repeats,
        w = opts.warmup
    ));
    s.push_str(table);
    s.push_str(&format!(
        "\nSequential steps per call: chunkwise T / C; TNT T / C_G + S_L / C_L (= {} + {} / C here): the {} shards, \
independent after their reset, run as one batch.\n\n",
        opts.seq / sizes.global_chunk,
        sizes.shard,
        opts.seq / sizes.shard
    ));
    s.push_str(&where_the_time_goes(res, opts));
    s.push_str("Paper (TPU, JAX, 150M, time to a fixed loss; Table 1): TNT {8} 7.68×, {16} 11.78×, {32} 15.92×, {64} 17.37×, {128} 16.75× faster than Titans C = 8; per step at 32K context, 5.1× faster than Titans at the same chunk (C_L = C = 16).\n\n");
    s.push_str("| row | `model.memory` |\n|---|---|\n");
    for m in &res.memories {
        s.push_str(&format!("| {} | `{}` |\n", m.name, m.yaml));
    }
    s.push_str("\n![fwd+bwd tokens/s against chunk size](tnt.png)\n");
    s
}
