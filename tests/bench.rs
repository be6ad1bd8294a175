//! `repro bench memory` end to end on a tiny shape (no timing assertions): the table, the report and the plot
//! are written, and bad arguments give one-line errors.

use std::process::{Command, Output};

fn repro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).output().expect("run repro")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A failing command prints one `error:` line, no panic and no usage block, and exits non-zero.
fn assert_one_line_error(o: &Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "expected failure: {t}");
    assert!(t.starts_with("error:") && t.contains(needle), "expected `{needle}` in: {t}");
    assert_eq!(t.trim_end().lines().count(), 1, "not one line: {t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn bench_memory_prints_the_table_and_writes_report_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = repro(&[
        "bench",
        "memory",
        "--seq",
        "16",
        "--dim",
        "4",
        "--chunks",
        "1,4",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--out",
        out,
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("| memory | chunk | fwd tok/s | fwd+bwd tok/s |"), "{stdout}");
    for name in ["linear", "mlp", "moneta", "yaad", "memora", "gated-deltanet"] {
        assert!(stdout.contains(&format!("| {name} | 1 |")), "{name} missing: {stdout}");
    }
    // the preset has no chunkwise form: its chunk-4 cell is skipped
    assert!(stdout.contains("| gated-deltanet | 4 | — | — |"), "{stdout}");
    assert!(stdout.contains("GEMM"), "{stdout}");

    let md = std::fs::read_to_string(dir.path().join("bench/memory.md")).unwrap();
    assert!(md.contains("| linear | 4 |") && md.contains("GEMM rate") && md.contains("Machine:"), "{md}");
    assert!(md.contains("repro bench memory --seq 16"), "{md}");
    let png = std::fs::read(dir.path().join("bench/memory.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

#[test]
fn bench_bad_arguments_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["bench", "memory", "--out", out, "-q"];
        args.extend_from_slice(extra);
        repro(&args)
    };
    assert_one_line_error(&run(&["--seq", "0"]), "--seq 0: must be at least 1");
    assert_one_line_error(&run(&["--seq", "-5"]), "--seq -5: must be at least 1");
    assert_one_line_error(&run(&["--seq", "abc"]), "--seq abc: not an integer");
    assert_one_line_error(&run(&["--dim", "0"]), "--dim 0");
    assert_one_line_error(&run(&["--dim", "2.5"]), "--dim 2.5: not an integer");
    assert_one_line_error(&run(&["--chunks", "1,0"]), "`0` is not a chunk size");
    assert_one_line_error(&run(&["--chunks", "8,x"]), "`x` is not a chunk size");
    assert_one_line_error(&run(&["--chunks", "1,,4"]), "comma-separated list");
    assert_one_line_error(&run(&["--repeats", "0"]), "--repeats 0");
    assert_one_line_error(&run(&["--threads", "-1"]), "--threads -1");
    let o = run(&["--memories", "linear,lstm"]);
    assert_one_line_error(&o, "unknown memory `lstm`");
    assert!(text(&o).contains("moneta") && text(&o).contains("gated-deltanet"), "{}", text(&o));
    assert_one_line_error(&repro(&["bench", "tnt", "--out", out]), "unknown benchmark `tnt` (known: memory)");
    assert!(!dir.path().join("bench").exists(), "a refused run wrote files");
}

#[test]
fn bench_chunk_longer_than_the_sequence_runs() {
    let dir = tempfile::tempdir().unwrap();
    let o = repro(&[
        "bench",
        "--memories",
        "linear",
        "--seq",
        "8",
        "--dim",
        "4",
        "--chunks",
        "16",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "-q",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("| linear | 16 |"), "{t}");
}

#[test]
fn bench_every_memory_name_runs() {
    let dir = tempfile::tempdir().unwrap();
    let all = repro::bench::MEMORIES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",");
    let o = repro(&[
        "bench",
        "memory",
        "--memories",
        &all,
        "--seq",
        "8",
        "--dim",
        "4",
        "--chunks",
        "1,2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "-q",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for (name, _) in repro::bench::MEMORIES {
        assert!(t.contains(&format!("| {name} | 1 |")), "{name} missing: {t}");
    }
}

#[test]
fn bench_peers_without_the_peer_venv_says_how_to_create_it() {
    // run from an empty folder: no benches/peers/.venv there, so the flag fails before any timing
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_repro"))
        .args(["bench", "memory", "--peers", "--seq", "8", "--dim", "4", "--chunks", "1", "--repeats", "1", "-q"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&o, "benches/peers/setup.sh");
    assert!(!dir.path().join("reports").exists(), "nothing is written when the peer cannot run");
}
