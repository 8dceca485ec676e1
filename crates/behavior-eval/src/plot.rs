//! Figures with `plotters`, as SVG or PNG (chosen by the output path's extension).
//!
//! * [`long_tail`] — class frequency by rank (log scale) with the anchor/tail cut marked;
//! * [`recall_vs_frequency`] — per-class recall against class frequency for several systems;
//! * [`training_curves`] — any number of named `(step, value)` curves;
//! * [`scaling_law`] — `(size, loss)` points with a fitted [`PowerLawFit`] (log size axis);
//! * [`loglog_lines`] — measured series (markers and thin lines) with fitted series (dashed, same
//!   colour) on log–log axes.
//!
//! Every function takes the output path and writes **atomically**: SVG through
//! `behavior_data::io::write_atomic`, PNG to a temporary file in the same folder that is renamed
//! over the target. Text uses the embedded DejaVu Sans font (Bitstream Vera licence, see
//! `assets/DejaVuSans-LICENSE.txt`), so PNGs render text on machines without fonts.

use crate::scaling::PowerLawFit;
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 600);

/// Registers the embedded DejaVu Sans as the `sans-serif` family (normal and bold) for
/// `plotters`; idempotent, called by every plot function.
///
/// Call it yourself in a program that draws with `plotters` directly — for example a criterion
/// bench, whose HTML-report plots otherwise fail with `FontUnavailable`: the workspace enables
/// plotters' `ab_glyph` feature (for PNG text), and with it plotters knows only registered fonts.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TTF shipped with the crate; failure would be a packaging bug.
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, bytes);
    });
}

/// A figure that can draw itself on any backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

fn plot_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn render(path: &Path, fig: &impl Figure) -> Result<()> {
    register_fonts();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "svg" => {
            let mut buf = String::new();
            {
                let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
                fig.draw(&root).map_err(|e| plot_err(path, e))?;
                root.present().map_err(|e| plot_err(path, e))?;
            }
            behavior_data::io::write_atomic(path, buf.as_bytes())?;
            Ok(())
        }
        "png" => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Unique per process and call, so concurrent plots never share a temporary file.
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".{name}.tmp-{}-{seq}.png", std::process::id()));
            let drawn = (|| -> DrawResult {
                let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
                fig.draw(&root)?;
                root.present()?;
                Ok(())
            })();
            let result = drawn.map_err(|e| plot_err(path, e)).and_then(|()| {
                std::fs::rename(&tmp, path).map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        _ => Err(plot_err(path, "unsupported extension; use .svg or .png")),
    }
}

/// The legend every plot draws: its series labels at `position`, on a white box with a border.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// Compact tick labels: `20`, `0.25`, `1e6`.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn check_finite_points(what: &str, pts: &[(f64, f64)]) -> Result<()> {
    if let Some(i) = pts
        .iter()
        .position(|(x, y)| !x.is_finite() || !y.is_finite())
    {
        return Err(Error::InvalidArgument(format!(
            "{what}: point {i} is not finite: {:?}",
            pts[i]
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

struct LongTail {
    title: String,
    /// (rank, share, is_anchor), sorted by share descending, zero counts dropped.
    bars: Vec<(usize, f64, bool)>,
    n_anchor: usize,
    n_classes: usize,
    zero: usize,
}

impl Figure for LongTail {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let ymax = self.bars.first().map_or(1.0, |b| b.1);
        let ymin = self.bars.last().map_or(1e-6, |b| b.1);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                0.5f64..self.bars.len() as f64 + 0.5,
                (ymin * 0.5..ymax * 1.5).log_scale(),
            )?;
        let desc = if self.zero > 0 {
            format!(
                "class rank by training frequency ({} of {} classes unseen, not shown)",
                self.zero, self.n_classes
            )
        } else {
            "class rank by training frequency".to_string()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(desc)
            .y_desc("share of training events (log)")
            .x_label_formatter(&tick)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        for (anchor, name) in [(true, "anchor"), (false, "tail")] {
            let c = if anchor { color(3) } else { color(0) };
            let n = self.bars.iter().filter(|b| b.2 == anchor).count();
            chart
                .draw_series(
                    self.bars
                        .iter()
                        .filter(|b| b.2 == anchor)
                        .map(|&(r, s, _)| {
                            Rectangle::new(
                                [(r as f64 - 0.4, ymin * 0.5), (r as f64 + 0.4, s)],
                                c.mix(0.8).filled(),
                            )
                        }),
                )?
                .label(format!("{name} ({n} classes)"))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.filled()));
        }
        let cut = self.n_anchor as f64 + 0.5;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(cut, ymin * 0.5), (cut, ymax * 1.5)],
                8,
                5,
                BLACK.stroke_width(2),
            ))?
            .label("anchor / tail cut")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.stroke_width(2)));
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// Class frequency by rank on a log scale, anchors and tail coloured, the cut as a dashed line.
///
/// `counts[c]` are training-split counts, `is_anchor[c]` the partition (anchors are expected to
/// be the most frequent classes; the cut is drawn after the `#anchors`-th rank). Classes with a
/// zero count cannot be shown on a log scale; the axis label says how many were left out.
pub fn long_tail(path: &Path, title: &str, counts: &[u64], is_anchor: &[bool]) -> Result<()> {
    if counts.len() != is_anchor.len() {
        return Err(Error::Shape(format!(
            "counts has {} classes, is_anchor {}",
            counts.len(),
            is_anchor.len()
        )));
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Err(Error::Empty("long-tail plot: all counts are 0".into()));
    }
    let mut order: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let bars = order
        .iter()
        .enumerate()
        .map(|(r, &c)| (r + 1, counts[c] as f64 / total as f64, is_anchor[c]))
        .collect();
    let fig = LongTail {
        title: title.to_string(),
        bars,
        n_anchor: is_anchor.iter().filter(|&&a| a).count(),
        n_classes: counts.len(),
        zero: counts.len() - order.len(),
    };
    render(path, &fig)
}

// ---------------------------------------------------------------------------------------------

/// One system of a recall plot: name, `(frequency, recall)` per class, binned means.
type RecallSystem = (String, Vec<(f64, f64)>, Vec<(f64, f64)>);

struct RecallFreq {
    title: String,
    systems: Vec<RecallSystem>,
    xmin: f64,
    xmax: f64,
}

impl Figure for RecallFreq {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (self.xmin / 1.5..self.xmax * 1.5).log_scale(),
                -0.02f64..1.02,
            )?;
        chart
            .configure_mesh()
            .x_desc("class frequency in training (log)")
            .y_desc("per-class recall")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        for (i, (name, pts, bins)) in self.systems.iter().enumerate() {
            let c = color(i);
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.mix(0.35).filled())))?;
            chart
                .draw_series(LineSeries::new(bins.iter().copied(), c.stroke_width(3)))?
                .label(format!("{name} (binned mean)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(3))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

/// Per-class recall (y) against training frequency (x, log) for several systems: one dot per
/// class and system, and a line through the mean recall of each of 8 log-spaced frequency bins.
/// Classes with a zero count are left out (no place on a log axis).
pub fn recall_vs_frequency(
    path: &Path,
    title: &str,
    counts: &[u64],
    systems: &[(&str, &[f64])],
) -> Result<()> {
    if systems.is_empty() {
        return Err(Error::Empty("recall plot: no systems".into()));
    }
    let seen: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
    if seen.is_empty() {
        return Err(Error::Empty("recall plot: all counts are 0".into()));
    }
    let xmin = seen.iter().map(|&c| counts[c]).min().unwrap_or(1) as f64;
    let xmax = seen.iter().map(|&c| counts[c]).max().unwrap_or(1) as f64;
    let n_bins = 8usize;
    let (lmin, lmax) = (xmin.ln(), xmax.ln() + 1e-9);
    let bin_of = |x: f64| (((x.ln() - lmin) / (lmax - lmin)) * n_bins as f64) as usize;
    let mut out = Vec::new();
    for (name, recall) in systems {
        if recall.len() != counts.len() {
            return Err(Error::Shape(format!(
                "system {name:?} has {} recalls for {} classes",
                recall.len(),
                counts.len()
            )));
        }
        if let Some(c) = recall.iter().position(|r| !(0.0..=1.0).contains(r)) {
            return Err(Error::InvalidArgument(format!(
                "system {name:?}: recall[{c}] = {} is not in [0, 1]",
                recall[c]
            )));
        }
        let pts: Vec<(f64, f64)> = seen
            .iter()
            .map(|&c| (counts[c] as f64, recall[c]))
            .collect();
        let mut sums = vec![(0.0, 0.0, 0usize); n_bins];
        for &(x, r) in &pts {
            let b = bin_of(x).min(n_bins - 1);
            sums[b].0 += x.ln();
            sums[b].1 += r;
            sums[b].2 += 1;
        }
        let bins = sums
            .iter()
            .filter(|s| s.2 > 0)
            .map(|s| ((s.0 / s.2 as f64).exp(), s.1 / s.2 as f64))
            .collect();
        out.push((name.to_string(), pts, bins));
    }
    render(
        path,
        &RecallFreq {
            title: title.to_string(),
            systems: out,
            xmin,
            xmax,
        },
    )
}

// ---------------------------------------------------------------------------------------------

/// One named curve of a [`training_curves`] or [`loglog_lines`] plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points in drawing order (e.g. `(step, value)` in step order).
    pub points: Vec<(f64, f64)>,
}

struct Curves<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    log_y: bool,
}

impl Curves<'_> {
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + y0.abs().max(1.0) * 0.1;
        }
        (x0, x1, y0, y1)
    }
}

impl Figure for Curves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (x0, x1, y0, y1) = self.bounds();
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(self.title, (FONT, 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(self.x_label)
                    .y_desc(self.y_label)
                    .x_label_formatter(&tick)
                    .y_label_formatter(&tick)
                    .label_style((FONT, 14))
                    .axis_desc_style((FONT, 16))
                    .draw()?;
                for (i, s) in self.series.iter().enumerate() {
                    let c = color(i);
                    chart
                        .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))?
                        .label(s.name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2))
                        });
                }
                draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
            }};
        }
        if self.log_y {
            body!(builder.build_cartesian_2d(x0..x1, (y0 / 1.1..y1 * 1.1).log_scale())?);
        } else {
            let pad = (y1 - y0) * 0.05;
            body!(builder.build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)?);
        }
        Ok(())
    }
}

/// Training curves (e.g. train/valid loss or a metric per step). `log_y` needs positive values.
pub fn training_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<()> {
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(Error::Empty("training curves: no points".into()));
    }
    for s in series {
        check_finite_points(&s.name, &s.points)?;
        if log_y && s.points.iter().any(|p| p.1 <= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "series {:?} has values <= 0 on a log axis",
                s.name
            )));
        }
    }
    render(
        path,
        &Curves {
            title,
            x_label,
            y_label,
            series,
            log_y,
        },
    )
}

// ---------------------------------------------------------------------------------------------

struct Scaling<'a> {
    title: &'a str,
    x_label: &'a str,
    points: Vec<(f64, f64)>,
    fit: &'a PowerLawFit,
}

impl Figure for Scaling<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let xmin = self
            .points
            .iter()
            .map(|p| p.0)
            .fold(f64::INFINITY, f64::min)
            / 2.0;
        let xmax = self
            .points
            .iter()
            .map(|p| p.0)
            .fold(f64::NEG_INFINITY, f64::max)
            * 2.0;
        let curve: Vec<(f64, f64)> = (0..=200)
            .map(|i| {
                let x = (xmin.ln() + (xmax.ln() - xmin.ln()) * f64::from(i) / 200.0).exp();
                (x, self.fit.predict(x))
            })
            .filter(|p| p.1.is_finite())
            .collect();
        let ys = self
            .points
            .iter()
            .map(|p| p.1)
            .chain(curve.iter().map(|p| p.1));
        let (mut ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        if self.fit.c.is_finite() && self.fit.c < ymin && self.fit.c > ymin - (ymax - ymin) {
            ymin = self.fit.c; // keep the asymptote in view when it is close
        }
        let pad = ((ymax - ymin) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((xmin..xmax).log_scale(), ymin - pad..ymax + pad)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc("loss")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()?;
        let f = self.fit;
        chart
            .draw_series(LineSeries::new(curve, color(3).stroke_width(2)))?
            .label(format!(
                "fit: L = {:.3}·x^(−{:.3}) + {:.3}   (R² = {:.4})",
                f.a, f.alpha, f.c, f.r_squared
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color(3).stroke_width(2)));
        if f.c >= ymin - pad {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(xmin, f.c), (xmax, f.c)],
                    8,
                    5,
                    BLACK.into(),
                ))?
                .label(format!("irreducible loss c = {:.3}", f.c))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK));
        }
        chart
            .draw_series(
                self.points
                    .iter()
                    .map(|&p| Circle::new(p, 5, color(0).filled())),
            )?
            .label("measured")
            .legend(|(x, y)| Circle::new((x + 7, y), 5, color(0).filled()));
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// Measured `(size, loss)` points and the fitted curve (size on a log axis, loss linear), with
/// the formula and R² in the legend and the irreducible loss `c` as a dashed line when it is
/// within one data range below the points. Sizes must be positive.
pub fn scaling_law(
    path: &Path,
    title: &str,
    x_label: &str,
    sizes: &[f64],
    losses: &[f64],
    fit: &PowerLawFit,
) -> Result<()> {
    if sizes.len() != losses.len() {
        return Err(Error::Shape(format!(
            "{} sizes but {} losses",
            sizes.len(),
            losses.len()
        )));
    }
    if sizes.is_empty() {
        return Err(Error::Empty("scaling plot: no points".into()));
    }
    let points: Vec<(f64, f64)> = sizes.iter().copied().zip(losses.iter().copied()).collect();
    check_finite_points("scaling points", &points)?;
    if points.iter().any(|p| p.0 <= 0.0) {
        return Err(Error::InvalidArgument(
            "scaling plot needs sizes > 0 (log axis)".into(),
        ));
    }
    render(
        path,
        &Scaling {
            title,
            x_label,
            points,
            fit,
        },
    )
}

// ---------------------------------------------------------------------------------------------

struct LogLog<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    measured: &'a [Series],
    fitted: &'a [Series],
}

impl Figure for LogLog<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in self
            .measured
            .iter()
            .chain(self.fitted)
            .flat_map(|s| s.points.iter())
        {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (x0 / 1.5..x1 * 1.5).log_scale(),
                (y0 / 1.15..y1 * 1.15).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        for (i, s) in self.measured.iter().enumerate() {
            if s.points.is_empty() {
                continue;
            }
            let c = color(i);
            chart.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(1)))?;
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (16, 0)], c.stroke_width(1))
                        + Circle::new((8, 0), 4, c.filled())
                });
        }
        for (i, s) in self.fitted.iter().enumerate() {
            if s.points.is_empty() {
                continue;
            }
            let c = color(i);
            chart
                .draw_series(DashedLineSeries::new(
                    s.points.iter().copied(),
                    8,
                    5,
                    c.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6, 0)], c.stroke_width(2))
                        + PathElement::new(vec![(10, 0), (16, 0)], c.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// Measured and fitted curves on log–log axes (e.g. loss against compute, or a frontier with
/// its fitted power law).
///
/// Each measured series is drawn as markers joined by a thin line; fitted series `i` is drawn
/// dashed in the colour of measured series `i` (when there is one), in the order of its points.
/// Every series is named in the legend; empty series are skipped. Errors when there is no point
/// at all, and on a non-finite or non-positive coordinate (naming the series and point).
pub fn loglog_lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    measured: &[Series],
    fitted: &[Series],
) -> Result<()> {
    let all = || measured.iter().chain(fitted);
    if all().all(|s| s.points.is_empty()) {
        return Err(Error::Empty("log-log plot: no points".into()));
    }
    for s in all() {
        check_finite_points(&format!("series {:?}", s.name), &s.points)?;
        if let Some(i) = s.points.iter().position(|p| p.0 <= 0.0 || p.1 <= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "series {:?}: point {i} = {:?} is not positive (log-log axes)",
                s.name, s.points[i]
            )));
        }
    }
    render(
        path,
        &LogLog {
            title,
            x_desc,
            y_desc,
            measured,
            fitted,
        },
    )
}

// ---------------------------------------------------------------------------------------------

struct ScatterGroups {
    title: String,
    points: Vec<(f64, f64, bool)>,
    names: (String, String),
}

impl Figure for ScatterGroups {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in &self.points {
            x0 = x0.min(p.0);
            x1 = x1.max(p.0);
            y0 = y0.min(p.1);
            y1 = y1.max(p.1);
        }
        let pad = |a: f64, b: f64| ((b - a).abs() * 0.08).max(1e-6);
        let (px, py) = (pad(x0, x1), pad(y0, y1));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0 - px..x1 + px, y0 - py..y1 + py)?;
        chart
            .configure_mesh()
            .x_desc("component 1")
            .y_desc("component 2")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        for (i, (flag, name)) in [(true, &self.names.0), (false, &self.names.1)]
            .into_iter()
            .enumerate()
        {
            let c = color(i);
            chart
                .draw_series(
                    self.points
                        .iter()
                        .filter(|p| p.2 == flag)
                        .map(|p| Circle::new((p.0, p.1), 4, c.mix(0.7).filled())),
                )?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 7, y), 4, c.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// A scatter plot of `(x, y, in_first_group)` points in two colours, named `names.0` (flag
/// true) and `names.1` in the legend (e.g. a PCA of behaviour embeddings, anchor vs tail).
pub fn scatter_groups(
    path: &Path,
    title: &str,
    points: &[(f64, f64, bool)],
    names: (&str, &str),
) -> Result<()> {
    if points.is_empty() {
        return Err(Error::Empty("scatter plot: no points".into()));
    }
    if let Some(i) = points
        .iter()
        .position(|p| !p.0.is_finite() || !p.1.is_finite())
    {
        return Err(Error::InvalidArgument(format!(
            "scatter plot: point {i} is not finite"
        )));
    }
    render(
        path,
        &ScatterGroups {
            title: title.to_string(),
            points: points.to_vec(),
            names: (names.0.to_string(), names.1.to_string()),
        },
    )
}
