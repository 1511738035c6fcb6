"""``python -m meshkit``: the same command as ``meshkit``."""

import sys

from .cli import main

sys.exit(main())
