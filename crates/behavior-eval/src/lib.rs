//! Metrics, reports and plots for behaviour prediction.
//!
//! Every method in this workspace ends in the same place: a row-major score matrix
//! `[n_samples, K]` over the closed label set, plus the true class of each sample. This crate
//! turns that into the numbers the three papers publish, with no libtorch: inputs are plain
//! slices.
//!
//! * [`classification`](mod@classification) — accuracy, precision/recall/F1 (macro and weighted, scikit-learn
//!   semantics with `zero_division=0`), per-class table, [`ConfusionMatrix`];
//! * [`ranking`](mod@ranking) — `HR@k`, `NDCG@k`, `MRR` over the full label set, with a documented
//!   [tie rule](mod@ranking#tie-rule): by default the exact expectation under random
//!   tie-breaking ([`TieBreak`]);
//! * [`evaluate`](mod@evaluate) — both at once, overall and on anchor-target / tail-target samples, in one
//!   parallel pass;
//! * [`uncertainty`] — mean ± std across seeds, seeded bootstrap intervals, paired comparisons
//!   (paired bootstrap, exact and mid-p McNemar);
//! * [`claim`] — a verdict ([`claim::Verdict`]) on "method beats the best baseline by ≥ X %":
//!   mean ± std over seeds, best baseline, relative and absolute gain, paired bootstrap over test
//!   samples (macro metrics recomputed per resample) and per-seed McNemar;
//! * [`generation`] — JSD and TVD between behaviour histograms, corpus BLEU-n;
//! * [`scaling`] — fit `L(x) = a·x^(−α) + c` and the joint `L(N, D) = E + A/N^α + B/D^β` with
//!   R², seeded bootstrap intervals of their parameters, and the compute frontier;
//! * [`report`] — a [`Report`] table (systems × metrics, mean ± std cells, published columns)
//!   rendered as Markdown, CSV or JSON;
//! * [`plot`] — long-tail, per-class recall, training-curve and scaling-law figures (SVG/PNG).
//!
//! ```
//! use behavior_eval::{evaluate, EvalConfig, Report, ScoreMatrix};
//!
//! // 4 samples, 3 classes; class 0 is an anchor.
//! let scores = [
//!     0.8, 0.1, 0.1, //
//!     0.2, 0.7, 0.1, //
//!     0.5, 0.2, 0.3, //
//!     0.1, 0.3, 0.6, //
//! ];
//! let s = ScoreMatrix::new(&scores, 4, 3)?;
//! let e = evaluate(&s, &[0, 1, 2, 2], Some(&[true, false, false]), &EvalConfig { ks: vec![1, 3] })?;
//! assert_eq!(e.metric("accuracy"), Some(0.75));
//! assert_eq!(e.metric("R_w"), Some(0.75)); // weighted recall = accuracy
//! assert_eq!(e.metric("HR@3"), Some(1.0));
//! assert_eq!(e.metric("anchor/accuracy"), Some(1.0));
//!
//! let mut report = Report::new("Toy", ["R_w", "NDCG@3", "tail/R_w"]);
//! report.add_evaluations("ours", &[e])?;
//! report.set_published("ours", "R_w", 0.70)?;
//! let md = report.to_markdown();
//! assert!(md.contains("| ours | 75.00 | 70.00 |"));
//! # Ok::<(), behavior_eval::Error>(())
//! ```

pub mod claim;
pub mod classification;
pub mod error;
pub mod evaluate;
pub mod generation;
mod input;
pub mod pca;
pub mod plot;
pub mod ranking;
pub mod report;
pub mod scaling;
pub mod synthetic;
pub mod uncertainty;

pub use classification::{classification, ClassMetrics, ClassificationMetrics, ConfusionMatrix};
pub use error::{Error, Result};
pub use evaluate::{evaluate, evaluate_with, EvalConfig, Evaluation, Group, GroupMetrics};
pub use input::ScoreMatrix;
pub use ranking::{
    ranking, ranking_from_ranks, ranking_with, target_ranks, top1, RankingMetrics, TieBreak,
};
pub use report::{Cell, Report};
pub use scaling::{
    bootstrap_joint, bootstrap_power_law, compute_frontier, fit_joint_power_law, fit_power_law,
    fit_power_law_floor, JointCi, JointFit, PowerLawCi, PowerLawFit,
};
