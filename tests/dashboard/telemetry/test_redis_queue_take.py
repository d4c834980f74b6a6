"""``RedisQueue.take`` records every message it hands out under the message's own delivery tag, in kombu's
format, whatever the message's layout: the Lua script reads the small ``properties`` object at the message's
end where kombu puts it, and decodes the whole message where that is not where it is."""

from __future__ import annotations

import json

import pytest
import redis

from dashboard.telemetry.redis_queue import RedisQueue
from tests.worker_process import flush
from wattwise_agent.wire import TELEMETRY_QUEUE

pytestmark = pytest.mark.services

BODY = "QUJD" * 5_000  # 20 kB of base64, as a batch's body is


def properties(tag: str) -> dict:
    return {"correlation_id": tag, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": TELEMETRY_QUEUE}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": tag}


def kombu_layout(tag: str, headers: dict | None = None) -> str:
    """What kombu's Redis channel pushes: body first, ``properties`` last."""
    return json.dumps({"body": BODY, "content-encoding": "utf-8", "content-type": "application/json",
                       "headers": headers or {"task": "x"}, "properties": properties(tag)})


LAYOUTS = {
    "kombu's": kombu_layout("tag-kombu"),
    "properties first": json.dumps({"properties": properties("tag-first"), "body": BODY, "headers": {}}),
    # A header holding an object named like the real one, near the end: its text does not decode alone.
    "a header named properties": kombu_layout(
        "tag-real", {"x": {"properties": properties("tag-spoofed")}}),
    "compact separators": json.dumps({"body": BODY, "properties": properties("tag-compact")},
                                     separators=(",", ":")),
    "trailing space": kombu_layout("tag-space") + " ",
}
EXPECTED_TAG = {"kombu's": "tag-kombu", "properties first": "tag-first", "a header named properties": "tag-real",
                "compact separators": "tag-compact", "trailing space": "tag-space"}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_taken_message_is_recorded_unacknowledged_under_its_own_tag(redis_url, layout):
    flush(redis_url)
    client = redis.Redis.from_url(redis_url)
    client.lpush(TELEMETRY_QUEUE, LAYOUTS[layout])
    queue = RedisQueue(client, TELEMETRY_QUEUE, max_message_bytes=10**7)

    [taken] = queue.take(10, 10**9)

    tag = EXPECTED_TAG[layout]
    assert taken.tag == tag
    assert client.hkeys("unacked") == [tag.encode()]
    assert json.loads(client.hget("unacked", tag)) == [json.loads(LAYOUTS[layout]), "", TELEMETRY_QUEUE]
    assert [member for member, _ in client.zrange("unacked_index", 0, -1, withscores=True)] == [tag.encode()]
    queue.ack([taken])
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
