# A run's devices listed by node, index, then component (models.DEVICE_ORDER): a node's CPU package and its DRAM
# share an index, and without the component their order was the database's choice. Options only: no SQL.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('telemetry', '0019_compacted_windows'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='rungpu',
            options={'ordering': ['gpu__node__name', 'gpu__index', 'gpu__component']},
        ),
    ]
