//! PNG plots of a study, drawn with plotters into an RGB buffer and encoded with `image`.
//!
//! Each `*_png` function returns `Ok(None)` when the study holds no data for that plot.

use super::data::StudySummary;
use super::stats::{fmt_num, mean_series, row_stats};
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::sync::Once;

/// Width of every plot in pixels.
pub const WIDTH: u32 = 1024;
/// Height of every plot in pixels.
pub const HEIGHT: u32 = 640;

/// Series colours (the Tableau 10 palette), picked by row index.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

static FONT: Once = Once::new();

/// Registers DejaVu Sans as plotters' `sans-serif` font (once per process).
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        );
    });
}

fn perr<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

/// Renders with `draw` into a white WIDTH × HEIGHT canvas and returns the PNG bytes.
fn render(draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>) -> Result<Vec<u8>> {
    render_sized(WIDTH, HEIGHT, draw)
}

/// [`render`] on a `width × height` canvas.
pub(super) fn render_sized(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        draw(&root)?;
        root.present().map_err(perr)?;
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &buf,
        width,
        height,
        image::ColorType::Rgb8,
    )?;
    Ok(out)
}

/// Pads `[lo, hi]` for an axis; `zero` forces 0 into the range.
pub(super) fn padded(lo: f64, hi: f64, zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = if zero { (lo.min(0.0), hi.max(0.0)) } else { (lo, hi) };
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        lo -= 0.5;
        hi += 0.5;
    }
    let pad = 0.06 * (hi - lo);
    (if zero && lo >= 0.0 { 0.0 } else { lo - pad }, if zero && hi <= 0.0 { 0.0 } else { hi + pad })
}

/// Axis tick label: integers without decimals, otherwise up to four significant figures.
pub(super) fn fmt_axis(v: f64) -> String {
    if v == v.round() && v.abs() < 1e7 {
        return format!("{}", v as i64);
    }
    let s = fmt_num(v);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One named line.
pub(super) type Series = (String, Vec<(f64, f64)>);

/// A line chart with one series per row. `xlog2` plots x on a log₂ axis (ticks labelled with the
/// original values); `ylog` uses a log₁₀ y axis.
fn line_chart(title: &str, xdesc: &str, ydesc: &str, series: &[Series], xlog2: bool, ylog: bool) -> Result<Vec<u8>> {
    line_chart_at(title, xdesc, ydesc, series, xlog2, ylog, SeriesLabelPosition::UpperRight)
}

/// [`line_chart`] with the legend at `legend`.
fn line_chart_at(
    title: &str,
    xdesc: &str,
    ydesc: &str,
    series: &[Series],
    xlog2: bool,
    ylog: bool,
    legend: SeriesLabelPosition,
) -> Result<Vec<u8>> {
    let series: Vec<Series> = if xlog2 {
        series.iter().map(|(n, p)| (n.clone(), p.iter().map(|&(x, y)| (x.log2(), y)).collect())).collect()
    } else {
        series.to_vec()
    };
    let (xmin, xmax) = bounds(&series, |p| p.0);
    let (ymin, ymax) = bounds(&series, |p| p.1);
    let xfmt = move |v: &f64| if xlog2 { fmt_axis(2f64.powf(*v).round()) } else { fmt_axis(*v) };
    // on a log₂ axis, ask for about one tick per doubling so ticks fall on powers of two
    let x_labels = if xlog2 { ((xmax - xmin).ceil() as usize + 1).clamp(2, 12) } else { 10 };
    render(|root| {
        let xr = padded(xmin, xmax, false);
        if ylog {
            let yr = (ymin / 1.5)..(ymax * 1.5);
            lines_on(root, title, xdesc, ydesc, &series, xr.0..xr.1, yr.log_scale(), &xfmt, x_labels, legend)
        } else {
            let yr = padded(ymin, ymax, ymin >= 0.0 && ymin < 0.5 * ymax);
            lines_on(root, title, xdesc, ydesc, &series, xr.0..xr.1, yr.0..yr.1, &xfmt, x_labels, legend)
        }
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn lines_on<X, Y>(
    root: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    xdesc: &str,
    ydesc: &str,
    series: &[Series],
    x: X,
    y: Y,
    xfmt: &dyn Fn(&f64) -> String,
    x_labels: usize,
    legend: SeriesLabelPosition,
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(x, y)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc(xdesc)
        .y_desc(ydesc)
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .x_labels(x_labels)
        .x_label_formatter(xfmt)
        .y_label_formatter(&|v| fmt_axis(*v))
        .draw()
        .map_err(perr)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)).point_size(if pts.len() <= 40 {
                3
            } else {
                0
            }))
            .map_err(perr)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    // no legend for one series, or for unnamed series (a panel of a figure whose first panel has the legend)
    if series.len() > 1 && series.iter().any(|s| !s.0.is_empty()) {
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(legend)
            .draw()
            .map_err(perr)?;
    }
    Ok(())
}

/// Whether values spanning `[lo, hi]` (all positive) deserve a log axis.
pub(super) fn wants_log(lo: f64, hi: f64, decades: f64) -> bool {
    lo > 0.0 && hi / lo > 10f64.powf(decades)
}

pub(super) fn bounds(series: &[Series], f: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    series
        .iter()
        .flat_map(|s| s.1.iter())
        .map(f)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| (a.0.min(v), a.1.max(v)))
}

/// Training loss against step, the mean over seeds per row (log y when the losses span > 2 decades).
pub fn training_curves_png(s: &StudySummary) -> Result<Option<Vec<u8>>> {
    let series: Vec<Series> = s
        .rows
        .iter()
        .map(|r| {
            let curves: Vec<Vec<(u64, f64)>> =
                r.runs.iter().map(|run| run.curve.iter().map(|p| (p.step, p.loss)).collect()).collect();
            (r.name.clone(), mean_series(&curves).into_iter().map(|(k, v)| (k as f64, v)).collect::<Vec<_>>())
        })
        .filter(|(_, p): &Series| !p.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let (lo, hi) = bounds(&series, |p| p.1);
    let ylog = wants_log(lo, hi, 2.0);
    let title = format!("{}: training loss (mean over seeds)", s.name);
    let ydesc = if ylog { "training loss (log scale)" } else { "training loss" };
    line_chart(&title, "step", ydesc, &series, false, ylog).map(Some)
}

fn metric_label(s: &StudySummary) -> String {
    if s.metric.unit.is_empty() {
        s.metric.name.clone()
    } else {
        format!("{} ({})", s.metric.name, s.metric.unit)
    }
}

fn by_key_chart(
    s: &StudySummary,
    get: impl Fn(&super::data::RunData) -> Vec<(usize, f64)>,
    what: &str,
    xdesc: &str,
) -> Result<Option<Vec<u8>>> {
    let series: Vec<Series> = s
        .rows
        .iter()
        .map(|r| {
            let per_run: Vec<Vec<(usize, f64)>> = r.runs.iter().map(&get).collect();
            (r.name.clone(), mean_series(&per_run).into_iter().map(|(k, v)| (k as f64, v)).collect::<Vec<_>>())
        })
        .filter(|(_, p): &Series| !p.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let (lo, hi) = bounds(&series, |p| p.0);
    let xlog = wants_log(lo, hi, 0.9);
    let title = format!("{}: {what} (mean over seeds)", s.name);
    let xdesc = if xlog { format!("{xdesc} (log scale)") } else { xdesc.to_string() };
    line_chart(&title, &xdesc, &metric_label(s), &series, xlog, false).map(Some)
}

/// Accuracy against sequence length (needle-in-a-haystack), one line per row.
pub fn accuracy_vs_length_png(s: &StudySummary) -> Result<Option<Vec<u8>>> {
    by_key_chart(s, |r| r.by_length.clone(), "accuracy vs sequence length", "sequence length")
}

/// Recall against the number of stored pairs (capacity), one line per row.
pub fn recall_vs_pairs_png(s: &StudySummary) -> Result<Option<Vec<u8>>> {
    by_key_chart(s, |r| r.by_pairs.clone(), "recall vs number of pairs", "number of stored pairs")
}

/// Final metric per row: bars of the mean over finished seeds with ±1 sample-std error bars, and the
/// paper's number as a second bar on its own right-hand axis (its scale may differ from ours).
pub fn final_metric_png(s: &StudySummary) -> Result<Option<Vec<u8>>> {
    let stats: Vec<_> = s.rows.iter().map(row_stats).collect();
    if stats.iter().all(|st| st.mean.is_none()) {
        return Ok(None);
    }
    let n = s.rows.len();
    let names: Vec<String> = s
        .rows
        .iter()
        .zip(&stats)
        .map(|(r, st)| if st.mean.is_some() { r.name.clone() } else { format!("{} (no finished run)", r.name) })
        .collect();
    let (lo, hi) = stats
        .iter()
        .filter_map(|st| st.mean.map(|m| (m, st.std.unwrap_or(0.0))))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, (m, sd)| (a.0.min(m - sd), a.1.max(m + sd)));
    let (ylo, mut yhi) = padded(lo, hi, true);
    let paper: Vec<Option<f64>> =
        s.rows.iter().map(|r| s.paper_reference.as_ref().and_then(|p| p.values.get(&r.name).copied())).collect();
    let has_paper = paper.iter().any(|p| p.is_some());
    let pref = s.paper_reference.as_ref().filter(|_| has_paper);
    let (plo, phi) = match pref {
        Some(_) => {
            let b = paper.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &v| (a.0.min(v), a.1.max(v)));
            let (plo, phi) = padded(b.0, b.1, true);
            // head room for the legend
            yhi = ylo + 1.2 * (yhi - ylo);
            (plo, plo + 1.2 * (phi - plo))
        }
        None => (0.0, 1.0),
    };
    // inclusive integer range: n segments, one per row
    let xs = || (0..n - 1).into_segmented();
    let png = render(|root| {
        let title = format!("{}: final {} (mean ± std over seeds)", s.name, s.metric.name);
        let mut builder = ChartBuilder::on(root);
        builder.caption(title, ("sans-serif", 26)).margin(16).x_label_area_size(56).y_label_area_size(84);
        if has_paper {
            builder.right_y_label_area_size(84);
        }
        // the secondary coordinate (the paper's axis) takes over the right label area, so the
        // primary mesh labels only the left axis
        let mut chart = builder.build_cartesian_2d(xs(), ylo..yhi).map_err(perr)?.set_secondary_coord(xs(), plo..phi);
        let label_names = names.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("row")
            .y_desc(format!("ours: {}", metric_label(s)))
            .axis_desc_style(("sans-serif", 20))
            .label_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .x_labels(n)
            .x_label_formatter(&move |v| match v {
                SegmentValue::CenterOf(i) => label_names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| fmt_axis(*v))
            .draw()
            .map_err(perr)?;
        let (ours_c, paper_c) = (color(0), color(1));
        let empty = || Vec::<Rectangle<(SegmentValue<usize>, f64)>>::new();
        let (xpix, _) = chart.plotting_area().get_pixel_range();
        let seg = (xpix.end - xpix.start) as f64 / n as f64;
        let px = |i: usize, frac: f64| xpix.start + (seg * (i as f64 + frac)).round() as i32;
        let ours_span = if has_paper { (0.12, 0.50) } else { (0.2, 0.8) };
        let y_of = |v: f64| chart.backend_coord(&(SegmentValue::CenterOf(0), v)).1;
        let y0 = y_of(0.0f64.clamp(ylo, yhi));
        let label_font = ("sans-serif", 14).into_font();
        for (i, st) in stats.iter().enumerate() {
            let Some(m) = st.mean else { continue };
            let (x0, x1) = (px(i, ours_span.0), px(i, ours_span.1));
            let ym = y_of(m);
            root.draw(&Rectangle::new([(x0, y0), (x1, ym)], ours_c.filled())).map_err(perr)?;
            let xc = (x0 + x1) / 2;
            let mut ytop = ym.min(y0);
            if let Some(sd) = st.std {
                let (ya, yb) = (y_of(m + sd), y_of(m - sd));
                let style = BLACK.stroke_width(2);
                for pts in
                    [vec![(xc, ya), (xc, yb)], vec![(xc - 8, ya), (xc + 8, ya)], vec![(xc - 8, yb), (xc + 8, yb)]]
                {
                    root.draw(&PathElement::new(pts, style)).map_err(perr)?;
                }
                ytop = ytop.min(ya);
            }
            let txt = if st.values.len() == 1 { format!("{} (n=1)", fmt_num(m)) } else { fmt_num(m) };
            root.draw(&Text::new(txt, (x0, ytop - 20), label_font.color(&BLACK))).map_err(perr)?;
        }
        chart
            .draw_series(empty())
            .map_err(perr)?
            .label("ours: mean ± std over finished seeds")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], ours_c.filled()));
        if let Some(pref) = pref {
            chart
                .configure_secondary_axes()
                .y_desc(format!("paper ({})", pref.source))
                .axis_desc_style(("sans-serif", 20))
                .label_style(("sans-serif", 16))
                .y_label_formatter(&|v| fmt_axis(*v))
                .draw()
                .map_err(perr)?;
            let py = |v: f64| chart.borrow_secondary().backend_coord(&(SegmentValue::CenterOf(0), v)).1;
            let p0 = py(0.0f64.clamp(plo, phi));
            for (i, p) in paper.iter().enumerate() {
                let Some(v) = *p else { continue };
                let (x0, x1) = (px(i, 0.52), px(i, 0.88));
                let yv = py(v);
                root.draw(&Rectangle::new([(x0, p0), (x1, yv)], paper_c.mix(0.3).filled())).map_err(perr)?;
                root.draw(&Rectangle::new([(x0, p0), (x1, yv)], paper_c.stroke_width(2))).map_err(perr)?;
                root.draw(&Text::new(fmt_num(v), (x0, yv.min(p0) - 20), label_font.color(&paper_c))).map_err(perr)?;
            }
            chart
                .draw_secondary_series(empty())
                .map_err(perr)?
                .label(format!("paper, right axis ({}; its scale may differ)", pref.source))
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], paper_c.stroke_width(2)));
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(perr)?;
        }
        Ok(())
    })?;
    Ok(Some(png))
}

/// A throughput chart: one line per series against a log₂ x axis (e.g. chunk size) and a log₁₀ y axis, the
/// legend upper left (throughput grows with the chunk, so the upper right is where the lines end).
pub fn throughput_png(title: &str, xdesc: &str, ydesc: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<Vec<u8>> {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return Err(anyhow!("plotting: no measured points"));
    }
    line_chart_at(title, xdesc, ydesc, series, true, true, SeriesLabelPosition::UpperLeft)
}
