"""docs/datasets.md stays true: its source example runs, and its `hf` scenario snippet is valid."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import yaml

from fedray.data.sources import DATA_SOURCES

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def test_the_own_source_example_runs(monkeypatch):
    # The registration lasts for this test only, so the session's registry stays as shipped.
    monkeypatch.setattr(DATA_SOURCES, "_entries", dict(DATA_SOURCES._entries))
    monkeypatch.setattr(DATA_SOURCES, "_params", dict(DATA_SOURCES._params))
    blocks = re.findall(r"<!-- example -->\s*```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/datasets.md lost its executed example"
    for i, block in enumerate(blocks):
        module = types.ModuleType(f"datasets_doc_example_{i}")  # dataclasses look their module up
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(block, str(DOC), "exec"), module.__dict__)
    assert "example_colours" in DATA_SOURCES


def test_the_hf_snippet_names_only_real_options():
    text = DOC.read_text()
    section = text[text.index("## Any Hugging Face dataset"):text.index("## Your own source")]
    snippet = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1))["data"]
    options = {k: v for k, v in snippet.items() if k not in ("source", "root")}
    params, problems = DATA_SOURCES.parse(snippet["source"], options, "data")
    assert problems == [] and params.columns.label == "is_hateful" and params.splits.test == "dev"
