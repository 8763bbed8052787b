"""Keep pandas out of processes that only build Arrow tables from Python values.

pyarrow's first conversion of Python values (``pa.array``, ``pa.Table.from_pydict``) imports pandas, only
to ask whether the values are pandas objects: about 50 MiB of resident memory and a few tenths of a
second in every process that builds a table (the driver's data build, each client actor's prepared
samples), though none of them ever holds a pandas object. pyarrow tries that import once per process;
:func:`skip_pandas_probe` makes the one try fail quietly, so pyarrow treats values as plain Python.

pandas itself stays usable: a later ``import pandas`` works, and pyarrow's own pandas functions
(``Table.to_pandas``, ``Table.from_pandas``) import it when called. Only ``pa.array(series)`` before
any of those reads a pandas object as a plain sequence, which fedray never passes. If a pyarrow release
retries the import, pandas is simply imported as before (tests/data/test_arrow_probe.py notices).
"""

from __future__ import annotations

import importlib.abc
import sys


class _RefusePandas(importlib.abc.MetaPathFinder):
    """An import finder that refuses ``pandas`` (while installed)."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not imported for pyarrow's probe", name="pandas")
        return None


def skip_pandas_probe() -> bool:
    """Let pyarrow make its one pandas probe now, with pandas refused; true when it was skipped here
    (false when pandas is already imported, or the probe had already been made)."""
    if "pandas" in sys.modules:
        return False
    import pyarrow as pa

    finder = _RefusePandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])  # the first conversion of Python values: pyarrow's probe
    finally:
        sys.meta_path.remove(finder)
    return "pandas" not in sys.modules
