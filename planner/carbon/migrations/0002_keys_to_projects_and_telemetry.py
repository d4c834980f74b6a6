"""Foreign keys follow Project, Node, Run and RunGpu to their new apps (see dashboard.legacy)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('carbon', '0001_initial'),
        ('projects', '0001_initial'),
        ('telemetry', '0001_initial'),
    ]

    # Same tables, same columns: only the models the keys point to moved apps.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='certificate',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='carbon_certificates', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='creditprice',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credit_prices', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='importedrun',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='imported_runs', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='nodesite',
                    name='node',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='carbon_site', to='telemetry.node'),
                ),
                migrations.AlterField(
                    model_name='offsetpolicy',
                    name='project',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='offset_policy', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='offsetretirement',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='offset_retirements', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='offsetretirement',
                    name='run',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='telemetry.run'),
                ),
                migrations.AlterField(
                    model_name='powerpurchase',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='carbon_ppas', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='projectcarbon',
                    name='project',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='carbon', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='regionpreference',
                    name='project',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='region_preference', to='projects.project'),
                ),
                migrations.AlterField(
                    model_name='runcarbon',
                    name='run',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='carbon', to='telemetry.run'),
                ),
                migrations.AlterField(
                    model_name='rungpucarbon',
                    name='run_gpu',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.rungpu'),
                ),
                migrations.AlterField(
                    model_name='runnodecarbon',
                    name='node',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.node'),
                ),
                migrations.AlterField(
                    model_name='site',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='carbon_sites', to='projects.project'),
                ),
            ],
        ),
    ]
