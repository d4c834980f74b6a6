"""The whole loop in one command (``make demo-loop``): measure, profile, plan, apply, and prove the saving.

    python examples/pipeline_parallel/loop.py [--keep DIR] [--stages 2] [--iterations 8]

It needs nothing running: it starts a throwaway Wattwise server (the embedded default: SQLite in a fresh
directory, Celery tasks in-process, ``manage.py runserver`` on a free loopback port), creates a user, a
project, an enrolment token for the nodes and an API token with the app's own management commands, then
runs the four stages with ``train.py`` under torchrun (one process per pipeline stage, emulated GPUs):

1. baseline: every clock at its maximum, measured like any run (the Trackers stream it to the server);
2. profile:  the stage profiler sweeps the clocks; rank 0 uploads the pipeline's profile (signed, as agents do);
3. solve:    the script asks the server for the profile's frontier through the API, and waits for it;
4. planned:  every rank fetches its plan through the API with the token and replays it with the plan client;
5. straggler: a slower peer pipeline (T′ = ``--straggler-factor`` × the baseline's iteration time) from
   iteration ``--straggler-from``, once with the plan client's straggler switcher and once keeping the plan:
   the loop fails unless the client switched within two iterations and spent less energy per iteration.

It ends with ``loop: predicted saving P %, realised saving R %, iteration time +T %``: the planner's
predicted saving for the plan in force, the saving measured between the planned and the baseline runs,
and the change in iteration time, as the server computes them (``GET /api/planner/frontiers/{id}/runs``).
With ``--keep DIR`` the server's database stays in DIR: serve it with
``DATABASE_URL=sqlite:///DIR/db.sqlite3 python manage.py runserver`` and sign in as ``loop`` (password in
DIR/login.txt) to see the runs, the profile, the frontier and its plans.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from realised import loop_figures

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
USER = "loop"
PROJECT = "loop"
NODE = "pipeline-node"
RUNS = {"baseline": "loop-baseline", "profile": "loop-profile", "planned": "loop-planned",
        "straggler": "loop-straggler", "kept": "loop-straggler-kept"}
SWITCH_WITHIN = 2  # iterations: a straggler from iteration K must be planned for from K + 2 at the latest


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=2, help="pipeline stages = processes (the profile's stages)")
    parser.add_argument("--profile", type=Path, default=HERE / "a100_2_stages.csv")
    parser.add_argument("--microbatches", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=8, help="of the baseline and the planned run")
    parser.add_argument("--clock-stride", type=int, default=1, help="profile every Nth clock")
    parser.add_argument("--unit-time-ms", type=float, default=1.0, help="the planner's τ")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="virtual GPU seconds per real second of the baseline and planned runs (0: unpaced)")
    parser.add_argument("--profile-speed", type=float, default=4.0, help="the same, for the profiling run")
    parser.add_argument("--straggler-factor", type=float, default=1.2,
                        help="the straggler's iteration time T′ as a multiple of the baseline's")
    parser.add_argument("--straggler-from", type=int, default=3, help="the iteration the straggler appears in")
    parser.add_argument("--straggler-iterations", type=int, default=10, help="of each straggler run")
    parser.add_argument("--keep", type=Path, default=None, help="keep the server's database and logs in this directory")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="the most any one stage may take")
    return parser.parse_args()


class Loop:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = child_env({
            "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}", "DEBUG": "1", "HOME": str(work),
            "WATTWISE_RUNS_DIR": str(work / "runs"), "OMP_NUM_THREADS": "1",
        })
        self.server: subprocess.Popen[bytes] | None = None
        self.enrolment_token = self.api_token = ""

    # --- the server -----------------------------------------------------------------------------------

    def manage(self, *arguments: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=self.args.timeout_s)
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
        return result.stdout.strip()

    def start_server(self) -> None:
        step("server", f"a throwaway server: SQLite in {self.work}, tasks in-process")
        self.manage("migrate", "--noinput", "-v", "0")
        password = secrets.token_urlsafe(12)
        self.manage("createsuperuser", "--noinput", "--username", USER, "--email", "loop@example.invalid",
                    env={"DJANGO_SUPERUSER_PASSWORD": password})
        (self.work / "login.txt").write_text(f"{USER}\n{password}\n")
        self.enrolment_token = self.manage("create_enrolment_token", PROJECT, "--name", "demo-loop").splitlines()[-1]
        self.api_token = self.manage("create_api_token", USER, "--name", "demo-loop").splitlines()[-1]
        log = (self.work / "server.log").open("wb")
        self.server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.args.timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5):
                    break
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start: see {self.work / 'server.log'}") from None
                time.sleep(0.5)
        say(f"server up at {self.url}; user {USER!r}, project {PROJECT!r}, enrolment and API tokens issued")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/api{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.api_token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.load(exc)
            except ValueError:
                return exc.code, {"detail": exc.reason}

    # --- the stages -----------------------------------------------------------------------------------

    def train(self, mode: str, *options: str, run: str = "") -> dict[str, Any]:
        run = run or mode
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(self.args.stages), str(HERE / "train.py"), "--mode", mode, "--run-name", RUNS[run],
                   "--node-name", NODE, "--profile", str(self.args.profile), "--microbatches", str(self.args.microbatches),
                   "--out-dir", str(self.work), *options]
        env = {**self.env, "WATTWISE_URL": self.url, "WATTWISE_TOKEN": self.enrolment_token}
        if mode != "baseline":  # the second opt-in (the first is --allow-clock-changes)
            env.update(WATTWISE_ALLOW_CLOCK_CHANGES="1", WATTWISE_API_TOKEN=self.api_token)
        started = time.monotonic()
        with (self.work / f"{run}.log").open("w") as log:
            result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                    timeout=self.args.timeout_s)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or not lines:
            tail = (self.work / f"{run}.log").read_text()[-3000:]
            raise SystemExit(f"the {RUNS[run]} run failed (exit {result.returncode}):\n{tail}")
        report = lines[-1]
        say(f"{report['iterations']} iterations on {report['ranks']} stages in {time.monotonic() - started:.0f} s: "
            f"{report['virtual_time_s'] / report['iterations']:.3f} s and "
            f"{report['energy_j'] / report['iterations']:.1f} J per iteration (emulated), "
            f"loss {report['first_loss']:.2f} -> {report['last_loss']:.2f}")
        return report

    def baseline(self) -> float:
        """The baseline run; its iteration time (emulated seconds)."""
        step("1/5 baseline", "every clock at its maximum")
        report = self.train("baseline", "--iterations", str(self.args.iterations), "--speed", str(self.args.speed))
        return float(report["virtual_time_s"]) / int(report["iterations"])

    def profile(self) -> int:
        step("2/5 profile", "the stage profiler sweeps the clocks; rank 0 uploads one profile")
        report = self.train("profile", "--allow-clock-changes", "--clock-stride", str(self.args.clock_stride),
                            "--speed", str(self.args.profile_speed), "--profile-name", RUNS["profile"])
        upload = report["upload"]
        say(f"uploaded: {upload['stages']} stages, {upload['frequencies']} clocks "
            f"({upload['max_mhz']}-{upload['min_mhz']} MHz), P_blocking {upload['p_blocking_w']} W")
        status, listed = self.api("GET", "/planner/profiles?source=agent")
        found = [p["id"] for p in listed.get("items", []) if p["name"] == RUNS["profile"]] if status == 200 else []
        if not found:
            raise SystemExit(f"the server has no profile {RUNS['profile']!r} (GET /api/planner/profiles: {status} {listed})")
        return int(found[0])

    def solve(self, profile_id: int) -> int:
        step("3/5 solve", f"POST /api/planner/profiles/{profile_id}/frontiers")
        status, frontier = self.api("POST", f"/planner/profiles/{profile_id}/frontiers", {
            "num_microbatches": self.args.microbatches, "unit_time_ms": self.args.unit_time_ms, "schedule": "1f1b"})
        if status not in (200, 202):
            raise SystemExit(f"asking for the frontier failed: {status} {frontier.get('detail')}")
        deadline = time.monotonic() + self.args.timeout_s
        while frontier["status"] not in ("done", "failed"):
            if time.monotonic() > deadline:
                raise SystemExit(f"frontier {frontier['id']} is still {frontier['status']}")
            say(f"frontier {frontier['id']}: {frontier['status']} {frontier['progress_done']}/{frontier['progress_total']}")
            time.sleep(1.0)
            _, frontier = self.api("GET", f"/planner/frontiers/{frontier['id']}")
        if frontier["status"] != "done":
            raise SystemExit(f"frontier {frontier['id']} failed: {frontier['error']}")
        intrinsic = frontier["summary"]["intrinsic"]
        say(f"frontier {frontier['id']}: {frontier['num_points']} points; the plan at no slowdown (point "
            f"{intrinsic['point']}) saves {intrinsic['saving_fraction'] * 100:.1f} % per iteration")
        return int(frontier["id"])

    def planned(self, frontier_id: int) -> None:
        step("4/5 planned", f"every rank fetches its plan of frontier {frontier_id} through the API and applies it")
        self.train("planned", *self.planned_options(frontier_id), "--iterations", str(self.args.iterations))

    def planned_options(self, frontier_id: int) -> list[str]:
        return ["--allow-clock-changes", "--frontier", str(frontier_id), "--baseline-run", RUNS["baseline"],
                "--speed", str(self.args.speed)]

    def straggler(self, frontier_id: int, baseline_iteration_s: float) -> str:
        """Both straggler runs; the straggler line, or SystemExit when the client did not switch in time or
        saved no energy."""
        args = self.args
        straggler_s = args.straggler_factor * baseline_iteration_s
        first = args.straggler_from
        step("5/5 straggler", f"a peer pipeline takes T′ = {straggler_s:.3f} s per iteration from iteration {first}: "
                              "the plan client switches plans, then the same keeping the original plan")
        options = [*self.planned_options(frontier_id), "--iterations", str(args.straggler_iterations),
                   "--straggler-s", repr(straggler_s), "--straggler-from", str(first)]
        switched = self.train("planned", *options, "--switch", run="straggler")
        kept = self.train("planned", *options, run="kept")
        return straggler_verdict(switched, kept, first)

    def result(self, frontier_id: int) -> tuple[float, float, float, str]:
        """(P, R, T) as fractions, from the server's API; until that endpoint exists, from the stored events."""
        status, answer = self.api("GET", f"/planner/frontiers/{frontier_id}/runs")
        if status == 200:
            [row] = [r for r in answer["items"] if r["run_name"] == RUNS["planned"]]
            return (row["predicted_saving_fraction"], row["realised_saving_fraction"], row["time_change_fraction"],
                    f"GET /api/planner/frontiers/{frontier_id}/runs")
        printed = self.manage("shell", "--no-imports", "-c", EVENTS_SCRIPT.format(runs=list(RUNS.values())))
        events = json.loads(printed.splitlines()[-1])
        figures = loop_figures(events[RUNS["planned"]], events[RUNS["baseline"]])
        return (*figures, "the stored events, by the contract's formulas (the server's /runs endpoint is not there)")


def straggler_verdict(switched: dict[str, Any], kept: dict[str, Any], first: int) -> str:
    """The straggler line from the two runs' reports: when every rank had switched (the latest rank's first
    iteration under a ``straggler`` plan), and the pipeline's mean energy per iteration over the straggler's
    iterations (``first`` on, the switch's own delay included) with the switch and keeping the plan."""
    switch_steps, points = [], set()
    for rank, plans in enumerate(switched["plans"]):
        straggler_plans = [p for p in plans if p[1] == "straggler"]
        if not straggler_plans:
            raise SystemExit(f"straggler: rank {rank} never switched plans (straggler from iteration {first}; its "
                             f"plans: {plans})")
        switch_steps.append(straggler_plans[0][0])
        points.add((straggler_plans[0][2], straggler_plans[0][3]))
    at = max(switch_steps)
    planned_for_s = min(t for _, t in points)

    def energy_per_iteration_j(report: dict[str, Any]) -> float:
        energies = [s["energy_j"] for s in report["steps"] if s["step"] >= first]
        return sum(energies) / len(energies)

    switched_j, kept_j = energy_per_iteration_j(switched), energy_per_iteration_j(kept)
    line = (f"straggler: switched to the plan for T′ = {planned_for_s:.3f} s at iteration {at} (straggler from "
            f"iteration {first}), energy per iteration {switched_j:.1f} J vs {kept_j:.1f} J keeping the original "
            f"plan ({(switched_j / kept_j - 1) * 100:+.1f} %)")
    if at > first + SWITCH_WITHIN:
        raise SystemExit(f"{line}\nstraggler: FAILED: the client switched {at - first} iterations after the straggler "
                         f"appeared, more than {SWITCH_WITHIN}")
    if not switched_j < kept_j:
        raise SystemExit(f"{line}\nstraggler: FAILED: switching plans did not lower the energy per iteration")
    return line


EVENTS_SCRIPT = """
import json
from dashboard.telemetry.models import RunEvent
runs = {runs!r}
out = {{name: [] for name in runs}}
for e in RunEvent.objects.filter(run__name__in=runs, kind__in=("plan", "iteration")).order_by("t_ms", "pk"):
    out[e.run.name].append({{"kind": e.kind, **e.data}})
print(json.dumps(out))
"""


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DATABASE_URL", "WATTWISE_URL",
                                                          "WATTWISE_TOKEN", "WATTWISE_BROKER_URL")}
    paths = [str(ROOT), str(ROOT / "agents")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    return {**env, "PYTHONPATH": os.pathsep.join(paths), **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(title: str, text: str) -> None:
    print(f"\n== {title}: {text}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def main() -> None:
    args = parse_args()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="wattwise-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    loop = Loop(args, work)
    started = time.monotonic()
    try:
        loop.start_server()
        baseline_iteration_s = loop.baseline()
        frontier_id = loop.solve(loop.profile())
        loop.planned(frontier_id)
        straggler_line = loop.straggler(frontier_id, baseline_iteration_s)
        predicted, realised, time_change, source = loop.result(frontier_id)
    finally:
        loop.stop_server()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n   figures from {source}; {time.monotonic() - started:.0f} s in all"
          + (f"; the server's database is kept in {work}" if args.keep else ""))
    print(straggler_line)
    print(f"loop: predicted saving {predicted * 100:.1f} %, realised saving {realised * 100:.1f} %, "
          f"iteration time {time_change * 100:+.1f} %", flush=True)


if __name__ == "__main__":
    main()
