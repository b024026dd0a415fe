#!/usr/bin/env python3
"""Times Google's dp-accounting on the cases of benches/benches/accounting.rs.

Usage: dp_accounting_epsilon.py --cases KIND:Q:Z:T:DELTA,...  (KIND = rdp | pld | pldcal)
Prints one JSON line per case: {"case": ..., "seconds": median of 3, "value": ...}.
`pldcal` calibrates the noise multiplier for target epsilon Z (PLD) instead.
"""
import argparse
import json
import statistics
import time

from absl import logging as absl_logging
import dp_accounting
from dp_accounting import mechanism_calibration
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant


def event(q, z, t):
    inner = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    return dp_accounting.SelfComposedDpEvent(inner, t)


def run(kind, q, z, t, delta):
    if kind == "pldcal":
        return mechanism_calibration.calibrate_dp_mechanism(
            pld_privacy_accountant.PLDAccountant, lambda x: event(q, x, t), z, delta)
    accountant = (rdp_privacy_accountant.RdpAccountant() if kind == "rdp"
                  else pld_privacy_accountant.PLDAccountant())
    accountant.compose(event(q, z, t))
    return accountant.get_epsilon(delta)


def main():
    absl_logging.set_verbosity(absl_logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", required=True)
    args = parser.parse_args()
    for case in args.cases.split(","):
        kind, q, z, t, delta = case.split(":")
        params = (kind, float(q), float(z), int(t), float(delta))
        times, value = [], None
        for _ in range(3):
            start = time.perf_counter()
            value = run(*params)
            times.append(time.perf_counter() - start)
        print(json.dumps({"case": case, "seconds": statistics.median(times), "value": value}))


if __name__ == "__main__":
    main()
