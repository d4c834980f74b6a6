"""Choices for the grid-carbon vocabulary the carbon app stores (basis, granularity, signal, fallback step,
origin, import route): the values stay as they were; no data change."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('carbon', '0003_recompute_claim'),
    ]

    operations = [
        migrations.AlterField(
            model_name='intensityimport',
            name='via',
            field=models.CharField(choices=[('upload', 'upload'), ('command', 'command')], default='upload', max_length=16),
        ),
        migrations.AlterField(
            model_name='intensityrow',
            name='granularity',
            field=models.CharField(choices=[('hour', 'hour'), ('day', 'day'), ('month', 'month'), ('year', 'year')], max_length=8),
        ),
        migrations.AlterField(
            model_name='intensityrow',
            name='origin',
            field=models.CharField(choices=[('file', 'imported file'), ('live', 'live provider')], default='file', max_length=16),
        ),
        migrations.AlterField(
            model_name='intensityrow',
            name='signal',
            field=models.CharField(choices=[('average', 'average'), ('marginal', 'marginal')], default='average', max_length=16),
        ),
        migrations.AlterField(
            model_name='runcarbonhour',
            name='basis',
            field=models.CharField(choices=[('lifecycle', 'lifecycle'), ('direct', 'direct')], max_length=16),
        ),
        migrations.AlterField(
            model_name='runcarbonhour',
            name='step',
            field=models.CharField(choices=[('hourly', "the zone's hourly value"), ('imported_period', 'an imported day, month or year'), ('zone_yearly', "the zone's yearly average"), ('country_yearly', "the country's yearly average"), ('world', 'the world average')], max_length=16),
        ),
    ]
