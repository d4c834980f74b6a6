# A window's six packed sample columns (raw little-endian arrays, 22 bytes a sample) become one losslessly encoded
# blob, SampleWindow.readings (delta, byte shuffle, zstd: dashboard.telemetry.columns). Every stored window is
# converted in place, chunk by chunk; nothing is lost, and the migration is reversible: migrating back to 0011
# unpacks every blob into the six columns again, byte for byte what they held.
#
# It reads and writes every window once (on a large database, minutes per hundred million samples; plan the
# upgrade for a quiet time). New rows are written encoded only once the new code runs.

import numpy as np
from django.db import migrations, models

from dashboard.telemetry import columns

# The raw columns' format before this migration, frozen here as it reads and writes them.
_RAW_DTYPES = {"t_offset_ms": "<u4", "energy_mj": "<i8", "power_mw": "<i4", "sm_clock_mhz": "<i2",
               "util_pct": "<i2", "temp_c": "<i2"}
_CHUNK = 2000


def _update(schema_editor, table, assignments, rows):
    if rows:
        with schema_editor.connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s", rows)


def encode_windows(apps, schema_editor):
    SampleWindow = apps.get_model("telemetry", "SampleWindow")
    table = schema_editor.quote_name(SampleWindow._meta.db_table)
    rows = []
    for window in SampleWindow.objects.only("id", *_RAW_DTYPES).order_by("id").iterator(chunk_size=_CHUNK):
        raw = {name: np.frombuffer(bytes(getattr(window, name)), dtype) for name, dtype in _RAW_DTYPES.items()}
        rows.append((columns.encode(raw), window.id))
        if len(rows) == _CHUNK:
            _update(schema_editor, table, "readings = %s", rows)
            rows = []
    _update(schema_editor, table, "readings = %s", rows)


def unpack_windows(apps, schema_editor):
    SampleWindow = apps.get_model("telemetry", "SampleWindow")
    table = schema_editor.quote_name(SampleWindow._meta.db_table)
    assignments = ", ".join(f"{name} = %s" for name in _RAW_DTYPES)
    rows = []
    for window in SampleWindow.objects.only("id", "readings").order_by("id").iterator(chunk_size=_CHUNK):
        decoded = columns.decode(window.readings)
        rows.append((*(np.ascontiguousarray(decoded[name], dtype).tobytes() for name, dtype in _RAW_DTYPES.items()),
                     window.id))
        if len(rows) == _CHUNK:
            _update(schema_editor, table, assignments, rows)
            rows = []
    _update(schema_editor, table, assignments, rows)


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0011_plan_marker_index"),
    ]

    operations = [
        migrations.AddField(model_name="samplewindow", name="readings", field=models.BinaryField(null=True)),
        # Nullable first, so that migrating back can add them to existing rows before unpacking into them.
        *(migrations.AlterField(model_name="samplewindow", name=name, field=models.BinaryField(null=True))
          for name in _RAW_DTYPES),
        migrations.RunPython(encode_windows, unpack_windows),
        migrations.RemoveField(model_name="samplewindow", name="t_offset_ms"),
        migrations.RemoveField(model_name="samplewindow", name="energy_mj"),
        migrations.RemoveField(model_name="samplewindow", name="power_mw"),
        migrations.RemoveField(model_name="samplewindow", name="sm_clock_mhz"),
        migrations.RemoveField(model_name="samplewindow", name="util_pct"),
        migrations.RemoveField(model_name="samplewindow", name="temp_c"),
        migrations.AlterField(model_name="samplewindow", name="readings", field=models.BinaryField()),
    ]
