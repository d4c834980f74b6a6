"""A PostgreSQL session advisory lock taken without waiting: one holder of a piece of work at a time.

Celery hands an unacknowledged task out again once the broker's visibility timeout passes, even while the first
worker still runs it; the copy must leave the work alone. A session lock is released when the work ends, or when
a dead worker's connection closes, so a redelivery after a crash still does it. Elsewhere (SQLite: tasks run in
process, one delivery each) the caller always holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

log = logging.getLogger(__name__)


@contextmanager
def try_session_lock(key: tuple[int, ...], what: str) -> Iterator[bool]:
    """Whether this session took the lock ``key`` (one bigint, or two ints); released on leaving. ``what`` names
    the work in the warning logged when a broken connection keeps the release from going through."""
    if connection.vendor != "postgresql":
        yield True
        return
    args = ", ".join(["%s"] * len(key))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({args})", list(key))
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT pg_advisory_unlock({args})", list(key))
            except DatabaseError:  # a broken connection took the lock with it
                log.warning("could not release the lock of %s", what, exc_info=True)
