"""Statements whose parameters travel apart from their text (PostgreSQL's extended protocol), for ingest's
per-group statements, and rows written by binary ``COPY`` (``write_rows``).

Django's psycopg backend binds parameters on the client: it quotes every value into the statement's text in
Python. Ingest's group statements carry a few thousand values each, several times a second; here their text
is fixed (one array parameter per column, ``unnest``) and psycopg sends the values beside it, dumped by its
compiled dumpers. The cursor is on Django's own connection, wrapped by Django as its own cursors are: it takes
part in the caller's transaction, database errors come out as Django's (``OperationalError`` and the rest),
and ``execute_wrapper``, ``CaptureQueriesContext`` and the query log see its statements.

``write_rows``' ``COPY`` also runs in the caller's transaction and its errors also come out as Django's, but
it goes through psycopg's own ``copy``, which ``execute_wrapper`` and the query log do not see.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import DataError, connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1  # an integer column's range
# How each PostgreSQL type's array is filled from Python values: psycopg refuses a list of mixed types (an int
# among floats), so each value is made the column's type first.
_PYTHON_TYPE = {"bigint": int, "integer": int, "float8": float, "boolean": bool, "text": str}


@contextmanager
def bound_cursor() -> Iterator[CursorWrapper]:
    """A server-binding cursor on Django's PostgreSQL connection (inside whatever transaction is open)."""
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = psycopg.Cursor(connection.connection)
    # As Django wraps its own cursors (BaseDatabaseWrapper.cursor): the debug wrapper logs the statements.
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    with wrapper(raw, connection) as cursor:
        yield cursor


def unnest(types: Sequence[str]) -> str:
    """``unnest(%s::t1[], %s::t2[], …)``: rows from one array parameter per column."""
    return "unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"


def arrays(rows: Sequence[Sequence[Any]], types: Sequence[str]) -> list[list[Any]]:
    """Rows as one list per column (what ``unnest(types)`` takes), each value of its column's type (None
    stays NULL)."""
    columns = zip(*rows, strict=True) if rows else [() for _ in types]
    return [[None if v is None else convert(v) for v in column]
            for column, convert in zip(columns, (_PYTHON_TYPE[t] for t in types), strict=True)]


def write_rows(table: str, names: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in ``names``' order, of PostgreSQL ``types``) into ``table``: one binary ``COPY`` on
    PostgreSQL, where blobs travel as raw bytes and numbers in their binary form (a text ``COPY`` writes a blob
    as hex, which both sides spend time on); ``executemany`` elsewhere. A value out of an ``int4`` column's range
    raises ``DataError`` on either, as PostgreSQL does for a text ``COPY``: psycopg's binary ``int4`` would wrap it,
    and SQLite would store it."""
    checked = _in_range(names, types, rows, table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with connection.wrap_database_errors, \
                    cursor.cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(types))
                for row in checked:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(names))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})", list(checked))


def _in_range(names: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]],
              table: str) -> Iterator[Sequence[Any]]:
    narrow = [i for i, t in enumerate(types) if t == "int4"]
    for row in rows:
        for i in narrow:
            if row[i] is not None and not _INT4_MIN <= row[i] <= _INT4_MAX:
                raise DataError(f"{names[i]} = {row[i]} is out of range for an integer column ({table})")
        yield row
