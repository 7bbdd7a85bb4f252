"""``python -m conveyor ...`` is the ``conveyor`` command."""

from __future__ import annotations

import sys

from conveyor.cli import main

if __name__ == "__main__":
    sys.exit(main())
