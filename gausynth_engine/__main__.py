"""`python -m gausynth_engine …`: the headless CLI."""

import sys

from .cli import main

sys.exit(main())
