"""``fedray data show``: samples exactly as a client trains on them (see :mod:`fedray.cli.data`).

The rows come from the same pipeline a run uses (partition, modality plan, per-sample masks); the turns
from the scenario's prompt style (``prompts.style`` with ``modality.agnostic_prompt``), the object the
actors' collator renders with; the rendered text from the model's processor's chat template, with the
assistant's turn after the user's, as the training batch holds it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Mapping, Sequence

from fedray.config.load import load_scenario
from fedray.config.schema import Scenario
from fedray.data.modality import MASK_NAMES, mask_of, mask_rows
from fedray.data.prompts import PromptStyle, build_prompt_style
from fedray.errors import FedRayError


def show(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)
    from fedray.data.federated import build_federated_data
    from fedray.models.processors import build_processor

    if args.limit < 1:
        raise FedRayError(f"--limit {args.limit}: give at least 1 sample per client")
    scenario = load_scenario(args.scenario, args.overrides)
    data = build_federated_data(scenario)
    if args.test:
        # Evaluation's "full" condition: every row as the test set holds it.
        groups: list[tuple[int | None, list[dict[str, Any]]]] = [
            (None, data.primary_test.table.slice(0, args.limit).to_pylist())]
    else:
        groups = [(spec.client_id, client_rows(data.train, spec, args.limit))
                  for spec in _chosen_specs(data.specs, args.client)]
    style = build_prompt_style(scenario.prompts, scenario.modality.agnostic_prompt)
    processor = build_processor(scenario.model)
    samples = [sample_view(row, client, style, processor) for client, rows in groups for row in rows]
    print(json.dumps(samples, indent=2, ensure_ascii=False) if args.json
          else text_view(samples, scenario, style))
    return 0


def client_rows(train: Any, spec: Any, limit: int) -> list[dict[str, Any]]:
    """A client's first ``limit`` rows with its modality masks applied, as its fits receive them."""
    indices = list(spec.indices[:limit])
    masks = spec.masks[:limit] if spec.masks is not None else (mask_of(image=True, text=True),) * len(indices)
    return mask_rows(train.take(indices).to_pylist(), masks)


def sample_view(row: Mapping[str, Any], client: int | None, style: PromptStyle, processor: Any) -> dict:
    """One sample as the model sees it: both turns, the rendered chat text, the modalities present."""
    messages = [style.user_message(row), style.assistant_message(row)]
    has_image, has_text = row.get("image") is not None, row.get("text") is not None
    return {"client_id": client, "sample_id": row.get("id"), "task": row.get("task"),
            "modalities": MASK_NAMES[mask_of(image=has_image, text=has_text)],
            "has_image": has_image, "has_text": has_text,
            "user": style.user_display(row), "assistant": style.target_text(row),
            "rendered": processor.apply_chat_template(messages, tokenize=False)}


def text_view(samples: Sequence[Mapping[str, Any]], scenario: Scenario, style: PromptStyle) -> str:
    """The samples for a terminal: a header per sample, then the user turn, the target, the rendering."""
    blocks = [f"{scenario.name}: prompt style {style.name}"
              f"{' (modality-agnostic)' if style.agnostic else ''}, fingerprint {style.fingerprint()}"]
    for s in samples:
        who = "test set" if s["client_id"] is None else f"client {s['client_id']}"
        blocks.append(f"── {who} · {s['sample_id']} · {s['modalities']} ──\n"
                      f"[user]\n{s['user']}\n[assistant]\n{s['assistant']}\n[rendered]\n{s['rendered']}")
    return "\n\n".join(blocks)


def _chosen_specs(specs: Sequence[Any], client: int | None) -> list[Any]:
    if client is None:
        return list(specs)
    if not 0 <= client < len(specs):
        raise FedRayError(f"--client {client}: the scenario has clients 0..{len(specs) - 1}")
    return [specs[client]]
