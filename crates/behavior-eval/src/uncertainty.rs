//! Uncertainty: mean ± std across seeds, bootstrap intervals, paired comparisons.
//!
//! * [`MeanStd`] — sample mean and the **sample** standard deviation (`ddof = 1`, what papers
//!   usually report as "± std over seeds"); a single value has std 0.
//! * [`bootstrap_mean`] / [`bootstrap`] — percentile bootstrap intervals from `resamples`
//!   resamples of the samples with replacement. Resample `b` draws from a ChaCha8 stream
//!   `(seed, b)`, so results are identical for any thread count. Percentiles interpolate
//!   linearly between order statistics (numpy's default).
//! * [`paired_bootstrap`] — system A vs B on the **same** samples: resamples sample indices once
//!   for both, reports the mean difference `A − B`, its percentile interval and a two-sided
//!   p-value `P(|d* − d̄| >= |d̄|)` (bootstrap distribution shifted to the null of no difference).
//! * [`mcnemar`] — exact McNemar (binomial sign) test on per-sample correctness:
//!   `p = min(1, 2 · P(Bin(b + c, ½) <= min(b, c)))` with `b` = A right & B wrong and `c` = A wrong
//!   & B right; `p = 1` when `b + c = 0`.
//! * [`mcnemar_test`] / [`mcnemar_counts`] — the same counts with every variant of the exact
//!   test ([`McNemarTest`]): two-sided exact (as [`mcnemar`]), two-sided **mid-p**
//!   `min(1, 2 P(X <= m) − P(X = m))` with `m = min(b, c)`, and the one-sided versions for "A is
//!   better" (`H1: b > c`): exact `P(X >= b) = P(X <= c)` and mid-p `P(X > b) + ½ P(X = b)`, where
//!   `X ~ Bin(b + c, ½)`. All are 1 when `b + c = 0` (no discordant pair, no evidence).

use crate::input::{check_finite, check_same_len};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Mean and sample standard deviation of a metric across runs (seeds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (`ddof = 1`); 0 for a single value.
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

impl MeanStd {
    /// Mean ± std of `values` (non-empty, finite).
    ///
    /// ```
    /// use behavior_eval::uncertainty::MeanStd;
    /// let m = MeanStd::from_values(&[0.5, 0.6, 0.7])?;
    /// assert!((m.mean - 0.6).abs() < 1e-12 && (m.std - 0.1).abs() < 1e-12);
    /// assert_eq!(format!("{m:.2}"), "0.60 ± 0.10");
    /// # Ok::<(), behavior_eval::Error>(())
    /// ```
    pub fn from_values(values: &[f64]) -> Result<Self> {
        if values.is_empty() {
            return Err(Error::Empty("no values for mean ± std".into()));
        }
        check_finite("values", values)?;
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n < 2 {
            0.0
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Ok(Self { mean, std, n })
    }
}

impl fmt::Display for MeanStd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(p) => write!(f, "{:.p$} ± {:.p$}", self.mean, self.std),
            None => write!(f, "{} ± {}", self.mean, self.std),
        }
    }
}

/// Settings of the bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    /// Number of resamples (>= 2).
    pub resamples: usize,
    /// Confidence level in (0, 1), e.g. 0.95.
    pub level: f64,
    /// Seed of the resampling streams.
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 1000,
            level: 0.95,
            seed: 0,
        }
    }
}

impl BootstrapConfig {
    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        if self.resamples < 2 {
            return Err(Error::InvalidArgument(format!(
                "bootstrap resamples = {}; need at least 2",
                self.resamples
            )));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "bootstrap level = {}; must lie in (0, 1)",
                self.level
            )));
        }
        Ok(())
    }
}

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the original samples.
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Confidence level.
    pub level: f64,
}

/// Linear-interpolated quantile of sorted values (numpy `method="linear"`).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub(crate) fn rng_for(seed: u64, b: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(b as u64);
    rng
}

/// Bootstrap statistics of `stat` over `resamples` index resamples of `0..n` (parallel,
/// deterministic).
fn resample_stats<F>(n: usize, cfg: &BootstrapConfig, stat: F) -> Vec<f64>
where
    F: Fn(&[usize]) -> f64 + Sync,
{
    (0..cfg.resamples)
        .into_par_iter()
        .map_init(Vec::new, |idx: &mut Vec<usize>, b| {
            let mut rng = rng_for(cfg.seed, b);
            idx.clear();
            idx.extend((0..n).map(|_| rng.random_range(0..n)));
            stat(idx)
        })
        .collect()
}

pub(crate) fn interval(estimate: f64, mut stats: Vec<f64>, level: f64) -> Result<Interval> {
    if let Some(i) = stats.iter().position(|v| v.is_nan()) {
        return Err(Error::NonFinite {
            what: "bootstrap statistic",
            location: format!("resample {i}"),
            value: stats[i],
        });
    }
    stats.sort_unstable_by(f64::total_cmp);
    let a = (1.0 - level) / 2.0;
    Ok(Interval {
        estimate,
        lower: quantile_sorted(&stats, a),
        upper: quantile_sorted(&stats, 1.0 - a),
        level,
    })
}

/// Percentile bootstrap interval of any statistic of `n` samples. `stat` receives the resampled
/// sample indices (with repetition) — e.g. compute macro-F1 of `y_true[idx]`, `y_pred[idx]`.
///
/// ```
/// use behavior_eval::uncertainty::{bootstrap, BootstrapConfig};
/// let correct = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
/// let mean = |idx: &[usize]| idx.iter().map(|&i| correct[i]).sum::<f64>() / idx.len() as f64;
/// let ci = bootstrap(correct.len(), &BootstrapConfig::default(), mean)?;
/// assert!(ci.lower <= ci.estimate && ci.estimate <= ci.upper);
/// assert_eq!(ci.estimate, 0.625);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn bootstrap<F>(n: usize, cfg: &BootstrapConfig, stat: F) -> Result<Interval>
where
    F: Fn(&[usize]) -> f64 + Sync,
{
    cfg.check()?;
    if n == 0 {
        return Err(Error::Empty("bootstrap over 0 samples".into()));
    }
    let all: Vec<usize> = (0..n).collect();
    let estimate = stat(&all);
    interval(estimate, resample_stats(n, cfg, &stat), cfg.level)
}

/// Percentile bootstrap interval of the mean of per-sample values (e.g. 0/1 correctness for
/// accuracy, per-sample NDCG gains, reciprocal ranks).
pub fn bootstrap_mean(values: &[f64], cfg: &BootstrapConfig) -> Result<Interval> {
    check_finite("values", values)?;
    bootstrap(values.len(), cfg, |idx| {
        idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
    })
}

/// Result of [`paired_bootstrap`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Samples compared.
    pub n: usize,
    /// Mean of A, mean of B.
    pub mean_a: f64,
    /// Mean of B.
    pub mean_b: f64,
    /// `mean(A − B)` with its bootstrap interval.
    pub difference: Interval,
    /// Two-sided bootstrap p-value of "no difference".
    pub p_value: f64,
}

/// Paired bootstrap of two systems' per-sample values on the same samples (see the
/// [module docs](self)).
///
/// ```
/// use behavior_eval::uncertainty::{paired_bootstrap, BootstrapConfig};
/// let a: Vec<f64> = (0..200).map(|i| f64::from(i % 4 != 0)).collect(); // 75 % right
/// let b: Vec<f64> = (0..200).map(|i| f64::from(i % 2 == 0)).collect(); // 50 % right
/// let cmp = paired_bootstrap(&a, &b, &BootstrapConfig::default())?;
/// assert!((cmp.difference.estimate - 0.25).abs() < 1e-12);
/// assert!(cmp.difference.lower > 0.0 && cmp.p_value < 0.01);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn paired_bootstrap(a: &[f64], b: &[f64], cfg: &BootstrapConfig) -> Result<PairedComparison> {
    check_same_len(("a", a.len()), ("b", b.len()))?;
    check_finite("a", a)?;
    check_finite("b", b)?;
    cfg.check()?;
    if a.is_empty() {
        return Err(Error::Empty("paired comparison over 0 samples".into()));
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let dbar = mean(&d);
    let stats = resample_stats(n, cfg, |idx| {
        idx.iter().map(|&i| d[i]).sum::<f64>() / n as f64
    });
    // Tolerance so that an exact zero difference gives p = 1 despite rounding.
    let tol = 1e-12 * (1.0 + dbar.abs());
    let extreme = stats
        .iter()
        .filter(|&&s| (s - dbar).abs() >= dbar.abs() - tol)
        .count();
    let p_value = extreme as f64 / stats.len() as f64;
    Ok(PairedComparison {
        n,
        mean_a: mean(a),
        mean_b: mean(b),
        difference: interval(dbar, stats, cfg.level)?,
        p_value,
    })
}

/// Result of [`mcnemar`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Samples where A is right and B wrong.
    pub a_only: u64,
    /// Samples where B is right and A wrong.
    pub b_only: u64,
    /// Exact two-sided p-value.
    pub p_value: f64,
}

/// Exact McNemar test of two systems' per-sample correctness (see the [module docs](self)).
///
/// ```
/// use behavior_eval::uncertainty::mcnemar;
/// let a = [true, true, true, true, true, true, false, true];
/// let b = [false, false, false, false, false, false, false, true];
/// let t = mcnemar(&a, &b)?; // 6 discordant pairs, all for A: p = 2 / 64
/// assert_eq!((t.a_only, t.b_only), (6, 0));
/// assert!((t.p_value - 2.0 / 64.0).abs() < 1e-12);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn mcnemar(correct_a: &[bool], correct_b: &[bool]) -> Result<McNemar> {
    check_same_len(
        ("correct_a", correct_a.len()),
        ("correct_b", correct_b.len()),
    )?;
    if correct_a.is_empty() {
        return Err(Error::Empty("McNemar test over 0 samples".into()));
    }
    let (mut b, mut c) = (0u64, 0u64);
    for (&x, &y) in correct_a.iter().zip(correct_b) {
        b += u64::from(x && !y);
        c += u64::from(!x && y);
    }
    Ok(McNemar {
        a_only: b,
        b_only: c,
        p_value: binomial_two_sided(b, c),
    })
}

/// Every variant of the exact McNemar test on the same discordant counts (see the
/// [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemarTest {
    /// Samples where A is right and B wrong (`b`).
    pub a_only: u64,
    /// Samples where B is right and A wrong (`c`).
    pub b_only: u64,
    /// Two-sided exact p-value `min(1, 2 P(X <= min(b, c)))` (scipy `binomtest(b, b + c)`).
    pub p_exact: f64,
    /// Two-sided mid-p value `min(1, 2 P(X <= m) − P(X = m))`, `m = min(b, c)`.
    pub p_mid: f64,
    /// One-sided exact p-value of "A is better", `P(X >= b)` (scipy
    /// `binomtest(b, b + c, alternative="greater")`).
    pub p_exact_greater: f64,
    /// One-sided mid-p value of "A is better", `P(X > b) + ½ P(X = b)`.
    pub p_mid_greater: f64,
}

/// [`McNemarTest`] from the discordant counts `a_only` (A right, B wrong) and `b_only`.
///
/// ```
/// use behavior_eval::uncertainty::mcnemar_counts;
/// let t = mcnemar_counts(6, 0); // 6 discordant pairs, all for A
/// assert!((t.p_exact - 2.0 / 64.0).abs() < 1e-15);
/// assert!((t.p_exact_greater - 1.0 / 64.0).abs() < 1e-15);
/// assert!((t.p_mid_greater - 0.5 / 64.0).abs() < 1e-15);
/// assert!((t.p_mid - 1.0 / 64.0).abs() < 1e-15);
/// ```
pub fn mcnemar_counts(a_only: u64, b_only: u64) -> McNemarTest {
    let (b, c) = (a_only, b_only);
    if b + c == 0 {
        return McNemarTest {
            a_only,
            b_only,
            p_exact: 1.0,
            p_mid: 1.0,
            p_exact_greater: 1.0,
            p_mid_greater: 1.0,
        };
    }
    let (cdf_m, pmf_m) = binomial_half_cdf(b.min(c), b + c);
    let (cdf_c, pmf_c) = binomial_half_cdf(c, b + c);
    McNemarTest {
        a_only,
        b_only,
        p_exact: (2.0 * cdf_m).min(1.0),
        p_mid: (2.0 * cdf_m - pmf_m).clamp(0.0, 1.0),
        // P(X >= b) = P(X <= c) and P(X = b) = P(X = c) by the symmetry of Bin(n, ½).
        p_exact_greater: cdf_c.min(1.0),
        p_mid_greater: (cdf_c - 0.5 * pmf_c).clamp(0.0, 1.0),
    }
}

/// [`McNemarTest`] of two systems' per-sample correctness on the same samples.
pub fn mcnemar_test(correct_a: &[bool], correct_b: &[bool]) -> Result<McNemarTest> {
    let t = mcnemar(correct_a, correct_b)?;
    Ok(mcnemar_counts(t.a_only, t.b_only))
}

/// `(P(X <= m), P(X = m))` for `X ~ Bin(n, ½)`, summed in log space (stable for large counts).
fn binomial_half_cdf(m: u64, n: u64) -> (f64, f64) {
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut log_c = 0.0f64; // ln C(n, i)
    let mut terms = Vec::with_capacity(m as usize + 1);
    for i in 0..=m {
        terms.push(log_c + ln_half_n);
        if i < n {
            log_c += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        }
    }
    let mx = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let cdf = mx.exp() * terms.iter().map(|t| (t - mx).exp()).sum::<f64>();
    let pmf = terms.last().copied().unwrap_or(f64::NEG_INFINITY).exp();
    (cdf.min(1.0), pmf)
}

/// `min(1, 2 P(Bin(b + c, ½) <= min(b, c)))`, summed in log space (stable for large counts).
fn binomial_two_sided(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let m = b.min(c);
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut log_c = 0.0f64; // ln C(n, 0)
    let mut terms = Vec::with_capacity(m as usize + 1);
    for i in 0..=m {
        terms.push(log_c + ln_half_n);
        log_c += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    let mx = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = mx.exp() * terms.iter().map(|t| (t - mx).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_and_errors() {
        let m = MeanStd::from_values(&[2.0]).unwrap();
        assert_eq!((m.mean, m.std, m.n), (2.0, 0.0, 1));
        assert!(MeanStd::from_values(&[]).is_err());
        assert!(MeanStd::from_values(&[1.0, f64::NAN]).is_err());
    }

    #[test]
    fn bootstrap_is_seeded_and_covers_the_mean() {
        let v: Vec<f64> = (0..500).map(|i| f64::from(i % 3 == 0)).collect();
        let cfg = BootstrapConfig {
            resamples: 400,
            level: 0.95,
            seed: 7,
        };
        let a = bootstrap_mean(&v, &cfg).unwrap();
        let b = bootstrap_mean(&v, &cfg).unwrap();
        assert_eq!(a, b);
        let c = bootstrap_mean(
            &v,
            &BootstrapConfig {
                seed: 8,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_ne!(a.lower, c.lower);
        assert!(a.lower < a.estimate && a.estimate < a.upper);
        // normal approximation: half-width ≈ 1.96 sqrt(p(1-p)/n) ≈ 0.041
        let half = (a.upper - a.lower) / 2.0;
        assert!((half - 0.041).abs() < 0.01, "half-width {half}");
        assert!(bootstrap_mean(&[], &cfg).is_err());
        assert!(bootstrap_mean(
            &v,
            &BootstrapConfig {
                level: 1.0,
                ..cfg.clone()
            }
        )
        .is_err());
        assert!(bootstrap_mean(
            &v,
            &BootstrapConfig {
                resamples: 1,
                ..cfg
            }
        )
        .is_err());
    }

    #[test]
    fn identical_systems_are_not_different() {
        let v: Vec<f64> = (0..100).map(|i| f64::from(i % 3 == 0)).collect();
        let p = paired_bootstrap(&v, &v, &BootstrapConfig::default()).unwrap();
        assert_eq!(p.difference.estimate, 0.0);
        assert_eq!(p.p_value, 1.0);
        let t = mcnemar(&[true, false], &[true, false]).unwrap();
        assert_eq!(t.p_value, 1.0);
        assert!(paired_bootstrap(&v, &v[1..], &BootstrapConfig::default()).is_err());
    }

    #[test]
    fn mcnemar_variants_match_scipy() {
        // Expected values from scipy 1.17.1:
        //   python3 -c "from scipy.stats import binomtest, binom; b, c = 3, 10; n = b + c;
        //     print(binomtest(b, n).pvalue, binomtest(b, n, alternative='greater').pvalue,
        //           binom.sf(b, n, .5) + .5 * binom.pmf(b, n, .5),
        //           min(1, 2 * binom.cdf(min(b, c), n, .5) - binom.pmf(min(b, c), n, .5)))"
        // (b, c, exact two-sided, exact greater, mid-p greater, mid-p two-sided)
        let cases = [
            (
                3,
                10,
                0.09228515625,
                0.98876953125,
                0.9713134765625,
                0.05737304687500002,
            ),
            (
                10,
                3,
                0.09228515625,
                0.046142578125,
                0.028686523437499986,
                0.05737304687500002,
            ),
            (7, 7, 1.0, 0.604736328125, 0.4999999999999999, 1.0),
            (
                15,
                4,
                0.0192108154296875,
                0.00960540771484375,
                0.005908966064453123,
                0.011817932128906253,
            ),
            (0, 1, 1.0, 1.0, 0.75, 0.4999999999999999),
            (1, 0, 1.0, 0.5, 0.25, 0.4999999999999999),
        ];
        for (b, c, exact, greater, mid_greater, mid) in cases {
            let t = mcnemar_counts(b, c);
            let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
            assert!(close(t.p_exact, exact), "{b},{c}: {t:?}");
            assert!(close(t.p_exact_greater, greater), "{b},{c}: {t:?}");
            assert!(close(t.p_mid_greater, mid_greater), "{b},{c}: {t:?}");
            assert!(close(t.p_mid, mid), "{b},{c}: {t:?}");
            assert!(close(t.p_exact, binomial_two_sided(b, c)));
        }
        let none = mcnemar_counts(0, 0);
        assert_eq!((none.p_exact, none.p_mid_greater), (1.0, 1.0));
        let big = mcnemar_counts(100_000, 90_000);
        assert!(big.p_mid_greater < 1e-100 && big.p_mid_greater > 0.0);
        let worse = mcnemar_counts(90_000, 100_000).p_mid_greater;
        assert!((worse - 1.0).abs() < 1e-9, "{worse}");
    }

    #[test]
    fn exact_binomial_matches_known_values() {
        // scipy.stats.binomtest(3, 13).pvalue = 0.09228515625
        assert!((binomial_two_sided(3, 10) - 0.092_285_156_25).abs() < 1e-12);
        assert!((binomial_two_sided(10, 3) - 0.092_285_156_25).abs() < 1e-12);
        assert_eq!(binomial_two_sided(5, 5), 1.0);
        // large counts stay finite and tiny
        let p = binomial_two_sided(100_000, 90_000);
        assert!(p < 1e-100);
    }
}
