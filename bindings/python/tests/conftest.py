"""Puts the generated bindings (scripts/generate-bindings --lang python) on sys.path."""

import pathlib
import sys

import pytest

GENERATED = pathlib.Path(__file__).resolve().parents[1] / "generated"
if not (GENERATED / "covey.py").exists():
    raise pytest.UsageError(
        f"{GENERATED}/covey.py is missing: run scripts/generate-bindings --lang python first"
    )
sys.path.insert(0, str(GENERATED))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
