//! Scaling-law fit `L(x) = a·x^(−α) + c` to `(size, loss)` points.
//!
//! The fit minimises the squared error in loss space, robustly:
//!
//! 1. sizes are divided by their geometric mean (conditioning);
//! 2. **profile over `c`**: for a fixed `c < min(L)`, `ln(L − c) = ln a − α ln x` is a linear
//!    least-squares problem, so the error becomes a function of `c` alone. It is scanned on a
//!    300-point grid `c = min(L) − span·t`, `t ∈ [1e-6, 1e2]` log-spaced (`span = max L − min L`),
//!    then refined by golden-section search around the best grid point;
//! 3. **Levenberg–Marquardt** on `(a, α, c)` from there, accepting only steps that lower the
//!    squared error.
//!
//! `R² = 1 − SSE / SST` in loss space. Needs at least 3 points with 3 distinct sizes, sizes
//! `> 0`, everything finite and the losses not all equal.

use crate::input::{check_finite, check_same_len};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// A fitted power law with offset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    /// Scale `a`.
    pub a: f64,
    /// Exponent `α` (positive when the loss falls with size).
    pub alpha: f64,
    /// Irreducible loss `c`.
    pub c: f64,
    /// Coefficient of determination in loss space.
    pub r_squared: f64,
    /// Sum of squared residuals.
    pub sse: f64,
    /// Points fitted.
    pub n_points: usize,
}

impl PowerLawFit {
    /// `a·x^(−α) + c`.
    pub fn predict(&self, x: f64) -> f64 {
        self.a * x.powf(-self.alpha) + self.c
    }
}

/// Fits `L(x) = a·x^(−α) + c` (see the [module docs](self)).
///
/// ```
/// use behavior_eval::fit_power_law;
/// let x = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8];
/// let y: Vec<f64> = x.iter().map(|&x: &f64| 40.0 * x.powf(-0.25) + 1.7).collect();
/// let f = fit_power_law(&x, &y)?;
/// assert!((f.alpha - 0.25).abs() < 1e-6 && (f.c - 1.7).abs() < 1e-6);
/// assert!(f.r_squared > 0.999_999);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn fit_power_law(x: &[f64], y: &[f64]) -> Result<PowerLawFit> {
    check_same_len(("sizes", x.len()), ("losses", y.len()))?;
    check_finite("sizes", x)?;
    check_finite("losses", y)?;
    if x.len() < 3 {
        return Err(Error::Fit(format!(
            "{} points; a 3-parameter fit needs at least 3",
            x.len()
        )));
    }
    if let Some(i) = x.iter().position(|&v| v <= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "sizes[{i}] = {} must be > 0",
            x[i]
        )));
    }
    let mut distinct = x.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(Error::Fit("need at least 3 distinct sizes".into()));
    }
    let n = y.len() as f64;
    let ymean = y.iter().sum::<f64>() / n;
    let sst: f64 = y.iter().map(|v| (v - ymean).powi(2)).sum();
    let ymin = y.iter().copied().fold(f64::INFINITY, f64::min);
    let ymax = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = ymax - ymin;
    if span <= 0.0 || sst <= 0.0 {
        return Err(Error::Fit("all losses are equal; nothing to fit".into()));
    }

    // Conditioning: u = ln(x / x0) with x0 the geometric mean.
    let lnx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ln_x0 = lnx.iter().sum::<f64>() / n;
    let u: Vec<f64> = lnx.iter().map(|v| v - ln_x0).collect();
    let sse = |a: f64, alpha: f64, c: f64| -> f64 {
        u.iter()
            .zip(y)
            .map(|(&u, &y)| (y - a * (-alpha * u).exp() - c).powi(2))
            .sum()
    };
    // Profile: best (a, α) for fixed c by log-linear least squares.
    let profile = |c: f64| -> (f64, f64, f64) {
        let z: Vec<f64> = y.iter().map(|&v| (v - c).ln()).collect();
        let (um, zm) = (0.0, z.iter().sum::<f64>() / n); // u has mean 0
        let suu: f64 = u.iter().map(|v| (v - um).powi(2)).sum();
        let suz: f64 = u.iter().zip(&z).map(|(a, b)| (a - um) * (b - zm)).sum();
        let slope = suz / suu;
        let a = (zm - slope * um).exp();
        let alpha = -slope;
        (sse(a, alpha, c), a, alpha)
    };
    let c_of = |log_t: f64| ymin - span * log_t.exp();
    let (lo, hi) = (1e-6f64.ln(), 1e2f64.ln());
    let grid = 300;
    let step = (hi - lo) / (grid - 1) as f64;
    let mut best = (f64::INFINITY, 0usize);
    for i in 0..grid {
        let e = profile(c_of(lo + step * i as f64)).0;
        if e < best.0 {
            best = (e, i);
        }
    }
    // Golden-section search on log t in the bracket around the best grid point.
    let (mut a_, mut b_) = (
        lo + step * best.1.saturating_sub(1) as f64,
        lo + step * (best.1 + 1).min(grid - 1) as f64,
    );
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let f = |t: f64| profile(c_of(t)).0;
    let (mut x1, mut x2) = (b_ - g * (b_ - a_), a_ + g * (b_ - a_));
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..100 {
        if f1 < f2 {
            b_ = x2;
            x2 = x1;
            f2 = f1;
            x1 = b_ - g * (b_ - a_);
            f1 = f(x1);
        } else {
            a_ = x1;
            x1 = x2;
            f1 = f2;
            x2 = a_ + g * (b_ - a_);
            f2 = f(x2);
        }
    }
    let c0 = c_of(0.5 * (a_ + b_));
    let (mut err, mut a, mut alpha) = profile(c0);
    let mut c = c0;

    // Levenberg–Marquardt in (a, α, c).
    let mut lambda = 1e-3;
    for _ in 0..500 {
        let mut jtj = [[0.0f64; 3]; 3];
        let mut jtr = [0.0f64; 3];
        for (&u, &yv) in u.iter().zip(y) {
            let p = (-alpha * u).exp();
            let r = yv - (a * p + c);
            let j = [p, -a * p * u, 1.0];
            for r_ in 0..3 {
                jtr[r_] += j[r_] * r;
                for c_ in 0..3 {
                    jtj[r_][c_] += j[r_] * j[c_];
                }
            }
        }
        let mut improved = false;
        while lambda < 1e12 {
            let mut m = jtj;
            for (d, row) in m.iter_mut().enumerate() {
                row[d] += lambda * jtj[d][d].max(1e-300);
            }
            let Some(delta) = solve3(m, jtr) else {
                lambda *= 10.0;
                continue;
            };
            let (na, nal, nc) = (a + delta[0], alpha + delta[1], c + delta[2]);
            let ne = sse(na, nal, nc);
            if ne.is_finite() && ne < err {
                let rel = (err - ne) / err.max(1e-300);
                (a, alpha, c, err) = (na, nal, nc, ne);
                lambda = (lambda / 10.0).max(1e-12);
                improved = rel > 1e-15;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    if !(a.is_finite() && alpha.is_finite() && c.is_finite() && err.is_finite()) {
        return Err(Error::Fit("the fit diverged".into()));
    }
    // Undo the conditioning: a·(x/x0)^(−α) = a·x0^α · x^(−α).
    let a_raw = a * (alpha * ln_x0).exp();
    Ok(PowerLawFit {
        a: a_raw,
        alpha,
        c,
        r_squared: 1.0 - err / sst,
        sse: err,
        n_points: y.len(),
    })
}

/// Solves a 3×3 system by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[piv][col].abs() < 1e-300 || !m[piv][col].is_finite() {
            return None;
        }
        m.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..3 {
            let f = m[r][col] / m[col][col];
            let pivot_row = m[col];
            for (x, p) in m[r].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        let s: f64 = (r + 1..3).map(|k| m[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / m[r][r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn points(a: f64, alpha: f64, c: f64, noise: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f64> = (0..12)
            .map(|i| 10f64.powf(3.0 + 0.5 * f64::from(i)))
            .collect();
        let y = x
            .iter()
            .map(|&x| a * x.powf(-alpha) + c + noise * (rng.random::<f64>() - 0.5))
            .collect();
        (x, y)
    }

    #[test]
    fn recovers_known_parameters() {
        for &(a, alpha, c) in &[
            (5.0, 0.3, 1.5),
            (400.0, 0.5, 0.0),
            (2.0, 0.08, 3.0),
            (1e3, 0.7, 2.2),
        ] {
            let (x, y) = points(a, alpha, c, 0.0);
            let f = fit_power_law(&x, &y).unwrap();
            assert!(
                (f.alpha - alpha).abs() < 1e-4 * alpha.max(1.0),
                "{f:?} vs {alpha}"
            );
            assert!((f.c - c).abs() < 1e-4 * c.max(1.0), "{f:?} vs {c}");
            assert!((f.a / a - 1.0).abs() < 1e-3, "{f:?} vs {a}");
            assert!(f.r_squared > 1.0 - 1e-9);
        }
    }

    #[test]
    fn noisy_points_fit_well() {
        let (x, y) = points(5.0, 0.3, 1.5, 0.01);
        let f = fit_power_law(&x, &y).unwrap();
        assert!((f.alpha - 0.3).abs() < 0.03, "{f:?}");
        assert!((f.c - 1.5).abs() < 0.03, "{f:?}");
        assert!(f.r_squared > 0.99 && f.r_squared <= 1.0);
        assert!((f.predict(1e6) - (5.0 * 1e6f64.powf(-0.3) + 1.5)).abs() < 0.02);
    }

    #[test]
    fn rejects_degenerate_input() {
        assert!(fit_power_law(&[1.0, 2.0], &[1.0, 0.5]).is_err());
        assert!(fit_power_law(&[1.0, 1.0, 2.0], &[1.0, 0.9, 0.5]).is_err());
        assert!(fit_power_law(&[1.0, 0.0, 2.0], &[1.0, 0.9, 0.5]).is_err());
        assert!(fit_power_law(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0]).is_err());
        assert!(fit_power_law(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 1.0]).is_err());
        assert!(fit_power_law(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err());
    }
}
