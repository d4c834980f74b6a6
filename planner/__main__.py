"""``python -m planner``: the Perseus planner's command line (see :mod:`planner.cli`)."""

import sys

from planner.cli import main

if __name__ == "__main__":
    sys.exit(main())
