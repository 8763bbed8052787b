"""Adapters on disk as PEFT adapter directories, readable by ``PeftModel.from_pretrained(base, dir)``.

A run keeps its final global adapter in ``<run>/global_adapter/`` and its best one (on validation) in
``<run>/best_adapter/``, each holding PEFT's two files:

- ``adapter_model.safetensors``: the adapter state under PEFT's own key names (what
  ``get_peft_model_state_dict`` gives: ``base_model.model.<module path>.lora_A.weight``, and the full
  weights of ``modules_to_save`` modules such as the projector at their plain module path), which is the
  key format fedray's adapter state has all along (:mod:`fedray.models.lora`);
- ``adapter_config.json``: the PEFT ``LoraConfig`` the client actors wrapped the model with (rank, alpha,
  the target-module regex, ``modules_to_save``), taken from a built model, so PEFT rebuilds the same
  wrapping on any copy of the base model.

Run directories written before this layout hold ``<run>/<name>.safetensors`` (same keys, no config);
:func:`adapter_weights_path` and :func:`read_adapter` read either. The files are written atomically (write,
then rename) and readable by everyone (mode 0644), like any result a user copies elsewhere.

This module imports torch and safetensors only where a file is written or read, and never peft or
transformers: the aggregator actor, which writes the adapters, holds tensors, not models. A flat adapter
(:class:`~fedray.flat.FlatState`) whose dtypes numpy has is written through safetensors' numpy API: the
same bytes, and the aggregator need not import torch to write it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from fedray.engine.files import write_atomically
from fedray.errors import FedRayError
from fedray.flat import FlatState

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's file names (peft.utils.SAFETENSORS_WEIGHTS_NAME)
ADAPTER_CONFIG = "adapter_config.json"  # (peft.utils.CONFIG_NAME)
FILE_MODE = 0o644
#: The adapters a run keeps, by the name ``fedray export --which`` gives them.
RUN_ADAPTERS = {"final": "global_adapter", "best": "best_adapter"}


def write_adapter_dir(directory: str | Path, state: Mapping[str, Any],
                      config: Mapping[str, Any] | None = None) -> Path:
    """Write ``state`` (and ``config``, PEFT's adapter config as a dict) as a PEFT adapter directory.

    Without ``config`` only the weights are written (PEFT then cannot load the directory alone;
    ``fedray export`` rebuilds the config from the run's scenario).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if config is not None:
        text = json.dumps(_json_ready(config), indent=2, sort_keys=True) + "\n"
        _write_atomically(directory / ADAPTER_CONFIG, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    tensors: Any = state.arrays() if isinstance(state, FlatState) else None
    if tensors is not None:  # numpy views of the buffer: the same file's bytes, without importing torch
        from safetensors.numpy import save_file
    else:
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous() for k, v in state.items()}
    # metadata format=pt: what PEFT writes, and what transformers' safetensors loader checks for
    _write_atomically(directory / ADAPTER_WEIGHTS,
                      lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    return directory


def adapter_weights_path(run_dir: str | Path, name: str) -> Path:
    """The weights file of adapter ``name`` (``global_adapter``, ``best_adapter``) of a run directory:
    ``<name>/adapter_model.safetensors``, else an older run's ``<name>.safetensors``."""
    run_dir = Path(run_dir)
    for path in (run_dir / name / ADAPTER_WEIGHTS, run_dir / f"{name}.safetensors"):
        if path.is_file():
            return path
    raise FedRayError(f"{run_dir} holds no {name} (looked for {name}/{ADAPTER_WEIGHTS} and "
                      f"{name}.safetensors); did the run finish, and did it evaluate on a validation "
                      "split (the best adapter needs one)?")


def has_adapter(run_dir: str | Path, name: str) -> bool:
    """Whether the run directory holds adapter ``name`` in either layout."""
    run_dir = Path(run_dir)
    return (run_dir / name / ADAPTER_WEIGHTS).is_file() or (run_dir / f"{name}.safetensors").is_file()


def read_adapter(run_dir: str | Path, name: str) -> dict[str, Any]:
    """Adapter ``name`` of a run directory as a dict of CPU tensors (PEFT's key names)."""
    from safetensors.torch import load_file

    return load_file(str(adapter_weights_path(run_dir, name)))


def read_adapter_config(run_dir: str | Path, name: str) -> dict[str, Any] | None:
    """The PEFT adapter config saved with adapter ``name``, or None (older run directories have none)."""
    path = Path(run_dir) / name / ADAPTER_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_atomically(path: Path, write: Any) -> None:
    def write_readable(tmp: Path) -> None:
        write(tmp)
        os.chmod(tmp, FILE_MODE)

    write_atomically(path, write_readable)  # no .tmp left, a RunDirWriteError on a full disk


def _json_ready(value: Any) -> Any:
    """Sets become sorted lists, tuples lists (PEFT's config may hold sets); the rest as is."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_json_ready(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
