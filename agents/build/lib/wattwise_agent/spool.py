"""The spool: an on-disk queue of envelopes kept while the broker is unreachable, replayed in order.

One file per envelope, named by a zero-padded sequence number so that name order is send order, even
across agent restarts: the next run drains what an earlier one left before sending anything new.
Files are written whole (temporary file, fsync, rename, fsync of the directory), so a crash leaves
either the complete envelope or nothing. Agents of several jobs on one node may share a spool; an
advisory lock (flock) serialises numbering and draining between them.

Delivery is at least once: an envelope is deleted only after the app (or the broker) took it, so a crash
between the two re-sends it on the next run, which the app's idempotent ingest absorbs. An envelope the app
can never accept is moved, with the app's reason, to ``refused.jsonl`` in the same directory: out of the
queue's way, never lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

Envelope = dict[str, Any]
_SUFFIX = ".json"
_DIGITS = 16
REFUSED_FILE = "refused.jsonl"


def default_spool_dir(node: str) -> Path:
    """``$XDG_CACHE_HOME/wattwise/spool/<node>``, by default under ``~/.cache``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in node) or "node"
    return Path(cache) / "wattwise" / "spool" / safe


class Spool(Protocol):
    def put(self, envelope: Envelope) -> None: ...

    def drain(self, send: Callable[[Envelope], None]) -> int:
        """Send envelopes oldest first, removing each once sent; stop at the first exception (re-raised)."""
        ...

    def drain_many(self, send_many: Callable[[list[Envelope]], None], *, max_envelopes: int, max_bytes: int) -> int:
        """As ``drain``, handing over up to ``max_envelopes`` (about ``max_bytes`` of JSON) at a time."""
        ...

    def refuse(self, envelope: Envelope, status: int, reason: str) -> None:
        """Keep an envelope the app will never accept, with its reason, apart from the queue."""
        ...

    def __len__(self) -> int: ...


def refusal_record(envelope: Envelope, status: int, reason: str) -> dict[str, Any]:
    return {"refused_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": status, "reason": reason,
            "envelope": envelope}


class MemorySpool:
    """An in-memory spool, for in-process use where nothing needs to survive the process."""

    def __init__(self) -> None:
        self._items: deque[Envelope] = deque()
        self.refused: list[dict[str, Any]] = []

    def put(self, envelope: Envelope) -> None:
        self._items.append(envelope)

    def drain(self, send: Callable[[Envelope], None]) -> int:
        sent = 0
        while self._items:
            send(self._items[0])
            self._items.popleft()
            sent += 1
        return sent

    def drain_many(self, send_many: Callable[[list[Envelope]], None], *, max_envelopes: int, max_bytes: int) -> int:
        sent = 0
        while self._items:
            chunk = [self._items[i] for i in range(min(max_envelopes, len(self._items)))]
            send_many(chunk)
            for _ in chunk:
                self._items.popleft()
            sent += len(chunk)
        return sent

    def refuse(self, envelope: Envelope, status: int, reason: str) -> None:
        self.refused.append(refusal_record(envelope, status, reason))

    def __len__(self) -> int:
        return len(self._items)


class DiskSpool:
    """The on-disk spool in ``directory`` (created, private to the user)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_path = self.directory / ".lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _names(self) -> list[str]:
        return sorted(
            n for n in os.listdir(self.directory) if n.endswith(_SUFFIX) and n[:_DIGITS].isdigit()
        )

    def __len__(self) -> int:
        return len(self._names())

    def put(self, envelope: Envelope) -> None:
        data = json.dumps(envelope, separators=(",", ":")).encode()
        with self._locked():
            names = self._names()
            number = int(names[-1][:_DIGITS]) + 1 if names else 1
            final = self.directory / f"{number:0{_DIGITS}d}{_SUFFIX}"
            temp = self.directory / f".tmp-{os.getpid()}-{number}"
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
            self._fsync_directory()

    def drain(self, send: Callable[[Envelope], None]) -> int:
        sent = 0
        while True:
            with self._locked():
                names = self._names()
                if not names:
                    return sent
                path = self.directory / names[0]
                envelope = self._load(path)
                if envelope is None:
                    continue
                send(envelope)
                path.unlink(missing_ok=True)
            sent += 1

    def drain_many(self, send_many: Callable[[list[Envelope]], None], *, max_envelopes: int, max_bytes: int) -> int:
        sent = 0
        while True:
            with self._locked():
                names = self._names()
                if not names:
                    return sent
                paths: list[Path] = []
                envelopes: list[Envelope] = []
                size = 0
                for name in names[:max_envelopes]:
                    path = self.directory / name
                    file_bytes = path.stat().st_size
                    if envelopes and size + file_bytes > max_bytes:
                        break
                    envelope = self._load(path)
                    if envelope is not None:
                        paths.append(path)
                        envelopes.append(envelope)
                        size += file_bytes
                if not envelopes:
                    continue
                send_many(envelopes)
                for path in paths:
                    path.unlink(missing_ok=True)
            sent += len(envelopes)

    @property
    def refused_path(self) -> Path:
        return self.directory / REFUSED_FILE

    def refuse(self, envelope: Envelope, status: int, reason: str) -> None:
        line = json.dumps(refusal_record(envelope, status, reason), separators=(",", ":")).encode() + b"\n"
        # Locked on its own (a drain holding the spool's lock calls this): one whole line per refusal.
        with open(self.refused_path, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self, path: Path) -> Envelope | None:
        try:
            envelope = json.loads(path.read_bytes())
            if isinstance(envelope, dict):
                return envelope
        except (OSError, ValueError):
            pass
        # Never let one unreadable file block the queue: set it aside for a person to look at.
        bad = self.directory / "bad"
        bad.mkdir(exist_ok=True)
        os.replace(path, bad / path.name)
        log.error("spool file %s is unreadable; moved to %s", path.name, bad)
        return None

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
