"""Model builders (registered by name), LoRA adapter handling and batch collation."""

# Register the builders, and the MiniCPM-V adapter the hf builder applies.
from fedray.models import assembled, hf, minicpmv, tiny_vlm  # noqa: F401
from fedray.models.base import MODEL_BUILDERS, BuiltModel, build_model

__all__ = ["MODEL_BUILDERS", "BuiltModel", "build_model"]
