"""Driver-side evaluation: which sets and test conditions to run, and turning generations into metrics.

Generation happens on the client actors (sharded); scoring happens here, on the few columns it needs,
by each protocol of ``eval.protocol`` (:mod:`fedray.client.protocols`). The driver imports no torch for
it (option scores are turned into AUC inputs only when asked). Metric names: the main test set under full
modalities gives bare names (strict: ``accuracy``, ``macro_f1``, ``invalid_rate``, ``auc`` ...; fedmllm:
``fedmllm_accuracy``, ``fedmllm_f1``, ``fedmllm_auc`` ...); another condition prefixes it
(``image_only/accuracy``); another eval set prefixes its name (``slake/accuracy``). The validation split
is scored apart, to pick the best round without looking at the test set.

With ``eval.save_predictions`` each test row's prompt, generation, parsed answer and correctness are kept
too and written per round by :meth:`Evaluator.write_predictions` (:mod:`fedray.engine.predictions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fedray.client.metrics import roc_auc
from fedray.client.predictions import prediction_records
from fedray.client.protocols import score_protocols
from fedray.config.schema import EvalConfig
from fedray.data.federated import EvalSet, FederatedData
from fedray.data.modality import CONDITION_MASKS, mask_rows
from fedray.data.prompts import PromptStyle
from fedray.engine.observers import Progress
from fedray.engine.pool import ActorPool
from fedray.engine.predictions import PredictionLog

SCORING_COLUMNS = ("id", "choices", "answer", "label", "answer_type", "question_type")
EVAL_TIMEOUT_S = 1800.0


class Evaluator:
    """Scores an adapter (an ObjectRef) on the scenario's eval sets, as ``eval`` (its section) says."""

    def __init__(self, cfg: EvalConfig, data: FederatedData, pool: ActorPool,
                 prompt: PromptStyle | None = None, run_dir: str | Path | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        """``prompt`` (the run's prompt style) and ``run_dir`` are needed for ``eval.save_predictions``."""
        self.cfg = cfg
        self.pool = pool
        self.on_progress = on_progress or (lambda step: None)
        self.tests = data.tests
        self.validation = data.validation
        sets = data.tests + ([data.validation] if data.validation else [])
        self.rows = {s.name: s.table.select(list(SCORING_COLUMNS)).to_pylist() for s in sets}
        self.prompt = prompt
        self._rendered: dict[tuple[str, str], list[str]] = {}  # (set, condition) → prompts, rendered once
        self.predictions = PredictionLog(run_dir) if cfg.save_predictions and run_dir is not None else None

    @staticmethod
    def eval_tables(data: FederatedData) -> dict[str, Any]:
        """Name → table of every set the actors must hold."""
        sets = data.tests + ([data.validation] if data.validation else [])
        return {s.name: s.table for s in sets}

    def test(self, state_ref: Any) -> dict[str, float]:
        """Every test set; the main one under each of ``eval.conditions``."""
        metrics: dict[str, float] = {}
        if self.predictions is not None:
            self.predictions.start_adapter()
        for index, eval_set in enumerate(self.tests):
            conditions = self.cfg.conditions if index == 0 else ("full",)
            for condition in conditions:
                prefix = _prefix(eval_set.name if index else "", "" if condition == "full" else condition)
                scored = self._score(state_ref, eval_set, condition, keep=True)
                metrics.update({prefix + k: v for k, v in scored.items()})
        return metrics

    def validate(self, state_ref: Any) -> dict[str, float]:
        """The validation split under full modalities (empty when the scenario has none)."""
        return self._score(state_ref, self.validation, "full") if self.validation else {}

    def write_predictions(self, server_round: int) -> Path | None:
        """Write the test predictions collected since the last call as round ``server_round``'s file
        (with ``eval.save_predictions``; otherwise nothing is collected and None is returned)."""
        return self.predictions.write(server_round) if self.predictions is not None else None

    def _score(self, state_ref: Any, eval_set: EvalSet, condition: str,
               keep: bool = False) -> dict[str, float]:
        rows = self.rows[eval_set.name]
        if not rows:
            return {}
        # Option log-likelihoods give the strict protocol's AUC; the fedmllm protocol reads generations only.
        binary = (self.cfg.option_scores and "strict" in self.cfg.protocol
                  and all(len(r["choices"] or ()) == 2 for r in rows))
        label = eval_set.name + ("" if condition == "full" else f" ({condition})")
        scored = 0

        def on_rows(count: int) -> None:
            nonlocal scored
            scored += count
            self.on_progress(Progress("eval", label, scored, len(rows)))

        self.on_progress(Progress("eval", label, 0, len(rows)))
        shard = self.pool.evaluate(state_ref, eval_set.name, len(rows), EVAL_TIMEOUT_S, condition,
                                   score_options=binary, on_rows=on_rows)
        metrics = score_protocols(self.cfg.protocol, rows, shard.generations, eval_set.label_names)
        if keep and self.predictions is not None:
            records = prediction_records(rows, shard.generations, eval_set.label_names,
                                         self._prompts(eval_set, condition), self.cfg.protocol)
            self.predictions.add(eval_set.name, condition, records)
        if binary and shard.option_logprobs is not None:
            from fedray.client.scoring import binary_auc_scores  # its module imports torch: on use only

            metrics["auc"] = roc_auc(binary_auc_scores(shard.option_logprobs),
                                     [list(r["choices"]).index(r["answer"]) for r in rows])
        return metrics

    def _prompts(self, eval_set: EvalSet, condition: str) -> list[str] | None:
        """The user turn of each row as the actors render it under ``condition`` (the image slot written
        ``<image>``), or None without a prompt style."""
        if self.prompt is None:
            return None
        key = (eval_set.name, condition)
        if key not in self._rendered:
            self._rendered[key] = self._render(eval_set, condition)
        return self._rendered[key]

    def _render(self, eval_set: EvalSet, condition: str) -> list[str]:
        table = eval_set.table
        has_image = table.column("image").is_valid().to_pylist()
        rows = table.drop_columns(["image"]).to_pylist()  # the bytes are not needed, only their presence
        for row, present in zip(rows, has_image):
            row["image"] = True if present else None
        masked = mask_rows(rows, [CONDITION_MASKS[condition]] * len(rows))
        return [self.prompt.user_display(row) for row in masked]


def _prefix(*parts: str) -> str:
    named = [p for p in parts if p]
    return "/".join(named) + "/" if named else ""
