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


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One client's share of the training split.

    ``indices`` is a tuple of plain ints (not an array) so specs are hashable, immutable and serialise
    to JSON or pickle without numpy in the way. Slots, not a per-instance dict: a run of ten thousand
    clients holds ten thousand specs in its driver.
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
    with tmp.open("w", encoding="utf-8") as out:  # streamed: no whole-file string (10,000 clients: MBs)
        json.dump(manifest, out, indent=2, default=_to_json)
        out.write("\n")
    os.replace(tmp, path)
    return manifest


def build_manifest(specs: Sequence[ClientSpec], labels: np.ndarray,
                   label_names: Sequence[str] | Mapping[str, Sequence[str]],
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of ``specs``: per-client sizes, label and modality counts, and a skew summary.

    ``labels`` are the training split's labels, indexed by the specs' row indices (-1 or null-filled
    values mean unlabeled). ``label_names`` names them, or maps each task to its names when clients do
    different tasks. ``extra`` (e.g. the seed and partition config) is stored under ``"extra"``.
    The counts come from one (client × label) table built in a pass over all rows, so ten thousand
    clients cost what their rows cost, not a pass per client and label.
    """
    names_of = _names_by_task(specs, label_names)
    table = LabelTable.of(specs, np.asarray(labels))
    tvs = table.total_variation()
    label_rows, mask_rows = table.counts.tolist(), _mask_counts(specs).tolist()
    clients = []
    for spec, tv, label_row, mask_row in zip(specs, tvs, label_rows, mask_rows):
        clients.append({
            "client_id": spec.client_id,
            "num_samples": spec.num_samples,
            "label_counts": table.named_counts(label_row, names_of[spec.task]),
            "label_tv": round(tv, 6),
            "modalities": list(spec.modalities),
            "modality_counts": {MASK_NAMES[m]: mask_row[m] for m in _MASKS_DESCENDING if mask_row[m]},
            "task": spec.task,
        })
    manifest = {
        "num_clients": len(specs),
        "num_samples": int(sum(spec.num_samples for spec in specs)),
        "label_counts": _overall_label_counts(specs, table, names_of),
        "skew": {
            "metric": "total variation distance of client label distribution from the global one",
            "mean_tv": round(float(np.mean(tvs)), 6) if tvs else 0.0,
            "max_tv": round(float(np.max(tvs)), 6) if tvs else 0.0,
        },
        "clients": clients,
        "extra": dict(extra or {}),
    }
    return manifest


@dataclass(frozen=True)
class LabelTable:
    """How many rows of each label every client holds: ``counts[client position, label position]``
    over the sorted distinct ``labels`` of the rows the clients cover."""

    labels: np.ndarray  # (L,) the distinct label values, ascending
    counts: np.ndarray  # (K, L) int64

    @classmethod
    def of(cls, specs: Sequence[ClientSpec], labels: np.ndarray) -> LabelTable:
        sizes = np.fromiter((spec.num_samples for spec in specs), dtype=np.int64, count=len(specs))
        rows = np.fromiter((i for spec in specs for i in spec.indices), dtype=np.int64,
                           count=int(sizes.sum()))
        values, label_pos = np.unique(labels[rows], return_inverse=True)
        owner = np.repeat(np.arange(len(specs)), sizes)
        flat = np.bincount(owner * len(values) + label_pos.reshape(-1), minlength=len(specs) * len(values))
        return cls(values, flat.reshape(len(specs), len(values)).astype(np.int64))

    def total_variation(self) -> list[float]:
        """Per client: TV distance of its label distribution from that of all covered rows (0 = IID,
        1 = disjoint); an empty client counts as 0."""
        total = self.counts.sum(axis=0)
        if total.sum() == 0:
            return [0.0] * len(self.counts)
        sizes = self.counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            dists = self.counts / sizes  # (K, L); an empty client's row is NaN, and counts as 0
        tv = 0.5 * np.abs(dists - total / total.sum()).sum(axis=1)
        return np.where(sizes[:, 0] > 0, tv, 0.0).tolist()

    def named_counts(self, counts: Sequence[int], label_names: Sequence[str]) -> dict[str, int]:
        """Label name → count for one row of counts, nonzero only, in label order."""
        return {_label_name(v, label_names): int(c) for v, c in zip(self.labels.tolist(), counts) if c}


#: Mask values from both modalities down to none: the order of a client's ``modality_counts``.
_MASKS_DESCENDING = tuple(sorted(MASK_NAMES, reverse=True))


def _mask_counts(specs: Sequence[ClientSpec]) -> np.ndarray:
    """(clients × mask value) sample counts, from each spec's masks (or its modalities for every sample)."""
    width = max(MASK_NAMES) + 1
    out = np.zeros((len(specs), width), dtype=np.int64)
    listed = [row for row, spec in enumerate(specs) if spec.masks is not None]
    for row, spec in enumerate(specs):
        if spec.masks is None:
            held = mask_of(image="image" in spec.modalities, text="text" in spec.modalities)
            out[row, held] = spec.num_samples
    sizes = np.fromiter((len(specs[row].masks) for row in listed), dtype=np.int64, count=len(listed))
    masks = np.fromiter((m for row in listed for m in specs[row].masks), dtype=np.int64,
                        count=int(sizes.sum()))
    owner = np.repeat(np.asarray(listed, dtype=np.int64), sizes)
    out += np.bincount(owner * width + masks, minlength=out.size).reshape(out.shape)
    return out


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


def _overall_label_counts(specs: Sequence[ClientSpec], table: LabelTable,
                          names_of: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Label counts over all clients; keys are prefixed with the task when clients do several tasks."""
    tasks = list(dict.fromkeys(spec.task for spec in specs))
    out: dict[str, int] = {}
    for task in tasks:
        mine = np.fromiter((spec.task == task for spec in specs), dtype=bool, count=len(specs))
        prefix = f"{task}/" if len(tasks) > 1 else ""
        counts = table.counts[mine].sum(axis=0)
        out.update({prefix + k: v for k, v in table.named_counts(counts, names_of[task]).items()})
    return out


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
