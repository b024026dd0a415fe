#!/usr/bin/env python3
"""Cross-checks Covey's privacy accountants against Google's `dp-accounting` (PyPI).

For a grid of (sampling rate q, noise multiplier z, rounds T, delta) it asks the installed
library and the `covey privacy` CLI (built here with cargo) for epsilon, with the RDP
accountant (default orders, improved conversion; must agree within 1e-3 relative) and the
PLD accountant (1e-4 discretization, pessimistic; within 1e-2 relative). It also checks
fixed-size cohorts (sampling without replacement, replace-one) and calibration.

Prints one line per check and a closing `N passed, N failed`; exits non-zero on any failure.
"""

import concurrent.futures
import itertools
import json
import math
import os
import subprocess
import sys
import time

from absl import logging as absl_logging
import dp_accounting
from dp_accounting import mechanism_calibration
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

# Sum the same fractional-order series as covey: dp-accounting gives up after 1,000 terms
# and drops the order, which for small noise multipliers and large q drops orders whose
# series converges (slowly) and makes its ε looser than, and non-monotone in q unlike, the
# exact curve (see MAX_STEPS_LOG_A_FRAC in core/protocol/src/accounting/rdp.rs).
rdp_privacy_accountant._MAX_STEPS_LOG_A_FRAC = 100_000

RDP_TOLERANCE = 1e-3
PLD_TOLERANCE = 1e-2
# The calibrated noise multiplier is found by bisection on both sides; 1e-3 relative is far
# coarser than either side's stopping width and far finer than any practical difference.
CALIBRATION_TOLERANCE = 1e-3

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def build_cli():
    """Builds `covey` in the workspace's target dir and returns its path."""
    subprocess.run(
        ["cargo", "build", "--quiet", "--locked", "-p", "covey-cli"], cwd=REPO, check=True
    )
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    target = json.loads(meta.stdout)["target_directory"]
    return os.path.join(target, "debug", "covey")


def covey(cli, *args):
    """Runs `covey privacy ARGS --json`; returns its JSON object ({"error": ...} on failure)."""
    out = subprocess.run([cli, "privacy", *args, "--json"], capture_output=True, text=True)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"error": f"exit {out.returncode}: {out.stdout}{out.stderr}"}


def value(reply, key):
    """The figure `key` of a CLI reply; NaN (a failed check) when the CLI reported an error.
    JSON null is how serde writes an infinite epsilon."""
    if "error" in reply:
        print(f"covey error: {reply['error']}", flush=True)
        return math.nan
    return math.inf if reply[key] is None else reply[key]


def gaussian_event(q, z, steps):
    # q = 1 is plain Gaussian composition (exact: one Gaussian with z / sqrt(T)).
    if q == 1.0:
        return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), steps)
    inner = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    return dp_accounting.SelfComposedDpEvent(inner, steps)


def reference_epsilon(kind, q, z, steps, delta):
    accountant = (rdp_privacy_accountant.RdpAccountant() if kind == "rdp"
                  else pld_privacy_accountant.PLDAccountant())
    accountant.compose(gaussian_event(q, z, steps))
    return accountant.get_epsilon(delta)


def grid():
    """(q, z, T, delta): cross-device to full-batch rates, low to high noise, few to many
    rounds; delta alternates so both values meet every other parameter. Full-batch rounds
    stop at T = 100: beyond that epsilon is in the thousands, a regime nobody deploys."""
    rates = [1e-3, 5e-3, 0.02, 0.1, 1.0]
    noises = [0.7, 1.0, 2.0]
    deltas = [1e-5, 1e-6]
    for i, (q, z) in enumerate(itertools.product(rates, noises)):
        for j, t in enumerate([1, 10, 100] if q == 1.0 else [10, 500, 3000]):
            yield q, z, t, deltas[(i + j) % 2]


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, label, got, want, tolerance):
        if math.isinf(want) or math.isinf(got):
            ok = math.isinf(want) and math.isinf(got)
            err = 0.0 if ok else math.inf
        else:
            err = abs(got - want) / max(abs(want), 1e-12)
            ok = err <= tolerance  # NaN (a CLI error) compares false
        self.passed += ok
        self.failed += not ok
        status = "ok  " if ok else "FAIL"
        print(f"{status} {label}: covey {got:.6g} dp-accounting {want:.6g} (rel err {err:.1e})",
              flush=True)


def check_grid(cli, tally, pool):
    cases = list(grid())
    jobs = {}
    for q, z, t, delta in cases:
        for kind in ("rdp", "pld"):
            args = ("epsilon", "--noise-multiplier", str(z), "--sampling-rate", str(q),
                    "--steps", str(t), "--delta", str(delta), "--accountant", kind)
            jobs[(kind, q, z, t, delta)] = pool.submit(covey, cli, *args)
    for q, z, t, delta in cases:
        for kind, tol in (("rdp", RDP_TOLERANCE), ("pld", PLD_TOLERANCE)):
            got = value(jobs[(kind, q, z, t, delta)].result(), "epsilon")
            want = reference_epsilon(kind, q, z, t, delta)
            tally.check(f"{kind} eps q={q} z={z} T={t} delta={delta}", got, want, tol)


def check_fixed_size_cohorts(cli, tally):
    """Fixed-size cohorts: RDP for sampling without replacement under replace-one, where a
    member's replacement moves the clipped sum by 2C (so dp-accounting sees z / 2)."""
    for cohort, population, z, t in [(100, 10_000, 1.0, 100), (1000, 100_000, 2.0, 1000),
                                     (50, 1000, 4.0, 20)]:
        got = covey(cli, "epsilon", "--noise-multiplier", str(z), "--cohort", str(cohort),
                    "--population", str(population), "--steps", str(t), "--delta", "1e-6",
                    "--accountant", "rdp")
        got = value(got, "epsilon")
        accountant = rdp_privacy_accountant.RdpAccountant(
            neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
        inner = dp_accounting.SampledWithoutReplacementDpEvent(
            population, cohort, dp_accounting.GaussianDpEvent(z / 2))
        accountant.compose(dp_accounting.SelfComposedDpEvent(inner, t))
        want = accountant.get_epsilon(1e-6)
        tally.check(f"rdp eps fixed cohort {cohort}/{population} z={z} T={t}", got, want,
                    RDP_TOLERANCE)


def check_calibration(cli, tally):
    for kind, eps, delta, q, t in [("rdp", 2.0, 1e-6, 1e-3, 2000), ("pld", 2.0, 1e-6, 1e-3, 2000),
                                   ("pld", 1.0, 1e-5, 0.01, 300), ("rdp", 8.0, 1e-5, 1.0, 50)]:
        got = covey(cli, "calibrate", "--epsilon", str(eps), "--delta", str(delta),
                    "--sampling-rate", str(q), "--steps", str(t),
                    "--accountant", kind)
        got = value(got, "noise_multiplier")
        make = ((lambda: rdp_privacy_accountant.RdpAccountant()) if kind == "rdp"
                else (lambda: pld_privacy_accountant.PLDAccountant()))
        want = mechanism_calibration.calibrate_dp_mechanism(
            make, lambda z, q=q, t=t: gaussian_event(q, z, t), eps, delta)
        tally.check(f"{kind} calibrate eps={eps} delta={delta} q={q} T={t}", got, want,
                    CALIBRATION_TOLERANCE)


def main():
    absl_logging.set_verbosity(absl_logging.ERROR)  # dp-accounting's per-order warnings
    start = time.time()
    cli = build_cli()
    tally = Tally()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        check_grid(cli, tally, pool)
    check_fixed_size_cohorts(cli, tally)
    check_calibration(cli, tally)
    print(f"cross-check took {time.time() - start:.1f} s")
    print(f"{tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
