"""Command line for frequency planning: ``python -m wattwise_agent upload-profile`` and ``plan-check``.

Wired into :mod:`wattwise_agent.cli` (``add_parsers`` and ``run``); thin over :mod:`wattwise_agent.profile_upload`,
:mod:`wattwise_agent.profile_csv` and :mod:`wattwise_agent.frequency_plan`. Bad input prints ``wattwise-agent: …`` on
one line of stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from wattwise_agent.cli_options import add_broker_options, transport_from_args
from wattwise_agent.frequency_plan import PlanError, load_plans, select_rank
from wattwise_agent.profile_csv import MAX_PROFILE_BYTES, ProfileCsvError, merge_profile_csvs

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TOKEN_REJECTED = 3
COMMANDS = ("upload-profile", "plan-check")


def add_parsers(commands: Any) -> None:
    """Add the subcommands to the agent's ``add_subparsers()`` object."""
    upload = commands.add_parser(
        "upload-profile", help="check a Perseus stage profile and send it to the app for planning",
        description="Check a profile CSV (stage,instruction,frequency,time,energy) and publish it as one signed "
                    "stage_profile message. Several files (one per stage, as each rank's profiler writes them) "
                    "are merged, keeping the clocks every stage has.")
    upload.add_argument("profiles", nargs="+", type=Path, metavar="PROFILE.csv")
    upload.add_argument("--name", required=True, help="name the app files the profile under")
    upload.add_argument("--run", default=None, help="the run it was profiled in (optional)")
    upload.add_argument("--p-blocking", type=float, default=None, metavar="W",
                        help="blocking power P_blocking in W, if measured")
    upload.add_argument("--gpu-name", default=None, help="GPU model (default: what NVML reports for the first GPU "
                        "this job owns)")
    upload.add_argument("--node", default=None, help="node name (default: host name)")
    add_broker_options(upload, drain_default_s=5.0,
                       drain_help="how long to keep trying when the app (or broker) is down (default 5s)")
    upload.add_argument("-v", "--verbose", action="store_true")

    check = commands.add_parser("plan-check", help="validate a per-rank frequency plan and summarise it")
    check.add_argument("plan", type=Path, metavar="PLAN.json")
    check.add_argument("--rank", type=int, default=None, help="check only this rank of a whole-pipeline plan")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    if args.command == "upload-profile":
        return upload_profile_command(args)
    return plan_check_command(args)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"wattwise-agent: {message}", file=sys.stderr)
    return code


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ProfileCsvError(f"{path}: {size} bytes, the limit is {MAX_PROFILE_BYTES}")
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ProfileCsvError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProfileCsvError(f"{path}: not UTF-8 text") from None


def upload_profile_command(args: argparse.Namespace) -> int:
    from wattwise_agent.profile_upload import ProfileUpload, publish_stage_profile
    from wattwise_agent.spool import DiskSpool, default_spool_dir
    from wattwise_agent.transport import TokenRejected

    token = args.token or os.environ.get("WATTWISE_TOKEN")
    if not token:
        return _fail("no node token: set WATTWISE_TOKEN or pass --token")
    try:
        transport = transport_from_args(args)  # connects on the first send
    except ValueError as exc:
        return _fail(str(exc))
    try:
        texts = [_read_text(p) for p in args.profiles]
        if len(texts) == 1:
            csv_text = texts[0]
        else:
            merged = merge_profile_csvs(texts, sources=[str(p) for p in args.profiles])
            if merged.dropped_mhz:
                print(f"wattwise-agent: merged {len(texts)} profiles; left out {len(merged.dropped_mhz)} clock(s) not "
                      f"profiled on every stage: {', '.join(map(str, merged.dropped_mhz))} MHz", file=sys.stderr)
            csv_text = merged.csv
        gpu_name = args.gpu_name or _detect_gpu_name()
        node = args.node or socket.gethostname()
        spool = DiskSpool(args.spool_dir or default_spool_dir(node))
        try:
            profile = ProfileUpload(args.name, csv_text, gpu_name, run=args.run, p_blocking_w=args.p_blocking)
            result = publish_stage_profile(
                transport, profile, token=token, node=node, spool=spool, drain_timeout_s=args.drain_timeout
            )
        finally:
            transport.close()
    except ProfileCsvError as exc:
        return _fail(f"invalid profile: {exc}")
    except ValueError as exc:
        return _fail(str(exc))
    except TokenRejected as exc:
        print(f"wattwise-agent: {exc}", file=sys.stderr)
        print(f"wattwise-agent: the profile is kept in the spool {spool.directory}; fix WATTWISE_TOKEN and run "
              "again to send it", file=sys.stderr)
        return EXIT_TOKEN_REJECTED
    if result.refused:
        print(f"wattwise-agent: the app refused {result.refused} envelope(s) for good; they are kept with its "
              f"reasons in {spool.refused_path}", file=sys.stderr)
    elif not result.sent:
        print(f"wattwise-agent: could not deliver: the profile waits in the spool {spool.directory}; the next "
              "agent run on this node sends it first", file=sys.stderr)
    print(json.dumps(result.line()), flush=True)
    return EXIT_OK


def _detect_gpu_name() -> str:
    from wattwise_agent.backends.base import BackendUnavailable
    from wattwise_agent.backends.nvml import NvmlBackend

    try:
        backend = NvmlBackend()
    except BackendUnavailable as exc:
        raise ValueError(f"cannot tell the GPU model ({exc}): pass --gpu-name") from None
    try:
        return str(backend.gpus[0].name)
    finally:
        backend.close()


def plan_check_command(args: argparse.Namespace) -> int:
    try:
        plans = load_plans(args.plan)
        if args.rank is not None:
            plans = [select_rank(plans, args.rank)]
    except PlanError as exc:
        return _fail(f"invalid plan {str(args.plan)!r}: {exc}")
    summaries = [plan.summary() for plan in sorted(plans, key=lambda p: p.rank)]
    if args.json:
        print(json.dumps({"plan": str(args.plan), "ranks": summaries}))
        return EXIT_OK
    print(f"{args.plan}: valid, {len(summaries)} rank(s)")
    for s in summaries:
        by = s["by_instruction"]
        print(f"  rank {s['rank']}: {s['instructions_per_iteration']} instructions per iteration "
              f"({by['forward']} forward, {by['backward']} backward); {len(s['frequencies_mhz'])} clock(s) "
              f"{s['min_mhz']}–{s['max_mhz']} MHz: {', '.join(map(str, s['frequencies_mhz']))}; "
              f"{s['clock_changes_per_iteration']} clock change(s) per iteration")
    return EXIT_OK
