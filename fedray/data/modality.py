"""Modality heterogeneity: which modalities each client, or each sample, holds (FedMLLM's scenarios).

A scenario is a registered function ``(client sample ids, params, draws) -> ModalityPlan`` with a frozen
parameter dataclass registered beside it (``modality: {name: missing, missing_rate: 0.3}``). Its plan
gives every client a set of modalities and, where the scenario works per sample, a bit mask per sample
(:data:`IMAGE` | :data:`TEXT`). A missing modality is absent, not imputed: :func:`mask_rows` sets the
row's ``image`` or ``text`` to None and the prompt then says what is present.

Where the random draws come from is the section's ``mode``, not the scenario's business:
- ``fedray`` (:class:`SeededDraws`): per-sample draws come from a hash of (seed, sample id), so they do
  not depend on the order in which clients or samples are visited; per-client draws from a named stream.
- ``fedmllm`` (:class:`fedray.data.fedmllm.ModalityDraws`): the reference scripts' RNG calls, made on
  private generators seeded with the scenario seed, so the per-client assignments equal the reference's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fedray.config.params import params_or_raise
from fedray.config.schema import ModalityConfig, spec
from fedray.data import fedmllm
from fedray.errors import DataError
from fedray.registry import Registry
from fedray.seeding import derive_rng

IMAGE, TEXT = 1, 2
BOTH = IMAGE | TEXT
NONE = 0
MASK_NAMES: Mapping[int, str] = {BOTH: "image+text", IMAGE: "image", TEXT: "text", NONE: "none"}
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


class Draws(Protocol):
    """The random draws a scenario makes; ``scenario`` names the stream where the draws are keyed."""

    def sample_uniforms(self, ids: Sequence[Sequence[str]], scenario: str) -> list[list[tuple[float, float]]]:
        """Two uniforms in [0, 1) per sample of every client."""

    def chosen_clients(self, num_clients: int, k: int, scenario: str) -> set[int]:
        """``k`` distinct client ids."""

    def presence(self, num_clients: int, keep: float, scenario: str) -> np.ndarray:
        """(n, 2) 0/1 per client for (image, text), each 1 with probability ``keep``."""

    def coin(self, sample_id: str, scenario: str) -> float:
        """One uniform in [0, 1) for a sample."""


class SeededDraws:
    """fedray's draws: per sample from a hash of (seed, scenario, sample id), per client from
    ``derive_rng(seed, scenario)``; the same sample gets the same draw whatever the visiting order."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def sample_uniforms(self, ids: Sequence[Sequence[str]], scenario: str) -> list[list[tuple[float, float]]]:
        return [[_hash_uniforms(self.seed, scenario, sid) for sid in client] for client in ids]

    def chosen_clients(self, num_clients: int, k: int, scenario: str) -> set[int]:
        return set(derive_rng(self.seed, scenario).choice(num_clients, size=k, replace=False).tolist())

    def presence(self, num_clients: int, keep: float, scenario: str) -> np.ndarray:
        return (derive_rng(self.seed, scenario).random((num_clients, 2)) < keep).astype(np.int64)

    def coin(self, sample_id: str, scenario: str) -> float:
        return _hash_uniforms(self.seed, scenario, sample_id)[0]


#: ``modality.mode`` → the draws of that mode, built from the scenario seed.
DRAWS: Mapping[str, Callable[[int], Draws]] = {"fedray": SeededDraws, "fedmllm": fedmllm.ModalityDraws}

ModalityFn = Callable[[Sequence[Sequence[str]], Any, Draws], ModalityPlan]

MODALITY_SCENARIOS: Registry[ModalityFn] = Registry("modality scenario")


def plan_modalities(client_sample_ids: Sequence[Sequence[str]], cfg: ModalityConfig,
                    seed: int) -> ModalityPlan:
    """The plan of scenario ``cfg.name`` for clients holding the given sample ids (in row order)."""
    scenario = MODALITY_SCENARIOS.get(cfg.name)
    params = params_or_raise(MODALITY_SCENARIOS.params_class(cfg.name), cfg.options, "modality")
    return scenario(client_sample_ids, params, DRAWS[cfg.mode](seed))


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


def mask_of(image: bool, text: bool) -> int:
    """The mask holding the modalities that are true."""
    return (IMAGE if image else NONE) | (TEXT if text else NONE)


# -- scenarios ----------------------------------------------------------------------------------------
@MODALITY_SCENARIOS.register("aligned")
def aligned(ids: Sequence[Sequence[str]], params: Any, draws: Draws) -> ModalityPlan:
    """Every client holds both modalities for every sample."""
    return ModalityPlan((BOTH,) * len(ids), (None,) * len(ids))


@dataclass(frozen=True)
class MissingParams:
    missing_rate: float = spec(0.5, ge=0.0, le=1.0,
                               help="each sample loses image and text independently with this rate")


@MODALITY_SCENARIOS.register("missing", params=MissingParams)
def missing(ids: Sequence[Sequence[str]], params: MissingParams, draws: Draws) -> ModalityPlan:
    """Per sample, text and then image are each kept with probability 1 − β (β = ``missing_rate``).

    Shares: both (1−β)², text only = image only = β(1−β), neither β² (a question with options only).
    """
    beta = params.missing_rate
    sample_masks = tuple(tuple(mask_of(image=u_image >= beta, text=u_text >= beta)
                               for u_text, u_image in client)
                         for client in draws.sample_uniforms(ids, "missing"))
    return ModalityPlan((BOTH,) * len(ids), sample_masks)


@dataclass(frozen=True)
class CrossModalParams:
    image_clients: int = spec(5, ge=0, help="clients holding images only; the rest hold text only")


@MODALITY_SCENARIOS.register("cross_modal", params=CrossModalParams)
def cross_modal(ids: Sequence[Sequence[str]], params: CrossModalParams, draws: Draws) -> ModalityPlan:
    """``image_clients`` clients hold images only, the rest text only (FedMLLM's "modality-single")."""
    k, n = params.image_clients, len(ids)
    if k > n:
        raise DataError(f"modality.image_clients={k} exceeds the {n} clients; lower it")
    image_clients = draws.chosen_clients(n, k, "cross_modal")
    return ModalityPlan(tuple(IMAGE if c in image_clients else TEXT for c in range(n)), (None,) * n)


@dataclass(frozen=True)
class HybridParams:
    absent_rate: float = spec(0.4, ge=0.0, le=1.0,
                              help="each client lacks each modality with this probability (q)")


@MODALITY_SCENARIOS.register("hybrid", params=HybridParams)
def hybrid(ids: Sequence[Sequence[str]], params: HybridParams, draws: Draws) -> ModalityPlan:
    """Per client, image and text are each present with probability 1 − q (q = ``absent_rate``).

    A client left with neither gets a per-sample mix: each sample is image-only or text-only, 50/50.
    """
    presence = draws.presence(len(ids), 1 - params.absent_rate, "hybrid")  # columns: image, text
    client_masks = tuple(mask_of(image=bool(img), text=bool(txt)) for img, txt in presence)
    sample_masks = tuple(
        tuple(IMAGE if draws.coin(sid, "hybrid") < 0.5 else TEXT for sid in ids[c]) if mask == NONE else None
        for c, mask in enumerate(client_masks))
    return ModalityPlan(client_masks, sample_masks)


def _hash_uniforms(seed: int, scenario: str, sample_id: str) -> tuple[float, float]:
    """Two uniforms in [0, 1) from (seed, scenario, sample id) alone: independent of visiting order."""
    digest = hashlib.blake2b(f"{seed}\x1f{scenario}\x1f{sample_id}".encode(), digest_size=16).digest()
    hi, lo = int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")
    return (hi >> 11) / float(1 << 53), (lo >> 11) / float(1 << 53)
