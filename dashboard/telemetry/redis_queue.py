"""The telemetry queue on Redis, taken many messages at a time, with kombu's own acknowledgement bookkeeping.

kombu's Redis transport hands a consumer one message per ``BRPOP`` and, for a message to be acknowledged
later, writes it to its ``unacked`` hash and ``unacked_index`` sorted set (a copy and a time), one round trip
per message, and another to acknowledge it. Most of what the coalescing consumer spent per message went
there. ``RedisQueue.take`` does the same in one Lua script for every message waiting, up to a bound: pops
them, records each in the same hash and sorted set, in kombu's format (``[message, exchange, routing key]``
under the message's delivery tag). ``ack`` removes a group's entries in one round trip. Because the
bookkeeping is kombu's, a message taken by a consumer that died before acknowledging it goes back on the
queue after the visibility timeout exactly as a Celery worker's would: by kombu's ``restore_visible``, which
any Celery worker runs, and which ``restore_expired`` runs for the consumer.

A message larger than ``WATTWISE_BROKER_MAX_MESSAGE_BYTES`` is never returned: the script drops it and
says only its size (``dashboard.broker`` does the same for Celery workers), so the consumer's memory never
holds it.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import redis

from wattwise_agent.wire import json_value

UNACKED = "unacked"  # kombu's default keys (``unacked_key``, ``unacked_index_key``)
UNACKED_INDEX = "unacked_index"
PRIORITY_SEP = "\x06\x16"  # kombu's priority lists: "<queue>\x06\x16<step>"
PRIORITY_STEPS = (3, 6, 9)

_TAKE = """
-- kombu writes the small "properties" object last, after the large body: decode only it, found in the
-- message's last bytes (a JSON string cannot hold the unescaped key, and a nested key of that name leaves
-- text that does not decode); the whole message only where that fails.
local function properties_of(message)
  local from = string.find(message, '"properties": {', math.max(1, #message - 4096), true)
  if from then
    local ok, properties = pcall(cjson.decode, string.sub(message, from + 14, -2))
    if ok and type(properties) == 'table' then return properties end
  end
  local ok, decoded = pcall(cjson.decode, message)
  return ok and type(decoded) == 'table' and decoded['properties']
end
local taken, total = {}, 0
local max_count, max_bytes, now, max_message = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for k = 3, #KEYS do
  while #taken < max_count and total < max_bytes do
    local message = redis.call('RPOP', KEYS[k])
    if not message then break end
    local size = string.len(message)
    if size > max_message then
      taken[#taken + 1] = '!' .. size
    else
      local properties = properties_of(message)
      local tag = type(properties) == 'table' and properties['delivery_tag']
      if type(tag) == 'string' then
        local info = properties['delivery_info']
        if type(info) ~= 'table' then info = {} end
        redis.call('ZADD', KEYS[2], now, tag)
        redis.call('HSET', KEYS[1], tag, '[' .. message .. ',' .. cjson.encode(info['exchange'] or '') .. ','
                   .. cjson.encode(info['routing_key'] or '') .. ']')
      end
      taken[#taken + 1] = message
      total = total + size
    end
  end
end
return taken
"""


@dataclass(frozen=True)
class Taken:
    """A message taken off the queue (its raw text, as kombu's JSON), or only the size of one dropped unread."""

    raw: bytes = b""
    message: dict[str, Any] | None = None  # the raw text read, when it is a JSON object
    too_large_bytes: int | None = None

    @classmethod
    def read(cls, raw: bytes) -> Taken:
        try:
            message = json_value(raw, allow_nan=True)
        except ValueError:
            message = None
        return cls(raw, message if isinstance(message, dict) else None)

    @property
    def tag(self) -> str | None:
        tag = ((self.message or {}).get("properties") or {}).get("delivery_tag")
        return tag if isinstance(tag, str) else None

    def task(self) -> tuple[dict[str, Any] | None, Any]:
        """(headers, decoded body) of the Celery task message; ValueError if it cannot be read as one."""
        if self.message is None:
            raise ValueError("not a kombu message")
        properties = self.message.get("properties") or {}
        if self.message.get("content-type") != "application/json":
            raise ValueError(f"content type {self.message.get('content-type')!r}: only JSON is accepted")
        body = self.message.get("body", "")
        if properties.get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return self.message.get("headers"), json_value(body, allow_nan=True)


class RedisQueue:
    """One queue's lists on Redis (``client``: a redis-py client of the broker's database)."""

    # What its calls raise when the broker cannot be reached (refused, gone, not answering, still loading its
    # data, refusing the password), after redis-py's own few retries: the broker's outage, not a fault of its own.
    connection_errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)

    def __init__(self, client: Any, queue: str, *, max_message_bytes: int) -> None:
        self.client = client
        self.queue = queue
        self.max_message_bytes = max_message_bytes
        self._take = client.register_script(_TAKE)
        self.lists = [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS)]

    def take(self, max_messages: int, max_bytes: int) -> list[Taken]:
        """Every message waiting, at most ``max_messages`` or about ``max_bytes`` of them, in the order a worker
        would have them; each recorded as unacknowledged (kombu's bookkeeping) before it is returned."""
        replies = self._take(keys=[UNACKED, UNACKED_INDEX, *self.lists],
                             args=[max_messages, max_bytes, repr(time.time()), self.max_message_bytes])
        taken = []
        for reply in replies:
            if reply[:1] == b"!":
                taken.append(Taken(too_large_bytes=int(reply[1:])))
                continue
            taken.append(Taken.read(reply))
        return taken

    def ack(self, taken: list[Taken]) -> None:
        """Forget the messages' unacknowledged copies: they are done with."""
        tags = [t.tag for t in taken if t.tag is not None]
        if tags:
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(UNACKED_INDEX, *tags).hdel(UNACKED, *tags)
            pipe.execute()

    def requeue(self, taken: list[Taken]) -> None:
        """Put the messages back where the next take finds them first, and forget their copies."""
        pipe = self.client.pipeline(transaction=True)
        for t in taken:
            if t.raw:
                pipe.rpush(self.queue, t.raw)
        tags = [t.tag for t in taken if t.tag is not None]
        if tags:
            pipe.zrem(UNACKED_INDEX, *tags).hdel(UNACKED, *tags)
        pipe.execute()

