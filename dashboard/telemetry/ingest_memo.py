"""The lookups ingest makes for every message, and what a Celery worker process remembers of them.

Storing a batch needs ids of rows that never change once written (the run's id, the node's GPUs, the
run's sessions) and the node itself, found from the token that signed the message (by its key id).
Looking them all up for every batch would cost the hot path most of its time, so a worker process keeps
one :class:`IngestMemo` and hands it to ingest with each message.

Lifetime: a memo exists only inside a Celery worker process or the coalescing consumer
(``manage.py consume_telemetry``, which makes it when it starts). The first task a worker process runs (not
eagerly) makes it (:func:`for_this_worker`, from ``dashboard.telemetry.tasks``), and it lives as long
as the process: in a prefork pool each child makes its own, in the solo and threads pools the process
has one. Eager (in-process) task execution and direct calls pass none: every lookup goes to the
database, correct by construction. The HTTP ingest view (``http_ingest``) keeps one per web process for
the token lookups alone, with the same short expiry. A remembered id whose row was deleted meanwhile fails a
foreign key when the batch commits; ``ingest.ingest_batch`` then makes the memo forget everything and
retries the batch once, looking everything up afresh. Tokens (by key id) and nodes are remembered for
``node_ttl_s`` only, so a revoked or rotated token or a deleted node takes effect within seconds.

The memo is made on a worker's first task rather than on Celery's ``worker_init`` signals because those
signals also fire in any process that starts a worker for another Celery app (a test's in-process
worker, for one), which would leave a memo behind in a process that is not an ingest worker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from dashboard.telemetry.models import EnrolmentToken, Gpu, Node, Run, RunNode
from wattwise_agent.wire import GpuWindow

TOKEN_USE_EVERY = timedelta(minutes=1)
"""An enrolment token's ``last_used_at`` is written at most this often."""


@dataclass
class IngestMemo:
    """What one worker process remembers between messages (see the module docstring for its lifetime)."""

    node_ttl_s: float = 10.0  # how long tokens and nodes are remembered
    seen_every_s: float = 30.0  # a node's ``last_seen_at`` is written at most this often
    # key id -> (the node with that token, or the enrolment token; expires, monotonic)
    keys: dict[str, tuple[Node | EnrolmentToken, float]] = field(default_factory=dict)
    enrolled: dict[tuple[int, str], tuple[Node, float]] = field(default_factory=dict)  # (project id, name) -> ...
    nodes: dict[str, tuple[list[Node], float]] = field(default_factory=dict)  # name -> (nodes with own tokens, ...)
    run_ids: dict[tuple[int, str], int] = field(default_factory=dict)  # (project id, run name) -> run id
    gpu_ids: dict[tuple[int, str], int] = field(default_factory=dict)  # (node id, GPU uuid) -> GPU id
    sessions: set[tuple[int, int, str]] = field(default_factory=set)  # (run id, node id, stream) stored
    node_seen: dict[int, float] = field(default_factory=dict)  # node id -> last write of last_seen_at
    # (run GPU id, stream) -> (seq, last reading's ms) of the latest window ``group_store`` stored of that stream,
    # noted once its group committed (``group_store``): the next group's continuity check reads the window there
    # instead of querying it. At most STREAM_ENDS entries.
    stream_ends: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    # (run id, GPU id) whose running totals several streams write: ``group_store`` leaves their batches to
    # ``batch_store`` (counted once, one at a time). Kept by ``forget``: a row only ever becomes shared.
    shared_run_gpus: set[tuple[int, int]] = field(default_factory=set)

    def forget(self) -> None:
        for remembered in (self.keys, self.enrolled, self.nodes, self.run_ids, self.gpu_ids, self.sessions,
                           self.node_seen, self.stream_ends):
            remembered.clear()


STREAM_ENDS = 100_000
"""The most stream ends a memo keeps (a few tens of MB); past it they are dropped and found by query again."""


StreamEnd = tuple[tuple[int, str], int, int]  # ((run GPU id, stream), seq, last reading's ms) of a stored window


def note_stream_ends(ends: Sequence[StreamEnd], memo: IngestMemo | None) -> None:
    """Remember the latest of the windows stored, of each stream: call it only once they are committed."""
    if memo is None:
        return
    if len(memo.stream_ends) + len(ends) > STREAM_ENDS:
        memo.stream_ends.clear()
    for key, seq, last_ms in ends:
        held = memo.stream_ends.get(key)
        if held is None or held[0] <= seq:
            memo.stream_ends[key] = (seq, last_ms)


def stream_end(key: tuple[int, str, int], memo: IngestMemo | None) -> int | None:
    """The last reading's ms of window (run GPU id, stream, seq), if it is the latest this memo saw stored."""
    held = None if memo is None else memo.stream_ends.get(key[:2])
    return held[1] if held is not None and held[0] == key[2] else None


_worker_memo: IngestMemo | None = None


def for_this_worker() -> IngestMemo:
    """This worker process's memo, made on first use (call it only from a task a worker runs)."""
    global _worker_memo
    if _worker_memo is None:
        _worker_memo = IngestMemo()  # threads pool: two first tasks at once make two, one is kept; harmless
    return _worker_memo


def in_worker() -> bool:
    """Whether this process is an ingest worker: a Celery worker process that ran an ingest task, or the
    coalescing consumer (``dashboard.telemetry.consumer``), which make their memo with ``for_this_worker``.
    The apps above telemetry keep their own per-process memos where this is true (``planner.carbon.recompute``)."""
    return _worker_memo is not None


# --- the lookups, remembered when there is a memo ---------------------------------------------------


def key_named(key_id: str, memo: IngestMemo | None) -> Node | EnrolmentToken | None:
    """What has that key id (with its project): a node's own token, or an enrolment token."""
    now = time.monotonic()
    if memo is not None:
        hit = memo.keys.get(key_id)
        if hit is not None and hit[1] > now:
            return hit[0]
    found: Node | EnrolmentToken | None = Node.objects.select_related("project").filter(key_id=key_id).first()
    if found is None:
        found = EnrolmentToken.objects.select_related("project").filter(key_id=key_id).first()
    if memo is not None and found is not None:
        memo.keys[key_id] = (found, now + memo.node_ttl_s)
    return found


def nodes_named(name: str, memo: IngestMemo | None, *, fresh: bool = False) -> list[Node]:
    """The nodes of that name that have a token of their own, in any project (with their projects).

    For messages without a key id (agents from before key ids); ``fresh`` skips what is remembered.
    """
    now = time.monotonic()
    if memo is not None and not fresh:
        hit = memo.nodes.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
    nodes = list(Node.objects.select_related("project").filter(name=name).exclude(signing_key_hex="").order_by("pk"))
    if memo is not None and nodes:
        memo.nodes[name] = (nodes, now + memo.node_ttl_s)
    return nodes


def enrolled_node(token: EnrolmentToken, name: str, memo: IngestMemo | None) -> Node:
    """The node of that name in the token's project, registered as enrolled with ``token`` if new."""
    now = time.monotonic()
    key = (token.project_id, name)
    if memo is not None:
        hit = memo.enrolled.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
    node, _ = Node.objects.get_or_create(project_id=token.project_id, name=name, defaults={"enrolled_by": token})
    node.project = token.project
    if memo is not None:
        memo.enrolled[key] = (node, now + memo.node_ttl_s)
    return node


def note_token_used(token: EnrolmentToken) -> None:
    """Record that the enrolment token just signed a message, at most once every ``TOKEN_USE_EVERY``.

    Decided on the row as read (remembered or not), so the hot path skips the write almost always.
    """
    now = timezone.now()
    due = now - TOKEN_USE_EVERY
    if token.last_used_at is not None and token.last_used_at > due:
        return
    EnrolmentToken.objects.filter(pk=token.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=due)).update(
        last_used_at=now
    )
    token.last_used_at = now


def note_reported_name(node: Node, name: str) -> None:
    """Keep the name the agent sent when it is not the node's (its token decided the node), for people to see."""
    reported = "" if name == node.name else name
    if node.reported_name != reported:
        Node.objects.filter(pk=node.pk).update(reported_name=reported)
        node.reported_name = reported


def run_for(node: Node, name: str, *, simulated: bool) -> Run:
    """The run of that name in the node's project, created if new (never remembered: callers change it)."""
    run, _ = Run.objects.get_or_create(project=node.project, name=name, defaults={"simulated": simulated})
    return run


def run_id(node: Node, name: str, memo: IngestMemo | None, *, simulated: bool) -> int:
    """The id of :func:`run_for`'s run."""
    key = (node.project_id, name)
    found = memo.run_ids.get(key) if memo is not None else None
    if found is None:
        found = run_for(node, name, simulated=simulated).pk
        if memo is not None:
            memo.run_ids[key] = found
    return found


def note_session(run_id: int, node: Node, stream: str, memo: IngestMemo | None) -> None:
    """Make sure the run lists this node's session (``open_run`` may come later, or never)."""
    key = (run_id, node.pk, stream)
    if memo is not None and key in memo.sessions:
        return
    RunNode.objects.bulk_create([RunNode(run_id=run_id, node=node, stream=stream)], ignore_conflicts=True)
    if memo is not None:
        memo.sessions.add(key)


def note_seen(node: Node, memo: IngestMemo | None) -> None:
    """Record that the node just sent something (at most every ``seen_every_s`` with a memo)."""
    now = time.monotonic()
    if memo is not None:
        last = memo.node_seen.get(node.pk)
        if last is not None and last > now - memo.seen_every_s:
            return
    Node.objects.filter(pk=node.pk).update(last_seen_at=timezone.now())
    if memo is not None:
        memo.node_seen[node.pk] = now


def gpu_ids(node: Node, gpus: Sequence[GpuWindow], memo: IngestMemo | None, *, simulated: bool) -> dict[str, int]:
    """The ids of the node's devices (GPUs, CPU packages, DRAM) by uuid, registering those seen for the first time."""
    if memo is not None:
        remembered = {gpu.uuid: memo.gpu_ids.get((node.pk, gpu.uuid)) for gpu in gpus}
        if all(gpu_id is not None for gpu_id in remembered.values()):
            return {uuid: gpu_id for uuid, gpu_id in remembered.items() if gpu_id is not None}
    uuids = [gpu.uuid for gpu in gpus]
    known = dict(Gpu.objects.filter(node=node, uuid__in=uuids).values_list("uuid", "id"))
    missing = [gpu for gpu in gpus if gpu.uuid not in known]
    if missing:
        Gpu.objects.bulk_create(
            [
                Gpu(node=node, uuid=gpu.uuid, index=gpu.index, name=gpu.name, energy_source=gpu.energy_source,
                    power_field=gpu.power_field, simulated=simulated, component=gpu.component)
                for gpu in missing
            ],
            ignore_conflicts=True,
        )
        known = dict(Gpu.objects.filter(node=node, uuid__in=uuids).values_list("uuid", "id"))
    if memo is not None:
        memo.gpu_ids.update({(node.pk, uuid): gpu_id for uuid, gpu_id in known.items()})
    return known
