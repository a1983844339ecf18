"""The table on which an opt-out and a hand-off meet (`ConsentLock`), with its rows.

Self-contained: the number of rows is written here rather than imported, since
`compliance.consent.models.CONSENT_LOCKS` may change in a later release together with a
migration of its own; tests/consent/test_locks.py checks that the two agree.
"""

from django.db import migrations, models

CONSENT_LOCKS = 16_384


def create_rows(apps, schema_editor) -> None:
    ConsentLock = apps.get_model("consent", "ConsentLock")
    ConsentLock.objects.using(schema_editor.connection.alias).bulk_create(
        [ConsentLock(id=n) for n in range(CONSENT_LOCKS)], batch_size=2_000
    )


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0002_covering_eligibility"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsentLock",
            fields=[("id", models.IntegerField(primary_key=True, serialize=False))],
        ),
        migrations.RunPython(create_rows, migrations.RunPython.noop, elidable=False),
    ]
