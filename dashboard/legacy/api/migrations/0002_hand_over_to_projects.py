"""Hand ApiToken over to ``projects``: the table ``api_apitoken`` stays (see dashboard.legacy)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('api', '0001_initial'),
        ("projects", "0001_initial"),
    ]

    # State only: the table now belongs to projects (content type moved by dashboard.0005).
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name='ApiToken',
                ),
            ],
        ),
    ]
