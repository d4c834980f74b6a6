"""Node identity from tokens (issue 10): enrolment tokens, key ids, node names unique per project, and
a reason code on every rejection.

Nodes registered before keep working: their signing key stays, and with no key id they are found by
name until their token is rotated (the key id cannot be derived from the stored key). Rejections
recorded before get the code their reason text shows (the texts are the app's own); anything else is
``malformed``.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# What the reasons recorded before this migration start with or contain, and their code.
REASON_CODES = [
    ("unknown node", "unknown_key"),
    ("bad signature", "bad_signature"),
    ("message too large", "too_large"),
    ("replayed sequence number", "replay"),
    ("in the future", "clock"),
    ("previous batch ended at", "continuity"),
]
CODES = [
    ("unknown_key", "unknown token or node"), ("revoked", "revoked token"), ("bad_signature", "bad signature"),
    ("malformed", "malformed message"), ("too_large", "message too large"), ("replay", "replayed sequence number"),
    ("clock", "clock in the future"), ("continuity", "window does not continue the previous one"),
    ("profile", "profile refused by the planner"),
]


def code_old_rejections(apps, schema_editor):
    Rejection = apps.get_model("telemetry", "Rejection")
    for text, code in REASON_CODES:
        Rejection.objects.filter(reason__icontains=text).update(reason_code=code)


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0001_initial'),
        ('telemetry', '0002_wire_vocabulary_choices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='EnrolmentToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='what the token is for, e.g. the cluster it was given to', max_length=100)),
                ('key_id', models.CharField(max_length=16, unique=True)),
                ('signing_key_hex', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='enrolment_tokens', to='projects.project')),
            ],
            options={
                'ordering': ['project__name', 'name'],
                'constraints': [models.UniqueConstraint(fields=('project', 'name'), name='enrolment_token_name_unique_per_project')],
            },
        ),
        migrations.AddField(
            model_name='node',
            name='key_id',
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name='node',
            name='reported_name',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name='node',
            name='enrolled_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='nodes', to='telemetry.enrolmenttoken'),
        ),
        migrations.AlterField(
            model_name='node',
            name='signing_key_hex',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name='node',
            name='name',
            field=models.CharField(max_length=200),
        ),
        migrations.AddConstraint(
            model_name='node',
            constraint=models.UniqueConstraint(fields=('name', 'project'), name='node_name_unique_per_project'),
        ),
        migrations.AddConstraint(
            model_name='node',
            constraint=models.UniqueConstraint(condition=models.Q(('key_id', ''), _negated=True), fields=('key_id',), name='node_key_id_unique'),
        ),
        migrations.AddField(
            model_name='rejection',
            name='key_id',
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name='rejection',
            name='reason_code',
            field=models.CharField(choices=CODES, default='malformed', max_length=32),
            preserve_default=False,
        ),
        migrations.RunPython(code_old_rejections, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name='rejection',
            index=models.Index(fields=['received_at'], name='rejection_received'),
        ),
    ]
