#!/usr/bin/env python3
"""scikit-learn half of the side-by-side comparison (run via benches/eval_vs_sklearn.sh).

Loads the arrays the Rust example wrote, times scikit-learn + numpy computing the same report as
behavior_eval::evaluate (accuracy, macro/weighted P/R/F1, per-class table, confusion matrix,
HR/NDCG@{1,3,5,10} and MRR from the scores with the same tie rule, all overall and on anchor/tail
targets), checks that every metric agrees with Rust to 1e-9 and prints the speed ratio.
"""
import json
import os
import sys
import time

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

KS = (1, 3, 5, 10)


def classification(y, p, labels):
    out = {"accuracy": accuracy_score(y, p)}
    for avg, tag in (("weighted", "w"), ("macro", "m")):
        pr, rc, f1, _ = precision_recall_fscore_support(y, p, labels=labels, average=avg, zero_division=0)
        out.update({f"P_{tag}": pr, f"R_{tag}": rc, f"F1_{tag}": f1})
    per_class = precision_recall_fscore_support(
        y, p, labels=np.arange(K), average=None, zero_division=0)
    return out, per_class


def ranking(ranks):
    out = {"MRR": float(np.mean(1.0 / ranks))}
    gain = 1.0 / np.log2(1.0 + ranks)
    for k in KS:
        hit = ranks <= k
        out[f"HR@{k}"] = float(np.mean(hit))
        out[f"NDCG@{k}"] = float(np.mean(np.where(hit, gain, 0.0)))
    return out


def report(scores, y, anchor):
    pred = scores.argmax(1)  # first maximum = lowest class id, as in Rust
    s_y = np.take_along_axis(scores, y[:, None], 1)
    ids = np.arange(K)[None, :]
    ranks = 1 + (scores > s_y).sum(1) + ((scores == s_y) & (ids < y[:, None])).sum(1)
    metrics = {}
    present = np.union1d(np.unique(y), np.unique(pred))
    m, _ = classification(y, pred, present)
    metrics.update(m)
    metrics.update(ranking(ranks))
    cm = confusion_matrix(y, pred, labels=np.arange(K))
    for name, member in (("anchor", anchor), ("tail", ~anchor)):
        sel = member[y]
        if not sel.any():
            continue
        yt, yp = y[sel], pred[sel]
        labels = np.union1d(np.unique(yt), np.unique(yp))
        labels = labels[member[labels]]
        m, _ = classification(yt, yp, labels)
        m.update(ranking(ranks[sel]))
        metrics.update({f"{name}/{k}": v for k, v in m.items()})
    return metrics, cm


def main():
    global K
    d, reps = sys.argv[1], int(sys.argv[2])
    rust = json.load(open(os.path.join(d, "rust.json")))
    n, K = rust["n"], rust["k"]
    scores = np.fromfile(os.path.join(d, "scores.f32"), dtype="<f4").reshape(n, K)
    y = np.fromfile(os.path.join(d, "labels.u32"), dtype="<u4").astype(np.int64)
    anchor = np.fromfile(os.path.join(d, "anchor.u8"), dtype=np.uint8).astype(bool)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        metrics, _ = report(scores, y, anchor)
        times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2]
    worst = max(abs(metrics[k] - v) for k, v in rust["metrics"].items())
    missing = sorted(set(rust["metrics"]) ^ set(metrics))
    print(f"scikit-learn: same report on {n} x {K}: median {med:.3f} s over {reps} runs")
    print(f"metrics compared: {len(rust['metrics'])}, max |rust - sklearn| = {worst:.2e}, unmatched: {missing}")
    print(f"speed-up behavior-eval vs scikit-learn: {med / rust['median_s']:.1f}x "
          f"({med:.3f} s / {rust['median_s']:.3f} s, {rust['threads']} rayon threads, nproc={os.cpu_count()})")
    if worst > 1e-9 or missing:
        sys.exit("metrics disagree")


if __name__ == "__main__":
    main()
