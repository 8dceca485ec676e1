//! Scaling laws: fits, bootstrap intervals and the compute frontier.
//!
//! * [`fit_power_law`] — `L(x) = a·x^(−α) + c` to `(size, loss)` points;
//! * [`fit_joint_power_law`] — the Chinchilla form `L(N, D) = E + A/N^α + B/D^β` to
//!   `(model size, data size, loss)` points;
//! * [`bootstrap_power_law`] / [`bootstrap_joint`] — seeded percentile bootstrap intervals of
//!   every fitted parameter (points resampled with replacement);
//! * [`compute_frontier`] — the lower envelope (Pareto frontier) of `(flops, loss)` points.
//!
//! # One-variable fit
//!
//! [`fit_power_law`] minimises the squared error in loss space, robustly:
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
//!
//! # Joint fit
//!
//! [`fit_joint_power_law`] also minimises the squared error in loss space:
//!
//! 1. `N` and `D` are divided by their geometric means (conditioning); `A` and `B` are reported
//!    in the original units;
//! 2. **profile over `(α, β)`**: for fixed exponents the model is linear in `(E, A, B)`, solved
//!    as a non-negative least-squares problem **with `E, A, B ≥ 0`** (a loss has a non-negative
//!    floor; without the bound on `E`, losses that fall log-linearly let `E → −∞` trade against
//!    an exponent → 0): the best feasible unconstrained solution over every subset of free
//!    coefficients, which is the exact optimum for that grid point. The profiled error is
//!    scanned on a 48 × 48 log-spaced grid over `[0.01, 3]²`;
//! 3. **Levenberg–Marquardt** on all five parameters from the best grid point, accepting only
//!    steps that lower the squared error; a step that would make `E`, `A` or `B` negative is
//!    clipped to 0. A term that is 0 (at the grid point or after a clipped step) stays 0 and its exponent
//!    is no longer refined.
//!
//! Caveats: when a term ends at `A = 0` (or `B = 0`) its exponent is not identified; the reported
//! `α` (or `β`) is then the last value it had (often a grid value) and carries no meaning — nor
//! do its bootstrap percentiles when many resamples end there. With only 2 distinct `N` (or `D`)
//! values the fit is accepted but `A`/`α` (or `B`/`β`) and `E` are not separately identified —
//! use at least 3 of each for meaningful exponents. Exponents are not bounded during the
//! refinement, so they may leave `[0.01, 3]` when the data ask for it.
//!
//! # Bootstrap
//!
//! Resample `b` draws point indices with replacement from the ChaCha8 stream `(seed, b)` (as in
//! [`uncertainty`](crate::uncertainty)), so results are identical for any thread count. A
//! resample whose fit fails (for example too few distinct sizes) is counted in `failed` and
//! skipped; fewer than half successful resamples is an error. Intervals are percentiles of the
//! successful fits at `level`, interpolated linearly (numpy's default); `estimate` is the fit on
//! all points. A percentile interval need not contain the estimate when the bootstrap
//! distribution is very skewed.

use crate::input::{check_finite, check_same_len};
use crate::uncertainty::rng_for;
use crate::{Error, Result};
use rand::Rng;
use rayon::prelude::*;
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
    fit_power_law_floor(x, y, None)
}

/// [`fit_power_law`] with `c ≥ floor` when `floor` is given (e.g. `Some(0.0)` for a loss, which
/// cannot fall below 0: without the bound, losses that fall log-linearly let `c → −∞` trade
/// against `α → 0`). The profile scan and every refinement step stay above the floor; a
/// `floor` at or above the smallest loss is an error.
///
/// ```
/// use behavior_eval::scaling::fit_power_law_floor;
/// let x = [1e3, 1e4, 1e5, 1e6, 1e7];
/// let y: Vec<f64> = x.iter().map(|&x: &f64| 6.0 - 0.3 * x.ln()).collect();
/// let f = fit_power_law_floor(&x, &y, Some(0.0))?;
/// assert!(f.c >= 0.0 && f.alpha > 0.0);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn fit_power_law_floor(x: &[f64], y: &[f64], floor: Option<f64>) -> Result<PowerLawFit> {
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
    let mut hi = 1e2f64.ln();
    if let Some(f) = floor {
        if !(f.is_finite() && f < ymin) {
            return Err(Error::InvalidArgument(format!(
                "floor {f} must be finite and below the smallest loss {ymin}"
            )));
        }
        hi = hi.min(((ymin - f) / span).ln());
    }
    let lo = 1e-6f64.ln().min(hi - 1.0);
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
            let (na, nal) = (a + delta[0], alpha + delta[1]);
            let nc = floor.map_or(c + delta[2], |f| (c + delta[2]).max(f));
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

// ---------------------------------------------------------------------------------------------
// Joint fit L(N, D) = E + A/N^α + B/D^β.

/// A fitted Chinchilla-style law `L(N, D) = E + A·N^(−α) + B·D^(−β)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JointFit {
    /// Irreducible loss `E` (`≥ 0`).
    pub e: f64,
    /// Scale `A` of the model-size term, in the original units of `N` (`≥ 0`).
    pub a: f64,
    /// Model-size exponent `α` (meaningless when `a == 0`).
    pub alpha: f64,
    /// Scale `B` of the data-size term, in the original units of `D` (`≥ 0`).
    pub b: f64,
    /// Data-size exponent `β` (meaningless when `b == 0`).
    pub beta: f64,
    /// Coefficient of determination in loss space.
    pub r_squared: f64,
    /// Sum of squared residuals.
    pub sse: f64,
    /// Points fitted.
    pub n_points: usize,
}

impl JointFit {
    /// `e + a·n^(−α) + b·d^(−β)`.
    pub fn predict(&self, n: f64, d: f64) -> f64 {
        self.e + self.a * n.powf(-self.alpha) + self.b * d.powf(-self.beta)
    }
}

/// Number of log-spaced exponent values per axis of the joint-fit grid.
const JOINT_GRID: usize = 48;
/// Exponent range scanned by the joint-fit grid.
const JOINT_RANGE: (f64, f64) = (0.01, 3.0);

/// Fits `L(N, D) = E + A·N^(−α) + B·D^(−β)` (see the [module docs](self#joint-fit)).
///
/// `n` are model sizes, `d` data sizes (e.g. parameters and training tokens), `y` the losses,
/// one entry per run. Needs at least 5 points, at least 2 distinct values of each size, sizes
/// `> 0`, everything finite and the losses not all equal; otherwise the error names the problem.
///
/// ```
/// use behavior_eval::fit_joint_power_law;
/// let (mut n, mut d, mut y) = (vec![], vec![], vec![]);
/// for &ni in &[1e6, 1e7, 1e8, 1e9] {
///     for &di in &[1e8, 1e9, 1e10, 1e11] {
///         n.push(ni);
///         d.push(di);
///         y.push(1.7 + 400.0 * f64::powf(ni, -0.34) + 410.0 * f64::powf(di, -0.28));
///     }
/// }
/// let f = fit_joint_power_law(&n, &d, &y)?;
/// assert!((f.alpha - 0.34).abs() < 1e-4 && (f.beta - 0.28).abs() < 1e-4);
/// assert!((f.predict(1e10, 1e12) - y_at(1e10, 1e12)).abs() < 1e-4);
/// # fn y_at(n: f64, d: f64) -> f64 { 1.7 + 400.0 * n.powf(-0.34) + 410.0 * d.powf(-0.28) }
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn fit_joint_power_law(n: &[f64], d: &[f64], y: &[f64]) -> Result<JointFit> {
    check_same_len(("model sizes N", n.len()), ("losses", y.len()))?;
    check_same_len(("data sizes D", d.len()), ("losses", y.len()))?;
    check_finite("model sizes N", n)?;
    check_finite("data sizes D", d)?;
    check_finite("losses", y)?;
    if y.len() < 5 {
        return Err(Error::Fit(format!(
            "{} points; the 5-parameter joint fit needs at least 5",
            y.len()
        )));
    }
    for (what, v) in [("model sizes N", n), ("data sizes D", d)] {
        if let Some(i) = v.iter().position(|&v| v <= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "{what}[{i}] = {} must be > 0",
                v[i]
            )));
        }
        if count_distinct(v) < 2 {
            return Err(Error::Fit(format!(
                "{what}: all values are equal; the joint fit needs at least 2 distinct values"
            )));
        }
    }
    let m = y.len() as f64;
    let ymean = y.iter().sum::<f64>() / m;
    let sst: f64 = y.iter().map(|v| (v - ymean).powi(2)).sum();
    if sst <= 0.0 {
        return Err(Error::Fit("all losses are equal; nothing to fit".into()));
    }

    // Conditioning: u = ln(N / N0), v = ln(D / D0) with N0, D0 the geometric means.
    let centred_logs = |x: &[f64]| -> (Vec<f64>, f64) {
        let l: Vec<f64> = x.iter().map(|v| v.ln()).collect();
        let mean = l.iter().sum::<f64>() / m;
        (l.iter().map(|v| v - mean).collect(), mean)
    };
    let (u, ln_n0) = centred_logs(n);
    let (v, ln_d0) = centred_logs(d);

    // Profile over the (α, β) grid: non-negative linear least squares in (E, A, B).
    let (lo, hi) = (JOINT_RANGE.0.ln(), JOINT_RANGE.1.ln());
    let grid: Vec<f64> = (0..JOINT_GRID)
        .map(|i| (lo + (hi - lo) * i as f64 / (JOINT_GRID - 1) as f64).exp())
        .collect();
    let powers = |w: &[f64]| -> Vec<Vec<f64>> {
        grid.iter()
            .map(|&k| w.iter().map(|&w| (-k * w).exp()).collect())
            .collect()
    };
    let (pn, qd) = (powers(&u), powers(&v));
    let mut best: Option<(f64, [f64; 3], usize, usize)> = None;
    for (ia, p) in pn.iter().enumerate() {
        for (ib, q) in qd.iter().enumerate() {
            if let Some((err, coef)) = nonneg_linear3(p, q, y) {
                if best.as_ref().is_none_or(|b| err < b.0) {
                    best = Some((err, coef, ia, ib));
                }
            }
        }
    }
    let Some((mut err, coef, ia, ib)) = best else {
        return Err(Error::Fit("no grid point gave a finite linear fit".into()));
    };

    // Levenberg–Marquardt on θ = (E, A', α, B', β) in conditioned units. A step that would
    // make A' or B' negative is clipped to 0; a term at 0 leaves the problem (its exponent
    // then has no gradient) and stays 0.
    let mut th = [coef[0], coef[1], grid[ia], coef[2], grid[ib]];
    let sse = |t: &[f64; 5]| -> f64 {
        u.iter()
            .zip(&v)
            .zip(y)
            .map(|((&u, &v), &y)| {
                (y - t[0] - t[1] * (-t[2] * u).exp() - t[3] * (-t[4] * v).exp()).powi(2)
            })
            .sum()
    };
    let mut lambda = 1e-3;
    for _ in 0..500 {
        let idx: Vec<usize> = (0..5)
            .filter(|&j| match j {
                1 | 2 => th[1] > 0.0,
                3 | 4 => th[3] > 0.0,
                _ => true,
            })
            .collect();
        let k = idx.len();
        let mut jtj = [[0.0f64; 5]; 5];
        let mut jtr = [0.0f64; 5];
        for ((&u, &v), &yv) in u.iter().zip(&v).zip(y) {
            let p = (-th[2] * u).exp();
            let q = (-th[4] * v).exp();
            let r = yv - (th[0] + th[1] * p + th[3] * q);
            let full = [1.0, p, -th[1] * p * u, q, -th[3] * q * v];
            for (r_, &jr) in idx.iter().enumerate() {
                jtr[r_] += full[jr] * r;
                for (c_, &jc) in idx.iter().enumerate() {
                    jtj[r_][c_] += full[jr] * full[jc];
                }
            }
        }
        // Marquardt scaling, with a floor so that nearly flat directions are still damped.
        let floor = 1e-12 * (0..k).map(|i| jtj[i][i]).fold(1e-300, f64::max);
        let mut improved = false;
        while lambda < 1e12 {
            let mut mat = jtj;
            for (dg, row) in mat.iter_mut().enumerate().take(k) {
                row[dg] += lambda * jtj[dg][dg].max(floor);
            }
            let Some(delta) = solve_k(mat, jtr, k) else {
                lambda *= 10.0;
                continue;
            };
            let mut nt = th;
            for (r_, &j) in idx.iter().enumerate() {
                nt[j] += delta[r_];
            }
            nt[0] = nt[0].max(0.0);
            nt[1] = nt[1].max(0.0);
            nt[3] = nt[3].max(0.0);
            let ne = sse(&nt);
            if ne.is_finite() && ne < err {
                let rel = (err - ne) / err.max(1e-300);
                (th, err) = (nt, ne);
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
    if !(th.iter().all(|t| t.is_finite()) && err.is_finite()) {
        return Err(Error::Fit("the joint fit diverged".into()));
    }
    // Undo the conditioning: A'·(N/N0)^(−α) = A'·N0^α · N^(−α).
    Ok(JointFit {
        e: th[0],
        a: th[1] * (th[2] * ln_n0).exp(),
        alpha: th[2],
        b: th[3] * (th[4] * ln_d0).exp(),
        beta: th[4],
        r_squared: 1.0 - err / sst,
        sse: err,
        n_points: y.len(),
    })
}

fn count_distinct(v: &[f64]) -> usize {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.dedup();
    s.len()
}

/// Non-negative least squares of `y ≈ E + A·p + B·q` with `E, A, B ≥ 0` (a loss has a
/// non-negative floor; without the bound on `E`, data that fall log-linearly let `E → −∞` and
/// an exponent → 0 trade against each other). Exact for this convex problem: the unconstrained
/// solution on every subset of free coefficients (the others at 0), the best feasible one wins.
/// Returns `(SSE, [E, A, B])`.
fn nonneg_linear3(p: &[f64], q: &[f64], y: &[f64]) -> Option<(f64, [f64; 3])> {
    let cols = |j: usize, i: usize| -> f64 {
        match j {
            0 => 1.0,
            1 => p[i],
            _ => q[i],
        }
    };
    let mut gram = [[0.0f64; 3]; 3];
    let mut rhs = [0.0f64; 3];
    for (i, &yv) in y.iter().enumerate() {
        for (r, (row, b)) in gram.iter_mut().zip(rhs.iter_mut()).enumerate() {
            *b += cols(r, i) * yv;
            for (c, g) in row.iter_mut().enumerate() {
                *g += cols(r, i) * cols(c, i);
            }
        }
    }
    let sse = |c: [f64; 3]| -> f64 {
        p.iter()
            .zip(q)
            .zip(y)
            .map(|((&p, &q), &y)| (y - c[0] - c[1] * p - c[2] * q).powi(2))
            .sum()
    };
    let mut best: Option<(f64, [f64; 3])> = Some((sse([0.0; 3]), [0.0; 3]));
    for mask in 1u8..8 {
        let free: Vec<usize> = (0..3).filter(|&j| mask & (1 << j) != 0).collect();
        let k = free.len();
        let mut mat = [[0.0f64; 5]; 5];
        let mut b = [0.0f64; 5];
        for (r, &jr) in free.iter().enumerate() {
            b[r] = rhs[jr];
            for (c, &jc) in free.iter().enumerate() {
                mat[r][c] = gram[jr][jc];
            }
        }
        let Some(sol) = solve_k(mat, b, k) else {
            continue;
        };
        let mut c = [0.0f64; 3];
        for (r, &j) in free.iter().enumerate() {
            c[j] = sol[r];
        }
        if c.iter().all(|v| v.is_finite() && *v >= 0.0) {
            let e = sse(c);
            if e.is_finite() && best.as_ref().is_none_or(|b| e < b.0) {
                best = Some((e, c));
            }
        }
    }
    best
}

/// Solves the leading `k × k` block of a 5×5 system by Gaussian elimination with partial
/// pivoting.
fn solve_k(mut m: [[f64; 5]; 5], mut b: [f64; 5], k: usize) -> Option<[f64; 5]> {
    for col in 0..k {
        let piv = (col..k).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[piv][col].abs() < 1e-300 || !m[piv][col].is_finite() {
            return None;
        }
        m.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..k {
            let f = m[r][col] / m[col][col];
            let pivot_row = m[col];
            for (x, p) in m[r].iter_mut().zip(pivot_row).skip(col).take(k - col) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0; 5];
    for r in (0..k).rev() {
        let s: f64 = (r + 1..k).map(|j| m[r][j] * x[j]).sum();
        x[r] = (b[r] - s) / m[r][r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

// ---------------------------------------------------------------------------------------------
// Bootstrap intervals.

/// A point estimate with a percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The value fitted on all points.
    pub estimate: f64,
    /// Lower percentile bound.
    pub lo: f64,
    /// Upper percentile bound.
    pub hi: f64,
}

/// A [`PowerLawFit`] with bootstrap intervals of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLawCi {
    /// The fit on all points.
    pub fit: PowerLawFit,
    /// Interval of the scale `a`.
    pub a: Interval,
    /// Interval of the exponent `α`.
    pub alpha: Interval,
    /// Interval of the irreducible loss `c`.
    pub c: Interval,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples whose fit failed (skipped).
    pub failed: usize,
}

/// A [`JointFit`] with bootstrap intervals of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JointCi {
    /// The fit on all points.
    pub fit: JointFit,
    /// Interval of the irreducible loss `E`.
    pub e: Interval,
    /// Interval of the model-size scale `A`.
    pub a: Interval,
    /// Interval of the model-size exponent `α`.
    pub alpha: Interval,
    /// Interval of the data-size scale `B`.
    pub b: Interval,
    /// Interval of the data-size exponent `β`.
    pub beta: Interval,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples whose fit failed (skipped).
    pub failed: usize,
}

fn check_bootstrap(resamples: usize, level: f64) -> Result<()> {
    if resamples < 2 {
        return Err(Error::InvalidArgument(format!(
            "bootstrap resamples = {resamples}; need at least 2"
        )));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "bootstrap level = {level}; must lie in (0, 1)"
        )));
    }
    Ok(())
}

/// Fits `fit` on `resamples` index resamples of `0..n_points` (parallel, deterministic) and
/// returns the successful fits in resample order and the number of failures; errors when fewer
/// than half succeed.
fn resample_fits<T, F>(
    n_points: usize,
    resamples: usize,
    seed: u64,
    fit: F,
) -> Result<(Vec<T>, usize)>
where
    T: Send,
    F: Fn(&[usize]) -> Option<T> + Sync,
{
    let all: Vec<Option<T>> = (0..resamples)
        .into_par_iter()
        .map_init(Vec::new, |idx: &mut Vec<usize>, b| {
            let mut rng = rng_for(seed, b);
            idx.clear();
            idx.extend((0..n_points).map(|_| rng.random_range(0..n_points)));
            fit(idx)
        })
        .collect();
    let ok: Vec<T> = all.into_iter().flatten().collect();
    let failed = resamples - ok.len();
    if ok.len() * 2 < resamples {
        return Err(Error::Fit(format!(
            "bootstrap: {failed} of {resamples} resample fits failed; fewer than half succeeded"
        )));
    }
    Ok((ok, failed))
}

fn percentile_interval(estimate: f64, values: Vec<f64>, level: f64) -> Result<Interval> {
    let i = crate::uncertainty::interval(estimate, values, level)?;
    Ok(Interval {
        estimate,
        lo: i.lower,
        hi: i.upper,
    })
}

fn gather(xs: &[f64], idx: &[usize]) -> Vec<f64> {
    idx.iter().map(|&i| xs[i]).collect()
}

/// [`fit_power_law_floor`] (`c ≥ floor` when given) with percentile bootstrap intervals of `a`,
/// `α` and `c` at `level` (in `(0, 1)`) from `resamples` (`≥ 2`) resamples of the points,
/// seeded by `seed` (see the [module docs](self#bootstrap)).
///
/// ```
/// use behavior_eval::bootstrap_power_law;
/// let x: Vec<f64> = (0..10).map(|i| 10f64.powf(3.0 + 0.5 * f64::from(i))).collect();
/// let y: Vec<f64> = x.iter().map(|&x| 40.0 * x.powf(-0.25) + 1.7).collect();
/// let ci = bootstrap_power_law(&x, &y, None, 50, 0.95, 7)?;
/// assert!(ci.alpha.lo <= 0.25 + 1e-6 && 0.25 - 1e-6 <= ci.alpha.hi);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn bootstrap_power_law(
    x: &[f64],
    y: &[f64],
    floor: Option<f64>,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<PowerLawCi> {
    check_bootstrap(resamples, level)?;
    let fit = fit_power_law_floor(x, y, floor)?;
    let (fits, failed) = resample_fits(y.len(), resamples, seed, |idx| {
        fit_power_law_floor(&gather(x, idx), &gather(y, idx), floor).ok()
    })?;
    let pick = |f: fn(&PowerLawFit) -> f64| fits.iter().map(f).collect::<Vec<f64>>();
    Ok(PowerLawCi {
        a: percentile_interval(fit.a, pick(|f| f.a), level)?,
        alpha: percentile_interval(fit.alpha, pick(|f| f.alpha), level)?,
        c: percentile_interval(fit.c, pick(|f| f.c), level)?,
        fit,
        level,
        resamples,
        failed,
    })
}

/// [`fit_joint_power_law`] with percentile bootstrap intervals of `E`, `A`, `α`, `B` and `β` at
/// `level` (in `(0, 1)`) from `resamples` (`≥ 2`) resamples of the points, seeded by `seed` (see
/// the [module docs](self#bootstrap)). Resamples with fewer than 2 distinct `N` or `D` values
/// fail and are counted in `failed`.
pub fn bootstrap_joint(
    n: &[f64],
    d: &[f64],
    y: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<JointCi> {
    check_bootstrap(resamples, level)?;
    let fit = fit_joint_power_law(n, d, y)?;
    let (fits, failed) = resample_fits(y.len(), resamples, seed, |idx| {
        fit_joint_power_law(&gather(n, idx), &gather(d, idx), &gather(y, idx)).ok()
    })?;
    let pick = |f: fn(&JointFit) -> f64| fits.iter().map(f).collect::<Vec<f64>>();
    Ok(JointCi {
        e: percentile_interval(fit.e, pick(|f| f.e), level)?,
        a: percentile_interval(fit.a, pick(|f| f.a), level)?,
        alpha: percentile_interval(fit.alpha, pick(|f| f.alpha), level)?,
        b: percentile_interval(fit.b, pick(|f| f.b), level)?,
        beta: percentile_interval(fit.beta, pick(|f| f.beta), level)?,
        fit,
        level,
        resamples,
        failed,
    })
}

// ---------------------------------------------------------------------------------------------
// Compute frontier.

/// Indices of the compute frontier (lower envelope) of `(flops, loss)` points, in order of
/// increasing flops.
///
/// A point is kept when its loss is strictly lower than that of every point with fewer flops
/// and of every other point with equal flops; of points tied in both flops and loss, the one with
/// the lowest index is kept. Along the result, flops and losses strictly increase and decrease.
/// Errors on empty input, different lengths or non-finite values.
///
/// ```
/// use behavior_eval::compute_frontier;
/// let flops = [1.0, 2.0, 2.0, 3.0, 4.0];
/// let loss = [5.0, 4.0, 3.0, 3.5, 2.0];
/// assert_eq!(compute_frontier(&flops, &loss)?, vec![0, 2, 4]);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn compute_frontier(flops: &[f64], loss: &[f64]) -> Result<Vec<usize>> {
    check_same_len(("flops", flops.len()), ("losses", loss.len()))?;
    if flops.is_empty() {
        return Err(Error::Empty("compute frontier: no points".into()));
    }
    check_finite("flops", flops)?;
    check_finite("losses", loss)?;
    let cmp = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
    let mut order: Vec<usize> = (0..flops.len()).collect();
    order.sort_by(|&i, &j| {
        cmp(flops[i], flops[j])
            .then(cmp(loss[i], loss[j]))
            .then(i.cmp(&j))
    });
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for i in order {
        if loss[i] < best {
            best = loss[i];
            out.push(i);
        }
    }
    Ok(out)
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

    const TRUE: (f64, f64, f64, f64, f64) = (1.7, 400.0, 0.34, 410.0, 0.28);

    fn logspace(lo: f64, hi: f64, k: usize) -> Vec<f64> {
        (0..k)
            .map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (k - 1) as f64))
            .collect()
    }

    /// A 5×5 grid of N ∈ [1e4, 1e7], D ∈ [1e5, 1e8] with losses from `p` plus uniform noise of
    /// relative amplitude `noise`.
    fn joint_points(
        p: (f64, f64, f64, f64, f64),
        noise: f64,
        seed: u64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut n, mut d, mut y) = (vec![], vec![], vec![]);
        for &ni in &logspace(4.0, 7.0, 5) {
            for &di in &logspace(5.0, 8.0, 5) {
                let l = p.0 + p.1 * ni.powf(-p.2) + p.3 * di.powf(-p.4);
                n.push(ni);
                d.push(di);
                y.push(l * (1.0 + noise * (rng.random::<f64>() - 0.5)));
            }
        }
        (n, d, y)
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn joint_fit_recovers_known_parameters() {
        for p in [
            TRUE,
            (0.5, 50.0, 0.6, 2000.0, 0.45),
            (3.0, 20.0, 0.15, 90.0, 0.9),
        ] {
            let (n, d, y) = joint_points(p, 0.0, 0);
            let f = fit_joint_power_law(&n, &d, &y).unwrap();
            assert!(rel(f.e, p.0) < 1e-4, "{f:?} vs {p:?}");
            assert!(rel(f.a, p.1) < 1e-4, "{f:?} vs {p:?}");
            assert!(rel(f.alpha, p.2) < 1e-4, "{f:?} vs {p:?}");
            assert!(rel(f.b, p.3) < 1e-4, "{f:?} vs {p:?}");
            assert!(rel(f.beta, p.4) < 1e-4, "{f:?} vs {p:?}");
            assert!(f.r_squared > 1.0 - 1e-9 && f.n_points == 25, "{f:?}");
            let l = p.0 + p.1 * 1e9f64.powf(-p.2) + p.3 * 1e10f64.powf(-p.4);
            assert!(rel(f.predict(1e9, 1e10), l) < 1e-4);
        }
    }

    #[test]
    fn joint_fit_keeps_scales_non_negative() {
        // The loss rises slightly with D: the unconstrained fit would want B < 0.
        let (n, d, _) = joint_points(TRUE, 0.0, 0);
        let y: Vec<f64> = n
            .iter()
            .zip(&d)
            .map(|(&n, &d)| 2.0 + 100.0 * n.powf(-0.3) + 0.01 * d.ln())
            .collect();
        let f = fit_joint_power_law(&n, &d, &y).unwrap();
        assert!(f.a > 0.0 && f.b == 0.0, "{f:?}");
        assert!((f.alpha - 0.3).abs() < 0.05, "{f:?}");
        // No data-size effect at all: B is 0 or negligible, the N term is exact.
        let y: Vec<f64> = n.iter().map(|&n| 2.0 + 100.0 * n.powf(-0.3)).collect();
        let f = fit_joint_power_law(&n, &d, &y).unwrap();
        assert!(f.b >= 0.0 && f.b * 1e5f64.powf(-f.beta) < 1e-6, "{f:?}");
        assert!(rel(f.alpha, 0.3) < 1e-4 && rel(f.a, 100.0) < 1e-3, "{f:?}");
    }

    /// With a floor, log-linear losses give `c ≥ floor` and a positive exponent; without it the
    /// offset runs far below 0 (what the floor exists for); a floor above the losses is refused.
    #[test]
    fn power_law_floor_bounds_the_offset() {
        let x = [1e3, 1e4, 1e5, 1e6, 1e7];
        let y: Vec<f64> = x.iter().map(|&x: &f64| 6.0 - 0.3 * x.ln()).collect();
        let free = fit_power_law(&x, &y).unwrap();
        assert!(free.c < 0.0, "{free:?}");
        let f = fit_power_law_floor(&x, &y, Some(0.0)).unwrap();
        assert!(f.c >= 0.0 && f.alpha > 0.0 && f.r_squared > 0.95, "{f:?}");
        let ci = bootstrap_power_law(&x, &y, Some(0.0), 50, 0.95, 3).unwrap();
        assert!(ci.c.lo >= 0.0, "{ci:?}");
        let e = fit_power_law_floor(&x, &y, Some(1.5)).unwrap_err();
        assert!(e.to_string().contains("floor"), "{e}");
    }

    /// Regression: losses that fall log-linearly in N and D (no floor in sight) drove the
    /// unbounded fit to `E ≈ −293` with both exponents → 0; the floor is now `E ≥ 0`.
    #[test]
    fn joint_fit_keeps_the_floor_non_negative_on_log_linear_losses() {
        let (n, d, _) = joint_points(TRUE, 0.0, 0);
        let y: Vec<f64> = n
            .iter()
            .zip(&d)
            .map(|(&n, &d)| 9.0 - 0.2 * n.ln() - 0.15 * d.ln())
            .collect();
        assert!(y.iter().all(|&v| v > 0.0), "{y:?}");
        let f = fit_joint_power_law(&n, &d, &y).unwrap();
        assert!(f.e >= 0.0 && f.a >= 0.0 && f.b >= 0.0, "{f:?}");
        assert!(f.alpha > 0.0 && f.beta > 0.0, "{f:?}");
        assert!(f.r_squared > 0.9, "{f:?}");
    }

    #[test]
    fn joint_fit_rejects_bad_input_by_name() {
        let (n, d, y) = joint_points(TRUE, 0.0, 0);
        let msg = |r: Result<JointFit>| r.unwrap_err().to_string();
        let m = msg(fit_joint_power_law(&n[..4], &d[..4], &y[..4]));
        assert!(m.contains("4 points") && m.contains("at least 5"), "{m}");
        let m = msg(fit_joint_power_law(&n, &d[..24], &y));
        assert!(m.contains("data sizes D has 24"), "{m}");
        let m = msg(fit_joint_power_law(&n[..24], &d, &y));
        assert!(m.contains("model sizes N has 24"), "{m}");
        let mut bad = d.clone();
        bad[3] = 0.0;
        let m = msg(fit_joint_power_law(&n, &bad, &y));
        assert!(m.contains("data sizes D[3] = 0 must be > 0"), "{m}");
        let mut bad = n.clone();
        bad[7] = -1.0;
        let m = msg(fit_joint_power_law(&bad, &d, &y));
        assert!(m.contains("model sizes N[7] = -1 must be > 0"), "{m}");
        let mut bad = y.clone();
        bad[2] = f64::NAN;
        let m = msg(fit_joint_power_law(&n, &d, &bad));
        assert!(m.contains("losses") && m.contains("index 2"), "{m}");
        let m = msg(fit_joint_power_law(&[1e6; 25], &d, &y));
        assert!(
            m.contains("model sizes N") && m.contains("2 distinct"),
            "{m}"
        );
        let m = msg(fit_joint_power_law(&n, &[1e6; 25], &y));
        assert!(
            m.contains("data sizes D") && m.contains("2 distinct"),
            "{m}"
        );
        let m = msg(fit_joint_power_law(&n, &d, &[3.0; 25]));
        assert!(m.contains("all losses are equal"), "{m}");
    }

    fn contains(i: &Interval, v: f64) -> bool {
        i.lo <= v && v <= i.hi
    }

    fn ordered(i: &Interval) -> bool {
        i.lo <= i.estimate && i.estimate <= i.hi
    }

    #[test]
    fn joint_bootstrap_covers_the_true_exponents() {
        let (n, d, y) = joint_points(TRUE, 0.01, 11);
        let ci = bootstrap_joint(&n, &d, &y, 200, 0.95, 42).unwrap();
        assert!(contains(&ci.alpha, TRUE.2), "{:?}", ci.alpha);
        assert!(contains(&ci.beta, TRUE.4), "{:?}", ci.beta);
        for i in [&ci.e, &ci.a, &ci.alpha, &ci.b, &ci.beta] {
            assert!(ordered(i) && i.lo < i.hi, "{i:?}");
        }
        assert_eq!(ci.alpha.estimate, ci.fit.alpha);
        assert!((ci.alpha.hi - ci.alpha.lo) < 0.2, "{:?}", ci.alpha);
        assert_eq!((ci.level, ci.resamples), (0.95, 200));
        assert!(ci.failed < 100);
        // Seeded: the same seed gives the same intervals, another seed different ones.
        assert_eq!(bootstrap_joint(&n, &d, &y, 200, 0.95, 42).unwrap(), ci);
        assert_ne!(bootstrap_joint(&n, &d, &y, 200, 0.95, 43).unwrap(), ci);
        let json = serde_json::to_string(&ci).unwrap();
        let back: JointCi = serde_json::from_str(&json).unwrap();
        assert!(rel(back.alpha.hi, ci.alpha.hi) < 1e-12 && back.failed == ci.failed);
    }

    #[test]
    fn power_law_bootstrap_covers_the_true_exponent() {
        let (x, y) = points(5.0, 0.3, 1.5, 0.01);
        let ci = bootstrap_power_law(&x, &y, None, 400, 0.95, 1).unwrap();
        assert!(contains(&ci.alpha, 0.3), "{:?}", ci.alpha);
        assert!(contains(&ci.c, 1.5), "{:?}", ci.c);
        for i in [&ci.a, &ci.alpha, &ci.c] {
            assert!(ordered(i) && i.lo < i.hi, "{i:?}");
        }
        assert!((ci.alpha.hi - ci.alpha.lo) < 0.1, "{:?}", ci.alpha);
        assert_eq!(ci.fit, fit_power_law(&x, &y).unwrap());
        assert_eq!(bootstrap_power_law(&x, &y, None, 400, 0.95, 1).unwrap(), ci);
        // A narrower level gives a narrower interval.
        let narrow = bootstrap_power_law(&x, &y, None, 400, 0.5, 1).unwrap();
        assert!(narrow.alpha.hi - narrow.alpha.lo < ci.alpha.hi - ci.alpha.lo);
    }

    #[test]
    fn bootstrap_rejects_bad_settings_and_mostly_failing_resamples() {
        let (x, y) = points(5.0, 0.3, 1.5, 0.01);
        let m = bootstrap_power_law(&x, &y, None, 1, 0.95, 0)
            .unwrap_err()
            .to_string();
        assert!(m.contains("resamples = 1"), "{m}");
        let m = bootstrap_power_law(&x, &y, None, 100, 1.0, 0)
            .unwrap_err()
            .to_string();
        assert!(m.contains("level = 1"), "{m}");
        // 3 points: a resample has 3 distinct sizes with probability 6/27 only.
        let m = bootstrap_power_law(&x[..3], &y[..3], None, 100, 0.95, 0)
            .unwrap_err()
            .to_string();
        assert!(m.contains("fewer than half"), "{m}");
        // Some failing resamples are counted, not fatal.
        let (n, d, y) = joint_points(TRUE, 0.01, 5);
        let ci = bootstrap_joint(&n[..6], &d[..6], &y[..6], 100, 0.9, 0).unwrap();
        assert!(ci.failed > 0 && ci.failed < 50, "{}", ci.failed);
    }

    #[test]
    fn frontier_of_a_hand_made_example() {
        //            0    1    2    3    4    5    6    7
        let flops = [4.0, 1.0, 2.0, 2.0, 3.0, 8.0, 5.0, 5.0];
        let loss = [2.5, 5.0, 4.0, 3.0, 3.5, 2.5, 2.0, 2.0];
        // 1 (f=1, 5.0) → 3 (f=2, 3.0; beats 2) → 0 (f=4, 2.5; 4 is above 3) → 6 (f=5, 2.0; tie
        // with 7, lower index) ; 5 (2.5) is not below 2.0.
        assert_eq!(compute_frontier(&flops, &loss).unwrap(), vec![1, 3, 0, 6]);
        assert_eq!(compute_frontier(&[7.0], &[1.0]).unwrap(), vec![0]);
        assert!(compute_frontier(&[], &[]).is_err());
        let m = compute_frontier(&[1.0, 2.0], &[1.0])
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("flops has 2") && m.contains("losses has 1"),
            "{m}"
        );
        let m = compute_frontier(&[1.0, f64::INFINITY], &[1.0, 0.5])
            .unwrap_err()
            .to_string();
        assert!(m.contains("flops") && m.contains("index 1"), "{m}");
    }

    proptest::proptest! {
        #[test]
        fn frontier_losses_strictly_decrease_and_dominate(
            pts in proptest::collection::vec((0u8..20, 0u8..20), 1..60)
        ) {
            let flops: Vec<f64> = pts.iter().map(|p| f64::from(p.0)).collect();
            let loss: Vec<f64> = pts.iter().map(|p| f64::from(p.1)).collect();
            let f = compute_frontier(&flops, &loss).unwrap();
            proptest::prop_assert!(!f.is_empty());
            for w in f.windows(2) {
                proptest::prop_assert!(flops[w[0]] < flops[w[1]]);
                proptest::prop_assert!(loss[w[0]] > loss[w[1]]);
            }
            // Every point off the frontier is weakly dominated by a frontier point; every
            // frontier point is strictly below all points with no more flops.
            for i in 0..pts.len() {
                if f.contains(&i) {
                    for j in (0..pts.len()).filter(|&j| j != i && flops[j] <= flops[i]) {
                        proptest::prop_assert!(loss[i] < loss[j] || (loss[i] == loss[j] && flops[i] == flops[j] && i < j));
                    }
                } else {
                    proptest::prop_assert!(
                        f.iter().any(|&k| flops[k] <= flops[i] && loss[k] <= loss[i])
                    );
                }
            }
        }
    }
}
