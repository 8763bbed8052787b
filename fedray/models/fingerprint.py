"""Fingerprints of what turns a sample into model inputs, for naming cached inputs.

A cached input is reused only when every fingerprint in its key is equal, so these err on the side of
differing: the processor's whole configuration (tokenizer vocabulary, merges, normalizer, special tokens
and chat template; the image processor's settings and class), the versions of the libraries that run
them, and the source of fedray's own modules on that path (a changed prompt wording is a changed file).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
from typing import Any, Iterable

#: fedray modules (a package: all of its modules) whose code decides what a sample becomes (prompt
#: styles, masks, image decoding, batching).
CODE_MODULES: tuple[str, ...] = (
    "fedray.data.prompts", "fedray.data.schema", "fedray.data.modality", "fedray.models.collate",
)
_LIBRARIES = ("transformers", "tokenizers", "PIL", "numpy", "torch")


def digest(value: Any) -> str:
    """A hex SHA-256 of ``value`` as canonical JSON (objects that JSON cannot hold count by type only)."""
    text = json.dumps(value, sort_keys=True, default=lambda o: f"<{type(o).__qualname__}>")
    return hashlib.sha256(text.encode()).hexdigest()


def processor_fingerprint(processor: Any) -> dict[str, Any]:
    """Everything about ``processor`` that can change what it makes of a sample, as a JSON-able dict."""
    image_processor = getattr(processor, "image_processor", None)
    return {
        "class": _qualname(processor),
        "settings": _settings(processor, skip={"tokenizer", "image_processor", "processor"}),
        "chat_template": getattr(processor, "chat_template", None),
        "wrapped": _settings(getattr(processor, "processor", None), skip={"tokenizer", "image_processor"}),
        "tokenizer": tokenizer_fingerprint(processor.tokenizer),
        "image_processor": None if image_processor is None else
        {"class": _qualname(image_processor), "settings": _settings(image_processor, skip=set())},
        "libraries": library_versions(_LIBRARIES),
        "code": code_digest(CODE_MODULES + _own_module(processor)),
    }


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's full definition (a fast tokenizer's JSON, else its vocabulary), template, specials."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else sorted(tokenizer.get_vocab().items())
    return {"class": _qualname(tokenizer), "definition": hashlib.sha256(str(definition).encode()).hexdigest(),
            "chat_template": getattr(tokenizer, "chat_template", None),
            "special_tokens": getattr(tokenizer, "special_tokens_map", None),
            "added": sorted(str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values())}


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each library ("absent" where it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
        except ImportError:
            versions[name] = "absent"
    return versions


def code_digest(modules: Iterable[str]) -> str:
    """A SHA-256 over the source files of ``modules``, and of every module inside those that are packages."""
    h = hashlib.sha256()
    for name in sorted(_with_submodules(modules)):
        h.update(name.encode())
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    return h.hexdigest()


def _with_submodules(modules: Iterable[str]) -> set[str]:
    names = set()
    for name in modules:
        names.add(name)
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):  # a package: its modules decide too
            names.update(info.name for info in pkgutil.walk_packages(module.__path__, prefix=name + "."))
    return names


def _settings(obj: Any, skip: set[str]) -> Any:
    """``obj.to_dict()`` where it has one, else its plain attributes (numbers, strings, containers)."""
    if obj is None:
        return None
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        try:
            return {k: v for k, v in to_dict().items() if k not in skip}
        except Exception:  # a to_dict that needs what this object lacks: fall back to its attributes
            pass
    plain = (str, int, float, bool, type(None), list, tuple, dict)
    return {k: v for k, v in sorted(vars(obj).items())
            if k not in skip and not k.startswith("_") and isinstance(v, plain)}


def _own_module(processor: Any) -> tuple[str, ...]:
    """The processor's module when fedray wrote it (the assembled and MiniCPM-V processors)."""
    module = type(processor).__module__
    return (module,) if module.startswith("fedray.") else ()


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
