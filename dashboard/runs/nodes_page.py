"""The nodes page and the runs list's warning, as plain functions: which nodes report, and which of their
messages were refused lately and why.

What a user sees follows the one access rule (``Node.objects.for_user``). Refused messages that belong
to no node (an unknown token, a name no node has, or one several projects share) belong to no project:
only staff see them, as on ``/metrics``, since what such a message claims is the sender's choice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.utils import timezone

from dashboard.projects.models import Project, Visitor
from dashboard.telemetry.models import DeadLetter, EnrolmentToken, Node, Rejection

RECENT = timedelta(hours=1)
"""How far back refused messages count as recent (the nodes page, the runs list's warning)."""
MAX_UNATTRIBUTED = 50
"""Groups of refusals without a node listed for staff (the most recent first)."""


@dataclass(frozen=True)
class Refusals:
    """Messages refused for one reason (from one node, or one claimed name and key): how many, the latest."""

    code: str
    label: str
    count: int
    latest_at: datetime
    latest_reason: str
    node_name: str = ""  # what unattributed messages claimed
    key_id: str = ""


@dataclass
class NodeRow:
    node: Node  # with project and enrolled_by; annotated with ``runs``
    refusals: list[Refusals] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(r.count for r in self.refusals)


@dataclass
class ProjectNodes:
    project: Project
    nodes: list[NodeRow] = field(default_factory=list)
    tokens: list[EnrolmentToken] = field(default_factory=list)  # annotated with ``enrolled``


@dataclass(frozen=True)
class NodesPage:
    projects: list[ProjectNodes]
    unattributed: list[Refusals]  # staff only; empty for everyone else
    since: datetime

    @property
    def refused_nodes(self) -> int:
        return sum(1 for p in self.projects for row in p.nodes if row.refusals)


def _grouped(rejections: Q, since: datetime, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Refusals since ``since`` matching ``rejections``, grouped by ``by`` + code, with the latest reason."""
    recent = Rejection.objects.filter(rejections, received_at__gte=since)
    same = {f: OuterRef(f) for f in (*by, "reason_code")}
    latest = recent.filter(**same).order_by("-received_at", "-pk").values("reason")[:1]
    return list(
        recent.order_by().values(*by, "reason_code")
        .annotate(n=Count("pk"), latest_at=Max("received_at"), latest_reason=Subquery(latest))
        .order_by("-latest_at")
    )


def _refusals(row: dict[str, Any]) -> Refusals:
    code = str(row["reason_code"])
    label = Rejection.Code(code).label if code in Rejection.Code.values else code
    return Refusals(code, str(label), row["n"], row["latest_at"], row["latest_reason"] or "",
                    row.get("node_name", ""), row.get("key_id", ""))


def nodes_page(user: Visitor, *, project: str = "", now: datetime | None = None) -> NodesPage:
    """The user's projects' nodes (last seen, runs, recent refusals) and enrolment tokens; ``project`` narrows it."""
    since = (now or timezone.now()) - RECENT
    projects = Project.objects.for_user(user)
    if project:
        projects = projects.filter(name=project)
    by_project = {p.pk: ProjectNodes(p) for p in projects}
    nodes = (
        Node.objects.for_user(user).filter(project_id__in=list(by_project))
        .select_related("project", "enrolled_by")
        .annotate(runs=Count("run_nodes__run", distinct=True))
        .order_by("name")
    )
    rows = {node.pk: NodeRow(node) for node in nodes}
    refused: dict[int, list[Refusals]] = defaultdict(list)
    for group in _grouped(Q(node_id__in=list(rows)), since, ("node_id",)):
        refused[group["node_id"]].append(_refusals(group))
    for pk, row in rows.items():
        row.refusals = refused.get(pk, [])
        by_project[row.node.project_id].nodes.append(row)
    tokens = (
        EnrolmentToken.objects.for_user(user).filter(project_id__in=list(by_project))
        .select_related("created_by").annotate(enrolled=Count("nodes")).order_by("name")
    )
    for token in tokens:
        by_project[token.project_id].tokens.append(token)
    unattributed: list[Refusals] = []
    if user.is_staff:
        groups = _grouped(Q(node__isnull=True), since, ("node_name", "key_id"))[:MAX_UNATTRIBUTED]
        unattributed = [_refusals(group) for group in groups]
    return NodesPage(list(by_project.values()), unattributed, since)


def refused_nodes(user: Visitor, *, now: datetime | None = None) -> int:
    """How many nodes of the user's projects had messages refused lately (for the runs list's warning).

    Implausible readings are not refusals of data: their batch was stored, the interval counted 0 J; the
    nodes page lists them, but they do not make the banner say data is not being stored."""
    since = (now or timezone.now()) - RECENT
    return (
        Rejection.objects.filter(received_at__gte=since, node__in=Node.objects.for_user(user))
        .exclude(reason_code=Rejection.Code.IMPLAUSIBLE)
        .order_by().values("node_id").distinct().count()
    )


def dead_letters_waiting(user: Visitor) -> int:
    """Messages kept as dead letters and not replayed, for staff (the admin replays them); 0 for others."""
    if not getattr(user, "is_staff", False):
        return 0
    return DeadLetter.objects.filter(replayed_at__isnull=True).count()
