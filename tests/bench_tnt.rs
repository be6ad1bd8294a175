//! `repro bench tnt` end to end on a tiny shape (no timing assertions): the speed table with every row and
//! chunk size, the report (with where the time goes) and the plot are written; a chunk that does not divide the
//! shard is a one-line error.

use std::process::{Command, Output};

fn repro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro")).args(args).output().expect("run repro")
}

#[test]
fn bench_tnt_writes_table_report_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "bench",
        "tnt",
        "--seq",
        "300",
        "--dim",
        "4",
        "--chunks",
        "1,8",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "-q",
        "--out",
        out,
    ];
    let o = repro(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains(
            "| C (chunkwise C / TNT C_L) | sequential fwd+bwd tok/s | chunkwise fwd+bwd tok/s | tnt fwd+bwd tok/s"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\n| 1 | ") && stdout.contains("\n| 8 | "), "{stdout}");
    let md = std::fs::read_to_string(dir.path().join("bench/tnt.md")).unwrap();
    assert!(
        md.contains("Where TNT's time goes") && md.contains("17.37×") && md.contains("repro bench tnt --seq 300"),
        "{md}"
    );
    let png = std::fs::read(dir.path().join("bench/tnt.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    let bad = repro(&["bench", "tnt", "--seq", "16", "--dim", "4", "--chunks", "3", "-q", "--out", out]);
    let t = format!("{}{}", String::from_utf8_lossy(&bad.stdout), String::from_utf8_lossy(&bad.stderr));
    assert!(
        !bad.status.success() && t.starts_with("error:") && t.contains("--chunks 3") && !t.contains("panicked"),
        "{t}"
    );
    assert_eq!(t.trim_end().lines().count(), 1, "{t}");
}
