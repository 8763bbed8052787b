"""What a client actor is built from: the few scenario sections it reads, not the whole scenario."""

from __future__ import annotations

from dataclasses import dataclass

from fedray.config.schema import EvalConfig, LoraConfig, ModelConfig, Scenario, TrainConfig
from fedray.data.prompts import PromptStyle, build_prompt_style


@dataclass(frozen=True)
class ClientSetup:
    """Everything a :class:`~fedray.engine.actors.ClientActor` uses, built once by the driver.

    An actor builds its model from ``model`` and ``lora`` (LoRA initialised from ``seed``), trains every
    fit with ``train`` and generates answers with ``eval``'s batch size and token budget. Small and
    immutable, it is what the pool hands each actor it starts (and every replacement).
    """

    seed: int
    model: ModelConfig
    lora: LoraConfig
    train: TrainConfig  # the run mode's budget (the centralized baseline's is the whole cohort's)
    eval: EvalConfig
    prompt: PromptStyle  # the words of both turns (prompts.style, with modality.agnostic_prompt)
    torch_threads: int
    gpus_per_actor: float  # the actor's GPU share, to cap its memory at
    cap_gpu_memory: bool

    @classmethod
    def from_scenario(cls, scenario: Scenario, train: TrainConfig | None = None) -> ClientSetup:
        """The set-up of ``scenario``'s actors; ``train`` replaces its training section (a run mode's
        budget). Torch threads default to the actor's whole CPUs, at least one."""
        res = scenario.resources
        return cls(seed=scenario.seed, model=scenario.model, lora=scenario.lora,
                   train=scenario.train if train is None else train, eval=scenario.eval,
                   prompt=build_prompt_style(scenario.prompts, scenario.modality.agnostic_prompt),
                   torch_threads=res.torch_threads or max(1, int(res.cpus_per_actor)),
                   gpus_per_actor=res.gpus_per_actor, cap_gpu_memory=res.cap_gpu_memory)

    @property
    def agnostic_prompt(self) -> bool:
        """Whether the prompt is FedMLLM's modality-agnostic augmentation."""
        return self.prompt.agnostic
