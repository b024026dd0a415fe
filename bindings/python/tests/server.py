"""A real covey-server on loopback for the round tests: `covey-server init` from a population
TOML and an items CSV, `export-model` for the app's bundled model, then `serve`."""

import json
import os
import pathlib
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

# The shared test population and catalog, also read by the Rust and Kotlin suites.
FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "tests" / "fixtures"
ITEM_COUNT = 30
ITEMS = [f"sku-{i}" for i in range(ITEM_COUNT)]
# A device may wait alone for its cohort (the cancel test) and three members on a loaded
# machine take a while to gather: every stage gets 30 s.
STAGES = ["check_in", "advertise_keys", "share_keys", "masked_input", "consistency_check", "unmask"]


def population_toml(**fields) -> str:
    """tests/fixtures/population.toml with the `key = value` line of each of `fields` replaced
    (every key is unique in that file)."""
    text = (FIXTURES / "population.toml").read_text()
    for key, value in fields.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", text, flags=re.M)
        if found != 1:
            raise KeyError(f"{key} is not a line of {FIXTURES / 'population.toml'}")
    return text


def items_csv(count: int) -> str:
    """The header and first `count` items of tests/fixtures/items.csv."""
    lines = (FIXTURES / "items.csv").read_text().splitlines(keepends=True)[: 1 + count]
    assert [line.split(",")[0] for line in lines[1:]] == ITEMS[:count], "fixture items changed"
    return "".join(lines)


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
        (workdir / "items.csv").write_text(items_csv(ITEM_COUNT))
        config = workdir / "population.toml"
        config.write_text(population_toml(name=population, **{stage: 30 for stage in STAGES}))
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
