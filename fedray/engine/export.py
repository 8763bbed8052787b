"""A run's adapter for use outside fedray: the PEFT adapter directory, the base model it sits on, the
merged model (``fedray export``).

The base model is rebuilt from what the run directory holds: its ``config.yaml`` names the model (an
``hf`` path or cache id, or the ``tiny-vlm`` / ``assembled`` builder with every size and the init seed),
and the builders give identical weights for identical config. :func:`build_run_base` does that, so

    base = build_run_base(run_dir).model
    model = PeftModel.from_pretrained(base, run_dir / "best_adapter")

is the run's best model, with the logits fedray evaluated. ``export_run(..., base=True)`` writes the base
as a Hugging Face model directory too, for a model that exists nowhere else (the tiny one).

Model code is imported inside the functions: the module sits in the engine package, whose driver-side
modules must import no transformers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedray.config.load import load_scenario
from fedray.config.schema import Scenario
from fedray.engine.adapter_files import (
    FILE_MODE,
    RUN_ADAPTERS,
    adapter_weights_path,
    read_adapter,
    read_adapter_config,
    write_adapter_dir,
)
from fedray.errors import FedRayError


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    adapter: Path
    base: Path | None = None
    merged: Path | None = None


def run_scenario(run_dir: str | Path) -> Scenario:
    """The scenario a run directory was written with (its ``config.yaml``)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FedRayError(f"{run_dir} is not a fedray run directory (no config.yaml)")
    return load_scenario(path)


def build_run_base(run_dir: str | Path) -> Any:
    """The run's base model and processor (a :class:`~fedray.models.base.BuiltModel`), rebuilt from its
    ``config.yaml``: the weights the run's client actors started from."""
    from fedray.models.base import build_model

    return build_model(run_scenario(run_dir).model)


def wrapped_run_model(run_dir: str | Path, which: str = "best") -> tuple[Any, Any]:
    """The run's base model wrapped with LoRA exactly as the client actors wrapped it, with adapter
    ``which`` (best or final) loaded, and its processor: fedray's own view of the trained model."""
    from fedray.models.lora import apply_lora, set_adapter_state

    scenario = run_scenario(run_dir)
    built = build_run_base(run_dir)
    model = apply_lora(built.model, scenario.lora, built.family)
    set_adapter_state(model, read_adapter(run_dir, adapter_name(which)))
    return model, built.processor


def adapter_name(which: str) -> str:
    """``best`` → ``best_adapter``, ``final`` → ``global_adapter``."""
    if which not in RUN_ADAPTERS:
        raise FedRayError(f"--which {which!r}: choose one of {', '.join(RUN_ADAPTERS)}")
    return RUN_ADAPTERS[which]


def export_run(run_dir: str | Path, to: str | Path, which: str = "best", *, base: bool = False,
               merged: bool = False) -> Exported:
    """Write adapter ``which`` of a run as a PEFT adapter directory ``to`` (created; must be empty), and
    optionally the base model (``to/base``) and the merged model (``to/merged``, LoRA folded into the
    weights by PEFT's ``merge_and_unload``), each a Hugging Face model directory with its processor."""
    run_dir, to = Path(run_dir), Path(to)
    name = adapter_name(which)
    adapter_weights_path(run_dir, name)  # a clear error before any model is built
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise FedRayError(f"{to} exists and is not an empty directory; give a new directory to --to")
    config = read_adapter_config(run_dir, name)
    model = processor = None
    if config is None or merged:  # an older run directory has no adapter config: rebuild it
        model, processor = wrapped_run_model(run_dir, which)
        if config is None:
            from fedray.models.lora import peft_adapter_config

            config = peft_adapter_config(model)
    adapter = write_adapter_dir(to, read_adapter(run_dir, name), config)
    base_dir = _save_model(build_run_base(run_dir), to / "base") if base else None
    merged_dir = _save_pretrained(model.merge_and_unload(), processor, to / "merged") if merged else None
    return Exported(adapter=adapter, base=base_dir, merged=merged_dir)


def _save_model(built: Any, directory: Path) -> Path:
    return _save_pretrained(built.model, built.processor, directory)


def _save_pretrained(model: Any, processor: Any, directory: Path) -> Path:
    if not hasattr(model, "save_pretrained"):
        raise FedRayError(f"the run's model ({type(model).__name__}) is not a Hugging Face model and cannot "
                          "be written as a model directory; export the adapter alone (without --merged/"
                          "--base) and rebuild the base with fedray.engine.export.build_run_base")
    model.save_pretrained(directory)
    if processor is not None and hasattr(processor, "save_pretrained"):
        processor.save_pretrained(directory)
    for path in directory.rglob("*"):  # transformers writes its weight shards 0600; these are for sharing
        if path.is_file():
            os.chmod(path, FILE_MODE)
    return directory
