"""Modality heterogeneity: which modalities each client, or each sample, holds (FedMLLM §6.4).

A scenario is a registered function ``(num_clients, sample_ids, cfg, seed) -> ModalityPlan``. Its plan
gives every client a set of modalities and, where the scenario works per sample, a bit mask per sample
(:data:`IMAGE` | :data:`TEXT`). A missing modality is absent, not imputed: :func:`mask_rows` sets the
row's ``image`` or ``text`` to None and the prompt then says what is present.

Two modes:
- ``fedray``: per-sample draws come from a hash of (seed, sample id), so they do not depend on the order
  in which clients or samples are visited; per-client draws from a named seeded stream.
- ``fedmllm``: the reference scripts' RNG calls (``random.sample``, ``np.random.binomial``, one
  ``random.random`` stream over samples), made on private generators seeded with the scenario seed, so
  the per-client assignments equal the reference's for the same seed. (The reference visits client files
  in ``os.listdir`` order, so its per-sample draws are not reproducible anywhere; here they visit clients
  in id order.)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedray.config.schema import ModalityConfig
from fedray.errors import DataError
from fedray.registry import Registry
from fedray.seeding import derive_rng

IMAGE, TEXT = 1, 2
BOTH = IMAGE | TEXT
MASK_NAMES: Mapping[int, str] = {BOTH: "image+text", IMAGE: "image", TEXT: "text", 0: "none"}
#: Test conditions (``eval.conditions``): which modalities the evaluated rows keep.
CONDITION_MASKS: Mapping[str, int] = {"full": BOTH, "image_only": IMAGE, "text_only": TEXT}


@dataclass(frozen=True)
class ModalityPlan:
    """Per client: the modality mask it holds, and per-sample masks where the scenario works per sample."""

    client_masks: tuple[int, ...]
    sample_masks: tuple[tuple[int, ...] | None, ...]

    def masks_for(self, client: int, num_samples: int) -> tuple[int, ...]:
        """The mask of each of a client's samples, in the order of its row indices."""
        per_sample = self.sample_masks[client]
        return per_sample if per_sample is not None else (self.client_masks[client],) * num_samples


ModalityFn = Callable[[Sequence[Sequence[str]], ModalityConfig, int], ModalityPlan]

MODALITY_SCENARIOS: Registry[ModalityFn] = Registry("modality scenario")


def plan_modalities(client_sample_ids: Sequence[Sequence[str]], cfg: ModalityConfig,
                    seed: int) -> ModalityPlan:
    """The plan of scenario ``cfg.name`` for clients holding the given sample ids (in row order)."""
    return MODALITY_SCENARIOS.get(cfg.name)(client_sample_ids, cfg, seed)


def mask_rows(rows: list[dict[str, Any]], masks: Sequence[int]) -> list[dict[str, Any]]:
    """Drop (set to None) each row's image and/or text where its mask lacks the modality."""
    if len(rows) != len(masks):
        raise DataError(f"{len(rows)} rows but {len(masks)} modality masks")
    for row, mask in zip(rows, masks):
        if not mask & IMAGE:
            row["image"] = None
        if not mask & TEXT:
            row["text"] = None
    return rows


# -- scenarios ----------------------------------------------------------------------------------------
@MODALITY_SCENARIOS.register("aligned")
def aligned(ids: Sequence[Sequence[str]], cfg: ModalityConfig, seed: int) -> ModalityPlan:
    """Every client holds both modalities for every sample."""
    return ModalityPlan((BOTH,) * len(ids), (None,) * len(ids))


@MODALITY_SCENARIOS.register("missing")
def missing(ids: Sequence[Sequence[str]], cfg: ModalityConfig, seed: int) -> ModalityPlan:
    """Per sample, text and then image are each kept with probability 1 − β (β = ``missing_rate``).

    Shares: both (1−β)², text only = image only = β(1−β), neither β² (a question with options only).
    """
    beta = cfg.missing_rate
    if cfg.mode == "fedmllm":
        stream = random.Random(seed)
        draws = [[(stream.random(), stream.random()) for _ in client] for client in ids]
    else:
        draws = [[_hash_uniforms(seed, "missing", sid) for sid in client] for client in ids]
    sample_masks = tuple(tuple((TEXT if u_text >= beta else 0) | (IMAGE if u_image >= beta else 0)
                               for u_text, u_image in client) for client in draws)
    return ModalityPlan((BOTH,) * len(ids), sample_masks)


@MODALITY_SCENARIOS.register("cross_modal")
def cross_modal(ids: Sequence[Sequence[str]], cfg: ModalityConfig, seed: int) -> ModalityPlan:
    """``image_clients`` clients hold images only, the rest text only (FedMLLM's "modality-single")."""
    k, n = cfg.image_clients, len(ids)
    if k > n:
        raise DataError(f"modality.image_clients={k} exceeds the {n} clients; lower it")
    if cfg.mode == "fedmllm":
        image_clients = set(random.Random(seed).sample(range(n), k))
    else:
        image_clients = set(derive_rng(seed, "cross_modal").choice(n, size=k, replace=False).tolist())
    return ModalityPlan(tuple(IMAGE if c in image_clients else TEXT for c in range(n)), (None,) * n)


@MODALITY_SCENARIOS.register("hybrid")
def hybrid(ids: Sequence[Sequence[str]], cfg: ModalityConfig, seed: int) -> ModalityPlan:
    """Per client, image and text are each present with probability 1 − q (q = ``absent_rate``).

    A client left with neither gets a per-sample mix: each sample is image-only or text-only, 50/50.
    """
    n, q = len(ids), cfg.absent_rate
    if cfg.mode == "fedmllm":
        presence = np.random.RandomState(seed).binomial(1, 1 - q, size=(n, 2))  # columns: image, text
        stream = random.Random(seed)  # one stream over the samples of "neither" clients, in order

        def coin(sid: str) -> float:
            return stream.random()
    else:
        presence = (derive_rng(seed, "hybrid").random((n, 2)) < 1 - q).astype(np.int64)

        def coin(sid: str) -> float:
            return _hash_uniforms(seed, "hybrid", sid)[0]
    client_masks = tuple((IMAGE if img else 0) | (TEXT if txt else 0) for img, txt in presence)
    sample_masks = tuple(
        tuple(IMAGE if coin(sid) < 0.5 else TEXT for sid in ids[c]) if mask == 0 else None
        for c, mask in enumerate(client_masks))
    return ModalityPlan(client_masks, sample_masks)


def _hash_uniforms(seed: int, scenario: str, sample_id: str) -> tuple[float, float]:
    """Two uniforms in [0, 1) from (seed, scenario, sample id) alone: independent of visiting order."""
    digest = hashlib.blake2b(f"{seed}\x1f{scenario}\x1f{sample_id}".encode(), digest_size=16).digest()
    hi, lo = int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")
    return (hi >> 11) / float(1 << 53), (lo >> 11) / float(1 << 53)
