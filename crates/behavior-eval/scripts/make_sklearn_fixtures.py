#!/usr/bin/env python3
"""Generates the scikit-learn / scipy / NLTK parity fixtures of behavior-eval.

Run once (the output is committed; tests never need Python):

    pip install --target /work/pyenv/eval scikit-learn numpy scipy nltk
    PYTHONPATH=/work/pyenv/eval python3 crates/behavior-eval/scripts/make_sklearn_fixtures.py

Writes crates/behavior-eval/tests/fixtures/{classification_ranking,generation,uncertainty}.json.

Semantics mirrored here (see the crate docs):
* classification: sklearn precision_recall_fscore_support / accuracy_score / confusion_matrix with
  zero_division=0; macro/weighted over labels present in y_true ∪ y_pred;
* predictions are the row-wise argmax of the float32 scores (np.argmax: first maximum = lowest id);
* rank(y) = 1 + #{j: s_j > s_y} + #{j < y: s_j == s_y}; HR@k, NDCG@k = 1/log2(1+rank) if
  rank <= k, MRR = mean 1/rank;
* anchor / tail group: samples whose TRUE class is in the group; sklearn metrics on that subset
  with labels = group classes present in the subset's y_true ∪ y_pred.
"""
import json
import os

import numpy as np
import scipy
import sklearn
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
rng = np.random.default_rng(20261128)


def cls_metrics(y_true, y_pred, labels):
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        out[f"precision_{avg}"] = float(p)
        out[f"recall_{avg}"] = float(r)
        out[f"f1_{avg}"] = float(f)
    return out


def ranks_of(scores, y):
    s_y = scores[np.arange(len(y)), y][:, None]
    ids = np.arange(scores.shape[1])[None, :]
    return 1 + (scores > s_y).sum(1) + ((scores == s_y) & (ids < y[:, None])).sum(1)


def rank_metrics(ranks, ks):
    return {
        "hit_rate": [float(np.mean(ranks <= k)) for k in ks],
        "ndcg": [float(np.mean(np.where(ranks <= k, 1.0 / np.log2(1.0 + ranks), 0.0))) for k in ks],
        "mrr": float(np.mean(1.0 / ranks)),
    }


def case(name, scores, y, is_anchor, ks):
    scores = np.asarray(scores, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n, k = scores.shape
    pred = scores.argmax(1)
    ranks = ranks_of(scores, y)
    present = sorted(set(y.tolist()) | set(pred.tolist()))
    overall = cls_metrics(y, pred, present)
    p, r, f, s = precision_recall_fscore_support(
        y, pred, labels=list(range(k)), average=None, zero_division=0
    )
    overall["per_class"] = {
        "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": [int(v) for v in s],
    }
    overall.update(rank_metrics(ranks, ks))
    groups = {}
    for gname, member in (("anchor", np.asarray(is_anchor)), ("tail", ~np.asarray(is_anchor))):
        sel = member[y]
        if not sel.any():
            groups[gname] = None
            continue
        yt, yp = y[sel], pred[sel]
        labels = sorted(c for c in set(yt.tolist()) | set(yp.tolist()) if member[c])
        g = cls_metrics(yt, yp, labels)
        g["n_samples"] = int(sel.sum())
        g.update(rank_metrics(ranks[sel], ks))
        groups[gname] = g
    return {
        "name": name,
        "n_classes": int(k),
        "ks": ks,
        "scores": [float(v) for v in scores.ravel()],
        "y_true": y.tolist(),
        "is_anchor": [bool(a) for a in is_anchor],
        "expected": {
            "y_pred": pred.tolist(),
            "ranks": ranks.tolist(),
            "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
            "overall": overall,
            "anchor": groups["anchor"],
            "tail": groups["tail"],
        },
    }


def random_case(i):
    k = int(rng.integers(2, 25))
    n = int(rng.integers(1, 160))
    # long-tailed targets over a random subset of classes (absent classes are common)
    used = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    w = 1.0 / np.arange(1, len(used) + 1) ** 1.2
    y = rng.choice(used, size=n, p=w / w.sum())
    scores = rng.normal(size=(n, k))
    scores[np.arange(n), y] += rng.uniform(0, 3)
    if i % 3 == 0:  # coarse scores: many ties
        scores = np.round(scores, 0)
    is_anchor = rng.random(k) < 0.3
    ks = sorted(set(int(v) for v in rng.integers(1, k + 3, size=3)))
    return case(f"random_{i:02d}", scores, y, is_anchor, ks)


def special_cases():
    out = []
    k, n = 6, 40
    y = rng.integers(0, k, size=n)
    eye = np.eye(k)
    out.append(case("all_right", eye[y], y, [True, True, False, False, False, False], [1, 2, 6]))
    out.append(case("all_wrong", eye[(y + 1) % k], y, [True, False] * 3, [1, 2, 6]))
    out.append(case("single_class_k1", np.zeros((7, 1)), np.zeros(7, dtype=int), [True], [1, 3]))
    y2 = np.full(25, 2)
    s2 = rng.normal(size=(25, 5))
    out.append(case("single_target_class", s2, y2, [False, False, True, False, False], [1, 3, 5]))
    out.append(case("all_tied", np.zeros((12, 4)), rng.integers(0, 4, size=12), [True, False, False, False], [1, 2, 3, 4]))
    y3 = rng.integers(0, 3, size=50)  # classes 3..9 absent from truth, some predicted
    s3 = rng.normal(size=(50, 10))
    out.append(case("absent_classes_predicted", s3, y3, [True] * 3 + [False] * 7, [1, 5, 10]))
    out.append(case("one_sample", [[0.1, 0.3, 0.2]], [2], [False, True, False], [1, 2, 3]))
    out.append(case("no_anchor_targets", s3, y3, [False] * 3 + [True] * 7, [1, 3]))
    return out


def generation_cases():
    cases = []
    for i in range(12):
        k = int(rng.integers(2, 20))
        p = rng.integers(0, 20, size=k).astype(float)
        q = rng.integers(0, 20, size=k).astype(float)
        p[0] += 1
        q[-1] += 1
        if i == 0:
            q = p * 3
        if i == 1:
            p = np.zeros(k); p[0] = 5
            q = np.zeros(k); q[1] = 2
        cases.append({
            "p": p.tolist(), "q": q.tolist(),
            "jsd": float(jensenshannon(p, q, base=2) ** 2),
            "tvd": float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum()),
        })
    bleu = []
    chencherry = SmoothingFunction()
    for i in range(10):
        m = int(rng.integers(1, 6))
        vocab = int(rng.integers(3, 10))
        refs, hyps = [], []
        for _ in range(m):
            r = rng.integers(0, vocab, size=int(rng.integers(3, 15))).tolist()
            h = list(r)
            for j in range(len(h)):  # corrupt some tokens
                if rng.random() < 0.3:
                    h[j] = int(rng.integers(0, vocab))
            h = h[: int(rng.integers(2, len(h) + 3))]
            refs.append(r)
            hyps.append(h)
        for max_n in (1, 2, 4):
            w = tuple([1.0 / max_n] * max_n)
            bleu.append({
                "candidates": hyps, "references": refs, "max_n": max_n,
                "bleu_epsilon_0_1": float(corpus_bleu([[r] for r in refs], hyps, weights=w,
                                                      smoothing_function=chencherry.method1)),
            })
    return {"histograms": cases, "bleu": bleu}


def uncertainty_cases():
    ms = []
    for i in range(6):
        v = rng.normal(0.5, 0.1, size=int(rng.integers(2, 10)))
        ms.append({"values": v.tolist(), "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))})
    mc = []
    for b, c in [(0, 0), (3, 10), (10, 3), (25, 40), (0, 7), (120, 80), (500, 520)]:
        mc.append({"b": b, "c": c, "p_value": 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)})
    return {"mean_std": ms, "mcnemar": mc}


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "scripts/make_sklearn_fixtures.py", "sklearn": sklearn.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}
    cases = [random_case(i) for i in range(20)] + special_cases()
    with open(os.path.join(OUT, "classification_ranking.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f)
    with open(os.path.join(OUT, "generation.json"), "w") as f:
        json.dump({"meta": meta, **generation_cases()}, f)
    with open(os.path.join(OUT, "uncertainty.json"), "w") as f:
        json.dump({"meta": meta, **uncertainty_cases()}, f)
    print(f"wrote {len(cases)} classification/ranking cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
