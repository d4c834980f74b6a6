"""Migration telemetry 0017 on SQLite (the embedded ``make run`` default), which remakes the windows' table
instead of swapping indexes: forward and back, windows kept, the longest window filled in. Run by the SQLite
part of ``make pytest``; the PostgreSQL suite checks the same migration on every partition
(``test_window_seq_index.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.dashboard.telemetry.migration_states import gpu_with_two_windows, migrated_to

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own path; PostgreSQL's is tested apart"),
]

BEFORE = [("telemetry", "0016_batchreceipt_run_index_dropped")]
AFTER = [("telemetry", "0017_window_seq_index")]


@pytest.fixture
def back_to_latest() -> Iterator[None]:
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def window_indexes() -> dict[str, tuple[bool, list[str]]]:
    """The windows' table's indexes: name -> (unique, columns)."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA index_list(dashboard_samplewindow)")
        listed = [(row[1], bool(row[2])) for row in cursor.fetchall()]
        found = {}
        for name, unique in listed:
            cursor.execute(f'PRAGMA index_info("{name}")')
            found[name] = (unique, [row[2] for row in cursor.fetchall()])
    return found


def unique_on_stream() -> bool:
    # Without first_ms: that was added for PostgreSQL's partitions (0013), whose unique keys must hold it.
    return any(unique and columns == ["run_gpu_id", "stream", "seq"]
               for unique, columns in window_indexes().values())


def indexed_by_seq() -> bool:
    return any(columns == ["run_gpu_id", "seq"] for _, columns in window_indexes().values())


@pytest.mark.usefixtures("back_to_latest")
def test_the_table_is_remade_without_the_unique_index_and_back_windows_kept():
    run_gpu = gpu_with_two_windows(migrated_to(BEFORE))
    assert unique_on_stream() and not indexed_by_seq()

    apps = migrated_to(AFTER)
    assert not unique_on_stream() and indexed_by_seq()
    windows = apps.get_model("telemetry", "SampleWindow").objects.order_by("seq")
    assert [(w.seq, w.energy_j, bytes(w.readings)) for w in windows] == [(0, 1.0, b"x"), (1, 2.0, b"x")]
    assert apps.get_model("telemetry", "RunGpu").objects.get(pk=run_gpu.pk).max_window_ms == 5_000

    apps = migrated_to(BEFORE)
    assert unique_on_stream() and not indexed_by_seq()
    assert apps.get_model("telemetry", "SampleWindow").objects.filter(run_gpu_id=run_gpu.pk).count() == 2
