//! Metrics for long-term behaviour generation (BehaveGPT): distribution distances between
//! behaviour histograms and BLEU-n between generated and true sequences.
//!
//! * [`jensen_shannon`] — `JSD(P, Q) = ½ KL(P‖M) + ½ KL(Q‖M)`, `M = ½(P + Q)`, with **base-2**
//!   logarithms so it lies in `[0, 1]` (the divergence, not its square root — scipy's
//!   `jensenshannon(p, q, base=2) ** 2`);
//! * [`total_variation`] — `TVD(P, Q) = ½ Σ |P_i − Q_i|` in `[0, 1]`.
//!
//! Both normalise their inputs (counts or weights: every entry finite and `>= 0`, the sum
//! positive **and finite** — entries whose sum overflows `f64` are rejected, not silently
//! normalised to zeros). Errors name the argument (`p` or `q`) and the position.
//!
//! * [`corpus_bleu`] — corpus-level BLEU with one reference per candidate (the NLTK
//!   `corpus_bleu` definition): clipped n-gram precisions `p_n` summed over the corpus for
//!   `n = 1..=N`, uniform weights `1/N`, brevity penalty `BP = exp(1 − r/c)` if the total candidate
//!   length `c` is below the total reference length `r`, else 1.
//!   **Smoothing** ([`BleuSmoothing`]): `None` returns 0 as soon as some `p_n` has no match;
//!   `Epsilon(ε)` replaces a zero numerator by `ε` (Chen & Cherry 2014 method 1, NLTK's
//!   `SmoothingFunction().method1`, ε = 0.1 by default). As in NLTK, a candidate too short to
//!   hold any n-gram of order n still adds 1 to that order's denominator (so very short
//!   candidates are penalised), and BLEU is 0 when no unigram matches at all, whatever the
//!   smoothing. Parity with NLTK 3.10 is tested on committed fixtures.

use crate::input::check_same_len;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

fn normalise(what: &'static str, h: &[f64]) -> Result<Vec<f64>> {
    if h.is_empty() {
        return Err(Error::Empty(format!("histogram {what} is empty")));
    }
    if let Some(i) = h.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::NonFinite {
            what: "histogram (must be finite and >= 0)",
            location: format!("{what}[{i}]"),
            value: h[i],
        });
    }
    let s: f64 = h.iter().sum();
    // Finite entries can still overflow their sum (`[1e308, 1e308]`): every `v / s` would then be
    // 0 and the distance silently wrong.
    if !s.is_finite() {
        return Err(Error::NonFinite {
            what: "histogram sum (entries are finite but their sum overflows f64; rescale them)",
            location: format!("sum of {what}"),
            value: s,
        });
    }
    if s <= 0.0 {
        return Err(Error::InvalidArgument(format!(
            "histogram {what} sums to 0"
        )));
    }
    Ok(h.iter().map(|v| v / s).collect())
}

fn pair(p: &[f64], q: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    check_same_len(("p", p.len()), ("q", q.len()))?;
    Ok((normalise("p", p)?, normalise("q", q)?))
}

/// Jensen–Shannon divergence (base 2, in `[0, 1]`) between two histograms.
///
/// ```
/// use behavior_eval::generation::jensen_shannon;
/// assert_eq!(jensen_shannon(&[1.0, 0.0], &[0.0, 3.0])?, 1.0);
/// assert!(jensen_shannon(&[2.0, 2.0], &[5.0, 5.0])?.abs() < 1e-15);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Result<f64> {
    let (p, q) = pair(p, q)?;
    let kl_half = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let js: f64 = p
        .iter()
        .zip(&q)
        .map(|(&a, &b)| {
            let m = 0.5 * (a + b);
            0.5 * kl_half(a, m) + 0.5 * kl_half(b, m)
        })
        .sum();
    Ok(js.clamp(0.0, 1.0))
}

/// Total variation distance (in `[0, 1]`) between two histograms.
///
/// ```
/// use behavior_eval::generation::total_variation;
/// assert!((total_variation(&[3.0, 1.0], &[1.0, 1.0])? - 0.25).abs() < 1e-12);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn total_variation(p: &[f64], q: &[f64]) -> Result<f64> {
    let (p, q) = pair(p, q)?;
    Ok((0.5 * p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f64>()).clamp(0.0, 1.0))
}

/// Counts of each class id `0..n_classes` in `seq` (errors on an id `>= n_classes`).
pub fn histogram(seq: &[u32], n_classes: usize) -> Result<Vec<f64>> {
    let mut h = vec![0.0; n_classes];
    for (i, &b) in seq.iter().enumerate() {
        let slot = h.get_mut(b as usize).ok_or(Error::LabelOutOfRange {
            what: "seq",
            index: i,
            label: u64::from(b),
            n_classes,
        })?;
        *slot += 1.0;
    }
    Ok(h)
}

/// Distinct-n (Li et al. 2016): distinct n-grams over all n-grams of all sequences (pooled), in
/// `[0, 1]`; 0 when no sequence is `n` long. `n ≥ 1`.
///
/// ```
/// use behavior_eval::generation::distinct_n;
/// // bigrams: (1,2) (2,1) (1,2) | (3,3): 3 distinct of 4
/// assert_eq!(distinct_n(&[vec![1, 2, 1, 2], vec![3, 3]], 2)?, 0.75);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn distinct_n<S: AsRef<[u32]>>(seqs: &[S], n: usize) -> Result<f64> {
    if n == 0 {
        return Err(Error::InvalidArgument("distinct_n: n must be >= 1".into()));
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for s in seqs {
        for g in s.as_ref().windows(n) {
            total += 1;
            seen.insert(g.to_vec());
        }
    }
    Ok(if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    })
}

/// How [`corpus_bleu`] treats an n-gram order with no match.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum BleuSmoothing {
    /// No smoothing: BLEU is 0 if any order has no match.
    None,
    /// A zero match count becomes `ε` (Chen & Cherry method 1).
    Epsilon(f64),
}

/// Settings of [`corpus_bleu`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BleuConfig {
    /// Highest n-gram order N (BLEU-N), >= 1.
    pub max_n: usize,
    /// Smoothing of zero matches.
    pub smoothing: BleuSmoothing,
}

impl Default for BleuConfig {
    fn default() -> Self {
        Self {
            max_n: 4,
            smoothing: BleuSmoothing::Epsilon(0.1),
        }
    }
}

impl BleuConfig {
    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        if self.max_n == 0 {
            return Err(Error::InvalidArgument("BLEU max_n must be >= 1".into()));
        }
        if let BleuSmoothing::Epsilon(e) = self.smoothing {
            if !(e.is_finite() && e > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "BLEU epsilon {e} must be > 0"
                )));
            }
        }
        Ok(())
    }
}

fn ngram_counts(seq: &[u32], n: usize) -> HashMap<&[u32], u64> {
    let mut m = HashMap::new();
    if seq.len() >= n {
        for w in seq.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Corpus BLEU-N of `candidates[i]` against `references[i]` (see the [module docs](self)).
///
/// ```
/// use behavior_eval::generation::{corpus_bleu, BleuConfig, BleuSmoothing};
/// let cfg = BleuConfig { max_n: 2, smoothing: BleuSmoothing::None };
/// assert_eq!(corpus_bleu(&[vec![1, 2, 3]], &[vec![1, 2, 3]], &cfg)?, 1.0);
/// // unigram precision 3/4, bigram 1/3, no brevity penalty: sqrt(3/4 · 1/3) = 0.5
/// let b = corpus_bleu(&[vec![1, 2, 4, 3]], &[vec![1, 2, 3, 5]], &cfg)?;
/// assert!((b - 0.5).abs() < 1e-12);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn corpus_bleu<C: AsRef<[u32]>, R: AsRef<[u32]>>(
    candidates: &[C],
    references: &[R],
    cfg: &BleuConfig,
) -> Result<f64> {
    cfg.check()?;
    check_same_len(
        ("candidates", candidates.len()),
        ("references", references.len()),
    )?;
    if candidates.is_empty() {
        return Err(Error::Empty("BLEU over 0 sequences".into()));
    }
    let nmax = cfg.max_n;
    let mut num = vec![0u64; nmax];
    let mut den = vec![0u64; nmax];
    let (mut c_len, mut r_len) = (0u64, 0u64);
    for (c, r) in candidates.iter().zip(references) {
        let (c, r) = (c.as_ref(), r.as_ref());
        c_len += c.len() as u64;
        r_len += r.len() as u64;
        for n in 1..=nmax {
            let cc = ngram_counts(c, n);
            let rc = ngram_counts(r, n);
            let mut total = 0u64;
            for (g, &k) in &cc {
                num[n - 1] += k.min(rc.get(g).copied().unwrap_or(0));
                total += k;
            }
            // NLTK's modified_precision uses max(1, count) per sentence.
            den[n - 1] += total.max(1);
        }
    }
    if c_len == 0 || num[0] == 0 {
        return Ok(0.0);
    }
    let mut log_sum = 0.0;
    for n in 0..nmax {
        let p = if num[n] > 0 {
            num[n] as f64 / den[n] as f64
        } else {
            match cfg.smoothing {
                BleuSmoothing::None => return Ok(0.0),
                BleuSmoothing::Epsilon(e) => e / den[n] as f64,
            }
        };
        log_sum += p.ln() / nmax as f64;
    }
    let bp = if c_len < r_len {
        (1.0 - r_len as f64 / c_len as f64).exp()
    } else {
        1.0
    };
    Ok((bp * log_sum.exp()).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_validate_and_bound() {
        assert!(jensen_shannon(&[1.0], &[1.0, 2.0]).is_err());
        assert!(jensen_shannon(&[0.0, 0.0], &[1.0, 2.0]).is_err());
        assert!(total_variation(&[-1.0, 2.0], &[1.0, 2.0]).is_err());
        assert!(total_variation(&[f64::NAN, 2.0], &[1.0, 2.0]).is_err());
        assert!(jensen_shannon(&[], &[]).is_err());
        assert_eq!(total_variation(&[1.0, 0.0], &[0.0, 1.0]).unwrap(), 1.0);
        assert_eq!(histogram(&[0, 2, 2], 3).unwrap(), vec![1.0, 0.0, 2.0]);
        assert!(histogram(&[3], 3).is_err());
    }

    #[test]
    fn jsd_tvd_reject_histogram_whose_sum_overflows() {
        // Regression: `[1e308, 1e308, 0]` has finite entries but an infinite sum; normalising gave
        // all-zero "probabilities" and a wrong distance instead of an error.
        let big = [1e308, 1e308, 0.0];
        let ok = [1.0, 1.0, 0.0];
        for (p, q, arg) in [(&big, &ok, "p"), (&ok, &big, "q")] {
            for r in [jensen_shannon(p, q), total_variation(p, q)] {
                let e = r.unwrap_err();
                match &e {
                    Error::NonFinite {
                        location, value, ..
                    } => {
                        assert_eq!(location, &format!("sum of {arg}"));
                        assert_eq!(*value, f64::INFINITY);
                    }
                    other => panic!("unexpected error {other}"),
                }
                assert!(e.to_string().contains("overflows"), "{e}");
            }
        }
        // negative, NaN and infinite entries name the argument and the index
        let e = total_variation(&[1.0, 2.0], &[1.0, -0.5]).unwrap_err();
        assert!(e.to_string().contains("q[1]"), "{e}");
        let e = jensen_shannon(&[f64::NAN, 2.0], &[1.0, 1.0]).unwrap_err();
        assert!(e.to_string().contains("p[0]"), "{e}");
        let e = jensen_shannon(&[1.0, f64::INFINITY], &[1.0, 1.0]).unwrap_err();
        assert!(e.to_string().contains("p[1]"), "{e}");
        // large but summable entries are fine
        assert_eq!(
            total_variation(&[1e307, 1e307, 0.0], &[1.0, 1.0, 0.0]).unwrap(),
            0.0
        );
    }

    #[test]
    fn bleu_brevity_penalty_and_smoothing() {
        let cfg = BleuConfig {
            max_n: 1,
            smoothing: BleuSmoothing::None,
        };
        // candidate is a 2-token prefix of a 4-token reference: p1 = 1, BP = exp(1 - 2)
        let b = corpus_bleu(&[vec![1, 2]], &[vec![1, 2, 3, 4]], &cfg).unwrap();
        assert!((b - (-1.0f64).exp()).abs() < 1e-12);
        let none = BleuConfig {
            max_n: 2,
            smoothing: BleuSmoothing::None,
        };
        assert_eq!(
            corpus_bleu(&[vec![1, 2]], &[vec![2, 1]], &none).unwrap(),
            0.0
        );
        let eps = BleuConfig {
            max_n: 2,
            smoothing: BleuSmoothing::Epsilon(0.1),
        };
        let b = corpus_bleu(&[vec![1, 2]], &[vec![2, 1]], &eps).unwrap();
        assert!((b - (1.0f64 * 0.1).sqrt()).abs() < 1e-12);
        assert!(corpus_bleu(&[vec![1]], &Vec::<Vec<u32>>::new(), &eps).is_err());
        assert!(BleuConfig {
            max_n: 0,
            ..eps.clone()
        }
        .check()
        .is_err());
    }
}
