"""What the node agent itself costs: its CPU time while streaming 8 GPUs at 10 Hz in real time.

Run with ``make bench-agent``. It starts a stand-in for the app (a local HTTP server in this process that
answers every POST to ``/api/ingest`` with 202, as the app does when it queued the envelopes), then one
agent process as a user runs it:

    wattwise-agent stream --backend simulated --gpus 8 --rate 10 --window 5s --duration 60s --url …

in real time (no ``--fast``): the sampler wakes every 100 ms, the batcher closes a 400-sample window every
5 s, and each window is signed, gzipped and POSTed. The agent's CPU time (utime + stime of the process
and all its threads, from ``/proc/PID/stat``) is read once the agent has started (its first POST came)
and again at its last POST, so the interpreter's start-up is reported apart. The figure is that
steady-state CPU time over the same wall time, as a percentage of one core, and per sample read.

Two backends are measured, one after the other. ``nvml``: the real NVML backend over the fake NVML
library of the tests (``tests/agents/fake_nvml.py``, put in place of pynvml in the agent process), so
the figure is the agent's own work per reading, without the driver's; ``simulated``: the simulated
backend, which computes each reading from a power model, so its figure adds the simulator's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Sink:
    """Answers every POST with 202 and notes, per request, when it came and the agent's CPU time then."""

    def __init__(self) -> None:
        self.pid = 0
        self.posts: list[tuple[float, float]] = []  # (monotonic time, agent CPU s)
        self.envelopes = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # the http.server API names it
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.posts.append((time.monotonic(), cpu_s(server.pid) if server.pid else 0.0))
                body = json.dumps({"queued": 1}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def fake_nvml_agent(gpus: int, argv: list[str]) -> int:
    """The agent's command line with the tests' fake NVML library in place of pynvml (in this process)."""
    sys.path.insert(0, str(ROOT))
    from tests.agents.fake_nvml import FakeGpu, FakeNvml
    from wattwise_agent.cli import main as agent_main

    sys.modules["pynvml"] = FakeNvml([FakeGpu(uuid=f"GPU-bench-{i}") for i in range(gpus)])  # type: ignore[assignment]
    return agent_main(argv)


def measure(backend: str, args: argparse.Namespace) -> float:
    """Stream for ``args.duration`` s with ``backend`` and print the agent's CPU; return its % of one core."""
    sink = Sink()
    with tempfile.TemporaryDirectory(prefix="wattwise-bench-agent-") as spool:
        stream = ["stream", "--rate", str(args.rate), "--window", args.window, "--duration", f"{args.duration}s",
                  "--run", "bench-agent", "--node", "bench-agent", "--url", sink.url, "--spool-dir", spool, "--quiet"]
        if backend == "simulated":
            command = [sys.executable, "-m", "wattwise_agent", *stream, "--backend", "simulated", "--gpus", str(args.gpus)]
        else:
            command = [sys.executable, __file__, "--fake-nvml-agent", str(args.gpus), *stream, "--backend", "nvml"]
        started = time.monotonic()
        agent = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "WATTWISE_TOKEN": "ww_bench-agent-token"},
                                 stdout=subprocess.PIPE, text=True)
        sink.pid = agent.pid
        out, _ = agent.communicate(timeout=args.duration + 120)
        wall_s = time.monotonic() - started
    sink.httpd.shutdown()
    if agent.returncode != 0:
        raise SystemExit(f"the agent ({backend}) failed ({agent.returncode})")
    line = json.loads(out.strip().splitlines()[-1])
    # Steady state: from the first POST (the open_run, once the agent was up) to the last (the close_run).
    (t0, cpu0), (t1, cpu1) = sink.posts[0], sink.posts[-1]
    samples = line["samples_sent"]
    steady_fraction = (cpu1 - cpu0) / (t1 - t0)
    print(f"{backend}: streamed {samples} samples from {args.gpus} GPUs at {args.rate:g} Hz for {args.duration} s "
          f"in {len(sink.posts)} POSTs ({wall_s:.1f} s wall with start-up)")
    print(f"start-up (interpreter, imports, until the first POST): {cpu0:.2f} core-s")
    print(f"steady state: {cpu1 - cpu0:.3f} core-s over {t1 - t0:.1f} s = {100 * steady_fraction:.3f} % of one core, "
          f"{1e6 * (cpu1 - cpu0) / samples:.1f} µs per sample")
    return 100 * steady_fraction


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--fake-nvml-agent":
        return fake_nvml_agent(int(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10.0, help="samples per second per GPU (agent default 10)")
    parser.add_argument("--window", default="5s")
    parser.add_argument("--duration", type=int, default=60, help="seconds of real time to stream per backend (default 60)")
    parser.add_argument("--backend", choices=["nvml", "simulated", "both"], default="both")
    args = parser.parse_args()
    figures = {b: measure(b, args) for b in (["nvml", "simulated"] if args.backend == "both" else [args.backend])}
    print("agent CPU: " + ", ".join(f"{b} {pct:.3f} % of one core" for b, pct in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
