//! Reports of a study: `report.md` with the ablation table beside the paper's numbers, and PNG plots.
//!
//! [`write_report`] is the entry point; [`stats`] holds the pure statistics, [`plots`] the PNG
//! rendering and [`markdown`] the text.

pub mod data;
pub mod diagnostics;
pub mod markdown;
pub mod plots;
pub mod stats;

use anyhow::{Context, Result};
use data::{PlotKind, StudySummary};
use std::path::{Path, PathBuf};

/// Writes `dir/report.md` and the PNGs the study asks for in `s.plots` (only those with data), each
/// file atomically through [`crate::fsutil::write_atomic`]. Returns the paths written, plots first
/// and `report.md` last.
pub fn write_report(dir: &Path, s: &StudySummary) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut kinds = Vec::new();
    for &kind in &s.plots {
        if kinds.contains(&kind) {
            continue;
        }
        let png = match kind {
            PlotKind::TrainingCurves => plots::training_curves_png(s),
            PlotKind::FinalMetric => plots::final_metric_png(s),
            PlotKind::AccuracyVsLength => plots::accuracy_vs_length_png(s),
            PlotKind::RecallVsPairs => plots::recall_vs_pairs_png(s),
        }
        .with_context(|| format!("drawing {}", markdown::plot_file_name(kind)))?;
        if let Some(bytes) = png {
            let path = dir.join(markdown::plot_file_name(kind));
            crate::fsutil::write_atomic(&path, &bytes)?;
            written.push(path);
            kinds.push(kind);
        }
    }
    // throughput and memory diagnostics, whenever the runs logged them
    if let Some(bytes) = diagnostics::png(s).context("drawing the memory diagnostics")? {
        let path = dir.join(diagnostics::FILE);
        crate::fsutil::write_atomic(&path, &bytes)?;
        written.push(path);
    }
    let md = markdown::render(s, &kinds);
    let path = dir.join("report.md");
    crate::fsutil::write_atomic(&path, md.as_bytes())?;
    written.push(path);
    Ok(written)
}
