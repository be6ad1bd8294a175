//! `report.md`: the ablation table beside the paper's numbers, the ordering check, plots, overrides
//! and the configuration.

use super::data::{PlotKind, StudySummary};
use super::stats::{compare_orderings, fmt_num, ranking, row_stats, OrderingVerdict, RowStats};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write;

/// File name of each plot inside the report folder.
pub fn plot_file_name(kind: PlotKind) -> &'static str {
    match kind {
        PlotKind::TrainingCurves => "training_curves.png",
        PlotKind::FinalMetric => "final_metric.png",
        PlotKind::AccuracyVsLength => "accuracy_vs_length.png",
        PlotKind::RecallVsPairs => "recall_vs_pairs.png",
    }
}

fn plot_title(kind: PlotKind) -> &'static str {
    match kind {
        PlotKind::TrainingCurves => "Training curves",
        PlotKind::FinalMetric => "Final metric",
        PlotKind::AccuracyVsLength => "Accuracy vs sequence length",
        PlotKind::RecallVsPairs => "Recall vs number of pairs",
    }
}

/// Escapes text for a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// "mean ± std (n seeds)", "mean (n=1)" or "— (no finished run)".
pub fn fmt_ours(st: &RowStats) -> String {
    match (st.mean, st.std) {
        (None, _) => "— (no finished run)".to_string(),
        (Some(m), None) => format!("{} (n=1)", fmt_num(m)),
        (Some(m), Some(sd)) => format!("{} ± {} ({} seeds)", fmt_num(m), fmt_num(sd), st.values.len()),
    }
}

/// The status cell: `done` when every run finished, else each run's status by seed.
fn fmt_status(row: &super::data::RowSummary) -> String {
    if row.runs.is_empty() {
        return "no runs".to_string();
    }
    if row.runs.iter().all(|r| r.status == "done") {
        return format!("done ({}/{})", row.runs.len(), row.runs.len());
    }
    row.runs.iter().map(|r| format!("seed {}: {}", r.seed, r.status)).collect::<Vec<_>>().join("; ")
}

fn fmt_seeds(row: &super::data::RowSummary) -> String {
    row.runs
        .iter()
        .map(|r| match r.final_metric {
            Some(v) if v.is_finite() => format!("s{}: {}", r.seed, fmt_num(v)),
            _ => format!("s{}: —", r.seed),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn direction(higher: bool) -> &'static str {
    if higher {
        "higher is better"
    } else {
        "lower is better"
    }
}

fn relation(o: Ordering) -> &'static str {
    match o {
        Ordering::Greater => "better than",
        Ordering::Less => "worse than",
        Ordering::Equal => "tied with",
    }
}

/// Rows best first, joined by ` > `, or ` = ` between tied rows.
fn ranked(values: &BTreeMap<String, f64>, higher_is_better: bool) -> String {
    let order = ranking(values, higher_is_better);
    let mut out = String::new();
    for (i, name) in order.iter().enumerate() {
        if i > 0 {
            out.push_str(if values[&order[i - 1]] == values[name] { " = " } else { " > " });
        }
        out.push_str(name);
    }
    out
}

/// The ordering section: our ranking against the paper's over rows with both numbers.
fn ordering_section(s: &StudySummary, stats: &[RowStats], out: &mut String) {
    let _ = writeln!(out, "## Ordering\n");
    let Some(p) = &s.paper_reference else {
        let _ = writeln!(out, "Cannot be judged: the study has no paper reference.\n");
        return;
    };
    let ours: BTreeMap<String, f64> = s
        .rows
        .iter()
        .zip(stats)
        .filter(|(r, _)| p.values.contains_key(&r.name))
        .filter_map(|(r, st)| st.mean.map(|m| (r.name.clone(), m)))
        .collect();
    let paper: BTreeMap<String, f64> =
        p.values.iter().filter(|(k, _)| ours.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect();
    let missing: Vec<&str> = s
        .rows
        .iter()
        .filter(|r| p.values.contains_key(&r.name) && !ours.contains_key(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    let _ = writeln!(
        out,
        "Compared over the rows that have both a paper number and at least one finished run of ours; ours: {} ({}), paper: {}.\n",
        s.metric.name,
        direction(s.metric.higher_is_better),
        direction(p.higher_is_better)
    );
    if !missing.is_empty() {
        let _ = writeln!(out, "Left out (paper number but no finished run of ours): {}.\n", missing.join(", "));
    }
    match compare_orderings(&ours, s.metric.higher_is_better, &paper, p.higher_is_better) {
        OrderingVerdict::CannotJudge { comparable } => {
            let _ =
                writeln!(out, "**Cannot be judged**: only {comparable} comparable row(s); at least 2 are needed.\n");
        }
        v => {
            let _ = writeln!(out, "- ours, best first: {}", ranked(&ours, s.metric.higher_is_better));
            let _ = writeln!(out, "- paper, best first: {}\n", ranked(&paper, p.higher_is_better));
            match v {
                OrderingVerdict::Matches { comparable } => {
                    let _ = writeln!(out, "**Ordering matches** the paper's over all {comparable} comparable rows.\n");
                }
                OrderingVerdict::Differs { comparable, pairs } => {
                    let _ = writeln!(
                        out,
                        "**Ordering differs** from the paper's: {} of {} pairs of the {comparable} comparable rows are ordered differently:\n",
                        pairs.len(),
                        comparable * (comparable - 1) / 2
                    );
                    for d in pairs {
                        let _ = writeln!(
                            out,
                            "- `{a}` vs `{b}`: ours {a} is {} {b} ({} vs {}); paper {a} is {} {b} ({} vs {})",
                            relation(d.ours),
                            fmt_num(ours[&d.a]),
                            fmt_num(ours[&d.b]),
                            relation(d.paper),
                            fmt_num(paper[&d.a]),
                            fmt_num(paper[&d.b]),
                            a = d.a,
                            b = d.b,
                        );
                    }
                    let _ = writeln!(out);
                }
                OrderingVerdict::CannotJudge { .. } => unreachable!(),
            }
        }
    }
}

/// Renders `report.md`; `written` are the plots actually drawn (the others are listed as not drawn).
pub fn render(s: &StudySummary, written: &[PlotKind]) -> String {
    let stats: Vec<RowStats> = s.rows.iter().map(row_stats).collect();
    let mut out = String::new();
    let _ = writeln!(out, "# {} ({})\n", s.name, s.paper);
    let _ = writeln!(out, "{}\n", s.description);
    let _ = writeln!(out, "- scale: `{}`", s.scale);
    let _ = writeln!(out, "- device: `{}`", s.device);
    let unit = if s.metric.unit.is_empty() { String::new() } else { format!(", {}", s.metric.unit) };
    let _ = writeln!(out, "- metric: {}{unit} ({})\n", s.metric.name, direction(s.metric.higher_is_better));

    let _ = writeln!(out, "## Ablation table\n");
    let paper_head = match &s.paper_reference {
        Some(p) => format!("paper ({}, {})", p.source, direction(p.higher_is_better)),
        None => "paper".to_string(),
    };
    let _ = writeln!(
        out,
        "| row | ours: {}{unit}, mean ± std over finished seeds | {} | per-seed values | status |",
        s.metric.name,
        cell(&paper_head)
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (r, st) in s.rows.iter().zip(&stats) {
        let paper = s
            .paper_reference
            .as_ref()
            .and_then(|p| p.values.get(&r.name))
            .map(|v| fmt_num(*v))
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&r.name),
            cell(&fmt_ours(st)),
            paper,
            cell(&fmt_seeds(r)),
            cell(&fmt_status(r))
        );
    }
    let _ = writeln!(out);
    if let Some(p) = &s.paper_reference {
        let _ = writeln!(out, "Paper numbers: {} — {}\n", p.source, p.note);
    }

    ordering_section(s, &stats, &mut out);

    let _ = writeln!(out, "## Plots\n");
    if s.plots.is_empty() {
        let _ = writeln!(out, "No plots requested.\n");
    }
    let mut seen = Vec::new();
    for &k in &s.plots {
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        if written.contains(&k) {
            let _ = writeln!(out, "![{}]({})\n", plot_title(k), plot_file_name(k));
        } else {
            let _ = writeln!(out, "- {}: not drawn (no data)\n", plot_title(k));
        }
    }

    out.push_str(&super::diagnostics::section(s));

    let _ = writeln!(out, "## Row overrides\n");
    for r in &s.rows {
        if r.overrides.is_empty() {
            let _ = writeln!(out, "- **{}**: base configuration", r.name);
        } else {
            let o: Vec<String> = r.overrides.iter().map(|(k, v)| format!("`{k}: {v}`")).collect();
            let _ = writeln!(out, "- **{}**: {}", r.name, o.join(", "));
        }
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "## Configuration\n");
    let fence = if s.config_yaml.contains("```") { "~~~~" } else { "```" };
    let _ = writeln!(out, "{fence}yaml\n{}\n{fence}", s.config_yaml.trim_end());
    out
}
