"""A real covey-server on loopback for the round tests: `covey-server init` from a population
TOML and an items CSV, `export-model` for the app's bundled model, then `serve`."""

import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

CATEGORIES = ["espresso", "filter", "tea", "pastry", "sandwich"]
ITEMS = [f"sku-{i:02d}" for i in range(30)]

POPULATION_TOML = """
[population]
name = "{name}"
[model]
dim = 4
feature_rows = 8
catalog = "items.csv"
[model.training]
local_epochs = 2
negatives = 8
[privacy]
mechanism = "skellam"
epsilon_budget = 1000.0
delta = 1e-6
clip_norm = 1.0
noise_multiplier = 1.0
bits = 20
[secagg]
cohort_min = 3
cohort_max = 3
dropout_tolerance = 0.3
adversarial_fraction = 0.05
[deadlines]
check_in = 30
advertise_keys = 30
share_keys = 30
masked_input = 30
consistency_check = 30
unmask = 30
[eligibility]
min_examples = 3
min_separation_hours = 0
max_per_day = 100
[optimizer]
kind = "fedavg"
learning_rate = 1.0
"""


def server_binary() -> str:
    path = os.environ.get("COVEY_SERVER_BIN")
    if not path or not pathlib.Path(path).exists():
        raise RuntimeError(
            "COVEY_SERVER_BIN must name a built covey-server (scripts/tests.d/50-python-bindings sets it)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`covey-server serve` in a subprocess, stopped by `stop()`."""

    def __init__(self, workdir: pathlib.Path, population: str):
        self.population = population
        self.data = workdir / "server-data"
        (workdir / "items.csv").write_text(
            "item_id,category,price\n"
            + "".join(
                f"{item},{CATEGORIES[i % len(CATEGORIES)]},{200 + 10 * i}\n"
                for i, item in enumerate(ITEMS)
            )
        )
        config = workdir / "population.toml"
        config.write_text(POPULATION_TOML.format(name=population))
        binary = server_binary()
        self._run(binary, "init", "--config", str(config), "--data", str(self.data))
        model = workdir / "model-v0.bin"
        self._run(
            binary, "export-model", "--population", population,
            "--out", str(model), "--data", str(self.data),
        )
        self.model_bytes = model.read_bytes()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(workdir / "server.log", "wb")
        self.process = subprocess.Popen(
            [binary, "serve", "--data", str(self.data), "--listen", f"127.0.0.1:{port}",
             "--tick-ms", "50", "--rate-burst", "1000", "--rate-per-second", "1000"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    @staticmethod
    def _run(*args):
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{args[1]} failed: {done.stderr}")

    def _wait_healthy(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("covey-server exited at start-up")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise RuntimeError("covey-server did not become healthy")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
