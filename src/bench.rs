//! `repro bench memory` (issue 14): the training throughput of the memory layers, so a researcher can weigh
//! this harness's memories (and their chunkwise forms) on their own machine in one run.
//!
//! For every selected catalogue memory and chunk size it times the rule's batched tch forward
//! ([`crate::memory::rule::MemoryRule::forward`]) on inputs drawn by [`crate::memory::batched::draw`]
//! (`B = H = 1`, `d_k = d_v = dim`, f32): forward only (under `no_grad`), and forward + backward (loss
//! `Σ y ⊙ W` for a fixed random `W`, gradients of every input: `k, v, q`, the gates and the initial states).
//! Each figure is the median over `repeats` runs after `warmup` runs. The same run measures the GEMM rate (a
//! square f32 matmul) so that rows whose arithmetic can be counted exactly (Titans' linear memory, see
//! [`linear_forward_flops`]) also show their achieved GFLOP/s and its fraction of that rate; other rows leave
//! those columns empty rather than guess. A memory without a chunkwise form (`crate::memories::build` refuses
//! `chunk_size > 1`) runs at chunk 1 only; its other cells read "—".
//!
//! Writes `<out>/bench/memory.md` (table, machine, command, GEMM rate) and `<out>/bench/memory.png` (fwd+bwd
//! tokens/s against chunk size, log y, one line per memory).

use crate::device::device_name;
use crate::fsutil::write_atomic;
use crate::memories;
use crate::memory::batched::{draw, torch_forward};
use crate::memory::ReadMode;
use crate::models::spec::MemorySpec;
use crate::tensor::to_tch;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The memories `--memories` accepts: the name and its `model.memory` rule.
pub const MEMORIES: [(&str, &str); 14] = [
    ("linear", "{kind: linear}"),
    ("mlp", "{kind: mlp, layers: 2, expansion: 4}"),
    ("framework", "{kind: framework}"),
    ("moneta", "{kind: moneta, p: 3, q: 4}"),
    ("yaad", "{kind: yaad}"),
    ("memora", "{kind: memora}"),
    ("linear-attention", "{kind: preset, name: linear-attention}"),
    ("retnet", "{kind: preset, name: retnet}"),
    ("mamba2", "{kind: preset, name: mamba2}"),
    ("deltanet", "{kind: preset, name: deltanet}"),
    ("gated-deltanet", "{kind: preset, name: gated-deltanet}"),
    ("longhorn", "{kind: preset, name: longhorn}"),
    ("ttt-linear", "{kind: preset, name: ttt-linear}"),
    ("titans-lmm", "{kind: preset, name: titans-lmm}"),
];

/// The memories benchmarked when `--memories` is not given.
pub const DEFAULT_MEMORIES: &str = "linear,mlp,moneta,yaad,memora,gated-deltanet";

/// The benchmarks `repro bench` knows.
pub const BENCHMARKS: [&str; 1] = ["memory"];

/// Side of the square f32 matmul that measures the GEMM rate.
pub const GEMM_SIZE: i64 = 1024;

/// Validated settings of one `repro bench memory` run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub device: Device,
    pub threads: usize,
    pub dim: usize,
    pub seq: usize,
    pub chunks: Vec<usize>,
    pub memories: Vec<String>,
    pub repeats: usize,
    pub warmup: usize,
    pub out: PathBuf,
    pub quiet: bool,
    /// also run titans-pytorch's NeuralMemory (`crate::bench_peers`) and put it in the same table
    pub peers: bool,
    /// the command line as typed, for the report
    pub command: String,
}

/// A count from the command line: an integer ≥ `min`, with a one-line error naming the flag.
pub fn parse_count(flag: &str, raw: &str, min: usize) -> Result<usize> {
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {raw}: not an integer (expected an integer ≥ {min})"))?;
    if n < min as i64 {
        bail!("{flag} {raw}: must be at least {min}");
    }
    Ok(n as usize)
}

/// `--chunks 1,8,16`: chunk sizes ≥ 1, sorted, without repeats (a chunk longer than the sequence is one chunk).
pub fn parse_chunks(raw: &str) -> Result<Vec<usize>> {
    let mut chunks = vec![];
    for part in raw.split(',') {
        let part = part.trim();
        if part.is_empty() {
            bail!("--chunks {raw}: expected a comma-separated list of chunk sizes ≥ 1, e.g. 1,8,16,32,64");
        }
        let c = parse_count("--chunks", part, 1).map_err(|_| {
            anyhow::anyhow!("--chunks {raw}: `{part}` is not a chunk size (each must be an integer ≥ 1)")
        })?;
        chunks.push(c);
    }
    chunks.sort_unstable();
    chunks.dedup();
    Ok(chunks)
}

/// `--memories linear,mlp`: names from [`MEMORIES`], in the order given, without repeats.
pub fn parse_memories(raw: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = vec![];
    for part in raw.split(',').map(str::trim) {
        if !MEMORIES.iter().any(|(n, _)| *n == part) {
            let known: Vec<&str> = MEMORIES.iter().map(|(n, _)| *n).collect();
            bail!("unknown memory `{part}` in --memories (known: {})", known.join(", "));
        }
        if !names.iter().any(|n| n == part) {
            names.push(part.to_string());
        }
    }
    Ok(names)
}

/// `--threads`: 1 to 4 × the available cores (at least 4); absent means every available core.
pub fn parse_threads(raw: Option<&str>) -> Result<usize> {
    let cores = available_cores();
    let max = (4 * cores).max(4);
    let Some(raw) = raw else { return Ok(cores) };
    let n = parse_count("--threads", raw, 1)?;
    if n > max {
        bail!("--threads {raw}: at most {max} (4 × the {cores} available cores)");
    }
    Ok(n)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The measured figures of one (memory, chunk) cell.
#[derive(Debug, Clone)]
pub struct Cell {
    pub chunk: usize,
    /// `None`: the memory has no chunkwise form (only chunk 1 runs)
    pub timing: Option<Timing>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// forward only, tokens/s
    pub fwd: f64,
    /// forward + backward, tokens/s
    pub fwd_bwd: f64,
    /// floating-point operations of one forward pass, when counted exactly
    pub fwd_flops: Option<f64>,
    /// median seconds of one forward pass
    pub fwd_seconds: f64,
}

/// One memory's row group.
#[derive(Debug, Clone)]
pub struct MemoryResult {
    pub name: String,
    pub yaml: String,
    pub cells: Vec<Cell>,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// GEMM rate in GFLOP/s
    pub gemm_gflops: f64,
    pub memories: Vec<MemoryResult>,
}

/// Median seconds of `f` over `repeats` runs after `warmup` runs; `sync` waits for the device.
fn median_seconds(warmup: usize, repeats: usize, sync: &dyn Fn(), mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
        sync();
    }
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            sync();
            let t0 = Instant::now();
            f();
            sync();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        0.5 * (times[n / 2 - 1] + times[n / 2])
    }
}

fn synchronizer(device: Device) -> impl Fn() {
    move || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    }
}

/// The GEMM rate: a square f32 `GEMM_SIZE` matmul, `2n³` operations, median of the same repeats.
pub fn gemm_gflops(device: Device, warmup: usize, repeats: usize) -> f64 {
    tch::manual_seed(0);
    let n = GEMM_SIZE;
    let a = Tensor::randn([n, n], (Kind::Float, device));
    let b = Tensor::randn([n, n], (Kind::Float, device));
    let sync = synchronizer(device);
    let secs = median_seconds(warmup.max(1), repeats.max(3), &sync, || {
        let _ = a.matmul(&b);
    });
    2.0 * (n as f64).powi(3) / secs / 1e9
}

/// Arithmetic operations of one forward pass of Titans' linear memory as this crate implements it
/// (`titans::linear_memory::torch::forward` for chunk 1, `titans::chunkwise::torch::linear_forward` otherwise),
/// counted op by op: an `m×k · k×n` product is `m·n·(2k − 1)`, an elementwise op one per output entry, a
/// cumulative product `n − 1` per column; the chunkwise form includes its gate coefficients (a `(C+1)²` matrix
/// product per chunk). Index, copy and concatenation ops count nothing.
pub fn linear_forward_flops(t: usize, d_k: usize, d_v: usize, chunk: usize) -> f64 {
    let (t, dk, dv) = (t as f64, d_k as f64, d_v as f64);
    if chunk <= 1 {
        // M k (dv(2dk−1)), − v (dv), e kᵀ and ×2c (2 dv dk), η S, θ u, − (3 dv dk), 1 − α (1), (1−α) M, + S
        // (2 dv dk), M q (dv(2dk−1))
        return t * (2.0 * dv * (2.0 * dk - 1.0) + dv + 7.0 * dv * dk + 1.0);
    }
    let per_chunk = |l: f64| {
        let n = l + 1.0;
        // E = K Mᵀ − V, Q Mᵀ, Q Sᵀ (three L×dk·dk×dv products)
        let products = 3.0 * l * dv * (2.0 * dk - 1.0)
            // Q Kᵀ, (· ⊙ Γ) E
            + l * l * (2.0 * dk - 1.0) + l * dv * (2.0 * l - 1.0)
            // Eᵀ diag(·) K for M and S
            + 2.0 * dv * dk * (2.0 * l - 1.0);
        // − V, β ⊙, ρ ⊙, +, ×2c, −, E ⊙ g, E ⊙ sg on L×dv; ⊙ Γ on L×L; 8 state-sized ops
        let elementwise = 8.0 * l * dv + l * l + 8.0 * dv * dk;
        // 1 − α, two cumulative products and two masks on (C+1)², the column mask, D H, Γ and θH scaling
        let coefficients = n + 2.0 * (n - 1.0) * n + 3.0 * n * n + n * n * (2.0 * n - 1.0) + 2.0 * n * l;
        products + elementwise + coefficients
    };
    let c = chunk as f64;
    let full = (t / c).floor();
    let tail = t - full * c;
    full * per_chunk(c) + if tail > 0.0 { per_chunk(tail) } else { 0.0 }
}

/// Runs the benchmark, prints the table, writes the report and the plot; returns the report's path.
pub fn run_memory(opts: &BenchOptions) -> Result<PathBuf> {
    let root = std::env::current_dir()?;
    if opts.peers {
        crate::bench_peers::preflight(opts, &root)?;
    }
    if opts.device == Device::Cpu {
        tch::set_num_threads(opts.threads as i32);
    }
    let quiet = opts.quiet || std::env::var_os("CI").is_some();
    let cells = opts.memories.len() * opts.chunks.len();
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(cells as u64 + 1) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("GEMM rate");
    let gemm = gemm_gflops(opts.device, opts.warmup, opts.repeats);
    bar.inc(1);
    let mut memories = vec![];
    for name in &opts.memories {
        let yaml = MEMORIES.iter().find(|(n, _)| n == name).map(|(_, y)| *y).context("a known memory")?;
        let mut result = MemoryResult { name: name.clone(), yaml: yaml.into(), cells: vec![] };
        for &chunk in &opts.chunks {
            bar.set_message(format!("{name}, chunk {chunk}"));
            let timing = bench_cell(name, yaml, chunk, opts)?;
            result.cells.push(Cell { chunk, timing });
            bar.inc(1);
        }
        memories.push(result);
    }
    let mut peer = None;
    if opts.peers {
        bar.set_message("titans-pytorch (peer venv)");
        let (groups, version) = crate::bench_peers::run(opts, &root)?;
        memories.extend(groups);
        peer = Some(version);
    }
    bar.finish_and_clear();
    let res = BenchResult { gemm_gflops: gemm, memories };
    let table = table(&res);
    print!("{table}");
    let dir = opts.out.join("bench");
    let md = dir.join("memory.md");
    let mut text = report(&res, opts, &table);
    if let Some(peer) = &peer {
        let comparison = crate::bench_peers::comparison(&res, peer);
        print!("{comparison}");
        text.push_str(&comparison);
    }
    write_atomic(&md, text.as_bytes())?;
    println!("GEMM ({GEMM_SIZE}×{GEMM_SIZE} f32 matmul): {:.1} GFLOP/s", res.gemm_gflops);
    match plot(&res, opts)? {
        Some(bytes) => {
            let png = dir.join("memory.png");
            write_atomic(&png, &bytes)?;
            println!("report: {}; plot: {}", md.display(), png.display());
        }
        None => println!("report: {} (no plot: no cell ran)", md.display()),
    }
    Ok(md)
}

/// Times one cell; `Ok(None)` when the memory has no chunkwise form for `chunk > 1`.
fn bench_cell(name: &str, yaml: &str, chunk: usize, opts: &BenchOptions) -> Result<Option<Timing>> {
    let mut spec = MemorySpec::with_rule(yaml);
    spec.chunk_size = chunk;
    let rule = match memories::build(&spec, opts.dim) {
        Ok(rule) => rule,
        Err(e) if chunk > 1 && e.to_string().contains("no chunkwise form") => return Ok(None),
        Err(e) => return Err(e.context(format!("memory `{name}` at chunk {chunk}"))),
    };
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
    let fwd_flops = (name == "linear").then(|| linear_forward_flops(t, d, d, chunk));
    Ok(Some(Timing { fwd: t as f64 / fwd_seconds, fwd_bwd: t as f64 / fwd_bwd_seconds, fwd_flops, fwd_seconds }))
}

/// Tokens/s with three significant figures and a k/M suffix.
pub fn fmt_rate(x: f64) -> String {
    let (v, suffix) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{suffix}")
}

/// Three significant figures, no exponent (GFLOP/s and percentages).
fn fmt_sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// The markdown table (also printed to stdout).
pub fn table(res: &BenchResult) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "| memory | chunk | fwd tok/s | fwd+bwd tok/s | fwd GFLOP/s | fwd % of GEMM ({:.1} GFLOP/s) |\n",
        res.gemm_gflops
    ));
    s.push_str("|---|---:|---:|---:|---:|---:|\n");
    for m in &res.memories {
        for c in &m.cells {
            let row = match &c.timing {
                None => ["—".to_string(), "—".to_string(), String::new(), String::new()],
                Some(t) => {
                    let (gf, frac) = match t.fwd_flops {
                        Some(f) => {
                            let g = f / t.fwd_seconds / 1e9;
                            (fmt_sig(g), format!("{} %", fmt_sig(100.0 * g / res.gemm_gflops)))
                        }
                        None => (String::new(), String::new()),
                    };
                    [fmt_rate(t.fwd), fmt_rate(t.fwd_bwd), gf, frac]
                }
            };
            s.push_str(&format!("| {} | {} | {} | {} | {} | {} |\n", m.name, c.chunk, row[0], row[1], row[2], row[3]));
        }
    }
    s
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().into())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn machine(opts: &BenchOptions) -> String {
    format!(
        "{} ({} cores available), {} libtorch CPU threads, device {}",
        cpu_model(),
        available_cores(),
        opts.threads,
        device_name(opts.device)
    )
}

/// The markdown report.
pub fn report(res: &BenchResult, opts: &BenchOptions, table: &str) -> String {
    let mut s = String::from("# Memory-layer throughput (`repro bench memory`)\n\n");
    s.push_str(&format!("Command: `{}`\n\n", opts.command));
    s.push_str(&format!("Machine: {}\n\n", machine(opts)));
    s.push_str(&format!(
        "GEMM rate: {:.1} GFLOP/s ({GEMM_SIZE}×{GEMM_SIZE} f32 matmul, 2n³ operations, median of {} runs).\n\n",
        res.gemm_gflops,
        opts.repeats.max(3)
    ));
    s.push_str(&format!(
        "Setup: B = H = 1, d_k = d_v = {}, T = {} tokens, f32, inputs drawn by `memory::batched::draw` (seed 0), \
read after write. **fwd**: the rule's tch forward under `no_grad`. **fwd+bwd**: forward, loss Σ y ⊙ W (W fixed, \
random), backward to every input (k, v, q, the gates, the initial states). Tokens/s = T / the median time of {} \
runs after {} warm-up runs. Chunk 1 is the sequential rule; \"—\": the memory has no chunkwise form here.\n\n",
        opts.dim, opts.seq, opts.repeats, opts.warmup
    ));
    s.push_str(table);
    s.push_str(
        "\nGFLOP/s is reported only where the arithmetic is counted exactly: Titans' linear memory, forward pass, \
every tensor op of this crate's implementation (an m×k·k×n product is m·n·(2k − 1), elementwise ops one per entry; \
the chunkwise form includes its gate coefficients; `bench::linear_forward_flops`). Other rows and the backward \
pass leave it empty rather than guess.\n\n",
    );
    let drops = throughput_drops(res);
    if !drops.is_empty() {
        s.push_str(&format!("fwd+bwd throughput falls as the chunk grows for: {}.\n\n", drops.join("; ")));
    }
    s.push_str("| memory | `model.memory` (with `chunk_size` set per row) |\n|---|---|\n");
    for m in &res.memories {
        s.push_str(&format!("| {} | `{}` |\n", m.name, m.yaml));
    }
    s.push_str("\n![fwd+bwd tokens/s against chunk size](memory.png)\n");
    s
}

/// `memory: chunk a → b` wherever fwd+bwd tokens/s fall from one measured chunk size to the next.
pub fn throughput_drops(res: &BenchResult) -> Vec<String> {
    let mut out = vec![];
    for m in &res.memories {
        let pts: Vec<(usize, f64)> = m.cells.iter().filter_map(|c| c.timing.map(|t| (c.chunk, t.fwd_bwd))).collect();
        for w in pts.windows(2) {
            if w[1].1 < w[0].1 {
                out.push(format!(
                    "{} chunk {} → {} ({} → {} tok/s)",
                    m.name,
                    w[0].0,
                    w[1].0,
                    fmt_rate(w[0].1),
                    fmt_rate(w[1].1)
                ));
            }
        }
    }
    out
}

/// fwd+bwd tokens/s against chunk size (log₂ x, log₁₀ y), one line per memory.
/// `None` when no cell ran (every selected memory lacks a chunkwise form and chunk 1 was not asked for).
pub fn plot(res: &BenchResult, opts: &BenchOptions) -> Result<Option<Vec<u8>>> {
    let series: Vec<(String, Vec<(f64, f64)>)> = res
        .memories
        .iter()
        .map(|m| {
            let pts = m.cells.iter().filter_map(|c| c.timing.map(|t| (c.chunk as f64, t.fwd_bwd))).collect();
            (m.name.clone(), pts)
        })
        .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let title = format!(
        "memory fwd+bwd throughput, d = {}, T = {}, {} ({} threads)",
        opts.dim,
        opts.seq,
        device_name(opts.device),
        opts.threads
    );
    crate::report::plots::throughput_png(&title, "chunk size (log scale)", "tokens/s, fwd+bwd (log scale)", &series)
        .map(Some)
}
