"""Model builders (registered by name), LoRA adapter handling and batch collation.

Every module here registers what it defines (builders, families, the MiniCPM-V adapter): a new model
family or builder is one new file. The modules are imported when a model is first built, not when this
package is: the driver checks ``model.name`` and ``model.<builder>`` against the declarations below and
never imports model code (or torch). A builder missing here still works; checking its name imports the
package (tests/models/test_declarations.py keeps the declarations equal to what the modules register).
"""

from fedray.config.schema import AssembledConfig, TinyVlmConfig
from fedray.models.base import MODEL_BUILDERS, BuiltModel, build_model
from fedray.models.families import ADAPTERS

for _registry in (MODEL_BUILDERS, ADAPTERS):  # the registries filled by other modules than their own
    _registry.defer_to(__name__)
MODEL_BUILDERS.declare("tiny-vlm", TinyVlmConfig)
MODEL_BUILDERS.declare("hf")
MODEL_BUILDERS.declare("assembled", AssembledConfig)

__all__ = ["MODEL_BUILDERS", "BuiltModel", "build_model"]
