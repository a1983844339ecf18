"""Fewer indexes on webhooks_delivery, each of which every insert and every update of a
delivery pays for: the claim's `due` and `leased` indexes (the sender counts its lanes
itself and claims per subscription), and the foreign key's own index (the indexes
that remain all begin with the subscription). The foreign key constraint stays as it
is: only its index is dropped, so no validation scan of the table."""

import django.db.models.deletion
from django.db import migrations, models

FK_INDEX = "webhooks_delivery_subscription_id_f436ed71"


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0004_delivery_claim_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="delivery",
            name="webhooks_delivery_due",
        ),
        migrations.RemoveIndex(
            model_name="delivery",
            name="webhooks_delivery_leased",
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{FK_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{FK_INDEX}" ON "webhooks_delivery" ("subscription_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="subscription",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="webhooks.subscription",
                    ),
                ),
            ],
        ),
    ]
