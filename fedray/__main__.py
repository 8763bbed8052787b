"""``python -m fedray`` is the ``fedray`` command."""

import sys

from fedray.cli.main import main

sys.exit(main())
