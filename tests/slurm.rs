//! Issue 16: a tiny study through a real Slurm. The test starts a one-node cluster on this machine with
//! `scripts/slurm-local.sh` (Debian's Slurm and MUNGE, installed with apt-get when missing; root needed) on
//! ports of its own, or uses the cluster `SLURM_CONF` names when `sinfo` answers; where neither is possible it
//! prints why and returns (CI without root stays green).
//!
//! `repro slurm --wait` submits the array job and the report job (afterany), waits, and the test checks the
//! runs, the logs, the report (the deliberately diverging row included: a failed task still gets its report),
//! and that a resubmission covers only the runs that are not done.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const STUDY: &str = r#"name: slurm_micro
paper: titans
task: { kind: mqar, vocab: 16, seq_len: 12, num_pairs: 3 }
model: { kind: lmm, dim: 8, heads: 2, segment_len: 4 }
training: { steps: 3, batch_size: 4, lr: 0.01, log_every: 1 }
evaluation: { batches: 1, batch_size: 4 }
seeds: [0, 1]
ablations:
  - name: LMM
  - name: MAC w/ persistent
    set: { model.kind: mac, model.persistent_tokens: 2 }
  - name: diverges
    set: { training.lr: 1.0e30, training.clip: 0 }
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running cluster: `SLURM_CONF`, and whether this test started it (then it stops it when dropped).
struct Cluster {
    conf: PathBuf,
    dir: Option<PathBuf>,
}

impl Cluster {
    fn script(dir: &Path, what: &str) -> Output {
        Command::new("bash")
            .arg(root().join("scripts/slurm-local.sh"))
            .arg(what)
            .env("SLURM_DIR", dir)
            .env("SLURM_CTLD_PORT", "6917")
            .env("SLURMD_PORT", "6918")
            .env("SLURM_CPUS", "4")
            .output()
            .expect("bash")
    }

    /// The cluster, or why there is none.
    fn get() -> Result<Self, String> {
        if let Some(conf) = std::env::var_os("SLURM_CONF") {
            let ok = Command::new("sinfo").env("SLURM_CONF", &conf).output().is_ok_and(|o| o.status.success());
            if ok {
                return Ok(Self { conf: conf.into(), dir: None });
            }
        }
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            return Err("not root: scripts/slurm-local.sh needs root to install and start Slurm".into());
        }
        let has = |c: &str| {
            Command::new("sh").args(["-c", &format!("command -v {c}")]).output().is_ok_and(|o| o.status.success())
        };
        if !has("sbatch") && !has("apt-get") {
            return Err("Slurm is not installed and there is no apt-get to install it".into());
        }
        let dir = root().join("target/slurm-test");
        let o = Self::script(&dir, "start");
        if !o.status.success() {
            return Err(format!(
                "scripts/slurm-local.sh start failed: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(Self { conf: dir.join("slurm.conf"), dir: Some(dir) })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let o = Self::script(d, "stop");
            if !o.status.success() {
                eprintln!("stopping the test cluster: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }
}

fn repro(conf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).env("SLURM_CONF", conf).output().expect("run repro")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_tiny_study_runs_to_a_report_through_slurm() {
    let cluster = match Cluster::get() {
        Ok(c) => c,
        Err(why) => {
            println!("SKIPPED a_tiny_study_runs_to_a_report_through_slurm: {why}");
            eprintln!("SKIPPED a_tiny_study_runs_to_a_report_through_slurm: {why}");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("slurm_micro.yaml");
    std::fs::write(&file, STUDY).unwrap();
    let out = tmp.path().join("out");
    let (f, o) = (file.to_str().unwrap(), out.to_str().unwrap());
    let started = std::time::Instant::now();
    let run = repro(&cluster.conf, &["slurm", f, "--out", o, "--wait"]);
    let t = text(&run);
    println!("repro slurm --wait ({:.1} s):\n{t}", started.elapsed().as_secs_f64());
    // the diverging row fails (exit 3), every other run is done
    assert_eq!(run.status.code(), Some(3), "{t}");
    assert!(t.contains("submitted array job") && t.contains("6 runs") && t.contains("4 of 6 runs done"), "{t}");
    let study = out.join("slurm_micro");
    let report = std::fs::read_to_string(study.join("report.md")).expect("the report job wrote report.md");
    assert!(report.contains("| LMM |") && report.contains("done (2/2)"), "{report}");
    assert!(report.contains("| diverges |") && report.contains("failed"), "{report}");
    assert!(study.join("memory_diagnostics.png").exists());
    // one log per array task and one for the report job, and the task logs name their runs
    let logs: Vec<String> = std::fs::read_dir(study.join("slurm/logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(logs.len(), 7, "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("row MAC w/ persistent, seed 1")), "{logs:?}");
    let submitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study.join("slurm/submitted.json")).unwrap()).unwrap();
    assert_eq!(submitted["tasks"].as_array().unwrap().len(), 6);

    // resubmitting covers only what is not done: the two failed runs
    let dry = repro(&cluster.conf, &["slurm", f, "--out", o, "--dry-run", "--fresh"]);
    let t = text(&dry);
    assert!(
        dry.status.success() && t.contains("2 array tasks (4 already done, skipped)") && t.contains("--array=0-1"),
        "{t}"
    );
    assert!(t.contains("ROWS=(diverges diverges)") && t.contains("--fresh"), "{t}");
    // without the failing row, everything is done and nothing is submitted
    std::fs::write(
        &file,
        STUDY.replace("  - name: diverges\n    set: { training.lr: 1.0e30, training.clip: 0 }\n", ""),
    )
    .unwrap();
    let none = repro(&cluster.conf, &["slurm", f, "--out", o]);
    assert!(none.status.success() && text(&none).contains("all 4 runs are done; nothing to submit"), "{}", text(&none));
}
