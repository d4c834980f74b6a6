"""``python -m agents``: the node agent's command line."""

import sys

from agents.cli import main

sys.exit(main())
