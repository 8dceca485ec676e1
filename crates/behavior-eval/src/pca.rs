//! Principal component analysis for small point sets (a few hundred points of any dimension):
//! the top components of the centred Gram matrix by power iteration with deflation.

use crate::{Error, Result};

/// The top `k` principal-component coordinates of `points` (`n` rows of equal dimension): row
/// `i` of the result holds point `i`'s coordinates along the first `k` principal axes (the
/// centred data projected on them). Each component's sign is fixed so that its largest-magnitude
/// coordinate is positive (scikit-learn's `svd_flip` convention on the scores).
pub fn project(points: &[Vec<f64>], k: usize) -> Result<Vec<Vec<f64>>> {
    let n = points.len();
    if n < 2 {
        return Err(Error::Empty(format!(
            "PCA needs at least 2 points, got {n}"
        )));
    }
    let d = points[0].len();
    if let Some(i) = points.iter().position(|p| p.len() != d) {
        return Err(Error::Shape(format!(
            "PCA: point {i} has {} coordinates, point 0 has {d}",
            points[i].len()
        )));
    }
    if let Some(i) = points.iter().position(|p| p.iter().any(|x| !x.is_finite())) {
        return Err(Error::InvalidArgument(format!(
            "PCA: point {i} has a non-finite coordinate"
        )));
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| points.iter().map(|p| p[j]).sum::<f64>() / n as f64)
        .collect();
    let x: Vec<Vec<f64>> = points
        .iter()
        .map(|p| p.iter().zip(&mean).map(|(a, m)| a - m).collect())
        .collect();
    // Gram matrix G = X Xᵀ (n × n); its eigenvectors u with eigenvalues λ give scores u √λ.
    let mut g = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i..n {
            let v: f64 = x[i].iter().zip(&x[j]).map(|(a, b)| a * b).sum();
            g[i][j] = v;
            g[j][i] = v;
        }
    }
    let mut comps: Vec<Vec<f64>> = Vec::with_capacity(k);
    for _ in 0..k.min(n) {
        // Deterministic start that is not orthogonal to the top eigenvector in general.
        let mut u: Vec<f64> = (0..n)
            .map(|i| 1.0 + (i as f64 * 0.618_034).fract())
            .collect();
        let mut lambda = 0.0;
        for _ in 0..1000 {
            let mut v: Vec<f64> = g
                .iter()
                .map(|row| row.iter().zip(&u).map(|(a, b)| a * b).sum())
                .collect();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                lambda = 0.0;
                break;
            }
            v.iter_mut().for_each(|a| *a /= norm);
            let delta: f64 = v.iter().zip(&u).map(|(a, b)| (a - b).abs()).sum();
            u = v;
            lambda = norm;
            if delta < 1e-12 {
                break;
            }
        }
        let big = u
            .iter()
            .copied()
            .fold(0.0f64, |m, a| if a.abs() > m.abs() { a } else { m });
        if big < 0.0 {
            u.iter_mut().for_each(|a| *a = -*a);
        }
        let s = lambda.max(0.0).sqrt();
        comps.push(u.iter().map(|a| a * s).collect());
        // Deflate: G ← G − λ u uᵀ.
        for i in 0..n {
            for j in 0..n {
                g[i][j] -= lambda * u[i] * u[j];
            }
        }
    }
    // Components beyond the number of points are 0.
    Ok((0..n)
        .map(|i| (0..k).map(|c| comps.get(c).map_or(0.0, |v| v[i])).collect())
        .collect())
}

/// [`project`] onto the first two components, as `(pc1, pc2)` pairs.
pub fn project_2d(points: &[Vec<f64>]) -> Result<Vec<(f64, f64)>> {
    Ok(project(points, 2)?
        .into_iter()
        .map(|p| (p[0], p[1]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_on_a_line_have_their_spread_on_the_first_component() {
        // y = 2x: all variance along (1, 2)/√5, so the scores are (x − mean x)·√5, with the sign
        // that makes the largest |score| (x = 7) positive.
        let xs = [0.0, 1.0, 2.0, 3.0, 7.0];
        let pts: Vec<Vec<f64>> = xs.iter().map(|&x| vec![x, 2.0 * x]).collect();
        let p = project(&pts, 2).unwrap();
        let mean = xs.iter().sum::<f64>() / 5.0;
        for (i, x) in xs.iter().enumerate() {
            let want = (x - mean) * 5f64.sqrt();
            assert!((p[i][0] - want).abs() < 1e-9, "{:?} vs {want}", p[i]);
            assert!(p[i][1].abs() < 1e-6);
        }
    }

    #[test]
    fn scores_are_centred_orthogonal_and_hold_the_top_variance() {
        let pts = vec![
            vec![2.5, 2.4, 0.5],
            vec![0.5, 0.7, 1.0],
            vec![2.2, 2.9, 0.2],
            vec![1.9, 2.2, 0.9],
            vec![3.1, 3.0, 0.1],
        ];
        let p = project(&pts, 2).unwrap();
        // Variance captured equals the sum of squared scores = the top two eigenvalues, and the
        // scores are orthogonal with zero mean.
        let dot: f64 = p.iter().map(|r| r[0] * r[1]).sum();
        assert!(dot.abs() < 1e-8);
        for c in 0..2 {
            let m: f64 = p.iter().map(|r| r[c]).sum();
            assert!(m.abs() < 1e-9);
        }
        let total: f64 = {
            let mean: Vec<f64> = (0..3)
                .map(|j| pts.iter().map(|q| q[j]).sum::<f64>() / 5.0)
                .collect();
            pts.iter()
                .map(|q| {
                    q.iter()
                        .zip(&mean)
                        .map(|(a, b)| (a - b).powi(2))
                        .sum::<f64>()
                })
                .sum()
        };
        let first: f64 = p.iter().map(|r| r[0] * r[0]).sum();
        let second: f64 = p.iter().map(|r| r[1] * r[1]).sum();
        assert!(first >= second && first + second <= total + 1e-9);
        assert!(first / total > 0.9, "{first} of {total}");
        // PyTorch: X -= X.mean(0); U, S, Vt = torch.linalg.svd(X); U[:, :2] * S[:2], each
        // column's sign flipped so that its largest |score| is positive.
        let want = [
            [-0.43848078463691814, -0.21458254105419788],
            [2.221987207649215, 0.008511708140951238],
            [-0.6400103371429753, 0.4088608461681313],
            [0.21810593020408398, -0.08067779285554899],
            [-1.3616020160734068, -0.1221122203993345],
        ];
        for i in 0..5 {
            for c in 0..2 {
                assert!(
                    (p[i][c] - want[i][c]).abs() < 1e-8,
                    "{:?} vs {:?}",
                    p[i],
                    want[i]
                );
            }
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(project(&[vec![1.0]], 2).is_err());
        assert!(project(&[vec![1.0, 2.0], vec![1.0]], 2).is_err());
        assert!(project(&[vec![1.0, f64::NAN], vec![1.0, 2.0]], 2).is_err());
    }
}
