"""fedray.lazy: a stand-in module that imports the real one on first attribute use, and hiding a module
from a library's import-time probe."""

from __future__ import annotations

import sys

import pytest

from fedray.lazy import LazyModule, hidden, lazy_import


def test_a_stand_in_imports_its_module_on_first_attribute_use_and_forwards_to_it():
    sys.modules.pop("colorsys", None)
    colors = lazy_import("colorsys")
    assert isinstance(colors, LazyModule) and not colors.loaded
    assert "colorsys" not in sys.modules  # the stand-in is not registered in its place
    assert colors.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert colors.loaded and sys.modules["colorsys"].rgb_to_hsv is colors.rgb_to_hsv


def test_probes_for_special_attributes_do_not_import_the_module():
    sys.modules.pop("colorsys", None)
    colors = lazy_import("colorsys")
    for probe in ("__path__", "__file__", "__wrapped__"):
        assert not hasattr(colors, probe)
    assert not colors.loaded


def test_a_missing_attribute_is_an_attribute_error_of_the_real_module():
    with pytest.raises(AttributeError):
        _ = lazy_import("colorsys").no_such_function


def test_hidden_makes_an_import_fail_inside_the_block_only():
    sys.modules.pop("colorsys", None)
    with hidden("colorsys"):
        with pytest.raises(ImportError):
            import colorsys  # noqa: F401
    import colorsys  # noqa: F401,F811

    assert "colorsys" in sys.modules


def test_hidden_leaves_an_imported_module_visible():
    import json

    with hidden("json"):
        import json as again
    assert again is json
