"""``python -m planner``: the Perseus planner's command line (see :mod:`planner.perseus.cli`)."""

import sys

from planner.perseus.cli import main

if __name__ == "__main__":
    sys.exit(main())
