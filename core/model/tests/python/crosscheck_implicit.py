#!/usr/bin/env python3
"""Quality cross-check: `implicit` (PyPI) ALS and BPR on exactly the split `covey eval` uses.

Usage (see core/model/README.md):
    covey eval --synthetic --members 2000 --items 1000 --dim 32 --seed 1 --export DIR --json
    python crosscheck_implicit.py DIR --dim 32

or, for a public dataset or the synthetic population with the table printed,
`scripts/datasets/compare DATA_DIR|synthetic --dim 32` (see scripts/datasets/README.md).

DIR holds train.csv / test.csv (user_id,item_id,timestamp,weight) and items.csv written by
`covey eval --export`. Protocol as in covey-model's harness: one held-out item per member,
full ranking over the catalog, the member's training items excluded, HR@10, NDCG@10,
coverage@10. Training confidence is covey's default log scaling of the summed event weights,
1 + 4·ln(1 + w) (without recency decay). Prints one JSON object per model.
"""
import argparse
import csv
import json
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402
from implicit.bpr import BayesianPersonalizedRanking  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    items = [r["item_id"] for r in read(os.path.join(args.dir, "items.csv"))]
    item_index = {i: n for n, i in enumerate(items)}
    train = read(os.path.join(args.dir, "train.csv"))
    test = read(os.path.join(args.dir, "test.csv"))
    users = sorted({r["user_id"] for r in train} | {r["user_id"] for r in test})
    user_index = {u: n for n, u in enumerate(users)}
    raw = {}
    for r in train:
        key = (user_index[r["user_id"]], item_index[r["item_id"]])
        raw[key] = raw.get(key, 0.0) + float(r["weight"])
    rows, cols, vals = zip(*((u, i, 1.0 + 4.0 * math.log1p(w)) for (u, i), w in raw.items()))
    user_items = sp.csr_matrix((vals, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    held_out = {user_index[r["user_id"]]: item_index[r["item_id"]] for r in test}
    models = {
        "implicit_als": AlternatingLeastSquares(
            factors=args.dim, regularization=0.05, iterations=15, random_state=args.seed
        ),
        "implicit_bpr": BayesianPersonalizedRanking(
            factors=args.dim, learning_rate=0.05, regularization=0.01, iterations=200, random_state=args.seed
        ),
    }
    for name, model in models.items():
        t0 = time.time()
        model.fit(user_items, show_progress=False)
        seconds = time.time() - t0
        test_users = np.array(sorted(held_out))
        ids, _ = model.recommend(test_users, user_items[test_users], N=10, filter_already_liked_items=True)
        hits = ndcg = 0.0
        shown = set()
        for u, top in zip(test_users, ids):
            top = list(top)
            shown.update(top)
            if held_out[u] in top:
                hits += 1
                ndcg += 1.0 / math.log2(top.index(held_out[u]) + 2)
        n = len(test_users)
        print(json.dumps({
            "model": name,
            "hr_at_10": hits / n,
            "ndcg_at_10": ndcg / n,
            "coverage_at_10": len(shown) / len(items),
            "train_seconds": seconds,
            "test_members": n,
        }))


if __name__ == "__main__":
    main()
