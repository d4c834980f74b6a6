"""``python -m wattwise_agent``: the node agent's command line."""

import sys

from wattwise_agent.cli import main

sys.exit(main())
