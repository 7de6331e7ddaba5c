"""`python -m semanticgen_core generate ...` (see semanticgen_core/cli.py)."""

import sys

from .cli import main

sys.exit(main())
