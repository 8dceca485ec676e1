//! Result tables: rows of named systems × columns of metrics, rendered as Markdown, CSV or JSON.
//!
//! A [`Report`] stores values in their natural unit (fractions in `[0, 1]` for the metrics of
//! this crate). Rendering:
//!
//! * [`Report::to_markdown`] is for people: values × 100 when `percent` is set (the papers print
//!   percentages), rounded to `decimals`; mean ± std cells as `63.17 ± 0.42`; a metric with any
//!   published value gets a `metric (paper)` column right after it; notes (protocol, verdicts)
//!   follow the table as a list.
//! * [`Report::to_csv`] is for programs: raw values at full precision, a `metric_std` column after
//!   each metric that has a mean ± std cell, `metric (paper)` columns as in Markdown; no notes.
//! * [`Report::to_json`] serialises the whole report (serde), [`Report::from_json`] reads it back.
//!
//! Rendering returns strings; writing files is the caller's job (the `experiments` crate).

use crate::classification::{ClassificationMetrics, ConfusionMatrix};
use crate::evaluate::Evaluation;
use crate::uncertainty::MeanStd;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// One table cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    /// No value (e.g. a metric a system does not have).
    Empty,
    /// A single value.
    Value(f64),
    /// Mean ± std across runs.
    MeanStd(MeanStd),
    /// Free text.
    Text(String),
}

/// One system's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// System name, e.g. `BehaviorLM (A→B)`.
    pub system: String,
    /// One cell per metric.
    pub cells: Vec<Cell>,
    /// The published value of each metric for this system, if any (same unit as `cells`).
    pub published: Vec<Option<f64>>,
}

/// A table of systems × metrics with optional published columns and notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Title (a Markdown heading).
    pub title: String,
    /// Metric (column) names.
    pub metrics: Vec<String>,
    /// Rows in insertion order.
    pub rows: Vec<ReportRow>,
    /// Lines printed under the table (protocol, verdicts).
    pub notes: Vec<String>,
    /// Markdown shows values × 100.
    pub percent: bool,
    /// Markdown decimals.
    pub decimals: usize,
}

impl Report {
    /// An empty report with these metric columns (`percent = true`, `decimals = 2`).
    pub fn new<S: Into<String>>(
        title: impl Into<String>,
        metrics: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            title: title.into(),
            metrics: metrics.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            percent: true,
            decimals: 2,
        }
    }

    /// Appends a row; `cells` must have one entry per metric and the system name must be new.
    pub fn add_row(&mut self, system: impl Into<String>, cells: Vec<Cell>) -> Result<()> {
        let system = system.into();
        if cells.len() != self.metrics.len() {
            return Err(Error::Shape(format!(
                "row {system:?} has {} cells for {} metrics",
                cells.len(),
                self.metrics.len()
            )));
        }
        if self.rows.iter().any(|r| r.system == system) {
            return Err(Error::InvalidArgument(format!(
                "report already has a row {system:?}"
            )));
        }
        let published = vec![None; cells.len()];
        self.rows.push(ReportRow {
            system,
            cells,
            published,
        });
        Ok(())
    }

    /// Appends a row of plain values.
    pub fn add_values(&mut self, system: impl Into<String>, values: &[f64]) -> Result<()> {
        self.add_row(system, values.iter().map(|&v| Cell::Value(v)).collect())
    }

    /// Appends a row from one evaluation per seed: each metric (looked up by
    /// [`Evaluation::metric`]) becomes a value (one run) or mean ± std (several runs); a metric no
    /// run has (e.g. `tail/…` without tail samples) is [`Cell::Empty`]; a metric only some runs
    /// have is an error (never a silent average over a subset).
    pub fn add_evaluations(
        &mut self,
        system: impl Into<String>,
        runs: &[Evaluation],
    ) -> Result<()> {
        if runs.is_empty() {
            return Err(Error::Empty(
                "add_evaluations needs at least one run".into(),
            ));
        }
        let mut cells = Vec::with_capacity(self.metrics.len());
        for m in &self.metrics {
            let vals: Vec<f64> = runs.iter().filter_map(|e| e.metric(m)).collect();
            if !vals.is_empty() && vals.len() < runs.len() {
                return Err(Error::InvalidArgument(format!(
                    "metric {m:?} exists in {} of {} runs; refusing to average a subset",
                    vals.len(),
                    runs.len()
                )));
            }
            cells.push(match vals.len() {
                0 => Cell::Empty,
                1 if runs.len() == 1 => Cell::Value(vals[0]),
                _ => Cell::MeanStd(MeanStd::from_values(&vals)?),
            });
        }
        self.add_row(system, cells)
    }

    /// The per-class table as a report: one row per class present in truth or predictions
    /// (`averaged` classes), columns `P`, `R`, `F1`, `support`. `names[c]` labels class `c`
    /// (default: the id).
    ///
    /// ```
    /// use behavior_eval::{classification, Report};
    /// let m = classification(&[0, 0, 1], &[0, 1, 1], 3)?;
    /// let r = Report::per_class("Per class", &m, Some(&["call", "maps", "mail"]))?;
    /// assert_eq!(r.rows.len(), 2); // "mail" is absent from truth and predictions
    /// assert!(r.to_markdown().contains("| call | 100.00 | 50.00 | 66.67 | 2 |"));
    /// # Ok::<(), behavior_eval::Error>(())
    /// ```
    pub fn per_class<S: AsRef<str>>(
        title: impl Into<String>,
        m: &ClassificationMetrics,
        names: Option<&[S]>,
    ) -> Result<Self> {
        if let Some(n) = names {
            if n.len() != m.per_class.len() {
                return Err(Error::Shape(format!(
                    "{} class names for {} classes",
                    n.len(),
                    m.per_class.len()
                )));
            }
        }
        let mut r = Report::new(title, ["P", "R", "F1", "support"]);
        for c in m.per_class.iter().filter(|c| c.averaged) {
            let name = names.map_or_else(
                || c.class.to_string(),
                |n| n[c.class as usize].as_ref().to_string(),
            );
            r.add_row(
                name,
                vec![
                    Cell::Value(c.precision),
                    Cell::Value(c.recall),
                    Cell::Value(c.f1),
                    Cell::Text(c.support.to_string()),
                ],
            )?;
        }
        Ok(r)
    }

    /// Records a published value (same unit as ours, e.g. `0.6317`) for `system` and `metric`.
    pub fn set_published(&mut self, system: &str, metric: &str, value: f64) -> Result<()> {
        let j = self.metric_index(metric)?;
        let row = self
            .rows
            .iter_mut()
            .find(|r| r.system == system)
            .ok_or_else(|| Error::InvalidArgument(format!("report has no row {system:?}")))?;
        row.published[j] = Some(value);
        Ok(())
    }

    /// Adds a note line under the table.
    pub fn add_note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn metric_index(&self, metric: &str) -> Result<usize> {
        self.metrics
            .iter()
            .position(|m| m == metric)
            .ok_or_else(|| Error::InvalidArgument(format!("report has no metric {metric:?}")))
    }

    fn has_published(&self, j: usize) -> bool {
        self.rows.iter().any(|r| r.published[j].is_some())
    }

    fn has_std(&self, j: usize) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.cells[j], Cell::MeanStd(_)))
    }

    fn fmt_num(&self, v: f64) -> String {
        let v = if self.percent { v * 100.0 } else { v };
        format!("{v:.*}", self.decimals)
    }

    /// A Markdown section: heading, table, notes.
    pub fn to_markdown(&self) -> String {
        let mut header = vec!["System".to_string()];
        for (j, m) in self.metrics.iter().enumerate() {
            header.push(m.clone());
            if self.has_published(j) {
                header.push(format!("{m} (paper)"));
            }
        }
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = format!("### {}\n\n", esc(&self.title));
        out += &format!(
            "| {} |\n",
            header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out += &format!("|---|{}\n", "---:|".repeat(header.len() - 1));
        for r in &self.rows {
            let mut cells = vec![esc(&r.system)];
            for (j, c) in r.cells.iter().enumerate() {
                cells.push(match c {
                    Cell::Empty => "-".to_string(),
                    Cell::Value(v) => self.fmt_num(*v),
                    Cell::MeanStd(m) => {
                        format!("{} ± {}", self.fmt_num(m.mean), self.fmt_num(m.std))
                    }
                    Cell::Text(t) => esc(t),
                });
                if self.has_published(j) {
                    cells.push(r.published[j].map_or_else(|| "-".to_string(), |v| self.fmt_num(v)));
                }
            }
            out += &format!("| {} |\n", cells.join(" | "));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out += &format!("- {n}\n");
            }
        }
        out
    }

    /// CSV with a header line (raw values, full precision; RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let mut header = vec!["system".to_string()];
        for (j, m) in self.metrics.iter().enumerate() {
            header.push(m.clone());
            if self.has_std(j) {
                header.push(format!("{m}_std"));
            }
            if self.has_published(j) {
                header.push(format!("{m} (paper)"));
            }
        }
        let mut out = csv_line(&header);
        for r in &self.rows {
            let mut f = vec![r.system.clone()];
            for (j, c) in r.cells.iter().enumerate() {
                let (v, s) = match c {
                    Cell::Empty => (String::new(), String::new()),
                    Cell::Value(v) => (v.to_string(), String::new()),
                    Cell::MeanStd(m) => (m.mean.to_string(), m.std.to_string()),
                    Cell::Text(t) => (t.clone(), String::new()),
                };
                f.push(v);
                if self.has_std(j) {
                    f.push(s);
                }
                if self.has_published(j) {
                    f.push(r.published[j].map(|v| v.to_string()).unwrap_or_default());
                }
            }
            out += &csv_line(&f);
        }
        out
    }

    /// Pretty JSON of the whole report.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Reads a report written by [`Report::to_json`], checking that every row has one cell and
    /// one published slot per metric.
    pub fn from_json(s: &str) -> Result<Self> {
        let r: Report = serde_json::from_str(s)?;
        for row in &r.rows {
            if row.cells.len() != r.metrics.len() || row.published.len() != r.metrics.len() {
                return Err(Error::Shape(format!(
                    "row {:?} does not have one cell per metric ({})",
                    row.system,
                    r.metrics.len()
                )));
            }
        }
        Ok(r)
    }
}

/// The confusion matrix as CSV: header `true\pred,<names…>`, one row per true class.
///
/// ```
/// use behavior_eval::{report::confusion_csv, ConfusionMatrix};
/// let cm = ConfusionMatrix::from_labels(&[0, 1, 1], &[0, 0, 1], 2)?;
/// assert_eq!(confusion_csv(&cm, Some(&["a", "b"]))?, "true\\pred,a,b\na,1,0\nb,1,1\n");
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn confusion_csv<S: AsRef<str>>(cm: &ConfusionMatrix, names: Option<&[S]>) -> Result<String> {
    let k = cm.n_classes();
    if let Some(n) = names {
        if n.len() != k {
            return Err(Error::Shape(format!(
                "{} class names for {k} classes",
                n.len()
            )));
        }
    }
    let name = |c: usize| names.map_or_else(|| c.to_string(), |n| n[c].as_ref().to_string());
    let mut header = vec!["true\\pred".to_string()];
    header.extend((0..k).map(name));
    let mut out = csv_line(&header);
    for (t, row) in cm.to_rows().iter().enumerate() {
        let mut f = vec![name(t)];
        f.extend(row.iter().map(u64::to_string));
        out += &csv_line(&f);
    }
    Ok(out)
}

fn csv_line(fields: &[String]) -> String {
    let q: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    q.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new("Table 2 | App Usage", ["P_w", "NDCG@3"]);
        r.add_values("Markov, chain", &[0.5, 0.61234]).unwrap();
        r.add_row(
            "ours",
            vec![
                Cell::MeanStd(MeanStd {
                    mean: 0.6,
                    std: 0.01,
                    n: 3,
                }),
                Cell::Empty,
            ],
        )
        .unwrap();
        r.set_published("ours", "P_w", 0.644).unwrap();
        r.add_note("verdict: within 5 points");
        r
    }

    #[test]
    fn markdown_layout() {
        let md = sample().to_markdown();
        let expected = "### Table 2 \\| App Usage\n\n\
            | System | P_w | P_w (paper) | NDCG@3 |\n\
            |---|---:|---:|---:|\n\
            | Markov, chain | 50.00 | - | 61.23 |\n\
            | ours | 60.00 ± 1.00 | 64.40 | - |\n\n\
            - verdict: within 5 points\n";
        assert_eq!(md, expected);
    }

    #[test]
    fn csv_and_json_round_trip() {
        let r = sample();
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "system,P_w,P_w_std,P_w (paper),NDCG@3");
        assert_eq!(lines[1], "\"Markov, chain\",0.5,,,0.61234");
        assert_eq!(lines[2], "ours,0.6,0.01,0.644,");
        let back = Report::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(Report::from_json(r#"{"title": 1}"#).is_err());
    }

    #[test]
    fn rejects_bad_rows() {
        let mut r = sample();
        assert!(r.add_values("x", &[1.0]).is_err());
        assert!(r.add_values("ours", &[1.0, 2.0]).is_err());
        assert!(r.set_published("nobody", "P_w", 0.1).is_err());
        assert!(r.set_published("ours", "F1", 0.1).is_err());
        assert!(r.add_evaluations("z", &[]).is_err());
    }
}
