"""Command-line pieces shared by ``python -m agents`` subcommands: durations and broker options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")


def parse_duration_s(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``3h``, ``1h30m``, ``250ms`` → seconds."""
    text = text.strip().lower()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or (match.group(2) is None and match.end() != len(text)):
            raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 60s, 5m, 3h)")
        total += float(match.group(1)) * _UNITS_S[match.group(2) or "s"]
        pos = match.end()
    if not text:
        raise argparse.ArgumentTypeError("empty duration")
    return total


def add_broker_options(parser: argparse.ArgumentParser, *, drain_default_s: float, drain_help: str) -> None:
    """--token, --broker, --spool-dir, --drain-timeout and --connect-timeout, for commands that publish."""
    parser.add_argument("--token", default=None, help="node token (default: $WATTWISE_TOKEN; prefer the variable, "
                        "command lines are visible to other users)")
    parser.add_argument("--broker", default=None, help="broker URL (default: $WATTWISE_BROKER_URL)")
    parser.add_argument("--spool-dir", type=Path, default=None, help="spool directory "
                        "(default: ~/.cache/wattwise/spool/<node>)")
    parser.add_argument("--drain-timeout", type=parse_duration_s, default=drain_default_s, help=drain_help)
    parser.add_argument("--connect-timeout", type=parse_duration_s, default=1.5,
                        help="broker connection timeout (default 1.5s)")
