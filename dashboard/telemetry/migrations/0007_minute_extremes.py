# Minute rollups keep each minute's SM clock, utilisation and temperature extremes, and its temperature sum, so
# charts over long spans draw real min–max bands. Minutes stored before are filled in from their stored windows
# where every sample the minute counted is still there; the others stay null (readers fall back to the mean).

from collections import defaultdict

import numpy as np
from django.db import migrations, models

# The packed columns' format (dashboard.telemetry.columns), frozen here as this migration reads it.
_DTYPES = {"t_offset_ms": "<u4", "sm_clock_mhz": "<i2", "util_pct": "<i2", "temp_c": "<i2"}
_FOLDS = (("sm_clock_min_mhz", "sm_clock_mhz", np.minimum), ("sm_clock_max_mhz", "sm_clock_mhz", np.maximum),
          ("util_min_pct", "util_pct", np.minimum), ("util_max_pct", "util_pct", np.maximum),
          ("temp_min_c", "temp_c", np.minimum), ("temp_sum_c", "temp_c", np.add))
_MS_PER_MINUTE = 60_000


def _fold_windows(windows):
    """Per minute: the samples counted and each fold of the windows' readings."""
    found = defaultdict(lambda: {"samples": 0})
    for window in windows:
        t_ms = np.frombuffer(bytes(window.t_offset_ms), _DTYPES["t_offset_ms"]).astype(np.int64) + window.first_ms
        readings = {name: np.frombuffer(bytes(getattr(window, name)), _DTYPES[name]) for name in _DTYPES}
        minute = t_ms // _MS_PER_MINUTE * _MS_PER_MINUTE
        keys, starts = np.unique(minute, return_index=True)
        counts = np.diff(np.append(starts, minute.size))
        folded = {column: fold.reduceat(readings[name], starts) for column, name, fold in _FOLDS}
        for i, key in enumerate(keys.tolist()):
            into = found[key]
            into["samples"] += int(counts[i])
            for column, _, fold in _FOLDS:
                value = float(folded[column][i])
                into[column] = value if column not in into else float(fold(into[column], value))
    return found


def fill_from_windows(apps, schema_editor):
    GpuMinute = apps.get_model("telemetry", "GpuMinute")
    SampleWindow = apps.get_model("telemetry", "SampleWindow")
    run_gpu_ids = GpuMinute.objects.filter(sm_clock_min_mhz=None).values_list("run_gpu_id", flat=True).distinct()
    for run_gpu_id in list(run_gpu_ids):
        windows = SampleWindow.objects.filter(run_gpu_id=run_gpu_id).only(
            "first_ms", "t_offset_ms", "sm_clock_mhz", "util_pct", "temp_c").iterator(chunk_size=2000)
        found = _fold_windows(windows)
        filled = []
        for minute in GpuMinute.objects.filter(run_gpu_id=run_gpu_id, sm_clock_min_mhz=None):
            folds = found.get(minute.minute_ms)
            # Only where the windows hold every sample the minute counted (none deleted since).
            if folds is None or folds["samples"] != minute.samples:
                continue
            for column, _, _ in _FOLDS:
                setattr(minute, column, folds[column])
            filled.append(minute)
        GpuMinute.objects.bulk_update(filled, [column for column, _, _ in _FOLDS], batch_size=2000)


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0006_device_component"),
    ]

    operations = [
        migrations.AddField(model_name="gpuminute", name="sm_clock_min_mhz", field=models.FloatField(null=True)),
        migrations.AddField(model_name="gpuminute", name="sm_clock_max_mhz", field=models.FloatField(null=True)),
        migrations.AddField(model_name="gpuminute", name="util_min_pct", field=models.FloatField(null=True)),
        migrations.AddField(model_name="gpuminute", name="util_max_pct", field=models.FloatField(null=True)),
        migrations.AddField(model_name="gpuminute", name="temp_min_c", field=models.FloatField(null=True)),
        migrations.AddField(model_name="gpuminute", name="temp_sum_c", field=models.FloatField(null=True)),
        migrations.RunPython(fill_from_windows, migrations.RunPython.noop, elidable=True),
    ]
