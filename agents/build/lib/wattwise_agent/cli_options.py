"""Command-line pieces shared by ``python -m wattwise_agent`` subcommands: durations, and where messages go."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from wattwise_agent.transport import CeleryTransport, HttpTransport, transport_for

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
    """Where and how commands that send deliver: --token, --url or --broker-url, --ca-bundle, --spool-dir,
    --drain-timeout and --connect-timeout."""
    parser.add_argument("--token", default=None, help="node token (default: $WATTWISE_TOKEN; prefer the variable, "
                        "command lines are visible to other users)")
    parser.add_argument("--url", default=None, help="the app's URL, e.g. https://wattwise.example.org: send over "
                        "HTTP(S) (default: $WATTWISE_URL)")
    parser.add_argument("--broker-url", "--broker", dest="broker", default=None, help="publish to this broker "
                        "instead, on a trusted network (default: $WATTWISE_BROKER_URL); not with --url")
    parser.add_argument("--ca-bundle", default=None, help="PEM file of certificate authorities to trust for the "
                        "app's certificate (default: $WATTWISE_CA_BUNDLE, else the system's)")
    parser.add_argument("--spool-dir", type=Path, default=None, help="spool directory "
                        "(default: ~/.cache/wattwise/spool/<node>)")
    parser.add_argument("--drain-timeout", type=parse_duration_s, default=drain_default_s, help=drain_help)
    parser.add_argument("--connect-timeout", type=parse_duration_s, default=None,
                        help="connection timeout (default 5s for the app's URL, 1.5s for a broker)")


def transport_from_args(args: argparse.Namespace) -> HttpTransport | CeleryTransport:
    """The transport the options (or, unset, the environment) ask for; ValueError says what to set."""
    url = args.url or os.environ.get("WATTWISE_URL")
    broker = args.broker or os.environ.get("WATTWISE_BROKER_URL")
    ca_bundle = args.ca_bundle or os.environ.get("WATTWISE_CA_BUNDLE") or None
    return transport_for(url, broker, ca_bundle=ca_bundle, connect_timeout_s=args.connect_timeout)
