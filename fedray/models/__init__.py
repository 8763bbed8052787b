"""Model builders (registered by name), LoRA adapter handling and batch collation."""

from fedray.models.base import MODEL_BUILDERS, BuiltModel, build_model
from fedray.registry import import_submodules

# Every module registers what it defines (builders, families, the MiniCPM-V adapter): a new model family
# or builder is one new file.
import_submodules(__name__)

__all__ = ["MODEL_BUILDERS", "BuiltModel", "build_model"]
