"""Hand the models over to ``projects`` and ``telemetry``: the tables stay, under the same names.

Django's migration state forgets the models here; ``projects.0001`` and ``telemetry.0001`` declare
them again on the same tables. The content types move with them, so admin history and permissions
granted on the models are kept.
"""

from django.db import migrations

MOVED = {
    ("dashboard", "project"): "projects",
    ("api", "apitoken"): "projects",
    **{
        ("dashboard", model): "telemetry"
        for model in ("node", "gpu", "run", "runtag", "runnode", "rungpu", "samplewindow", "gpuminute",
                      "batchreceipt", "runevent", "rejection")
    },
}


def move_content_types(apps, schema_editor, *, backwards: bool = False) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for (old_label, model), new_label in MOVED.items():
        source, target = (new_label, old_label) if backwards else (old_label, new_label)
        # Leave it alone if the target exists already (created by a migrate that stopped half way).
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def move_content_types_back(apps, schema_editor) -> None:
    move_content_types(apps, schema_editor, backwards=True)


class Migration(migrations.Migration):

    dependencies = [
        ("dashboard", "0004_drop_redundant_gpu_indexes"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("projects", "0001_initial"),
        ("telemetry", "0001_initial"),
        ("planner", "0002_keys_to_projects_and_telemetry"),
        ("carbon", "0002_keys_to_projects_and_telemetry"),
    ]

    # State only: the tables now belong to projects and telemetry.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='gpu',
                    name='node',
                ),
                migrations.RemoveField(
                    model_name='rungpu',
                    name='gpu',
                ),
                migrations.RemoveField(
                    model_name='gpuminute',
                    name='run_gpu',
                ),
                migrations.RemoveField(
                    model_name='node',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='runevent',
                    name='node',
                ),
                migrations.RemoveField(
                    model_name='rejection',
                    name='node',
                ),
                migrations.RemoveField(
                    model_name='runnode',
                    name='node',
                ),
                migrations.RemoveField(
                    model_name='project',
                    name='members',
                ),
                migrations.RemoveField(
                    model_name='run',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='rungpu',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='runnode',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='runevent',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='runtag',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='samplewindow',
                    name='run_gpu',
                ),
                migrations.DeleteModel(
                    name='BatchReceipt',
                ),
                migrations.DeleteModel(
                    name='Gpu',
                ),
                migrations.DeleteModel(
                    name='GpuMinute',
                ),
                migrations.DeleteModel(
                    name='Rejection',
                ),
                migrations.DeleteModel(
                    name='Node',
                ),
                migrations.DeleteModel(
                    name='Project',
                ),
                migrations.DeleteModel(
                    name='RunNode',
                ),
                migrations.DeleteModel(
                    name='RunEvent',
                ),
                migrations.DeleteModel(
                    name='Run',
                ),
                migrations.DeleteModel(
                    name='RunTag',
                ),
                migrations.DeleteModel(
                    name='RunGpu',
                ),
                migrations.DeleteModel(
                    name='SampleWindow',
                ),
            ],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
