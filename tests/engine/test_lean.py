"""Lean processes: the stand-ins the driver hands Ray list exactly the real actors' methods, and what
the aggregator's and a worker's imports pull in (checked in fresh interpreters)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedray.engine import remote

ROOT = Path(__file__).resolve().parents[2]


def _public_methods(cls: type) -> set[str]:
    return {name for name, value in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_the_stand_ins_forward_exactly_the_real_public_methods():
    from fedray.engine.actors import ClientActor
    from fedray.engine.aggregator import AggregatorActor

    assert set(remote.CLIENT_ACTOR_METHODS) == _public_methods(ClientActor)
    assert set(remote.AGGREGATOR_METHODS) == _public_methods(AggregatorActor)
    assert remote.ClientActor.__name__ == "ClientActor"  # the bench finds actors by this name
    assert remote.AggregatorActor.__name__ == "AggregatorActor"


def _imported(code: str) -> dict:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"torch": "torch" in modules, "transformers": "transformers" in modules,
            "models": sorted(m for m in modules if m.startswith("fedray.models")),
            "checks": "fedray.checks" in modules}


@pytest.mark.parametrize("module", ["fedray", "fedray.engine.remote", "fedray.engine.tasks"])
def test_what_every_worker_unpickles_imports_no_torch(module):
    seen = _imported(f"import {module}")
    assert seen == {"torch": False, "transformers": False, "models": [], "checks": False}


def test_the_aggregator_imports_no_model_code():
    seen = _imported("import fedray.engine.aggregator")
    assert not seen["transformers"] and seen["models"] == [] and not seen["checks"]


def test_the_driver_imports_no_transformers():
    seen = _imported("import fedray.engine.simulation")
    assert not seen["transformers"]
