"""Services of the test's own, to break on purpose: a PostgreSQL cluster (initdb) and a Redis server, each on
a free port in a temporary directory, stopped and started again by the test; a network link to a shared
service (RabbitMQ) that the test cuts; a Celery worker kept running as a supervisor (compose's ``restart:
unless-stopped``) would keep it; and a way to point this process's Django at that PostgreSQL for reading what
the worker stored.

PostgreSQL refuses to run as root: as root, its programs run as the ``postgres`` user (``setpriv``, which
execs, so the process we hold is the server itself and a signal reaches it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _stop(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PrivatePostgres:
    """A PostgreSQL cluster of its own; ``stop`` is a fast shutdown (connections are cut, as in a restart)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.data = directory / "pgdata"
        self.log = directory / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._as_postgres = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
            os.chown(directory, user.pw_uid, user.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run([*self._as_postgres, _pg_program("initdb"), "-D", str(self.data), "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*self._as_postgres, _pg_program("postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.accepts, 60, f"PostgreSQL on port {self.port}")

    def stop(self) -> None:
        _stop(self.process, signal.SIGINT)  # fast shutdown: every session is ended, as a restart ends them

    def accepts(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url("postgres"), connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')


def _pg_program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        if not versions:
            raise RuntimeError(f"{name} (PostgreSQL's server programs) is not installed")
        found = str(versions[-1])
    return found


class PrivateRedis:
    """A Redis server of its own with its append-only file on (as in docker-compose.yml), so queued messages
    survive ``stop`` and ``start``; with ``password``, clients must give it (``url`` does)."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile",
             str(self.directory / "redis.log"), *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.accepts, 30, f"Redis on port {self.port}")

    def stop(self) -> None:
        _stop(self.process)  # SIGTERM: Redis writes what it holds and exits

    def accepts(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url(), socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


class CuttableLink:
    """A TCP relay from a free port to a service at ``127.0.0.1:target_port``, as a network link the test can
    ``cut`` (every connection through it closed, new ones closed as they come) and ``mend``: an outage of a
    shared service (RabbitMQ) that only this test's clients see."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = int(self.server.getsockname()[1])
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._cut.set()
        self._close_open()

    def mend(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self._close_open()
        self.server.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                service = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            service.settimeout(None)
            with self._lock:
                self._open += [client, service]
            threading.Thread(target=self._relay, args=(client, service), daemon=True).start()
            threading.Thread(target=self._relay, args=(service, client), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def _close_open(self) -> None:
        with self._lock:
            ends, self._open = self._open, []
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


class SupervisedWorker:
    """``celery -A dashboard worker`` as compose runs it (threads pool, beat embedded here), started again
    whenever it exits unless ``stop`` was called: a worker that dies is replaced, as a supervisor does.
    ``exits`` lists each unexpected exit with the end of its log."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[str] = []
        self._stopping = threading.Event()
        self._starts = 0
        self._lock = threading.Lock()
        self._watch = threading.Thread(target=self._supervise, daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watch.start()

    def _spawn(self) -> None:
        self._starts += 1
        log = open(self.directory / f"worker-{self._starts}.log", "wb")  # noqa: SIM115 - the child holds it
        command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-P", "threads", "-c", "4",
                   "-B", "-s", str(self.directory / "beat-schedule"), "-l", "WARNING",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            with self._lock:
                if self.process is not None and self.process.poll() is not None:
                    log = (self.directory / f"worker-{self._starts}.log").read_text(errors="replace")
                    self.exits.append(f"exit {self.process.returncode}: {log[-3000:]}")
                    self._spawn()

    def kill_hard(self) -> None:
        """SIGKILL the worker and its children: no chance to acknowledge, roll back or clean up."""
        with self._lock:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.exits.append("killed with SIGKILL by the test")
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        self._watch.join(timeout=5)
        _stop(self.process, timeout_s=20)

    def log_tail(self, chars: int = 4000) -> str:
        return (self.directory / f"worker-{self._starts}.log").read_text(errors="replace")[-chars:]


@contextmanager
def django_reads(database_url: str) -> Iterator[None]:
    """Point this process's default database connection at ``database_url`` for the duration (reads, and
    registering nodes), then back at what it was."""
    import dj_database_url
    from django.db import connections

    connection = connections["default"]
    saved = dict(connection.settings_dict)
    parsed = dj_database_url.parse(database_url)
    connection.close()
    connection.settings_dict.update({key: parsed[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def scratch_directory() -> Path:
    """A directory any user can enter (the postgres user must reach its data directory inside), with one
    subdirectory per service: ``postgres``, ``redis``, ``worker``, ``agents``."""
    directory = Path(tempfile.mkdtemp(prefix="wattwise-faults-"))
    directory.chmod(0o755)
    for name in ("postgres", "redis", "worker", "agents"):
        (directory / name).mkdir()
    return directory
