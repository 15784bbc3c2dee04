"""The shop-side dedupe table (`ProcessedMessage`); paywire's own tables are Alembic's."""

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="ProcessedMessage",
            fields=[
                ("message_id", models.CharField(max_length=64, primary_key=True,
                                                serialize=False)),
                ("type", models.CharField(max_length=64)),
                ("order_id", models.CharField(db_index=True, max_length=64)),
                ("processed_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "verbose_name": "processed paywire message",
                "db_table": "paywire_processed_message",
                "ordering": ("-processed_at",),
            },
        ),
    ]
