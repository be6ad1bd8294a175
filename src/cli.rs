//! The `repro` command line.

use crate::bench::{self, BenchOptions};
use crate::check::CheckEnv;
use crate::device::{device_name, parse_device};
use crate::eval::{self, Impl};
use crate::experiment::runner::{run_study_selected, write_report, RunOptions};
use crate::experiment::select::Selection;
use crate::experiment::slurm::{self, SlurmOptions};
use crate::registry::{self, Status};
use crate::tensor::{kind_name, parse_kind};
use crate::verify;
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "repro",
    version,
    about = "Equation-by-equation reproduction of Titans, MIRAS, ATLAS, TNT and Nested Learning",
    long_about = "Every numbered equation of the five papers is implemented twice — an f64 ndarray reference \
(token by token, hand-derived gradients) and a tch/libtorch implementation (batched, autograd) — and checked \
against each other. `papers/<key>.yaml` is the registry of equations, their code and their checks."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the equations of the registry with their status, checks and code.
    Equations {
        /// Only this paper (titans, miras, atlas, tnt, nl).
        #[arg(long)]
        paper: Option<String>,
        /// Only equations with this status.
        #[arg(long, value_enum)]
        status: Option<Status>,
    },
    /// Run the checks (tch vs the ndarray reference, finite differences, equivalences) and print a table
    /// of errors; writes reports/verify/<device>-<dtype>.md and exits non-zero if any check fails.
    Verify {
        /// Only the checks of this paper.
        #[arg(long)]
        paper: Option<String>,
        /// Only this check (a name from `repro equations`).
        #[arg(long)]
        check: Option<String>,
        /// Device for the tch side: cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// dtype for the tch side (the reference is always f64): f32 or f64.
        #[arg(long, default_value = "f64")]
        dtype: String,
        /// Number of random seeds per check.
        #[arg(long, default_value_t = 2)]
        seeds: usize,
        /// Folder for the markdown report.
        #[arg(long, default_value = "reports/verify")]
        out: PathBuf,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run one update rule on your own tensors (safetensors) and write its outputs and final state, to check
    /// another implementation against ours. `repro eval --list` lists the rules; `repro eval RULE --describe`
    /// lists a rule's tensors and shapes.
    Eval {
        /// The rule, e.g. titans.linear_memory.
        rule: Option<String>,
        /// List the rules.
        #[arg(long)]
        list: bool,
        /// Print the rule's input and output tensors, shapes and parameters.
        #[arg(long)]
        describe: bool,
        /// Input tensors (safetensors, f32 or f64).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Where to write the outputs (safetensors).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Which implementation runs.
        #[arg(long = "impl", value_enum, default_value = "reference")]
        implementation: Impl,
        /// Device for --impl torch: cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// dtype of the torch computation and of the written outputs: f32 or f64.
        #[arg(long, default_value = "f64")]
        dtype: String,
        /// A rule parameter, name=value (repeatable; see --describe).
        #[arg(long = "param")]
        params: Vec<String>,
    },
    /// Train and evaluate the ablation rows of experiment files (experiments/*.yaml) and write
    /// reports/<name>/: report.md beside the paper's numbers, PNG plots, and one run folder per (row, seed)
    /// with manifest, metrics and checkpoints. Finished runs are skipped and interrupted ones resume.
    ///
    /// Any memory trains in any model (lmm, mac, mag, mal): `model.memory.kind` is linear, mlp, framework,
    /// moneta, yaad, memora, preset, omega, atlas, tnt or hope, e.g. --set 'model.memory={kind: mlp, layers: 2, expansion: 4}' or
    /// --set 'model.memory={kind: preset, name: gated-deltanet}' (fields: README, "Memories").
    /// Any model's feed-forward can be a Continuum Memory System that learns in context (Nested Learning
    /// Eqs. 70–74): --set 'model.cms={periods: [4, 16]}' (fields periods, expansion, lr, second_order, layout;
    /// README, "Continuum Memory System").
    Run {
        /// Experiment YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Size preset from the file's `scales:` (tiny runs on a 2-core CPU in minutes; paper is the paper's
        /// own configuration, for a GPU cluster).
        #[arg(long, default_value = "tiny")]
        scale: String,
        /// Override a config value, e.g. --set model.dim=128 (repeatable; applied last).
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Device (overrides the file's `device`): cpu, cuda, cuda:N or auto.
        #[arg(long)]
        device: Option<String>,
        /// Root folder of the reports.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Discard stored runs whose configuration differs from the file's, and retry failed (or unreadable)
        /// runs from scratch.
        #[arg(long)]
        fresh: bool,
        /// No progress bars (also when CI is set).
        #[arg(long, short)]
        quiet: bool,
        /// Stop each run after this many steps, keeping its checkpoint (simulates an interruption).
        #[arg(long, hide = true)]
        stop_after: Option<usize>,
        /// Only these ablation rows: ROW[,ROW…] (repeatable; a value that is exactly a row name is one row).
        #[arg(long)]
        only: Vec<String>,
        /// Only these seeds (of the study's): 0,2.
        #[arg(long)]
        seeds: Option<String>,
        /// Only the i-th of n shards of the selected (row, seed) grid, i/n with 0 <= i < n (run j goes to shard
        /// j mod n): n processes with --shard 0/n … n-1/n share one study folder and run every run once.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Run a study on a Slurm cluster: writes <out>/<name>/slurm/array.sbatch (one array job over the (row,
    /// seed) runs not yet done, each task a `repro run --only ROW --seeds S`) and report.sbatch (`repro
    /// report`, after the array with afterany), and submits both. Resubmitting skips finished runs.
    Slurm {
        /// The experiment YAML file.
        file: PathBuf,
        /// Size preset from the file's `scales:`.
        #[arg(long, default_value = "tiny")]
        scale: String,
        /// Override a config value (repeatable), as for `repro run`.
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Device for the runs (overrides the file's): cpu, cuda, cuda:N or auto.
        #[arg(long)]
        device: Option<String>,
        /// Root folder of the reports (on storage the compute nodes share).
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Slurm partition of both jobs.
        #[arg(long)]
        partition: Option<String>,
        /// GPUs per array task.
        #[arg(long)]
        gpus_per_task: Option<u32>,
        /// CPUs per array task.
        #[arg(long)]
        cpus_per_task: Option<u32>,
        /// Time limit of each job, in Slurm's format (e.g. 4:00:00).
        #[arg(long)]
        time: Option<String>,
        /// At most this many array tasks at once.
        #[arg(long)]
        max_parallel: Option<u32>,
        /// Print the scripts and the sbatch commands; write and submit nothing.
        #[arg(long)]
        dry_run: bool,
        /// The tasks retry failed runs (and discard runs of another configuration), as `repro run --fresh`.
        #[arg(long)]
        fresh: bool,
        /// Wait for both jobs to end, then say how every run ended (exit 3 if one is not done).
        #[arg(long)]
        wait: bool,
    },
    /// Regenerate an experiment's report (markdown and plots) from its stored runs, without training.
    Report {
        /// The experiment's report folder, e.g. reports/quickstart.
        dir: PathBuf,
    },
    /// Throughput of the memory layers: forward and forward+backward tokens/s of each memory at each chunk
    /// size (median after warm-up), beside the machine's GEMM rate; prints a table and writes
    /// <out>/bench/memory.md and memory.png.
    Bench {
        /// The benchmark: memory, or tnt (sequential vs chunkwise vs TNT's hierarchy; `--memories` unused).
        #[arg(default_value = "memory")]
        what: String,
        /// Device: cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// libtorch CPU threads (default: every available core).
        #[arg(long, allow_hyphen_values = true)]
        threads: Option<String>,
        /// Head width d_k = d_v.
        #[arg(long, default_value = "64", allow_hyphen_values = true)]
        dim: String,
        /// Sequence length T (tokens per run).
        #[arg(long, default_value = "1024", allow_hyphen_values = true)]
        seq: String,
        /// Chunk sizes, comma-separated (1 = sequential).
        #[arg(long, default_value = "1,8,16,32,64", allow_hyphen_values = true)]
        chunks: String,
        /// Memories, comma-separated (linear, mlp, framework, moneta, yaad, memora, or a preset such as
        /// gated-deltanet).
        #[arg(long, default_value = crate::bench::DEFAULT_MEMORIES)]
        memories: String,
        /// Timed runs per cell (the median is reported).
        #[arg(long, default_value = "5", allow_hyphen_values = true)]
        repeats: String,
        /// Untimed runs before them.
        #[arg(long, default_value = "2", allow_hyphen_values = true)]
        warmup: String,
        /// Root folder of the reports (the files go to <out>/bench/).
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Also run titans-pytorch 0.5.5's NeuralMemory on the same shapes (its default, and the paper's
        /// semantics chunk_size=1, batch_size=C) and compare; needs `bash benches/peers/setup.sh` once.
        #[arg(long)]
        peers: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Runs the CLI; the error, if any, is printed by `main` as one line.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Equations { paper, status } => equations(paper.as_deref(), status),
        Command::Verify { paper, check, device, dtype, seeds, out, quiet } => {
            if seeds == 0 {
                bail!("--seeds must be at least 1");
            }
            let device = parse_device(&device)?;
            let kind = parse_kind(&dtype)?;
            let papers = match &paper {
                Some(p) => vec![registry::load(p)?],
                None => registry::load_all()?,
            };
            let env = CheckEnv::new(device, kind, seeds);
            let rows = verify::run(&papers, &env, check.as_deref(), quiet)?;
            print!("{}", verify::table(&rows, &env));
            let path = verify::write_report(&out, &rows, &env)?;
            let failed = rows.iter().filter(|r| !r.pass()).count();
            println!(
                "{} of {} checks pass on {} {}; report: {}",
                rows.len() - failed,
                rows.len(),
                device_name(device),
                kind_name(kind),
                path.display()
            );
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Command::Eval { rule, list, describe, inputs, out, implementation, device, dtype, params } => {
            if list {
                for r in eval::all_rules() {
                    println!("{:32} {}", r.name, r.summary);
                }
                return Ok(0);
            }
            let Some(rule) = rule else { bail!("name a rule (see `repro eval --list`)") };
            let params = params.iter().map(|p| eval::parse_param(p)).collect::<Result<Vec<_>>>()?;
            let rule = eval::find_rule(&rule, &params)?;
            if describe {
                print!("{}", eval::describe(&rule));
                return Ok(0);
            }
            let Some(inputs) = inputs else { bail!("--inputs FILE.safetensors is required (see --describe)") };
            let Some(out) = out else { bail!("--out FILE.safetensors is required") };
            let device = parse_device(&device)?;
            let kind = parse_kind(&dtype)?;
            println!("{}", eval::run_file(&rule, &inputs, &out, implementation, device, kind)?);
            Ok(0)
        }
        Command::Run { files, scale, sets, device, out, fresh, quiet, stop_after, only, seeds, shard } => {
            let sel = Selection::parse(&only, seeds.as_deref(), shard.as_deref())?;
            let mut any_failed = false;
            for file in files {
                let opts = RunOptions {
                    scale: scale.clone(),
                    sets: sets.clone(),
                    out: out.clone(),
                    quiet,
                    fresh,
                    stop_after,
                    device: device.clone(),
                };
                let o = run_study_selected(&file, &opts, &sel)?;
                println!("{}: report in {}", file.display(), o.dir.join("report.md").display());
                for f in &o.failed {
                    println!("  failed run: {f}");
                }
                for b in &o.busy {
                    println!("  run held by another process (skipped): {b}");
                }
                any_failed |= !o.failed.is_empty();
            }
            Ok(if any_failed { 3 } else { 0 })
        }
        Command::Slurm {
            file,
            scale,
            sets,
            device,
            out,
            partition,
            gpus_per_task,
            cpus_per_task,
            time,
            max_parallel,
            dry_run,
            fresh,
            wait,
        } => {
            let o = SlurmOptions {
                scale,
                sets,
                out,
                device,
                partition,
                gpus_per_task,
                time,
                cpus_per_task,
                max_parallel,
                dry_run,
                fresh,
                wait,
                binary: None,
            };
            slurm_command(&file, &o)
        }
        Command::Report { dir } => {
            for f in write_report(&dir)? {
                println!("wrote {}", f.display());
            }
            Ok(0)
        }
        Command::Bench { what, device, threads, dim, seq, chunks, memories, repeats, warmup, out, peers, quiet } => {
            if !bench::BENCHMARKS.contains(&what.as_str()) {
                bail!("unknown benchmark `{what}` (known: {})", bench::BENCHMARKS.join(", "));
            }
            let opts = BenchOptions {
                dim: bench::parse_count("--dim", &dim, 1)?,
                seq: bench::parse_count("--seq", &seq, 1)?,
                chunks: bench::parse_chunks(&chunks)?,
                memories: bench::parse_memories(&memories)?,
                repeats: bench::parse_count("--repeats", &repeats, 1)?,
                warmup: bench::parse_count("--warmup", &warmup, 0)?,
                threads: bench::parse_threads(threads.as_deref())?,
                device: parse_device(&device)?,
                out,
                quiet,
                peers,
                command: std::iter::once("repro".to_string())
                    .chain(std::env::args().skip(1))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            if what == "tnt" {
                crate::bench_tnt::run_tnt(&opts, crate::bench_tnt::DEFAULT_SIZES)?;
            } else {
                bench::run_memory(&opts)?;
            }
            Ok(0)
        }
    }
}

fn slurm_command(file: &std::path::Path, o: &SlurmOptions) -> Result<i32> {
    let sub = slurm::submit(file, o)?;
    if sub.tasks.is_empty() {
        println!(
            "{}: all {} runs are done; nothing to submit (report: `repro report {}`)",
            file.display(),
            sub.done,
            sub.dir.display()
        );
        return Ok(0);
    }
    let skipped = if sub.done > 0 { format!(" ({} already done, skipped)", sub.done) } else { String::new() };
    if o.dry_run {
        let sdir = sub.dir.join("slurm");
        println!("# {}/array.sbatch: {} array tasks{skipped}\n{}", sdir.display(), sub.tasks.len(), sub.array_script);
        println!("# {}/report.sbatch\n{}", sdir.display(), sub.report_script);
        println!("# submitted with:\n#   A=$(sbatch --parsable {0}/array.sbatch)\n#   sbatch --parsable --dependency=afterany:$A {0}/report.sbatch", sdir.display());
        return Ok(0);
    }
    let (a, r) = sub.jobs.clone().expect("submitted");
    println!("submitted array job {a} ({} runs{skipped}) and report job {r} (afterany:{a})", sub.tasks.len());
    println!("logs: {}; report: {}", sub.dir.join("slurm/logs").display(), sub.dir.join("report.md").display());
    if !o.wait {
        return Ok(0);
    }
    slurm::wait(&(a, r), std::time::Duration::from_secs(7 * 24 * 3600))?;
    let mut not_done = 0;
    for (row, seed) in &sub.tasks {
        let status = crate::experiment::store::RunDir::new(&sub.dir, row, *seed)
            .result()
            .ok()
            .flatten()
            .map(|r| r.status)
            .unwrap_or_else(|| "no result (the task did not finish; see its log)".into());
        if status != "done" {
            not_done += 1;
            println!("  {row} seed {seed}: {status}");
        }
    }
    println!(
        "{} of {} runs done; report: {}",
        sub.tasks.len() - not_done,
        sub.tasks.len(),
        sub.dir.join("report.md").display()
    );
    Ok(if not_done == 0 { 0 } else { 3 })
}

fn equations(paper: Option<&str>, status: Option<Status>) -> Result<i32> {
    let papers = match paper {
        Some(p) => vec![registry::load(p)?],
        None => registry::load_all()?,
    };
    for p in &papers {
        let eqs: Vec<_> = p.equations.iter().filter(|e| status.is_none_or(|s| e.status == s)).collect();
        let verified = p.equations.iter().filter(|e| e.status == Status::Verified).count();
        println!(
            "{} — {} (arXiv {} {}): {} equations, {} verified",
            p.key,
            p.title,
            p.arxiv,
            p.version,
            p.equations.len(),
            verified
        );
        for e in eqs {
            let code = e
                .code
                .as_ref()
                .map(|c| format!("{} | {}", c.reference, c.torch))
                .unwrap_or_else(|| e.reason.clone().unwrap_or_default());
            println!(
                "  {:11} {:>5}  {:17}  {:40}  {}",
                e.id,
                e.number,
                e.status.name(),
                if e.checks.is_empty() { "-".to_string() } else { e.checks.join(",") },
                code
            );
        }
        println!();
    }
    Ok(0)
}
