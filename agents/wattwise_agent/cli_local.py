"""Command-line pieces for working without the app: ``stream --out FILE`` and ``upload FILE``.

Thin over :mod:`wattwise_agent.run_file` and :mod:`wattwise_agent.run_upload`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from wattwise_agent.cli_options import parse_duration_s, transport_from_args
from wattwise_agent.run_file import Recording, RunFile, RunFileError, read_run_file
from wattwise_agent.run_upload import upload_recording
from wattwise_agent.streamer import StreamSummary

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2
EXIT_TOKEN_REJECTED = 3


def add_out_option(stream: argparse.ArgumentParser) -> None:
    stream.add_argument("--out", type=Path, default=None, help="keep every message in this run file (JSON lines, "
                        "appended) as well as sending it; with no --url or --broker-url (nor their variables): "
                        "only keep them, no token needed, to send later with `wattwise-agent upload FILE`")


def records_only(args: argparse.Namespace) -> bool:
    """``stream --out FILE`` with nowhere to send: the run is only recorded."""
    return (args.out is not None and not (args.url or os.environ.get("WATTWISE_URL"))
            and not (args.broker or os.environ.get("WATTWISE_BROKER_URL")))


def report_recording(summary: StreamSummary, recording: RunFile) -> int:
    """Say where a recorded-only stream is and how to send it; print the exit line; return the exit code."""
    if summary.spooled:
        print(f"wattwise-agent: could not write {summary.spooled} message(s) to {recording.path} (see the errors "
              "above); the file holds the others", file=sys.stderr)
    else:
        print(f"wattwise-agent: run {summary.run!r} recorded in {recording.path}; send it with "
              f"`wattwise-agent upload {recording.path}`", file=sys.stderr)
    print(json.dumps(summary.exit_line()), flush=True)
    return EXIT_UNAVAILABLE if summary.spooled else EXIT_OK


def add_upload_parser(commands: Any) -> None:
    upload = commands.add_parser("upload", help="send a run file (recorded with no app, or by `stream --out`) to "
                                 "the app; uploading twice stores nothing twice")
    upload.add_argument("file", type=Path, help="the run file (e.g. ~/.wattwise/runs/<run>-<stream>.jsonl)")
    upload.add_argument("--token", default=None, help="token that signs every message (default: $WATTWISE_TOKEN; "
                        "a node's own or a project enrolment token)")
    upload.add_argument("--url", default=None, help="the app's URL (default: $WATTWISE_URL)")
    upload.add_argument("--broker-url", "--broker", dest="broker", default=None,
                        help="publish to this broker instead, on a trusted network (default: $WATTWISE_BROKER_URL)")
    upload.add_argument("--ca-bundle", default=None, help="PEM file of certificate authorities to trust "
                        "(default: $WATTWISE_CA_BUNDLE, else the system's)")
    upload.add_argument("--timeout", type=parse_duration_s, default=60.0,
                        help="how long to keep trying when the app is down or busy (default 60s)")
    upload.add_argument("--connect-timeout", type=parse_duration_s, default=None,
                        help="connection timeout (default 5s for the app's URL, 1.5s for a broker)")
    upload.add_argument("-v", "--verbose", action="store_true")


def upload_command(args: argparse.Namespace) -> int:
    """Exit 0 when the app took every message, 1 when some could not be delivered or were refused, 2 for a
    bad file or missing settings (nothing sent), 3 when the app rejects the token."""
    try:
        recording = read_run_file(args.file)
    except RunFileError as exc:
        return _fail(str(exc), EXIT_USAGE)
    token = args.token or os.environ.get("WATTWISE_TOKEN")
    if not token:
        return _fail("no token: the upload signs every message with it: set WATTWISE_TOKEN or pass --token",
                     EXIT_USAGE)
    try:
        transport = transport_from_args(args)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        report = upload_recording(recording, transport, token=token, timeout_s=args.timeout)
    finally:
        transport.close()
    _tell_unclosed(recording)
    print(json.dumps(report.as_dict()), flush=True)
    total = recording.messages
    if report.token_rejected is not None:
        return _fail(f"token rejected (401): {report.token_rejected}; {report.sent} of {total} message(s) were "
                     "sent before it. Upload again with the right token: nothing is stored twice",
                     EXIT_TOKEN_REJECTED)
    for refusal in report.refused:
        print(f"wattwise-agent: the app refused a {refusal['envelope'].get('kind')} message for good "
              f"({refusal['status']}): {refusal['reason']}", file=sys.stderr)
    if report.unsent:
        return _fail(f"could not deliver {report.unsent} of {total} message(s) (the app is down or busy); the file "
                     "is unchanged: upload it again, nothing is stored twice", EXIT_UNAVAILABLE)
    return EXIT_UNAVAILABLE if report.refused else EXIT_OK


def _tell_unclosed(recording: Recording) -> None:
    for stream in recording.unclosed:
        record = recording.streams[stream]
        print(f"wattwise-agent: stream {stream} of run {record.run!r} has no close_run: the recording stopped "
              f"before the run ended (was the process killed?); its {len(record.seqs)} batch(es) are sent, and "
              "the app shows the run as still running", file=sys.stderr)


def _fail(message: str, code: int) -> int:
    print(f"wattwise-agent: {message}", file=sys.stderr)
    return code
