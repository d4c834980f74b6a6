"""Foreign keys follow Project, Node, Run and RunGpu to their new apps (see dashboard.legacy)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('planner', '0001_initial'),
        ('projects', '0001_initial'),
        ('telemetry', '0001_initial'),
    ]

    # Same tables, same columns: only the models the keys point to moved apps.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='stageprofile',
                    name='node',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='stage_profiles', to='telemetry.node'),
                ),
                migrations.AlterField(
                    model_name='stageprofile',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='stage_profiles', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='stageprofile',
                    name='run',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='stage_profiles', to='telemetry.run'),
                ),
            ],
        ),
    ]
