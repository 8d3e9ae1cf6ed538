"""``python -m paysync.cli``: the same as the ``paysync`` console script."""

from __future__ import annotations

import sys

from paysync.cli import main

sys.exit(main())
