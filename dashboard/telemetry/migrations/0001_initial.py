"""Telemetry's models, taken over from the dashboard app they lived in before the split (see dashboard.legacy)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('projects', '0001_initial'),
        ("dashboard", "0004_drop_redundant_gpu_indexes"),
    ]

    # The tables exist already (created by the dashboard app's migrations): state only.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Node',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200, unique=True)),
                        ('signing_key_hex', models.CharField(max_length=64)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_seen_at', models.DateTimeField(blank=True, null=True)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='nodes', to='projects.project')),
                    ],
                    options={
                        'db_table': 'dashboard_node',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='Gpu',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('uuid', models.CharField(max_length=200)),
                        ('index', models.PositiveIntegerField()),
                        ('name', models.CharField(blank=True, max_length=200)),
                        ('energy_source', models.CharField(default='counter', max_length=32)),
                        ('power_field', models.CharField(default='average', max_length=16)),
                        ('simulated', models.BooleanField(default=False)),
                        ('node', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='gpus', to='telemetry.node')),
                    ],
                    options={
                        'db_table': 'dashboard_gpu',
                        'ordering': ['node__name', 'index'],
                    },
                ),
                migrations.CreateModel(
                    name='Rejection',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('received_at', models.DateTimeField(auto_now_add=True)),
                        ('kind', models.CharField(max_length=32)),
                        ('node_name', models.CharField(blank=True, max_length=200)),
                        ('reason', models.TextField()),
                        ('size_bytes', models.IntegerField(default=0)),
                        ('node', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='rejections', to='telemetry.node')),
                    ],
                    options={
                        'db_table': 'dashboard_rejection',
                        'ordering': ['-received_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Run',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('status', models.CharField(choices=[('running', 'running'), ('finished', 'finished')], default='running', max_length=16)),
                        ('simulated', models.BooleanField(default=False)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('ended_at', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='projects.project')),
                    ],
                    options={
                        'db_table': 'dashboard_run',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='BatchReceipt',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('stream', models.CharField(max_length=64)),
                        ('seq', models.BigIntegerField()),
                        ('body_sha256', models.CharField(max_length=64)),
                        ('samples', models.IntegerField()),
                        ('received_at', models.DateTimeField(auto_now_add=True)),
                        ('node', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='receipts', to='telemetry.node')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='receipts', to='telemetry.run')),
                    ],
                    options={
                        'db_table': 'dashboard_batchreceipt',
                    },
                ),
                migrations.CreateModel(
                    name='RunEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('t_ms', models.BigIntegerField()),
                        ('kind', models.CharField(max_length=200)),
                        ('data', models.JSONField(default=dict)),
                        ('node', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='telemetry.node')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='telemetry.run')),
                    ],
                    options={
                        'db_table': 'dashboard_runevent',
                    },
                ),
                migrations.CreateModel(
                    name='RunGpu',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('energy_j', models.FloatField(default=0.0)),
                        ('samples', models.BigIntegerField(default=0)),
                        ('power_sum_w', models.FloatField(default=0.0)),
                        ('peak_power_w', models.FloatField(default=0.0)),
                        ('first_ms', models.BigIntegerField(null=True)),
                        ('last_ms', models.BigIntegerField(null=True)),
                        ('estimated', models.BooleanField(default=False)),
                        ('gpu', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='run_gpus', to='telemetry.gpu')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='run_gpus', to='telemetry.run')),
                    ],
                    options={
                        'db_table': 'dashboard_rungpu',
                        'ordering': ['gpu__node__name', 'gpu__index'],
                    },
                ),
                migrations.CreateModel(
                    name='GpuMinute',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('minute_ms', models.BigIntegerField()),
                        ('samples', models.IntegerField()),
                        ('energy_j', models.FloatField()),
                        ('power_sum_w', models.FloatField()),
                        ('power_min_w', models.FloatField()),
                        ('power_max_w', models.FloatField()),
                        ('sm_clock_sum_mhz', models.FloatField()),
                        ('util_sum_pct', models.FloatField()),
                        ('temp_max_c', models.FloatField()),
                        ('run_gpu', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='minutes', to='telemetry.rungpu')),
                    ],
                    options={
                        'db_table': 'dashboard_gpuminute',
                    },
                ),
                migrations.CreateModel(
                    name='RunNode',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('stream', models.CharField(max_length=64)),
                        ('backend', models.CharField(blank=True, max_length=32)),
                        ('host', models.CharField(blank=True, max_length=200)),
                        ('opened_at', models.DateTimeField(blank=True, null=True)),
                        ('closed_at', models.DateTimeField(blank=True, null=True)),
                        ('last_seq', models.BigIntegerField(blank=True, null=True)),
                        ('samples_declared', models.BigIntegerField(blank=True, null=True)),
                        ('zone', models.CharField(blank=True, max_length=64)),
                        ('region', models.CharField(blank=True, max_length=64)),
                        ('node', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='run_nodes', to='telemetry.node')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='run_nodes', to='telemetry.run')),
                    ],
                    options={
                        'db_table': 'dashboard_runnode',
                    },
                ),
                migrations.CreateModel(
                    name='RunTag',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=64)),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tags', to='telemetry.run')),
                    ],
                    options={
                        'db_table': 'dashboard_runtag',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='SampleWindow',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('stream', models.CharField(max_length=64)),
                        ('seq', models.BigIntegerField()),
                        ('first_ms', models.BigIntegerField()),
                        ('last_ms', models.BigIntegerField()),
                        ('samples', models.IntegerField()),
                        ('energy_j', models.FloatField()),
                        ('prev_energy_mj', models.BigIntegerField(null=True)),
                        ('t_offset_ms', models.BinaryField()),
                        ('energy_mj', models.BinaryField()),
                        ('power_mw', models.BinaryField()),
                        ('sm_clock_mhz', models.BinaryField()),
                        ('util_pct', models.BinaryField()),
                        ('temp_c', models.BinaryField()),
                        ('run_gpu', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='windows', to='telemetry.rungpu')),
                    ],
                    options={
                        'db_table': 'dashboard_samplewindow',
                    },
                ),
                migrations.AddConstraint(
                    model_name='gpu',
                    constraint=models.UniqueConstraint(fields=('node', 'uuid'), name='gpu_unique_per_node'),
                ),
                migrations.AddConstraint(
                    model_name='run',
                    constraint=models.UniqueConstraint(fields=('project', 'name'), name='run_unique_per_project'),
                ),
                migrations.AddConstraint(
                    model_name='batchreceipt',
                    constraint=models.UniqueConstraint(fields=('node', 'stream', 'seq'), name='receipt_unique'),
                ),
                migrations.AddIndex(
                    model_name='runevent',
                    index=models.Index(fields=['run', 'kind', 't_ms'], name='event_run_kind_time'),
                ),
                migrations.AddConstraint(
                    model_name='rungpu',
                    constraint=models.UniqueConstraint(fields=('run', 'gpu'), name='run_gpu_unique'),
                ),
                migrations.AddConstraint(
                    model_name='gpuminute',
                    constraint=models.UniqueConstraint(fields=('run_gpu', 'minute_ms'), name='minute_unique_per_gpu'),
                ),
                migrations.AddConstraint(
                    model_name='runnode',
                    constraint=models.UniqueConstraint(fields=('run', 'node', 'stream'), name='run_node_stream_unique'),
                ),
                migrations.AddConstraint(
                    model_name='runtag',
                    constraint=models.UniqueConstraint(fields=('run', 'name'), name='run_tag_unique'),
                ),
                migrations.AddIndex(
                    model_name='samplewindow',
                    index=models.Index(fields=['run_gpu', 'first_ms'], name='window_gpu_time'),
                ),
                migrations.AddConstraint(
                    model_name='samplewindow',
                    constraint=models.UniqueConstraint(fields=('run_gpu', 'stream', 'seq'), name='window_unique_per_gpu_stream_seq'),
                ),
            ],
        ),
    ]
