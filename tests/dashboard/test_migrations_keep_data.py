"""A database from before the apps were split upgrades with a plain ``migrate`` and loses nothing.

The split handed the models of the ``dashboard`` and ``api`` apps to ``projects`` and ``telemetry`` in
Django's migration state only (see dashboard.legacy): the tables keep their names and rows, and the
content types move, so admin history and granted permissions follow the models. These tests build a
database the way the code before the split did (its migrations are the legacy ones, unchanged), fill it
through the historical models, run ``migrate`` and read everything back through today's models. Then
they compare its schema with a fresh database's and with the one today's models describe.

Each such database lives in a PostgreSQL schema of its own in the test database (the connection's
``search_path`` points at it), so the shared ``public`` schema stays fully migrated for other tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest
from django.apps import apps as current_apps
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard.telemetry.columns import encode

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

# Where the code before the split left each app (commit 9093b99); Django's own apps at their leaves.
PRE_SPLIT = [
    ("dashboard", "0004_drop_redundant_gpu_indexes"),
    ("api", "0001_initial"),
    ("planner", "0001_initial"),
    ("carbon", "0001_initial"),
]
DJANGO_APPS = ("admin", "auth", "contenttypes", "sessions")
TOKEN = "ww_" + "t" * 43
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = datetime(2026, 1, 1, tzinfo=UTC)
# One window of GPU 0 as the agent packed it: every column, at its stored width.
WINDOW = {
    "t_offset_ms": np.array([0, 1000, 2000], dtype="<u4"),
    "energy_mj": np.array([9_000_000_000_000, 9_000_000_300_000, 9_000_000_600_000], dtype="<i8"),
    "power_mw": np.array([300_000, 301_500, 299_250], dtype="<i4"),
    "sm_clock_mhz": np.array([1980, 1965, 1410], dtype="<i2"),
    "util_pct": np.array([97, 98, 12], dtype="<i2"),
    "temp_c": np.array([61, 62, 62], dtype="<i2"),
}


# Columns added since the split, and what every row that was there before gets in them: members became
# plain members, with no date (when they joined was not recorded).
ADDED_COLUMNS = {"dashboard_project_members": {"role": "member", "added_at": None}}
# Nodes keep their signing key, with no key id (found by name until their token is rotated); rejections
# get the reason code their text shows.
ADDED_COLUMNS |= {
    "dashboard_node": {"key_id": "", "reported_name": "", "enrolled_by_id": None},
    "dashboard_rejection": {"reason_code": "clock", "key_id": ""},
}
# A GPU's part in a run has no first stream (its next window is counted against other streams'), no
# overlap counted; windows have no previous reading time (telemetry 0004_counted_once).
ADDED_COLUMNS |= {
    "dashboard_rungpu": {"first_stream": "", "shared": False, "streams": 1, "overlap_ms": 0, "max_window_ms": 0},
    "dashboard_samplewindow": {"prev_t_ms": None},
}
# Every device stored before components is a GPU (telemetry 0006_device_component).
ADDED_COLUMNS |= {"dashboard_gpu": {"component": "gpu"}}
# Nothing compacted yet: windows as they were sent (telemetry 0019_compacted_windows).
ADDED_COLUMNS["dashboard_rungpu"] |= {"compacted_ms": 0}
ADDED_COLUMNS["dashboard_samplewindow"] |= {"parts": None}
# Sessions closed before units of work reported none (telemetry 0010_units_of_work; read raw, as JSON text).
ADDED_COLUMNS |= {"dashboard_runnode": {"work": "{}"}}
# A minute gets its extremes and temperature sum from the window that holds its samples (telemetry
# 0007_minute_extremes): WINDOW's clock, utilisation and temperature.
ADDED_COLUMNS |= {"dashboard_gpuminute": {
    "sm_clock_min_mhz": 1410.0, "sm_clock_max_mhz": 1980.0, "util_min_pct": 12.0, "util_max_pct": 98.0,
    "temp_min_c": 61.0, "temp_sum_c": 185.0,
}}
NODE_TOKEN = "ww_" + "n" * 43
NODE_KEY_HEX = hashlib.sha256(b"wattwise-hmac-v1:" + NODE_TOKEN.encode()).hexdigest()  # as create_node stored it


# A window's six packed columns became one encoded blob (telemetry 0012_encoded_windows).
RECAST_COLUMNS = {"dashboard_samplewindow": (tuple(WINDOW), {"readings": encode(WINDOW)})}


def recast(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row as it is after the migrations since the split: added columns, and columns stored anew."""
    dropped, added = RECAST_COLUMNS.get(table, ((), {}))
    return {**{k: v for k, v in row.items() if k not in dropped}, **ADDED_COLUMNS.get(table, {}), **added}


def new_label(old_label: str, model: str) -> str:
    """Where the split moved a content type: Project and ApiToken to projects, the rest of dashboard's
    models to telemetry; planner's and carbon's stay."""
    if (old_label, model) in {("dashboard", "project"), ("api", "apitoken")}:
        return "projects"
    return "telemetry" if old_label == "dashboard" else old_label


@contextmanager
def own_schema(name: str) -> Iterator[None]:
    """Run the block in an empty PostgreSQL schema ``name`` (the connection sees nothing else); drop it after."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        (previous,) = cursor.fetchone()
        cursor.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        cursor.execute(f"CREATE SCHEMA {name}")
        cursor.execute(f"SET search_path TO {name}")
    ContentType.objects.clear_cache()
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {previous}")
            cursor.execute(f"DROP SCHEMA {name} CASCADE")
        ContentType.objects.clear_cache()


def migrate_to_pre_split() -> Any:
    """Migrate the current schema to where the old code left it; return that state's historical apps."""
    executor = MigrationExecutor(connection)
    targets = [leaf for leaf in executor.loader.graph.leaf_nodes() if leaf[0] in DJANGO_APPS] + PRE_SPLIT
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def create_content_types_and_permissions(old_apps: Any) -> None:
    """What the old code's ``migrate`` left after its migrations: a content type and the default
    permissions for every model (post_migrate, which ran on the old models)."""
    ContentType = old_apps.get_model("contenttypes", "ContentType")
    Permission = old_apps.get_model("auth", "Permission")
    for model in old_apps.get_models():
        opts = model._meta
        content_type = ContentType.objects.create(app_label=opts.app_label, model=opts.model_name)
        for action in opts.default_permissions:
            Permission.objects.create(
                content_type=content_type, codename=f"{action}_{opts.model_name}",
                name=f"Can {action} {opts.verbose_name_raw}",
            )


def fill_old_database(old_apps: Any) -> None:
    """One of everything the upgrade must keep, written through the models as they were before the split."""

    def model(label: str, name: str) -> Any:
        return old_apps.get_model(label, name)

    alice = model("auth", "User").objects.create(username="alice", password=make_password("pw"))
    project = model("dashboard", "Project").objects.create(name="vision")
    project.members.add(alice)
    node = model("dashboard", "Node").objects.create(
        project=project, name="gpu-node-1", signing_key_hex=NODE_KEY_HEX, last_seen_at=HOUR
    )
    gpus = [
        model("dashboard", "Gpu").objects.create(
            node=node, uuid=f"GPU-{i}", index=i, name="H100", energy_source=source, power_field="instant"
        )
        for i, source in enumerate(("counter", "power"))
    ]
    run = model("dashboard", "Run").objects.create(
        project=project, name="resnet-50", status="finished", started_at=HOUR, ended_at=HOUR.replace(hour=2)
    )
    for tag in ("baseline", "fp16"):
        model("dashboard", "RunTag").objects.create(run=run, name=tag)
    model("dashboard", "RunNode").objects.create(
        run=run, node=node, stream="s-1", backend="nvml", host="host-1", opened_at=HOUR, closed_at=HOUR,
        last_seq=7, samples_declared=3, zone="SE-SE3", region="aws:eu-north-1",
    )
    run_gpus = [
        model("dashboard", "RunGpu").objects.create(
            run=run, gpu=gpu, energy_j=600.0 + i, samples=3, power_sum_w=900.75, peak_power_w=301.5,
            first_ms=T0_MS, last_ms=T0_MS + 2000, estimated=bool(i),
        )
        for i, gpu in enumerate(gpus)
    ]
    model("dashboard", "SampleWindow").objects.create(
        run_gpu=run_gpus[0], stream="s-1", seq=7, first_ms=T0_MS, last_ms=T0_MS + 2000, samples=3,
        energy_j=0.6, prev_energy_mj=8_999_999_700_000,
        **{name: values.tobytes() for name, values in WINDOW.items()},
    )
    model("dashboard", "GpuMinute").objects.create(
        run_gpu=run_gpus[0], minute_ms=T0_MS, samples=3, energy_j=0.6, power_sum_w=900.75,
        power_min_w=299.25, power_max_w=301.5, sm_clock_sum_mhz=5355.0, util_sum_pct=207.0, temp_max_c=62.0,
    )
    model("dashboard", "BatchReceipt").objects.create(
        node=node, stream="s-1", seq=7, run=run, body_sha256="cd" * 32, samples=3
    )
    model("dashboard", "RunEvent").objects.create(
        run=run, node=node, t_ms=T0_MS + 1000, kind="stage_begin", data={"stage": 0, "step": 12}
    )
    model("dashboard", "Rejection").objects.create(
        kind="batch", node_name="gpu-node-1", node=node, size_bytes=512,
        reason="samples lie in the future (2026-01-02T00:00:00+00:00): check the node's clock",
    )
    model("api", "ApiToken").objects.create(
        user=alice, name="ci", token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest(), prefix=TOKEN[:10]
    )
    model("planner", "StageProfile").objects.create(
        project=project, node=node, run=run, created_by=alice, name="pipeline", source="agent",
        csv_text="stage,freq\n0,1980\n", digest="ef" * 32, num_stages=1, num_rows=1, frequencies_mhz=[1980],
    )

    site = model("carbon", "Site").objects.create(project=project, name="Stockholm", where="SE-SE3", pue=1.2)
    model("carbon", "NodeSite").objects.create(node=node, site=site)
    run_carbon = model("carbon", "RunCarbon").objects.create(
        run=run, computed_at=HOUR, energy_j=1201.0, facility_energy_kwh=0.0004, emissions_g=0.018,
        market_emissions_g=0.02, hours=1, fallback_hours=0, notes=["from the test"],
    )
    node_carbon = model("carbon", "RunNodeCarbon").objects.create(
        run_carbon=run_carbon, node=node, where="SE-SE3", zone="SE-SE3", site_name="Stockholm",
        located_by="site", pue=1.2, energy_j=1201.0, facility_energy_kwh=0.0004, emissions_g=0.018,
        market_emissions_g=0.02, market={"basis": "residual"},
    )
    model("carbon", "RunCarbonHour").objects.create(
        node_carbon=node_carbon, hour_utc=HOUR, energy_j=1201.0, pue=1.2, facility_energy_kwh=0.0004,
        intensity_g_per_kwh=45.0, emissions_g=0.018, market_emissions_g=0.02, source="file", basis="lifecycle",
        year=2026, step="hour", reason="measured",
    )
    for run_gpu in run_gpus:
        model("carbon", "RunGpuCarbon").objects.create(
            run_carbon=run_carbon, run_gpu=run_gpu, energy_j=run_gpu.energy_j, emissions_g=0.009,
            market_emissions_g=0.01,
        )
    model("carbon", "OffsetRetirement").objects.create(
        project=project, run=run, retired_on=date(2026, 1, 2), credit_type="avoidance", tonnes=0.5,
        price_per_tonne=12.0, registry="Gold Standard", reference="GS-1",
    )

    # Admin history and permissions on the old content types.
    ContentType = model("contenttypes", "ContentType")
    Permission = model("auth", "Permission")
    project_type = ContentType.objects.get(app_label="dashboard", model="project")
    token_type = ContentType.objects.get(app_label="api", model="apitoken")
    LogEntryThen = model("admin", "LogEntry")
    LogEntryThen.objects.create(
        user=alice, content_type=project_type, object_id=str(project.pk), object_repr="vision",
        action_flag=ADDITION, change_message="[]",
    )
    LogEntryThen.objects.create(
        user=alice, content_type=token_type, object_id="1", object_repr="ci", action_flag=CHANGE,
        change_message="renamed",
    )
    alice.user_permissions.add(Permission.objects.get(content_type=project_type, codename="change_project"))
    operators = model("auth", "Group").objects.create(name="operators")
    operators.permissions.add(Permission.objects.get(content_type__app_label="dashboard", codename="view_run"))
    alice.groups.add(operators)


def all_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the current schema but the migration record, in primary-key order."""
    rows = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if table != "django_migrations":
                cursor.execute(f'SELECT * FROM "{table}" ORDER BY 1')
                columns = [column.name for column in cursor.description]
                rows[table] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return rows


def assert_nothing_lost(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> None:
    """Every row is still there, unchanged but for the moved content types' app labels, the columns
    added since (with the values old rows get) and the windows' columns stored encoded; the only rows added are the content types and
    permissions of models new since the split."""
    moved = [
        {**row, "app_label": new_label(row["app_label"], row["model"])} for row in before["django_content_type"]
    ]
    expected = {
        table: [recast(table, row) for row in rows]
        for table, rows in {**before, "django_content_type": moved}.items()
    }
    # Telemetry 0017 fills in the longest window of the GPUs' parts in runs stored before 0004 (0 above).
    for row in expected.get("dashboard_rungpu", []):
        row["max_window_ms"] = max([w["last_ms"] - w["first_ms"] for w in before.get("dashboard_samplewindow", [])
                                    if w["run_gpu_id"] == row["id"]], default=0)
    added = {}
    for table, rows in expected.items():
        assert after[table][: len(rows)] == rows, f"rows of {table} changed"
        if after[table][len(rows) :]:
            added[table] = after[table][len(rows) :]
    assert set(added) <= {"django_content_type", "auth_permission"}
    new_types = {row["id"] for row in added.get("django_content_type", [])}
    assert {row["content_type_id"] for row in added.get("auth_permission", [])} <= new_types


def check_rows_read_through_todays_models() -> None:
    from dashboard.projects.models import ApiToken, Membership, Project
    from dashboard.projects.tokens import user_for_token
    from dashboard.telemetry.columns import decode_window
    from dashboard.telemetry.models import Node, Rejection, Run
    from planner.carbon.models import OffsetRetirement, RunGpuCarbon
    from planner.plans.models import StageProfile

    alice = get_user_model().objects.get(username="alice")
    project = Project.objects.get(name="vision")
    assert list(project.members.all()) == [alice]
    membership = project.memberships.get()
    assert (membership.user, membership.role, membership.added_at) == (alice, Membership.Role.MEMBER, None)
    assert list(Project.objects.for_user(alice)) == [project]
    node = Node.objects.get(name="gpu-node-1")
    assert (node.project, node.signing_key_hex, node.last_seen_at) == (project, NODE_KEY_HEX, HOUR)
    assert [(g.uuid, g.index, g.energy_source) for g in node.gpus.all()] == [
        ("GPU-0", 0, "counter"), ("GPU-1", 1, "power")
    ]

    run = Run.objects.for_user(alice).get(name="resnet-50")
    assert (run.status, run.started_at, run.ended_at) == ("finished", HOUR, HOUR.replace(hour=2))
    assert [tag.name for tag in run.tags.all()] == ["baseline", "fp16"]
    run_node = run.run_nodes.get()
    assert (run_node.node, run_node.last_seq, run_node.zone, run_node.region) == (
        node, 7, "SE-SE3", "aws:eu-north-1"
    )
    first, second = run.run_gpus.all()
    assert (first.gpu.uuid, first.energy_j, first.samples, first.mean_power_w, first.estimated) == (
        "GPU-0", 600.0, 3, 300.25, False
    )
    assert (second.gpu.uuid, second.energy_j, second.estimated) == ("GPU-1", 601.0, True)
    window = first.windows.get()
    assert (window.seq, window.prev_energy_mj) == (7, 8_999_999_700_000)
    arrays = decode_window(window)
    np.testing.assert_array_equal(arrays.t_ms, T0_MS + WINDOW["t_offset_ms"].astype(np.int64))
    for name in ("energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c"):
        np.testing.assert_array_equal(getattr(arrays, name), WINDOW[name])
    minute = first.minutes.get()
    assert (minute.minute_ms, minute.power_max_w, minute.temp_max_c) == (T0_MS, 301.5, 62.0)
    assert [(r.seq, r.node) for r in run.receipts.all()] == [(7, node)]
    assert [(e.kind, e.data, e.node) for e in run.events.all()] == [("stage_begin", {"stage": 0, "step": 12}, node)]
    assert (Rejection.objects.get().node, Rejection.objects.get().reason_code) == (node, Rejection.Code.CLOCK)

    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (alice, "ci", TOKEN[:10])
    assert user_for_token(TOKEN) == alice

    profile = StageProfile.objects.for_user(alice).get()
    assert (profile.project, profile.node, profile.run, profile.created_by) == (project, node, run, alice)
    assert node.carbon_site.site.name == "Stockholm"
    node_carbon = run.carbon.nodes.get()
    assert (node_carbon.node, node_carbon.market) == (node, {"basis": "residual"})
    assert node_carbon.hours.get().intensity_g_per_kwh == 45.0
    assert sorted(c.run_gpu_id for c in RunGpuCarbon.objects.filter(run_carbon=run.carbon)) == [
        first.pk, second.pk
    ]
    assert OffsetRetirement.objects.get().run == run


def check_the_old_node_still_streams() -> None:
    """A node registered before key ids is found by name, from an old agent (no key id) or a new one."""
    from dashboard.telemetry import ingest
    from dashboard.telemetry.models import RunGpu
    from tests.factories import RegisteredNode, simple_batch

    node = RegisteredNode("gpu-node-1", NODE_TOKEN, "vision")
    old_agent = {k: v for k, v in simple_batch(node, run="after-upgrade").items() if k != "key"}
    assert ingest.ingest_batch(old_agent).status == "stored"
    assert ingest.ingest_batch(simple_batch(node, run="after-upgrade", seq=1)).status == "stored"
    assert RunGpu.objects.get(run__name="after-upgrade").samples == 20


def check_admin_history_and_permissions_moved() -> None:
    from dashboard.projects.models import ApiToken, Project
    from dashboard.telemetry.models import Run

    ContentType.objects.clear_cache()
    assert not ContentType.objects.filter(app_label__in=["dashboard", "api"]).exists()
    project_entry = LogEntry.objects.get(object_repr="vision")
    assert project_entry.content_type == ContentType.objects.get_for_model(Project)
    assert project_entry.get_edited_object() == Project.objects.get(name="vision")
    assert LogEntry.objects.get(object_repr="ci").content_type == ContentType.objects.get_for_model(ApiToken)
    alice = get_user_model().objects.get(username="alice")
    assert alice.has_perm("projects.change_project")
    assert alice.has_perm("telemetry.view_run")  # through her group
    assert not alice.has_perm("dashboard.change_project")
    assert Permission.objects.get(codename="view_run").content_type == ContentType.objects.get_for_model(Run)


def test_database_from_before_the_split_keeps_every_row_relation_and_permission():
    with own_schema("before_split"):
        old_apps = migrate_to_pre_split()
        create_content_types_and_permissions(old_apps)
        fill_old_database(old_apps)
        before = all_rows()

        call_command("migrate", interactive=False, verbosity=0)

        assert_nothing_lost(before, all_rows())
        check_rows_read_through_todays_models()
        check_the_old_node_still_streams()
        check_admin_history_and_permissions_moved()


def test_content_types_made_by_a_partial_migrate_give_way_to_the_old_ones():
    """``migrate telemetry`` first runs post_migrate, which makes new, empty content types for the moved
    models; the full ``migrate`` after it must keep the old ones, which hold the history and grants."""
    with own_schema("partial_upgrade"):
        old_apps = migrate_to_pre_split()
        create_content_types_and_permissions(old_apps)
        fill_old_database(old_apps)
        before = all_rows()

        call_command("migrate", "telemetry", interactive=False, verbosity=0)
        assert ContentType.objects.filter(app_label="telemetry", model="run").exists()
        call_command("migrate", interactive=False, verbosity=0)

        assert_nothing_lost(before, all_rows())
        check_admin_history_and_permissions_moved()


def schema() -> dict[str, set[tuple]]:
    """Tables, columns, constraints and indexes of the connection's schema, free of the schema's name.

    Partitioned tables count as tables; their partitions (weeks of raw windows and receipts, which differ
    with the data and the day) are left out: they take their columns, keys and indexes from their table."""
    queries = {
        "columns": """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                   pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
              AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped""",
        "constraints": """
            SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
            WHERE c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition""",
        "indexes": """
            SELECT tablename, indexname,
                   replace(replace(indexdef, ' ON ONLY ', ' ON '), ' ON ' || current_schema() || '.', ' ON ')
            FROM pg_indexes i JOIN pg_class c ON c.relname = i.tablename AND c.relnamespace = current_schema()::regnamespace
            WHERE schemaname = current_schema() AND NOT c.relispartition""",
    }
    found = {}
    with connection.cursor() as cursor:
        for what, sql in queries.items():
            cursor.execute(sql)
            found[what] = set(cursor.fetchall())
    return found


def of_tables(found: dict[str, set[tuple]], tables: set[str]) -> dict[str, set[tuple]]:
    return {what: {row for row in rows if row[0] in tables} for what, rows in found.items()}


def differences(expected: dict[str, set[tuple]], got: dict[str, set[tuple]]) -> dict[str, Any]:
    return {
        what: {"missing": sorted(expected[what] - got[what]), "extra": sorted(got[what] - expected[what])}
        for what in expected
        if expected[what] != got[what]
    }


def test_upgraded_database_has_the_schema_of_a_fresh_one_and_of_the_models():
    fresh = schema()  # the test database: migrated from nothing by today's migrations
    assert fresh["columns"], "the test database has no tables"

    with own_schema("upgraded"):
        migrate_to_pre_split()
        call_command("migrate", interactive=False, verbosity=0)
        upgraded = schema()
    assert differences(fresh, upgraded) == {}

    # The state the migrations end in is what the models say, so the tables they left (created before the
    # split, and declared again in state only) must be the tables the models would create. Django's own
    # tables are left out: auth's many-to-many tables keep the integer ids of its first migration.
    ours = {
        model._meta.db_table
        for config in current_apps.get_app_configs()
        if config.name.startswith(("dashboard.", "planner."))
        for model in config.get_models(include_auto_created=True)
    }
    with own_schema("from_models"):
        with connection.schema_editor() as editor:
            for model in current_apps.get_models():
                editor.create_model(model)
        from_models = schema()
    # Raw windows and receipts are partitioned by migration 0013, which models cannot say: their keys carry
    # the partition key, and ids come from an owned sequence, not an identity. Their columns still match.
    partitioned = {"dashboard_samplewindow", "dashboard_batchreceipt"}
    assert differences(of_tables(from_models, ours - partitioned), of_tables(fresh, ours - partitioned)) == {}

    def plain_columns(found: dict[str, set[tuple]]) -> set[tuple]:
        return {row[:4] for row in of_tables(found, partitioned)["columns"]}

    assert plain_columns(from_models) == plain_columns(fresh)


def test_split_can_be_rolled_back_and_replayed():
    """``migrate`` back to where the old code was gives the old app labels back, rows untouched."""
    from dashboard.projects.models import Project

    project = Project.objects.create(name="vision")
    before = schema()
    executor = MigrationExecutor(connection)
    try:
        executor.migrate([*PRE_SPLIT, ("projects", None), ("telemetry", None)])
        old_apps = executor.loader.project_state(PRE_SPLIT).apps
        assert old_apps.get_model("dashboard", "Project").objects.get().name == "vision"
        OldContentType = old_apps.get_model("contenttypes", "ContentType")
        assert OldContentType.objects.filter(app_label="dashboard", model="run").exists()
        # The moved models' content types went back; those of models new since the split (a Membership)
        # stay, as Django leaves content types of models a rollback removes.
        moved_back = OldContentType.objects.filter(app_label__in=["dashboard", "api"]).values_list("model")
        assert not OldContentType.objects.filter(app_label__in=["projects", "telemetry"], model__in=moved_back).exists()
    finally:
        call_command("migrate", interactive=False, verbosity=0)
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(Project).app_label == "projects"
    assert Project.objects.get() == project
    assert schema() == before


def test_models_need_no_new_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)

