"""Every random choice in fedray derives from the scenario seed through these helpers.

``derive_rng(seed, "partition")`` and ``derive_rng(seed, "sample", server_round)`` give independent,
reproducible streams: the same scenario gives the same partitions, cohorts and batches, and adding a new
consumer of randomness never shifts an existing one. Library code never touches a global RNG.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

import numpy as np


def _key_to_int(key: object) -> int:
    if isinstance(key, (int, np.integer)) and key >= 0:
        return int(key)
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def derive_seed_sequence(seed: int, *keys: object) -> np.random.SeedSequence:
    """A SeedSequence for the stream named by ``keys`` under ``seed``."""
    return np.random.SeedSequence([int(seed), *(_key_to_int(k) for k in keys)])


def derive_rng(seed: int, *keys: object) -> np.random.Generator:
    """A numpy Generator for the stream named by ``keys`` (strings or non-negative ints)."""
    return np.random.default_rng(derive_seed_sequence(seed, *keys))


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit integer seed for libraries that want an int (torch, Python's random)."""
    return int(derive_seed_sequence(seed, *keys).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's RNG state afterwards.

    Model constructors draw their initial weights from torch's global generator; this keeps that
    deterministic without leaking the seed into the rest of the process.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        seed_torch(seed)
        yield


def seed_torch(seed: int) -> None:
    """``torch.manual_seed(seed)``; on a machine without an accelerator, only the CPU generator (what
    ``manual_seed`` seeds there, to the same state) at 1 µs instead of 100: a fit seeds its dropout
    once, and a one-step fit takes a few milliseconds."""
    import torch

    if torch.accelerator.is_available():
        torch.manual_seed(seed)  # also every device's generator (CUDA, MPS, XPU, ...)
    else:
        torch.default_generator.manual_seed(int(seed))
