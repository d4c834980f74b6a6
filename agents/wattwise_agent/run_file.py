"""Run files: a stream's messages kept on disk, to be uploaded later (``wattwise-agent upload FILE``).

A run file is JSON lines. Each recording session starts with a header line, then holds one envelope per
line, in the order the stream made them (``open_run``, the batches, ``close_run``)::

    {"wattwise_run_file": 1, "agent_version": "0.1.0", "created_at": "2026-01-01T00:00:00+00:00"}
    {"v": 1, "kind": "open_run", "node": "laptop", "body": "{\\"run\\":\\"gpt-small\\",...}"}
    {"v": 1, "kind": "batch", "node": "laptop", "body": "{...}"}
    ...

An envelope is exactly what the agent sends (``wattwise_agent.wire``), signed (``key``, ``sig``) when the
recorder had a token, unsigned when it had none: the upload signs every envelope with the token it is
given (``wattwise_agent.outbox.signed_with``), so a run recorded with no token yet uploads with one later.
Signing covers the ``body`` text unchanged, so an upload stores the very batches that were recorded,
and the app's receipts ((node, stream, seq) and the body's digest) make a second upload store nothing.

Lines are appended whole and flushed one by one (a process that dies leaves every line written before);
several sessions may append to one file (``stream --out`` run twice). ``read_run_file`` checks every line
against the wire's models before anything is sent: a damaged or cut-off file is refused, naming the line.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wattwise_agent import __version__, wire
from wattwise_agent.spool import Envelope
from wattwise_agent.transport import TransportUnavailable

FORMAT = 1
HEADER_KEY = "wattwise_run_file"
SUFFIX = ".jsonl"


def default_runs_dir() -> Path:
    """``$WATTWISE_RUNS_DIR``, else ``~/.wattwise/runs``."""
    configured = os.environ.get("WATTWISE_RUNS_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".wattwise" / "runs"


def default_run_path(run: str, stream: str) -> Path:
    """``<runs dir>/<run>-<stream>.jsonl`` (the run name made safe for a file name)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run).strip(".") or "run"
    return default_runs_dir() / f"{safe[:100]}-{stream}{SUFFIX}"


def unsigned_envelope(kind: str, node: str, payload: Mapping[str, Any]) -> Envelope:
    """An envelope without ``key`` and ``sig``, for a run file kept without a token (signed at upload).

    The payload is checked with the wire's models first, as ``wire.seal`` does: what is recorded is what
    the app will accept.
    """
    if kind not in wire.PAYLOADS:
        raise wire.WireError(f"unknown message kind {kind!r}")
    wire.parse(wire.PAYLOADS[kind], payload)
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return {"v": wire.WIRE_VERSION, "kind": kind, "node": node, "body": body}


class RunFile:
    """Appends envelopes to a run file; also a transport (``send``), for a stream with no app to send to.

    The file (and its directory) are created on the first envelope, readable by the user only.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self.written = 0
        self._handle: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RunFile({str(self.path)!r})"

    def send(self, envelope: Envelope) -> None:
        line = json.dumps(envelope, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                if self._handle is None:
                    self._open()
                self._handle.write(line)
                self._handle.flush()
            except OSError as exc:
                raise TransportUnavailable(f"cannot write the run file {self.path}: {exc}") from exc
            self.written += 1

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        header = {HEADER_KEY: FORMAT, "agent_version": __version__,
                  "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._handle.write(json.dumps(header) + "\n")

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                try:
                    self._handle.flush()
                    os.fsync(self._handle.fileno())
                finally:
                    self._handle.close()
                    self._handle = None


class RunFileError(ValueError):
    """A file that is not a readable run file; the text names the file, the line and what is wrong."""


@dataclass
class StreamRecord:
    """One stream of a run file, as its envelopes describe it."""

    run: str
    stream: str
    node: str
    opened: bool = False
    closed: bool = False
    declared_last_seq: int | None = None
    declared_samples: int | None = None
    seqs: list[int] = field(default_factory=list)
    samples: int = 0
    zone: str | None = None
    region: str | None = None


@dataclass
class Recording:
    """A checked run file: its streams, and its envelopes read again, in order, when they are sent."""

    path: Path
    messages: int  # envelopes in the file
    streams: dict[str, StreamRecord]

    @property
    def runs(self) -> list[str]:
        return sorted({s.run for s in self.streams.values()})

    @property
    def batches(self) -> int:
        return sum(len(s.seqs) for s in self.streams.values())

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.streams.values())

    @property
    def unclosed(self) -> list[str]:
        """Streams without ``close_run``: the recording stopped before the stream ended (the process died)."""
        return [s.stream for s in self.streams.values() if not s.closed]

    def envelopes(self) -> Iterator[Envelope]:
        """The envelopes, in file order, one line at a time (a long run's file need not fit in memory)."""
        for _number, item in _items(self.path):
            if HEADER_KEY not in item:
                yield {k: item[k] for k in _ENVELOPE_KEYS if k in item}


_ENVELOPE_KEYS = ("v", "kind", "node", "key", "body", "sig")


def _items(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) of each non-blank line; RunFileError for a line that is not JSON."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, also when the reader stops early
    except OSError as exc:
        raise RunFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except ValueError as exc:
                if not raw.endswith(b"\n") and not handle.read(1):
                    raise RunFileError(
                        f"{path}:{number}: the last line is cut off (the recording stopped while writing it); "
                        f"nothing was sent. Lines 1-{number - 1} are whole: keep them (head -n {number - 1}) to "
                        "upload those"
                    ) from None
                raise RunFileError(f"{path}:{number}: not a JSON line ({exc}); nothing was sent") from None


def read_run_file(path: Path | str) -> Recording:
    """Read and check a whole run file, line by line; raise RunFileError for anything the upload must not send."""
    path = Path(path)
    streams: dict[str, StreamRecord] = {}
    seen_header = False
    messages = 0
    for number, item in _items(path):
        where = f"{path}:{number}"
        if isinstance(item, dict) and HEADER_KEY in item:
            if item[HEADER_KEY] != FORMAT:
                raise RunFileError(f"{where}: run file format {item[HEADER_KEY]!r}, this agent reads format {FORMAT}: "
                                   "upgrade wattwise-agent")
            seen_header = True
            continue
        if not seen_header:
            raise RunFileError(f"{where}: not a Wattwise run file (it must start with a {HEADER_KEY!r} header line)")
        try:
            envelope, payload = _check_envelope(item)
        except wire.WireError as exc:
            raise RunFileError(f"{where}: {exc}; nothing was sent") from None
        _note(streams, envelope, payload, where)
        messages += 1
    if messages == 0:
        raise RunFileError(f"{path} is empty: no run was recorded in it")
    for record in streams.values():
        _check_complete(path, record)
    return Recording(path, messages, streams)


def _check_envelope(item: Any) -> tuple[Envelope, Any]:
    """An envelope line's own fields (signature, if any, unchecked: the upload signs) and its parsed payload."""
    if not isinstance(item, dict):
        raise wire.WireError("not an envelope (a JSON object)")
    envelope = {k: item[k] for k in _ENVELOPE_KEYS if k in item}
    signed = "sig" in envelope
    # The envelope model needs a signature; an unsigned one is checked with a placeholder in its place.
    wire.read_envelope(envelope if signed else {**envelope, "sig": "0" * 64})
    try:
        decoded = json.loads(envelope["body"])
    except ValueError as exc:
        raise wire.WireError(f"body is not valid JSON: {exc}") from None
    kind = envelope["kind"]
    try:
        return envelope, wire.parse(wire.PAYLOADS[kind], decoded)
    except wire.WireError as exc:
        raise wire.WireError(f"{kind} message: {exc}") from None


def _note(streams: dict[str, StreamRecord], envelope: Envelope, payload: Any, where: str) -> None:
    if isinstance(payload, wire.StageProfile):
        return
    record = streams.setdefault(payload.stream, StreamRecord(payload.run, payload.stream, envelope["node"]))
    if record.closed:
        raise RunFileError(f"{where}: a {envelope['kind']} after stream {payload.stream}'s close_run; the file "
                           "was edited or assembled wrongly")
    if isinstance(payload, wire.OpenRun):
        record.opened, record.zone, record.region = True, payload.zone, payload.region
    elif isinstance(payload, wire.Batch):
        if payload.seq in record.seqs:
            raise RunFileError(f"{where}: batch {payload.seq} of stream {payload.stream} appears twice")
        record.seqs.append(payload.seq)
        record.samples += payload.samples
    elif isinstance(payload, wire.CloseRun):
        record.closed = True
        record.declared_last_seq, record.declared_samples = payload.last_seq, payload.samples_sent


def _check_complete(path: Path, record: StreamRecord) -> None:
    """A closed stream must hold every batch its close_run declares: else lines were lost."""
    if not record.closed:
        return
    expected = [] if record.declared_last_seq is None else list(range(record.declared_last_seq + 1))
    if sorted(record.seqs) != expected or (
        record.declared_samples is not None and record.declared_samples != record.samples
    ):
        raise RunFileError(
            f"{path}: stream {record.stream} of run {record.run!r} declares {len(expected)} batch(es) and "
            f"{record.declared_samples} samples in its close_run, but the file holds {len(record.seqs)} and "
            f"{record.samples}: lines are missing; nothing was sent"
        )
