"""The shop's side of exactly-once fulfilment: one row per announcement applied.

`fulfilment.deliver` inserts the message's row in the same `transaction.atomic()` as the shop's
own changes, so they commit together or not at all: a redelivered message (paywire's outbox
delivers at least once) finds its row and changes nothing. The table belongs to the shop's
database and to Django's migrations (`migrations/`); paywire's own tables are Alembic's.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models


class ProcessedMessage(models.Model):
    """An announcement (`order.completed`, ...) the shop has applied, by its message id."""

    message_id: models.CharField[str, str] = models.CharField(primary_key=True, max_length=64)
    type: models.CharField[str, str] = models.CharField(max_length=64)
    order_id: models.CharField[str, str] = models.CharField(max_length=64, db_index=True)
    processed_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        auto_now_add=True)

    class Meta:
        db_table = "paywire_processed_message"
        ordering = ("-processed_at",)
        verbose_name = "processed paywire message"

    def __str__(self) -> str:
        return f"{self.type} {self.order_id} ({self.message_id})"
