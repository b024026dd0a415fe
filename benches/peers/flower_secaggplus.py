#!/usr/bin/env python3
"""Peer baseline for the SecAgg+ bench: Flower's SecAgg+ client, one member's cost.

Calls the client-side stage functions of `flwr.client.mod.secure_aggregation.secaggplus_mod`
(`_setup`, `_share_keys`, `_collect_masked_vectors`) directly, for a cohort of k + 1 members
in which every member neighbours every other (Flower's share_num counts the member itself),
so member 0 does exactly the work of a SecAgg+ member with k neighbours. Reports the median
seconds of member 0's masked-input stage and of its three stages together.

Usage: python3 benches/peers/flower_secaggplus.py [--cases 16x100000,72x1000000] [--reps 3]
Prints one JSON object per line: {"k", "m", "masked_seconds", "client_seconds", "flwr"}.
Needs `pip install flwr==1.42.0` (the version measured in BENCHMARKS.md).
"""

import argparse
import importlib
import json
import statistics
import time

import flwr
import numpy as np
from flwr.common import ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import Key

# The package re-exports a function of the same name, so import the module itself.
sa = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")

CASES = [(k, m) for k in (16, 32, 72) for m in (100_000, 1_000_000)]


def setup_config(k):
    """Flower's stage-0 configuration for a k-neighbour member (defaults of the workflow)."""
    return {
        Key.SAMPLE_NUMBER: k + 1,
        Key.SHARE_NUMBER: k + 1,
        Key.THRESHOLD: max(2, k // 3),
        Key.CLIPPING_RANGE: 8.0,
        Key.TARGET_RANGE: 1 << 22,
        Key.MOD_RANGE: 1 << 32,
        Key.MAX_WEIGHT: 1000.0,
    }


def cohort_to_masked_stage(k):
    """Runs stages 0 and 1 for every member; returns the states and member 0's inbox."""
    states = [sa.SecAggPlusState(nid=nid) for nid in range(k + 1)]
    config = setup_config(k)
    keys = {}
    for state in states:
        out = sa._setup(state, config)
        keys[str(state.nid)] = (out[Key.PUBLIC_KEY_1], out[Key.PUBLIC_KEY_2])
    srcs, ctxts = [], []
    for state in states:
        out = sa._share_keys(state, dict(keys))
        for dst, ct in zip(out[Key.DESTINATION_LIST], out[Key.CIPHERTEXT_LIST]):
            if dst == 0:
                srcs.append(state.nid)
                ctxts.append(ct)
    return states, keys, {Key.SOURCE_LIST: srcs, Key.CIPHERTEXT_LIST: ctxts}


def measure(k, m, reps):
    update = ndarrays_to_parameters([np.zeros(m, dtype=np.float32)])
    masked, total = [], []
    for _ in range(reps):
        states, keys, inbox = cohort_to_masked_stage(k)
        start = time.perf_counter()
        sa._collect_masked_vectors(states[0], inbox, 1, update)
        masked.append(time.perf_counter() - start)
        # Member 0's whole path: its key setup and share encryption (timed on a fresh member,
        # as peers' ciphertexts are bound to the old keys) plus the masking timed above.
        fresh = sa.SecAggPlusState(nid=0)
        start = time.perf_counter()
        out = sa._setup(fresh, setup_config(k))
        spent = time.perf_counter() - start
        keys["0"] = (out[Key.PUBLIC_KEY_1], out[Key.PUBLIC_KEY_2])
        start = time.perf_counter()
        sa._share_keys(fresh, dict(keys))
        spent += time.perf_counter() - start
        total.append(spent + masked[-1])
    return statistics.median(masked), statistics.median(total)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated KxM list", default=None)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    cases = CASES
    if args.cases:
        cases = [tuple(int(v) for v in c.split("x")) for c in args.cases.split(",")]
    for k, m in cases:
        masked, total = measure(k, m, args.reps)
        print(json.dumps({
            "k": k, "m": m, "masked_seconds": masked, "client_seconds": total,
            "flwr": flwr.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
