"""``python -m conveyor.server``: the same as ``conveyor serve``."""

from conveyor.server.app import main

raise SystemExit(main())
