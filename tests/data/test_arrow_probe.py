"""pyarrow's pandas probe skipped (fedray/data/arrow_probe.py): tables without pandas, pandas still usable."""

from __future__ import annotations

import subprocess
import sys

_CODE = """
import sys
from fedray.data.arrow_probe import skip_pandas_probe
from fedray.data.schema import samples_to_table
assert skip_pandas_probe() is True
rows = [{"id": str(i), "image": b"png", "text": None, "question": "q?", "choices": ["a", "b"],
         "answer": "a", "label": i % 2, "task": "t", "source": "s"} for i in range(100)]
table = samples_to_table(rows)
assert table.num_rows == 100 and table.column("choices")[0].as_py() == ["a", "b"]
assert "pandas" not in sys.modules, "pyarrow imported pandas after all"
import pandas as pd
import pyarrow as pa
assert len(table.to_pandas()) == 100  # pyarrow's pandas functions still import it when called
back = pa.Table.from_pandas(pd.DataFrame({"x": [1, 2], "y": pd.Categorical(["a", "b"])}))
assert back.num_rows == 2 and pa.types.is_dictionary(back.schema.field("y").type)
assert skip_pandas_probe() is False  # nothing to skip once pandas is in
print("ok")
"""


def test_tables_are_built_without_pandas_and_pandas_still_works_afterwards():
    done = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
