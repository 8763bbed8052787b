"""Client specs and the run's data manifest.

A :class:`ClientSpec` says which training rows a client holds, its task and its modalities. The manifest
is a JSON record, written into the run directory, of every client's size and label counts plus a label
skew summary, so a reader can see at a glance how non-IID a run was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedray.data.modality import BOTH, MASK_NAMES, mask_of
from fedray.errors import DataError

DEFAULT_MODALITIES: tuple[str, ...] = ("image", "text")


@dataclass(frozen=True)
class ClientSpec:
    """One client's share of the training split.

    ``indices`` is a tuple of plain ints (not an array) so specs are hashable, immutable and serialise
    to JSON or pickle without numpy in the way.
    """

    client_id: int
    indices: tuple[int, ...]
    task: str
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    #: Per sample (same order as ``indices``): the modalities it holds as bits (1 image, 2 text), as in
    #: :mod:`fedray.data.modality`; None when the client holds ``modalities`` for every sample.
    masks: tuple[int, ...] | None = None

    @property
    def num_samples(self) -> int:
        return len(self.indices)


def build_client_specs(parts: Sequence[np.ndarray], task: str,
                       modalities: tuple[str, ...] = DEFAULT_MODALITIES) -> list[ClientSpec]:
    """One :class:`ClientSpec` per partition part, with client ids ``0..len(parts)-1``."""
    return [ClientSpec(client_id=i, indices=tuple(int(x) for x in p), task=task,
                       modalities=tuple(modalities)) for i, p in enumerate(parts)]


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ½·Σ|p − q| between two distributions over the same categories."""
    return float(0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def label_skew(parts: Sequence[Sequence[int]], labels: np.ndarray) -> list[float]:
    """Per client: TV distance between its label distribution and the global one (0 = IID, 1 = disjoint).

    The global distribution is taken over the rows the parts cover; an empty client counts as 0.
    """
    labels = np.asarray(labels)
    covered = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts] + [np.empty(0, np.int64)])
    if covered.size == 0:
        return [0.0 for _ in parts]
    classes, global_counts = np.unique(labels[covered], return_counts=True)
    global_dist = global_counts / global_counts.sum()
    out = []
    for p in parts:
        p = np.asarray(p, dtype=np.int64)
        if p.size == 0:
            out.append(0.0)
            continue
        counts = np.array([(labels[p] == c).sum() for c in classes], dtype=float)
        out.append(total_variation(counts / counts.sum(), global_dist))
    return out


def write_manifest(path: str | os.PathLike[str], specs: Sequence[ClientSpec], labels: np.ndarray,
                   label_names: Sequence[str] | Mapping[str, Sequence[str]],
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the JSON manifest of ``specs`` (see :func:`build_manifest`) to ``path``; return it."""
    manifest = build_manifest(specs, labels, label_names, extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Write then rename, so a crash never leaves a half-written manifest behind.
    tmp.write_text(json.dumps(manifest, indent=2, default=_to_json) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return manifest


def build_manifest(specs: Sequence[ClientSpec], labels: np.ndarray,
                   label_names: Sequence[str] | Mapping[str, Sequence[str]],
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of ``specs``: per-client sizes, label and modality counts, and a skew summary.

    ``labels`` are the training split's labels, indexed by the specs' row indices (-1 or null-filled
    values mean unlabeled). ``label_names`` names them, or maps each task to its names when clients do
    different tasks. ``extra`` (e.g. the seed and partition config) is stored under ``"extra"``.
    """
    names_of = _names_by_task(specs, label_names)
    labels = np.asarray(labels)
    clients = []
    tvs = label_skew([s.indices for s in specs], labels)
    for spec, tv in zip(specs, tvs):
        clients.append({
            "client_id": spec.client_id,
            "num_samples": spec.num_samples,
            "label_counts": _label_counts(labels[list(spec.indices)], names_of[spec.task]),
            "label_tv": round(tv, 6),
            "modalities": list(spec.modalities),
            "modality_counts": modality_counts(spec),
            "task": spec.task,
        })
    all_rows = [i for s in specs for i in s.indices]
    manifest = {
        "num_clients": len(specs),
        "num_samples": len(all_rows),
        "label_counts": _overall_label_counts(specs, labels, names_of),
        "skew": {
            "metric": "total variation distance of client label distribution from the global one",
            "mean_tv": round(float(np.mean(tvs)), 6) if tvs else 0.0,
            "max_tv": round(float(np.max(tvs)), 6) if tvs else 0.0,
        },
        "clients": clients,
        "extra": dict(extra or {}),
    }
    return manifest


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a manifest written by :func:`write_manifest`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"no data manifest at {str(path)!r}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"data manifest {str(path)!r} is not valid JSON: {exc}") from exc


def modality_counts(spec: ClientSpec) -> dict[str, int]:
    """How many of the client's samples hold image+text, image only, text only or neither (nonzero)."""
    if spec.masks is not None:
        masks = spec.masks
    else:
        held = mask_of(image="image" in spec.modalities, text="text" in spec.modalities)
        masks = (held,) * spec.num_samples
    values, counts = np.unique(np.asarray(masks, dtype=np.int64), return_counts=True)
    return {MASK_NAMES[int(v)]: int(c) for v, c in sorted(zip(values, counts), key=lambda vc: -vc[0])}


def _names_by_task(specs: Sequence[ClientSpec],
                   label_names: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, Sequence[str]]:
    if isinstance(label_names, Mapping):
        return dict(label_names)
    return {spec.task: label_names for spec in specs}


def _overall_label_counts(specs: Sequence[ClientSpec], labels: np.ndarray,
                          names_of: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Label counts over all clients; keys are prefixed with the task when clients do several tasks."""
    tasks = list(dict.fromkeys(spec.task for spec in specs))
    out: dict[str, int] = {}
    for task in tasks:
        rows = [i for spec in specs if spec.task == task for i in spec.indices]
        prefix = f"{task}/" if len(tasks) > 1 else ""
        out.update({prefix + k: v for k, v in _label_counts(labels[rows], names_of[task]).items()})
    return out


def _label_counts(labels: np.ndarray, label_names: Sequence[str]) -> dict[str, int]:
    """Label name → count, nonzero only, in label order."""
    values, counts = np.unique(labels, return_counts=True)
    return {_label_name(int(v), label_names): int(c) for v, c in zip(values, counts)}


def _label_name(label: int, label_names: Sequence[str]) -> str:
    if 0 <= label < len(label_names):
        return label_names[label]
    return "unlabeled" if label < 0 else str(label)


def _to_json(obj: Any) -> Any:
    """JSON fallback for numpy values and paths that callers put into ``extra``."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def train_needs(specs: Sequence[ClientSpec]) -> dict[int, list[int]]:
    """Mask → sorted training-row positions that the clients of ``specs`` train on."""
    needs: dict[int, set[int]] = {}
    for spec in specs:
        masks = spec.masks if spec.masks is not None else (BOTH,) * spec.num_samples
        for position, mask in zip(spec.indices, masks):
            needs.setdefault(int(mask), set()).add(int(position))
    return {mask: sorted(positions) for mask, positions in sorted(needs.items())}
