"""The model builders declared in fedray.models (checked at load without model code) are exactly the
ones its modules register, with the same parameter classes; an undeclared name still finds them."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

from fedray.models import MODEL_BUILDERS
from fedray.registry import NoParams, Registry, import_submodules


def test_every_declared_builder_is_registered_by_a_module_with_its_declared_parameters():
    declared = {name: MODEL_BUILDERS.params_class(name) for name in MODEL_BUILDERS._declared}
    import_submodules("fedray.models")
    assert set(declared) == set(MODEL_BUILDERS.names())  # each builder declared: checked without torch
    assert declared == {name: MODEL_BUILDERS.params_class(name) for name in MODEL_BUILDERS.names()}


def test_a_declared_name_and_its_parameters_are_known_before_its_module_is_imported():
    code = ("import sys, json\nfrom fedray.models import MODEL_BUILDERS\n"
            "known = 'tiny-vlm' in MODEL_BUILDERS, MODEL_BUILDERS.param_names('tiny-vlm')[:1]\n"
            "print(json.dumps([known, 'fedray.models.tiny_vlm' in sys.modules, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[True, ["image_size"]], False, False]


def _registry_over(tmp_path, monkeypatch) -> tuple[Registry, str]:
    """A registry whose entries a throwaway package registers (one module, entry ``alpha``)."""
    name = "plugins_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("from fedray.registry import Registry\nTHINGS = Registry('thing')\n")
    (package / "alpha.py").write_text(f"from {name} import THINGS\n"
                                      "@THINGS.register('alpha')\ndef alpha():\n    return 'a'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = importlib.import_module(name).THINGS
    registry.defer_to(name)
    return registry, f"{name}.alpha"


def test_using_a_declared_entry_imports_the_package(tmp_path, monkeypatch):
    registry, module = _registry_over(tmp_path, monkeypatch)
    registry.declare("alpha")
    assert "alpha" in registry and registry.params_class("alpha") is NoParams
    assert module not in sys.modules
    assert registry.get("alpha")() == "a"


def test_an_undeclared_name_imports_the_package_before_it_is_called_unknown(tmp_path, monkeypatch):
    registry, _ = _registry_over(tmp_path, monkeypatch)
    assert "alpha" in registry  # not declared: found by importing the package
    assert "beta" not in registry and registry.names() == ["alpha"]


def test_a_declaration_that_disagrees_with_the_registration_is_refused(tmp_path, monkeypatch):
    registry, _ = _registry_over(tmp_path, monkeypatch)
    registry.declare("alpha", params=dict)
    try:
        registry.get("alpha")
    except ValueError as err:
        assert "declared with parameters dict" in str(err)
    else:
        raise AssertionError("a wrong declaration went unnoticed")
