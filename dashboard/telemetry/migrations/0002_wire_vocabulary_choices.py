"""Choices for what telemetry stores in the wire's spelling (energy source, power field, refused message
kind): the values stay as they were; no data change."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('telemetry', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='gpu',
            name='energy_source',
            field=models.CharField(choices=[('counter', 'energy counter'), ('power_integration', 'power integration (estimated)')], default='counter', max_length=32),
        ),
        migrations.AlterField(
            model_name='gpu',
            name='power_field',
            field=models.CharField(choices=[('instant', 'instant'), ('average', 'average')], default='average', max_length=16),
        ),
        migrations.AlterField(
            model_name='rejection',
            name='kind',
            field=models.CharField(choices=[('batch', 'batch'), ('open_run', 'open run'), ('close_run', 'close run'), ('stage_profile', 'stage profile')], max_length=32),
        ),
    ]
