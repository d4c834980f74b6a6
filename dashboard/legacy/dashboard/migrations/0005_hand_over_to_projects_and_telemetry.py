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
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    for (old_label, model), new_label in MOVED.items():
        source, target = (new_label, old_label) if backwards else (old_label, new_label)
        moving = ContentType.objects.using(db).filter(app_label=source, model=model).first()
        if moving is None:  # a database created after the split: post_migrate makes the new ones
            continue
        # The target exists already when post_migrate ran in between (``migrate telemetry`` before this
        # migration): made then, it holds nothing, while the moving one holds the admin history and the
        # permissions people were granted. The moving one takes its place; deleting the other deletes
        # the permissions made with it (its log entries, if any, move over first).
        stray = ContentType.objects.using(db).filter(app_label=target, model=model).first()
        if stray is not None:
            LogEntry.objects.using(db).filter(content_type=stray).update(content_type=moving)
            stray.delete()
        moving.app_label = target
        moving.save(update_fields=["app_label"])


def move_content_types_back(apps, schema_editor) -> None:
    move_content_types(apps, schema_editor, backwards=True)


class Migration(migrations.Migration):

    dependencies = [
        ("dashboard", "0004_drop_redundant_gpu_indexes"),
        ("contenttypes", "0002_remove_content_type_name"),
        # move_content_types keeps admin history (LogEntry) and permissions (auth) with the content types.
        ("admin", "0001_initial"),
        ("auth", "0001_initial"),
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
