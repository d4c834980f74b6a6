"""Each GPU counted once (issue 10): what ingest needs to count a GPU that several agent streams read
over the same time once (dashboard.telemetry.coverage), and what pages flag about it.

Rows stored before keep what they have: a GPU's part in a run gets no first stream, so the next window
of a run still streaming is counted against the other streams' windows (correct, a little slower); its
overlap is counted from then on. Windows get no previous reading time: their time is taken to start at
their first reading (and the longest window a GPU's part in a run has seen starts at 0).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('telemetry', '0003_node_identity'),
    ]

    operations = [
        migrations.AddField(
            model_name='rungpu',
            name='first_stream',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='rungpu',
            name='max_window_ms',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='rungpu',
            name='overlap_ms',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='rungpu',
            name='shared',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='rungpu',
            name='streams',
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='samplewindow',
            name='prev_t_ms',
            field=models.BigIntegerField(null=True),
        ),
    ]
