"""Admission: whether an agent message may be stored, and the record of why not.

What a message must look like is declared once, in ``wattwise_agent.wire`` (the models the agent sends with);
here a message is checked against what only the app knows: the token that signed it (named by the
envelope's key id) is known and not revoked, the signature is its key's, and the clock is sane (nothing
from the future). The node a message is about is its token's: a node's own token names its node, whatever
name the envelope claims; a project's enrolment token names the node the envelope claims, in its project,
registered on first contact. Envelopes without a key id (agents from before key ids) are found by node
name. A refusal is a ``Rejected`` (``Unauthenticated`` for token trouble, which the HTTP ingest answers
with 401); ``record_rejection`` stores it with its reason and code (``Rejection.Code``) and nothing else.
Used by ``ingest`` (Celery tasks), ``http_ingest`` (checks before queueing) and the planner's profiles.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.utils import timezone

from dashboard.telemetry import ingest_memo
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import EnrolmentToken, Node, Rejection
from dashboard.telemetry.nodes import NodeError, check_node_name
from dashboard.telemetry.windows import ms_to_datetime
from planner.units import MS_PER_S
from wattwise_agent.wire import (
    MAX_BODY_BYTES,
    MAX_NAME_CHARS,
    BadSignature,
    Envelope,
    WireError,
    open_envelope,
    read_envelope,
)

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A message refused for a reason the sender should see; ``code`` says what kind of reason."""

    def __init__(self, reason: str, code: Rejection.Code = Rejection.Code.MALFORMED, *, node: Node | None = None):
        super().__init__(reason)
        self.code = code
        self.node = node  # the node the refusal concerns, when known


class Unauthenticated(Rejected):
    """The message's token is unknown or revoked, or did not sign it (the HTTP ingest answers 401)."""


class Status(StrEnum):
    """What became of a message."""

    STORED = "stored"  # a batch or profile was written
    DUPLICATE = "duplicate"  # the same message was stored before: nothing written
    REJECTED = "rejected"  # refused; the reason is in ``Rejection``
    OPENED = "opened"  # an agent session of a run began
    CLOSED = "closed"  # an agent session of a run ended


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str = ""
    samples: int = 0
    run_id: int | None = None  # the run the message was about, once known

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def authenticate(envelope: Any, kind: str, memo: IngestMemo | None = None) -> tuple[Node, dict[str, Any], str]:
    """Authenticate an envelope: return its node, decoded payload and body digest, or raise.

    The node is the token's (see the module docstring). Raises ``Unauthenticated`` (unknown key or
    node, revoked token, bad signature), ``Rejected`` or ``WireError``; callers record any of them
    with ``record_rejection``.
    """
    message = _read(envelope)
    found = ingest_memo.key_named(message.key, memo) if message.key is not None else None
    if isinstance(found, Node):
        node, payload = found, _open(message, kind, found.signing_key_hex, found)
        ingest_memo.note_reported_name(node, message.node)
    elif isinstance(found, EnrolmentToken):
        node, payload = _open_enrolled(message, kind, found, memo)
    else:
        node, payload = _open_by_name(message, kind, memo)
    return node, payload, hashlib.sha256(message.body.encode()).hexdigest()


def _read(envelope: Any) -> Envelope:
    try:
        return read_envelope(envelope)
    except WireError as exc:
        body = envelope.get("body") if isinstance(envelope, dict) else None
        if isinstance(body, str) and len(body) > MAX_BODY_BYTES:
            raise Rejected(str(exc), Rejection.Code.TOO_LARGE) from None
        raise


def _open(message: Envelope, kind: str, key_hex: str, node: Node | None) -> dict[str, Any]:
    try:
        return open_envelope(message, kind, bytes.fromhex(key_hex))
    except BadSignature as exc:
        raise Unauthenticated(str(exc), Rejection.Code.BAD_SIGNATURE, node=node) from None


def _open_enrolled(
    message: Envelope, kind: str, token: EnrolmentToken, memo: IngestMemo | None
) -> tuple[Node, dict[str, Any]]:
    """A message signed with an enrolment token: the node it names in the token's project, registered if new."""
    if token.revoked_at is not None:
        raise Unauthenticated(
            f"enrolment token {token.name!r} of project {token.project.name!r} was revoked on "
            f"{token.revoked_at:%Y-%m-%d %H:%M} UTC: ask for a new token", Rejection.Code.REVOKED,
        )
    payload = _open(message, kind, token.signing_key_hex, None)
    try:
        name = check_node_name(message.node)
    except NodeError as exc:
        raise Rejected(str(exc)) from None
    node = ingest_memo.enrolled_node(token, name, memo)
    if node.has_own_token:
        raise Unauthenticated(
            f"node {name!r} of project {token.project.name!r} has a token of its own (`create_node`): "
            f"enrolment token {token.name!r} cannot sign for it", Rejection.Code.BAD_SIGNATURE, node=node,
        )
    ingest_memo.note_token_used(token)
    return node, payload


def _open_by_name(message: Envelope, kind: str, memo: IngestMemo | None) -> tuple[Node, dict[str, Any]]:
    """A message whose key id is absent or unknown: the node of that name whose own token signed it.

    Agents from before key ids send none; an unknown key id may be the token of a node registered
    before key ids (stored without one). Names are unique per project only, so every node of that name
    is tried; the signature tells them apart.
    """
    candidates = [
        node for node in ingest_memo.nodes_named(message.node, memo)
        if message.key is None or not node.key_id
    ]
    if not candidates:
        raise Unauthenticated(_unknown(message), Rejection.Code.UNKNOWN_KEY)
    for fresh in (False, True):
        for node in candidates:
            try:
                return node, open_envelope(message, kind, bytes.fromhex(node.signing_key_hex))
            except BadSignature:
                continue
        if memo is None or fresh:
            break
        # A token may have been rotated since this process remembered the node: check once more, afresh.
        candidates = [
            node for node in ingest_memo.nodes_named(message.node, memo, fresh=True)
            if message.key is None or not node.key_id
        ]
    raise Unauthenticated(
        f"bad signature: the message was not signed with the token of node {message.node!r}",
        Rejection.Code.BAD_SIGNATURE, node=candidates[0] if len(candidates) == 1 else None,
    )


def _unknown(message: Envelope) -> str:
    if message.key is None:
        return (f"unknown node {message.node!r}: register it with `manage.py create_node`, or give its agent "
                "an enrolment token (`manage.py create_enrolment_token`)")
    return (f"unknown key {message.key} (node {message.node!r}): no node or enrolment token has this token; "
            "it was mistyped, replaced with `create_node --rotate`, or its node or enrolment token was deleted")


def record_rejection(
    kind: str, envelope: Any, problem: str | Exception, code: Rejection.Code | None = None, *,
    node: Node | None = None,
) -> Outcome:
    """Record a refused message and return its outcome; nothing else is written.

    ``problem`` is the reason (a ``Rejected``, a ``WireError`` or a text). ``code`` defaults to the
    ``Rejected``'s own, else ``malformed``. The node is ``node``, else the one the ``Rejected`` names,
    else the node the message claims to be when exactly one node has that name (so a wrongly configured
    agent shows on its node's page; what such a message claims is unverified).
    """
    if code is None:
        code = problem.code if isinstance(problem, Rejected) else Rejection.Code.MALFORMED
    if node is None and isinstance(problem, Rejected):
        node = problem.node
    reason = storable(str(problem))
    node_name = ""
    if isinstance(envelope, dict) and isinstance(envelope.get("node"), str):
        node_name = storable(envelope["node"])[:MAX_NAME_CHARS]
    claimed_key = envelope.get("key") if isinstance(envelope, dict) else None
    key_id = storable(claimed_key)[:16] if isinstance(claimed_key, str) else ""
    if node is None and node_name:
        named = list(Node.objects.filter(name=node_name)[:2])
        node = named[0] if len(named) == 1 else None
    node_name = node_name or (node.name if node is not None else "")
    body = envelope.get("body") if isinstance(envelope, dict) else None
    Rejection.objects.create(
        kind=kind,
        reason_code=code,
        node_name=node_name,
        key_id=key_id,
        node=node,
        reason=reason[:2000],
        size_bytes=len(body) if isinstance(body, str) else 0,
    )
    log.warning("rejected %s from %r (%s): %s", kind, node_name, code.value, reason)
    return Outcome(Status.REJECTED, reason)


def out_of_range(exc: Exception) -> str:
    """The reason for a message the database refused (a value its column cannot hold) that the wire's
    limits let through: they are meant to match the columns, so this is a gap in them, logged for the admin."""
    log.error("a value passed the wire's limits but not its column: %s", exc)
    return f"a value does not fit its column: {str(exc).splitlines()[0]}"


def storable(text: str) -> str:
    """``text`` as a column can hold it: NUL and unpaired surrogates (what the sender claimed, which the wire
    refuses) written as escapes, so the record of a refusal is never itself refused."""
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def refuse_future(t_ms: int, what: str) -> None:
    """Refuse a time beyond now (plus the allowed clock skew): ``what`` says what lies there."""
    limit_ms = (timezone.now() + timedelta(seconds=settings.WATTWISE_MAX_FUTURE_S)).timestamp() * MS_PER_S
    if t_ms > limit_ms:
        raise Rejected(
            f"{what} in the future ({ms_to_datetime(t_ms).isoformat()}): check the node's clock", Rejection.Code.CLOCK
        )


@contextmanager
def concerning(node: Node) -> Iterator[None]:
    """Refusals raised inside concern ``node``: their record names it (a ``WireError`` becomes ``malformed``)."""
    try:
        yield
    except Rejected as exc:
        exc.node = exc.node or node
        raise
    except WireError as exc:
        raise Rejected(str(exc), node=node) from None
