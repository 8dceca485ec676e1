#!/usr/bin/env python3
"""Generates tests/fixtures/ranking_ties.json: ranking metrics with tied scores under the expected
(random tie-breaking) convention, the default of behavior-eval.

Run once (the output is committed; tests never need Python):

    pip install --target /tmp/pyeval scikit-learn numpy scipy
    PYTHONPATH=/tmp/pyeval python3 crates/behavior-eval/scripts/make_tie_fixtures.py

(scikit-learn 1.9.1, numpy 2.4.6, scipy 1.17.1.)

* NDCG@k comes from scikit-learn itself: `ndcg_score(onehot(y), scores, k=k, ignore_ties=False)`,
  which averages the gain over each group of tied scores — per sample, the expectation over a
  uniformly random order of the ties.
* HR@k and MRR have no scikit-learn counterpart; they are computed here by brute force from their
  definition (the average over every position the true class can take inside its tie group),
  independently of the closed forms used in Rust.
* The optimistic (true class first) and pessimistic (true class last) values are included too.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.metrics import ndcg_score

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
rng = np.random.default_rng(20261130)


def brute(scores, y, ks):
    hr = {k: [] for k in ks}
    rr = []
    opt = {k: [] for k in ks}
    pes = {k: [] for k in ks}
    for s, t in zip(scores, y):
        above = int((s > s[t]).sum())
        tied = int((s == s[t]).sum())
        positions = range(above + 1, above + tied + 1)
        for k in ks:
            hr[k].append(np.mean([p <= k for p in positions]))
            opt[k].append(float(above + 1 <= k))
            pes[k].append(float(above + tied <= k))
        rr.append(np.mean([1.0 / p for p in positions]))
    return (
        [float(np.mean(hr[k])) for k in ks],
        float(np.mean(rr)),
        [float(np.mean(opt[k])) for k in ks],
        [float(np.mean(pes[k])) for k in ks],
    )


def case(name, scores, y, ks):
    scores = np.asarray(scores, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n, k_classes = scores.shape
    onehot = np.eye(k_classes)[y]
    if n == 1 and k_classes == 1:
        raise ValueError("sklearn's ndcg_score needs more than one document")
    ndcg = [float(ndcg_score(onehot, scores.astype(np.float64), k=k, ignore_ties=False)) for k in ks]
    hr, mrr, opt, pes = brute(scores, y, ks)
    return {
        "name": name,
        "n_classes": int(k_classes),
        "ks": ks,
        "scores": [float(v) for v in scores.ravel()],
        "y_true": y.tolist(),
        "expected": {"hit_rate": hr, "ndcg": ndcg, "mrr": mrr},
        "optimistic": {"hit_rate": opt},
        "pessimistic": {"hit_rate": pes},
    }


def main():
    cases = []
    for i in range(16):
        k = int(rng.integers(2, 20))
        n = int(rng.integers(1, 80))
        y = rng.integers(0, k, size=n)
        scores = rng.normal(size=(n, k))
        scores[np.arange(n), y] += rng.uniform(0, 2)
        scores = np.round(scores * (1 if i % 2 else 0.5), 0)  # coarse: many ties
        ks = sorted(set(int(v) for v in rng.integers(1, k + 2, size=3)) | {k})
        cases.append(case(f"tied_{i:02d}", scores, y, ks))
    cases.append(case("all_tied", np.zeros((10, 5)), np.arange(10) % 5, [1, 2, 3, 5]))
    cases.append(case("no_ties", rng.normal(size=(30, 7)), rng.integers(0, 7, size=30), [1, 3, 7]))
    with open(os.path.join(OUT, "ranking_ties.json"), "w") as f:
        json.dump({"generator": f"scikit-learn {sklearn.__version__}, numpy {np.__version__}", "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
