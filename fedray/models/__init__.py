"""Model builders (registered by name), LoRA adapter handling and batch collation."""

from fedray.models import assembled, hf, tiny_vlm  # noqa: F401  (register the builders)
from fedray.models.base import MODEL_BUILDERS, BuiltModel, build_model

__all__ = ["MODEL_BUILDERS", "BuiltModel", "build_model"]
