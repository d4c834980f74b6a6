"""Statements whose parameters travel apart from their text (PostgreSQL's extended protocol), for ingest's
per-group statements.

Django's psycopg backend binds parameters on the client: it quotes every value into the statement's text in
Python. For ingest's group statements (a few thousand values each, several times a second) that quoting was
about a fifth of the consumer's CPU (py-spy, docs/benchmarks.md). Here the text is fixed (one array
parameter per column, ``unnest``), and psycopg sends the values beside it, dumped by its compiled dumpers.
The cursor is on Django's own connection, so it takes part in the caller's transaction, and database errors
come out as Django's (``OperationalError`` and the rest), as callers expect.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection


@contextmanager
def bound_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A server-binding cursor on Django's PostgreSQL connection (inside whatever transaction is open)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def unnest(types: Sequence[str]) -> str:
    """``unnest(%s::t1[], %s::t2[], …)``: rows from one array parameter per column."""
    return "unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"


def columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (what ``unnest`` takes); ``width`` lists when there are no rows."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
