"""Memberships with a role (issue 10): ``Project.members`` gets a through model on the table it had.

The plain many-to-many's table ``dashboard_project_members`` becomes ``Membership``'s in migration state
only (its columns, foreign keys, indexes and unique constraint are the ones the model describes, by the
same names); then two columns are added. Every existing member becomes a plain member, with no date
(when they joined was not recorded).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="projects.project")),
                        ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="wattwise_memberships", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "db_table": "dashboard_project_members",
                        "ordering": ["project", "user__username"],
                        "unique_together": {("project", "user")},
                    },
                ),
                migrations.AlterField(
                    model_name="project",
                    name="members",
                    field=models.ManyToManyField(blank=True, related_name="wattwise_projects", through="projects.Membership", to=settings.AUTH_USER_MODEL),
                ),
            ],
        ),
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(choices=[("member", "member"), ("admin", "admin")], default="member", max_length=10),
        ),
        # Added without a default in the database, so existing rows get NULL rather than today's date.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AddField(
                    model_name="membership",
                    name="added_at",
                    field=models.DateTimeField(blank=True, null=True),
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="membership",
                    name="added_at",
                    field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
                ),
            ],
        ),
    ]
