//! Reports of a study: `report.md` with the ablation table beside the paper's numbers, and PNG plots.

pub mod data;

/// Interim: a bare table until the plotting report lands (replaced on merge).
pub fn write_report(dir: &std::path::Path, s: &data::StudySummary) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut md = format!("# {}\n\n| row | runs | metric |\n|---|---|---|\n", s.name);
    for r in &s.rows {
        let vals: Vec<String> = r.runs.iter().map(|x| format!("{:?}", x.final_metric)).collect();
        md.push_str(&format!("| {} | {} | {} |\n", r.name, r.runs.len(), vals.join(", ")));
    }
    let p = dir.join("report.md");
    crate::fsutil::write_atomic(&p, md.as_bytes())?;
    Ok(vec![p])
}
