//! The report's throughput and memory-diagnostics part: `memory_diagnostics.png` (eight panels against the
//! training step, one line per row, mean over seeds and memory layers: ‖M‖, ‖ΔM‖ per update, the ℓ2 surprise
//! ‖∇ℓ‖, the effective rank of a linear memory, the first three gates, and training tokens/s) and a table of
//! the same at the last logged step, with a line per diverged run naming the quantity that blew up first.
//! Definitions: `crate::models::diagnostics`.

use super::data::{MemoryPoint, RowSummary, StudySummary};
use super::plots::{bounds, fmt_axis, lines_on, padded, render_sized, wants_log, Series};
use super::stats::{fmt_num, mean_series};
use crate::models::diagnostics::LayerDiagnostics;
use anyhow::Result;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The file name of the figure inside the report folder.
pub const FILE: &str = "memory_diagnostics.png";

/// A quantity of one logged step, mean over the memory layers that have it.
fn layer_mean(layers: &[LayerDiagnostics], f: impl Fn(&LayerDiagnostics) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = layers.iter().filter_map(f).filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

type Getter = Box<dyn Fn(&LayerDiagnostics) -> Option<f64>>;

/// The quantities plotted and tabulated: (title, short name, getter).
fn quantities(gates: &[String]) -> Vec<(String, String, Getter)> {
    let mut q: Vec<(String, String, Getter)> = vec![
        ("‖M‖ (memory norm)".into(), "‖M‖".into(), Box::new(|l: &LayerDiagnostics| Some(l.memory_norm))),
        ("‖ΔM‖ per update".into(), "‖ΔM‖".into(), Box::new(|l: &LayerDiagnostics| Some(l.memory_update))),
        ("surprise ‖∇ℓ‖ (ℓ2)".into(), "surprise".into(), Box::new(|l: &LayerDiagnostics| Some(l.surprise))),
        ("effective rank of M".into(), "eff. rank".into(), Box::new(|l: &LayerDiagnostics| l.effective_rank)),
    ];
    for g in gates.iter().take(3) {
        let name = g.clone();
        q.push((
            format!("gate {g} (mean)"),
            g.clone(),
            Box::new(move |l: &LayerDiagnostics| l.gates.get(&name).copied()),
        ));
    }
    q
}

/// Gate names in the study, in order of first appearance (each layer's are sorted by name).
fn gate_names(s: &StudySummary) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for r in &s.rows {
        for run in &r.runs {
            for p in &run.memory {
                for l in &p.layers {
                    for g in l.gates.keys() {
                        if !out.contains(g) {
                            out.push(g.clone());
                        }
                    }
                }
            }
        }
    }
    out
}

fn has_data(s: &StudySummary) -> bool {
    s.rows.iter().any(|r| r.runs.iter().any(|run| run.memory.iter().any(|p| !p.layers.is_empty())))
}

/// One row's curve of a quantity: mean over seeds (and layers) at each step.
fn row_curve(r: &RowSummary, f: &dyn Fn(&LayerDiagnostics) -> Option<f64>) -> Vec<(f64, f64)> {
    let per_seed: Vec<Vec<(u64, f64)>> = r
        .runs
        .iter()
        .map(|run| {
            run.memory.iter().filter_map(|p: &MemoryPoint| layer_mean(&p.layers, f).map(|v| (p.step, v))).collect()
        })
        .collect();
    mean_series(&per_seed).into_iter().map(|(k, v)| (k as f64, v)).collect()
}

/// The figure, or None when no run logged diagnostics.
pub fn png(s: &StudySummary) -> Result<Option<Vec<u8>>> {
    if !has_data(s) {
        return Ok(None);
    }
    let mut panels: Vec<(String, Vec<Series>)> = quantities(&gate_names(s))
        .into_iter()
        .map(|(title, _, f)| (title, s.rows.iter().map(|r| (r.name.clone(), row_curve(r, f.as_ref()))).collect()))
        .collect();
    // training throughput is logged on every line (with or without diagnostics)
    let rate: Vec<Series> = s
        .rows
        .iter()
        .map(|r| {
            let per_seed: Vec<Vec<(u64, f64)>> = r
                .runs
                .iter()
                .map(|run| run.memory.iter().filter_map(|p| p.tokens_per_s.map(|v| (p.step, v))).collect())
                .collect();
            (r.name.clone(), mean_series(&per_seed).into_iter().map(|(k, v)| (k as f64, v)).collect())
        })
        .collect();
    panels.push(("training tokens/s".into(), rate));
    let panels: Vec<(String, Vec<Series>)> = panels
        .into_iter()
        // a row without this quantity keeps its (empty) series, so that every row has one colour throughout
        .filter(|(_, series)| series.iter().any(|(_, p)| !p.is_empty()))
        .collect();
    let cols = 4usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let bytes = render_sized(2000, 520 * rows as u32, |root| {
        let areas = root.split_evenly((rows, cols));
        for (i, ((title, series), area)) in panels.iter().zip(areas.iter()).enumerate() {
            // the legend once, in the first panel
            let series: Vec<Series> =
                series.iter().map(|(n, p)| (if i == 0 { n.clone() } else { String::new() }, p.clone())).collect();
            let (xmin, xmax) = bounds(&series, |p| p.0);
            let (ymin, ymax) = bounds(&series, |p| p.1);
            let xr = padded(xmin, xmax, false);
            let xfmt = |v: &f64| fmt_axis(*v);
            let legend = SeriesLabelPosition::UpperRight;
            if wants_log(ymin, ymax, 1.5) {
                let yr = (ymin / 1.5)..(ymax * 1.5);
                lines_on(area, title, "step", "log scale", &series, xr.0..xr.1, yr.log_scale(), &xfmt, 6, legend)?;
            } else {
                let yr = padded(ymin, ymax, false);
                lines_on(area, title, "step", "", &series, xr.0..xr.1, yr.0..yr.1, &xfmt, 6, legend)?;
            }
        }
        Ok(())
    })?;
    Ok(Some(bytes))
}

/// The first quantity of a diverged run to exceed 10× its first logged value (or to stop being finite), and
/// the step: what blew up first.
fn first_blowup(points: &[MemoryPoint], qs: &[(String, String, Getter)]) -> Option<(String, u64)> {
    let mut best: Option<(String, u64)> = None;
    for (_, name, f) in qs {
        let series: Vec<(u64, f64)> =
            points.iter().filter_map(|p| layer_mean(&p.layers, f.as_ref()).map(|v| (p.step, v))).collect();
        let Some(&(_, first)) = series.first() else { continue };
        let hit = series.iter().find(|(_, v)| !v.is_finite() || v.abs() > 10.0 * first.abs().max(1e-12));
        if let Some(&(step, _)) = hit {
            if best.as_ref().is_none_or(|b| step < b.1) {
                best = Some((name.clone(), step));
            }
        }
    }
    best
}

/// The markdown section (empty when no run logged throughput or diagnostics).
pub fn section(s: &StudySummary) -> String {
    let any_rate = s.rows.iter().any(|r| r.runs.iter().any(|run| run.tokens_per_s.is_some()));
    if !any_rate && !has_data(s) {
        return String::new();
    }
    let gates = gate_names(s);
    let qs = quantities(&gates);
    let mut out = String::new();
    let _ = writeln!(out, "## Throughput and memory diagnostics\n");
    let _ = writeln!(
        out,
        "Training tokens/s (batch × sequence length per second of training steps, excluding evaluation, \
         checkpoints and diagnostics; mean over seeds) and, at the last logged step, the memory diagnostics \
         (mean over seeds and memory layers): ‖M‖ the norm of the memory (the state the read depends on), ‖ΔM‖ \
         the mean size of one update, the surprise ‖∇ℓ‖ of ℓ = ‖M(k) − v‖², the effective rank of a linear \
         memory, and the gate means. Every logged step is in each run's `metrics.jsonl`.\n"
    );
    let head: Vec<&str> = qs.iter().map(|q| q.1.as_str()).collect();
    let _ = writeln!(out, "| row | train tok/s | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(head.len()));
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let show = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "—".into());
    for r in &s.rows {
        let rate = mean(r.runs.iter().filter_map(|run| run.tokens_per_s).collect());
        let cells: Vec<String> = qs
            .iter()
            .map(|(_, _, f)| {
                show(mean(
                    r.runs
                        .iter()
                        .filter_map(|run| {
                            run.memory
                                .iter()
                                .rev()
                                .find(|p| !p.layers.is_empty())
                                .and_then(|p| layer_mean(&p.layers, f.as_ref()))
                        })
                        .collect(),
                ))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            r.name.replace('|', "\\|"),
            rate.map(|x| format!("{x:.0}")).unwrap_or("—".into()),
            cells.join(" | ")
        );
    }
    let _ = writeln!(out);
    let mut blew: BTreeMap<String, String> = BTreeMap::new();
    for r in &s.rows {
        for run in r.runs.iter().filter(|run| run.status.starts_with("failed")) {
            let what = match first_blowup(&run.memory, &qs) {
                Some((q, step)) => format!("{q} first exceeded 10× its first logged value, at step {step}"),
                None => "no logged quantity exceeded 10× its first value before it stopped".into(),
            };
            blew.insert(format!("{} seed {}", r.name, run.seed), what);
        }
    }
    for (run, what) in &blew {
        let _ = writeln!(out, "- diverged run **{run}**: {what}");
    }
    if !blew.is_empty() {
        let _ = writeln!(out);
    }
    if has_data(s) {
        let _ = writeln!(out, "![Memory diagnostics]({FILE})\n");
    }
    out
}
