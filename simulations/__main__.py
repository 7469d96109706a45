"""``python -m simulations``: see ``simulations.cli``."""

import sys

from simulations.cli import main

sys.exit(main())
