"""The scenario schema: one frozen dataclass per concern.

Field constraints live in each field's metadata (see :func:`spec`) so that the loader can check every
field generically and report all problems at once. Rules that span fields live in each class's
``problems()`` method, which returns messages rather than raising, for the same reason.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, Mapping, Optional


def spec(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    extra: bool = False,
    help: str = "",
) -> Any:
    """A dataclass field with range bounds (``ge``/``gt``/``le``/``lt``) and a help text.

    ``extra=True`` marks a mapping field that collects the keys a section does not declare (plug-in
    parameters such as a strategy's ``eta``); they are checked by the plug-in, not by the schema.
    """
    metadata = {"ge": ge, "gt": gt, "le": le, "lt": lt, "extra": extra, "help": help}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _frozen_dict() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class SourceConfig:
    """A further data source: the second task of a task-heterogeneity run, or an evaluation-only set."""

    source: str = spec(help="registered data source name")
    root: Optional[str] = spec(None, help="local dataset directory, for sources that read files")
    max_train_samples: Optional[int] = spec(None, ge=1, help="cap on its training samples")
    max_test_samples: Optional[int] = spec(None, ge=1, help="cap on its test samples")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="source-specific parameters")


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from and how held-out splits are drawn when a dataset ships none."""

    source: str = spec("digits", help="registered data source name")
    root: Optional[str] = spec(None, help="local dataset directory, for sources that read files")
    cache_dir: Optional[str] = spec(None, help="where prepared (encoded) samples are cached across runs "
                                               "(None: $FEDRAY_CACHE, else ~/.cache/fedray)")
    test_fraction: float = spec(0.2, gt=0.0, lt=1.0,
                                help="held-out test share, for sources without a test split")
    validation_fraction: float = spec(0.0, ge=0.0, lt=1.0,
                                      help="validation share (model selection), for sources without one")
    max_train_samples: Optional[int] = spec(None, ge=1, help="cap on training samples (None: all)")
    max_validation_samples: Optional[int] = spec(None, ge=1, help="cap on validation samples")
    max_test_samples: Optional[int] = spec(None, ge=1, help="cap on test samples (None: all)")
    secondary: Optional[SourceConfig] = spec(
        None, help="second training source, for task heterogeneity (see scenario.task_split)")
    eval_sources: tuple[SourceConfig, ...] = spec((), help="extra test-only sets, e.g. SLAKE")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="source-specific parameters")

    def problems(self) -> list[str]:
        if self.test_fraction + self.validation_fraction >= 1.0:
            return [f"data: test_fraction ({self.test_fraction}) + validation_fraction "
                    f"({self.validation_fraction}) must be below 1; lower one of them"]
        return []


@dataclass(frozen=True)
class PartitionConfig:
    """How training samples are split over clients; the partitioner's own parameters (``alpha``) inline."""

    name: str = spec("dirichlet", help="registered partitioner: iid, dirichlet or quantity")
    num_clients: int = spec(10, ge=1, le=1_000_000, help="how many clients (at most a million)")
    min_client_size: int = spec(10, ge=1, help="every client gets at least this many samples")
    mode: Literal["fedray", "fedmllm"] = spec(
        "fedray", help="fedmllm: reproduce the FedMLLM scripts' splits exactly for the same seed")
    secondary_clients: int = spec(0, ge=0, help="clients that do data.secondary's task instead "
                                              "(task heterogeneity); 0: every client does the main task")
    task_absent_rate: Optional[float] = spec(
        None, ge=0.0, lt=1.0, help="task heterogeneity as FedMLLM's medical mix, instead of "
        "secondary_clients: each client lacks the main and data.secondary's task each with this chance; "
        "one drawn with neither gets one by a coin flip, one with both holds a shard of each")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="partitioner parameters, e.g. alpha: 0.5")

    def problems(self) -> list[str]:
        if self.task_absent_rate is not None and self.secondary_clients:
            return [f"partition: secondary_clients ({self.secondary_clients}) and task_absent_rate "
                    f"({self.task_absent_rate}) are two ways to give clients the second task; set one "
                    "and the other to its default (0, null)"]
        return []


@dataclass(frozen=True)
class ModalityConfig:
    """Which modalities each client (or sample) holds: FedMLLM's modality heterogeneity scenarios, with
    the scenario's own parameters (``missing_rate``, ``image_clients``, ``absent_rate``) inline."""

    name: str = spec("aligned", help="registered scenario: aligned, missing, cross_modal or hybrid")
    mode: Literal["fedray", "fedmllm"] = spec(
        "fedray", help="fedmllm: reproduce the FedMLLM scripts' client assignments for the same seed")
    agnostic_prompt: bool = spec(False, help="FedMLLM's prompt augmentation: one modality-agnostic wording "
                                             "whatever a sample holds (the words are prompts.style's)")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="scenario parameters, e.g. missing_rate: 0.3")


@dataclass(frozen=True)
class PromptsConfig:
    """What the model is shown: the prompt style by registered name, with its parameters inline.

    The style writes the user turn and the assistant's target; the model's chat template then decides the
    tokens. Whether the wording is FedMLLM's modality-agnostic augmentation is ``modality.agnostic_prompt``.
    """

    style: str = spec("fedray", help="registered prompt style: fedray (fedray's wording), fedmllm (the "
                                     "FedMLLM reference's, character for character) or template (your own)")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="style parameters, e.g. template: '{question}\\n{options}'")


@dataclass(frozen=True)
class TinyVlmConfig:
    """Sizes of the offline LLaVA-style model built from config (no download)."""

    image_size: int = spec(32, ge=8, le=4096, help="side of the square input image, in pixels")
    patch_size: int = spec(8, ge=1, help="side of a vision patch (image_size must be a multiple)")
    vision_hidden_size: int = spec(64, ge=8, le=65536, help="width of the vision tower")
    vision_layers: int = spec(2, ge=1, le=1024, help="transformer layers of the vision tower")
    vision_heads: int = spec(4, ge=1, le=1024, help="attention heads of the vision tower")
    text_hidden_size: int = spec(128, ge=8, le=65536,
                                 help="width of the language model (its MLP is twice as wide)")
    text_layers: int = spec(2, ge=1, le=1024, help="decoder layers of the language model")
    text_heads: int = spec(4, ge=1, le=1024, help="attention heads of the language model")
    text_kv_heads: int = spec(2, ge=1, le=1024, help="key/value heads (grouped-query attention)")
    vocab_size: int = spec(1024, ge=300, le=1_000_000, help="upper bound on the byte-level BPE vocabulary")
    max_position_embeddings: int = spec(512, ge=32, le=10_000_000,
                                        help="longest sequence the language model accepts")
    init_seed: int = spec(0, ge=0, help="seed of the base weights (same on every actor)")
    vision: Literal["clip", "efficientnet_lite0"] = spec(
        "clip", help="clip: a random CLIP tower (offline, weak); efficientnet_lite0: the frozen pretrained "
                     "ImageNet encoder + a trained projector (`make assets-eye`, docs/models.md)")
    vision_weights: Optional[str] = spec(None, help="efficientnet_lite0: the .pth (None: $FEDRAY_ASSETS)")
    image_grid: int = spec(2, ge=1, le=7, help="efficientnet_lite0: features pooled to grid×grid tokens")
    projector_hidden: int = spec(256, ge=0, help="efficientnet_lite0: projector MLP width (0: linear)")

    def problems(self) -> list[str]:
        out = []
        if self.vision == "clip" and self.image_size % self.patch_size:
            out.append(f"model.tiny.image_size ({self.image_size}) must be a multiple of "
                       f"model.tiny.patch_size ({self.patch_size})")
        for prefix, hidden, heads in (("vision", self.vision_hidden_size, self.vision_heads),
                                      ("text", self.text_hidden_size, self.text_heads)):
            if hidden % heads:
                out.append(f"model.tiny.{prefix}_hidden_size ({hidden}) must be divisible by "
                           f"model.tiny.{prefix}_heads ({heads})")
        if self.text_heads % self.text_kv_heads:
            out.append(f"model.tiny.text_heads ({self.text_heads}) must be divisible by "
                       f"model.tiny.text_kv_heads ({self.text_kv_heads})")
        return out


@dataclass(frozen=True)
class AssembledConfig:
    """The ``assembled`` builder: real pretrained parts from registry packages, joined by a projector."""

    language_model: Optional[str] = spec(
        None, help="SmolLM2-135M-Instruct as a saved model directory or its .gguf file "
                   "(None: looked up under $FEDRAY_ASSETS, see `make assets-real`)")
    vision_weights: Optional[str] = spec(
        None, help="EfficientNet-Lite0 ImageNet state dict (.pth) (None: looked up under $FEDRAY_ASSETS)")
    image_size: int = spec(224, ge=32, le=4096, help="side of the square image fed to the vision encoder")
    image_grid: int = spec(2, ge=1, le=7, help="image features average-pooled to grid×grid tokens "
                                                  "(7: EfficientNet-Lite0's full 7×7 map at 224 px)")
    projector_hidden: int = spec(512, ge=0, le=65536,
                                 help="hidden width of the MLP projector (0: one linear layer)")
    init_seed: int = spec(0, ge=0, help="seed of the projector's initial weights (same on every actor)")


@dataclass(frozen=True)
class ModelConfig:
    """Which model builder to use and its settings."""

    name: str = spec("tiny-vlm", help="registered model builder: tiny-vlm, hf or assembled")
    path: Optional[str] = spec(None, help="hf: a local model directory, or a model id already in the "
                                          "local Hugging Face cache (nothing is downloaded)")
    family: Optional[str] = spec(None, help="hf: model family (llava, qwen2_vl, qwen2_5_vl, idefics3, "
                                            "smolvlm, minicpmv); None: read from the model's config")
    trust_remote_code: bool = spec(False, help="hf: run the model's own Python code from model.path "
                                               "(needed by MiniCPM-V)")
    dtype: Literal["float32", "bfloat16", "float16"] = spec("float32")
    quantization: Literal["none", "4bit"] = spec(
        "none", help="4bit: load the frozen base weights in NF4 with bitsandbytes (QLoRA; GPU only)")
    gradient_checkpointing: bool = spec(False, help="recompute activations in backward to save memory")
    cache_vision_features: bool = spec(
        True, help="compute a frozen vision tower without LoRA once per image and reuse its output (exact; "
                   "llava and assembled, see docs/models.md); false: run it at every step")
    max_length: int = spec(256, ge=16, le=10_000_000, help="token limit per sample (prompt + answer)")
    tiny: TinyVlmConfig = spec(default_factory=TinyVlmConfig, help="tiny-vlm: the builder's parameters")
    assembled: AssembledConfig = spec(default_factory=AssembledConfig,
                                      help="assembled: the builder's parameters")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter settings and which extra modules are trained and aggregated."""

    rank: int = spec(8, ge=1, le=65536)
    alpha: float = spec(16.0, gt=0.0)
    dropout: float = spec(0.0, ge=0.0, lt=1.0)
    target_modules: Optional[str] = spec(
        None, help="regex over module paths that receive LoRA (None: the model family's preset)")
    preset: Literal["attention", "attention_mlp", "fedmllm"] = spec(
        "attention", help="with target_modules unset: the language model's attention projections, "
                          "or attention and MLP; fedmllm: what the FedMLLM reference trains (LoRA on the "
                          "language model's q/k/v/o in every decoder layer, plus the family's token "
                          "embeddings and projector trained in full and aggregated)")
    vision: bool = spec(False, help="with target_modules unset: LoRA on the vision tower's attention too")
    train_projector: bool = spec(
        False, help="train the family's vision-language projector in full and aggregate it with the "
                    "adapter (its bytes are added to every round's traffic)")
    modules_to_save: tuple[str, ...] = spec(
        (), help="modules trained in full and aggregated with the adapter, by name: a module whose path "
                 "ends with one is taken (e.g. multi_modal_projector, embed_tokens)")
    trainable: tuple[str, ...] = spec(
        (), help="regexes over full module paths (e.g. 'llm\\.model\\.norm'): the outermost modules that "
                 "match are trained in full and aggregated, like modules_to_save")

    def problems(self) -> list[str]:
        patterns = [("lora.target_modules", self.target_modules)] if self.target_modules is not None else []
        patterns += [(f"lora.trainable[{i}]", p) for i, p in enumerate(self.trainable)]
        return [problem for path, pattern in patterns for problem in regex_problems(path, pattern)]


def regex_problems(path: str, pattern: str) -> list[str]:
    """A regular expression that does not compile: said at load time, not in every actor."""
    try:
        re.compile(pattern)
    except re.error as err:
        return [f"{path}: {pattern!r} is not a regular expression ({err}); fix it (escape . ( [ with \\)"]
    return []


@dataclass(frozen=True)
class TrainEngineConfig:
    """What runs a client's optimizer steps, with the engine's own parameters inline (``zero_stage``)."""

    name: str = spec("torch", help="registered train engine: torch or deepspeed")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="engine parameters, e.g. zero_stage: 2")


@dataclass(frozen=True)
class RoundScheduleConfig:
    """How the base learning rate moves across rounds (fedray.client.schedule), before each fit's own
    schedule: constant, or the FedMLLM reference's cosine with warmup."""

    name: Literal["constant", "cosine_warm"] = spec("constant",
                                                    help="constant, or cosine_warm (the reference's)")
    warmup_fraction: float = spec(0.01, ge=0.0, lt=1.0,
                                  help="cosine_warm: warmup length as a share of the rounds")
    eta_min: float = spec(0.0, ge=0.0, help="cosine_warm: the lr the cosine ends at")
    warmup: Literal["reference", "corrected"] = spec(
        "reference", help="reference: warmup of total × fraction rounds, so under one round gives round 1 "
                          "more than the base lr (the reference's 2×); corrected: whole rounds, never above")


@dataclass(frozen=True)
class TrainConfig:
    """Local training on each client."""

    local_steps: Optional[int] = spec(10, ge=1, le=10_000_000,
                                      help="optimizer steps per fit (or use local_epochs)")
    local_epochs: Optional[float] = spec(None, gt=0.0, le=100_000, help="passes over the client data per fit")
    batch_size: int = spec(8, ge=1, le=1_000_000)
    optimizer: Literal["adamw", "sgd"] = spec("adamw", help="local optimizer, new every fit (sgd: plain, "
                                                             "as SCAFFOLD's analysis assumes)")
    lr: float = spec(1e-3, gt=0.0)
    weight_decay: float = spec(0.0, ge=0.0)
    adam_beta1: float = spec(0.9, ge=0.0, lt=1.0)
    adam_beta2: float = spec(0.999, ge=0.0, lt=1.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = spec("constant")
    warmup_ratio: float = spec(0.0, ge=0.0, lt=1.0)
    max_grad_norm: Optional[float] = spec(1.0, gt=0.0, help="gradient clipping (None: off)")
    engine: TrainEngineConfig = spec(default_factory=TrainEngineConfig)
    round_schedule: RoundScheduleConfig = spec(default_factory=RoundScheduleConfig)

    def problems(self) -> list[str]:
        if (self.local_steps is None) == (self.local_epochs is None):
            return ["train: set exactly one of train.local_steps and train.local_epochs "
                    f"(got local_steps={self.local_steps}, local_epochs={self.local_epochs}); "
                    "set the other to null"]
        return []


@dataclass(frozen=True)
class StrategyConfig:
    """The server-side aggregation rule, by registered name, with its parameters inline."""

    name: str = spec("fedavg", help="registered strategy name")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="strategy parameters, e.g. eta: 0.01")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The client-side objective, by registered name, with its parameters inline (e.g. mu: 0.01)."""

    name: str = spec("plain", help="registered objective: plain, fedprox or adaptive_prox")
    options: Mapping[str, Any] = spec(default_factory=_frozen_dict, extra=True,
                                      help="objective parameters, e.g. mu: 0.01")


@dataclass(frozen=True)
class FederationConfig:
    """The round loop."""

    rounds: int = spec(10, ge=1, le=1_000_000, help="server rounds (at most a million)")
    clients_per_round: int = spec(3, ge=1, le=1_000_000)
    min_fit_clients: int = spec(1, ge=1, help="a round with fewer successful fits fails the run")
    round_timeout_s: float = spec(600.0, gt=0.0, le=10_000_000,
                                  help="fits not back by then count as failures (at most ~115 days)")
    checkpoint_every: int = spec(1, ge=0, le=1_000_000,
                                 help="checkpoint every N rounds for --resume (0: never)")
    client_states_in_memory: int = spec(256, ge=1, help="client states kept in memory on the "
                                        "aggregator's node; the rest spill to the run directory")
    fit_retries: int = spec(0, ge=0, le=100, help="retries of a fit whose actor died, on another actor "
                                        "(0: the client is a failure for that round)")
    sampler: Literal["fedray", "fedmllm"] = spec(
        "fedray", help="fedmllm: the reference's cohorts (Python random seeded with the round, then sample)")


@dataclass(frozen=True)
class SystemConfig:
    """Simulated system heterogeneity (seeded; recorded in the history apart from real failures)."""

    availability: float = spec(1.0, gt=0.0, le=1.0, help="chance a client can be sampled in a round")
    dropout: float = spec(0.0, ge=0.0, lt=1.0, help="chance a sampled client drops out, losing its update")
    slow_fraction: float = spec(0.0, ge=0.0, le=1.0, help="share of clients that are slow (fixed per client)")
    slow_factor: float = spec(1.0, ge=1.0, le=1_000_000,
                              help="how many times longer a slow client's fit takes")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation of the global model on the held-out test split."""

    every: int = spec(1, ge=0, help="evaluate every N rounds (0: only at the end)")
    at_start: bool = spec(True, help="evaluate the initial global model as round 0")
    batch_size: int = spec(32, ge=1, le=1_000_000)
    max_new_tokens: Optional[int] = spec(
        None, ge=1, le=1_000_000,
        help="tokens generated per answer (None: the eval set's longest answer in this model's "
                         "tokens, so no answer is cut short)")
    conditions: tuple[Literal["full", "image_only", "text_only"], ...] = spec(
        ("full",), help="test conditions: full modalities, and/or with text or image removed")
    option_scores: bool = spec(True, help="score binary multiple-choice options by log-likelihood (ROC-AUC)")
    select_metric: str = spec("accuracy", help="validation metric that picks the best round: one the "
                                               "evaluation produces (accuracy, macro_f1, auc, invalid_rate, "
                                               "accuracy_open/_closed, their fedmllm_* forms, ...)")
    protocol: tuple[Literal["strict", "fedmllm"], ...] = spec(
        ("strict",), help="how answers are scored: strict (fedray's parser: exact options, an invalid "
                          "bucket) and/or fedmllm (the reference's parser and metrics, keys fedmllm_*)")
    save_predictions: bool = spec(False, help="write each evaluated round's test answers (prompt, generated "
                                              "text, parsed answer, correctness) to "
                                              "predictions/round_NNN.jsonl")

    def problems(self) -> list[str]:
        out = []
        if not self.protocol:
            out.append("eval.protocol: empty; give at least one of strict, fedmllm")
        if not self.conditions:
            out.append("eval.conditions: empty, so nothing would be tested; give at least full")
        if len(set(self.protocol)) != len(self.protocol):
            out.append(f"eval.protocol: {list(self.protocol)} names a protocol twice")
        out += select_metric_problems(self)
        metric = self.select_metric.rsplit("/", 1)[-1]
        if self.protocol and "strict" not in self.protocol and not metric.startswith("fedmllm_"):
            out.append(f"eval.select_metric: {self.select_metric!r} is a strict-protocol metric, but "
                       f"eval.protocol is {list(self.protocol)}; select a fedmllm_* metric (e.g. "
                       "fedmllm_accuracy, fedmllm_auc, fedmllm_f1) or add strict to eval.protocol")
        return out


#: The metrics a validation split can produce (fedray.client.metrics, fedray.client.protocols), by protocol;
#: ``accuracy_qtype/<type>`` also, and a ``choice/``, ``label/`` or ``vqa/`` prefix on a mixed set.
STRICT_METRICS = frozenset({"accuracy", "macro_f1", "invalid_rate", "auc", "accuracy_open",
                            "accuracy_closed"})
FEDMLLM_METRICS = frozenset({"fedmllm_accuracy", "fedmllm_f1", "fedmllm_auc", "fedmllm_fallback_rate",
                             "fedmllm_accuracy_open", "fedmllm_accuracy_closed"})
_ROW_KINDS = ("choice/", "label/", "vqa/")


def select_metric_problems(cfg: EvalConfig) -> list[str]:
    """``eval.select_metric`` must be a metric the evaluation produces, or no round is ever chosen."""
    name = cfg.select_metric
    base = next((name[len(k):] for k in _ROW_KINDS if name.startswith(k)), name)
    fedmllm = base.startswith("fedmllm_")
    head, slash, _ = base.partition("/")
    known = base in STRICT_METRICS | FEDMLLM_METRICS or \
        bool(slash) and head in ("accuracy_qtype", "fedmllm_accuracy_qtype")
    if not known:
        close = difflib.get_close_matches(base, sorted(STRICT_METRICS | FEDMLLM_METRICS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return [f"eval.select_metric: {name!r} is not a metric the evaluation produces, so no best round "
                f"would ever be chosen; {hint}known: {', '.join(sorted(STRICT_METRICS | FEDMLLM_METRICS))}"]
    if fedmllm and "fedmllm" not in cfg.protocol:
        return [f"eval.select_metric: {name!r} is a fedmllm-protocol metric, but eval.protocol is "
                f"{list(cfg.protocol)}; add fedmllm to eval.protocol or select a strict metric"]
    if base == "auc" and not cfg.option_scores:
        return ["eval.select_metric: 'auc' comes from option scores, but eval.option_scores is false; "
                "set it true or select another metric"]
    return []


@dataclass(frozen=True)
class ResourcesConfig:
    """The client actor pool and where Ray runs."""

    actors: Optional[int] = spec(2, ge=1, le=100_000,
                                 help="client actor groups in the pool (None: as many as the "
                                               "cluster's CPUs and GPUs fit)")
    actors_per_client: int = spec(1, ge=1, le=4096,
                                  help="actors that train one client together as one DeepSpeed "
                                                "data-parallel group, reserved with a placement group")
    cpus_per_actor: float = spec(1.0, ge=0.0, le=4096)
    gpus_per_actor: float = spec(0.0, ge=0.0, le=64, help="fractions allowed, e.g. 0.25")
    torch_threads: Optional[int] = spec(None, ge=1, le=1024, help="torch threads per actor (None: from cpus)")
    cap_gpu_memory: bool = spec(True, help="each actor limits its GPU memory to its share gpus_per_actor")
    fits_per_call: Optional[int] = spec(None, ge=1, le=10_000, help="fits one Ray call to an actor carries "
                                        "(None: auto, from the last round's fit times); 1 for group clients")
    ray_address: Optional[str] = spec(None, help="existing cluster address, host:port, ray://host:port or "
                                                 "auto (None: start locally); one that cannot be reached "
                                                 "within 30 s fails the run")

    def problems(self) -> list[str]:
        if self.actors_per_client > 1 and (self.fits_per_call or 1) > 1:
            return [f"resources: fits_per_call={self.fits_per_call} needs actors_per_client=1 (a group "
                    f"client's ranks train one fit at a time together); set fits_per_call to 1 or null"]
        return []


@dataclass(frozen=True)
class OutputConfig:
    """Where runs are written."""

    root: str = spec("runs", help="parent directory of run directories")


@dataclass(frozen=True)
class Scenario:
    """A whole federated experiment, loaded from one YAML file."""

    name: str = spec("scenario")
    description: str = spec("")
    seed: int = spec(0, ge=0)
    mode: str = spec("federated", help="registered run mode: federated, or a baseline: centralized "
                     "(pooled data), local (each client alone), zero_shot (no training)")
    data: DataConfig = spec(default_factory=DataConfig)
    partition: PartitionConfig = spec(default_factory=PartitionConfig)
    modality: ModalityConfig = spec(default_factory=ModalityConfig)
    prompts: PromptsConfig = spec(default_factory=PromptsConfig)
    model: ModelConfig = spec(default_factory=ModelConfig)
    lora: LoraConfig = spec(default_factory=LoraConfig)
    train: TrainConfig = spec(default_factory=TrainConfig)
    strategy: StrategyConfig = spec(default_factory=StrategyConfig)
    objective: ObjectiveConfig = spec(default_factory=ObjectiveConfig)
    federation: FederationConfig = spec(default_factory=FederationConfig)
    eval: EvalConfig = spec(default_factory=EvalConfig)
    system: SystemConfig = spec(default_factory=SystemConfig)
    resources: ResourcesConfig = spec(default_factory=ResourcesConfig)
    output: OutputConfig = spec(default_factory=OutputConfig)

    def problems(self) -> list[str]:
        out = []
        if self.federation.clients_per_round > self.partition.num_clients:
            out.append(f"federation.clients_per_round ({self.federation.clients_per_round}) exceeds "
                       f"partition.num_clients ({self.partition.num_clients}); lower it")
        if self.federation.min_fit_clients > self.federation.clients_per_round:
            out.append(f"federation.min_fit_clients ({self.federation.min_fit_clients}) exceeds "
                       f"federation.clients_per_round ({self.federation.clients_per_round})")
        if self.model.name == "tiny-vlm" and self.model.tiny.max_position_embeddings < self.model.max_length:
            out.append(f"model.max_length ({self.model.max_length}) exceeds "
                       f"model.tiny.max_position_embeddings ({self.model.tiny.max_position_embeddings})")
        return out
