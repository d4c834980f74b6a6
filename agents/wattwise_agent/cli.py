"""Command line: ``python -m wattwise_agent stream``, ``drain``, ``probe``, ``upload``, ``upload-profile`` and
``plan-check``. Thin over the library; the planning commands live in :mod:`wattwise_agent.cli_planning`, run files
(``stream --out``, ``upload``) in :mod:`wattwise_agent.cli_local`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any

from wattwise_agent import __version__, cli_local, cli_planning
from wattwise_agent.backends.base import BackendUnavailable, GpuBackend
from wattwise_agent.backends.rapl import node_energy
from wattwise_agent.cli_options import add_broker_options, parse_duration_s, transport_from_args
from wattwise_agent.clock import Clock, RealClock, VirtualClock
from wattwise_agent.outbox import Outbox, signed_with
from wattwise_agent.replay import epoch_ms
from wattwise_agent.run_file import RunFile
from wattwise_agent.spool import DiskSpool, MemorySpool, default_spool_dir
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import CeleryTransport, HttpTransport, TokenRejected

log = logging.getLogger("wattwise_agent")

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2
EXIT_TOKEN_REJECTED = 3
BACKENDS = ("nvml", "amdsmi", "simulated")

def parse_time(text: str) -> datetime:
    iso = text.strip()
    if iso[-1:] in ("Z", "z"):  # Python < 3.11 reads UTC only as +00:00
        iso = iso[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-01-01T00:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _index_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU indices like 0,2: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wattwise-agent", description="Wattwise node agent.")
    parser.add_argument("--version", action="version", version=f"wattwise-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    stream = commands.add_parser("stream", help="sample GPUs and stream batches to the app")
    stream.add_argument("--backend", choices=BACKENDS, default="nvml")
    stream.add_argument("--run", required=True, help="run name the batches are filed under")
    stream.add_argument("--gpus", help="nvml: indices or UUIDs, comma-separated (default: CUDA_VISIBLE_DEVICES, "
                        "else all); amdsmi: indices or UUIDs (default: ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES "
                        "or CUDA_VISIBLE_DEVICES, else all); simulated: how many GPUs (default 1)")
    stream.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=None,
                        help="also stream CPU package and DRAM energy from Linux RAPL (default: on with nvml and "
                        "amdsmi when /sys/class/powercap is readable, off with simulated)")
    stream.add_argument("--rapl-root", default=None, help="powercap directory to read RAPL from "
                        "(default /sys/class/powercap)")
    stream.add_argument("--duration", type=parse_duration_s, help="how long to stream (60s, 5m, 3h); default: "
                        "until interrupted")
    stream.add_argument("--start", type=parse_time, help="simulated: replay from this ISO time (needs --fast)")
    stream.add_argument("--fast", action="store_true", help="simulated: virtual clock, no sleeping; replays the "
                        "--duration before now unless --start is given")
    stream.add_argument("--rate", type=float, default=10.0, help="samples per second per GPU (default 10)")
    stream.add_argument("--window", type=parse_duration_s, default=5.0, help="batch window (default 5s)")
    stream.add_argument("--node", default=None, help="node name (default: host name)")
    stream.add_argument("--tag", action="append", default=[], help="tag for the run (repeatable)")
    stream.add_argument("--zone", default=None, help="grid zone this node draws power from, e.g. SE-SE3 or "
                        "US-MIDA-PJM (Electricity Maps zone ids), for carbon accounting")
    stream.add_argument("--region", default=None, help="cloud region this node runs in, e.g. aws:eu-north-1, "
                        "gcp:europe-west1 or azure:westeurope, for carbon accounting")
    cli_local.add_out_option(stream)
    add_broker_options(stream, drain_default_s=10.0,
                       drain_help="at exit, how long to keep trying to empty the spool (default 10s)")
    sim = stream.add_argument_group("simulated backend")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--reset-at", type=parse_duration_s, default=None,
                     help="reset the energy counters once, at the first sample this far into the run")
    sim.add_argument("--reset-probability", type=float, default=0.0, help="chance of a counter reset per sample")
    sim.add_argument("--without-counter", type=_index_list, default=[],
                     help="GPU indices simulated without an energy counter (power integration)")
    stream.add_argument("--quiet", action="store_true", help="no progress bar")
    stream.add_argument("-v", "--verbose", action="store_true")

    drain = commands.add_parser("drain", help="send what the spool holds (after an outage or a token fix), then "
                                "exit")
    drain.add_argument("--node", default=None, help="node name (default: host name); picks the default spool")
    add_broker_options(drain, drain_default_s=60.0,
                       drain_help="how long to keep trying when the app is down or busy (default 60s)")
    drain.add_argument("-v", "--verbose", action="store_true")

    probe = commands.add_parser("probe", help="list the GPUs and energy counters this machine has")
    probe.add_argument("--backend", choices=BACKENDS, default="nvml")
    probe.add_argument("--gpus", default=None, help="simulated: how many GPUs")
    probe.add_argument("--node", default=None)
    probe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cli_local.add_upload_parser(commands)
    cli_planning.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="wattwise-agent: %(levelname)s: %(message)s", stream=sys.stderr)
    if args.command == "drain":
        return drain_command(args)
    if args.command == "upload":
        return cli_local.upload_command(args)
    if args.command == "probe":
        return probe_command(args)
    if args.command in cli_planning.COMMANDS:
        return cli_planning.run(args)
    return stream_command(args)


def _fail(message: str, code: int) -> int:
    print(f"wattwise-agent: {message}", file=sys.stderr)
    return code


def _make_backend(args: argparse.Namespace, node: str) -> GpuBackend:
    if args.backend == "simulated":
        from wattwise_agent.backends.simulated import SimulatedBackend

        try:
            count = int(args.gpus) if args.gpus else 1
        except ValueError:
            raise BackendUnavailable("--gpus for the simulated backend is a number of GPUs") from None
        return SimulatedBackend(
            count,
            node=node,
            seed=getattr(args, "seed", 0),
            reset_at_s=getattr(args, "reset_at", None),
            reset_probability=getattr(args, "reset_probability", 0.0),
            without_counter=getattr(args, "without_counter", []),
        )
    if args.backend == "amdsmi":
        from wattwise_agent.backends.amdsmi import AmdSmiBackend

        return AmdSmiBackend(args.gpus.split(",") if args.gpus else None)
    from wattwise_agent.backends.nvml import NvmlBackend

    return NvmlBackend(args.gpus.split(",") if args.gpus else None)


def _token_and_transport(args: argparse.Namespace) -> tuple[str, HttpTransport | CeleryTransport]:
    """What a sending command signs with and sends through; ValueError says what is missing or wrong."""
    token = args.token or os.environ.get("WATTWISE_TOKEN")
    if not token:
        raise ValueError("no node token: set WATTWISE_TOKEN or pass --token")
    return token, transport_from_args(args)


def stream_command(args: argparse.Namespace) -> int:
    recording = RunFile(args.out) if args.out is not None else None
    transport: HttpTransport | CeleryTransport | RunFile
    token: str | None
    try:
        if recording is not None and cli_local.records_only(args):
            token, transport = args.token or os.environ.get("WATTWISE_TOKEN"), recording  # signed at upload if None
        else:
            token, transport = _token_and_transport(args)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    if (args.start or args.fast) and args.backend != "simulated":
        return _fail("--start and --fast replay a simulated run: use them with --backend simulated", EXIT_USAGE)
    if args.start and not args.fast:
        return _fail("--start replays a past period: add --fast", EXIT_USAGE)
    if args.fast and args.duration is None:
        return _fail("--fast needs --duration (simulated time, e.g. 30s, 5m, 3h)", EXIT_USAGE)
    node = args.node or socket.gethostname()
    try:
        backend = _make_backend(args, node)
    except (BackendUnavailable, ValueError) as exc:
        transport.close()
        return _fail(str(exc), EXIT_UNAVAILABLE if isinstance(exc, BackendUnavailable) else EXIT_USAGE)
    if args.fast:
        # Without --start, replay the most recent period: the app refuses samples from the future.
        start = args.start or datetime.now(timezone.utc) - timedelta(seconds=args.duration)
        clock: Clock = VirtualClock(epoch_ms(start))
    else:
        clock = RealClock()
    # A stream that only records keeps its messages out of the node's spool (they may be unsigned).
    spool = None if transport is recording else DiskSpool(args.spool_dir or default_spool_dir(node))
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    try:
        try:
            streamer = Streamer(
                backend, transport, run=args.run, token=token, node=node, clock=clock, rate_hz=args.rate,
                window_s=args.window, spool=spool if spool is not None else MemorySpool(), tags=args.tag,
                drain_timeout_s=args.drain_timeout, zone=args.zone, region=args.region,
                record=recording if spool is not None else None,
                node_energy=node_energy(node, cpu=args.cpu, simulated=backend.simulated, root=args.rapl_root),
                # Also for --fast replays: sampling goes on while a request is out, and what queued up
                # meanwhile goes in the next request.
                threaded=True,
            )
        except ValueError as exc:
            return _fail(str(exc), EXIT_USAGE)
        progress, done = _progress_bar(args, clock)
        try:
            streamer.open()
            streamer.run(args.duration, stop=stop, progress=progress)
        except TokenRejected:
            pass  # sampling stopped; close() keeps what was sampled in the spool
        finally:
            done()
        summary = streamer.close()
    finally:
        restore()
        backend.close()
        transport.close()
        if recording is not None:
            recording.close()
    if spool is None:
        assert recording is not None
        return cli_local.report_recording(summary, recording)
    if summary.token_rejected is not None:
        print(f"wattwise-agent: token rejected (401): {summary.token_rejected}", file=sys.stderr)
        print(f"wattwise-agent: sampling stopped; {summary.spooled} envelope(s) kept in the spool {spool.directory}. "
              "Fix WATTWISE_TOKEN (`manage.py create_node NODE --project PROJECT --rotate` issues a new one) and "
              "run again: the next run sends them first, signed with the new token", file=sys.stderr)
    elif summary.spooled:
        print(f"wattwise-agent: could not deliver: {summary.spooled} envelope(s) left in the spool "
              f"{spool.directory}; the next run sends them first", file=sys.stderr)
    if summary.refused:
        print(f"wattwise-agent: the app refused {summary.refused} envelope(s) for good; they are kept with its "
              f"reasons in {spool.refused_path}", file=sys.stderr)
    print(json.dumps(summary.exit_line()), flush=True)
    return EXIT_TOKEN_REJECTED if summary.token_rejected is not None else EXIT_OK


def drain_command(args: argparse.Namespace) -> int:
    """Send the spool's envelopes (signed again with this token where another signed them); exit 0 when it
    is empty, 1 when some remain (the app is down or busy), 3 when the app rejects the token."""
    try:
        token, transport = _token_and_transport(args)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    node = args.node or socket.gethostname()
    spool = DiskSpool(args.spool_dir or default_spool_dir(node))
    outbox = Outbox(transport, spool, reseal=signed_with(token))
    try:
        remaining = outbox.flush(args.drain_timeout)
    finally:
        transport.close()
    print(json.dumps({"node": node, "spool": str(spool.directory), "sent": outbox.delivered, "spooled": remaining,
                      "refused": outbox.refused}), flush=True)
    if outbox.fatal is not None:
        return _fail(f"{outbox.fatal}; the spool keeps them", EXIT_TOKEN_REJECTED)
    if outbox.refused:
        print(f"wattwise-agent: the app refused {outbox.refused} envelope(s) for good; they are kept with its "
              f"reasons in {spool.refused_path}", file=sys.stderr)
    if remaining:
        return _fail(f"could not deliver: {remaining} envelope(s) left in the spool {spool.directory}",
                     EXIT_UNAVAILABLE)
    return EXIT_OK


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM end the stream cleanly (last window and close_run sent); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _progress_bar(args: argparse.Namespace, clock: Clock) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    if not args.fast or args.quiet:
        return None, lambda: None
    from tqdm import tqdm

    total_s = float(args.duration)
    bar = tqdm(total=round(total_s, 1), unit="sim s", file=sys.stderr, desc=f"replaying {args.run}",
               mininterval=0.5, leave=False)
    origin = clock.now_ms()
    shown = [0.0]

    def progress(t_ms: int) -> None:
        elapsed = min((t_ms - origin) / 1000, total_s)
        if elapsed - shown[0] >= 1.0 or elapsed >= total_s:
            bar.update(round(elapsed - shown[0], 1))
            shown[0] = elapsed

    return progress, bar.close


def probe_command(args: argparse.Namespace) -> int:
    node = args.node or socket.gethostname()
    gpus: list[dict[str, Any]]
    try:
        if args.backend in ("simulated", "amdsmi"):
            backend = _make_backend(args, node)
            readings = backend.read(RealClock().now_ms())
            backend.close()
            gpus = [
                {**gpu.open_run_entry(), "energy_counter": r is not None and r.energy_mj is not None,
                 "energy_mj": r.energy_mj if r else None, "selected": True}
                for gpu, r in zip(backend.gpus, readings)
            ]
        else:
            from wattwise_agent.backends.nvml import probe

            gpus = probe()
    except BackendUnavailable as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    if args.json:
        print(json.dumps({"backend": args.backend, "gpus": gpus}, indent=2))
        return EXIT_OK
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = "(unset: all GPUs)" if visible is None else repr(visible)
    print(f"{args.backend}: {len(gpus)} GPU(s); CUDA_VISIBLE_DEVICES={shown}")
    for gpu in gpus:
        counter = f"yes, {gpu['energy_mj']} mJ" if gpu["energy_counter"] else "no (power integration, estimated)"
        print(
            f"  [{gpu['index']}] {gpu['uuid']}  {gpu['name']}  arch={gpu['architecture']}\n"
            f"      energy counter: {counter}; power: {gpu['power_field']} ({gpu['power_scope']} scope); "
            f"MIG: {'enabled (whole GPU reported once)' if gpu['mig_enabled'] else 'off'}; "
            f"{'selected' if gpu['selected'] else 'not selected'}"
        )
    return EXIT_OK
