"""The throttle shared by every process that queues recomputes while a run streams (planner.carbon.recompute)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('carbon', '0002_keys_to_projects_and_telemetry'),
        ('telemetry', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='RecomputeClaim',
            fields=[
                ('run', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='telemetry.run')),
                ('queued_at', models.DateTimeField()),
            ],
        ),
    ]
