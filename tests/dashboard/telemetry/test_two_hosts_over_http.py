"""Two training hosts, each in its own network namespace, stream one run to the app over HTTP.

The namespaces are made here (``ip netns`` and a veth pair each, as root): each "host" reaches the app's
web port on its link and nothing else of the server, so the broker and the database are out of its reach,
as on a real cluster where only the web service is published. One host's agent holds its node's own
token; the other holds the project's enrolment token and registers itself under its host name (set in a
UTS namespace of its own). Gunicorn serves the app, a real Celery worker stores what it queues.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import Sum

from dashboard.telemetry.models import BatchReceipt, Node, Rejection, Run, RunGpu
from dashboard.telemetry.nodes import create_enrolment_token
from tests.conftest import need_service
from tests.factories import register
from tests.worker_process import ROOT, flush, wait_until, worker
from tests.worker_process import test_database_url as database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]

APP_PORT = 18_642


@dataclass(frozen=True)
class Host:
    namespace: str
    app_address: str  # the server's end of this host's link

    def run(self, command: list[str], env: dict[str, str], hostname: str | None = None, **kwargs: Any) -> Any:
        """``command`` inside this host's namespace (and, with ``hostname``, under that host name)."""
        inner = command
        if hostname is not None:
            inner = ["unshare", "--uts", "sh", "-c", f'hostname "{hostname}" && exec "$@"', "sh", *command]
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, *inner], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


# The links' subnets and the app's port are fixed: two test sessions on one machine (`make test` runs the main
# suite and the app on 3.13 at once) take turns on this lock instead of routing into each other's namespaces.
LOCK_FILE = "/tmp/wattwise-test-two-hosts.lock"


@contextmanager
def two_hosts() -> Iterator[list[Host]]:
    prefix = f"ww{os.getpid() % 100_000}"
    hosts = []
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the namespaces are gone
        with _links(prefix, hosts):
            yield hosts


@contextmanager
def _links(prefix: str, hosts: list[Host]) -> Iterator[None]:
    try:
        for n in (1, 2):
            namespace, outside, inside = f"{prefix}h{n}", f"{prefix}s{n}", f"{prefix}n{n}"
            subnet = f"10.231.{n}"
            _ip("netns", "add", namespace)
            hosts.append(Host(namespace, f"{subnet}.1"))
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("addr", "add", f"{subnet}.1/30", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "addr", "add", f"{subnet}.2/30", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield
    finally:
        for host in hosts:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)


@contextmanager
def gunicorn(addresses: list[str], redis_url: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": redis_url,
           "ALLOWED_HOSTS": ",".join(addresses), "DATABASE_CONN_MAX_AGE": "0"}
    binds = [arg for address in addresses for arg in ("-b", f"{address}:{APP_PORT}")]
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "dashboard.wsgi:application", *binds, "-w", "2",
                            "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: _answers(addresses[0], APP_PORT), 60, "gunicorn to listen", web)
        yield web
    finally:
        web.terminate()
        web.wait(timeout=30)


def _answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
        return True
    except OSError:
        return False


REACH = """
import json, socket, sys
seen = {}
for address, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((address, port), timeout=2).close()
        seen[f"{address}:{port}"] = True
    except OSError:
        seen[f"{address}:{port}"] = False
print(json.dumps(seen))
"""


def reachable_from(host: Host, targets: list[tuple[str, int]]) -> dict[str, bool]:
    probe = host.run([sys.executable, "-c", REACH, json.dumps(targets)], env={"PATH": "/usr/bin:/bin"})
    out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err
    return json.loads(out)


def test_agents_on_two_hosts_that_know_only_the_url_and_a_token_store_what_they_measured(
    postgres, redis_url, tmp_path
):
    need_service("network namespaces (root, ip, unshare)",
                 os.geteuid() == 0 and all(shutil.which(tool) for tool in ("ip", "unshare")))
    flush(redis_url)
    own = register("host-a", "vision")
    _, enrolment, _ = create_enrolment_token("vision", "cluster")
    with two_hosts() as hosts, gunicorn([h.app_address for h in hosts], redis_url), worker(redis_url) as celery:
        # Each host reaches the web port on its link, and neither the broker nor the database on any address.
        for host in hosts:
            seen = reachable_from(host, [(host.app_address, APP_PORT), (host.app_address, 6379),
                                         (host.app_address, 5432), ("127.0.0.1", 6379)])
            assert seen == {f"{host.app_address}:{APP_PORT}": True, f"{host.app_address}:6379": False,
                            f"{host.app_address}:5432": False, "127.0.0.1:6379": False}

        agents = []
        for host, token, hostname, seed in ((hosts[0], own.token, "host-a", "3"), (hosts[1], enrolment, "host-b", "4")):
            env = {"PATH": "/usr/bin:/bin", "WATTWISE_URL": f"http://{host.app_address}:{APP_PORT}",
                   "WATTWISE_TOKEN": token}
            agents.append(host.run(
                [sys.executable, "-m", "wattwise_agent", "stream", "--backend", "simulated", "--run", "two-hosts",
                 "--gpus", "2", "--duration", "10m", "--start", "2026-01-01T00:00:00Z", "--fast", "--seed", seed,
                 "--quiet", "--spool-dir", str(tmp_path / hostname)],
                env, hostname=hostname,
            ))
        lines = []
        for process in agents:
            out, err = process.communicate(timeout=240)
            assert process.returncode == 0, err
            lines.append(json.loads(out.strip().splitlines()[-1]))
        assert all(line["spooled"] == 0 and line["refused"] == 0 for line in lines)

        sent = sum(line["samples_sent"] for line in lines)
        wait_until(lambda: _stored_samples("two-hosts") == sent and _finished("two-hosts"), 180,
                   "every batch stored and the run closed", celery)

    assert sorted(Node.objects.values_list("name", flat=True)) == ["host-a", "host-b"]  # host-b enrolled itself
    stored = dict(RunGpu.objects.filter(run__name="two-hosts").values_list("gpu__uuid", "energy_j"))
    truth = {uuid: energy_j for line in lines for uuid, energy_j in line["true_energy_j"].items()}
    assert stored.keys() == truth.keys() and len(truth) == 4
    for uuid, energy_j in truth.items():  # to the counter's resolution: it counts whole millijoules
        assert stored[uuid] == pytest.approx(energy_j, abs=1e-3), uuid
    assert not Rejection.objects.exists()


def _stored_samples(run: str) -> int:
    return int(BatchReceipt.objects.filter(run__name=run).aggregate(n=Sum("samples"))["n"] or 0)


def _finished(run: str) -> bool:
    return Run.objects.filter(name=run, status=Run.Status.FINISHED).exists()

