"""End-to-end ingest benchmark: simulated agents → (gunicorn →) Redis → consumer or Celery worker → PostgreSQL.

Run with ``make bench-ingest`` (it starts the services and points DATABASE_URL and CELERY_BROKER_URL at a
benchmark database and Redis DB); ``BENCH_ARGS=--http`` sends over HTTP, as nodes do by default. It:

1. migrates and empties the benchmark database, registers the nodes, empties the broker DB;
2. with ``--http``, starts gunicorn (``dashboard.wsgi``) whose web processes queue each envelope to Redis;
3. starts what consumes the telemetry queue in subprocesses: ``manage.py consume_telemetry`` (the coalescing
   consumer, ``--concurrency`` of them; the clock starts once each says it is ready), or with
   ``--consumer celery`` a real Celery worker (``celery -A dashboard worker``);
4. starts one agent per node (``python -m wattwise_agent stream --backend simulated --fast``, with ``--url`` to
   gunicorn or ``--broker-url`` to Redis), each replaying a past period as fast as it can, so the
   publishers push as hard as this machine allows;
5. samples the stored sample count every second until everything sent is stored;
6. checks nothing was lost: stored samples equal the agents' ``samples_sent``, nothing was left spooled or
   refused, no rejections, and every GPU's stored energy equals the simulator's ground truth.

``--prefill`` separates the load generator from the server: with the broker, the agents publish
everything before the worker starts; with ``--http``, they spool everything (nothing listens at the URL
they are given), then ``python -m wattwise_agent drain`` sends the spools through gunicorn while the worker runs.

It also counts the CPU time (utime + stime from ``/proc/PID/stat``) of every server process from the
moment the agents start to the last sample stored: the web processes, the Celery worker and its children,
the PostgreSQL backends serving the benchmark database (sampled every 0.2 s, so backends that exit are
counted too) and redis-server, and prints it per million samples stored. Start-up (the worker's and
gunicorn's imports before the agents start) is printed apart. Redis serves other databases too: what
other users of the same redis-server do meanwhile is counted with it.

Before any of that, it compiles the bytecode of the app and of the packages it imports, as installing them into
an image does (``pip install``; the Dockerfile compiles the app's own): with ``PYTHONDONTWRITEBYTECODE`` set
and nothing compiled (``make install-dev`` installs with ``--no-compile``), each process would compile every
module it imports at each start: 3.5 core-s for a consumer's start, against 1.6 compiled.

Then, unless ``--no-compact``, it compacts every window as the beat task ``telemetry.compact_windows`` would
an hour after each chunk (the agents replayed a day ago), and prints the compaction's CPU (this process and its
database backend) per million samples, the storage after it, and the storage once ``VACUUM FULL`` has given
back the space the joined windows took.

It ends with three lines, as issue 14 asks: ``ingest: N samples/s`` (samples stored divided by the time from the
agents' start to the last sample stored; agents and server share this machine's cores), ``server cpu: N core-s
per million samples`` (ingest's, plus compaction's unless ``--no-compact``: what the server spends to keep the
samples as it keeps them) and ``storage: N bytes/sample`` (the database as kept: compacted, then
``VACUUM FULL``, unless ``--no-compact``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_wire import REFERENCE_DECODE_US, reference_decode_us  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", action="store_true", help="agents send to gunicorn over HTTP (default: to Redis)")
    parser.add_argument("--nodes", type=int, default=4, help="simulated agents (one process each)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--duration", default="3h", help="simulated time each agent replays (default 3h)")
    parser.add_argument("--rate", type=float, default=10.0, help="samples per second per GPU (agent default 10)")
    parser.add_argument("--window", default="5s", help="agent batch window (agent default 5s)")
    parser.add_argument("--consumer", default="coalescing", choices=["coalescing", "celery"],
                        help="what consumes the telemetry queue: `manage.py consume_telemetry` (every message "
                             "waiting stored as one unit of work; --concurrency processes), or a Celery worker "
                             "(one message at a time, the way before issue 14)")
    parser.add_argument("--no-compact", action="store_true", help="leave the windows as stored (no compaction step)")
    parser.add_argument("--poll-s", type=float, help="the coalescing consumer's --poll-s (default: its own)")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=8, help="worker prefetch multiplier")
    parser.add_argument("--web-workers", type=int, default=2, help="--http: gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=2, help="--http: threads per gunicorn worker (gthread)")
    parser.add_argument("--web-class", default="gthread", choices=["gthread", "sync"], help="--http: gunicorn worker class")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--prefill", action="store_true",
                        help="publish everything first, then start the worker: measures how fast the worker "
                             "drains Redis into PostgreSQL when it has the machine to itself. With --http the "
                             "agents spool everything first, then `python -m wattwise_agent drain` sends it through "
                             "gunicorn while the worker runs: the server's path without the simulator beside it")
    return parser.parse_args()


def stored_samples() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(samples), 0) FROM dashboard_batchreceipt")
        return int(cursor.fetchone()[0])


def rate_windows(points: list[tuple[float, int]], width_s: float) -> list[float]:
    """Samples/s over consecutive windows of ``width_s`` seconds."""
    rates, start = [], 0
    for i, (t, count) in enumerate(points):
        if t - points[start][0] >= width_s:
            rates.append((count - points[start][1]) / (t - points[start][0]))
            start = i
    return rates


# --- server CPU --------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(process group, utime + stime in clock ticks) of a live process, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[2]), int(fields[11]) + int(fields[12])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class CpuMeter:
    """Samples the CPU ticks of the server's processes, by role, remembering processes that have exited."""

    groups: dict[int, str]  # process group → role (the worker and gunicorn run in their own sessions)
    database: str
    redis_pid: int | None
    exclude: set[int]  # the benchmark's own database connection
    last: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid → (role, ticks)
    baseline: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def role(self, pid: int, group: int) -> str | None:
        if group in self.groups:
            return self.groups[group]
        if pid == self.redis_pid:
            return "redis"
        if pid in self.exclude:
            return None
        title = _cmdline(pid)
        if title.startswith("postgres: ") and f" {self.database} " in title:
            return "postgres"
        return None

    def sample(self) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            stat = _stat(pid)
            if stat is None:
                continue
            known = self.last.get(pid)
            role = known[0] if known else self.role(pid, stat[0])
            if role is not None:
                self.last[pid] = (role, stat[1])

    def start(self) -> None:
        """From now on: what every server process had used so far is its start-up, not counted."""
        self.sample()
        self.baseline = {pid: ticks for pid, (_, ticks) in self.last.items()}

        def loop() -> None:
            while not self._stop.wait(0.2):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def seconds(self, *, since_start: bool = True) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, (role, ticks) in self.last.items():
            used = ticks - self.baseline.get(pid, 0) if since_start else self.baseline.get(pid, 0)
            totals[role] = totals.get(role, 0.0) + used / TICKS_PER_S
        return totals


def spooled_samples(spool: Path) -> int:
    """The samples the spooled streams made, as their ``close_run`` messages declare them."""
    total = 0
    for path in spool.glob("*/*.json"):
        envelope = json.loads(path.read_text())
        if envelope["kind"] == "close_run":
            total += int(json.loads(envelope["body"])["samples_sent"])
    return total


def redis_pid(broker_url: str) -> int | None:
    import redis

    try:
        return int(redis.Redis.from_url(broker_url).info("server")["process_id"])
    except Exception:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


def table_bytes() -> dict[str, int]:
    """Every table's size in the app's database, indexes and TOAST included (pg_total_relation_size)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
        return dict(cursor.fetchall())


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def compact_and_measure(stored: int, own_backend: int, empty_bytes: dict[str, int]) -> tuple[float, float]:
    """Compact every window, as the beat task does an hour after their chunk ends (the agents replayed a day
    ago): its CPU (this process and its database backend) per million samples, and the storage in bytes a sample
    once ``VACUUM FULL`` has given back the space the joined windows took (in service, the next windows reuse it)."""
    from django.conf import settings
    from django.db import connection

    from dashboard.telemetry import compaction

    ticks = _stat(own_backend)
    started = time.process_time()
    joined = rows = 0
    while True:
        done = compaction.compact(int(time.time() * 1000) - settings.WATTWISE_COMPACT_AFTER_S * 1000,
                                  settings.WATTWISE_COMPACT_CHUNK_S * 1000)
        joined, rows = joined + done.windows, rows + done.rows
        if not done.more:
            break
    used_s = time.process_time() - started
    after = _stat(own_backend)
    # A database on another host: its backend is no process here, and only the Python is counted (as ingest's
    # meter then counts no PostgreSQL either), said on the line.
    backend_s = (after[1] - ticks[1]) / TICKS_PER_S if ticks and after else None
    per_million = (used_s + (backend_s or 0.0)) / max(stored, 1) * 1e6
    print(f"compaction: {joined:,} windows into {rows:,} rows ({settings.WATTWISE_COMPACT_CHUNK_S} s chunks), "
          f"{per_million:,.2f} core-s per million samples (Python {used_s:.1f}, PostgreSQL "
          + ("not counted: its backend is no process of this machine)" if backend_s is None else f"{backend_s:.1f})"))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM dashboard_samplewindow")
    def per_sample() -> float:
        return sum(size - empty_bytes.get(table, 0) for table, size in table_bytes().items()) / max(stored, 1)

    print(f"storage after compaction, before VACUUM FULL: {per_sample():,.1f} bytes/sample (the joined windows' "
          "space is free for the next ones)")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM FULL dashboard_samplewindow")
    return per_million, per_sample()


def compile_bytecode() -> float:
    """Compile every module the server's processes import, once (what an image's build does): seconds taken."""
    import compileall
    import sysconfig

    started = time.monotonic()
    for path in (sysconfig.get_paths()["purelib"], *(ROOT / name for name in ("dashboard", "planner", "agents"))):
        compileall.compile_dir(str(path), quiet=2, workers=0)
    return time.monotonic() - started


def main() -> int:
    args = parse_args()
    database_url, broker_url = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not database_url.startswith("postgres") or not broker_url.startswith("redis"):
        print("set DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://… (make bench-ingest does)", file=sys.stderr)
        return 2

    print(f"compiled the bytecode in {compile_bytecode():.1f} s (not counted: an image's build does it)")
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db import connection

    from dashboard.telemetry.models import Rejection, RunGpu
    from dashboard.telemetry.nodes import register_node

    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    redis.Redis.from_url(broker_url).flushdb()
    tokens = {}
    for n in range(args.nodes):
        _, tokens[f"bench-{n}"], _ = register_node(f"bench-{n}", "bench")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_backend = int(cursor.fetchone()[0])
    empty_bytes = table_bytes()

    worker_env = {**os.environ, "CELERY_WORKER_PREFETCH_MULTIPLIER": str(args.prefetch)}
    worker_command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", "telemetry", "-P", args.pool,
                      "-c", str(args.concurrency), "-l", "WARNING", "--without-gossip", "--without-mingle",
                      "--without-heartbeat"]
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    spool = tempfile.mkdtemp(prefix="wattwise-bench-spool-")
    agent_env = {k: v for k, v in os.environ.items() if k not in ("WATTWISE_URL", "WATTWISE_BROKER_URL")}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    meter = CpuMeter({}, urlsplit(database_url).path.lstrip("/"), redis_pid(broker_url), {own_backend})

    def start_web() -> list[str]:
        port = free_port()
        # The queue bound is lifted: this measures throughput, and the agents would otherwise wait out 429s.
        web_env = {**os.environ, "WATTWISE_INGEST_MAX_QUEUE": "1000000000"}
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "dashboard.wsgi:application", "-b", f"127.0.0.1:{port}",
                                "-w", str(args.web_workers), "-k", args.web_class, "--threads", str(args.web_threads),
                                "--log-level", "warning", "--keep-alive", "30"],
                               cwd=ROOT, env=web_env, start_new_session=True)
        processes["web"], meter.groups[web.pid] = web, "web"
        wait_for_port(port, 60)
        return ["--url", f"http://127.0.0.1:{port}"]

    consumer_startup_s: list[float] = []

    def start_worker() -> None:
        if args.consumer == "celery":
            worker = subprocess.Popen(worker_command, cwd=ROOT, env=worker_env, start_new_session=True)
            processes["worker"], meter.groups[worker.pid] = worker, "worker"
            return
        ready = [Path(spool) / f"consumer-{n}.ready" for n in range(args.concurrency)]
        for n in range(args.concurrency):
            poll = ["--poll-s", str(args.poll_s)] if args.poll_s is not None else []
            consumer = subprocess.Popen([sys.executable, "manage.py", "consume_telemetry", "--ready-file", str(ready[n]),
                                         *poll], cwd=ROOT, env=worker_env, start_new_session=True)
            processes[f"worker-{n}"], meter.groups[consumer.pid] = consumer, "worker"
        deadline = time.monotonic() + 120
        while not all(path.exists() for path in ready) and time.monotonic() < deadline:
            time.sleep(0.1)  # its start-up (imports, Django) is not counted when the clock starts after this
        if meter._thread is not None:  # the clock runs already (drain mode): say what the start-up took
            meter.sample()
            consumer_startup_s.append(sum(ticks - meter.baseline.get(pid, 0) for pid, (role, ticks) in meter.last.items()
                                          if role == "worker") / TICKS_PER_S)

    def run_agents(command: str, destination: list[str], *extra: str) -> list[subprocess.Popen[str]]:
        started = []
        for node, token in tokens.items():
            if command == "stream":
                extra = ("--backend", "simulated", "--run", "bench", "--gpus", str(args.gpus), "--duration",
                         args.duration, "--start", start, "--fast", "--rate", str(args.rate), "--window", args.window,
                         "--quiet", "--seed", node.rsplit("-", 1)[1], *extra)
            started.append(subprocess.Popen(
                [sys.executable, "-m", "wattwise_agent", command, "--node", node, *destination, "--spool-dir",
                 f"{spool}/{node}", *extra],
                cwd=ROOT, env={**agent_env, "WATTWISE_TOKEN": token}, stdout=subprocess.PIPE, text=True))
        return started

    def exit_lines(started: list[subprocess.Popen[str]]) -> list[dict]:
        for a in started:
            a.wait()
            assert a.returncode == 0, "an agent failed"
        return [json.loads(a.stdout.read().strip().splitlines()[-1]) for a in started]  # type: ignore[union-attr]

    draining = args.prefill and args.http
    before = os.times()  # the agents' CPU is what the children waited for from here on (draining: from t0)
    lines: list[dict] = []
    expected: int | None = None
    if draining:
        # Nothing listens at this URL: every agent keeps its whole replay in its spool, then drains it over HTTP.
        t_spool = time.monotonic()
        lines = exit_lines(run_agents("stream", ["--url", f"http://127.0.0.1:{free_port()}"], "--drain-timeout", "0s"))
        expected = spooled_samples(Path(spool))
        print(f"spooled {expected:,} samples in {time.monotonic() - t_spool:.1f} s; starting gunicorn and the worker",
              file=sys.stderr)
        destination = start_web()
        start_worker()
        time.sleep(3)
        meter.start()
        before = os.times()
        t0 = time.monotonic()
        agents = run_agents("drain", destination, "--drain-timeout", f"{args.timeout:.0f}s")
    else:
        destination = start_web() if args.http else ["--broker-url", broker_url]
        if not args.prefill:
            start_worker()
            time.sleep(3)  # let the worker connect before the clock starts
        meter.start()
        t0 = time.monotonic()
        agents = run_agents("stream", destination)
        if args.prefill:
            lines = exit_lines(agents)
            print(f"prefilled the broker in {time.monotonic() - t0:.1f} s; starting the worker", file=sys.stderr)
            start_worker()
            t0 = time.monotonic()
    points: list[tuple[float, int]] = [(0.0, 0)]
    published_at = None
    drained: list[dict] = []
    agent_cpu_s = 0.0
    try:
        while time.monotonic() - t0 < args.timeout:
            time.sleep(1.0)
            points.append((time.monotonic() - t0, stored_samples()))
            if published_at is None and all(a.poll() is not None for a in agents):
                published_at = time.monotonic() - t0
                if draining:
                    drained = exit_lines(agents)
                elif not lines:
                    lines = exit_lines(agents)
            if not agent_cpu_s and lines and all(a.poll() is not None for a in agents):
                usage = os.times()
                agent_cpu_s = (usage.children_user + usage.children_system
                               - before.children_user - before.children_system)
            if published_at is not None and points[-1][1] >= (expected or sum(line["samples_sent"] for line in lines)):
                break
            print(f"  {points[-1][0]:6.1f} s  stored {points[-1][1]:>10,}", file=sys.stderr, flush=True)
    finally:
        meter.stop()
        startup = meter.seconds(since_start=False)
        for name, process in processes.items():
            if name.startswith("worker"):
                stop_group(process)
        stop_group(processes.get("web"))
        for a in agents:
            if a.poll() is None:
                a.kill()
        shutil.rmtree(spool, ignore_errors=True)

    sent = expected if expected is not None else sum(line["samples_sent"] for line in lines)
    left = sum(line["spooled"] + line.get("refused", 0) for line in (drained if draining else lines))
    elapsed, stored = points[-1]
    truth = {uuid: j for line in lines for uuid, j in line["true_energy_j"].items()}
    energy = dict(RunGpu.objects.values_list("gpu__uuid", "energy_j"))
    worst = max(abs(energy.get(uuid, 0.0) - j) / j for uuid, j in truth.items()) if truth else float("nan")
    windows = rate_windows(points, 10.0)
    cpu = meter.seconds()
    per_million = {role: s / max(stored, 1) * 1e6 for role, s in cpu.items()}
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (1 min)")
    consumer = (f"worker -P {args.pool} -c {args.concurrency}, prefetch {args.prefetch}" if args.consumer == "celery"
                else f"{args.concurrency} coalescing consumer(s) (manage.py consume_telemetry)")
    transport = (f"HTTP: gunicorn -w {args.web_workers} -k {args.web_class} --threads {args.web_threads}" if args.http
                 else "broker: agents publish to Redis")
    print(f"configuration: {args.nodes} agents × {args.gpus} GPUs, {args.rate:g} Hz, {args.window} windows "
          f"({int(args.gpus * args.rate * float(args.window.rstrip('s')))} samples/batch), {transport}, {consumer}")
    if draining:
        print(f"the agents drained their spools over HTTP in {published_at or float('nan'):.1f} s; everything "
              f"stored after {elapsed:.1f} s")
    elif args.prefill:
        print(f"worker drained the prefilled broker in {elapsed:.1f} s (from worker start, incl. its start-up)")
    else:
        print(f"publishing took {published_at or float('nan'):.1f} s; everything stored after {elapsed:.1f} s")
    print(f"samples sent {sent:,}, stored {stored:,}, lost {sent - stored:,}, left spooled or refused {left}, "
          f"rejected messages {Rejection.objects.count()}")
    print(f"energy vs simulator ground truth: worst GPU relative error {worst:.2e} over {len(truth)} GPUs")
    print("stored samples/s per 10 s: " + " ".join(f"{r:,.0f}" for r in windows))
    if len(windows) >= 6:
        sustained = min(sum(windows[i:i + 6]) / 6 for i in range(len(windows) - 5))
        print(f"lowest 60 s average: {sustained:,.0f} samples/s")
    roles = [r for r in ("web", "worker", "postgres", "redis") if r in cpu]
    print(f"server CPU: {sum(cpu.values()):,.1f} core-s over {elapsed:.1f} s: "
          + ", ".join(f"{r} {cpu[r]:,.1f}" for r in roles)
          + "; start-up before the agents: " + ", ".join(f"{r} {startup.get(r, 0.0):.1f}" for r in ("web", "worker")
                                                        if r in startup))
    print(f"server CPU per million samples: {sum(per_million.values()):,.1f} core-s ("
          + ", ".join(f"{r} {per_million[r]:,.1f}" for r in roles) + ")")
    if consumer_startup_s:
        print(f"of which the consumer's start-up until ready: {consumer_startup_s[0]:.1f} core-s "
              f"({consumer_startup_s[0] / max(stored, 1) * 1e6:,.1f} per million samples)")
    if agent_cpu_s:
        print(f"agents' CPU: {agent_cpu_s:,.1f} core-s ({agent_cpu_s / sent * 1e6:,.1f} per million samples)")
    ok = stored == sent and sent > 0 and left == 0 and worst < 1e-6 and not Rejection.objects.exists()
    print(f"nothing lost: {'yes' if ok else 'NO'}")
    grown = {table: size - empty_bytes.get(table, 0) for table, size in table_bytes().items()}
    biggest = sorted(grown.items(), key=lambda item: -item[1])[:3]
    as_ingested = sum(grown.values()) / max(stored, 1)
    print(f"storage as ingested: {as_ingested:,.1f} bytes/sample ("
          + ", ".join(f"{table} {size / max(stored, 1):,.1f}" for table, size in biggest) + ")")
    ingest_cpu = sum(per_million.values())
    compaction_cpu, kept = (0.0, as_ingested) if args.no_compact else compact_and_measure(stored, own_backend, empty_bytes)
    server_cpu = ingest_cpu + compaction_cpu
    print(f"ingest: {stored / elapsed:,.0f} samples/s")
    print(f"server cpu: {server_cpu:,.1f} core-s per million samples"
          + ("" if args.no_compact else f" (ingest {ingest_cpu:,.1f}, compaction {compaction_cpu:,.2f})"))
    print(f"storage: {kept:,.1f} bytes/sample" + ("" if args.no_compact else f" (compacted, after VACUUM FULL; {as_ingested:,.1f} as ingested)"))
    # Machines differ in speed (the development machines of 2026-12 by 3x): set the CPU figure on one scale.
    ratio = reference_decode_us() / REFERENCE_DECODE_US
    print(f"reference: this machine is {ratio:.2f}x the 2026-12-03 machine's CPU time for a wire decode "
          f"(bench_wire): roughly {server_cpu / ratio:,.1f} core-s per million samples on its scale")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
