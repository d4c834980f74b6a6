"""Send a stage profile to the app: one signed ``stage_profile`` envelope, through the same transport and
spool as the energy batches (``wattwise_agent.wire`` documents the payload).

The payload is built through the wire's ``StageProfile`` model and the CSV checked against the planner's
rules (:func:`wattwise_agent.profile_csv.check_profile_csv`) first, so what the app would refuse is refused here,
before anything is sent (the app still parses the CSV with its planner). While the app (or broker) is unreachable the envelope waits in the
spool like any batch, and the next agent run on the node (a stream or another upload) sends it first. When
the app refuses the node's token, ``publish_stage_profile`` raises ``TokenRejected`` and the envelope stays
in the spool.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from wattwise_agent import wire
from wattwise_agent.outbox import Outbox, signed_with
from wattwise_agent.profile_csv import ProfileCheck, check_profile_csv
from wattwise_agent.spool import Spool
from wattwise_agent.transport import Transport

KIND = wire.KIND_STAGE_PROFILE


@dataclass(frozen=True)
class UploadResult:
    envelope: dict[str, Any]
    check: ProfileCheck
    sent: bool  # the app (or the broker) took it; False: it waits in the spool, or was refused
    spooled: int  # envelopes left in the spool (this one included when not sent)
    refused: int = 0  # envelopes the app refused for good (set aside in the spool's refused file)

    def line(self) -> dict[str, Any]:
        """The one JSON object the CLI prints."""
        payload: dict[str, Any] = json.loads(self.envelope["body"])
        return {
            "kind": KIND,
            "node": self.envelope["node"],
            "name": payload["name"],
            "run": payload["run"],
            "gpu_name": payload["gpu_name"],
            "p_blocking_w": payload["p_blocking_w"],
            "recorded_ms": payload["recorded_ms"],
            "stages": self.check.num_stages,
            "frequencies": len(self.check.frequencies_mhz),
            "max_mhz": self.check.frequencies_mhz[0],
            "min_mhz": self.check.frequencies_mhz[-1],
            "rows": self.check.rows,
            "csv_sha256": hashlib.sha256(payload["csv"].encode()).hexdigest(),
            "sent": self.sent,
            "spooled": self.spooled,
            "refused": self.refused,
        }


@dataclass(frozen=True)
class ProfileUpload:
    """A stage profile to send: its CSV and what the ``stage_profile`` payload says about it."""

    name: str
    csv_text: str
    gpu_name: str
    run: str | None = None
    p_blocking_w: float | None = None
    recorded_ms: int | None = None  # None: now

    def payload(self) -> tuple[dict[str, Any], ProfileCheck]:
        """The ``stage_profile`` payload, built through the wire's model, and what its CSV holds.

        Raises ProfileCsvError for a CSV the app's planner would refuse, and WireError for a field the
        app would refuse (naming the field).
        """
        check = check_profile_csv(self.csv_text)
        message = wire.parse(wire.StageProfile, {
            "run": self.run,
            "name": self.name,
            "csv": self.csv_text,
            "gpu_name": self.gpu_name,
            "p_blocking_w": self.p_blocking_w,
            "recorded_ms": int(time.time() * 1000) if self.recorded_ms is None else self.recorded_ms,
        })
        return message.model_dump(), check


def publish_stage_profile(
    transport: Transport,
    profile: ProfileUpload,
    *,
    token: str,
    node: str,
    spool: Spool | None = None,
    drain_timeout_s: float = 5.0,
) -> UploadResult:
    """Check, seal and send one stage profile; the envelope is spooled if it cannot be delivered now.

    Raises ``TokenRejected`` (the envelope stays in the spool) when the app refuses the node's token.
    """
    if not token:
        raise ValueError("a node token is required to sign messages")
    wire.check_field(wire.Envelope, "node", node)
    payload, check = profile.payload()
    envelope = wire.seal(KIND, node, payload, token)  # checks the size too
    sent: list[dict[str, Any]] = []
    outbox = Outbox(transport, spool, on_delivered=sent.append, reseal=signed_with(token))
    outbox.post(envelope)
    remaining = outbox.flush(drain_timeout_s) if len(outbox.spool) else 0
    if outbox.fatal is not None:
        raise outbox.fatal
    return UploadResult(envelope, check, sent=any(e is envelope or e == envelope for e in sent), spooled=remaining,
                        refused=outbox.refused)
