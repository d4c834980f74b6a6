"""A worker's memory when a huge message arrives on the Redis broker (``make bench-broker-message``).

For each case it starts a real Celery worker (``celery -A dashboard worker -P solo``) on the benchmark database
and Redis DB, lets it store one small batch (modules loaded, connections open), reads its resident memory
(``VmRSS`` in ``/proc``), resets its peak (``/proc/PID/clear_refs``), publishes one ``wattwise.ingest_batch``
task whose envelope body is ``--size-mb`` MB (200 by default) as a client on the broker would, and waits
until the refusal is recorded; then prints the peak (``VmHWM``) against the memory before:

- ``refused unread``: the app as configured (``dashboard.broker``, WATTWISE_BROKER_MAX_MESSAGE_BYTES 16 MiB);
- ``read, then refused``: the same with the limit set above the message, so the worker reads and decodes it
  and the ingest task refuses it (its body is above the wire's limit): what every worker did before the
  broker's size check.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from a checkout: the app's packages (the agent is installed with the app, `make install`).
# Never agents/ itself: its build metadata there would shadow the installed agent's (tests import this module).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
MB = 1_000_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200, help="the message's envelope body, in MB (default 200)")
    return parser.parse_args()


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} for process {pid}")


def wait_for(condition: Callable[[], bool], what: str, worker: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def one_case(name: str, size_mb: int, limit_bytes: int | None) -> tuple[float, float]:
    """(memory before, peak while the message was refused), in MB, for a worker with ``limit_bytes``."""
    from celery import Celery

    from dashboard.telemetry.models import BatchReceipt, Rejection
    from tests.factories import register, simple_batch
    from wattwise_agent import wire
    from wattwise_agent.transport import CeleryTransport

    broker_url = os.environ["CELERY_BROKER_URL"]
    BatchReceipt.objects.all().delete()
    Rejection.objects.all().delete()
    env = {**os.environ, "CELERY_WORKER_PREFETCH_MULTIPLIER": "1", "DATABASE_CONN_MAX_AGE": "0"}
    if limit_bytes is not None:
        env["WATTWISE_BROKER_MAX_MESSAGE_BYTES"] = str(limit_bytes)
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", "telemetry", "-P",
                               "solo", "-c", "1", "-l", "ERROR", "--without-gossip", "--without-mingle",
                               "--without-heartbeat"], cwd=ROOT, env=env, start_new_session=True)
    try:
        node = register(f"bench-{name.split()[0]}", "bench")
        transport = CeleryTransport(broker_url)
        transport.send(simple_batch(node))
        transport.close()
        wait_for(lambda: BatchReceipt.objects.exists(), "the warm-up batch", worker)
        before_mb = memory_mb(worker.pid, "VmRSS")
        Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # the peak starts again from here
        huge = {"v": 1, "kind": wire.KIND_BATCH, "node": node.name, "body": "x" * (size_mb * MB), "sig": ""}
        client = Celery("bench-publisher", broker=broker_url, set_as_current=False)
        client.send_task(wire.TASKS_BY_KIND[wire.KIND_BATCH], args=[huge], queue=wire.TELEMETRY_QUEUE)
        del huge
        wait_for(lambda: Rejection.objects.exists(), "the refusal", worker)
        peak_mb = memory_mb(worker.pid, "VmHWM")
        rejection = Rejection.objects.get()
        print(f"  {name}: rejection {rejection.reason_code}, size_bytes {rejection.size_bytes}", flush=True)
        return before_mb, peak_mb
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def main() -> None:
    args = parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    rows = [(name, *one_case(name, args.size_mb, limit)) for name, limit in
            [("refused unread", None), ("read, then refused", 4 * args.size_mb * MB)]]
    print(f"\na {args.size_mb} MB message on the telemetry queue, one worker (-P solo):")
    print(f"{'case':<22} {'before MB':>10} {'peak MB':>10} {'growth MB':>10}")
    for name, before_mb, peak_mb in rows:
        print(f"{name:<22} {before_mb:>10.0f} {peak_mb:>10.0f} {peak_mb - before_mb:>10.0f}")


if __name__ == "__main__":
    main()
