"""``python -m fastbook`` is the ``fastbook`` command."""

from fastbook.cli import main

raise SystemExit(main())
